#![no_main]
//! Any bytes, read in any pieces, through the IMAP command framer
//! (literals `{n}`, `{n+}`, `~{n}`, line and literal limits): no panic, and
//! the invariants of `crates/imap/src/framing_check.rs` hold.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| coimail_imap::fuzzing::framer(data));
