//! SELECT and EXAMINE (RFC 3501 §6.3.1-2, RFC 9051 §6.3.2-3) with
//! CONDSTORE and QRESYNC parameters (RFC 7162 §3.1.8, §3.2.5), CLOSE
//! (RFC 3501 §6.4.2, RFC 9051 §6.4.1), UNSELECT (RFC 3691).
//!
//! Every mailbox keeps mod-sequences, so every SELECT says HIGHESTMODSEQ
//! (RFC 7162 §3.1.2.1) and NOMODSEQ (§3.1.2.2) is never sent.

use crate::cmd::expunge::expunge_deleted;
use crate::encode;
use crate::error::ImapError;
use crate::selected::{SelectedView, flags_line, permanent_flags_line};
use crate::session::{CmdResult, Done, Session, State};
use imap_codec::imap_types::command::SelectParameter;
use imap_codec::imap_types::mailbox::Mailbox;

pub(crate) fn select(
    s: &mut Session,
    mailbox: &Mailbox<'_>,
    parameters: &[SelectParameter],
    read_only: bool,
) -> CmdResult {
    let resync = qresync::params(s, parameters)?;
    // A SELECT, even a failing one, first closes the selected mailbox.
    let account = match std::mem::replace(&mut s.state, State::Logout) {
        State::Selected(account, _) => {
            // RFC 9051 §6.3.2 (and RFC 7162 §3.2.11).
            s.conn.out().extend_from_slice(b"* OK [CLOSED] Previous mailbox closed\r\n");
            account
        }
        State::Authenticated(account) => account,
        other => {
            s.state = other;
            return Err(ImapError::Closed);
        }
    };
    s.state = State::Authenticated(account.clone());
    let name = match mailbox {
        Mailbox::Inbox => "INBOX".to_owned(),
        Mailbox::Other(o) => s.mailbox_name(o.as_ref())?,
    };
    // The UIDs, the first unseen message and the keywords, without reading
    // each message's record (`coimail_store::MailboxSnapshot`): this is what
    // keeps SELECT of a large mailbox within milliseconds.
    let (snap, pin) = s.ctx.store.pinned_snapshot(account.id, &name)?;
    let info = snap.info;
    let first_unseen = snap.first_unseen;
    let mut view = SelectedView::new(&info, read_only, snap.uids, &snap.keywords).with_pin(pin);
    if !s.rev2 {
        // RFC 3501 §2.3.2: a read-write session takes the recent messages
        // for itself; EXAMINE only looks (IMAP4rev2 has no \Recent).
        let from = s.ctx.store.claim_recent(info.id, view.uid_next(), !read_only);
        view.add_recent(from, view.uid_next());
    }
    let mut r = flags_line(view.keywords());
    r.push_str(&format!("* {} EXISTS\r\n", view.exists()));
    if !s.rev2 {
        r.push_str(&format!("* {} RECENT\r\n", view.recent_changed().unwrap_or(0)));
        if let Some(seq) = first_unseen.and_then(|uid| view.seq_of(uid)) {
            r.push_str(&format!("* OK [UNSEEN {seq}] First unseen message\r\n"));
        }
    }
    r.push_str(&format!("* OK [UIDVALIDITY {}] UIDs valid\r\n", info.uid_validity));
    r.push_str(&format!("* OK [UIDNEXT {}] Predicted next UID\r\n", view.uid_next()));
    r.push_str(&permanent_flags_line(view.keywords(), read_only));
    r.push_str(&format!("* OK [HIGHESTMODSEQ {}] Highest\r\n", info.highest_modseq));
    let out = s.conn.out();
    out.extend_from_slice(r.as_bytes());
    if s.rev2 {
        // RFC 9051 §6.3.2: the mailbox's name as the server spells it.
        out.extend_from_slice(b"* LIST () \"/\" ");
        encode::mailbox(out, &info.name, true);
        out.extend_from_slice(b"\r\n");
    }
    if let Some(r) = resync.filter(|r| r.uid_validity == info.uid_validity) {
        // RFC 7162 §3.2.5.1: what changed since the client's modseq (no resync when UIDVALIDITY changed).
        let messages = s.ctx.store.messages(account.id, info.id)?;
        qresync::report(s.conn.out(), &s.ctx.store, account.id, &mut view, &messages, &r)?;
    }
    tracing::debug!(mailbox = %coimail_directory::LogSafe(&info.name), read_only, "selected");
    s.state = State::Selected(account, Box::new(view));
    let (code, verb) = if read_only { ("READ-ONLY", "EXAMINE") } else { ("READ-WRITE", "SELECT") };
    Ok(Done::with_code(code, format!("{verb} completed")))
}

/// CLOSE: expunges the `\Deleted` messages of a read-write mailbox without
/// a single EXPUNGE response, then leaves the selected state (even when
/// the expunge failed: the client is told, and is no longer in the mailbox).
pub(crate) async fn close(s: &mut Session) -> CmdResult {
    let State::Selected(account, view) = &s.state else { return Err(ImapError::bad("No mailbox selected")) };
    let expunged =
        if view.read_only { Ok(Vec::new()) } else { expunge_deleted(&s.ctx.store, account.id, view, None).await };
    s.state = State::Authenticated(account.clone());
    expunged?;
    Ok(Done::ok("CLOSE completed"))
}

pub(crate) fn unselect(s: &mut Session) -> CmdResult {
    match std::mem::replace(&mut s.state, State::Logout) {
        State::Selected(account, _) => {
            s.state = State::Authenticated(account);
            Ok(Done::ok("UNSELECT completed"))
        }
        other => {
            s.state = other;
            Err(ImapError::bad("No mailbox selected"))
        }
    }
}

mod qresync;
#[cfg(test)]
mod tests_recent;

#[cfg(test)]
mod tests {
    use crate::testing::{TestServer, check};

    #[tokio::test]
    async fn select_examine_unselect() {
        let srv = TestServer::start().await;
        srv.deliver(b"Subject: one\r\n\r\nbody\r\n").await;
        srv.deliver(b"Subject: two\r\n\r\nbody\r\n").await;
        let info = srv.store.mailbox(srv.account.id, "INBOX").unwrap();
        let mut c = srv.connect().await;
        c.line().await;
        c.login(&srv).await;
        check(
            &mut c,
            &format!(
                "C: a1 SELECT inbox
                 S: * FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft)
                 S: * 2 EXISTS
                 S: * 2 RECENT
                 S: * OK [UNSEEN 1] First unseen message
                 S: * OK [UIDVALIDITY {v}] UIDs valid
                 S: * OK [UIDNEXT 3] Predicted next UID
                 S: * OK [PERMANENTFLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft \\*)] Flags permitted
                 S: * OK [HIGHESTMODSEQ {m}] Highest
                 S: a1 OK [READ-WRITE] SELECT completed
                 C: a2 EXAMINE Sent
                 S: * OK [CLOSED] Previous mailbox closed
                 S: * FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft)
                 S: * 0 EXISTS
                 S: * 0 RECENT
                 S: * OK [UIDVALIDITY ...
                 S: * OK [UIDNEXT 1] Predicted next UID
                 S: * OK [PERMANENTFLAGS ()] Read-only mailbox
                 S: * OK [HIGHESTMODSEQ ...
                 S: a2 OK [READ-ONLY] EXAMINE completed
                 C: a3 UNSELECT
                 S: a3 OK UNSELECT completed
                 C: a4 UNSELECT
                 S: a4 BAD UNSELECT needs a selected mailbox
                 C: a5 SELECT Nope
                 S: a5 NO [NONEXISTENT] mailbox Nope does not exist
                 C: a6 SELECT INBOX (QRESYNC (1 1))
                 S: a6 BAD QRESYNC needs ENABLE QRESYNC first",
                v = info.uid_validity,
                m = info.highest_modseq,
            ),
        )
        .await;
    }

    #[tokio::test]
    async fn failed_select_leaves_authenticated_state() {
        let srv = TestServer::start().await;
        let mut c = srv.connect().await;
        c.line().await;
        c.login(&srv).await;
        c.select("INBOX").await;
        check(
            &mut c,
            "C: a1 SELECT Nope
             S: * OK [CLOSED] Previous mailbox closed
             S: a1 NO [NONEXISTENT] mailbox Nope does not exist
             C: a2 FETCH 1 FLAGS
             S: a2 BAD FETCH needs a selected mailbox",
        )
        .await;
    }

    #[tokio::test]
    async fn imap4rev2_select_has_list_and_no_recent() {
        let srv = TestServer::start().await;
        srv.deliver(b"Subject: one\r\n\r\nbody\r\n").await;
        let mut c = srv.connect().await;
        c.line().await;
        c.login(&srv).await;
        check(
            &mut c,
            "C: a1 ENABLE IMAP4rev2
             S: * ENABLED IMAP4rev2
             S: a1 OK ENABLE completed
             C: a2 SELECT INBOX
             S: * FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft)
             S: * 1 EXISTS
             S: * OK [UIDVALIDITY ...
             S: * OK [UIDNEXT 2] Predicted next UID
             S: * OK [PERMANENTFLAGS ...
             S: * OK [HIGHESTMODSEQ ...
             S: * LIST () \"/\" \"INBOX\"
             S: a2 OK [READ-WRITE] SELECT completed",
        )
        .await;
    }

    #[tokio::test]
    async fn close_expunges_silently_only_when_read_write() {
        let srv = TestServer::start().await;
        for i in 1..=3 {
            srv.deliver(format!("Subject: {i}\r\n\r\n{i}\r\n").as_bytes()).await;
        }
        let mut c = srv.connect().await;
        c.line().await;
        c.login(&srv).await;
        c.select("INBOX").await;
        check(
            &mut c,
            "C: a1 STORE 1,3 +FLAGS.SILENT (\\Deleted)
             S: a1 OK STORE completed
             C: a2 CHECK
             S: a2 OK CHECK completed
             C: a3 EXAMINE INBOX
             S: * OK [CLOSED] ...
             S: * FLAGS ...
             S: * 3 EXISTS
             S: * 0 RECENT
             S: * OK [UNSEEN 1] ...
             S: * OK [UIDVALIDITY ...
             S: * OK [UIDNEXT 4] ...
             S: * OK [PERMANENTFLAGS ()] Read-only mailbox
             S: * OK [HIGHESTMODSEQ ...
             S: a3 OK [READ-ONLY] EXAMINE completed
             C: a4 CLOSE
             S: a4 OK CLOSE completed
             C: a5 STATUS INBOX (MESSAGES DELETED)
             S: * STATUS \"INBOX\" (MESSAGES 3 DELETED 2)
             S: a5 OK STATUS completed
             C: a6 CLOSE
             S: a6 BAD CLOSE needs a selected mailbox",
        )
        .await;
        c.select("INBOX").await;
        check(
            &mut c,
            "C: b1 CLOSE
             S: b1 OK CLOSE completed
             C: b2 STATUS INBOX (MESSAGES DELETED UIDNEXT)
             S: * STATUS \"INBOX\" (MESSAGES 1 DELETED 0 UIDNEXT 4)
             S: b2 OK STATUS completed
             C: b3 FETCH 1 UID
             S: b3 BAD FETCH needs a selected mailbox",
        )
        .await;
    }
}
