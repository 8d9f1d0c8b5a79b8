#![no_main]
//! Push endpoint URLs (COI spec R32) as any text: never panic, and what is
//! accepted is an http(s) URL whose parts cannot smuggle anything into the
//! request line or the Host header, and that parses back to itself.
use coimail_coi::webpush::http::Endpoint;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let url = String::from_utf8_lossy(data);
    let Ok(ep) = Endpoint::parse(&url) else { return };
    assert!(ep.scheme == "http" || ep.scheme == "https", "{ep:?}");
    assert!(!ep.host.is_empty(), "{ep:?}");
    assert_eq!(ep.host, ep.host.to_ascii_lowercase());
    assert!(ep.path.starts_with('/'), "{ep:?}");
    let host_header = ep.host_header();
    let audience = ep.audience();
    for part in [&ep.host, &ep.path, &host_header, &audience] {
        assert!(part.bytes().all(|b| b.is_ascii_graphic()), "{ep:?}");
        assert!(!part.contains('#'), "{ep:?}");
    }
    assert!(!ep.host.contains(['/', '?', '@']), "{ep:?}");
    let _ = ep.is_loopback();
    let again = format!("{}://{}{}", ep.scheme, host_header, ep.path);
    if let Ok(back) = Endpoint::parse(&again) {
        assert_eq!(back, ep, "{url:?} -> {again:?}");
    }
});
