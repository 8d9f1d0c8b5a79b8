//! CONDSTORE (RFC 7162 §3.1) over a real socket: enabling it, MODSEQ in
//! every FETCH response, CHANGEDSINCE, and the VANISHED modifier's rules.

use crate::testing::{Client, TestServer, check};
use coimail_store::{FlagOp, Flags, MessageMeta, Uid};

async fn setup(n: usize) -> (TestServer, Client) {
    let srv = TestServer::start().await;
    for i in 1..=n {
        srv.deliver(format!("Subject: {i}\r\n\r\nbody {i}\r\n").as_bytes()).await;
    }
    let mut c = srv.connect().await;
    c.line().await;
    c.login(&srv).await;
    (srv, c)
}

fn messages(srv: &TestServer) -> Vec<MessageMeta> {
    let inbox = srv.store.mailbox(srv.account.id, "INBOX").unwrap().id;
    srv.store.messages(srv.account.id, inbox).unwrap()
}

async fn flag(srv: &TestServer, uids: &[u32], flag: &str) {
    let inbox = srv.store.mailbox(srv.account.id, "INBOX").unwrap().id;
    let flags: Flags = [flag].into_iter().collect();
    let uids: Vec<Uid> = uids.iter().copied().map(Uid).collect();
    srv.store.store_flags(srv.account.id, inbox, &uids, FlagOp::Add, &flags).await.unwrap();
}

#[tokio::test]
async fn enable_condstore_puts_modseq_in_every_fetch() {
    let (srv, mut c) = setup(2).await;
    check(&mut c, "C: a1 ENABLE CONDSTORE\nS: * ENABLED CONDSTORE\nS: a1 OK ENABLE completed").await;
    c.select("INBOX").await;
    let m = messages(&srv);
    check(
        &mut c,
        &format!(
            "C: a2 FETCH 1:2 (UID FLAGS)
             S: * 1 FETCH (UID 1 FLAGS (\\Recent) MODSEQ ({}))
             S: * 2 FETCH (UID 2 FLAGS (\\Recent) MODSEQ ({}))
             S: a2 OK FETCH completed",
            m[0].modseq, m[1].modseq
        ),
    )
    .await;
    // BODY[] sets \Seen: the FETCH carries the new FLAGS and the new MODSEQ.
    c.send("a3 FETCH 1 BODY[TEXT]").await;
    let r = String::from_utf8(c.response().await).unwrap();
    let seen = messages(&srv)[0].modseq;
    assert!(seen > m[0].modseq);
    assert_eq!(r, format!("* 1 FETCH (BODY[TEXT] {{8}}\r\nbody 1\r\n MODSEQ ({seen}) FLAGS (\\Recent \\Seen))"));
    assert_eq!(c.line().await, "a3 OK FETCH completed");
    // Another session's change arrives with its MODSEQ (RFC 7162 §3.1).
    flag(&srv, &[2], "\\Flagged").await;
    let flagged = messages(&srv)[1].modseq;
    check(
        &mut c,
        &format!(
            "C: a4 NOOP
             S: * 2 FETCH (FLAGS (\\Flagged \\Recent) UID 2 MODSEQ ({flagged}))
             S: a4 OK NOOP completed"
        ),
    )
    .await;
}

#[tokio::test]
async fn fetch_modseq_and_select_condstore_turn_it_on() {
    let (srv, mut c) = setup(1).await;
    c.select("INBOX").await;
    let m = messages(&srv)[0].modseq;
    check(
        &mut c,
        &format!(
            "C: a1 FETCH 1 (FLAGS)
             S: * 1 FETCH (FLAGS (\\Recent))
             S: a1 OK FETCH completed
             C: a2 FETCH 1 (MODSEQ)
             S: * OK [HIGHESTMODSEQ {m}] Highest
             S: * 1 FETCH (MODSEQ ({m}))
             S: a2 OK FETCH completed
             C: a3 FETCH 1 (FLAGS)
             S: * 1 FETCH (FLAGS (\\Recent) MODSEQ ({m}))
             S: a3 OK FETCH completed"
        ),
    )
    .await;
    let mut c = srv.connect().await;
    c.line().await;
    c.login(&srv).await;
    let highest = srv.store.mailbox(srv.account.id, "INBOX").unwrap().highest_modseq;
    check(
        &mut c,
        &format!(
            "C: b1 EXAMINE INBOX (CONDSTORE)
             S: * FLAGS ...
             S: * 1 EXISTS
             S: * 0 RECENT
             S: * OK [UNSEEN 1] ...
             S: * OK [UIDVALIDITY ...
             S: * OK [UIDNEXT 2] ...
             S: * OK [PERMANENTFLAGS ()] Read-only mailbox
             S: * OK [HIGHESTMODSEQ {highest}] Highest
             S: b1 OK [READ-ONLY] EXAMINE completed
             C: b2 FETCH 1 UID
             S: * 1 FETCH (UID 1 MODSEQ ({m}))
             S: b2 OK FETCH completed
             C: b3 SELECT INBOX (CONDSTORE CONDSTORE)
             S: b3 BAD A SELECT parameter may be given once"
        ),
    )
    .await;
}

#[tokio::test]
async fn changedsince_returns_only_what_changed() {
    let (srv, mut c) = setup(4).await;
    c.select("INBOX").await;
    let since = srv.store.mailbox(srv.account.id, "INBOX").unwrap().highest_modseq;
    flag(&srv, &[2], "\\Answered").await;
    flag(&srv, &[4], "\\Flagged").await;
    let m = messages(&srv);
    check(
        &mut c,
        &format!(
            "C: a0 NOOP
             S: * 2 FETCH (FLAGS (\\Answered \\Recent) UID 2)
             S: * 4 FETCH (FLAGS (\\Flagged \\Recent) UID 4)
             S: a0 OK NOOP completed
             C: a1 FETCH 1:* (FLAGS) (CHANGEDSINCE {since})
             S: * OK [HIGHESTMODSEQ ...
             S: * 2 FETCH (FLAGS (\\Answered \\Recent) MODSEQ ({m2}))
             S: * 4 FETCH (FLAGS (\\Flagged \\Recent) MODSEQ ({m4}))
             S: a1 OK FETCH completed
             C: a2 UID FETCH 1:3 (FLAGS) (CHANGEDSINCE {m2})
             S: a2 OK FETCH completed
             C: a3 UID FETCH 1:* (FLAGS) (CHANGEDSINCE 1 CHANGEDSINCE 2)
             S: a3 BAD A FETCH modifier may be given once
             C: a4 UID FETCH 1:* (FLAGS) (CHANGEDSINCE 1 VANISHED)
             S: a4 BAD VANISHED needs ENABLE QRESYNC first",
            m2 = m[1].modseq,
            m4 = m[3].modseq,
        ),
    )
    .await;
}

#[tokio::test]
async fn expunge_answers_highestmodseq_once_condstore_is_on() {
    let (srv, mut c) = setup(3).await;
    c.select("INBOX").await;
    check(
        &mut c,
        "C: a1 STORE 1 +FLAGS.SILENT (\\Deleted)
         S: a1 OK STORE completed
         C: a2 EXPUNGE
         S: * 1 EXPUNGE
         S: a2 OK EXPUNGE completed",
    )
    .await;
    c.send("a3 FETCH 1 (MODSEQ)").await;
    assert!(c.line().await.starts_with("* OK [HIGHESTMODSEQ "));
    assert!(c.line().await.starts_with("* 1 FETCH (MODSEQ ("));
    assert_eq!(c.line().await, "a3 OK FETCH completed");
    check(&mut c, "C: a4 STORE 1 +FLAGS.SILENT (\\Deleted)\nS: * 1 FETCH (UID 2 MODSEQ (...\nS: a4 OK STORE completed")
        .await;
    let r = c.command("a5", "UID EXPUNGE 1:*").await;
    let highest = srv.store.mailbox(srv.account.id, "INBOX").unwrap().highest_modseq;
    assert_eq!(r, vec!["* 1 EXPUNGE".to_string(), format!("a5 OK [HIGHESTMODSEQ {highest}] EXPUNGE completed")]);
}

/// RFC 7162 §3.1: the first CONDSTORE-enabling command issued with a
/// mailbox selected is answered with `* OK [HIGHESTMODSEQ n]` before its
/// tagged OK; later ones, and those issued with nothing selected, are not.
#[tokio::test]
async fn enabling_while_selected_reports_highestmodseq_once() {
    let (srv, mut c) = setup(2).await;
    c.select("INBOX").await;
    let highest = srv.store.mailbox(srv.account.id, "INBOX").unwrap().highest_modseq;
    check(
        &mut c,
        &format!(
            "C: a1 UID SEARCH MODSEQ 1
             S: * OK [HIGHESTMODSEQ {highest}] Highest
             S: * SEARCH 1 2 (MODSEQ ...
             S: a1 OK UID SEARCH completed
             C: a2 FETCH 1 (MODSEQ)
             S: * 1 FETCH (MODSEQ (...
             S: a2 OK FETCH completed"
        ),
    )
    .await;
    let (_srv2, mut c) = setup(1).await;
    check(
        &mut c,
        "C: b1 STATUS INBOX (HIGHESTMODSEQ)\nS: * STATUS \"INBOX\" (HIGHESTMODSEQ ...\nS: b1 OK STATUS completed",
    )
    .await;
    c.select("INBOX").await;
    check(&mut c, "C: b2 FETCH 1 (MODSEQ)\nS: * 1 FETCH (MODSEQ (...\nS: b2 OK FETCH completed").await;
}
