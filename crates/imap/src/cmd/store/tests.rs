use crate::testing::{Client, TestServer, check};
use coimail_store::{FlagOp, Flags, ModSeq, Uid};

async fn selected(srv: &TestServer, n: usize) -> Client {
    for i in 1..=n {
        srv.deliver(format!("Subject: {i}\r\n\r\n{i}\r\n").as_bytes()).await;
    }
    let mut c = srv.connect().await;
    c.line().await;
    c.login(srv).await;
    c.select("INBOX").await;
    c
}

fn modseq_of(srv: &TestServer, uid: u32) -> ModSeq {
    let inbox = srv.store.mailbox(srv.account.id, "INBOX").unwrap().id;
    srv.store.messages(srv.account.id, inbox).unwrap().into_iter().find(|m| m.uid == Uid(uid)).unwrap().modseq
}

#[tokio::test]
async fn store_forms_and_their_responses() {
    let srv = TestServer::start().await;
    let mut c = selected(&srv, 3).await;
    check(
        &mut c,
        "C: a1 STORE 1 FLAGS (\\Seen $Chat)
         S: * FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft $Chat)
         S: * OK [PERMANENTFLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft $Chat \\*)] Flags permitted
         S: * 1 FETCH (FLAGS ($Chat \\Recent \\Seen))
         S: a1 OK STORE completed
         C: a2 STORE 1:2 +FLAGS (\\flagged)
         S: * 1 FETCH (FLAGS ($Chat \\Flagged \\Recent \\Seen))
         S: * 2 FETCH (FLAGS (\\Flagged \\Recent))
         S: a2 OK STORE completed
         C: a3 STORE 2:* -FLAGS.SILENT (\\Flagged)
         S: a3 OK STORE completed
         C: a4 UID STORE 1,3 -FLAGS ($Chat \\Seen)
         S: * 1 FETCH (FLAGS (\\Flagged \\Recent) UID 1)
         S: * 3 FETCH (FLAGS (\\Recent) UID 3)
         S: a4 OK STORE completed
         C: a5 UID STORE 7:9 +FLAGS (\\Seen)
         S: a5 OK STORE completed
         C: a6 STORE *:2 FLAGS.SILENT ()
         S: a6 OK STORE completed
         C: a7 NOOP
         S: a7 OK NOOP completed",
    )
    .await;
    let inbox = srv.store.mailbox(srv.account.id, "INBOX").unwrap().id;
    let flags: Vec<_> = srv.store.messages(srv.account.id, inbox).unwrap().into_iter().map(|m| m.flags).collect();
    assert_eq!(flags, vec![["\\Flagged"].into_iter().collect(), Flags::new(), Flags::new()]);
}

#[tokio::test]
async fn store_refusals() {
    let srv = TestServer::start().await;
    let mut c = selected(&srv, 2).await;
    check(
        &mut c,
        "C: a1 STORE 3 +FLAGS (\\Seen)
         S: a1 BAD Invalid message sequence number
         C: a2 STORE 1 +FLAGS (\\Recent)
         S: a2 BAD Cannot set flag \\Recent
         C: a3 STORE 1 +FLAGS (\\*)
         S: a3 BAD Syntax error in STORE arguments
         C: a4 STORE 1 (UNCHANGEDSINCE 5 UNCHANGEDSINCE 6) +FLAGS (\\Seen)
         S: a4 BAD UNCHANGEDSINCE may be given once
         C: a41 STORE 1 +FLAGS (nil)
         S: a41 BAD NIL is not a valid keyword
         C: a5 EXAMINE INBOX
         S: * OK [CLOSED] Previous mailbox closed
         S: * FLAGS ...
         S: * 2 EXISTS
         S: * 0 RECENT
         S: * OK [UNSEEN 1] ...
         S: * OK [UIDVALIDITY ...
         S: * OK [UIDNEXT 3] ...
         S: * OK [PERMANENTFLAGS ()] Read-only mailbox
         S: * OK [HIGHESTMODSEQ ...
         S: a5 OK [READ-ONLY] EXAMINE completed
         C: a6 STORE 1 +FLAGS (\\Seen)
         S: a6 NO [CANNOT] Mailbox is read-only",
    )
    .await;
}

#[tokio::test]
async fn store_of_a_message_expunged_elsewhere() {
    let srv = TestServer::start().await;
    let mut c = selected(&srv, 2).await;
    let inbox = srv.store.mailbox(srv.account.id, "INBOX").unwrap().id;
    srv.store.expunge(srv.account.id, inbox, &[Uid(1)]).await.unwrap();
    // No EXPUNGE during STORE (RFC 3501 §7.4.1); UID STORE may carry it.
    // The rest of the set is stored and the answer is OK (RFC 2180 §4.2,
    // as Dovecot does): a NO would reach the user for nothing.
    check(
        &mut c,
        "C: a1 STORE 1:2 +FLAGS (\\Seen)
         S: * 2 FETCH (FLAGS (\\Recent \\Seen))
         S: a1 OK STORE completed
         C: a2 STORE 1:2 +FLAGS.SILENT (\\Deleted)
         S: a2 OK STORE completed
         C: a3 UID STORE 1:2 +FLAGS (\\Answered)
         S: * 2 FETCH (FLAGS (\\Answered \\Deleted \\Recent \\Seen) UID 2)
         S: * 1 EXPUNGE
         S: a3 OK STORE completed",
    )
    .await;
}

#[tokio::test]
async fn conditional_store_reports_modified_and_turns_on_modseq() {
    let srv = TestServer::start().await;
    let mut c = selected(&srv, 3).await;
    let (m1, m3) = (modseq_of(&srv, 1), modseq_of(&srv, 3));
    // Message 3 is newer than m1; message 2's flags change is a no-op.
    let since = m1;
    srv.store
        .store_flags(
            srv.account.id,
            srv.store.mailbox(srv.account.id, "INBOX").unwrap().id,
            &[Uid(2)],
            FlagOp::Add,
            &["\\Deleted"].into_iter().collect(),
        )
        .await
        .unwrap();
    let m2 = modseq_of(&srv, 2);
    check(
        &mut c,
        &format!(
            "C: a1 STORE 1:3 (UNCHANGEDSINCE {since}) +FLAGS.SILENT (\\Seen)
             S: * OK [HIGHESTMODSEQ ...
             S: * 1 FETCH (UID 1 MODSEQ ({n1}))
             S: * 2 FETCH (FLAGS (\\Deleted \\Recent) UID 2 MODSEQ ({m2}))
             S: a1 OK [MODIFIED 2:3] Conditional STORE failed",
            n1 = m2.next()
        ),
    )
    .await;
    assert!(m3 > since);
    // CONDSTORE is on now: every FETCH carries MODSEQ, the unsolicited ones too.
    check(
        &mut c,
        &format!(
            "C: a2 UID STORE 3 (UNCHANGEDSINCE {m3}) FLAGS (\\Answered)
             S: * 3 FETCH (FLAGS (\\Answered \\Recent) UID 3 MODSEQ ({n3}))
             S: a2 OK STORE completed
             C: a3 UID STORE 1 (UNCHANGEDSINCE 0) +FLAGS (\\Draft)
             S: a3 OK [MODIFIED 1] Conditional STORE failed
             C: a4 STORE 1 +FLAGS (\\Seen)
             S: * 1 FETCH (FLAGS (\\Recent \\Seen) UID 1 MODSEQ ({n1}))
             S: a4 OK STORE completed",
            n1 = m2.next(),
            n3 = m2.next().next()
        ),
    )
    .await;
}

/// Two sessions on one mailbox: what A does, B sees at its next NOOP or
/// in IDLE, with sequence numbers that agree with the server's.
#[tokio::test]
async fn two_sessions_see_each_others_changes() {
    let srv = TestServer::start().await;
    let mut a = selected(&srv, 4).await;
    let mut b = srv.connect().await;
    b.line().await;
    b.login(&srv).await;
    b.select("INBOX").await;
    check(
        &mut a,
        "C: a1 STORE 2 +FLAGS (\\Seen)
         S: * 2 FETCH (FLAGS (\\Recent \\Seen))
         S: a1 OK STORE completed
         C: a2 STORE 1,3 +FLAGS.SILENT (\\Deleted)
         S: a2 OK STORE completed
         C: a3 EXPUNGE
         S: * 1 EXPUNGE
         S: * 2 EXPUNGE
         S: a3 OK EXPUNGE completed
         C: a4 APPEND INBOX {3+}
         C: new
         S: * 3 EXISTS
         S: * 3 RECENT
         S: a4 OK [APPENDUID ...",
    )
    .await;
    // B is told everything at its next command, in an order that keeps
    // numbers consistent: expunges, then the new message, then flags.
    check(
        &mut b,
        "C: b1 NOOP
         S: * 1 EXPUNGE
         S: * 2 EXPUNGE
         S: * 3 EXISTS
         S: * 1 FETCH (FLAGS (\\Seen) UID 2)
         S: b1 OK NOOP completed
         C: b2 FETCH 1:* UID
         S: * 1 FETCH (UID 2)
         S: * 2 FETCH (UID 4)
         S: * 3 FETCH (UID 5)
         S: b2 OK FETCH completed",
    )
    .await;
    // The same in IDLE, as it happens.
    check(&mut b, "C: b3 IDLE\nS: + idling").await;
    check(
        &mut a,
        "C: a5 STORE 3 FLAGS (\\Flagged)\nS: * 3 FETCH (FLAGS (\\Flagged \\Recent))\nS: a5 OK STORE completed",
    )
    .await;
    assert_eq!(b.line().await, "* 3 FETCH (FLAGS (\\Flagged) UID 5)");
    check(&mut a, "C: a6 UID MOVE 4 Trash\nS: * OK [COPYUID ...\nS: * 2 EXPUNGE\nS: a6 OK MOVE completed").await;
    assert_eq!(b.line().await, "* 2 EXPUNGE");
    check(
        &mut a,
        "C: a7 COPY 1:2 INBOX\nS: * 4 EXISTS\nS: * 4 RECENT
                                                        S: a7 OK [COPYUID ...",
    )
    .await;
    assert_eq!(b.line().await, "* 4 EXISTS");
    check(
        &mut b,
        "C: DONE
         S: b3 OK IDLE terminated
         C: b4 FETCH 1:* UID
         S: * 1 FETCH (UID 2)
         S: * 2 FETCH (UID 5)
         S: * 3 FETCH (UID 6)
         S: * 4 FETCH (UID 7)
         S: b4 OK FETCH completed",
    )
    .await;
    // A's own changes are not echoed back to it.
    check(&mut a, "C: a8 NOOP\nS: a8 OK NOOP completed").await;
}

/// RFC 3501 §7.2.6 / RFC 9051 §7.3.5: a keyword another session created
/// is announced by FLAGS and PERMANENTFLAGS before a FETCH shows it.
#[tokio::test]
async fn a_new_keyword_is_announced_before_it_is_shown() {
    let srv = TestServer::start().await;
    let mut a = selected(&srv, 2).await;
    let mut b = srv.connect().await;
    b.line().await;
    b.login(&srv).await;
    b.select("INBOX").await;
    check(
        &mut a,
        "C: a1 STORE 2 +FLAGS.SILENT ($Important)
         S: * FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft $Important)
         S: * OK [PERMANENTFLAGS ...
         S: a1 OK STORE completed",
    )
    .await;
    check(
        &mut b,
        "C: b1 NOOP
         S: * FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft $Important)
         S: * OK [PERMANENTFLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft $Important \\*)] Flags permitted
         S: * 2 FETCH (FLAGS ($Important) UID 2)
         S: b1 OK NOOP completed
         C: b2 EXAMINE INBOX
         S: * OK [CLOSED] Previous mailbox closed
         S: * FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft $Important)
         S: * 2 EXISTS
         S: * 0 RECENT
         S: * OK [UNSEEN 1] ...
         S: * OK [UIDVALIDITY ...
         S: * OK [UIDNEXT 3] ...
         S: * OK [PERMANENTFLAGS ()] Read-only mailbox
         S: * OK [HIGHESTMODSEQ ...
         S: b2 OK [READ-ONLY] EXAMINE completed",
    )
    .await;
    // A keyword already announced is not announced again.
    check(
        &mut a,
        "C: a2 STORE 1 +FLAGS ($Important)
         S: * 1 FETCH (FLAGS ($Important \\Recent))
         S: a2 OK STORE completed",
    )
    .await;
}
