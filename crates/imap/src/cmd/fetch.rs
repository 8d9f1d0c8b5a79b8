//! FETCH and UID FETCH (RFC 3501 §6.4.5, §6.4.8; RFC 9051 §6.4.5).
//!
//! Items served now: UID, FLAGS, RFC822.SIZE, INTERNALDATE, the FAST macro,
//! RFC822, RFC822.HEADER, RFC822.TEXT and BODY[section]<partial> /
//! BODY.PEEK[...] for the whole message, HEADER, TEXT and
//! HEADER.FIELDS[.NOT] of the top-level message. MIME part sections,
//! ENVELOPE, BODYSTRUCTURE and BINARY are refused with `NO [CANNOT]`.
//!
//! A non-PEEK body item sets \Seen (unless the mailbox was opened with
//! EXAMINE) before the data is sent, and the new FLAGS go in the same
//! FETCH response (RFC 3501 §6.4.5). Bodies are read in batches first, and
//! \Seen is set only on the messages whose body was read: a message the
//! store cannot read is never marked as read.

use crate::encode;
use crate::error::{Code, ImapError};
use crate::session::{CmdResult, Done, Session, State};
use coimail_store::{AccountId, FlagOp, Flags, MailboxId, MessageMeta, StoreError, Uid};
use imap_codec::imap_types::fetch::{Macro, MacroOrMessageDataItemNames, MessageDataItemName, Section};
use imap_codec::imap_types::sequence::SequenceSet;

/// A batch of messages ends at this many, or once its bodies reach
/// [`BATCH_BYTES`]: the bodies of one batch are held in memory together.
const BATCH_MESSAGES: usize = 64;
const BATCH_BYTES: u64 = 1 << 20;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Item {
    Uid,
    Flags,
    Size,
    InternalDate,
    Body(BodyItem),
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct BodyItem {
    part: Part,
    /// `<origin.count>`
    partial: Option<(u32, u32)>,
    peek: bool,
    /// How the response names the item.
    label: Label,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Full,
    Header,
    Text,
    /// HEADER.FIELDS (`not` = false) or HEADER.FIELDS.NOT, with the names as requested.
    Fields {
        names: Vec<Vec<u8>>,
        not: bool,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Label {
    Body,
    Rfc822,
    Rfc822Header,
    Rfc822Text,
}

fn items(names: MacroOrMessageDataItemNames<'_>) -> Result<Vec<Item>, ImapError> {
    let names = match names {
        MacroOrMessageDataItemNames::Macro(Macro::Fast) => {
            return Ok(vec![Item::Flags, Item::InternalDate, Item::Size]);
        }
        MacroOrMessageDataItemNames::Macro(Macro::All) => {
            return Err(ImapError::not_implemented("FETCH ALL (it needs ENVELOPE)"));
        }
        MacroOrMessageDataItemNames::Macro(_) => {
            return Err(ImapError::not_implemented("FETCH FULL (it needs ENVELOPE and BODY)"));
        }
        MacroOrMessageDataItemNames::MessageDataItemNames(names) => names,
    };
    let body = |part, peek, label| Item::Body(BodyItem { part, partial: None, peek, label });
    let mut out = Vec::with_capacity(names.len());
    for name in names {
        out.push(match name {
            MessageDataItemName::Uid => Item::Uid,
            MessageDataItemName::Flags => Item::Flags,
            MessageDataItemName::Rfc822Size => Item::Size,
            MessageDataItemName::InternalDate => Item::InternalDate,
            MessageDataItemName::Rfc822 => body(Part::Full, false, Label::Rfc822),
            MessageDataItemName::Rfc822Header => body(Part::Header, true, Label::Rfc822Header),
            MessageDataItemName::Rfc822Text => body(Part::Text, false, Label::Rfc822Text),
            MessageDataItemName::BodyExt { section, partial, peek } => {
                let part = match section {
                    None => Part::Full,
                    Some(Section::Header(None)) => Part::Header,
                    Some(Section::Text(None)) => Part::Text,
                    Some(Section::HeaderFields(None, list)) => {
                        Part::Fields { names: fields(list.as_ref()), not: false }
                    }
                    Some(Section::HeaderFieldsNot(None, list)) => {
                        Part::Fields { names: fields(list.as_ref()), not: true }
                    }
                    Some(_) => return Err(ImapError::not_implemented("FETCH of MIME part sections")),
                };
                Item::Body(BodyItem { part, partial: partial.map(|(o, n)| (o, n.get())), peek, label: Label::Body })
            }
            MessageDataItemName::Envelope => return Err(ImapError::not_implemented("FETCH ENVELOPE")),
            MessageDataItemName::Body | MessageDataItemName::BodyStructure => {
                return Err(ImapError::not_implemented("FETCH BODYSTRUCTURE"));
            }
            MessageDataItemName::Binary { .. } | MessageDataItemName::BinarySize { .. } => {
                return Err(ImapError::not_implemented("FETCH BINARY"));
            }
            MessageDataItemName::ModSeq => {
                return Err(ImapError::bad("FETCH MODSEQ needs CONDSTORE, which is not enabled"));
            }
        });
    }
    Ok(out)
}

fn fields(list: &[imap_codec::imap_types::core::AString<'_>]) -> Vec<Vec<u8>> {
    list.iter().map(|a| AsRef::<[u8]>::as_ref(a).to_vec()).collect()
}

pub(crate) async fn fetch(
    s: &mut Session,
    set: &SequenceSet,
    names: MacroOrMessageDataItemNames<'_>,
    uid: bool,
) -> CmdResult {
    let mut items = items(names)?;
    if uid && !items.contains(&Item::Uid) {
        // RFC 3501 §6.4.8: UID FETCH responses always carry the UID.
        items.insert(0, Item::Uid);
    }
    let State::Selected(account, view) = &s.state else { return Err(ImapError::Closed) };
    let (account, mailbox, read_only) = (account.id, view.mailbox, view.read_only);
    let targets = view.resolve(set, uid).map_err(|_| ImapError::bad("Invalid message sequence number"))?;
    if targets.is_empty() {
        return Ok(Done::ok("FETCH completed"));
    }
    let mut listing = s.ctx.store.messages(account, mailbox)?;
    let needs_body = items.iter().any(|i| matches!(i, Item::Body(_)));
    let sets_seen = !read_only && items.iter().any(|i| matches!(i, Item::Body(b) if !b.peek));

    let mut missing = false;
    let mut targets = targets.into_iter();
    while targets.len() > 0 {
        let batch = read_batch(s, &listing, &mut targets, needs_body).await;
        missing |= batch.missing;
        // \Seen on exactly the messages read, so the data and the flags sent
        // agree with the store; then the responses.
        let read = batch.read.iter().map(|&(_, i, _)| i);
        let newly_seen = if sets_seen { mark_seen(s, account, mailbox, &mut listing, read).await? } else { Vec::new() };
        for (seq, i, raw) in batch.read {
            let Some(meta) = listing.get(i) else { continue };
            let flags_changed = newly_seen.contains(&meta.uid);
            write_message(s, seq, meta, &items, raw.as_deref(), flags_changed);
            s.conn.flush_if_large().await?;
        }
        if let Some(e) = batch.failed {
            return Err(e.into());
        }
    }
    if missing && !uid {
        return Err(ImapError::no(Code::ExpungeIssued, "Some of the requested messages no longer exist"));
    }
    Ok(Done::ok("FETCH completed"))
}

/// The next messages of a FETCH with their bodies read (when asked for).
struct Batch {
    /// Sequence number, position in the listing, body.
    read: Vec<(u32, usize, Option<Vec<u8>>)>,
    /// A target was expunged by another session, not yet reported to this one.
    missing: bool,
    /// The body read that failed and ended the batch.
    failed: Option<StoreError>,
}

async fn read_batch(
    s: &Session,
    listing: &[MessageMeta],
    targets: &mut std::vec::IntoIter<(u32, Uid)>,
    needs_body: bool,
) -> Batch {
    let mut batch = Batch { read: Vec::new(), missing: false, failed: None };
    let mut bytes = 0;
    while batch.read.len() < BATCH_MESSAGES && bytes < BATCH_BYTES {
        let Some((seq, u)) = targets.next() else { break };
        let Some(i) = listing.binary_search_by_key(&u, |m| m.uid).ok() else {
            batch.missing = true;
            continue;
        };
        let Some(meta) = listing.get(i) else { continue };
        let raw = if needs_body {
            match s.ctx.store.read_message(meta).await {
                Ok(raw) => Some(raw),
                Err(e) => {
                    batch.failed = Some(e);
                    break;
                }
            }
        } else {
            None
        };
        bytes += meta.size;
        batch.read.push((seq, i, raw));
    }
    batch
}

/// Adds \Seen to the messages at `positions` in `listing` that lack it,
/// updating `listing`; returns the UIDs whose flags changed.
async fn mark_seen(
    s: &mut Session,
    account: AccountId,
    mailbox: MailboxId,
    listing: &mut [MessageMeta],
    positions: impl Iterator<Item = usize>,
) -> Result<Vec<Uid>, ImapError> {
    let unseen: Vec<Uid> =
        positions.filter_map(|i| listing.get(i)).filter(|m| !m.flags.contains("\\Seen")).map(|m| m.uid).collect();
    if unseen.is_empty() {
        return Ok(Vec::new());
    }
    let seen: Flags = ["\\Seen"].into_iter().collect();
    let mut changed = Vec::new();
    for (u, flags, modseq) in s.ctx.store.store_flags(account, mailbox, &unseen, FlagOp::Add, &seen).await? {
        if let Some(m) = listing.binary_search_by_key(&u, |m| m.uid).ok().and_then(|i| listing.get_mut(i)) {
            m.flags = flags;
        }
        if let State::Selected(_, view) = &mut s.state {
            view.told_flags(u, modseq);
        }
        changed.push(u);
    }
    Ok(changed)
}

fn write_message(
    s: &mut Session,
    seq: u32,
    meta: &MessageMeta,
    items: &[Item],
    raw: Option<&[u8]>,
    flags_changed: bool,
) {
    let out = s.conn.out();
    out.extend_from_slice(format!("* {seq} FETCH (").as_bytes());
    for (n, item) in items.iter().enumerate() {
        if n > 0 {
            out.push(b' ');
        }
        match item {
            Item::Uid => out.extend_from_slice(format!("UID {}", meta.uid).as_bytes()),
            Item::Flags => {
                out.extend_from_slice(b"FLAGS ");
                encode::flag_list(out, &meta.flags);
            }
            Item::Size => out.extend_from_slice(format!("RFC822.SIZE {}", meta.size).as_bytes()),
            Item::InternalDate => {
                out.extend_from_slice(b"INTERNALDATE ");
                encode::date_time(out, meta.internal_date);
            }
            Item::Body(b) => {
                let raw = raw.unwrap_or_default();
                label(out, b);
                out.push(b' ');
                encode::literal(out, &partial(&section(raw, &b.part), b.partial));
            }
        }
    }
    if flags_changed && !items.contains(&Item::Flags) {
        out.extend_from_slice(b" FLAGS ");
        encode::flag_list(out, &meta.flags);
    }
    out.extend_from_slice(b")\r\n");
}

/// The item name as the response spells it: `BODY[HEADER.FIELDS (From)]<0>`.
fn label(out: &mut Vec<u8>, b: &BodyItem) {
    match b.label {
        Label::Rfc822 => return out.extend_from_slice(b"RFC822"),
        Label::Rfc822Header => return out.extend_from_slice(b"RFC822.HEADER"),
        Label::Rfc822Text => return out.extend_from_slice(b"RFC822.TEXT"),
        Label::Body => {}
    }
    out.extend_from_slice(b"BODY[");
    match &b.part {
        Part::Full => {}
        Part::Header => out.extend_from_slice(b"HEADER"),
        Part::Text => out.extend_from_slice(b"TEXT"),
        Part::Fields { names, not } => {
            out.extend_from_slice(if *not { b"HEADER.FIELDS.NOT (" } else { b"HEADER.FIELDS (" });
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
    if let Some((origin, _)) = b.partial {
        out.extend_from_slice(format!("<{origin}>").as_bytes());
    }
}

/// Offset just past the blank line ending the header (the whole message
/// when there is none).
fn header_end(raw: &[u8]) -> usize {
    let crlf = raw.windows(4).position(|w| w == b"\r\n\r\n").map(|p| p + 4);
    let lf = raw.windows(2).position(|w| w == b"\n\n").map(|p| p + 2);
    match (crlf, lf) {
        (Some(a), Some(b)) => a.min(b),
        (a, b) => a.or(b).unwrap_or(raw.len()),
    }
}

fn section(raw: &[u8], part: &Part) -> Vec<u8> {
    let he = header_end(raw);
    let (header, text) = raw.split_at(he.min(raw.len()));
    match part {
        Part::Full => raw.to_vec(),
        Part::Header => header.to_vec(),
        Part::Text => text.to_vec(),
        Part::Fields { names, not } => {
            let mut out = Vec::new();
            for field in header_fields(header) {
                let name = field.split(|&b| b == b':').next().unwrap_or_default().trim_ascii();
                let listed = names.iter().any(|n| n.eq_ignore_ascii_case(name));
                if listed != *not && !name.is_empty() {
                    out.extend_from_slice(field);
                }
            }
            // RFC 3501 §6.4.5: the blank line after the subset is included.
            out.extend_from_slice(b"\r\n");
            out
        }
    }
}

/// Header fields, each with its folded continuation lines and line ending.
fn header_fields(header: &[u8]) -> Vec<&[u8]> {
    let mut fields = Vec::new();
    let mut start = 0;
    let mut pos = 0;
    while pos < header.len() {
        let end =
            header.get(pos..).and_then(|r| r.iter().position(|&b| b == b'\n')).map_or(header.len(), |p| pos + p + 1);
        let line = header.get(pos..end).unwrap_or_default();
        let continuation = matches!(line.first(), Some(b' ' | b'\t'));
        if !continuation && pos > start {
            fields.push(header.get(start..pos).unwrap_or_default());
            start = pos;
        }
        if line == b"\r\n" || line == b"\n" {
            // The blank line ending the header is not a field.
            start = end;
        }
        pos = end;
    }
    if pos > start {
        fields.push(header.get(start..pos).unwrap_or_default());
    }
    fields
}

fn partial(data: &[u8], range: Option<(u32, u32)>) -> Vec<u8> {
    match range {
        None => data.to_vec(),
        Some((origin, count)) => {
            let start = (origin as usize).min(data.len());
            let end = start.saturating_add(count as usize).min(data.len());
            data.get(start..end).unwrap_or_default().to_vec()
        }
    }
}

#[cfg(test)]
mod tests;
