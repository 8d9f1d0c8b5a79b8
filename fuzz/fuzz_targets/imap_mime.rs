#![no_main]
//! Any bytes as a stored message: MIME splitting, ENVELOPE, BODY and
//! BODYSTRUCTURE writing and text decoding never panic or hang.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| coimail_imap::fuzzing::mime(data));
