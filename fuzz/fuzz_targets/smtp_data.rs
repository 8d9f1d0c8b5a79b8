#![no_main]
//! Any bytes after `354`, read in any pieces, through the SMTP DATA reader,
//! checked against a reference: where the data ends (`CRLF.CRLF` only),
//! dot-unstuffing, bare CR/LF, the size limit, spilling to disk losing nothing.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| coimail_smtp::fuzzing::data(data));
