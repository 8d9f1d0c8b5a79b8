//! The JSON a push carries: the new-message notification (COI spec R37) and
//! the validation push (R34).
//!
//! Field order, omissions and the 100-byte cut follow Dovecot's
//! `webpush-message.c`, which the OX client was built against; where Dovecot
//! departs from the spec, §6 decides (no `date` without a Date header, `msg-id`
//! keeps its angle brackets). The whole object must fit one aes128gcm record
//! of 4096 bytes (R38), so the body goes in only when everything fits.
//!
//! The JSON is written by hand, one member at a time, because field order is
//! part of the format and serde_json's map only keeps insertion order with a
//! feature this workspace does not turn on.

use super::subscription::{month_len, rfc3339, unix_time};
use crate::detect;
use mail_parser::HeaderValue;
use mail_parser::parsers::MessageStream;
use serde_json::Value;

/// Largest plaintext that fits one 4096-byte aes128gcm record (R38).
pub const MAX_PLAINTEXT: usize = 3993;
/// A folder name this long means no push at all: truncating it would point
/// the client at a wrong folder, and omitting it leaves nothing to fetch.
const MAX_FOLDER_PUSH: usize = 1000;
/// Above this the `folder` field is omitted (spec) to leave room for the rest.
const MAX_FOLDER_FIELD: usize = 200;
/// Limit for the header-derived strings, measured JSON-escaped as Dovecot does.
const MAX_VALUE: usize = 100;
/// A longer group id is omitted, never cut: a cut id would name another group.
const MAX_GROUP_ID: usize = 100;
/// Bodies above this are never considered for `content`.
const MAX_BODY: usize = 4096;

/// Where the new message was stored.
#[derive(Debug, Clone, Copy)]
pub struct Target<'a> {
    pub folder: &'a str,
    pub uidvalidity: u32,
    pub uid: u32,
}

/// The notification for a message stored at `target` (R37), or `None` when
/// no push should be sent (folder name over 1000 bytes). Never more than
/// [`MAX_PLAINTEXT`] bytes.
pub fn build(raw: &[u8], target: &Target<'_>) -> Option<Vec<u8>> {
    if target.folder.len() > MAX_FOLDER_PUSH {
        return None;
    }
    let h = Headers::of(raw);
    let mut out = String::with_capacity(512);
    out.push('{');
    if target.folder.len() <= MAX_FOLDER_FIELD {
        member(&mut out, "folder", &json_string(target.folder));
    }
    member(&mut out, "uidvalidity", &target.uidvalidity.to_string());
    member(&mut out, "uid", &target.uid.to_string());
    if let Some(unix) = h.date.and_then(parse_date) {
        member(&mut out, "date", &json_string(&rfc3339(unix)));
    }
    let from = h.from.map(parse_from).unwrap_or_default();
    for (key, value) in [("from-email", from.email), ("from-name", from.name)] {
        if let Some(value) = value {
            member(&mut out, key, &json_string(&limited(&value)));
        }
    }
    if let Some(subject) = h.subject.map(decode_unstructured).filter(|s| !s.is_empty()) {
        member(&mut out, "subject", &json_string(&limited(&subject)));
    }
    if let Some(id) = h.message_id.map(text).filter(|s| !s.is_empty()) {
        member(&mut out, "msg-id", &json_string(&limited(&id)));
    }
    if let Some(group) = detect::group_id(raw).filter(|g| escaped_len(g) <= MAX_GROUP_ID) {
        member(&mut out, "group-id", &json_string(&group));
    }
    let before_content = out.len();
    if let Some(content) = usable_body(detect::split(raw).1) {
        // Not cut: the client needs the whole type (charset, boundary) and
        // encoding to read `content`; they go in or out together with it.
        if let Some(ct) = h.content_type.map(text).filter(|ct| !is_default_content_type(ct)) {
            member(&mut out, "content-type", &json_string(&ct));
        }
        if let Some(cte) = h.encoding.map(text).filter(|cte| !is_default_encoding(cte)) {
            member(&mut out, "content-encoding", &json_string(&cte));
        }
        member(&mut out, "content", &json_string(content));
        if out.len() + 1 > MAX_PLAINTEXT {
            out.truncate(before_content);
        }
    }
    out.push('}');
    // Cannot trigger (the fields before the body are bounded far below the
    // limit), but an oversized payload would fail encryption later anyway.
    (out.len() <= MAX_PLAINTEXT).then(|| out.into_bytes())
}

/// The validation push `{"validation":"<secret>"}` (R34).
pub fn validation(secret: &str) -> Vec<u8> {
    format!("{{\"validation\":{}}}", json_string(secret)).into_bytes()
}

/// The address of the first `From` field, as compared against a
/// subscription's `exclude_from` (R36).
pub fn from_email(raw: &[u8]) -> Option<String> {
    Headers::of(raw).from.and_then(|v| parse_from(v).email)
}

/// Raw values of the first occurrence of each field the payload uses,
/// collected in one pass over the header section.
#[derive(Default)]
struct Headers<'a> {
    date: Option<&'a [u8]>,
    from: Option<&'a [u8]>,
    subject: Option<&'a [u8]>,
    message_id: Option<&'a [u8]>,
    content_type: Option<&'a [u8]>,
    encoding: Option<&'a [u8]>,
}

impl<'a> Headers<'a> {
    fn of(raw: &'a [u8]) -> Headers<'a> {
        let mut h = Headers::default();
        for (name, value) in detect::fields(raw) {
            let slot = match name.to_ascii_lowercase().as_slice() {
                b"date" => &mut h.date,
                b"from" => &mut h.from,
                b"subject" => &mut h.subject,
                b"message-id" => &mut h.message_id,
                b"content-type" => &mut h.content_type,
                b"content-transfer-encoding" => &mut h.encoding,
                _ => continue,
            };
            slot.get_or_insert(value);
        }
        h
    }
}

/// Unfolded, trimmed, lossily UTF-8: for values copied as they are.
fn text(value: &[u8]) -> String {
    String::from_utf8_lossy(&detect::unfold(value)).into_owned()
}

/// A value prepared for mail-parser's field parsers: unfolded, stray CRs
/// blanked, and ended with the line end the parsers stop at.
fn parser_input(value: &[u8]) -> Vec<u8> {
    let mut buf = detect::unfold(value);
    for b in &mut buf {
        if *b == b'\r' {
            *b = b' ';
        }
    }
    buf.extend_from_slice(b"\r\n");
    buf
}

/// Date header (RFC 5322 §3.3, obsolete forms included) → Unix seconds;
/// `None` when unparseable, so the field is omitted rather than wrong (§6:
/// no epoch placeholder as Dovecot sends). Written here because
/// mail-parser's parser guesses: it read `04 Foo 2019` as some month.
fn parse_date(value: &[u8]) -> Option<i64> {
    let value = strip_comments(&text(value));
    let mut tokens = value.split(|c: char| c.is_whitespace() || c == ',').filter(|t| !t.is_empty()).peekable();
    if tokens.peek().is_some_and(|t| t.chars().all(|c| c.is_ascii_alphabetic())) {
        tokens.next()?; // day of week: informational only
    }
    let day = number(tokens.next()?, 1, 2)?;
    let month = tokens.next()?.to_ascii_lowercase();
    let month = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"]
        .iter()
        .position(|m| *m == month)? as i64
        + 1;
    let year = match tokens.next()? {
        y if y.len() == 2 => number(y, 2, 2).map(|y| if y < 50 { 2000 + y } else { 1900 + y })?,
        y if y.len() == 3 => 1900 + number(y, 3, 3)?,
        y => number(y, 4, 4)?,
    };
    let mut time = tokens.next()?.split(':');
    let hour = number(time.next()?, 1, 2)?;
    let minute = number(time.next()?, 2, 2)?;
    let second = match time.next() {
        Some(s) => number(s, 2, 2)?,
        None => 0,
    };
    if time.next().is_some() {
        return None;
    }
    let offset = match tokens.next() {
        None => 0,
        Some(zone) => zone_offset(zone)?,
    };
    if !(1..=month_len(year, month)?).contains(&day) || hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    Some(unix_time(year, month, day, hour, minute, second) - offset)
}

/// A run of `min..=max` ASCII digits.
fn number(s: &str, min: usize, max: usize) -> Option<i64> {
    if !(min..=max).contains(&s.len()) || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// Seconds east of UTC. Obsolete names per RFC 5322 §4.3; military and
/// unknown alphabetic zones mean "unknown", which the RFC says to read as UTC.
fn zone_offset(zone: &str) -> Option<i64> {
    if let Some((sign, digits)) =
        zone.strip_prefix('+').map(|d| (1, d)).or_else(|| zone.strip_prefix('-').map(|d| (-1, d)))
    {
        let hhmm = number(digits, 4, 4)?;
        let (hours, minutes) = (hhmm / 100, hhmm % 100);
        if minutes > 59 {
            return None;
        }
        return Some(sign * (hours * 3600 + minutes * 60));
    }
    if !zone.chars().all(|c| c.is_ascii_alphabetic()) {
        return None;
    }
    let hours = match zone.to_ascii_uppercase().as_str() {
        "EDT" => -4,
        "EST" | "CDT" => -5,
        "CST" | "MDT" => -6,
        "MST" | "PDT" => -7,
        "PST" => -8,
        _ => 0,
    };
    Some(hours * 3600)
}

#[derive(Default)]
struct FromField {
    email: Option<String>,
    name: Option<String>,
}

/// The first mailbox of a From value, display name RFC 2047-decoded.
fn parse_from(value: &[u8]) -> FromField {
    let input = parser_input(value);
    let HeaderValue::Address(address) = MessageStream::new(&input).parse_address() else {
        return FromField::default();
    };
    let Some(first) = address.first() else { return FromField::default() };
    let clean = |s: Option<&str>| s.map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned);
    FromField { email: clean(first.address()), name: clean(first.name()) }
}

/// An unstructured value (Subject) with RFC 2047 encoded words decoded.
fn decode_unstructured(value: &[u8]) -> String {
    let input = parser_input(value);
    match MessageStream::new(&input).parse_unstructured() {
        HeaderValue::Text(t) => t.trim().to_owned(),
        _ => String::new(),
    }
}

/// The body as `content`, if a client can take it as it is: small, no NUL
/// (Dovecot's C strings stop there and clients may too), valid UTF-8 (JSON
/// cannot carry other bytes without changing them).
fn usable_body(body: &[u8]) -> Option<&str> {
    if body.len() > MAX_BODY || body.contains(&0) {
        return None;
    }
    std::str::from_utf8(body).ok()
}

/// `text/plain` with no parameter but a UTF-8-compatible charset: what a
/// client assumes anyway, so the field is left out. Any other parameter
/// (`format=flowed`) changes how the body reads and keeps the field.
fn is_default_content_type(value: &str) -> bool {
    let value = strip_comments(value);
    if value.trim().is_empty() {
        return true; // RFC 2045 §5.2: no type means text/plain; charset=us-ascii
    }
    let parts = split_params(&value);
    let mut parts = parts.iter();
    if !parts.next().is_some_and(|t| t.trim().eq_ignore_ascii_case("text/plain")) {
        return false;
    }
    for param in parts {
        let param = param.trim();
        if param.is_empty() {
            continue;
        }
        let Some((name, value)) = param.split_once('=') else { return false };
        if !name.trim().eq_ignore_ascii_case("charset") {
            return false;
        }
        let value = value.trim();
        let value = value.strip_prefix('"').and_then(|v| v.strip_suffix('"')).unwrap_or(value);
        if !["utf-8", "utf8", "us-ascii", "ascii"].iter().any(|c| value.eq_ignore_ascii_case(c)) {
            return false;
        }
    }
    true
}

fn is_default_encoding(value: &str) -> bool {
    let value = value.trim();
    value.is_empty() || value.eq_ignore_ascii_case("7bit") || value.eq_ignore_ascii_case("8bit")
}

/// Removes RFC 5322 comments outside quoted strings.
fn strip_comments(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    let (mut depth, mut quoted, mut escaped) = (0usize, false, false);
    for c in value.chars() {
        if escaped {
            escaped = false;
            if depth == 0 {
                out.push(c);
            }
            continue;
        }
        match c {
            '\\' if quoted || depth > 0 => {
                escaped = true;
                if depth == 0 {
                    out.push(c);
                }
            }
            '"' if depth == 0 => {
                quoted = !quoted;
                out.push(c);
            }
            '(' if !quoted => depth += 1,
            ')' if !quoted && depth > 0 => depth -= 1,
            _ if depth > 0 => {}
            _ => out.push(c),
        }
    }
    out
}

/// Splits at `;` outside quoted strings.
fn split_params(value: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let (mut start, mut quoted, mut escaped) = (0, false, false);
    for (i, c) in value.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            ';' if !quoted => {
                parts.push(value.get(start..i).unwrap_or_default());
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(value.get(start..).unwrap_or_default());
    parts
}

/// Appends `"key":<json>` with the separating comma.
fn member(out: &mut String, key: &str, json: &str) {
    if !out.ends_with('{') {
        out.push(',');
    }
    out.push('"');
    out.push_str(key);
    out.push_str("\":");
    out.push_str(json);
}

/// A JSON string literal. `Value`'s `Display` cannot fail, unlike `to_string`.
fn json_string(s: &str) -> String {
    Value::String(s.to_owned()).to_string()
}

/// Bytes `c` takes inside a serde_json string literal.
fn escaped_char_len(c: char) -> usize {
    match c {
        '"' | '\\' | '\u{8}' | '\u{c}' | '\n' | '\r' | '\t' => 2,
        c if (c as u32) < 0x20 => 6,
        c => c.len_utf8(),
    }
}

fn escaped_len(s: &str) -> usize {
    s.chars().map(escaped_char_len).sum()
}

/// `s` cut so that its JSON-escaped form stays within 100 bytes, with `…`
/// appended when cut. Measuring escaped bytes (as Dovecot does) bounds the
/// payload whatever the header holds; cutting whole chars keeps both UTF-8
/// and escape sequences intact.
fn limited(s: &str) -> String {
    if escaped_len(s) <= MAX_VALUE {
        return s.to_owned();
    }
    let (mut used, mut end) = (0, 0);
    for (i, c) in s.char_indices() {
        used += escaped_char_len(c);
        if used > MAX_VALUE {
            break;
        }
        end = i + c.len_utf8();
    }
    format!("{}…", s.get(..end).unwrap_or_default())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const TARGET: Target<'static> = Target { folder: "COI/Chats", uidvalidity: 1_795_582_462, uid: 1 };

    fn r37_message() -> Vec<u8> {
        concat!(
            "From: Alice Example <alice@example.test>\r\n",
            "To: bob@example.test\r\n",
            "Subject: Chat: Hello\r\n",
            "Message-ID: <chat$group.4321dcba1234.S2571BC@example.test>\r\n",
            "Date: Wed, 04 Dec 2019 14:51:37 +0000\r\n",
            "Chat-Version: 1.0\r\n",
            "Content-Type: text/plain; charset=utf-8\r\n",
            "\r\n",
            "hello group\n"
        )
        .as_bytes()
        .to_vec()
    }

    fn build_str(raw: &[u8]) -> String {
        String::from_utf8(build(raw, &TARGET).unwrap()).unwrap()
    }

    fn build_json(raw: &[u8]) -> serde_json::Map<String, Value> {
        let out = build(raw, &TARGET).unwrap();
        assert!(out.len() <= MAX_PLAINTEXT);
        match serde_json::from_slice(&out).unwrap() {
            Value::Object(map) => map,
            other => panic!("not an object: {other}"),
        }
    }

    fn with_body(headers: &str, body: &[u8]) -> Vec<u8> {
        let mut raw = format!("From: a@example.test\r\nSubject: s\r\n{headers}\r\n").into_bytes();
        raw.extend_from_slice(body);
        raw
    }

    #[test]
    fn r37_observed_example() {
        let want = concat!(
            r#"{"folder":"COI/Chats","uidvalidity":1795582462,"uid":1,"date":"2019-12-04T14:51:37+00:00","#,
            r#""from-email":"alice@example.test","from-name":"Alice Example","subject":"Chat: Hello","#,
            r#""msg-id":"<chat$group.4321dcba1234.S2571BC@example.test>","group-id":"4321dcba1234","#,
            r#""content":"hello group\n"}"#
        );
        assert_eq!(build_str(&r37_message()), want);
        let lf = String::from_utf8(r37_message()).unwrap().replace("\r\n", "\n");
        assert_eq!(build_str(lf.as_bytes()), want);
    }

    #[test]
    fn date_converted_to_utc_or_omitted() {
        let raw = String::from_utf8(r37_message()).unwrap();
        let no_date = raw.replace("Date: Wed, 04 Dec 2019 14:51:37 +0000\r\n", "");
        let map = build_json(no_date.as_bytes());
        assert!(!map.contains_key("date"));
        assert_eq!(map["uid"], 1);
        for bad in ["Date: yesterday", "Date:", "Date: \u{ff}\u{fe}", "Date: Wed, 04 Foo 2019 14:51:37 +0000"] {
            let map = build_json(raw.replace("Date: Wed, 04 Dec 2019 14:51:37 +0000", bad).as_bytes());
            assert!(!map.contains_key("date"), "{bad}");
        }
        let east = raw.replace("14:51:37 +0000", "16:51:37 +0200");
        assert_eq!(build_json(east.as_bytes())["date"], "2019-12-04T14:51:37+00:00");
        let west = raw.replace("Wed, 04 Dec 2019 14:51:37 +0000", "Tue, 03 Dec 2019 21:51:37 -1700");
        assert_eq!(build_json(west.as_bytes())["date"], "2019-12-04T14:51:37+00:00");
        let folded = raw.replace("Date: Wed, 04 Dec 2019", "Date: Wed,\r\n 04 Dec 2019");
        assert_eq!(build_json(folded.as_bytes())["date"], "2019-12-04T14:51:37+00:00");
    }

    #[test]
    fn date_forms() {
        let utc = |d: &str| parse_date(d.as_bytes()).map(rfc3339);
        let want = Some("2019-12-04T14:51:37+00:00".to_owned());
        for d in [
            "Wed, 04 Dec 2019 14:51:37 +0000",
            "Wed, 4 Dec 2019 14:51:37 +0000",
            "04 Dec 2019 14:51:37 +0000",
            "wed, 04 DEC 2019 14:51:37 -0000",
            "Wed, 04 Dec 2019 14:51:37 GMT",
            "Wed, 04 Dec 2019 14:51:37 UT",
            "Wed, 04 Dec 2019 14:51:37 Z",
            "Wed, 04 Dec 2019 14:51:37",
            "Wed, 04 Dec 19 14:51:37 +0000",
            "Wed, 04 Dec 119 14:51:37 +0000",
            "Wed, 04 Dec 2019 09:51:37 EST",
            "Wed, 04 Dec 2019 06:51:37 PST",
            "Wed, 04 Dec 2019 15:51:37 +0100 (CET)",
            "Wed (comment), 04 Dec 2019 14:51:37 +0000",
            "Wed,\r\n 04 Dec 2019 14:51:37 +0000",
            "Thu, 05 Dec 2019 00:21:37 +0930",
        ] {
            assert_eq!(utc(d), want, "{d}");
        }
        assert_eq!(utc("Wed, 04 Dec 2019 14:51 +0000").as_deref(), Some("2019-12-04T14:51:00+00:00"));
        assert_eq!(utc("Thu, 01 Jan 1970 00:00:00 +0000").as_deref(), Some("1970-01-01T00:00:00+00:00"));
        assert_eq!(utc("Thu, 01 Jan 1970 00:30:00 +0100").as_deref(), Some("1969-12-31T23:30:00+00:00"));
        assert_eq!(utc("Thu, 29 Feb 2024 12:00:00 +0000").as_deref(), Some("2024-02-29T12:00:00+00:00"));
        assert_eq!(utc("Sun, 31 Dec 2023 23:59:59 -0100").as_deref(), Some("2024-01-01T00:59:59+00:00"));
        for bad in [
            "",
            "yesterday",
            "Wed, 04 Foo 2019 14:51:37 +0000",
            "Wed, 31 Nov 2019 14:51:37 +0000",
            "Thu, 29 Feb 2023 12:00:00 +0000",
            "Wed, 00 Dec 2019 14:51:37 +0000",
            "Wed, 04 Dec 2019 24:00:00 +0000",
            "Wed, 04 Dec 2019 14:60:00 +0000",
            "Wed, 04 Dec 2019 14:51:37 +00",
            "Wed, 04 Dec 2019 14:51:37 +0060",
            "Wed, 04 Dec 2019 14:51:37:00 +0000",
            "Wed, 04 Dec 20190 14:51:37 +0000",
            "Wed, 04 Dec 2019 +0000",
            "Wed, 004 Dec 2019 14:51:37 +0000",
            "Wed, 04 Dec 2019 1451 +0000",
            "Wed, 04 Dec 2019 14:51:37 +x000",
            "Wed, 04 Dec 2019 14:51:37 +٠٠٠٠",
            "2019-12-04T14:51:37Z",
        ] {
            assert_eq!(utc(bad), None, "{bad}");
        }
    }

    #[test]
    fn long_values_cut_with_ellipsis() {
        let raw = |subject: &str| format!("Subject: {subject}\r\n\r\n").into_bytes();
        let map = build_json(&raw(&"x".repeat(150)));
        assert_eq!(map["subject"], format!("{}…", "x".repeat(100)));
        let map = build_json(&raw(&"x".repeat(100)));
        assert_eq!(map["subject"], "x".repeat(100));
        let map = build_json(&raw(&"é".repeat(80)));
        assert_eq!(map["subject"], format!("{}…", "é".repeat(50)));
        let map = build_json(&raw(&format!("a{}", "é".repeat(80))));
        assert_eq!(map["subject"], format!("a{}…", "é".repeat(49)));
        let map = build_json(&raw(&"\"".repeat(60)));
        assert_eq!(map["subject"], format!("{}…", "\"".repeat(50)));
        let map = build_json(&raw(&format!("a{}", "\u{1}".repeat(30))));
        assert_eq!(map["subject"], format!("a{}…", "\u{1}".repeat(16)));
        let long_id = format!("<{}@x>", "i".repeat(200));
        let map = build_json(&with_body(&format!("Message-ID: {long_id}\r\n"), b""));
        assert_eq!(map["msg-id"], format!("{}…", &long_id[..100]));
        let long_name = "N".repeat(120);
        let map = build_json(format!("From: {long_name} <a@example.test>\r\n\r\n").as_bytes());
        assert_eq!(map["from-name"], format!("{}…", "N".repeat(100)));
    }

    #[test]
    fn encoded_words_decoded() {
        let raw = concat!(
            "From: =?utf-8?q?J=C3=BCrgen_M=C3=BCller?= <juergen@example.test>\r\n",
            "Subject: =?UTF-8?B?R3LDvMOfZQ==?= =?utf-8?q?_aus_K=C3=B6ln?=\r\n",
            "\r\n"
        );
        let map = build_json(raw.as_bytes());
        assert_eq!(map["from-name"], "Jürgen Müller");
        assert_eq!(map["from-email"], "juergen@example.test");
        assert_eq!(map["subject"], "Grüße aus Köln");
        let raw = "From: \"Quoted, Name\" <q@example.test>\r\nSubject: plain ä\r\n\r\n";
        let map = build_json(raw.as_bytes());
        assert_eq!(map["from-name"], "Quoted, Name");
        assert_eq!(map["subject"], "plain ä");
    }

    #[test]
    fn from_variants() {
        let map = build_json(b"From: bare@example.test\r\n\r\n");
        assert_eq!(map["from-email"], "bare@example.test");
        assert!(!map.contains_key("from-name"));
        let map = build_json(b"From: <angle@example.test>\r\n\r\n");
        assert_eq!(map["from-email"], "angle@example.test");
        assert!(!map.contains_key("from-name"));
        let map = build_json(b"Subject: x\r\n\r\n");
        assert!(!map.contains_key("from-email") && !map.contains_key("from-name"));
        assert!(!map.contains_key("msg-id") && !map.contains_key("group-id"));
        let map = build_json(b"From: first@example.test\r\nFrom: second@example.test\r\n\r\n");
        assert_eq!(map["from-email"], "first@example.test");
        let map = build_json(b"From: Team: one@example.test, two@example.test;\r\n\r\n");
        assert_eq!(map["from-email"], "one@example.test");
        assert_eq!(from_email(&r37_message()).as_deref(), Some("alice@example.test"));
        assert_eq!(from_email(b"From: Bob <Bob@Example.Test>\n\n").as_deref(), Some("Bob@Example.Test"));
        assert_eq!(from_email(b"Subject: x\r\n\r\nFrom: body@example.test\r\n"), None);
        assert_eq!(from_email(b""), None);
        let map = build_json(b"Subject:   \r\n\r\n");
        assert!(!map.contains_key("subject"));
    }

    #[test]
    fn body_conditions() {
        let map = build_json(&with_body("", b"caf\xe9\r\n"));
        assert!(!map.contains_key("content"), "Latin-1 body");
        let map = build_json(&with_body("Content-Type: text/html\r\n", b"a\0b"));
        assert!(!map.contains_key("content") && !map.contains_key("content-type"), "NUL in body");
        let big = vec![b'a'; 4097];
        let map = build_json(&with_body("Content-Type: text/html\r\nContent-Transfer-Encoding: base64\r\n", &big));
        assert!(!map.contains_key("content"));
        assert!(!map.contains_key("content-type") && !map.contains_key("content-encoding"));
        assert_eq!(map["subject"], "s", "headers still there");
        let map = build_json(&with_body("", &vec![b'a'; 3500]));
        assert_eq!(map["content"].as_str().unwrap().len(), 3500);
        let map = build_json(b"Subject: only headers\r\n");
        assert_eq!(map["content"], "");
        let map = build_json(&with_body("", "grüße\r\n".as_bytes()));
        assert_eq!(map["content"], "grüße\r\n");
    }

    #[test]
    fn content_type_and_encoding() {
        let get = |headers: &str| {
            let map = build_json(&with_body(headers, b"body"));
            assert_eq!(map["content"], "body");
            (map.get("content-type").cloned(), map.get("content-encoding").cloned())
        };
        assert_eq!(get(""), (None, None));
        for ct in [
            "text/plain",
            "TEXT/PLAIN; charset=us-ascii",
            "text/plain; charset=\"UTF-8\"",
            "text/plain; charset=utf8;",
            "text/plain (comment); charset=ascii",
            "",
        ] {
            assert_eq!(get(&format!("Content-Type: {ct}\r\n")).0, None, "{ct}");
        }
        for ct in [
            "text/html; charset=utf-8",
            "text/plain; charset=iso-8859-1",
            "text/plain; charset=utf-8; format=flowed",
            "multipart/alternative; boundary=\"a;b\"",
        ] {
            assert_eq!(get(&format!("Content-Type: {ct}\r\n")).0, Some(Value::String(ct.to_owned())), "{ct}");
        }
        assert_eq!(
            get("Content-Type: text/plain;\r\n charset=koi8-r\r\n").0,
            Some(Value::String("text/plain; charset=koi8-r".to_owned()))
        );
        assert_eq!(
            get("Content-Transfer-Encoding: quoted-printable\r\n").1,
            Some(Value::String("quoted-printable".to_owned()))
        );
        assert_eq!(get("Content-Transfer-Encoding: base64\r\n").1, Some(Value::String("base64".to_owned())));
        for cte in ["7bit", "8BIT", " 7Bit ", ""] {
            assert_eq!(get(&format!("Content-Transfer-Encoding: {cte}\r\n")).1, None, "{cte}");
        }
        let map = build_json(&with_body(
            "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n",
            b"caf=C3=A9=\r\n",
        ));
        assert_eq!(map["content-encoding"], "quoted-printable");
        assert_eq!(map["content"], "caf=C3=A9=\r\n");
        // Field order: content-type, content-encoding, content last.
        let out = build_str(&with_body("Content-Type: text/html\r\nContent-Transfer-Encoding: base64\r\n", b"PGI+"));
        assert!(out.ends_with(r#","content-type":"text/html","content-encoding":"base64","content":"PGI+"}"#), "{out}");
    }

    #[test]
    fn never_over_limit_with_escapes() {
        let headers = "Content-Type: text/html; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\
                       Message-ID: <chat$group.abcdefgh.xyz@example.test>\r\nDate: Wed, 04 Dec 2019 14:51:37 +0000\r\n";
        let pattern = b"\"\\\x01\x1f\n\ta\xc3\xa9";
        let mut sizes: Vec<usize> = (0..=MAX_BODY).step_by(61).collect();
        sizes.extend([1000, 1300, 1800, 1950, 2000, 3900, 3980, 3993, 4095, 4096, 4097]);
        for n in sizes {
            let mut body: Vec<u8> = pattern.iter().copied().cycle().take(n).collect();
            // Keep the body UTF-8 so that only the size decides.
            while std::str::from_utf8(&body).is_err() {
                body.pop();
            }
            let raw = with_body(headers, &body);
            let out = build(&raw, &Target { folder: &"F".repeat(200), uidvalidity: u32::MAX, uid: u32::MAX }).unwrap();
            assert!(out.len() <= MAX_PLAINTEXT, "{n}: {}", out.len());
            let map: serde_json::Map<String, Value> = serde_json::from_slice(&out).unwrap();
            match map.get("content") {
                Some(c) => {
                    assert_eq!(c.as_str().unwrap().as_bytes(), body.as_slice());
                    assert!(map.contains_key("content-type") && map.contains_key("content-encoding"));
                }
                None => assert!(!map.contains_key("content-type") && !map.contains_key("content-encoding")),
            }
        }
        // Plain text of 4 KB fits byte for byte only if the rest is small; a body
        // just under the limit must still be taken.
        let raw = with_body("", &vec![b'a'; 3850]);
        assert!(build_json(&raw).contains_key("content"));
    }

    #[test]
    fn folder_limits() {
        let raw = r37_message();
        let f200 = "f".repeat(200);
        let map: serde_json::Map<String, Value> =
            serde_json::from_slice(&build(&raw, &Target { folder: &f200, ..TARGET }).unwrap()).unwrap();
        assert_eq!(map["folder"], f200.as_str());
        let f201 = "f".repeat(201);
        let out = String::from_utf8(build(&raw, &Target { folder: &f201, ..TARGET }).unwrap()).unwrap();
        assert!(out.starts_with(r#"{"uidvalidity":1795582462,"uid":1,"#), "{out}");
        assert!(build(&raw, &Target { folder: &"f".repeat(1000), ..TARGET }).is_some());
        assert!(build(&raw, &Target { folder: &"f".repeat(1001), ..TARGET }).is_none());
        let map: serde_json::Map<String, Value> =
            serde_json::from_slice(&build(&raw, &Target { folder: "Dossier \"é\"", ..TARGET }).unwrap()).unwrap();
        assert_eq!(map["folder"], "Dossier \"é\"");
    }

    #[test]
    fn group_id_field() {
        let map = build_json(&with_body("Message-ID: <plain@x>\r\nReferences: <chat$group.g1.x@y>\r\n", b""));
        assert_eq!(map["group-id"], "g1");
        assert_eq!(map["msg-id"], "<plain@x>");
        let g = "g".repeat(101);
        let map = build_json(&with_body(&format!("Message-ID: <chat$group.{g}.x@y>\r\n"), b""));
        assert!(!map.contains_key("group-id"), "over 100 bytes: omitted, not cut");
        let map = build_json(&with_body("Message-ID: <chat$m@x>\r\n", b""));
        assert!(!map.contains_key("group-id"));
    }

    #[test]
    fn validation_payload() {
        assert_eq!(
            validation("B/ctyEELqG7Rwo3FL/kGaLkkCMatjzJzcjv1NmqDoAw="),
            br#"{"validation":"B/ctyEELqG7Rwo3FL/kGaLkkCMatjzJzcjv1NmqDoAw="}"#.to_vec()
        );
        assert_eq!(validation("a\"b"), br#"{"validation":"a\"b"}"#.to_vec());
    }

    #[test]
    fn garbage_never_panics_and_stays_json() {
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        for len in (0..6000usize).step_by(7) {
            let mut raw = Vec::with_capacity(len);
            for _ in 0..len {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                let b = match seed % 10 {
                    0 => b'\n',
                    1 => b'\r',
                    2 => b':',
                    3 => b' ',
                    4 => b"=?<>()\"\\;@"[(seed >> 8) as usize % 10],
                    5 => b"FromSubjectDate"[(seed >> 8) as usize % 15],
                    _ => (seed >> 16) as u8,
                };
                raw.push(b);
            }
            let out = build(&raw, &TARGET).unwrap();
            assert!(out.len() <= MAX_PLAINTEXT);
            let _: Value = serde_json::from_slice(&out).unwrap();
            let _ = from_email(&raw);
        }
        for field in ["From", "Subject", "Date", "Content-Type", "Message-ID"] {
            for value in ["", "=?", "=?utf-8?", "=?utf-8?b?", "=?x?q?=ZZ?=", "<", "\"", "(", "\\", ";;;", ":"] {
                let raw = format!("{field}: {value}\r\n\r\nbody");
                let _: Value = serde_json::from_slice(&build(raw.as_bytes(), &TARGET).unwrap()).unwrap();
            }
        }
    }

    #[test]
    fn helpers() {
        assert_eq!(limited(""), "");
        assert_eq!(escaped_len("a\"\\\n\u{1}é"), 1 + 2 + 2 + 2 + 6 + 2);
        for s in ["\u{0}\u{7f}\u{8}\u{c}\u{1f} x", "\"\\/", "日本語"] {
            assert_eq!(escaped_len(s) + 2, json_string(s).len(), "{s:?}");
        }
        assert_eq!(strip_comments("text/plain (a (nested) \\) c) ; x=\"(kept)\""), "text/plain  ; x=\"(kept)\"");
        assert_eq!(split_params("a; b=\"x;y\"; c"), vec!["a", " b=\"x;y\"", " c"]);
    }
}
