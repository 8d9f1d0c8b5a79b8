#![no_main]
//! Any bytes as a COMPRESS=DEFLATE input stream (RFC 4978): inflated as a
//! session does and framed; an error or commands within the limits, never
//! a panic or unbounded growth.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| coimail_imap::fuzzing::framer_compressed(data));
