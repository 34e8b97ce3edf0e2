//! Feeds arbitrary bytes to the HXFR decoder, with both hosts' and clients'
//! limits, in arbitrary chunk sizes: it must never panic, and whatever it
//! decodes must encode back to a message that decodes the same.
#![no_main]

use libfuzzer_sys::fuzz_target;
use zerocast_hxfr::fuzzing::check_decoder;

fuzz_target!(|data: &[u8]| check_decoder(data));
