#![no_main]
//! Any bytes as BDAT chunks (RFC 3030), cut anywhere: kept byte for byte,
//! bare CR/LF across chunk boundaries found, the size limit held.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| coimail_smtp::fuzzing::bdat(data));
