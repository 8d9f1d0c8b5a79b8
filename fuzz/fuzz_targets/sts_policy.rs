#![no_main]
//! MTA-STS policy files and `_mta-sts` TXT records (RFC 8461 §3.1, §3.2) as
//! any text: never panic; an accepted policy has a valid max_age and mx
//! patterns (lower-case, wildcard only first), written out again it parses
//! to itself, and every listed name matches itself.
use coimail_delivery::sts::policy::{MAX_AGE_LIMIT, Mode, Policy, record_id};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let records: Vec<String> = text.split('\0').map(str::to_owned).collect();
    if let Ok(id) = record_id(&records) {
        assert!(!id.is_empty() && id.len() <= 32 && id.bytes().all(|b| b.is_ascii_alphanumeric()), "{id:?}");
    }
    let Ok(policy) = Policy::parse(&text) else { return };
    assert!(policy.max_age <= MAX_AGE_LIMIT);
    assert!(policy.mode == Mode::None || !policy.mx.is_empty(), "{policy:?}");
    let mut again = format!("version: STSv1\nmode: {}\nmax_age: {}\n", policy.mode, policy.max_age);
    for mx in &policy.mx {
        assert_eq!(*mx, mx.to_ascii_lowercase());
        assert!(!mx.get(1..).unwrap_or("").contains('*'), "{mx:?}");
        again.push_str(&format!("mx: {mx}\n"));
        let name = mx.strip_prefix("*.").map_or_else(|| mx.clone(), |parent| format!("x.{parent}"));
        assert!(policy.matches(&name), "{name:?} against {policy:?}");
    }
    assert_eq!(Policy::parse(&again).as_ref(), Ok(&policy), "{text:?} -> {again:?}");
});
