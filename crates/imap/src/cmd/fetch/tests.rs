use super::*;
use crate::testing::{TestServer, check};

const MSG: &[u8] = b"From: bob@example.org\r\nSubject: Hi\r\nX-Long: a\r\n b\r\n\r\nHello\r\nWorld\r\n";

fn body_response(seq: u32, label: &str, data: &[u8], tail: &str) -> Vec<u8> {
    let mut v = format!("* {seq} FETCH ({label} {{{}}}\r\n", data.len()).into_bytes();
    v.extend_from_slice(data);
    v.extend_from_slice(tail.as_bytes());
    v.push(b')');
    v
}

async fn flags_in_store(srv: &TestServer) -> Flags {
    let inbox = srv.store.mailbox(srv.account.id, "INBOX").unwrap().id;
    srv.store.messages(srv.account.id, inbox).unwrap().remove(0).flags
}

#[tokio::test]
async fn fetch_attributes_and_bodies() {
    let srv = TestServer::start().await;
    srv.deliver(MSG).await;
    let mut c = srv.connect().await;
    c.line().await;
    c.login(&srv).await;
    c.select("INBOX").await;
    check(
        &mut c,
        &format!(
            "C: a1 FETCH 1 (UID RFC822.SIZE FLAGS INTERNALDATE)
             S: * 1 FETCH (UID 1 RFC822.SIZE {} FLAGS (\\Recent) INTERNALDATE \"14-Nov-2023 22:13:20 +0000\")
             S: a1 OK FETCH completed
             C: a2 FETCH 1 FAST
             S: * 1 FETCH (FLAGS (\\Recent) INTERNALDATE \"14-Nov-2023 22:13:20 +0000\" RFC822.SIZE {})
             S: a2 OK FETCH completed",
            MSG.len(),
            MSG.len()
        ),
    )
    .await;

    c.send("a3 FETCH 1 BODY.PEEK[]").await;
    assert_eq!(c.response().await, body_response(1, "BODY[]", MSG, ""));
    assert_eq!(c.line().await, "a3 OK FETCH completed");
    assert!(!flags_in_store(&srv).await.contains("\\Seen"), "PEEK must not set \\Seen");

    c.send("a4 FETCH 1 BODY[]").await;
    assert_eq!(c.response().await, body_response(1, "BODY[]", MSG, " FLAGS (\\Recent \\Seen)"));
    assert_eq!(c.line().await, "a4 OK FETCH completed");
    assert!(flags_in_store(&srv).await.contains("\\Seen"));

    c.send("a5 FETCH 1 (FLAGS BODY[]<2.5>)").await;
    assert_eq!(c.response().await, body_response(1, "FLAGS (\\Recent \\Seen) BODY[]<2>", b"om: b", ""));
    assert_eq!(c.line().await, "a5 OK FETCH completed");

    c.send("a6 FETCH 1 (BODY.PEEK[HEADER.FIELDS (subject X-Long)] BODY.PEEK[TEXT] BODY[]<1000.10>)").await;
    let mut expected =
        b"* 1 FETCH (BODY[HEADER.FIELDS (subject X-Long)] {30}\r\nSubject: Hi\r\nX-Long: a\r\n b\r\n\r\n".to_vec();
    expected.extend_from_slice(b" BODY[TEXT] {14}\r\nHello\r\nWorld\r\n BODY[]<1000> {0}\r\n)");
    assert_eq!(String::from_utf8_lossy(&c.response().await), String::from_utf8_lossy(&expected));
    assert_eq!(c.line().await, "a6 OK FETCH completed");

    c.send("a7 FETCH 1 (RFC822.HEADER BODY.PEEK[HEADER.FIELDS.NOT (Subject X-Long)])").await;
    let expected = b"* 1 FETCH (RFC822.HEADER {53}\r\nFrom: bob@example.org\r\nSubject: Hi\r\nX-Long: a\r\n b\r\n\r\n BODY[HEADER.FIELDS.NOT (Subject X-Long)] {25}\r\nFrom: bob@example.org\r\n\r\n)";
    assert_eq!(String::from_utf8_lossy(&c.response().await), String::from_utf8_lossy(expected));
    assert_eq!(c.line().await, "a7 OK FETCH completed");

    // The \Seen this session set itself is not echoed again, and UID FETCH carries UID.
    check(
        &mut c,
        "C: a8 NOOP
         S: a8 OK NOOP completed
         C: a9 UID FETCH 1 FLAGS
         S: * 1 FETCH (UID 1 FLAGS (\\Recent \\Seen))
         S: a9 OK FETCH completed",
    )
    .await;
}

#[tokio::test]
async fn examine_does_not_set_seen() {
    let srv = TestServer::start().await;
    srv.deliver(MSG).await;
    let mut c = srv.connect().await;
    c.line().await;
    c.login(&srv).await;
    let r = c.command("e1", "EXAMINE INBOX").await;
    assert!(r.last().unwrap().starts_with("e1 OK [READ-ONLY]"));
    c.send("a1 FETCH 1 RFC822").await;
    assert_eq!(c.response().await, body_response(1, "RFC822", MSG, ""));
    assert_eq!(c.line().await, "a1 OK FETCH completed");
    assert!(!flags_in_store(&srv).await.contains("\\Seen"));
}

#[tokio::test]
async fn seen_is_set_only_on_bodies_that_were_read() {
    let srv = TestServer::start().await;
    srv.deliver(MSG).await;
    srv.deliver(MSG).await;
    let inbox = srv.store.mailbox(srv.account.id, "INBOX").unwrap().id;
    let lost = srv.store.messages(srv.account.id, inbox).unwrap().remove(1);
    coimail_store::blob::BlobStore::open(&srv.data_dir().join("blobs")).unwrap().delete(&lost.blob).unwrap();
    let mut c = srv.connect().await;
    c.line().await;
    c.login(&srv).await;
    c.select("INBOX").await;
    c.send("a1 FETCH 1:2 BODY[]").await;
    assert_eq!(c.response().await, body_response(1, "BODY[]", MSG, " FLAGS (\\Recent \\Seen)"));
    assert!(c.line().await.starts_with("a1 NO [SERVERBUG] "));
    let flags: Vec<bool> =
        srv.store.messages(srv.account.id, inbox).unwrap().iter().map(|m| m.flags.contains("\\Seen")).collect();
    assert_eq!(flags, [true, false], "the unreadable message must not be marked as read");
}

#[tokio::test]
async fn sequence_sets_with_star_and_reversed_ranges() {
    let srv = TestServer::start().await;
    for i in 0..5 {
        srv.deliver(format!("Subject: {i}\r\n\r\n{i}\r\n").as_bytes()).await;
    }
    let mut c = srv.connect().await;
    c.line().await;
    c.login(&srv).await;
    c.select("INBOX").await;
    check(
        &mut c,
        "C: a1 FETCH 5:3 UID
         S: * 3 FETCH (UID 3)
         S: * 4 FETCH (UID 4)
         S: * 5 FETCH (UID 5)
         S: a1 OK FETCH completed
         C: a2 FETCH * UID
         S: * 5 FETCH (UID 5)
         S: a2 OK FETCH completed
         C: a3 FETCH 4:*,1,2:1 (UID)
         S: * 1 FETCH (UID 1)
         S: * 2 FETCH (UID 2)
         S: * 4 FETCH (UID 4)
         S: * 5 FETCH (UID 5)
         S: a3 OK FETCH completed
         C: a4 FETCH 6 UID
         S: a4 BAD Invalid message sequence number
         C: a5 FETCH 0 UID
         S: a5 BAD Syntax error in FETCH arguments
         C: a6 UID FETCH 4:2 FLAGS
         S: * 2 FETCH (UID 2 FLAGS (\\Recent))
         S: * 3 FETCH (UID 3 FLAGS (\\Recent))
         S: * 4 FETCH (UID 4 FLAGS (\\Recent))
         S: a6 OK FETCH completed
         C: a7 UID FETCH 10:* UID
         S: * 5 FETCH (UID 5)
         S: a7 OK FETCH completed
         C: a8 UID FETCH 99 UID
         S: a8 OK FETCH completed",
    )
    .await;
}

#[test]
fn partial_ranges() {
    assert_eq!(write::partial(b"hello", Some((1, 3))), b"ell");
    assert_eq!(write::partial(b"hello", Some((4, 100))), b"o");
    assert_eq!(write::partial(b"hello", Some((9, 1))), b"");
    assert_eq!(write::partial(b"hello", Some((u32::MAX, u32::MAX))), b"");
    assert_eq!(write::partial(b"hello", None), b"hello");
}
