//! Submission to remote recipients: queued durably before 250, with the DSN
//! parameters; the checks on the message itself (From, Date, Message-ID).

use super::{Options, Server, submit_as};

fn queued() -> Options {
    Options { queue: true, ..Options::default() }
}

#[tokio::test]
async fn remote_recipients_are_queued_before_250_with_their_dsn_parameters() {
    let s = Server::with(queued()).await;
    let mut c = submit_as(&s, "alice@example.org", "alice-pw").await;
    let ehlo = c.cmd("EHLO laptop", "250").await;
    assert!(ehlo.contains("250-DSN") && ehlo.contains("250-CHUNKING"), "{ehlo}");
    c.cmd("MAIL FROM:<alice@example.org> RET=HDRS ENVID=QQ+2B314", "250 2.1.0").await;
    c.cmd("RCPT TO:<friend@remote.example> NOTIFY=FAILURE,DELAY ORCPT=rfc822;Friend@Remote.example", "250 2.1.5").await;
    c.cmd("RCPT TO:<other@elsewhere.example>", "250 2.1.5").await;
    c.cmd("RCPT TO:<bob@example.org> NOTIFY=NEVER", "250 2.1.5").await;
    c.cmd("DATA", "354").await;
    c.send(b"From: Alice <alice@example.org>\r\nSubject: out\r\n\r\nhello world\r\n.\r\n").await;
    let r = c.expect("250 2.0.0 OK, queued as ").await;

    // Durable before the reply: the entry and its one message file exist.
    let entries = s.store.spool_list().unwrap();
    assert_eq!(entries.len(), 1, "{r}");
    let e = &entries[0];
    assert_eq!(e.sender, "alice@example.org");
    assert_eq!((e.env_id.as_deref(), e.ret), (Some("QQ+314"), Some(coimail_delivery::DsnRet::Headers)));
    let rcpts: Vec<&str> = e.recipients.iter().map(|r| r.address.as_str()).collect();
    assert_eq!(rcpts, ["friend@remote.example", "other@elsewhere.example"], "local recipients are not queued");
    let friend = &e.recipients[0];
    assert_eq!(friend.orcpt.as_deref(), Some("Friend@Remote.example"));
    assert_eq!(friend.notify, Some(coimail_delivery::DsnNotify { success: false, failure: true, delay: true }));
    assert_eq!(e.recipients[1].notify, None);
    let queued = String::from_utf8(s.store.spool_read(e.id).await.unwrap()).unwrap();
    assert!(queued.starts_with("Received: from laptop\r\n"), "no Return-Path on the relayed copy: {queued}");
    assert!(queued.contains("\r\nDate: ") && queued.contains("\r\nMessage-ID: <"), "added on submission: {queued}");
    assert!(queued.ends_with("\r\n\r\nhello world\r\n"), "{queued}");
    assert!(!queued.contains("\tfor"), "several recipients: no `for` clause");
    // The local recipient got its copy in the same transaction.
    let raw = String::from_utf8(s.inbox(&s.bob).await.remove(0).1).unwrap();
    assert!(raw.starts_with("Return-Path: <alice@example.org>\r\n"), "{raw}");
}

#[tokio::test]
async fn from_header_must_belong_to_the_user() {
    let s = Server::with(queued()).await;
    let mut c = submit_as(&s, "alice@example.org", "alice-pw").await;
    for (from, ok) in [
        ("From: Bob <bob@example.org>", false),
        ("From: alice@example.org, mallory@evil.example", false),
        ("From: alice@example.org\r\nFrom: bob@example.org", false),
        ("From: not an address at all", false),
        ("From: Al <al@example.org>", true),
        ("From: Alice <alice+news@EXAMPLE.ORG>", true),
        ("Subject: no From at all", true),
    ] {
        c.cmd("MAIL FROM:<alice@example.org>", "250").await;
        c.cmd("RCPT TO:<friend@remote.example>", "250").await;
        c.cmd("DATA", "354").await;
        c.send(format!("{from}\r\n\r\nbody\r\n.\r\n").as_bytes()).await;
        let r = c.reply().await;
        if ok {
            assert!(r.starts_with("250 2.0.0"), "{from:?}: {r}");
        } else {
            assert!(r.starts_with("553 5.7.1 From header"), "{from:?}: {r}");
        }
    }
    assert_eq!(s.store.spool_list().unwrap().len(), 3, "refused messages are not queued");
}

#[tokio::test]
async fn date_and_message_id_are_kept_when_present() {
    let s = Server::start().await;
    let mut c = submit_as(&s, "alice@example.org", "alice-pw").await;
    let msg = "Message-ID: <mine@laptop>\r\ndate: Wed, 25 Nov 2026 08:00:00 +0000\r\nSubject: s\r\n\r\nx\r\n";
    let r = c.send_mail("alice@example.org", &["bob@example.org"], msg).await;
    assert!(r.starts_with("250 2.0.0 OK, delivered as"), "{r}");
    let raw = String::from_utf8(s.inbox(&s.bob).await.remove(0).1).unwrap();
    assert_eq!(raw.matches("Message-ID:").count(), 1, "{raw}");
    assert!(!raw.contains("\r\nDate: "), "{raw}");
    // MX never touches the message.
    let mut mx = s.connect(s.mx).await;
    mx.cmd("EHLO remote", "250").await;
    let r = mx.send_mail("x@remote.example", &["bob@example.org"], "Subject: bare\r\n\r\ny\r\n").await;
    assert!(r.starts_with("250"), "{r}");
    let raw = String::from_utf8(s.inbox(&s.bob).await.remove(1).1).unwrap();
    assert!(!raw.contains("Message-ID:") && !raw.contains("\r\nDate:"), "{raw}");
}

#[tokio::test]
async fn dsn_parameter_errors() {
    let s = Server::with(queued()).await;
    let mut c = submit_as(&s, "alice@example.org", "alice-pw").await;
    c.cmd("MAIL FROM:<alice@example.org> RET=FULL", "250").await;
    c.cmd("RCPT TO:<friend@remote.example> NOTIFY=NEVER,SUCCESS", "501 5.5.4").await;
    c.cmd("RCPT TO:<friend@remote.example> ORCPT=x400;foo", "501").await;
    c.cmd("RCPT TO:<friend@remote.example> NOTIFY=SUCCESS", "250").await;
    // MX accepts the parameters for local recipients too.
    let mut mx = s.connect(s.mx).await;
    mx.cmd("EHLO remote", "250").await;
    mx.cmd("MAIL FROM:<x@remote.example> ENVID=abc RET=FULL", "250").await;
    mx.cmd("RCPT TO:<bob@example.org> NOTIFY=FAILURE ORCPT=rfc822;bob@example.org", "250").await;
    // And not after HELO.
    let mut old = s.connect(s.mx).await;
    old.cmd("HELO remote", "250").await;
    old.cmd("MAIL FROM:<x@remote.example> ENVID=abc", "555 5.5.4").await;
    old.cmd("MAIL FROM:<x@remote.example>", "250").await;
    old.cmd("RCPT TO:<bob@example.org> NOTIFY=FAILURE", "555 5.5.4").await;
}
