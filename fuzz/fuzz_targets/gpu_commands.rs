//! Runs arbitrary bytes as a script of guest commands (hostile backing
//! lists, resets, garbage) against the virtio-gpu device over memfd guest
//! RAM, with a second thread reading every frame as the encoder does: no
//! panic, no frame of pages the guest took back, budgets held.
#![no_main]

use libfuzzer_sys::fuzz_target;
use zerocast_gpu::fuzzing::run;

fuzz_target!(|data: &[u8]| run(data));
