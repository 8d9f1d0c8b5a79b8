//! `\Recent` (RFC 3501 §2.3.2, §6.3.1, §6.4.4, §7.3.2): one session per
//! message gets it; EXAMINE looks without taking it; COPY makes the
//! copies recent; IMAP4rev2 sessions neither see nor take it.

use crate::testing::{Client, TestServer, check};

async fn logged_in(srv: &TestServer) -> Client {
    let mut c = srv.connect().await;
    c.line().await;
    c.login(srv).await;
    c
}

#[tokio::test]
async fn one_session_per_message_gets_recent() {
    let srv = TestServer::start().await;
    srv.deliver(b"Subject: one\r\n\r\n1\r\n").await;
    srv.deliver(b"Subject: two\r\n\r\n2\r\n").await;
    let (mut a, mut b, mut e) = (logged_in(&srv).await, logged_in(&srv).await, logged_in(&srv).await);
    // EXAMINE first: sees both as recent and leaves them to the next SELECT.
    check(
        &mut e,
        "C: e1 EXAMINE INBOX
         S: * FLAGS ...
         S: * 2 EXISTS
         S: * 2 RECENT
         S: * OK [UNSEEN 1] ...
         S: * OK [UIDVALIDITY ...
         S: * OK [UIDNEXT 3] ...
         S: * OK [PERMANENTFLAGS ()] Read-only mailbox
         S: * OK [HIGHESTMODSEQ ...
         S: e1 OK [READ-ONLY] EXAMINE completed
         C: e2 STATUS INBOX (RECENT MESSAGES)
         S: * STATUS \"INBOX\" (RECENT 2 MESSAGES 2)
         S: e2 OK STATUS completed",
    )
    .await;
    check(
        &mut a,
        "C: a1 SELECT INBOX
         S: * FLAGS ...
         S: * 2 EXISTS
         S: * 2 RECENT
         S: * OK [UNSEEN 1] ...
         S: * OK [UIDVALIDITY ...
         S: * OK [UIDNEXT 3] ...
         S: * OK [PERMANENTFLAGS ...
         S: * OK [HIGHESTMODSEQ ...
         S: a1 OK [READ-WRITE] SELECT completed
         C: a2 FETCH 1:* FLAGS
         S: * 1 FETCH (FLAGS (\\Recent))
         S: * 2 FETCH (FLAGS (\\Recent))
         S: a2 OK FETCH completed
         C: a3 STORE 1 +FLAGS (\\Seen)
         S: * 1 FETCH (FLAGS (\\Recent \\Seen))
         S: a3 OK STORE completed
         C: a4 SEARCH NEW
         S: * SEARCH 2
         S: a4 OK SEARCH completed
         C: a5 SEARCH RECENT
         S: * SEARCH 1 2
         S: a5 OK SEARCH completed
         C: a6 SEARCH OLD
         S: * SEARCH
         S: a6 OK SEARCH completed",
    )
    .await;
    // The first session took them: the next one sees none, and STATUS counts none.
    check(
        &mut b,
        "C: b1 STATUS INBOX (RECENT)
         S: * STATUS \"INBOX\" (RECENT 0)
         S: b1 OK STATUS completed
         C: b2 SELECT INBOX
         S: * FLAGS ...
         S: * 2 EXISTS
         S: * 0 RECENT
         S: * OK [UNSEEN 2] ...
         S: * OK [UIDVALIDITY ...
         S: * OK [UIDNEXT 3] ...
         S: * OK [PERMANENTFLAGS ...
         S: * OK [HIGHESTMODSEQ ...
         S: b2 OK [READ-WRITE] SELECT completed
         C: b3 SEARCH OLD
         S: * SEARCH 1 2
         S: b3 OK SEARCH completed",
    )
    .await;
    // New mail: whoever is told first takes it (RFC 3501 §7.3.2: RECENT
    // after EXISTS, sent when the count changed).
    srv.deliver(b"Subject: three\r\n\r\n3\r\n").await;
    check(
        &mut b,
        "C: b4 NOOP
         S: * 3 EXISTS
         S: * 1 RECENT
         S: b4 OK NOOP completed
         C: b5 FETCH 3 FLAGS
         S: * 3 FETCH (FLAGS (\\Recent))
         S: b5 OK FETCH completed",
    )
    .await;
    check(
        &mut a,
        "C: a7 NOOP
         S: * 3 EXISTS
         S: a7 OK NOOP completed
         C: a8 FETCH 3 FLAGS
         S: * 3 FETCH (FLAGS ())
         S: a8 OK FETCH completed",
    )
    .await;
}

#[tokio::test]
async fn copies_are_recent_and_imap4rev2_has_no_recent() {
    let srv = TestServer::start().await;
    srv.deliver(b"Subject: one\r\n\r\n1\r\n").await;
    let (mut a, mut b) = (logged_in(&srv).await, logged_in(&srv).await);
    a.select("INBOX").await;
    check(
        &mut a,
        "C: a1 COPY 1 Archive
         S: a1 OK [COPYUID ...
         C: a2 STATUS Archive (RECENT)
         S: * STATUS \"Archive\" (RECENT 1)
         S: a2 OK STATUS completed",
    )
    .await;
    check(
        &mut b,
        "C: b1 ENABLE IMAP4rev2
         S: * ENABLED IMAP4rev2
         S: b1 OK ENABLE completed
         C: b2 SELECT Archive
         S: * FLAGS ...
         S: * 1 EXISTS
         S: * OK [UIDVALIDITY ...
         S: * OK [UIDNEXT 2] ...
         S: * OK [PERMANENTFLAGS ...
         S: * OK [HIGHESTMODSEQ ...
         S: * LIST () \"/\" \"Archive\"
         S: b2 OK [READ-WRITE] SELECT completed
         C: b3 FETCH 1 FLAGS
         S: * 1 FETCH (FLAGS ())
         S: b3 OK FETCH completed",
    )
    .await;
    // The rev2 session did not take it.
    check(
        &mut a,
        "C: a3 SELECT Archive
         S: * OK [CLOSED] ...
         S: * FLAGS ...
         S: * 1 EXISTS
         S: * 1 RECENT
         S: * OK [UNSEEN 1] ...
         S: * OK [UIDVALIDITY ...
         S: * OK [UIDNEXT 2] ...
         S: * OK [PERMANENTFLAGS ...
         S: * OK [HIGHESTMODSEQ ...
         S: a3 OK [READ-WRITE] SELECT completed",
    )
    .await;
}
