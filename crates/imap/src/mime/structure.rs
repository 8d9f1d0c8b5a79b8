//! The MIME structure of a message (RFC 2045, RFC 2046): a tree of parts,
//! each with the byte ranges of its header and body in the raw message,
//! its parsed Content-* fields, and (for message/rfc822) the encapsulated
//! message. Only offsets and small field values are kept, so a structure
//! is cheap to cache (see `cache`) and works with the raw bytes it came from.
//!
//! Our own splitter rather than mail-parser 0.11.9's MIME tree: that one
//! lets a nested multipart whose close-delimiter is missing swallow the
//! outer boundary, silently dropping the parts after it (fixed in 1.0,
//! which needs a newer rustc). Here a part always ends at its parent's
//! next delimiter, because every multipart is split inside its parent's
//! part range.
//!
//! Malformed input (RFC 2049 §2 asks for robustness) is accepted:
//! - no or invalid Content-Type: text/plain; charset=us-ascii (RFC 2045 §5.2)
//!   (message/rfc822 inside multipart/digest, RFC 2046 §5.1.5);
//! - multipart without a boundary parameter: a text/plain leaf;
//! - a missing close-delimiter: the last part runs to the parent's end;
//! - no delimiter at all: one part holding the whole body;
//! - nesting deeper than [`MAX_DEPTH`] or more than [`MAX_PARTS`] parts:
//!   the rest is an application/octet-stream leaf.

use super::bodystructure::{self, Form};
use super::envelope::Envelope;
use super::header;
use super::params::{self, Params};
use std::ops::Range;
use std::sync::OnceLock;

/// Multipart and message/rfc822 nesting kept as structure.
pub(crate) const MAX_DEPTH: u32 = 50;
/// Parts per message kept as structure.
pub(crate) const MAX_PARTS: u32 = 10_000;

/// A message: the top level, or the content of a message/rfc822 part.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Message {
    pub envelope: Envelope,
    /// The message as a part: its header is the RFC 5322 header, its body
    /// the message body; its type comes from the message's Content-Type.
    pub root: Part,
    /// The ENVELOPE as written, 7-bit ([0]) and UTF-8 ([1]) sessions:
    /// filled on first use, so a warm `FETCH 1:* ENVELOPE` only copies bytes.
    envelope_wire: [OnceLock<Box<[u8]>>; 2],
    /// BODY / BODYSTRUCTURE of the root as written, one per [`Form`].
    structure_wire: [OnceLock<Box<[u8]>>; 8],
}

impl Message {
    /// The structure of a 0-byte message.
    pub(crate) fn empty() -> Message {
        parse(b"")
    }

    /// Writes the ENVELOPE (see [`Envelope::write`]).
    pub(crate) fn write_envelope(&self, out: &mut Vec<u8>, utf8: bool) {
        let wire = self.envelope_wire[usize::from(utf8)].get_or_init(|| {
            let mut v = Vec::new();
            self.envelope.write(&mut v, utf8);
            v.into_boxed_slice()
        });
        out.extend_from_slice(wire);
    }

    /// Writes BODY or BODYSTRUCTURE of the whole message (see [`bodystructure::write`]).
    pub(crate) fn write_structure(&self, out: &mut Vec<u8>, form: Form) {
        let index = usize::from(form.extended) | usize::from(form.utf8) << 1 | usize::from(form.rev2) << 2;
        let Some(cell) = self.structure_wire.get(index) else {
            return bodystructure::write(out, &self.root, form);
        };
        let wire = cell.get_or_init(|| {
            let mut v = Vec::new();
            bodystructure::write(&mut v, &self.root, form);
            v.into_boxed_slice()
        });
        out.extend_from_slice(wire);
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Part {
    /// The part's header, with the blank line ending it (if any).
    pub header: Range<usize>,
    /// The body in its transfer encoding (RFC 3501 body-fld-octets is its length).
    pub body: Range<usize>,
    pub info: PartInfo,
    /// Lines in the body (RFC 3501 body-fld-lines).
    pub lines: u32,
    pub kind: Kind,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Kind {
    Leaf,
    Multipart(Vec<Part>),
    Message(Box<Message>),
}

/// The Content-* fields of one part, raw (unfolded) where IMAP sends them raw.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct PartInfo {
    /// Media type and subtype, upper case (`TEXT`, `PLAIN`).
    pub kind: Vec<u8>,
    pub subtype: Vec<u8>,
    pub params: Params,
    pub id: Option<Vec<u8>>,
    pub description: Option<Vec<u8>>,
    /// Content-Transfer-Encoding, upper case; `None` means 7BIT.
    pub encoding: Option<Vec<u8>>,
    pub md5: Option<Vec<u8>>,
    pub disposition: Option<(Vec<u8>, Params)>,
    pub language: Option<Vec<Vec<u8>>>,
    pub location: Option<Vec<u8>>,
}

impl PartInfo {
    pub(crate) fn is(&self, kind: &str, subtype: Option<&str>) -> bool {
        self.kind.eq_ignore_ascii_case(kind.as_bytes())
            && subtype.is_none_or(|s| self.subtype.eq_ignore_ascii_case(s.as_bytes()))
    }

    fn set_type(&mut self, kind: &str, subtype: &str, params: Params) {
        self.kind = kind.into();
        self.subtype = subtype.into();
        self.params = params;
    }

    /// Reads the Content-* fields of a header; the first of each counts.
    fn from_header(header: &[u8], digest_child: bool) -> PartInfo {
        let mut info = PartInfo::default();
        let mut content_type = None;
        for f in header::fields(header) {
            let slot = match f.name.to_ascii_lowercase().as_slice() {
                b"content-type" if content_type.is_none() => {
                    content_type = Some(params::content_type(f.value));
                    continue;
                }
                b"content-transfer-encoding" => &mut info.encoding,
                b"content-id" => &mut info.id,
                b"content-description" => &mut info.description,
                b"content-md5" => &mut info.md5,
                b"content-location" => &mut info.location,
                b"content-disposition" if info.disposition.is_none() => {
                    info.disposition = params::disposition(f.value).map(|(k, p)| (k.to_ascii_uppercase(), p));
                    continue;
                }
                b"content-language" if info.language.is_none() => {
                    info.language = Some(params::languages(f.value)).filter(|l| !l.is_empty());
                    continue;
                }
                _ => continue,
            };
            if slot.is_none() {
                *slot = Some(header::unfold(f.value));
            }
        }
        info.encoding = info.encoding.map(|e| e.to_ascii_uppercase()).filter(|e| !e.is_empty());
        match content_type.flatten() {
            Some((kind, subtype, params)) => {
                info.kind = kind.to_ascii_uppercase();
                info.subtype = subtype.to_ascii_uppercase();
                info.params = params;
            }
            None if digest_child => info.set_type("MESSAGE", "RFC822", Params::new()),
            None => info.set_type("TEXT", "PLAIN", Params::new()),
        }
        // RFC 2045 §5.2 / RFC 2046 §4.1.2: text defaults to us-ascii.
        if info.is("TEXT", None) && params::param(&info.params, "charset").is_none() {
            info.params.push((b"CHARSET".to_vec(), b"US-ASCII".to_vec()));
        }
        info
    }
}

/// Parses the structure of a whole message.
pub(crate) fn parse(raw: &[u8]) -> Message {
    let mut budget = MAX_PARTS;
    parse_message(raw, 0..raw.len(), 0, &mut budget)
}

fn parse_message(raw: &[u8], range: Range<usize>, depth: u32, budget: &mut u32) -> Message {
    let root = parse_part(raw, range, false, depth, budget);
    let envelope = Envelope::from_header(raw.get(root.header.clone()).unwrap_or_default());
    Message { envelope, root, envelope_wire: Default::default(), structure_wire: Default::default() }
}

fn parse_part(raw: &[u8], range: Range<usize>, digest_child: bool, depth: u32, budget: &mut u32) -> Part {
    *budget = budget.saturating_sub(1);
    let body_start = header::split(raw, range.clone());
    let header = range.start..body_start;
    let body = body_start..range.end.max(body_start);
    let mut info = PartInfo::from_header(raw.get(header.clone()).unwrap_or_default(), digest_child);
    let lines = count_lines(raw.get(body.clone()).unwrap_or_default());
    let deep = depth >= MAX_DEPTH || *budget == 0;
    let kind = if info.is("MULTIPART", None) {
        let boundary = params::param(&info.params, "boundary").filter(|b| !b.is_empty()).map(<[u8]>::to_vec);
        match boundary {
            None => {
                info.set_type("TEXT", "PLAIN", vec![(b"CHARSET".to_vec(), b"US-ASCII".to_vec())]);
                Kind::Leaf
            }
            Some(_) if deep => {
                info.set_type("APPLICATION", "OCTET-STREAM", Params::new());
                Kind::Leaf
            }
            Some(b) => {
                let digest = info.is("MULTIPART", Some("DIGEST"));
                let ranges = split_multipart(raw, body.clone(), &b);
                let mut parts = Vec::with_capacity(ranges.len());
                for r in ranges {
                    if *budget == 0 {
                        break;
                    }
                    parts.push(parse_part(raw, r, digest, depth + 1, budget));
                }
                Kind::Multipart(parts)
            }
        }
    } else if info.is("MESSAGE", Some("RFC822")) || info.is("MESSAGE", Some("GLOBAL")) {
        if deep {
            info.set_type("APPLICATION", "OCTET-STREAM", Params::new());
            Kind::Leaf
        } else {
            Kind::Message(Box::new(parse_message(raw, body.clone(), depth + 1, budget)))
        }
    } else {
        Kind::Leaf
    };
    Part { header, body, info, lines, kind }
}

/// The ranges (header and body) of the parts of a multipart body
/// (RFC 2046 §5.1.1). Never empty: with no delimiter line, the content
/// before the first one (or all of it) is the one part.
fn split_multipart(raw: &[u8], body: Range<usize>, boundary: &[u8]) -> Vec<Range<usize>> {
    let mut parts = Vec::new();
    let mut current: Option<usize> = None;
    let mut first_delimiter = None;
    let mut pos = body.start;
    while pos < body.end {
        let end = header::line_end(raw, pos, body.end);
        if let Some(close) = delimiter(raw.get(pos..end).unwrap_or_default(), boundary) {
            first_delimiter.get_or_insert(pos);
            if let Some(start) = current.take() {
                parts.push(start..before_line_end(raw, start, pos));
            }
            if close {
                break;
            }
            current = Some(end);
        }
        pos = end;
    }
    if let Some(start) = current {
        parts.push(start..body.end);
    }
    if parts.is_empty() {
        let end = first_delimiter.map_or(body.end, |d| before_line_end(raw, body.start, d));
        // Parsed like any part: content that starts like a header (the
        // boundary was mistyped, say) keeps its Content-Type.
        parts.push(body.start..end);
    }
    parts
}

/// Whether a line is a delimiter of `boundary`: `Some(true)` for the
/// close-delimiter. Transport padding (whitespace) may follow; anything
/// else makes it an ordinary line.
fn delimiter(line: &[u8], boundary: &[u8]) -> Option<bool> {
    let rest = line.strip_prefix(b"--")?.strip_prefix(boundary)?;
    let (close, rest) = match rest.strip_prefix(b"--") {
        Some(r) => (true, r),
        None => (false, rest),
    };
    rest.iter().all(|b| matches!(b, b' ' | b'\t' | b'\r' | b'\n')).then_some(close)
}

/// RFC 2046 §5.1.1: the line end before a delimiter belongs to the delimiter.
fn before_line_end(raw: &[u8], start: usize, delimiter: usize) -> usize {
    let mut end = delimiter;
    if end > start && raw.get(end - 1) == Some(&b'\n') {
        end -= 1;
        if end > start && raw.get(end - 1) == Some(&b'\r') {
            end -= 1;
        }
    }
    end
}

/// Lines of a body: its line ends, plus one for a last line without one.
pub(crate) fn count_lines(body: &[u8]) -> u32 {
    let ends = body.iter().filter(|&&b| b == b'\n').count();
    let partial = usize::from(body.last().is_some_and(|&b| b != b'\n'));
    u32::try_from(ends + partial).unwrap_or(u32::MAX)
}
