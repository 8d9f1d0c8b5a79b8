//! The FETCH response of one message (RFC 3501 §7.4.2, RFC 9051 §7.5.2,
//! RFC 3516 §4.2), written straight into the output buffer, items in the
//! order the client asked for them.

use super::{Item, Label, SectionItem};
use crate::encode;
use crate::mime::{self, Spec};
use crate::selected::SeqNum;
use coimail_store::MessageMeta;
use std::borrow::Cow;
use std::io::Write as _;

/// One message and what was loaded for it.
pub(super) struct Msg<'a> {
    pub seq: SeqNum,
    pub meta: &'a MessageMeta,
    pub raw: Option<&'a [u8]>,
    /// The parsed message when an item needs it (an empty one otherwise).
    pub structure: &'a mime::Message,
}

/// `* seq FETCH (...)`. With `flags_changed`, FLAGS is added when not
/// asked for (RFC 3501 §6.4.5: \Seen was just set).
/// How strings and structures are written for this session.
#[derive(Debug, Clone, Copy)]
pub(super) struct Wire {
    /// UTF8=ACCEPT or IMAP4rev2 enabled: UTF-8 strings may be quoted.
    pub utf8: bool,
    pub rev2: bool,
}

pub(super) fn message(out: &mut Vec<u8>, m: &Msg<'_>, items: &[Item], flags_changed: bool, wire: Wire) {
    {
        let _ = write!(out, "* {} FETCH (", m.seq);
    };
    for (n, item) in items.iter().enumerate() {
        if n > 0 {
            out.push(b' ');
        }
        self::item(out, m, item, wire);
    }
    if flags_changed && !items.contains(&Item::Flags) {
        out.extend_from_slice(b" FLAGS ");
        encode::flag_list(out, &m.meta.flags);
    }
    out.extend_from_slice(b")\r\n");
}

fn item(out: &mut Vec<u8>, m: &Msg<'_>, item: &Item, wire: Wire) {
    let (meta, structure) = (m.meta, m.structure);
    match item {
        Item::Uid => {
            let _ = write!(out, "UID {}", meta.uid);
        }
        Item::Flags => {
            out.extend_from_slice(b"FLAGS ");
            encode::flag_list(out, &meta.flags);
        }
        Item::Size => {
            let _ = write!(out, "RFC822.SIZE {}", meta.size);
        }
        Item::InternalDate => {
            out.extend_from_slice(b"INTERNALDATE ");
            encode::date_time(out, meta.internal_date);
        }
        // RFC 7162 §3.1.4.1
        Item::ModSeq => {
            let _ = write!(out, "MODSEQ ({})", meta.modseq);
        }
        Item::Envelope => {
            out.extend_from_slice(b"ENVELOPE ");
            structure.write_envelope(out, wire.utf8);
        }
        Item::Structure(extended) => {
            out.extend_from_slice(if *extended { b"BODYSTRUCTURE " } else { b"BODY " });
            let form = mime::Form { extended: *extended, utf8: wire.utf8, rev2: wire.rev2 };
            structure.write_structure(out, form);
        }
        Item::BinarySize(path) => {
            let raw = m.raw.unwrap_or_default();
            // A part that does not exist has no content: size 0.
            let size = mime::binary(raw, structure, path).ok().flatten().map_or(0, |d| d.len());
            out.extend_from_slice(b"BINARY.SIZE[");
            part_numbers(out, path);
            {
                let _ = write!(out, "] {size}");
            };
        }
        Item::Section(s) => section(out, m, structure, s),
    }
}

fn section(out: &mut Vec<u8>, m: &Msg<'_>, structure: &mime::Message, s: &SectionItem) {
    let raw = m.raw.unwrap_or_default();
    label(out, s);
    out.push(b' ');
    let data: Option<Cow<'_, [u8]>> = match s.label {
        Label::Binary => mime::binary(raw, structure, &s.path).ok().flatten(),
        _ => mime::body_section(raw, structure, &s.path, &s.spec),
    };
    let Some(data) = data else {
        // A section that does not exist (RFC 3501 §7.4.2 nstring).
        return out.extend_from_slice(b"NIL");
    };
    let data = partial(&data, s.partial);
    if s.label == Label::Binary && data.contains(&0) {
        // RFC 3516 §4.2: binary content with NUL goes as literal8.
        out.push(b'~');
    }
    encode::literal(out, data);
}

/// The item name as the response spells it: `BODY[1.2.HEADER.FIELDS (From)]<0>`.
fn label(out: &mut Vec<u8>, s: &SectionItem) {
    let prefix: &[u8] = match s.label {
        Label::Rfc822 => return out.extend_from_slice(b"RFC822"),
        Label::Rfc822Header => return out.extend_from_slice(b"RFC822.HEADER"),
        Label::Rfc822Text => return out.extend_from_slice(b"RFC822.TEXT"),
        Label::Body => b"BODY[",
        Label::Binary => b"BINARY[",
    };
    out.extend_from_slice(prefix);
    part_numbers(out, &s.path);
    let dot = if s.path.is_empty() { "" } else { "." };
    match &s.spec {
        Spec::Full => {}
        Spec::Header => {
            let _ = write!(out, "{dot}HEADER");
        }
        Spec::Text => {
            let _ = write!(out, "{dot}TEXT");
        }
        Spec::Mime => {
            let _ = write!(out, "{dot}MIME");
        }
        Spec::Fields { names, not } => {
            let kind = if *not { "HEADER.FIELDS.NOT" } else { "HEADER.FIELDS" };
            {
                let _ = write!(out, "{dot}{kind} (");
            };
            for (i, n) in names.iter().enumerate() {
                if i > 0 {
                    out.push(b' ');
                }
                encode::astring(out, n, false);
            }
            out.push(b')');
        }
    }
    out.push(b']');
    if let Some((origin, _)) = s.partial {
        // RFC 3501 §7.4.2: only the origin is echoed.
        {
            let _ = write!(out, "<{origin}>");
        };
    }
}

fn part_numbers(out: &mut Vec<u8>, path: &[u32]) {
    for (i, n) in path.iter().enumerate() {
        if i > 0 {
            out.push(b'.');
        }
        out.extend_from_slice(n.to_string().as_bytes());
    }
}

/// `<origin.count>`: the octets from origin on, at most count of them; an
/// origin past the end gives the empty string (RFC 3501 §6.4.5).
pub(super) fn partial(data: &[u8], range: Option<(u32, u32)>) -> &[u8] {
    match range {
        None => data,
        Some((origin, count)) => {
            let start = (origin as usize).min(data.len());
            let end = start.saturating_add(count as usize).min(data.len());
            data.get(start..end).unwrap_or_default()
        }
    }
}
