//! EXPUNGE (RFC 3501 §6.4.3, RFC 9051 §6.4.3) and UIDPLUS's UID EXPUNGE
//! (RFC 4315 §2.1); also the silent expunge of CLOSE (`select.rs`).
//!
//! Only messages this session knows are expunged: one appended with
//! `\Deleted` by someone else a moment ago was never shown to this client
//! and is left for a later EXPUNGE. The session's own expunges are queued
//! on the selected view and reported at the end of the command, in order
//! and renumbered (RFC 3501 §7.4.1).

use crate::error::{Code, ImapError};
use crate::selected::SelectedView;
use crate::session::{CmdResult, Done, Session, State};
use coimail_store::{AccountId, Store, Uid};
use imap_codec::imap_types::sequence::SequenceSet;

/// EXPUNGE (`set` None) or UID EXPUNGE `set`.
pub(crate) async fn expunge(s: &mut Session, set: Option<&SequenceSet>) -> CmdResult {
    let State::Selected(account, view) = &s.state else { return Err(ImapError::Closed) };
    if view.read_only {
        return Err(ImapError::no(Code::Cannot, "Mailbox is read-only"));
    }
    let only = match set {
        Some(set) => {
            let targets = view.resolve(set, true).map_err(|_| ImapError::bad("Invalid UID set"))?;
            Some(targets.into_iter().map(|t| t.1).collect::<Vec<_>>())
        }
        None => None,
    };
    let gone = expunge_deleted(&s.ctx.store, account.id, view, only.as_deref()).await?;
    if let State::Selected(_, view) = &mut s.state {
        view.expunged_here(&gone);
    }
    // RFC 7162 §3.2.7, §3.2.9: the mailbox's HIGHESTMODSEQ after the expunge.
    match crate::cmd::notify::highest_modseq(s) {
        Some(m) => Ok(Done::with_code(format!("HIGHESTMODSEQ {m}"), "EXPUNGE completed")),
        None => Ok(Done::ok("EXPUNGE completed")),
    }
}

/// Expunges the `\Deleted` messages the view knows (of `only`, when given)
/// and returns their UIDs. Costs O(1) when nothing is `\Deleted`.
pub(crate) async fn expunge_deleted(
    store: &Store,
    account: AccountId,
    view: &SelectedView,
    only: Option<&[Uid]>,
) -> Result<Vec<Uid>, ImapError> {
    if store.mailbox_status_by_id(account, view.mailbox)?.deleted == 0 {
        return Ok(Vec::new());
    }
    // Every UID below `uid_next` is one the view knows (or one already gone).
    let range = match only {
        Some(uids) => match (uids.first(), uids.last()) {
            (Some(&a), Some(&b)) => a..=b,
            _ => return Ok(Vec::new()),
        },
        None => Uid::MIN..=view.uid_next().prev().unwrap_or(Uid(0)),
    };
    let deleted: Vec<Uid> = store
        .messages_in(account, view.mailbox, &[range])?
        .into_iter()
        .filter(|m| m.flags.contains("\\Deleted") && only.is_none_or(|o| o.binary_search(&m.uid).is_ok()))
        .map(|m| m.uid)
        .collect();
    if deleted.is_empty() {
        return Ok(deleted);
    }
    Ok(store.expunge(account, view.mailbox, &deleted).await?)
}

#[cfg(test)]
mod tests {
    use crate::testing::{TestServer, check};

    #[tokio::test]
    async fn expunge_reports_in_order_with_renumbering() {
        let srv = TestServer::start().await;
        for i in 1..=6 {
            srv.deliver(format!("Subject: {i}\r\n\r\n{i}\r\n").as_bytes()).await;
        }
        let mut c = srv.connect().await;
        c.line().await;
        c.login(&srv).await;
        c.select("INBOX").await;
        check(
            &mut c,
            "C: a1 STORE 2,3,5 +FLAGS.SILENT (\\Deleted)
             S: a1 OK STORE completed
             C: a2 EXPUNGE
             S: * 2 EXPUNGE
             S: * 2 EXPUNGE
             S: * 3 EXPUNGE
             S: a2 OK EXPUNGE completed
             C: a3 FETCH 1:* UID
             S: * 1 FETCH (UID 1)
             S: * 2 FETCH (UID 4)
             S: * 3 FETCH (UID 6)
             S: a3 OK FETCH completed
             C: a4 EXPUNGE
             S: a4 OK EXPUNGE completed",
        )
        .await;
    }

    #[tokio::test]
    async fn uid_expunge_only_touches_the_given_uids() {
        let srv = TestServer::start().await;
        for i in 1..=4 {
            srv.deliver(format!("Subject: {i}\r\n\r\n{i}\r\n").as_bytes()).await;
        }
        let mut c = srv.connect().await;
        c.line().await;
        c.login(&srv).await;
        c.select("INBOX").await;
        check(
            &mut c,
            "C: a1 STORE 1:* +FLAGS.SILENT (\\Deleted)
             S: a1 OK STORE completed
             C: a2 UID EXPUNGE 2:3,9
             S: * 2 EXPUNGE
             S: * 2 EXPUNGE
             S: a2 OK EXPUNGE completed
             C: a3 UID EXPUNGE 7:*
             S: * 2 EXPUNGE
             S: a3 OK EXPUNGE completed
             C: a4 FETCH 1:* UID
             S: * 1 FETCH (UID 1)
             S: a4 OK FETCH completed
             C: a5 EXAMINE INBOX
             S: * OK [CLOSED] Previous mailbox closed
             S: * FLAGS ...
             S: * 1 EXISTS
             S: * 0 RECENT
             S: * OK [UNSEEN 1] ...
             S: * OK [UIDVALIDITY ...
             S: * OK [UIDNEXT 5] ...
             S: * OK [PERMANENTFLAGS ()] Read-only mailbox
             S: * OK [HIGHESTMODSEQ ...
             S: a5 OK [READ-ONLY] EXAMINE completed
             C: a6 EXPUNGE
             S: a6 NO [CANNOT] Mailbox is read-only
             C: a7 UID EXPUNGE 1
             S: a7 NO [CANNOT] Mailbox is read-only",
        )
        .await;
    }

    #[tokio::test]
    async fn expunge_leaves_deleted_mail_this_session_never_saw() {
        let srv = TestServer::start().await;
        srv.deliver(b"Subject: 1\r\n\r\n1\r\n").await;
        let mut c = srv.connect().await;
        c.line().await;
        c.login(&srv).await;
        c.select("INBOX").await;
        let deleted: coimail_store::Flags = ["\\Deleted"].into_iter().collect();
        srv.store.append(srv.account.id, "INBOX", b"Subject: 2\r\n\r\n2\r\n", deleted, 0).await.unwrap();
        check(
            &mut c,
            "C: a1 EXPUNGE
             S: * 2 EXISTS
             S: * 2 RECENT
             S: a1 OK EXPUNGE completed
             C: a2 EXPUNGE
             S: * 2 EXPUNGE
             S: a2 OK EXPUNGE completed",
        )
        .await;
    }
}
