//! Feeds arbitrary bytes to the web gateway's parsers, as a binary message
//! and as a text one: they must never panic, and whatever they accept must
//! stay within the ranges the input sinks and `/api/stats` rely on.
#![no_main]

use libfuzzer_sys::fuzz_target;
use zerocast_web::fuzzing::check_message;

fuzz_target!(|data: &[u8]| check_message(data));
