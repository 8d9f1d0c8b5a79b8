//! FETCH and UID FETCH (RFC 3501 §6.4.5, §6.4.8, §7.4.2; RFC 9051 §6.4.5,
//! §7.5.2), with BINARY (RFC 3516) and CONDSTORE/QRESYNC (RFC 7162): the
//! MODSEQ item (§3.1.4.2, in every FETCH response once CONDSTORE is on),
//! the CHANGEDSINCE modifier (§3.1.4.1) and UID FETCH's VANISHED (§3.2.6).
//!
//! Every item is served: UID, FLAGS, INTERNALDATE, RFC822.SIZE, MODSEQ,
//! ENVELOPE, BODY, BODYSTRUCTURE, BODY[section]<partial> and BODY.PEEK in
//! all section forms, BINARY[...]<partial>, BINARY.PEEK, BINARY.SIZE,
//! RFC822, RFC822.HEADER, RFC822.TEXT and the ALL, FAST and FULL macros.
//! The MIME work (structure, envelope, sections, decoding) is in
//! [`crate::mime`]; this file picks the messages, loads what the items
//! need, sets \Seen and writes the responses (`write`).
//!
//! Loading: the parsed structure comes from the shared cache
//! ([`crate::mime::Cache`]); the message file is read only for body
//! sections or on a cache miss. So a warm `FETCH 1:* (ENVELOPE)` reads no
//! file at all.
//!
//! A non-PEEK body item sets \Seen (unless the mailbox was opened with
//! EXAMINE) before the data is sent, and the new FLAGS go in the same
//! FETCH response (RFC 3501 §6.4.5). Messages are loaded in batches first,
//! and \Seen is set only on the messages whose data was loaded: a message
//! the store cannot read is never marked as read.

mod write;

use crate::error::{Code, ImapError};
use crate::mime::{self, Spec};
use crate::selected::{SeqNum, set_contains, write_vanished};
use crate::session::{CmdResult, Done, Session, State};
use coimail_store::{AccountId, FlagOp, Flags, MailboxId, MessageMeta, ModSeq, Uid};
use imap_codec::imap_types::command::FetchModifier;
use imap_codec::imap_types::core::AString;
use imap_codec::imap_types::fetch::{Macro, MacroOrMessageDataItemNames, MessageDataItemName, Part, Section};
use imap_codec::imap_types::sequence::SequenceSet;
use std::num::NonZeroU32;
use std::sync::Arc;

/// A batch of messages ends at this many, or once the message files read
/// for it reach [`BATCH_BYTES`]: the files of one batch are in memory together.
const BATCH_MESSAGES: usize = 64;
const BATCH_BYTES: u64 = 1 << 20;

/// Files of a batch up to this many bytes together are read on the
/// session's own thread, as nginx reads files without its thread pool: a
/// few small files from the page cache take microseconds, less than the
/// blocking-pool hand-off (a wake-up there and one back), which was a
/// quarter of the futex calls under the 10-client load benchmark.
/// Larger batches, which may wait on the disk for longer, go to the pool.
const INLINE_READ_BYTES: u64 = 64 << 10;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Item {
    Uid,
    Flags,
    Size,
    InternalDate,
    ModSeq,
    Envelope,
    /// BODY (`false`) or BODYSTRUCTURE (`true`, with extension data).
    Structure(bool),
    Section(SectionItem),
    /// BINARY.SIZE[part numbers]
    BinarySize(Vec<u32>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct SectionItem {
    path: Vec<u32>,
    spec: Spec,
    /// `<origin.count>`
    partial: Option<(u32, u32)>,
    peek: bool,
    /// How the response names the item (and BINARY: decode it).
    label: Label,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Label {
    Body,
    Binary,
    Rfc822,
    Rfc822Header,
    Rfc822Text,
}

impl Item {
    /// BINARY.SIZE decodes the part to measure it.
    fn needs_raw(&self) -> bool {
        matches!(self, Item::Section(_) | Item::BinarySize(_))
    }

    fn needs_structure(&self) -> bool {
        match self {
            Item::Envelope | Item::Structure(_) | Item::BinarySize(_) => true,
            Item::Section(s) => !(s.path.is_empty() && s.spec == Spec::Full),
            _ => false,
        }
    }

    fn sets_seen(&self) -> bool {
        matches!(self, Item::Section(s) if !s.peek)
    }
}

fn items(names: MacroOrMessageDataItemNames<'_>) -> Vec<Item> {
    let names = match names {
        // RFC 3501 §6.4.5: the macros.
        MacroOrMessageDataItemNames::Macro(m) => {
            let mut v = vec![Item::Flags, Item::InternalDate, Item::Size];
            match m {
                Macro::All => v.push(Item::Envelope),
                Macro::Full => v.extend([Item::Envelope, Item::Structure(false)]),
                _ => {} // FAST
            }
            return v;
        }
        MacroOrMessageDataItemNames::MessageDataItemNames(names) => names,
    };
    let section = |path, spec, peek, label| Item::Section(SectionItem { path, spec, partial: None, peek, label });
    names
        .into_iter()
        .map(|name| match name {
            MessageDataItemName::Uid => Item::Uid,
            MessageDataItemName::Flags => Item::Flags,
            MessageDataItemName::Rfc822Size => Item::Size,
            MessageDataItemName::InternalDate => Item::InternalDate,
            MessageDataItemName::ModSeq => Item::ModSeq,
            MessageDataItemName::Envelope => Item::Envelope,
            MessageDataItemName::Body => Item::Structure(false),
            MessageDataItemName::BodyStructure => Item::Structure(true),
            // RFC 3501 §6.4.5: RFC822 = BODY[], RFC822.HEADER = BODY.PEEK[HEADER], RFC822.TEXT = BODY[TEXT].
            MessageDataItemName::Rfc822 => section(vec![], Spec::Full, false, Label::Rfc822),
            MessageDataItemName::Rfc822Header => section(vec![], Spec::Header, true, Label::Rfc822Header),
            MessageDataItemName::Rfc822Text => section(vec![], Spec::Text, false, Label::Rfc822Text),
            MessageDataItemName::BodyExt { section, partial, peek } => {
                let (path, spec) = section_spec(section);
                Item::Section(SectionItem {
                    path,
                    spec,
                    partial: partial.map(|(o, n)| (o, n.get())),
                    peek,
                    label: Label::Body,
                })
            }
            MessageDataItemName::Binary { section, partial, peek } => Item::Section(SectionItem {
                path: numbers(&section),
                spec: Spec::Full,
                partial: partial.map(|(o, n)| (o, n.get())),
                peek,
                label: Label::Binary,
            }),
            MessageDataItemName::BinarySize { section } => Item::BinarySize(numbers(&section)),
        })
        .collect()
}

fn numbers(path: &[NonZeroU32]) -> Vec<u32> {
    path.iter().map(|n| n.get()).collect()
}

fn section_spec(section: Option<Section<'_>>) -> (Vec<u32>, Spec) {
    let path = |p: Option<Part>| p.map(|p| numbers(p.0.as_ref())).unwrap_or_default();
    let names = |list: &[AString<'_>]| list.iter().map(|a| AsRef::<[u8]>::as_ref(a).to_vec()).collect();
    match section {
        None => (vec![], Spec::Full),
        Some(Section::Part(p)) => (numbers(p.0.as_ref()), Spec::Full),
        Some(Section::Header(p)) => (path(p), Spec::Header),
        Some(Section::Text(p)) => (path(p), Spec::Text),
        Some(Section::Mime(p)) => (numbers(p.0.as_ref()), Spec::Mime),
        Some(Section::HeaderFields(p, list)) => (path(p), Spec::Fields { names: names(list.as_ref()), not: false }),
        Some(Section::HeaderFieldsNot(p, list)) => (path(p), Spec::Fields { names: names(list.as_ref()), not: true }),
    }
}

/// What the items need, decided once per command.
#[derive(Debug, Clone, Copy)]
struct Needs {
    raw: bool,
    structure: bool,
    seen: bool,
}

/// FETCH with RFC 7162's modifiers: CHANGEDSINCE (§3.1.4.1, a
/// CONDSTORE-enabling modifier that implies MODSEQ) and, for UID FETCH once
/// QRESYNC is on, VANISHED (§3.2.6): first `* VANISHED (EARLIER)` for the
/// UIDs of the set expunged since, then the FETCH responses.
pub(crate) async fn fetch_with(
    s: &mut Session,
    set: &SequenceSet,
    names: MacroOrMessageDataItemNames<'_>,
    uid: bool,
    modifiers: &[FetchModifier],
) -> CmdResult {
    let (mut since, mut vanished) = (None, false);
    for m in modifiers {
        match m {
            FetchModifier::ChangedSince(n) if since.is_none() => since = Some(ModSeq(n.get())),
            FetchModifier::Vanished if !vanished => vanished = true,
            _ => return Err(ImapError::bad("A FETCH modifier may be given once")),
        }
    }
    if vanished {
        // §3.2.6: BAD unless UID FETCH, with CHANGEDSINCE, after ENABLE QRESYNC.
        match (s.qresync, uid, since) {
            (false, ..) => return Err(ImapError::bad("VANISHED needs ENABLE QRESYNC first")),
            (_, false, _) => return Err(ImapError::bad("VANISHED is for UID FETCH only")),
            (_, _, None) => return Err(ImapError::bad("VANISHED needs CHANGEDSINCE")),
            (_, _, Some(since)) => vanished_earlier(s, set, since)?,
        }
    }
    if since.is_some() {
        s.enable_condstore();
    }
    fetch_since(s, set, names, uid, since).await
}

/// `* VANISHED (EARLIER)` for the UIDs in `set` expunged after `since`
/// that this session no longer shows (RFC 7162 §3.2.6). `*` is taken as
/// unbounded: an expunged UID may be above every UID left.
fn vanished_earlier(s: &mut Session, set: &SequenceSet, since: ModSeq) -> Result<(), ImapError> {
    let State::Selected(account, view) = &s.state else { return Err(ImapError::Closed) };
    let mut gone = s.ctx.store.expunged_since(account.id, view.mailbox, since)?;
    gone.dedup();
    gone.retain(|&u| set_contains(set, u, Uid::MAX) && view.seq_of(u).is_none());
    write_vanished(s.conn.out(), true, &gone);
    Ok(())
}

pub(crate) async fn fetch(
    s: &mut Session,
    set: &SequenceSet,
    names: MacroOrMessageDataItemNames<'_>,
    uid: bool,
) -> CmdResult {
    fetch_since(s, set, names, uid, None).await
}

/// FETCH of the messages in `set`; with `since`, only those whose modseq is above it.
async fn fetch_since(
    s: &mut Session,
    set: &SequenceSet,
    names: MacroOrMessageDataItemNames<'_>,
    uid: bool,
    since: Option<ModSeq>,
) -> CmdResult {
    let mut items = items(names);
    if uid && !items.contains(&Item::Uid) {
        // RFC 3501 §6.4.8: UID FETCH responses always carry the UID.
        items.insert(0, Item::Uid);
    }
    if items.contains(&Item::ModSeq) {
        // RFC 7162 §3.1: FETCH MODSEQ is a CONDSTORE-enabling command.
        s.enable_condstore();
    } else if s.condstore {
        // RFC 7162 §3.1.4.2 (every FETCH once on), §3.1.4.1 (CHANGEDSINCE implies it).
        items.push(Item::ModSeq);
    }
    let State::Selected(account, view) = &s.state else { return Err(ImapError::Closed) };
    let (account, mailbox, read_only) = (account.id, view.mailbox, view.read_only);
    let mut targets = view.resolve(set, uid).map_err(|_| ImapError::bad("Invalid message sequence number"))?;
    if targets.is_empty() {
        return Ok(Done::ok("FETCH completed"));
    }
    let mut listing = targets_listing(s, account, mailbox, &targets)?;
    if let Some(since) = since {
        // A message gone meanwhile stays a target: the usual EXPUNGEISSUED rules apply.
        let meta = |u: &Uid| listing.binary_search_by_key(u, |m| m.uid).ok().and_then(|i| listing.get(i));
        targets.retain(|(_, u)| meta(u).is_none_or(|m| m.modseq > since));
    }
    let needs = Needs {
        raw: items.iter().any(Item::needs_raw),
        structure: items.iter().any(Item::needs_structure),
        seen: !read_only && items.iter().any(Item::sets_seen),
    };
    // Stands in for the structure when no item needs one (loading
    // provides it whenever one does).
    let empty = mime::Message::empty();
    let mut missing = false;
    let mut targets = targets.into_iter();
    while targets.len() > 0 {
        let batch = load_batch(s, &listing, &mut targets, needs, &items).await;
        missing |= batch.missing;
        // \Seen on exactly the messages loaded, so the data and the flags
        // sent agree with the store; then the responses.
        let loaded = batch.loaded.iter().map(|l| l.index);
        let newly_seen =
            if needs.seen { mark_seen(s, account, mailbox, &mut listing, loaded).await? } else { Vec::new() };
        let shows_modseq = items.contains(&Item::ModSeq);
        for l in &batch.loaded {
            let Some(meta) = listing.get(l.index) else { continue };
            let flags_changed = newly_seen.contains(&meta.uid);
            let shows_flags = items.contains(&Item::Flags) || flags_changed;
            if let State::Selected(_, view) = &mut s.state {
                if shows_flags {
                    view.told_flags(meta.uid, meta.modseq);
                    view.announce(&meta.flags, s.conn.out());
                } else if shows_modseq {
                    view.told_modseq(meta.uid, meta.modseq);
                }
            }
            let structure = l.structure.as_deref().unwrap_or(&empty);
            let recent;
            let meta = match &s.state {
                State::Selected(_, view) => match view.shown_flags(meta.uid, &meta.flags, !s.rev2) {
                    std::borrow::Cow::Owned(flags) => {
                        recent = MessageMeta { flags, ..meta.clone() };
                        &recent
                    }
                    std::borrow::Cow::Borrowed(_) => meta,
                },
                _ => meta,
            };
            let msg = write::Msg { seq: l.seq, meta, raw: l.raw.as_deref(), structure };
            let wire = write::Wire { utf8: s.utf8, rev2: s.rev2 };
            write::message(s.conn.out(), &msg, &items, flags_changed, wire);
            s.conn.flush_if_large().await?;
        }
        if let Some(e) = batch.failed {
            return Err(e);
        }
    }
    if missing && !uid {
        return Err(ImapError::no(Code::ExpungeIssued, "Some of the requested messages no longer exist"));
    }
    Ok(Done::ok("FETCH completed"))
}

/// The targets' messages in UID order: read from the index by runs of
/// adjacent sequence numbers (so a FETCH of a few messages reads a few
/// records), and for a target another session expunged and this one has
/// not been told of, its ghost (RFC 2180 §4.1: the client can still read
/// what it can still see).
pub(crate) fn targets_listing(
    s: &Session,
    account: AccountId,
    mailbox: MailboxId,
    targets: &[(SeqNum, Uid)],
) -> Result<Vec<MessageMeta>, ImapError> {
    let mut ranges = Vec::new();
    let mut run: Option<(SeqNum, Uid, Uid)> = None; // last seq, first UID, last UID
    for &(seq, uid) in targets {
        run = match run {
            Some((last, first, _)) if seq.follows(last) => Some((seq, first, uid)),
            Some((_, first, end)) => {
                ranges.push(first..=end);
                Some((seq, uid, uid))
            }
            None => Some((seq, uid, uid)),
        };
    }
    ranges.extend(run.map(|(_, first, end)| first..=end));
    let mut listing = s.ctx.store.messages_in(account, mailbox, &ranges)?;
    let missing: Vec<Uid> =
        targets.iter().map(|t| t.1).filter(|u| listing.binary_search_by_key(u, |m| m.uid).is_err()).collect();
    if !missing.is_empty() {
        listing.extend(s.ctx.store.ghosts(account, mailbox, &missing));
        listing.sort_by_key(|m| m.uid);
    }
    Ok(listing)
}

/// One message of a batch, with what its items need.
struct Loaded {
    seq: SeqNum,
    /// Position in the listing.
    index: usize,
    raw: Option<Vec<u8>>,
    structure: Option<Arc<mime::Message>>,
}

/// The next messages of a FETCH, loaded.
struct Batch {
    loaded: Vec<Loaded>,
    /// A target was expunged by another session, not yet reported to this one.
    missing: bool,
    /// What ended the batch early: an unreadable message file, or a
    /// BINARY of a part whose encoding we cannot undo.
    failed: Option<ImapError>,
}

async fn load_batch(
    s: &Session,
    listing: &[MessageMeta],
    targets: &mut std::vec::IntoIter<(SeqNum, Uid)>,
    needs: Needs,
    items: &[Item],
) -> Batch {
    let mut batch = Batch { loaded: Vec::new(), missing: false, failed: None };
    let cache = &s.ctx.mime_cache;
    // First pick the batch: what is cached, and what must be read.
    let mut picked = Vec::new();
    let mut bytes = 0;
    while picked.len() < BATCH_MESSAGES && bytes < BATCH_BYTES {
        let Some((seq, u)) = targets.next() else { break };
        let Some(index) = listing.binary_search_by_key(&u, |m| m.uid).ok() else {
            batch.missing = true;
            continue;
        };
        let Some(meta) = listing.get(index) else { continue };
        let structure = if needs.structure { cache.get(meta) } else { None };
        let read = needs.raw || (needs.structure && structure.is_none());
        if read {
            bytes += meta.size;
        }
        picked.push((seq, index, structure, read));
    }
    // Then read every file the batch needs, here when they are small
    // ([`INLINE_READ_BYTES`]), else in one trip to the blocking pool (a task
    // and a hand-off per message cost more than the reads of small, cached
    // files themselves), and load in order.
    let mut reads = if bytes <= INLINE_READ_BYTES {
        let store = &s.ctx.store;
        picked.iter().filter(|p| p.3).filter_map(|p| listing.get(p.1)).map(|m| store.read_message_blocking(m)).collect()
    } else {
        let metas: Vec<MessageMeta> = picked.iter().filter(|p| p.3).filter_map(|p| listing.get(p.1)).cloned().collect();
        let store = s.ctx.store.clone();
        match tokio::task::spawn_blocking(move || {
            metas.iter().map(|m| store.read_message_blocking(m)).collect::<Vec<_>>()
        })
        .await
        {
            Ok(reads) => reads,
            Err(e) => {
                batch.failed = Some(ImapError::Internal(format!("message read task: {e}")));
                return batch;
            }
        }
    }
    .into_iter();
    for (seq, index, structure, read) in picked {
        let mut structure = structure;
        let mut raw = if read {
            match reads.next() {
                Some(Ok(raw)) => Some(raw),
                Some(Err(e)) => {
                    batch.failed = Some(e.into());
                    break;
                }
                None => {
                    batch.failed = Some(ImapError::Internal("message read missing from its batch".into()));
                    break;
                }
            }
        } else {
            None
        };
        if needs.structure && structure.is_none() {
            structure = raw.as_deref().and_then(|r| listing.get(index).map(|meta| cache.get_or_parse(meta, r)));
        }
        if !needs.raw {
            raw = None; // read for its structure only
        }
        if let Some(m) = &structure
            && let Some(e) = unknown_cte(m, items)
        {
            batch.failed = Some(e);
            break;
        }
        batch.loaded.push(Loaded { seq, index, raw, structure });
    }
    batch
}

/// RFC 3516 §4.3: BINARY of a part whose Content-Transfer-Encoding we
/// cannot undo fails the command with `NO [UNKNOWN-CTE]`.
fn unknown_cte(m: &mime::Message, items: &[Item]) -> Option<ImapError> {
    let binary_paths = items.iter().filter_map(|i| match i {
        Item::Section(SectionItem { label: Label::Binary, path, .. }) | Item::BinarySize(path) => Some(path),
        _ => None,
    });
    for path in binary_paths {
        if mime::check_binary(m, path).is_err() {
            // The code rides in the text: error.rs has no UNKNOWN-CTE code.
            return Some(ImapError::No {
                code: None,
                text: "[UNKNOWN-CTE] Cannot decode the Content-Transfer-Encoding of this part".into(),
            });
        }
    }
    None
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
    let update = s.ctx.store.store_flags_if(account, mailbox, &unseen, FlagOp::Add, &seen, None).await?;
    crate::cmd::store::move_seen_chats(s, account, mailbox, &update.seen_gained).await;
    for (u, flags, modseq) in update.updated {
        if let Some(m) = listing.binary_search_by_key(&u, |m| m.uid).ok().and_then(|i| listing.get_mut(i)) {
            m.flags = flags;
            m.modseq = modseq;
        }
        if let State::Selected(_, view) = &mut s.state {
            view.told_flags(u, modseq);
        }
        changed.push(u);
    }
    Ok(changed)
}

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_condstore;
#[cfg(test)]
mod tests_mime;
