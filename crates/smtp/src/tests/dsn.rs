//! `delivered` reports for local recipients that asked for NOTIFY=SUCCESS
//! (RFC 3461/3464), and SMTPUTF8 on RCPT (RFC 6531 §3.4).

use super::{Options, Server, submit_as};

#[tokio::test]
async fn notify_success_for_a_local_recipient_gets_the_sender_a_delivered_report() {
    let s = Server::start().await;
    let mut c = submit_as(&s, "alice@example.org", "alice-pw").await;
    c.cmd("MAIL FROM:<alice@example.org> ENVID=env-7 RET=FULL", "250").await;
    c.cmd("RCPT TO:<bob@example.org> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;Bob@Example.org", "250").await;
    c.cmd("RCPT TO:<al@example.org> NOTIFY=FAILURE", "250").await;
    c.cmd("DATA", "354").await;
    c.send(b"From: alice@example.org\r\nSubject: did it arrive\r\n\r\nsecret body\r\n.\r\n").await;
    c.expect("250 2.0.0").await;
    assert_eq!(s.inbox(&s.bob).await.len(), 1);
    let inbox = s.inbox(&s.alice).await;
    assert_eq!(inbox.len(), 2, "alice's own copy (al@) and the report");
    let report = inbox
        .iter()
        .map(|(_, raw)| String::from_utf8(raw.clone()).unwrap())
        .find(|m| m.starts_with("Return-Path: <>\r\n"))
        .expect("a report from the null sender");
    for expected in [
        "Subject: Successful Mail Delivery Report",
        "Original-Envelope-Id: env-7\r\n",
        "Original-Recipient: rfc822;Bob@Example.org\r\nFinal-Recipient: rfc822;bob@example.org\r\n\
         Action: delivered\r\nStatus: 2.0.0\r\n",
        "Content-Type: text/rfc822-headers",
        "Subject: did it arrive",
    ] {
        assert!(report.contains(expected), "report lacks {expected:?}:\n{report}");
    }
    assert!(!report.contains("al@example.org") && !report.contains("secret body"), "{report}");
}

/// Backscatter: over MX anyone can name any reverse path, so NOTIFY=SUCCESS
/// (or DELAY) there must not make us mail anything to it, elsewhere or here.
#[tokio::test]
async fn notify_success_over_mx_is_accepted_but_sends_nothing() {
    let s = Server::with(Options { queue: true, ..Options::default() }).await;
    let mut mx = s.connect(s.mx).await;
    mx.cmd("EHLO attacker.example", "250").await;
    for victim in ["victim@remote.example", "alice@example.org"] {
        mx.cmd(&format!("MAIL FROM:<{victim}> RET=FULL"), "250").await;
        mx.cmd("RCPT TO:<bob@example.org> NOTIFY=SUCCESS,DELAY", "250").await;
        mx.cmd("DATA", "354").await;
        mx.send(b"Buy cheap pills at http://spam.example\r\nno header here\r\n.\r\n").await;
        mx.expect("250 2.0.0").await;
    }
    assert_eq!(s.inbox(&s.bob).await.len(), 2, "delivered as usual");
    assert!(s.store.spool_list().unwrap().is_empty(), "no report queued for the victim elsewhere");
    assert!(s.inbox(&s.alice).await.is_empty(), "no report for a forged local sender either");
}

#[tokio::test]
async fn a_non_ascii_recipient_needs_smtputf8_on_mail() {
    let s = Server::with(Options { queue: true, ..Options::default() }).await;
    let mut c = submit_as(&s, "alice@example.org", "alice-pw").await;
    c.cmd("MAIL FROM:<alice@example.org>", "250").await;
    c.cmd("RCPT TO:<jörg@remote.example>", "553 5.6.7").await;
    c.cmd("RSET", "250").await;
    c.cmd("MAIL FROM:<alice@example.org> SMTPUTF8", "250").await;
    c.cmd("RCPT TO:<jörg@remote.example>", "250 2.1.5").await;
    c.cmd("DATA", "354").await;
    c.send("From: alice@example.org\r\nSubject: grüße\r\n\r\nhallo\r\n.\r\n".as_bytes()).await;
    c.expect("250 2.0.0 OK, queued").await;
    let entries = s.store.spool_list().unwrap();
    assert_eq!(entries[0].recipients[0].address, "jörg@remote.example");
}
