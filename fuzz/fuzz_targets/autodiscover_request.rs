#![no_main]
//! Autodiscover request bodies (what Outlook and phones POST to
//! `/autodiscover/autodiscover.xml`) as any bytes: never panic; an address
//! read from one is put into the response escaped, so the response is
//! well-formed and gives the address back unchanged.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| coimail_http::fuzzing::autodiscover(data));
