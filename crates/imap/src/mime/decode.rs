//! Decoding for BINARY and for engineer-facing text: Content-Transfer-
//! Encoding (RFC 2045 §6), charsets to UTF-8 and RFC 2047 encoded-words
//! (the last two through mail-parser's decoders).
//!
//! The transfer decoders are lenient (RFC 2045 §6.7 note 5, §6.8): bytes
//! outside the base64 alphabet are skipped, a QP `=` not starting an
//! escape or soft line break is kept as is.

use mail_parser::decoders::charsets::map::charset_decoder;
use mail_parser::parsers::MessageStream;
use std::borrow::Cow;

/// A Content-Transfer-Encoding we cannot undo (RFC 3516 §4.3 UNKNOWN-CTE).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct UnknownCte;

/// Undoes `encoding` (upper case, as in `PartInfo`; `None` is 7BIT).
pub(crate) fn transfer<'a>(data: &'a [u8], encoding: Option<&[u8]>) -> Result<Cow<'a, [u8]>, UnknownCte> {
    match encoding.unwrap_or(b"7BIT") {
        b"7BIT" | b"8BIT" | b"BINARY" => Ok(Cow::Borrowed(data)),
        b"BASE64" => Ok(Cow::Owned(base64(data))),
        b"QUOTED-PRINTABLE" => Ok(Cow::Owned(quoted_printable(data))),
        _ => Err(UnknownCte),
    }
}

/// Whether [`transfer`] can undo `encoding`.
pub(crate) fn check(encoding: Option<&[u8]>) -> Result<(), UnknownCte> {
    transfer(&[], encoding).map(|_| ())
}

fn base64_value(b: u8) -> Option<u32> {
    let v = match b {
        b'A'..=b'Z' => b - b'A',
        b'a'..=b'z' => b - b'a' + 26,
        b'0'..=b'9' => b - b'0' + 52,
        b'+' => 62,
        b'/' => 63,
        _ => return None,
    };
    Some(u32::from(v))
}

pub(crate) fn base64(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() / 4 * 3);
    let (mut acc, mut n) = (0u32, 0u32);
    for &b in data {
        if b == b'=' {
            break;
        }
        let Some(v) = base64_value(b) else { continue };
        acc = (acc << 6) | v;
        n += 1;
        if n == 4 {
            out.extend_from_slice(&acc.to_be_bytes()[1..]);
            (acc, n) = (0, 0);
        }
    }
    // 2 or 3 leftover characters carry 1 or 2 bytes.
    match n {
        2 => out.push((acc >> 4) as u8),
        3 => out.extend_from_slice(&((acc >> 2) as u16).to_be_bytes()),
        _ => {}
    }
    out
}

fn hex(b: u8) -> Option<u8> {
    (b as char).to_digit(16).map(|d| d as u8)
}

pub(crate) fn quoted_printable(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len());
    let mut i = 0;
    while let Some(&b) = data.get(i) {
        match b {
            b'=' => {
                if let (Some(h), Some(l)) =
                    (data.get(i + 1).and_then(|&c| hex(c)), data.get(i + 2).and_then(|&c| hex(c)))
                {
                    out.push(h << 4 | l);
                    i += 3;
                    continue;
                }
                // A soft line break: `=`, optional trailing whitespace, line end.
                let mut j = i + 1;
                while matches!(data.get(j), Some(b' ' | b'\t')) {
                    j += 1;
                }
                match (data.get(j), data.get(j + 1)) {
                    (Some(b'\r'), Some(b'\n')) => i = j + 2,
                    (Some(b'\n'), _) => i = j + 1,
                    (None, _) => i = j,
                    _ => {
                        out.push(b'=');
                        i += 1;
                    }
                }
            }
            b'\r' | b'\n' => {
                // RFC 2045 §6.7 rule 3: trailing whitespace was added in transport.
                while matches!(out.last(), Some(b' ' | b'\t')) {
                    out.pop();
                }
                out.push(b);
                i += 1;
            }
            _ => {
                out.push(b);
                i += 1;
            }
        }
    }
    out
}

/// Bytes in `charset` as UTF-8. Unknown charsets and invalid bytes are
/// decoded as UTF-8 with replacement characters.
pub(crate) fn to_utf8(data: &[u8], charset: Option<&[u8]>) -> String {
    let utf8_ish = charset.is_none_or(|c| {
        c.eq_ignore_ascii_case(b"utf-8") || c.eq_ignore_ascii_case(b"us-ascii") || c.eq_ignore_ascii_case(b"utf8")
    });
    if utf8_ish && let Ok(s) = std::str::from_utf8(data) {
        return s.to_owned();
    }
    match charset.and_then(charset_decoder) {
        Some(decode) => decode(data),
        None => String::from_utf8_lossy(data).into_owned(),
    }
}

/// An unfolded header value with its RFC 2047 encoded-words decoded.
pub(crate) fn header_text(value: &[u8]) -> String {
    if !value.windows(2).any(|w| w == b"=?") {
        return to_utf8(value, None);
    }
    let mut line = Vec::with_capacity(value.len() + 1);
    line.extend_from_slice(value);
    line.push(b'\n');
    match MessageStream::new(&line).parse_unstructured() {
        mail_parser::HeaderValue::Text(t) => t.into_owned(),
        _ => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_is_lenient() {
        assert_eq!(base64(b"SGVsbG8sIHdvcmxkIQ=="), b"Hello, world!");
        assert_eq!(base64(b"SGVs\r\nbG8\r\n"), b"Hello");
        assert_eq!(base64(b"SG Vs*bA"), b"Hel\x6c");
        assert_eq!(base64(b""), b"");
        assert_eq!(base64(b"AA=="), b"\0");
    }

    #[test]
    fn quoted_printable_is_lenient() {
        assert_eq!(quoted_printable(b"caf=C3=A9 =\r\nau lait  \r\nx"), "caf\u{e9} au lait\r\nx".as_bytes());
        assert_eq!(quoted_printable(b"a=3d=3D = b=\n"), b"a== = b");
        assert_eq!(quoted_printable(b"soft= \t\r\nbreak=zz="), b"softbreak=zz");
    }

    #[test]
    fn transfer_encodings() {
        assert_eq!(transfer(b"x", None).unwrap().as_ref(), b"x");
        assert_eq!(transfer(b"eA==", Some(b"BASE64")).unwrap().as_ref(), b"x");
        assert_eq!(transfer(b"x", Some(b"X-UUENCODE")), Err(UnknownCte));
    }

    #[test]
    fn text_decoding() {
        assert_eq!(to_utf8(b"caf\xe9", Some(b"ISO-8859-1")), "caf\u{e9}");
        assert_eq!(to_utf8("caf\u{e9}".as_bytes(), None), "caf\u{e9}");
        assert_eq!(to_utf8(b"caf\xe9", Some(b"x-unknown")), "caf\u{fffd}");
        assert_eq!(header_text(b"=?utf-8?q?caf=C3=A9?= =?ISO-8859-1?B?6XTp?= ok"), "caf\u{e9}\u{e9}t\u{e9} ok");
        assert_eq!(header_text(b"plain"), "plain");
    }
}
