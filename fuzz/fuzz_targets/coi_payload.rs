#![no_main]
//! The WebPush notification payload (COI spec R37, R38) for any delivered
//! message and store target: never panics, is a JSON object of at most
//! `MAX_PLAINTEXT` bytes, and its fields keep their documented shapes.
//!
//! Input: folder length (u16 LE), uidvalidity (u32 LE), uid (u32 LE), the
//! folder name (lossy UTF-8), then the raw message.
use coimail_coi::webpush::payload::{self, Target};
use coimail_store::Uid;
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

const KNOWN: [&str; 12] = [
    "folder",
    "uidvalidity",
    "uid",
    "date",
    "from-email",
    "from-name",
    "subject",
    "msg-id",
    "group-id",
    "content-type",
    "content-encoding",
    "content",
];

/// `YYYY-MM-DDThh:mm:ss+00:00`, a real date and time of years 0000-9999.
fn rfc3339_shaped(s: &str) -> bool {
    let b = s.as_bytes();
    let num = |r: std::ops::Range<usize>| -> Option<u32> {
        let d = b.get(r)?;
        d.iter().all(u8::is_ascii_digit).then(|| d.iter().fold(0, |n, c| n * 10 + u32::from(c - b'0')))
    };
    if b.len() != 25 || b[4] != b'-' || b[7] != b'-' || b[10] != b'T' || b[13] != b':' || b[16] != b':' {
        return false;
    }
    if &b[19..] != b"+00:00" {
        return false;
    }
    let (Some(year), Some(month), Some(day), Some(hour), Some(minute), Some(second)) =
        (num(0..4), num(5..7), num(8..10), num(11..13), num(14..16), num(17..19))
    else {
        return false;
    };
    let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
    let days = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return false,
    };
    (1..=days).contains(&day) && hour < 24 && minute < 60 && second < 60
}

fuzz_target!(|data: &[u8]| {
    let (folder, uidvalidity, uid, raw) = match data {
        [l0, l1, v0, v1, v2, v3, u0, u1, u2, u3, rest @ ..] => {
            let len = usize::from(u16::from_le_bytes([*l0, *l1])).min(rest.len());
            let (folder, raw) = rest.split_at(len);
            (
                String::from_utf8_lossy(folder).into_owned(),
                u32::from_le_bytes([*v0, *v1, *v2, *v3]),
                u32::from_le_bytes([*u0, *u1, *u2, *u3]),
                raw,
            )
        }
        _ => ("INBOX".to_owned(), 1, 1, data),
    };
    let target = Target { folder: &folder, uidvalidity, uid: Uid(uid) };
    let from_email = payload::from_email(raw);
    if let Some(email) = &from_email {
        assert!(!email.is_empty() && email.trim() == email, "{email:?}");
    }
    let Some(out) = payload::build(raw, &target) else {
        assert!(folder.len() > 1000, "no payload for a {}-byte folder name", folder.len());
        return;
    };
    assert!(folder.len() <= 1000, "payload for a {}-byte folder name", folder.len());
    assert!(out.len() <= payload::MAX_PLAINTEXT, "payload of {} bytes", out.len());
    let text = std::str::from_utf8(&out).expect("payload is UTF-8");
    let map = match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(map)) => map,
        Ok(other) => panic!("payload is not an object: {other}"),
        Err(e) => panic!("payload is not JSON ({e}): {text}"),
    };
    for key in map.keys() {
        assert!(KNOWN.contains(&key.as_str()), "unknown key {key:?}");
    }
    assert_eq!(map.get("uidvalidity").and_then(Value::as_u64), Some(u64::from(uidvalidity)));
    assert_eq!(map.get("uid").and_then(Value::as_u64), Some(u64::from(uid)));
    if folder.len() <= 200 {
        assert_eq!(map.get("folder").and_then(Value::as_str), Some(folder.as_str()));
    } else {
        assert!(!map.contains_key("folder"));
    }
    for key in &KNOWN[3..] {
        if let Some(value) = map.get(*key) {
            assert!(value.is_string(), "{key}: {value}");
        }
    }
    if let Some(date) = map.get("date").and_then(Value::as_str) {
        assert!(rfc3339_shaped(date), "date {date:?}");
    }
    // Header strings are cut to 100 JSON-escaped bytes plus the "…" marker.
    for key in ["from-email", "from-name", "subject", "msg-id", "group-id"] {
        if let Some(value) = map.get(key) {
            let escaped = value.to_string().len() - 2;
            assert!(escaped <= 100 + '…'.len_utf8(), "{key}: {escaped} bytes");
        }
    }
    let email = map.get("from-email").and_then(Value::as_str);
    match &from_email {
        Some(e) if !email.is_some_and(|v| v.ends_with('…')) => assert_eq!(email, Some(e.as_str())),
        Some(_) => {}
        None => assert_eq!(email, None),
    }
    for key in ["content-type", "content-encoding"] {
        if map.contains_key(key) {
            assert!(map.contains_key("content"), "{key} without content");
        }
    }
});
