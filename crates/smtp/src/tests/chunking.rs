//! BDAT / CHUNKING (RFC 3030).

use super::{Options, Server, submit_as};

#[tokio::test]
async fn bdat_chunks_make_one_message() {
    let s = Server::start().await;
    let mut c = s.connect(s.mx).await;
    c.cmd("EHLO remote", "250").await;
    c.cmd("MAIL FROM:<x@remote.example>", "250").await;
    c.cmd("RCPT TO:<alice@example.org>", "250").await;
    c.send(b"BDAT 14\r\nSubject: a\r\n\r\n").await;
    c.expect("250 2.0.0 14 octets received").await;
    // Pipelined: a chunk whose data holds what looks like commands and a lone dot.
    let tricky = b".\r\nQUIT\r\nRSET\r\nMAIL FROM:<>\r\n";
    let mut pipelined = format!("BDAT {}\r\n", tricky.len()).into_bytes();
    pipelined.extend_from_slice(tricky);
    pipelined.extend_from_slice(b"BDAT 7 LAST\r\nend\r\n\r\n");
    c.send(&pipelined).await;
    c.expect(&format!("250 2.0.0 {} octets received", tricky.len())).await;
    let r = c.expect("250 2.0.0 OK, delivered as").await;
    c.cmd("NOOP", "250").await;
    let raw = s.inbox(&s.alice).await.remove(0).1;
    let raw = String::from_utf8(raw).unwrap();
    assert!(raw.ends_with("\r\nSubject: a\r\n\r\n.\r\nQUIT\r\nRSET\r\nMAIL FROM:<>\r\nend\r\n\r\n"), "{r} {raw:?}");
    assert!(raw.contains("for <alice@example.org>"), "{raw}");
}

#[tokio::test]
async fn bdat_sequence_and_errors_consume_the_chunk() {
    let s = Server::with(Options { max_message_bytes: 1024, ..Options::default() }).await;
    let mut c = s.connect(s.mx).await;
    c.cmd("EHLO remote", "250").await;
    // Without MAIL: refused, but the 10 octets are not read as a command.
    c.send(b"BDAT 10\r\nNOOP\r\nXXXX").await;
    c.expect("503 5.5.1").await;
    c.cmd("MAIL FROM:<x@remote.example>", "250").await;
    c.send(b"BDAT 4 LAST\r\nNOOP").await;
    c.expect("554 5.5.1 no valid recipients").await;
    c.cmd("RCPT TO:<alice@example.org>", "503 5.5.1").await; // the refusal reset the transaction
    c.cmd("MAIL FROM:<x@remote.example>", "250").await;
    c.cmd("RCPT TO:<alice@example.org>", "250").await;
    c.send(b"BDAT 3\r\nA\nB").await;
    c.expect("250").await;
    c.cmd("DATA", "503 5.5.1").await;
    c.cmd("RCPT TO:<bob@example.org>", "503 5.5.1").await;
    c.send(b"BDAT 2 LAST\r\n\r\n").await;
    c.expect("554 5.6.0").await;
    c.cmd("MAIL FROM:<x@remote.example>", "250").await;
    c.cmd("RCPT TO:<alice@example.org>", "250").await;
    let big = vec![b'y'; 2000];
    c.send(b"BDAT 2000 LAST\r\n").await;
    c.send(&big).await;
    c.expect("552 5.3.4").await;
    assert!(s.inbox(&s.alice).await.is_empty());
    // A chunk far beyond the limit ends the session.
    c.cmd("MAIL FROM:<x@remote.example>", "250").await;
    c.cmd("RCPT TO:<alice@example.org>", "250").await;
    c.cmd("BDAT 999999999 LAST", "552 5.3.4").await;
    assert!(c.closed().await);
}

#[tokio::test]
async fn bdat_on_submission_runs_the_submission_checks() {
    let s = Server::with(Options { queue: true, ..Options::default() }).await;
    let mut c = submit_as(&s, "bob@example.org", "bob-pw").await;
    c.cmd("MAIL FROM:<bob@example.org>", "250").await;
    c.cmd("RCPT TO:<far@remote.example>", "250").await;
    let msg = b"From: alice@example.org\r\n\r\nforged\r\n";
    c.send(format!("BDAT {} LAST\r\n", msg.len()).as_bytes()).await;
    c.send(msg).await;
    c.expect("553 5.7.1").await;
    c.cmd("MAIL FROM:<bob@example.org>", "250").await;
    c.cmd("RCPT TO:<far@remote.example>", "250").await;
    let msg = b"From: bob@example.org\r\n\r\nmine\r\n";
    c.send(format!("BDAT {} LAST\r\n", msg.len()).as_bytes()).await;
    c.send(msg).await;
    c.expect("250 2.0.0 OK, queued as").await;
    assert_eq!(s.store.spool_list().unwrap().len(), 1);
}
