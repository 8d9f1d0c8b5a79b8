//! Our response encoder: the small set of IMAP value forms every response
//! is built from, written straight into the session's output buffer.

use crate::mutf7;
use coimail_store::Flags;

/// Longest string we send quoted; longer ones go as literals so a client's
/// line-length limit is never hit by a value.
const MAX_QUOTED: usize = 1000;

/// A `string`: quoted when every byte may appear in a quoted string,
/// otherwise a literal. With `utf8` (UTF8=ACCEPT or IMAP4rev2 enabled),
/// 8-bit UTF-8 may be quoted too (RFC 9051 `quoted` allows UTF8-2..4).
pub(crate) fn string(out: &mut Vec<u8>, value: &[u8], utf8: bool) {
    let quotable = value.len() <= MAX_QUOTED
        && value.iter().all(|&b| (0x20..=0x7e).contains(&b) || (utf8 && b >= 0x80))
        && (!utf8 || std::str::from_utf8(value).is_ok());
    if quotable {
        out.push(b'"');
        for &b in value {
            if b == b'"' || b == b'\\' {
                out.push(b'\\');
            }
            out.push(b);
        }
        out.push(b'"');
    } else {
        literal(out, value);
    }
}

/// A literal `{n}\r\n` followed by the bytes.
pub(crate) fn literal(out: &mut Vec<u8>, value: &[u8]) {
    out.push(b'{');
    out.extend_from_slice(value.len().to_string().as_bytes());
    out.extend_from_slice(b"}\r\n");
    out.extend_from_slice(value);
}

/// An `astring`: an atom when the value is a plain atom, otherwise a string.
pub(crate) fn astring(out: &mut Vec<u8>, value: &[u8], utf8: bool) {
    let atom = !value.is_empty()
        && value.len() <= MAX_QUOTED
        && value.iter().all(|&b| (0x21..=0x7e).contains(&b) && !b"(){%*\"\\]".contains(&b));
    if atom {
        out.extend_from_slice(value);
    } else {
        string(out, value, utf8);
    }
}

/// A mailbox name as the client expects it: UTF-8 when it enabled
/// UTF8=ACCEPT or IMAP4rev2, modified UTF-7 otherwise (RFC 3501 §5.1.3).
/// Always quoted (or a literal), which every client accepts.
pub(crate) fn mailbox(out: &mut Vec<u8>, name: &str, utf8: bool) {
    if utf8 {
        string(out, name.as_bytes(), true);
    } else {
        string(out, mutf7::encode(name).as_bytes(), false);
    }
}

/// A parenthesised flag list, e.g. `(\Seen $Chat)`.
pub(crate) fn flag_list(out: &mut Vec<u8>, flags: &Flags) {
    out.push(b'(');
    for (i, f) in flags.iter().enumerate() {
        if i > 0 {
            out.push(b' ');
        }
        out.extend_from_slice(f.as_bytes());
    }
    out.push(b')');
}

const MONTHS: [&str; 12] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];

/// `date-time` (RFC 3501 §9): `"dd-Mon-yyyy hh:mm:ss +0000"`, in UTC.
pub(crate) fn date_time(out: &mut Vec<u8>, unix_secs: i64) {
    // date-year is 4 digits: clamp what cannot be written.
    let t = mail_parser::DateTime::from_timestamp(unix_secs.clamp(-62_135_596_800, 253_402_300_799));
    let month = MONTHS.get(usize::from(t.month).wrapping_sub(1)).copied().unwrap_or("Jan");
    let s = format!("\"{:>2}-{month}-{:04} {:02}:{:02}:{:02} +0000\"", t.day, t.year, t.hour, t.minute, t.second);
    out.extend_from_slice(s.as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(f: impl FnOnce(&mut Vec<u8>)) -> String {
        let mut out = Vec::new();
        f(&mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn strings_quote_or_literal() {
        assert_eq!(s(|o| string(o, b"a \"b\" \\c", false)), r#""a \"b\" \\c""#);
        assert_eq!(s(|o| string(o, b"two\r\nlines", false)), "{10}\r\ntwo\r\nlines");
        assert_eq!(s(|o| string(o, "caf\u{e9}".as_bytes(), false)), "{5}\r\ncaf\u{e9}");
        assert_eq!(s(|o| string(o, "caf\u{e9}".as_bytes(), true)), "\"caf\u{e9}\"");
        assert_eq!(s(|o| string(o, b"", false)), "\"\"");
        assert_eq!(s(|o| astring(o, b"FROM", false)), "FROM");
        assert_eq!(s(|o| astring(o, b"X Y", false)), "\"X Y\"");
    }

    #[test]
    fn mailbox_names_follow_the_enabled_encoding() {
        assert_eq!(s(|o| mailbox(o, "Entw\u{fc}rfe", false)), "\"Entw&APw-rfe\"");
        assert_eq!(s(|o| mailbox(o, "Entw\u{fc}rfe", true)), "\"Entw\u{fc}rfe\"");
    }

    #[test]
    fn date_time_format() {
        assert_eq!(s(|o| date_time(o, 0)), "\" 1-Jan-1970 00:00:00 +0000\"");
        assert_eq!(s(|o| date_time(o, 1_700_000_000)), "\"14-Nov-2023 22:13:20 +0000\"");
        assert_eq!(s(|o| date_time(o, 951_782_400)), "\"29-Feb-2000 00:00:00 +0000\"");
        assert_eq!(s(|o| date_time(o, -1)), "\"31-Dec-1969 23:59:59 +0000\"");
        assert_eq!(s(|o| date_time(o, i64::MAX)), "\"31-Dec-9999 23:59:59 +0000\"");
    }

    #[test]
    fn flags() {
        let f: Flags = ["\\Seen", "$Chat"].into_iter().collect();
        assert_eq!(s(|o| flag_list(o, &f)), "($Chat \\Seen)");
        assert_eq!(s(|o| flag_list(o, &Flags::new())), "()");
    }
}
