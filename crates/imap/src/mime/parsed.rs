//! [`ParsedMessage`]: decoded header and text lookups over a message and
//! its structure, for SEARCH, SORT and THREAD (see the module doc of
//! `mime` for the API at a glance).

// The API is for cmd/search*, sort.rs and thread.rs, which are being
// written beside it; drop this once they call it.
#![allow(dead_code)]

use super::structure::{self, Kind, Message, Part};
use super::{address, decode, header, params};
use std::borrow::Cow;
use std::sync::Arc;

/// A message with its structure, for header and text lookups.
pub(crate) struct ParsedMessage<'a> {
    raw: &'a [u8],
    structure: Arc<Message>,
}

/// One address of an address-list header, decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Address {
    /// The display name with RFC 2047 encoded-words decoded.
    pub name: Option<String>,
    /// The local part without its quoting (RFC 5256 SORT FROM compares this one).
    pub mailbox: String,
    /// The domain; empty when the address has none.
    pub host: String,
}

/// The decoded text of one text/* part.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TextPart {
    /// Lower case media subtype: `plain`, `html`, ...
    pub subtype: String,
    pub text: String,
}

impl TextPart {
    /// The text, with HTML reduced to plain text.
    pub(crate) fn plain(&self) -> Cow<'_, str> {
        if self.subtype == "html" {
            Cow::Owned(mail_parser::decoders::html::html_to_text(&self.text))
        } else {
            Cow::Borrowed(&self.text)
        }
    }
}

impl<'a> ParsedMessage<'a> {
    pub(crate) fn parse(raw: &'a [u8]) -> Self {
        ParsedMessage { raw, structure: Arc::new(structure::parse(raw)) }
    }

    /// `structure` must have been parsed from `raw` (as [`Cache`] ensures).
    pub(crate) fn with_structure(raw: &'a [u8], structure: Arc<Message>) -> Self {
        ParsedMessage { raw, structure }
    }

    pub(crate) fn structure(&self) -> &Message {
        &self.structure
    }

    /// The top-level header as sent, with the blank line that ends it.
    pub(crate) fn raw_header(&self) -> &'a [u8] {
        self.raw.get(self.structure.root.header.clone()).unwrap_or_default()
    }

    /// The first field called `name` (case-insensitive), decoded.
    pub(crate) fn header(&self, name: &str) -> Option<String> {
        header::first(self.raw_header(), name).map(|f| decode::header_text(&header::unfold(f.value)))
    }

    /// Every field called `name`, in order, decoded.
    pub(crate) fn header_all(&self, name: &str) -> Vec<String> {
        header::fields(self.raw_header())
            .filter(|f| f.name.eq_ignore_ascii_case(name.as_bytes()))
            .map(|f| decode::header_text(&header::unfold(f.value)))
            .collect()
    }

    /// Every field as (name, decoded value), in order.
    pub(crate) fn headers(&self) -> Vec<(String, String)> {
        header::fields(self.raw_header())
            .map(|f| (String::from_utf8_lossy(f.name).into_owned(), decode::header_text(&header::unfold(f.value))))
            .collect()
    }

    /// The addresses of the first field called `name`; group members are
    /// listed, group names are not.
    pub(crate) fn addresses(&self, name: &str) -> Vec<Address> {
        let Some(f) = header::first(self.raw_header(), name) else { return Vec::new() };
        address::parse(&header::unfold(f.value))
            .into_iter()
            .filter_map(|a| match a {
                address::Addr::Mailbox(m) => Some(Address {
                    name: m.name.map(|n| decode::header_text(&n)),
                    mailbox: decode::to_utf8(&address::unquote_local(&m.mailbox), None),
                    host: decode::to_utf8(&m.host, None),
                }),
                _ => None,
            })
            .collect()
    }

    /// Every field called `name` as an address list the way SEARCH FROM,
    /// TO, CC and BCC match it (RFC 3501 §6.4.4: "the envelope structure's
    /// FROM field"): `Name <local@domain>` or `local@domain` per address,
    /// `group: ...;` around group members, joined by `, `. Names are
    /// decoded (RFC 2047), local parts unquoted, and comments and the
    /// whitespace between tokens are gone, so `<a (x)@ (y) b.org>` is
    /// `a@b.org`; the comment of a bare `a@b.org (Name)` is its name.
    pub(crate) fn address_lists(&self, name: &str) -> Vec<String> {
        header::fields(self.raw_header())
            .filter(|f| f.name.eq_ignore_ascii_case(name.as_bytes()))
            .map(|f| address_text(&address::parse(&header::unfold(f.value))))
            .collect()
    }

    /// The Date field, parsed (RFC 5322 §3.3, obsolete forms included).
    pub(crate) fn date(&self) -> Option<mail_parser::DateTime> {
        let f = header::first(self.raw_header(), "Date")?;
        mail_parser::DateTime::parse_rfc822(&String::from_utf8_lossy(&header::unfold(f.value)))
    }

    /// The msg-ids of the first field called `name` (Message-ID,
    /// In-Reply-To, References), without their angle brackets.
    pub(crate) fn message_ids(&self, name: &str) -> Vec<String> {
        let Some(f) = header::first(self.raw_header(), name) else { return Vec::new() };
        let value = String::from_utf8_lossy(&header::unfold(f.value)).into_owned();
        let bracketed: Vec<String> = value
            .split('<')
            .skip(1)
            .filter_map(|s| s.split_once('>').map(|(id, _)| id.trim().to_owned()))
            .filter(|id| !id.is_empty())
            .collect();
        if bracketed.is_empty() { value.split_whitespace().map(str::to_owned).collect() } else { bracketed }
    }

    /// Every text/* leaf, in order (encapsulated messages included), with
    /// its transfer encoding undone and its charset converted to UTF-8.
    /// A part with an unknown transfer encoding is taken as it is.
    pub(crate) fn text_parts(&self) -> Vec<TextPart> {
        let mut out = Vec::new();
        self.collect_text(&self.structure.root, &mut out);
        out
    }

    fn collect_text(&self, part: &Part, out: &mut Vec<TextPart>) {
        match &part.kind {
            Kind::Multipart(children) => children.iter().for_each(|c| self.collect_text(c, out)),
            Kind::Message(m) => self.collect_text(&m.root, out),
            Kind::Leaf if part.info.is("TEXT", None) => {
                let data = self.raw.get(part.body.clone()).unwrap_or_default();
                let decoded = decode::transfer(data, part.info.encoding.as_deref()).unwrap_or(Cow::Borrowed(data));
                let charset = params::param(&part.info.params, "charset");
                out.push(TextPart {
                    subtype: String::from_utf8_lossy(&part.info.subtype).to_ascii_lowercase(),
                    text: decode::to_utf8(&decoded, charset),
                });
            }
            Kind::Leaf => {}
        }
    }
}

/// One address list as text; see [`ParsedMessage::address_lists`].
fn address_text(list: &[address::Addr]) -> String {
    let mut out = String::new();
    let mut sep = "";
    for a in list {
        match a {
            address::Addr::GroupStart(name) => {
                out.push_str(sep);
                out.push_str(&decode::header_text(name));
                out.push(':');
                sep = " ";
            }
            address::Addr::GroupEnd => {
                out.push(';');
                sep = ", ";
            }
            address::Addr::Mailbox(m) => {
                out.push_str(sep);
                sep = ", ";
                let name = m.name.as_deref().map(decode::header_text);
                if let Some(name) = &name {
                    out.push_str(name);
                    out.push_str(" <");
                }
                out.push_str(&decode::to_utf8(&address::unquote_local(&m.mailbox), None));
                if !m.host.is_empty() {
                    out.push('@');
                    out.push_str(&decode::to_utf8(&m.host, None));
                }
                if name.is_some() {
                    out.push('>');
                }
            }
        }
    }
    out
}
