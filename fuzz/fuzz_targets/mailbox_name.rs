#![no_main]
//! Mailbox name validation: never panics, and what it accepts is canonical
//! (validating it again changes nothing).
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(name) = std::str::from_utf8(data)
        && let Ok(canonical) = coimail_store::names::canonical(name)
    {
        assert_eq!(coimail_store::names::canonical(&canonical).ok().as_deref(), Some(canonical.as_str()));
    }
});
