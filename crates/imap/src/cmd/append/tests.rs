use crate::testing::{Client, TestServer, check};
use coimail_store::{MessageMeta, Uid};

async fn logged_in(srv: &TestServer) -> Client {
    let mut c = srv.connect().await;
    c.line().await;
    c.login(srv).await;
    c
}

fn messages(srv: &TestServer, mailbox: &str) -> Vec<MessageMeta> {
    let id = srv.store.mailbox(srv.account.id, mailbox).unwrap().id;
    srv.store.messages(srv.account.id, id).unwrap()
}

#[tokio::test]
async fn append_with_flags_and_date_answers_appenduid() {
    let srv = TestServer::start().await;
    let sent = srv.store.mailbox(srv.account.id, "Sent").unwrap();
    let mut c = logged_in(&srv).await;
    check(
        &mut c,
        &format!(
            "C: a1 APPEND Sent (\\Seen \\flagged $Chat) \" 7-Feb-1994 21:52:25 -0800\" {{10}}
             S: + Ready for literal data
             C: Subject: x
             S: a1 OK [APPENDUID {v} 1] APPEND completed
             C: a2 APPEND Sent {{5+}}
             C: hello
             S: a2 OK [APPENDUID {v} 2] APPEND completed",
            v = sent.uid_validity
        ),
    )
    .await;
    let ms = messages(&srv, "Sent");
    assert_eq!(ms.len(), 2);
    assert_eq!(ms[0].flags.iter().collect::<Vec<_>>(), ["$Chat", "\\Flagged", "\\Seen"]);
    assert_eq!(ms[0].internal_date, 760_686_745);
    assert!(ms[1].flags.iter().next().is_none());
    assert_eq!(srv.store.read_message(&ms[1]).await.unwrap(), b"hello");
}

#[tokio::test]
async fn append_refusals() {
    let srv = TestServer::start().await;
    let mut c = logged_in(&srv).await;
    check(
        &mut c,
        "C: a1 APPEND Nope {1+}
         C: x
         S: a1 NO [TRYCREATE] Mailbox Nope does not exist
         C: a2 APPEND INBOX {0+}
         C:
         S: a2 NO Empty messages are not accepted
         C: a3 APPEND INBOX (\\Recent) {1+}
         C: x
         S: a3 BAD Cannot set flag \\Recent
         C: a4 APPEND INBOX \"31-Feb-2024 10:00:00 +0000\" {1+}
         C: x
         S: a4 BAD Syntax error in APPEND arguments
         C: a5 APPEND \"bad//name\" {1+}
         C: x
         S: a5 NO Invalid mailbox name: empty hierarchy level",
    )
    .await;
    assert!(messages(&srv, "INBOX").is_empty());
    // Before login: not a valid command.
    let mut c = srv.connect().await;
    c.line().await;
    check(&mut c, "C: a1 APPEND INBOX {1+}\nC: x\nS: a1 BAD APPEND is not valid before login").await;
}

#[tokio::test]
async fn append_to_the_selected_mailbox_reports_exists_before_ok() {
    let srv = TestServer::start().await;
    srv.deliver(b"Subject: 1\r\n\r\n1\r\n").await;
    let mut c = logged_in(&srv).await;
    c.select("INBOX").await;
    check(
        &mut c,
        "C: a1 APPEND INBOX {3+}
         C: abc
         S: * 2 EXISTS
         S: * 2 RECENT
         S: a1 OK [APPENDUID ...
         C: a2 FETCH 2 UID
         S: * 2 FETCH (UID 2)
         S: a2 OK FETCH completed",
    )
    .await;
}

#[tokio::test]
async fn multiappend_is_one_commit_or_nothing() {
    let srv = TestServer::start().await;
    let inbox = srv.store.mailbox(srv.account.id, "INBOX").unwrap();
    let mut c = logged_in(&srv).await;
    c.select("INBOX").await;
    // RFC 3502 §6.3.11: a failure in any message appends none of them.
    c.send_raw(b"a1 APPEND INBOX (\\Seen) {3+}\r\none (\\Bogus) {3+}\r\ntwo\r\n").await;
    assert_eq!(c.line().await, "a1 BAD Cannot set flag \\Bogus");
    assert!(messages(&srv, "INBOX").is_empty());
    // Synchronising literals: a continuation for each.
    c.send("a2 APPEND INBOX (\\Seen) {3}").await;
    assert_eq!(c.line().await, "+ Ready for literal data");
    c.send_raw(b"one \"01-Jan-2020 00:00:00 +0000\" {5}\r\n").await;
    assert_eq!(c.line().await, "+ Ready for literal data");
    c.send_raw(b"two\r\n {0+}\r\n ~{4+}\r\nfour\r\n").await;
    // The zero-length one is refused, so nothing is stored.
    assert_eq!(c.line().await, "a2 NO Empty messages are not accepted");
    c.send_raw(
        b"a3 APPEND INBOX (\\Seen) {3+}\r\none \"01-Jan-2020 00:00:00 +0000\" {5+}\r\ntwo\r\n ~{4+}\r\nfour\r\n",
    )
    .await;
    check(
        &mut c,
        &format!(
            "S: * 3 EXISTS
             S: * 3 RECENT
             S: a3 OK [APPENDUID {} 1:3] APPEND completed",
            inbox.uid_validity
        ),
    )
    .await;
    let ms = messages(&srv, "INBOX");
    assert_eq!(ms.iter().map(|m| m.uid.0).collect::<Vec<_>>(), [1, 2, 3]);
    assert!(ms[0].flags.contains("\\Seen") && !ms[1].flags.contains("\\Seen"));
    assert_eq!(ms[1].internal_date, 1_577_836_800);
    assert_eq!(srv.store.read_message(&ms[1]).await.unwrap(), b"two\r\n");
    assert_eq!(srv.store.read_message(&ms[2]).await.unwrap(), b"four");
}

#[tokio::test]
async fn eight_bit_message_is_stored_verbatim() {
    let srv = TestServer::start().await;
    let mut c = logged_in(&srv).await;
    let body = "Subject: Gr\u{fc}\u{df}e\r\n\r\nK\u{e4}se \u{1f600}\r\n".as_bytes();
    c.send_raw(format!("a1 APPEND Drafts (\\Draft) {{{}+}}\r\n", body.len()).as_bytes()).await;
    c.send_raw(body).await;
    c.send_raw(b"\r\n").await;
    assert!(c.line().await.starts_with("a1 OK [APPENDUID "));
    let ms = messages(&srv, "Drafts");
    assert_eq!(srv.store.read_message(&ms[0]).await.unwrap(), body);
}

#[tokio::test]
async fn appendlimit_is_the_literal_cap() {
    let srv = TestServer::start_with(|c| c.max_literal_bytes = 4096, false).await;
    let mut c = logged_in(&srv).await;
    let caps = c.command("a1", "CAPABILITY").await;
    assert!(caps[0].contains(" APPENDLIMIT=4096"), "{caps:?}");
    assert!(caps[0].contains(" MULTIAPPEND") && caps[0].contains(" UIDPLUS"), "{caps:?}");
    check(
        &mut c,
        "C: a2 APPEND INBOX {4097}
         S: a2 NO [TOOBIG] Literal too big (at most 4096 octets)",
    )
    .await;
}

#[tokio::test]
async fn pipelined_appends_are_one_commit_answered_in_order() {
    let srv = TestServer::start().await;
    let v = srv.store.mailbox(srv.account.id, "INBOX").unwrap().uid_validity;
    let mut c = logged_in(&srv).await;
    c.select("INBOX").await;
    // One write: every command is in the server's buffer when the first is decoded.
    c.send_raw(b"a1 APPEND INBOX {1+}\r\nx\r\na2 APPEND INBOX (\\Seen) {2+}\r\nyy\r\na3 APPEND inbox {3+}\r\nzzz\r\n")
        .await;
    // Stored together: the EXISTS before the first OK already counts all three.
    check(
        &mut c,
        &format!(
            "S: * 3 EXISTS
             S: * 3 RECENT
             S: a1 OK [APPENDUID {v} 1] APPEND completed
             S: a2 OK [APPENDUID {v} 2] APPEND completed
             S: a3 OK [APPENDUID {v} 3] APPEND completed"
        ),
    )
    .await;
    let ms = messages(&srv, "INBOX");
    let bodies: Vec<Vec<u8>> = {
        let mut out = Vec::new();
        for m in &ms {
            out.push(srv.store.read_message(m).await.unwrap());
        }
        out
    };
    assert_eq!(bodies, [b"x".to_vec(), b"yy".to_vec(), b"zzz".to_vec()]);
    assert!(ms[1].flags.contains("\\Seen") && !ms[0].flags.contains("\\Seen"));
}

#[tokio::test]
async fn pipelined_appends_fail_one_by_one_and_what_follows_runs_after() {
    let srv = TestServer::start().await;
    let v = srv.store.mailbox(srv.account.id, "INBOX").unwrap().uid_validity;
    let mut c = logged_in(&srv).await;
    c.select("INBOX").await;
    c.send_raw(
        b"a1 APPEND INBOX {1+}\r\nx\r\n\
          a2 APPEND Nope {1+}\r\ny\r\n\
          a3 APPEND INBOX (\\Bogus) {1+}\r\nz\r\n\
          a4 APPEND INBOX {0+}\r\n\r\n\
          a5 APPEND INBOX {1+}\r\na {1+}\r\nb\r\n\
          a6 APPEND INBOX \"31-Feb-2024 10:00:00 +0000\" {1+}\r\nc\r\n\
          a7 APPEND INBOX {1+}\r\nd\r\n\
          a8 NOOP\r\n\
          a9 APPEND INBOX {1}\r\n",
    )
    .await;
    check(
        &mut c,
        &format!(
            "S: * 3 EXISTS
             S: * 3 RECENT
             S: a1 OK [APPENDUID {v} 1] APPEND completed
             S: a2 NO [TRYCREATE] Mailbox Nope does not exist
             S: a3 BAD Cannot set flag \\Bogus
             S: a4 NO Empty messages are not accepted
             S: a5 OK [APPENDUID {v} 2:3] APPEND completed
             S: a6 BAD Syntax error in APPEND arguments
             S: * 4 EXISTS
             S: * 4 RECENT
             S: a7 OK [APPENDUID {v} 4] APPEND completed
             S: a8 OK NOOP completed
             S: + Ready for literal data
             C: q
             S: * 5 EXISTS
             S: * 5 RECENT
             S: a9 OK [APPENDUID {v} 5] APPEND completed"
        ),
    )
    .await;
    let uids: Vec<_> = messages(&srv, "INBOX").iter().map(|m| m.uid).collect();
    assert_eq!(uids, [1, 2, 3, 4, 5].map(Uid));
}
