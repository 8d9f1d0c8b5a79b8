#![no_main]
//! COI chat detection (spec R22, R23, R36) on any bytes as a delivered
//! message: never panics, and the answers agree with each other.
use coimail_coi::detect;
use libfuzzer_sys::fuzz_target;

const NAMES: [&str; 8] = ["Chat-Version", "Message-ID", "References", "Content-Type", "Subject", "From", "Date", ""];

fn check_value(value: &[u8]) {
    // Unfolded and trimmed.
    assert!(!value.contains(&b'\n'), "{value:?}");
    let space = |b: &u8| matches!(b, b' ' | b'\t' | b'\r' | b'\n');
    assert!(!value.first().is_some_and(space) && !value.last().is_some_and(space), "{value:?}");
}

fuzz_target!(|raw: &[u8]| {
    let chat = detect::is_chat(raw);
    if let Some(group) = detect::group_id(raw) {
        assert!(!group.is_empty() && group.len() <= 128, "{group:?}");
        assert!(!group.chars().any(|c| c.is_control() || c.is_whitespace()), "{group:?}");
        assert!(chat, "group message {group:?} not seen as a chat");
    }
    if detect::is_disposition_notification(raw) {
        assert!(detect::header(raw, "content-type").is_some());
    }
    for name in NAMES {
        if let Some(value) = detect::header(raw, name) {
            check_value(&value);
        }
    }
    if detect::header(raw, "chat-version").is_some() {
        assert!(chat, "Chat-Version present but not a chat");
    }
    // A field name taken from the input itself (the text before its first colon).
    let name_end = raw.iter().position(|&b| b == b':').unwrap_or(raw.len()).min(64);
    if let Ok(name) = std::str::from_utf8(&raw[..name_end])
        && let Some(value) = detect::header(raw, name)
    {
        check_value(&value);
    }
});
