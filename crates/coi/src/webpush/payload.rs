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
use coimail_store::Uid;
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
/// The `date` range, in Unix seconds: 1970-01-01T00:00:00Z to 9999-12-31T23:59:59Z. RFC 3339
/// has four-digit years only, so a crafted Date header must not produce year 10000 or a negative
/// year; and a date before the epoch on a message delivered now is bogus anyway (no mail is that
/// old), while negative timestamps are where client date libraries disagree. Such a date is
/// omitted like an unparseable one.
const DATE_RANGE: std::ops::RangeInclusive<i64> = 0..=253_402_300_799;

/// Where the new message was stored.
#[derive(Debug, Clone, Copy)]
pub struct Target<'a> {
    pub folder: &'a str,
    pub uidvalidity: u32,
    pub uid: Uid,
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
    if let Some(unix) = h.date.and_then(parse_date).filter(|unix| DATE_RANGE.contains(unix)) {
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
mod tests;
