#![no_main]
//! WebPush subscription requests (COI spec R32, R35): any bytes as a
//! request never panic, and an accepted one reads back equal from its stored
//! JSON. Ids: any text, accepted exactly when Dovecot would.
//!
//! Input: `now` (i64 LE), then the request.
use coimail_coi::webpush::subscription::{Subscription, check_id, parse_request};
use libfuzzer_sys::fuzz_target;

/// `created` is stored as RFC 3339, which has years 0000-9999 only.
const RFC3339_RANGE: std::ops::RangeInclusive<i64> = -62_167_219_200..=253_402_300_799;

fuzz_target!(|data: &[u8]| {
    let id = String::from_utf8_lossy(data);
    let ok = !id.is_empty() && id.len() <= 256 && !id.contains('/') && id.bytes().all(|b| b.is_ascii_graphic());
    assert_eq!(check_id(&id).is_ok(), ok, "{id:?}");

    let _ = Subscription::from_stored(data);
    let (now, json) = match data.split_first_chunk::<8>() {
        Some((now, json)) => (i64::from_le_bytes(*now), json),
        None => (0, data),
    };
    let Ok(sub) = parse_request(json, now) else { return };
    assert!(!sub.validated);
    assert_eq!(sub.created, now);
    assert!(sub.p256dh_bytes().is_some_and(|k| k.len() == 65));
    assert!(sub.auth_bytes().is_some_and(|k| k.len() == 16));
    let stored = sub.to_json();
    match Subscription::from_stored(stored.as_bytes()) {
        Ok(back) => assert_eq!(back, sub, "{stored}"),
        Err(e) if RFC3339_RANGE.contains(&now) => panic!("stored form does not read back ({e}): {stored}"),
        Err(_) => {}
    }
    let mut validated = sub.clone();
    validated.validated = true;
    if RFC3339_RANGE.contains(&now) {
        assert_eq!(Subscription::from_stored(validated.to_json().as_bytes()).ok(), Some(validated));
    }
});
