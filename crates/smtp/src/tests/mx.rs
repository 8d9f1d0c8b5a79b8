//! MX listener: delivery, recipients, smuggling defences, limits, sequence.

use super::{Options, Server};

const BODY: &str = "From: <sender@remote.example>\r\nTo: <alice@example.org>\r\nSubject: hi\r\n\r\nHello Alice.\r\n";

#[tokio::test]
async fn delivers_byte_exact_with_trace_headers() {
    let s = Server::start().await;
    let mut c = s.connect(s.mx).await;
    let ehlo = c.cmd("EHLO client.example", "250-mx.example.org").await;
    for ext in ["PIPELINING", "SIZE 65536", "8BITMIME", "ENHANCEDSTATUSCODES", "SMTPUTF8", "STARTTLS"] {
        assert!(ehlo.lines().any(|l| l[4..] == *ext), "{ext} missing in {ehlo}");
    }
    assert!(!ehlo.contains("AUTH"), "no AUTH on MX: {ehlo}");
    let done = c.send_mail("sender@remote.example", &["alice@example.org"], BODY).await;
    assert!(done.starts_with("250 2.0.0"), "{done}");
    c.cmd("QUIT", "221 2.0.0").await;

    let inbox = s.inbox(&s.alice).await;
    assert_eq!(inbox.len(), 1);
    let raw = String::from_utf8(inbox[0].1.clone()).unwrap();
    let (trace, original) = raw.split_at(raw.len() - BODY.len());
    assert_eq!(original, BODY, "original bytes follow the trace headers unchanged");
    assert!(trace.starts_with("Return-Path: <sender@remote.example>\r\nReceived: from client.example ([127.0.0.1])\r\n\tby mx.example.org with ESMTP id "), "{trace}");
    assert!(trace.contains("\r\n\tfor <alice@example.org>;\r\n\t"), "{trace}");
    assert!(trace.ends_with(" +0000\r\n"), "{trace}");
    assert_eq!(trace.matches("\r\n").count(), 5, "only Return-Path and one folded Received: {trace}");
    assert!(s.inbox(&s.bob).await.is_empty());
}

#[tokio::test]
async fn null_sender_and_postmaster_and_unknowns() {
    let s = Server::start().await;
    let mut c = s.connect(s.mx).await;
    c.cmd("EHLO client.example", "250").await;
    c.cmd("MAIL FROM:<>", "250 2.1.0").await;
    c.cmd("RCPT TO:<nobody@example.org>", "550 5.1.1").await;
    c.cmd("RCPT TO:<alice@elsewhere.example>", "550 5.7.1").await;
    c.cmd("RCPT TO:<alice@EXAMPLE.org>", "250 2.1.5").await;
    c.cmd("DATA", "354").await;
    c.send(b"Subject: bounce\r\n\r\nx\r\n.\r\n").await;
    c.expect("250 2.0.0").await;
    let inbox = s.inbox(&s.alice).await;
    assert!(inbox[0].1.starts_with(b"Return-Path: <>\r\n"));
}

#[tokio::test]
async fn bare_lf_in_data_is_rejected_and_smuggled_commands_are_not_run() {
    let s = Server::start().await;
    let mut c = s.connect(s.mx).await;
    c.cmd("EHLO client.example", "250").await;
    c.cmd("MAIL FROM:<sender@remote.example>", "250").await;
    c.cmd("RCPT TO:<alice@example.org>", "250").await;
    c.cmd("DATA", "354").await;
    c.send(
        b"Subject: one\r\n\r\nfirst\n.\nMAIL FROM:<admin@example.org>\r\nRCPT TO:<bob@example.org>\r\nDATA\r\nsmuggled\r\n.\r\n",
    )
    .await;
    c.expect("554 5.6.0").await;
    // Exactly one reply came for all of that: the next one answers NOOP.
    c.cmd("NOOP", "250 2.0.0").await;
    // The transaction was reset.
    c.cmd("RCPT TO:<alice@example.org>", "503 5.5.1").await;
    // Bare CR is refused the same way.
    c.cmd("MAIL FROM:<sender@remote.example>", "250").await;
    c.cmd("RCPT TO:<alice@example.org>", "250").await;
    c.cmd("DATA", "354").await;
    c.send(b"Subject: two\r\n\r\nx\r.\r\ny\r\n.\r\n").await;
    c.expect("554 5.6.0").await;
    assert!(s.inbox(&s.alice).await.is_empty());
    assert!(s.inbox(&s.bob).await.is_empty());
}

#[tokio::test]
async fn bare_line_endings_in_commands_are_rejected() {
    let s = Server::start().await;
    let mut c = s.connect(s.mx).await;
    c.send(b"EHLO client.example\n").await;
    c.expect("500 5.5.2").await;
    c.send(b"NOOP\rMAIL FROM:<x@y.example>\r\n").await;
    c.expect("500 5.5.2").await;
    // Neither line was taken as EHLO or MAIL.
    c.cmd("MAIL FROM:<x@y.example>", "503 5.5.1").await;
    c.cmd("HELO client.example", "250 mx.example.org").await;
    c.send(format!("NOOP {}\r\n", "x".repeat(5000)).as_bytes()).await;
    c.expect("500 5.5.2").await;
    c.cmd("NOOP", "250").await;
}

#[tokio::test]
async fn dot_stuffing_is_undone() {
    let s = Server::start().await;
    let mut c = s.connect(s.mx).await;
    c.cmd("EHLO client.example", "250").await;
    let r =
        c.send_mail("a@remote.example", &["bob@example.org"], "Subject: dots\r\n\r\n..leading\r\n...\r\n. \r\n").await;
    assert!(r.starts_with("250 2.0.0"), "{r}");
    let raw = s.inbox(&s.bob).await.remove(0).1;
    assert!(raw.ends_with(b"\r\n\r\n.leading\r\n..\r\n \r\n"), "{}", String::from_utf8_lossy(&raw));
}

#[tokio::test]
async fn size_limits() {
    let s = Server::with(Options { max_message_bytes: 2000, ..Options::default() }).await;
    let mut c = s.connect(s.mx).await;
    c.cmd("EHLO client.example", "250").await;
    c.cmd("MAIL FROM:<a@remote.example> SIZE=2001", "552 5.3.4").await;
    c.cmd("MAIL FROM:<a@remote.example> SIZE=1000 BODY=8BITMIME", "250").await;
    c.cmd("RCPT TO:<alice@example.org>", "250").await;
    c.cmd("DATA", "354").await;
    let big = format!("Subject: big\r\n\r\n{}\r\n.\r\n", "x".repeat(3000));
    c.send(big.as_bytes()).await;
    c.expect("552 5.3.4").await;
    c.cmd("NOOP", "250").await;
    assert!(s.inbox(&s.alice).await.is_empty());
    // Unknown parameters are refused.
    c.cmd("MAIL FROM:<a@remote.example> HOLDFOR=60", "555 5.5.4").await;
}

#[tokio::test]
async fn bad_sequence() {
    let s = Server::start().await;
    let mut c = s.connect(s.mx).await;
    c.cmd("MAIL FROM:<a@remote.example>", "503 5.5.1").await;
    c.cmd("EHLO client.example", "250").await;
    c.cmd("RCPT TO:<alice@example.org>", "503 5.5.1").await;
    c.cmd("DATA", "503 5.5.1").await;
    c.cmd("MAIL FROM:<a@remote.example>", "250").await;
    c.cmd("MAIL FROM:<a@remote.example>", "503 5.5.1").await;
    c.cmd("DATA", "554 5.5.1").await;
    c.cmd("AUTH PLAIN AGFsaWNlAHB3", "502 5.5.1").await;
    c.cmd("FOO bar", "500 5.5.1").await;
    c.cmd("MAIL", "501 5.5.2").await;
    c.cmd("VRFY alice", "252 2.5.2").await;
    c.cmd("HELP", "214 2.0.0").await;
}

#[tokio::test]
async fn pipelining_and_rset() {
    let s = Server::start().await;
    let mut c = s.connect(s.mx).await;
    c.send(
        b"EHLO client.example\r\nMAIL FROM:<a@remote.example>\r\nRCPT TO:<alice@example.org>\r\n\
          RCPT TO:<nobody@example.org>\r\nRSET\r\nRCPT TO:<alice@example.org>\r\n\
          MAIL FROM:<a@remote.example>\r\nRCPT TO:<bob@example.org>\r\nDATA\r\n",
    )
    .await;
    for prefix in
        ["250-mx", "250 2.1.0", "250 2.1.5", "550 5.1.1", "250 2.0.0", "503 5.5.1", "250 2.1.0", "250 2.1.5", "354"]
    {
        c.expect(prefix).await;
    }
    c.send(b"Subject: p\r\n\r\npipelined\r\n.\r\nQUIT\r\n").await;
    c.expect("250 2.0.0").await;
    c.expect("221 2.0.0").await;
    assert!(c.closed().await);
    assert_eq!(s.inbox(&s.bob).await.len(), 1);
    assert!(s.inbox(&s.alice).await.is_empty());
}

#[tokio::test]
async fn recipients_share_one_body_and_dedupe_per_account() {
    let s = Server::start().await;
    let mut c = s.connect(s.mx).await;
    c.cmd("EHLO client.example", "250").await;
    let to = ["alice@example.org", "bob@example.org", "al@example.org", "alice+news@example.org"];
    let r = c.send_mail("a@remote.example", &to, BODY).await;
    assert!(r.starts_with("250 2.0.0"), "{r}");
    let alice = s.inbox(&s.alice).await;
    let bob = s.inbox(&s.bob).await;
    assert_eq!((alice.len(), bob.len()), (1, 1), "one copy per account");
    assert_eq!(alice[0].0.blob, bob[0].0.blob, "one body file shared");
    assert_eq!(alice[0].1, bob[0].1);
    assert!(!String::from_utf8_lossy(&alice[0].1).contains("\tfor <"), "no `for` with several recipients");
}

#[tokio::test]
async fn too_many_recipients() {
    let s = Server::with(Options { max_recipients: 2, ..Options::default() }).await;
    let mut c = s.connect(s.mx).await;
    c.cmd("EHLO client.example", "250").await;
    c.cmd("MAIL FROM:<a@remote.example>", "250").await;
    c.cmd("RCPT TO:<alice@example.org>", "250").await;
    c.cmd("RCPT TO:<bob@example.org>", "250").await;
    c.cmd("RCPT TO:<al@example.org>", "452 4.5.3").await;
}

#[tokio::test]
async fn non_ascii_address_needs_smtputf8() {
    let s = Server::start().await;
    let mut c = s.connect(s.mx).await;
    c.cmd("EHLO client.example", "250").await;
    c.cmd("MAIL FROM:<jörg@remote.example>", "553 5.6.7").await;
    c.cmd("MAIL FROM:<jörg@remote.example> SMTPUTF8", "250").await;
    c.cmd("RCPT TO:<alice@example.org>", "250").await;
    c.cmd("DATA", "354").await;
    c.send("Subject: ü\r\n\r\nü\r\n.\r\n".as_bytes()).await;
    c.expect("250 2.0.0").await;
    let raw = String::from_utf8(s.inbox(&s.alice).await.remove(0).1).unwrap();
    assert!(raw.contains("with UTF8SMTP id"), "{raw}");
}

#[tokio::test]
async fn shutdown_says_421_and_finishes_the_transaction_first() {
    let s = Server::start().await;
    let mut idle = s.connect(s.mx).await;
    idle.cmd("EHLO client.example", "250").await;
    let mut busy = s.connect(s.mx).await;
    busy.cmd("EHLO client.example", "250").await;
    busy.cmd("MAIL FROM:<a@remote.example>", "250").await;
    busy.cmd("RCPT TO:<alice@example.org>", "250").await;

    s.shutdown.cancel();
    idle.expect("421 4.3.2").await;
    assert!(idle.closed().await);
    // The transaction in progress completes, then the session ends.
    busy.cmd("DATA", "354").await;
    busy.send(b"Subject: last\r\n\r\nx\r\n.\r\n").await;
    busy.expect("250 2.0.0").await;
    busy.expect("421 4.3.2").await;
    s.tracker.close();
    tokio::time::timeout(super::WAIT, s.tracker.wait()).await.unwrap();
    assert_eq!(s.inbox(&s.alice).await.len(), 1);
    assert!(tokio::net::TcpStream::connect(s.mx).await.is_err(), "listener closed");
}

#[tokio::test]
async fn idle_client_times_out() {
    let short = std::time::Duration::from_millis(200);
    let timeouts = super::Timeouts { command: short, first_command: short, ..super::TIMEOUTS };
    let s = Server::with(Options { timeouts, ..Options::default() }).await;
    let mut c = s.connect(s.mx).await;
    c.expect("421 4.4.2").await;
    assert!(c.closed().await);
}

#[tokio::test]
async fn store_failure_is_451_and_nothing_is_acknowledged() {
    let s = Server::start().await;
    // No body file can be written while the blob directories are gone.
    let blobs = s.data_dir().join("blobs");
    std::fs::remove_dir_all(&blobs).unwrap();
    let mut c = s.connect(s.mx).await;
    c.cmd("EHLO client.example", "250").await;
    let r = c.send_mail("a@remote.example", &["alice@example.org"], BODY).await;
    assert!(r.starts_with("451 4.3.0"), "{r}");
    assert!(s.inbox(&s.alice).await.is_empty());
    // The session goes on and a retry succeeds once the store is healthy.
    coimail_store::blob::BlobStore::open(&blobs).unwrap();
    let r = c.send_mail("a@remote.example", &["alice@example.org"], BODY).await;
    assert!(r.starts_with("250 2.0.0"), "{r}");
    assert_eq!(s.inbox(&s.alice).await.len(), 1);
}

#[tokio::test]
async fn a_client_that_keeps_failing_is_cut_off_with_421() {
    let s = Server::start().await;
    let mut c = s.connect(s.mx).await;
    c.cmd("EHLO prober.example", "250-mx.example.org").await;
    c.cmd("MAIL FROM:<probe@remote.example>", "250 2.1.0").await;
    // Probing for users: every miss is a permanent error.
    for n in 1..=crate::session::MAX_ERRORS {
        c.cmd(&format!("RCPT TO:<guess{n}@example.org>"), "550 5.1.1").await;
    }
    c.expect("421 4.7.0").await;
    assert!(c.closed().await, "the connection must be closed after the 421");
}
