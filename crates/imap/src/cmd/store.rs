//! STORE and UID STORE (RFC 3501 §6.4.6, RFC 9051 §6.4.6), with CONDSTORE's
//! UNCHANGEDSINCE modifier (RFC 7162 §3.1.3).
//!
//! Responses: an untagged FETCH with the new FLAGS for every message the
//! command names (none with `.SILENT`), UID in the UID form, MODSEQ once
//! CONDSTORE is on; with CONDSTORE even `.SILENT` reports the new modseq of
//! each message it changed (RFC 7162 §3.1.3). What this session sent is
//! marked as told, so the bus echo of its own change is not sent again.
//! No EXPUNGE goes out during STORE (RFC 3501 §7.4.1; see `session`).

use crate::cmd::copy_move::number_set;
use crate::encode;
use crate::error::{Code, ImapError};
use crate::selected::SeqNum;
use crate::session::{CmdResult, Done, Session, State};
use coimail_store::{AccountId, FlagOp, Flags, MailboxId, ModSeq, Uid};
use imap_codec::imap_types::command::StoreModifier;
use imap_codec::imap_types::flag::{Flag, StoreResponse, StoreType};
use imap_codec::imap_types::sequence::SequenceSet;

const SYSTEM_FLAGS: [&str; 5] = ["\\Seen", "\\Answered", "\\Flagged", "\\Deleted", "\\Draft"];

/// Flags as the store keeps them: system flags in canonical spelling
/// (`\seen` is `\Seen`), keywords as written. `\Recent` and unknown
/// system flags cannot be set by a client (RFC 3501 §2.3.2).
pub(crate) fn parse_flags(flags: &[String]) -> Result<Flags, ImapError> {
    let mut out = Flags::new();
    for f in flags {
        if f.starts_with('\\') {
            let known = SYSTEM_FLAGS.iter().find(|s| s.eq_ignore_ascii_case(f));
            out.insert(*known.ok_or_else(|| ImapError::bad(format!("Cannot set flag {f}")))?);
        } else if f.eq_ignore_ascii_case("NIL") {
            // RFC 9051 §4.1: NIL is not an atom a flag may be, and a client
            // would read `FLAGS (NIL)` as nothing.
            return Err(ImapError::bad("NIL is not a valid keyword"));
        } else {
            out.insert(f.as_str());
        }
    }
    Ok(out)
}

/// The arguments of one STORE command.
pub(crate) struct StoreArgs<'a> {
    pub set: &'a SequenceSet,
    pub kind: StoreType,
    pub response: StoreResponse,
    pub flags: &'a [Flag<'a>],
    pub uid: bool,
    pub modifiers: &'a [StoreModifier],
}

pub(crate) async fn store(s: &mut Session, args: StoreArgs<'_>) -> CmdResult {
    let unchanged_since = match args.modifiers {
        [] => None,
        [StoreModifier::UnchangedSince(m)] => Some(ModSeq(*m)),
        _ => return Err(ImapError::bad("UNCHANGEDSINCE may be given once")),
    };
    let flags = parse_flags(&args.flags.iter().map(ToString::to_string).collect::<Vec<_>>())?;
    let op = match args.kind {
        StoreType::Add => FlagOp::Add,
        StoreType::Remove => FlagOp::Remove,
        StoreType::Replace => FlagOp::Replace,
    };
    if unchanged_since.is_some() {
        // RFC 7162 §3.1: STORE with UNCHANGEDSINCE is a CONDSTORE-enabling command.
        s.enable_condstore();
    }
    let State::Selected(account, view) = &s.state else { return Err(ImapError::Closed) };
    if view.read_only {
        return Err(ImapError::no(Code::Cannot, "Mailbox is read-only"));
    }
    let (account, mailbox) = (account.id, view.mailbox);
    let targets = view.resolve(args.set, args.uid).map_err(|_| ImapError::bad("Invalid message sequence number"))?;
    let uids: Vec<Uid> = targets.iter().map(|t| t.1).collect();
    let result = s.ctx.store.store_flags_if(account, mailbox, &uids, op, &flags, unchanged_since).await?;
    move_seen_chats(s, account, mailbox, &result.seen_gained).await;

    let silent = args.response == StoreResponse::Silent;
    let (condstore, uid_form, rev1) = (s.condstore, args.uid, !s.rev2);
    let State::Selected(_, view) = &mut s.state else { return Err(ImapError::Closed) };
    let out = s.conn.out();
    if op != FlagOp::Remove && !result.changed.is_empty() {
        // New keywords are defined now, even when no FETCH shows them.
        view.announce(&flags, out);
    }
    for ((u, flags, modseq), (_, before)) in result.updated.iter().zip(&result.before) {
        if silent && !view.knows(*u, *before) {
            // Another session changed the message before us and the client
            // has not been told: the bus event of this change reports the
            // flags it did not see.
            view.told_modseq(*u, *modseq);
        } else {
            view.told_flags(*u, *modseq);
        }
        let Some(seq) = view.seq_of(*u) else { continue };
        let changed = result.changed.binary_search(u).is_ok();
        if silent && !(condstore && changed) {
            continue;
        }
        if !silent {
            view.announce(flags, out);
        }
        let flags = view.shown_flags(*u, flags, rev1);
        let shown = (!silent).then_some(flags.as_ref());
        // With CONDSTORE on, UID goes with MODSEQ in every FETCH a STORE causes (RFC 7162 §3.1.4, as Dovecot).
        write_fetch(out, seq, (uid_form || condstore).then_some(*u), shown, condstore.then_some(*modseq));
    }
    if !result.modified.is_empty() {
        let failed = if uid_form {
            number_set(&result.modified)
        } else {
            number_set(&result.modified.iter().filter_map(|u| view.seq_of(*u)).collect::<Vec<_>>())
        };
        return Ok(Done::with_code(format!("MODIFIED {failed}"), "Conditional STORE failed"));
    }
    // Messages another session expunged (this one has not been told yet)
    // are left out and the rest is stored: OK, as RFC 2180 §4.2 allows and
    // Dovecot does; a NO would be shown to the user for nothing.
    Ok(Done::ok("STORE completed"))
}

/// COI R28: chat messages that just became `\Seen` in INBOX move to Chats
/// (when the account asks for it). The flags are stored either way, so a
/// failed move is logged, not reported as a failed command; the EXPUNGE
/// reaches this session at its next sync point, like any other session's.
pub(crate) async fn move_seen_chats(s: &Session, account: AccountId, mailbox: MailboxId, seen_gained: &[(Uid, Flags)]) {
    if let Err(e) = s.ctx.coi.seen_set(account, mailbox, seen_gained).await {
        tracing::warn!(error = %e, "coi: moving seen chat messages failed");
    }
}

/// `* seq FETCH (FLAGS (...) UID n MODSEQ (m))` with the parts given.
pub(crate) fn write_fetch(
    out: &mut Vec<u8>,
    seq: SeqNum,
    uid: Option<Uid>,
    flags: Option<&Flags>,
    modseq: Option<ModSeq>,
) {
    out.extend_from_slice(format!("* {seq} FETCH (").as_bytes());
    let mut first = true;
    let mut sep = |out: &mut Vec<u8>| {
        if !std::mem::take(&mut first) {
            out.push(b' ');
        }
    };
    if let Some(flags) = flags {
        sep(out);
        out.extend_from_slice(b"FLAGS ");
        encode::flag_list(out, flags);
    }
    if let Some(uid) = uid {
        sep(out);
        out.extend_from_slice(format!("UID {uid}").as_bytes());
    }
    if let Some(m) = modseq {
        sep(out);
        out.extend_from_slice(format!("MODSEQ ({m})").as_bytes());
    }
    out.extend_from_slice(b")\r\n");
}

#[cfg(test)]
mod tests;
