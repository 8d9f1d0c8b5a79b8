//! QRESYNC (RFC 7162 §3.2) and CONDSTORE-only resynchronisation over real
//! sockets: one session changes the mailbox while another is away, then
//! the other comes back and catches up.

use crate::testing::{Client, TestServer, check};
use coimail_store::{MessageMeta, ModSeq, Uid};

async fn connect(srv: &TestServer) -> Client {
    let mut c = srv.connect().await;
    c.line().await;
    c.login(srv).await;
    c
}

async fn qresync_client(srv: &TestServer) -> Client {
    let mut c = connect(srv).await;
    check(&mut c, "C: q1 ENABLE QRESYNC\nS: * ENABLED QRESYNC\nS: q1 OK ENABLE completed").await;
    c
}

fn inbox(srv: &TestServer) -> (u32, ModSeq, Vec<MessageMeta>) {
    let info = srv.store.mailbox(srv.account.id, "INBOX").unwrap();
    (info.uid_validity, info.highest_modseq, srv.store.messages(srv.account.id, info.id).unwrap())
}

/// Five messages; returns the client's state after its last sync: (UIDVALIDITY, HIGHESTMODSEQ).
async fn five_then_away(srv: &TestServer) -> (u32, ModSeq) {
    for i in 1..=5 {
        srv.deliver(format!("Subject: {i}\r\n\r\n{i}\r\n").as_bytes()).await;
    }
    let mut b = qresync_client(srv).await;
    let r = b.command("b1", "SELECT INBOX").await;
    let (validity, highest, _) = inbox(srv);
    assert!(r.contains(&format!("* OK [HIGHESTMODSEQ {highest}] Highest")), "{r:?}");
    b.command("b2", "LOGOUT").await;
    (validity, highest)
}

/// Session A: flags UID 2, expunges UIDs 3 and 5, appends UID 6.
async fn session_a_changes(srv: &TestServer) {
    let mut a = connect(srv).await;
    a.select("INBOX").await;
    check(
        &mut a,
        "C: a1 UID STORE 2 +FLAGS (\\Flagged)
         S: * 2 FETCH (FLAGS (\\Flagged) UID 2)
         S: a1 OK STORE completed
         C: a2 UID STORE 3,5 +FLAGS.SILENT (\\Deleted)
         S: a2 OK STORE completed
         C: a3 EXPUNGE
         S: * 3 EXPUNGE
         S: * 4 EXPUNGE
         S: a3 OK EXPUNGE completed
         C: a4 APPEND INBOX {10}
         S: + Ready for literal data
         C: Subject: 6
         S: * 4 EXISTS
         S: * 1 RECENT
         S: a4 OK [APPENDUID ...",
    )
    .await;
}

#[tokio::test]
async fn reconnect_with_qresync_gets_exactly_what_changed() {
    let srv = TestServer::start().await;
    let (validity, since) = five_then_away(&srv).await;
    session_a_changes(&srv).await;
    let (_, highest, now) = inbox(&srv);
    let (m2, m6) = (now[1].modseq, now[3].modseq);
    assert_eq!(now.iter().map(|m| m.uid).collect::<Vec<_>>(), [1, 2, 4, 6].map(Uid));

    // With the known UIDs: the two expunged ones, and the flag change of UID 2.
    let mut b = qresync_client(&srv).await;
    check(
        &mut b,
        &format!(
            "C: b1 SELECT INBOX (QRESYNC ({validity} {since} 1:5))
             S: * FLAGS ...
             S: * 4 EXISTS
             S: * 0 RECENT
             S: * OK [UNSEEN 1] First unseen message
             S: * OK [UIDVALIDITY {validity}] UIDs valid
             S: * OK [UIDNEXT 7] Predicted next UID
             S: * OK [PERMANENTFLAGS ...
             S: * OK [HIGHESTMODSEQ {highest}] Highest
             S: * VANISHED (EARLIER) 3,5
             S: * 2 FETCH (FLAGS (\\Flagged) UID 2 MODSEQ ({m2}))
             S: b1 OK [READ-WRITE] SELECT completed"
        ),
    )
    .await;
    // Without them, the new message counts as changed too; [CLOSED] first.
    check(
        &mut b,
        &format!(
            "C: b2 EXAMINE INBOX (QRESYNC ({validity} {since}))
             S: * OK [CLOSED] Previous mailbox closed
             S: * FLAGS ...
             S: * 4 EXISTS
             S: * 0 RECENT
             S: * OK [UNSEEN 1] First unseen message
             S: * OK [UIDVALIDITY {validity}] UIDs valid
             S: * OK [UIDNEXT 7] Predicted next UID
             S: * OK [PERMANENTFLAGS ()] Read-only mailbox
             S: * OK [HIGHESTMODSEQ {highest}] Highest
             S: * VANISHED (EARLIER) 3,5
             S: * 2 FETCH (FLAGS (\\Flagged) UID 2 MODSEQ ({m2}))
             S: * 4 FETCH (FLAGS () UID 6 MODSEQ ({m6}))
             S: b2 OK [READ-ONLY] EXAMINE completed"
        ),
    )
    .await;
    // A stale UIDVALIDITY: no resync, the client must start over.
    check(
        &mut b,
        &format!(
            "C: b3 EXAMINE INBOX (QRESYNC ({} {since} 1:5))
             S: * OK [CLOSED] Previous mailbox closed
             S: * FLAGS ...
             S: * 4 EXISTS
             S: * 0 RECENT
             S: * OK [UNSEEN 1] First unseen message
             S: * OK [UIDVALIDITY {validity}] UIDs valid
             S: * OK [UIDNEXT 7] Predicted next UID
             S: * OK [PERMANENTFLAGS ()] Read-only mailbox
             S: * OK [HIGHESTMODSEQ {highest}] Highest
             S: b3 OK [READ-ONLY] EXAMINE completed",
            validity + 1
        ),
    )
    .await;
}

#[tokio::test]
async fn condstore_only_resync_and_uid_fetch_vanished() {
    let srv = TestServer::start().await;
    let (_, since) = five_then_away(&srv).await;
    session_a_changes(&srv).await;
    let (_, _, now) = inbox(&srv);
    let (m2, m6) = (now[1].modseq, now[3].modseq);

    // CONDSTORE only: changed flags by CHANGEDSINCE, expunges by comparing UIDs.
    let mut c = connect(&srv).await;
    let r = c.command("c1", "SELECT INBOX (CONDSTORE)").await;
    assert!(r.last().unwrap().starts_with("c1 OK [READ-WRITE]"), "{r:?}");
    check(
        &mut c,
        &format!(
            "C: c2 UID FETCH 1:* (FLAGS) (CHANGEDSINCE {since})
             S: * 2 FETCH (UID 2 FLAGS (\\Flagged) MODSEQ ({m2}))
             S: * 4 FETCH (UID 6 FLAGS () MODSEQ ({m6}))
             S: c2 OK FETCH completed
             C: c3 UID SEARCH ALL
             S: * SEARCH 1 2 4 6
             S: c3 OK UID SEARCH completed"
        ),
    )
    .await;

    // QRESYNC after selecting: UID FETCH (CHANGEDSINCE VANISHED), VANISHED first (§3.2.6).
    let mut q = qresync_client(&srv).await;
    q.select("INBOX").await;
    check(
        &mut q,
        &format!(
            "C: q2 UID FETCH 1:* (FLAGS) (CHANGEDSINCE {since} VANISHED)
             S: * VANISHED (EARLIER) 3,5
             S: * 2 FETCH (UID 2 FLAGS (\\Flagged) MODSEQ ({m2}))
             S: * 4 FETCH (UID 6 FLAGS () MODSEQ ({m6}))
             S: q2 OK FETCH completed
             C: q3 UID FETCH 4:5 (FLAGS) (CHANGEDSINCE {since} VANISHED)
             S: * VANISHED (EARLIER) 5
             S: q3 OK FETCH completed
             C: q4 FETCH 1:* (FLAGS) (CHANGEDSINCE {since} VANISHED)
             S: q4 BAD VANISHED is for UID FETCH only
             C: q5 UID FETCH 1:* (FLAGS) (VANISHED)
             S: q5 BAD VANISHED needs CHANGEDSINCE"
        ),
    )
    .await;
}

#[tokio::test]
async fn with_qresync_every_expunge_is_vanished() {
    let srv = TestServer::start().await;
    for i in 1..=6 {
        srv.deliver(format!("Subject: {i}\r\n\r\n{i}\r\n").as_bytes()).await;
    }
    srv.store.create_mailbox(srv.account.id, "Archive2", None).await.unwrap();
    let mut q = qresync_client(&srv).await;
    q.select("INBOX").await;
    // Our own EXPUNGE: VANISHED, and the tagged OK carries HIGHESTMODSEQ (§3.2.7).
    q.send("e1 STORE 2:3 +FLAGS.SILENT (\\Deleted)").await;
    q.line().await;
    q.line().await;
    assert_eq!(q.line().await, "e1 OK STORE completed");
    let r = q.command("e2", "EXPUNGE").await;
    let highest = srv.store.mailbox(srv.account.id, "INBOX").unwrap().highest_modseq;
    assert_eq!(r, vec!["* VANISHED 2:3".to_string(), format!("e2 OK [HIGHESTMODSEQ {highest}] EXPUNGE completed")]);
    // MOVE (RFC 6851 §4.4) and someone else's expunge.
    check(
        &mut q,
        "C: e3 UID MOVE 4 Archive2
         S: * OK [COPYUID ...
         S: * VANISHED 4
         S: e3 OK MOVE completed",
    )
    .await;
    let inbox = srv.store.mailbox(srv.account.id, "INBOX").unwrap().id;
    srv.store.expunge(srv.account.id, inbox, &[Uid(1), Uid(6)]).await.unwrap();
    check(
        &mut q,
        "C: e4 NOOP
         S: * VANISHED 1,6
         S: e4 OK NOOP completed
         C: e5 UID FETCH 1:* UID
         S: * 1 FETCH (UID 5 MODSEQ (...
         S: e5 OK FETCH completed
         C: e6 CLOSE
         S: e6 OK CLOSE completed",
    )
    .await;
}

/// The stress tester caught this under load: SELECT reads the mailbox's
/// keywords, another session sets a new keyword, then QRESYNC's listing
/// (read after) shows it. The FETCH must not name a keyword FLAGS did not.
#[tokio::test]
async fn a_keyword_set_after_the_mailbox_was_read_is_announced_before_the_resync_fetch() {
    let srv = TestServer::start().await;
    srv.deliver(b"Subject: 1\r\n\r\n1\r\n").await;
    let (validity, before, _) = inbox(&srv);
    let (snap, _pin) = srv.store.pinned_snapshot(srv.account.id, "INBOX").unwrap();
    let mut view = crate::selected::SelectedView::new(&snap.info, false, snap.uids, &snap.keywords);
    assert_eq!(view.keywords().count(), 0);
    // The other session, between the keywords and the listing.
    let flags: coimail_store::Flags = ["$Late"].into_iter().collect();
    srv.store.store_flags(srv.account.id, snap.info.id, &[Uid(1)], coimail_store::FlagOp::Add, &flags).await.unwrap();
    let (_, _, messages) = inbox(&srv);
    let r = super::Resync { uid_validity: validity, modseq: before, known: None };
    let mut out = Vec::new();
    super::report(&mut out, &srv.store, srv.account.id, &mut view, &messages, &r).unwrap();
    let out = String::from_utf8(out).unwrap();
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 3, "{out}");
    assert_eq!(lines[0], "* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft $Late)");
    assert!(lines[1].starts_with("* OK [PERMANENTFLAGS (") && lines[1].contains("$Late"), "{out}");
    assert!(lines[2].starts_with("* 1 FETCH (FLAGS ($Late) UID 1"), "{out}");
}

/// The stress tester caught this under load (`modseq-decreased`, once in
/// a side-by-side run of ~300,000 commands): two flag changes of one
/// message land between SELECT's snapshot and QRESYNC's listing, and only
/// the older one is on the bus by the session's next command. The resync
/// FETCH showed the newer modseq; the older bus event must not be reported
/// after it.
#[tokio::test]
async fn a_bus_event_older_than_the_resync_fetch_is_not_reported_after_it() {
    use coimail_store::{Change, FlagOp, Flags};
    let srv = TestServer::start().await;
    srv.deliver(b"Subject: 1\r\n\r\n1\r\n").await;
    let (validity, before, _) = inbox(&srv);
    let (snap, _pin) = srv.store.pinned_snapshot(srv.account.id, "INBOX").unwrap();
    let mailbox = snap.info.id;
    let mut view = crate::selected::SelectedView::new(&snap.info, false, snap.uids, &snap.keywords);
    // Another session, between the snapshot and the listing: two changes.
    let seen: Flags = ["\\Seen"].into_iter().collect();
    let flagged: Flags = ["\\Flagged"].into_iter().collect();
    srv.store.store_flags(srv.account.id, mailbox, &[Uid(1)], FlagOp::Add, &seen).await.unwrap();
    srv.store.store_flags(srv.account.id, mailbox, &[Uid(1)], FlagOp::Add, &flagged).await.unwrap();
    let (_, newest, messages) = inbox(&srv);
    let r = super::Resync { uid_validity: validity, modseq: before, known: None };
    let mut out = Vec::new();
    super::report(&mut out, &srv.store, srv.account.id, &mut view, &messages, &r).unwrap();
    let out = String::from_utf8(out).unwrap();
    assert!(out.contains(&format!("MODSEQ ({newest})")), "{out}");
    // The older change's bus event arrives; the newer one's is not out yet.
    let older = ModSeq(newest.0 - 1);
    view.note(&Change::FlagsChanged { mailbox, uid: Uid(1), flags: seen, modseq: older });
    let updates = view.take_updates(None, true);
    assert!(updates.is_empty(), "reported after MODSEQ {newest}: {updates:?}");
    // The newer one's event tells nothing new either.
    let both: Flags = ["\\Seen", "\\Flagged"].into_iter().collect();
    view.note(&Change::FlagsChanged { mailbox, uid: Uid(1), flags: both, modseq: newest });
    assert!(view.take_updates(None, true).is_empty());
    view.settle(srv.store.change_mark());
}
