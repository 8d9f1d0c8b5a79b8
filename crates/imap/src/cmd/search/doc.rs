//! A message's content as SEARCH, SORT and THREAD see it: header fields with
//! RFC 2047 encoded-words decoded, and body text with transfer encodings
//! and charsets decoded (RFC 3501 §6.4.4; RFC 9051 §6.4.4).
//!
//! The decoding is `crate::mime`'s, the same MIME view FETCH answers
//! BODYSTRUCTURE and BODY[section] from; this file adds the lazy,
//! case-folded views search needs.
//!
//! A [`Doc`] computes each view (fields, header text, body text, sent day)
//! once, on first use, so a query with several keys parses a message once,
//! and a query on headers alone never decodes a body.

use super::fold::fold_into;
use super::keys::Day;
use crate::mime::ParsedMessage;
use std::cell::OnceCell;

/// The fields FROM, TO, CC and BCC search, as `Key::Address` names them.
const ADDRESS_FIELDS: [&str; 4] = ["from", "to", "cc", "bcc"];

/// One header field: lower-case name, decoded and case-folded value.
struct Field {
    name: String,
    value: String,
}

pub(crate) struct Doc<'a> {
    raw: &'a [u8],
    /// The header alone, for header keys: no body structure is parsed.
    header: OnceCell<ParsedMessage<'a>>,
    /// The whole message, for body keys.
    parsed: OnceCell<ParsedMessage<'a>>,
    fields: OnceCell<Vec<Field>>,
    /// From, To, Cc and Bcc as address lists, folded (for FROM, TO, CC, BCC).
    addresses: OnceCell<Vec<Field>>,
    /// Every field as `name: value\n`, folded (for TEXT).
    header_text: OnceCell<String>,
    body: OnceCell<String>,
    sent: OnceCell<Option<Day>>,
}

impl<'a> Doc<'a> {
    pub(crate) fn new(raw: &'a [u8]) -> Self {
        Doc {
            raw,
            header: OnceCell::new(),
            parsed: OnceCell::new(),
            fields: OnceCell::new(),
            addresses: OnceCell::new(),
            header_text: OnceCell::new(),
            body: OnceCell::new(),
            sent: OnceCell::new(),
        }
    }

    fn header(&self) -> &ParsedMessage<'a> {
        self.header.get_or_init(|| ParsedMessage::parse(header_of(self.raw)))
    }

    fn parsed(&self) -> &ParsedMessage<'a> {
        self.parsed.get_or_init(|| ParsedMessage::parse(self.raw))
    }

    fn fields(&self) -> &[Field] {
        self.fields.get_or_init(|| {
            let mut fields = self.header().headers();
            fields.retain(|(name, _)| !name.is_empty());
            fields
                .into_iter()
                .map(|(name, value)| {
                    let mut folded = String::new();
                    fold_into(&value, &mut folded);
                    Field { name: name.to_ascii_lowercase(), value: folded }
                })
                .collect()
        })
    }

    /// RFC 3501 §6.4.4 HEADER: a field named `name` whose value contains
    /// `needle`; an empty needle matches any such field.
    pub(crate) fn header_contains(&self, name: &str, needle: &str) -> bool {
        self.fields().iter().any(|f| f.name == name && f.value.contains(needle))
    }

    /// RFC 3501 §6.4.4 FROM, TO, CC, BCC: "the envelope structure's" field
    /// contains `needle`. The parsed addresses are matched
    /// (`ParsedMessage::address_lists`), not the field's text: a comment or
    /// a fold may sit inside an address (`<a (x)@ (y) b.org>`), and the
    /// address is still `a@b.org`.
    pub(crate) fn address_contains(&self, name: &str, needle: &str) -> bool {
        let lists = self.addresses.get_or_init(|| {
            let mut lists = Vec::new();
            for name in ADDRESS_FIELDS {
                for value in self.header().address_lists(name) {
                    let mut folded = String::new();
                    fold_into(&value, &mut folded);
                    lists.push(Field { name: name.to_owned(), value: folded });
                }
            }
            lists
        });
        lists.iter().any(|f| f.name == name && f.value.contains(needle))
    }

    pub(crate) fn header_text_contains(&self, needle: &str) -> bool {
        let text = self.header_text.get_or_init(|| {
            let mut t = String::new();
            for f in self.fields() {
                t.push_str(&f.name);
                t.push_str(": ");
                t.push_str(&f.value);
                t.push('\n');
            }
            t
        });
        text.contains(needle)
    }

    pub(crate) fn body_contains(&self, needle: &str) -> bool {
        self.body
            .get_or_init(|| {
                let mut folded = String::new();
                // Every text part (nested messages' too), HTML as text.
                for part in self.parsed().text_parts() {
                    fold_into(&part.plain(), &mut folded);
                    folded.push('\n');
                }
                folded
            })
            .contains(needle)
    }

    /// The day of the Date header as written (time and zone disregarded,
    /// RFC 3501 §6.4.4); `None` without a parsable Date.
    pub(crate) fn sent_day(&self) -> Option<Day> {
        *self.sent.get_or_init(|| {
            let d = self.header().date()?;
            Some(Day { year: i32::from(d.year), month: d.month, day: d.day })
        })
    }
}

/// `raw` up to and including the blank line that ends the header.
pub(crate) fn header_of(raw: &[u8]) -> &[u8] {
    let mut pos = 0;
    while let Some(rest) = raw.get(pos..).filter(|r| !r.is_empty()) {
        let end = rest.iter().position(|&b| b == b'\n').map_or(raw.len(), |p| pos + p + 1);
        if matches!(raw.get(pos..end), Some(b"\r\n" | b"\n")) {
            return raw.get(..end).unwrap_or(raw);
        }
        pos = end;
    }
    raw
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_unfold_and_decode() {
        let raw = b"Subject: =?UTF-8?Q?Gr=C3=BC=C3=9Fe?=\r\n aus Berlin\r\nX-Empty:\r\nFrom: A <a@x>\r\n\r\nbody";
        let doc = Doc::new(raw);
        assert!(doc.header_contains("subject", "grüße aus berlin"));
        assert!(doc.header_contains("x-empty", ""));
        assert!(!doc.header_contains("x-missing", ""));
        assert!(doc.header_text_contains("from: a <a@x>"));
        assert!(doc.body_contains("body") && !doc.body_contains("subject"));
    }

    #[test]
    fn header_ends_at_the_blank_line() {
        assert_eq!(header_of(b"A: 1\r\nB: 2\r\n\r\nbody\r\n\r\nmore"), b"A: 1\r\nB: 2\r\n\r\n");
        assert_eq!(header_of(b"A: 1\n\nbody"), b"A: 1\n\n");
        assert_eq!(header_of(b"A: 1\r\n"), b"A: 1\r\n");
        assert_eq!(header_of(b"\r\nbody"), b"\r\n");
        assert_eq!(header_of(b""), b"");
    }

    #[test]
    fn bodies_decode_transfer_encodings_and_charsets() {
        let has = |raw: &[u8], needle: &str| Doc::new(raw).body_contains(needle);
        let qp = b"Content-Type: text/plain; charset=iso-8859-1\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\nK=E4se=\r\nbrot\r\n";
        assert!(has(qp, "k\u{e4}sebrot"));
        let b64 =
            b"Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n\r\nSGVsbG8gV8O2cmxk\r\n";
        assert!(has(b64, "hello w\u{f6}rld"));
        let html = b"Content-Type: text/html\r\n\r\n<p>Hello <b>bold</b> world</p>";
        assert!(has(html, "bold") && !has(html, "<b>"));
        let date = b"Date: Thu, 15 Feb 2024 23:30:00 -0500\r\n\r\n";
        assert_eq!(Doc::new(date).sent_day(), Some(Day { year: 2024, month: 2, day: 15 }));
        assert_eq!(Doc::new(b"Date: never\r\n\r\n").sent_day(), None);
    }
}
