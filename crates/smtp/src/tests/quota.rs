//! Quota at RCPT time (RFC 3463 4.2.2): a full mailbox refuses only its own
//! recipient; the store's check at the end of the data stays the final word.

use super::{Options, Server, submit_as};
use coimail_store::QuotaLimits;

const BODY: &str = "Subject: hi\r\n\r\nHello.\r\n";

#[tokio::test]
async fn a_full_mailbox_is_452_at_rcpt_and_the_other_recipients_get_the_message() {
    let s = Server::start().await;
    s.store.set_quota(s.bob.id, QuotaLimits { bytes: None, messages: Some(1) }).await.unwrap();
    let mut c = s.connect(s.mx).await;
    c.cmd("EHLO client.example", "250").await;
    let r = c.send_mail("a@remote.example", &["bob@example.org"], BODY).await;
    assert!(r.starts_with("250 2.0.0"), "{r}");

    c.cmd("MAIL FROM:<a@remote.example>", "250").await;
    c.cmd("RCPT TO:<alice@example.org>", "250 2.1.5").await;
    c.cmd("RCPT TO:<bob@example.org>", "452 4.2.2 Mailbox full").await;
    c.cmd("DATA", "354").await;
    c.send(b"Subject: to both\r\n\r\nhi\r\n.\r\n").await;
    c.expect("250 2.0.0").await;
    assert_eq!(s.inbox(&s.alice).await.len(), 1);
    assert_eq!(s.inbox(&s.bob).await.len(), 1, "bob kept only his first message");
}

#[tokio::test]
async fn the_declared_size_counts_at_rcpt_and_the_real_size_at_the_end() {
    let s = Server::start().await;
    s.store.set_quota(s.alice.id, QuotaLimits { bytes: Some(10_000), messages: None }).await.unwrap();
    let mut c = s.connect(s.mx).await;
    c.cmd("EHLO client.example", "250").await;
    c.cmd("MAIL FROM:<a@remote.example> SIZE=20000", "250").await;
    c.cmd("RCPT TO:<alice@example.org>", "452 4.2.2").await;
    c.cmd("RCPT TO:<al@example.org>", "452 4.2.2").await;
    c.cmd("RCPT TO:<bob@example.org>", "250").await;
    c.cmd("RSET", "250").await;

    // Without SIZE= only the message count is checked at RCPT; the data
    // then turns out too big and the store refuses the transaction.
    c.cmd("MAIL FROM:<a@remote.example>", "250").await;
    c.cmd("RCPT TO:<alice@example.org>", "250").await;
    c.cmd("DATA", "354").await;
    let big = format!("Subject: big\r\n\r\n{}\r\n.\r\n", "x".repeat(20_000));
    c.send(big.as_bytes()).await;
    c.expect("452 4.2.2").await;
    assert!(s.inbox(&s.alice).await.is_empty());

    // A small one fits.
    let r = c.send_mail("a@remote.example", &["alice@example.org", "al@example.org"], BODY).await;
    assert!(r.starts_with("250 2.0.0"), "{r}");
    assert_eq!(s.inbox(&s.alice).await.len(), 1, "one copy for the alias and the address");
}

/// One recipient over quota at the end of the data (no `SIZE=`, so RCPT
/// could not tell) must not cost the other recipients the message: they get
/// it, the sender hears 250 and gets a bounce for that one recipient only.
#[tokio::test]
async fn a_message_too_big_for_one_mailbox_reaches_the_others_and_bounces_that_one() {
    let s = Server::with(Options { queue: true, ..Options::default() }).await;
    s.store.set_quota(s.alice.id, QuotaLimits { bytes: Some(10_000), messages: None }).await.unwrap();
    let big = format!("Subject: big\r\n\r\n{}\r\n", "x".repeat(20_000));

    // Over MX from elsewhere: the bounce leaves through the queue from <>.
    let mut c = s.connect(s.mx).await;
    c.cmd("EHLO client.example", "250").await;
    let r = c.send_mail("a@remote.example", &["alice@example.org", "bob@example.org"], &big).await;
    assert!(r.starts_with("250 2.0.0"), "{r}");
    assert_eq!(s.inbox(&s.bob).await.len(), 1, "bob got it");
    assert!(s.inbox(&s.alice).await.is_empty(), "alice's mailbox had no room");
    let entries = s.store.spool_list().unwrap();
    assert_eq!(entries.len(), 1, "one bounce");
    assert_eq!((entries[0].sender.as_str(), entries[0].recipients[0].address.as_str()), ("", "a@remote.example"));
    let bounce = String::from_utf8(s.store.spool_read(entries[0].id).await.unwrap()).unwrap();
    for field in ["Final-Recipient: rfc822;alice@example.org\r\nAction: failed\r\nStatus: 5.2.2", "Subject: big"] {
        assert!(bounce.contains(field), "{field:?} missing in {bounce}");
    }
    assert!(!bounce.contains("bob@example.org") && !bounce.contains("xxxxxxxx"), "header only, alice only: {bounce}");

    // Submitted by bob: bob gets the bounce in his INBOX; NOTIFY is honoured.
    let mut c = submit_as(&s, "bob@example.org", "bob-pw").await;
    c.cmd("MAIL FROM:<bob@example.org>", "250").await;
    c.cmd("RCPT TO:<alice@example.org>", "250").await;
    c.cmd("RCPT TO:<bob@example.org>", "250").await;
    c.cmd("DATA", "354").await;
    c.send(format!("From: bob@example.org\r\n{big}.\r\n").as_bytes()).await;
    c.expect("250 2.0.0").await;
    let inbox = s.inbox(&s.bob).await;
    assert_eq!(inbox.len(), 3, "his first copy, his own copy and the bounce");
    assert!(inbox.iter().any(|(_, m)| String::from_utf8_lossy(m).contains("Action: failed\r\nStatus: 5.2.2")));
    assert!(s.inbox(&s.alice).await.is_empty());
}

/// The bounce above is a report to a reverse path nobody checked; a client
/// that keeps making us send it to one victim gets no more than the hourly
/// cap of reports to one address (30 by default) sent.
#[tokio::test]
async fn bounces_to_one_address_stop_at_the_hourly_cap() {
    let s = Server::with(Options { queue: true, ..Options::default() }).await;
    s.store.set_quota(s.alice.id, QuotaLimits { bytes: Some(1_000), messages: None }).await.unwrap();
    let big = format!("Subject: flood\r\n\r\n{}\r\n", "x".repeat(2_000));
    let mut c = s.connect(s.mx).await;
    c.cmd("EHLO attacker.example", "250").await;
    for _ in 0..coimail_delivery::report_limit::DEFAULT_PER_ADDRESS + 5 {
        let r = c.send_mail("victim@remote.example", &["alice@example.org", "bob@example.org"], &big).await;
        assert!(r.starts_with("250 2.0.0"), "{r}");
    }
    let queued = s.store.spool_list().unwrap();
    assert_eq!(queued.len(), coimail_delivery::report_limit::DEFAULT_PER_ADDRESS, "the rest were dropped");
}
