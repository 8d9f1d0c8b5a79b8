#![no_main]
//! The config parser and validator never panic on any text.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data)
        && let Ok(config) = coimail_daemon::Config::parse(text)
    {
        let _ = config.validate();
    }
});
