#![no_main]
//! Any bytes as a command line for our own IMAP grammars (the ones
//! imap-codec does not parse) never panic or hang.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| coimail_imap::fuzzing::extended_command(data));
