//! COPY and MOVE with their UID forms (RFC 3501 §6.4.7, RFC 9051 §6.4.7-8,
//! RFC 6851), answering with UIDPLUS's COPYUID (RFC 4315 §3).
//!
//! The store copies by reference (no message bytes move) and a MOVE is one
//! commit. MOVE reports COPYUID in an untagged OK before the EXPUNGEs of
//! the moved messages (RFC 6851 §4.3); those go through the selected view
//! like any other expunge, so sequence numbers stay right.

use crate::cmd::append::try_create;
use crate::error::{Code, ImapError};
use crate::session::{CmdResult, Done, Session, State};
use coimail_store::Uid;
use imap_codec::imap_types::mailbox::Mailbox;
use imap_codec::imap_types::sequence::SequenceSet;

/// COPY (`remove` false) or MOVE (`remove` true).
pub(crate) async fn copy(
    s: &mut Session,
    set: &SequenceSet,
    mailbox: &Mailbox<'_>,
    uid: bool,
    remove: bool,
) -> CmdResult {
    let verb = if remove { "MOVE" } else { "COPY" };
    let name = match mailbox {
        Mailbox::Inbox => "INBOX".to_owned(),
        Mailbox::Other(o) => s.mailbox_name(o.as_ref())?,
    };
    let State::Selected(account, view) = &s.state else { return Err(ImapError::Closed) };
    let (account, source) = (account.id, view.mailbox);
    if remove && view.read_only {
        // RFC 6851 §3.3: MOVE needs the right to expunge.
        return Err(ImapError::no(Code::Cannot, "Mailbox is read-only"));
    }
    let targets = view.resolve(set, uid).map_err(|_| ImapError::bad("Invalid message sequence number"))?;
    let store = &s.ctx.store;
    let target = store.mailbox(account, &name).map_err(|e| try_create(e, &name))?;
    let uids: Vec<Uid> = targets.iter().map(|t| t.1).collect();
    let (Some(&first), Some(&last)) = (uids.first(), uids.last()) else {
        // RFC 4315 §3: nothing copied, no COPYUID.
        return Ok(Done::ok(format!("{verb} completed")));
    };
    if !uid {
        // RFC 2180 §4.4.1: a message another session expunged (this one has
        // not been told yet) fails the whole COPY rather than part of it.
        let present = store.messages_in(account, source, &[first..=last])?;
        let found = present.iter().filter(|m| uids.binary_search(&m.uid).is_ok()).count();
        if found < uids.len() {
            return Err(ImapError::no(Code::ExpungeIssued, "Some of the requested messages no longer exist"));
        }
    }
    let pairs = if remove {
        store.move_messages(account, source, &uids, target.id).await
    } else {
        store.copy_messages(account, source, &uids, target.id).await
    }
    .map_err(|e| try_create(e, &name))?;
    if pairs.is_empty() {
        return Ok(Done::ok(format!("{verb} completed")));
    }
    let from: Vec<Uid> = pairs.iter().map(|p| p.0).collect();
    let to: Vec<Uid> = pairs.iter().map(|p| p.1).collect();
    let code = format!("COPYUID {} {} {}", target.uid_validity, number_set(&from), number_set(&to));
    if !remove {
        return Ok(Done::with_code(code, "COPY completed"));
    }
    let line = format!("* OK [{code}] Moved\r\n");
    s.conn.out().extend_from_slice(line.as_bytes());
    if let State::Selected(_, view) = &mut s.state {
        view.expunged_here(&from);
    }
    Ok(Done::ok("MOVE completed"))
}

/// A `sequence-set` / `uid-set` of increasing numbers, with runs as ranges:
/// `1,2,3,5` is `1:3,5`. Order is kept, so COPYUID's two sets pair up.
pub(crate) fn number_set<N: Copy + Into<u32>>(nums: &[N]) -> String {
    let mut out = String::new();
    let mut i = 0;
    while let Some(start) = nums.get(i).map(|&n| n.into()) {
        let mut end = start;
        while nums.get(i + 1).is_some_and(|&n| Some(n.into()) == end.checked_add(1)) {
            end += 1;
            i += 1;
        }
        if !out.is_empty() {
            out.push(',');
        }
        out.push_str(&if start == end { start.to_string() } else { format!("{start}:{end}") });
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests;
