//! Body sections (RFC 3501 §6.4.5, RFC 9051 §6.4.5): part numbers to
//! parts, and the bytes of BODY[section] and BINARY[section] (RFC 3516).
//!
//! Part numbering: the parts of a multipart are numbered 1..n; a
//! non-multipart message has only part 1, which is its body (its MIME
//! header is the message header); the part numbers after a message/rfc822
//! (or message/global, RFC 9051 §6.4.5) part number address the parts of
//! the encapsulated message. HEADER, HEADER.FIELDS[.NOT] and TEXT after a
//! part number need such a part. A section that does not exist is `None` (sent as NIL, which is
//! what the nstring of RFC 3501 §7.4.2 allows).

use super::decode::{self, UnknownCte};
use super::header;
use super::structure::{Kind, Message, Part};
use std::borrow::Cow;
use std::ops::Range;

/// What follows the part numbers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Spec {
    /// No specifier: the whole message (no part numbers) or the part's body.
    Full,
    Header,
    Text,
    /// HEADER.FIELDS (`not` = false) or HEADER.FIELDS.NOT, names as requested.
    Fields {
        names: Vec<Vec<u8>>,
        not: bool,
    },
    Mime,
}

/// The part a (non-empty) list of part numbers names.
pub(crate) fn find<'m>(msg: &'m Message, path: &[u32]) -> Option<&'m Part> {
    let mut node = &msg.root;
    let mut at_message = true;
    for &n in path {
        node = step(node, n, at_message)?;
        at_message = false;
    }
    Some(node)
}

fn step(node: &Part, n: u32, at_message: bool) -> Option<&Part> {
    match &node.kind {
        Kind::Multipart(children) => children.get(usize::try_from(n).ok()?.checked_sub(1)?),
        Kind::Message(m) if !at_message => step(&m.root, n, true),
        _ if at_message && n == 1 => Some(node),
        _ => None,
    }
}

/// The bytes of `BODY[path.spec]`, or `None` when there is no such section.
pub(crate) fn body<'r>(raw: &'r [u8], msg: &Message, path: &[u32], spec: &Spec) -> Option<Cow<'r, [u8]>> {
    let slice = |r: &Range<usize>| raw.get(r.clone()).map(Cow::Borrowed);
    if path.is_empty() && *spec == Spec::Full {
        return Some(Cow::Borrowed(raw));
    }
    let message = if path.is_empty() {
        msg
    } else {
        let part = find(msg, path)?;
        match (spec, &part.kind) {
            (Spec::Full, _) => return slice(&part.body),
            (Spec::Mime, _) => return slice(&part.header),
            (_, Kind::Message(m)) => m,
            _ => return None,
        }
    };
    let root = &message.root;
    match spec {
        Spec::Header => slice(&root.header),
        Spec::Text => slice(&root.body),
        Spec::Fields { names, not } => {
            let h = raw.get(root.header.clone())?;
            Some(Cow::Owned(fields(h, names, *not, !root.body.is_empty())))
        }
        // MIME needs a part number; imap-codec never gives it without one.
        Spec::Full | Spec::Mime => None,
    }
}

/// HEADER.FIELDS[.NOT]: the matching fields, as sent, and the blank line
/// (RFC 3501 §6.4.5: included in all header fetches except for a message
/// that has no body and no blank line).
pub(crate) fn fields(header: &[u8], names: &[Vec<u8>], not: bool, has_body: bool) -> Vec<u8> {
    let mut out = Vec::new();
    for f in header::fields(header) {
        let listed = names.iter().any(|n| n.eq_ignore_ascii_case(f.name));
        if listed != not {
            out.extend_from_slice(f.raw);
            if !f.raw.ends_with(b"\n") {
                out.extend_from_slice(b"\r\n");
            }
        }
    }
    let blank = header.ends_with(b"\n\n") || header.ends_with(b"\n\r\n") || header == b"\r\n" || header == b"\n";
    if blank || has_body {
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// The content of `BINARY[path]` with its transfer encoding undone;
/// `Ok(None)` when there is no such part. No part numbers: the whole
/// message, which has no transfer encoding of its own.
pub(crate) fn binary<'r>(raw: &'r [u8], msg: &Message, path: &[u32]) -> Result<Option<Cow<'r, [u8]>>, UnknownCte> {
    if path.is_empty() {
        return Ok(Some(Cow::Borrowed(raw)));
    }
    let Some(part) = find(msg, path) else { return Ok(None) };
    let Some(data) = raw.get(part.body.clone()) else { return Ok(None) };
    decode::transfer(data, part.info.encoding.as_deref()).map(Some)
}

/// Whether `BINARY[path]` can be decoded (RFC 3516 §4.3), without the bytes.
pub(crate) fn check_binary(msg: &Message, path: &[u32]) -> Result<(), UnknownCte> {
    match find(msg, path) {
        Some(part) if !path.is_empty() => decode::check(part.info.encoding.as_deref()),
        _ => Ok(()),
    }
}
