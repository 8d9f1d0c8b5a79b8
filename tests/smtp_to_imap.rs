//! The thin slice end to end with our own line clients: SMTP in, IMAP out,
//! IDLE woken by delivery, and the errors a user meets first.

use crate::util::{self, ImapClient, SmtpClient, TestServer, imap::exists};
use std::time::{Duration, Instant};

const ALICE: &str = "alice@example.org";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_sees_exists_within_100ms_of_the_250_reply() {
    let server = TestServer::start(&[ALICE]).await;
    let mut idle = ImapClient::login(server.imap(), ALICE, util::PASSWORD).await;
    let r = idle.command("SELECT INBOX").await;
    assert!(r.ok() && exists(&r.text()) == Some(0), "{r:?}");
    let tag = idle.tag();
    idle.send_raw(format!("{tag} IDLE\r\n").as_bytes()).await;
    assert!(idle.read_line().await.starts_with(b"+ "));

    let mut smtp = SmtpClient::connect(server.smtp()).await;
    let mut latencies = Vec::new();
    for n in 1..=20u32 {
        let waiter = async {
            let line = idle.read_line().await;
            (Instant::now(), String::from_utf8_lossy(&line).into_owned())
        };
        let sender = async {
            let r = smtp.send("sender@remote.test", &[ALICE], &util::message(n as usize, ALICE)).await;
            assert!(r.starts_with("250"), "{r}");
            Instant::now()
        };
        let ((seen, line), acked) = tokio::join!(waiter, sender);
        assert_eq!(line.trim_end(), format!("* {n} EXISTS"));
        // The only session: every new message is recent for it (RFC 3501 §7.3.2).
        assert_eq!(String::from_utf8_lossy(&idle.read_line().await).trim_end(), format!("* {n} RECENT"));
        latencies.push(seen.saturating_duration_since(acked));
        let r = smtp.cmd("RSET").await;
        assert!(r.starts_with("250"), "{r}");
    }
    latencies.sort();
    println!("IDLE EXISTS after SMTP 250: median {:?}, max {:?}", latencies[10], latencies[19]);
    assert!(latencies[19] < Duration::from_millis(100), "{latencies:?}");

    idle.send_raw(b"DONE\r\n").await;
    let done = idle.until_tagged(&tag).await;
    assert!(done.ok(), "{done:?}");
    let r = idle.command("FETCH 20 (UID RFC822.SIZE BODY.PEEK[])").await;
    assert!(r.ok(), "{r:?}");
    assert!(r.text().contains("Message-ID: <msg-20@remote.test>"), "{}", r.text());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_recipients_and_bad_mailbox_names_get_clear_errors() {
    let server = TestServer::start(&[ALICE]).await;
    let mut smtp = SmtpClient::connect(server.smtp()).await;
    assert!(smtp.cmd("EHLO client.test").await.starts_with("250"));
    assert!(smtp.cmd("MAIL FROM:<x@remote.test>").await.starts_with("250"));
    let r = smtp.cmd("RCPT TO:<nobody@example.org>").await;
    assert!(r.starts_with("550 5.1.1"), "{r}");
    let r = smtp.cmd("RCPT TO:<someone@elsewhere.test>").await;
    assert!(r.starts_with("550 5.7.1"), "{r}");

    let mut imap = ImapClient::login(server.imap(), ALICE, util::PASSWORD).await;
    for bad in ["\"a//b\"", "\"../x\"", "\"nope\""] {
        let r = imap.command(&format!("SELECT {bad}")).await;
        assert!(r.status.contains(" NO "), "SELECT {bad}: {}", r.status);
    }
    let r = imap.command("LOGIN a b").await;
    assert!(r.status.contains(" BAD ") || r.status.contains(" NO "), "{}", r.status);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_delivery_to_two_users_is_seen_by_both() {
    let server = TestServer::start(&[ALICE, "bob@example.org"]).await;
    let mut smtp = SmtpClient::connect(server.smtp()).await;
    let msg = util::message(7, ALICE);
    let r = smtp.send("sender@remote.test", &[ALICE, "bob@example.org"], &msg).await;
    assert!(r.starts_with("250"), "{r}");
    for user in [ALICE, "bob@example.org"] {
        let mut imap = ImapClient::login(server.imap(), user, util::PASSWORD).await;
        let r = imap.command("SELECT INBOX").await;
        assert_eq!(exists(&r.text()), Some(1), "{user}");
        let r = imap.command("FETCH 1 BODY.PEEK[]").await;
        let text = r.text();
        assert!(text.ends_with(&format!("{})\r\n", String::from_utf8_lossy(&msg))), "{text}");
    }
    let blobs = body_files(&server.dir.path().join("data/blobs"));
    assert_eq!(blobs, 1, "one body file for both recipients");
}

/// Files in the body file shards (`blobs/<shard>/`); the root's own files
/// (the sync bound) are not bodies.
fn body_files(root: &std::path::Path) -> usize {
    let mut n = 0;
    for shard in std::fs::read_dir(root).unwrap() {
        let shard = shard.unwrap();
        if shard.file_name() == "tmp" || !shard.file_type().unwrap().is_dir() {
            continue;
        }
        n += std::fs::read_dir(shard.path()).unwrap().count();
    }
    n
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_says_bye_and_marks_the_store_clean() {
    let mut server = TestServer::start(&[ALICE]).await;
    let mut imap = ImapClient::login(server.imap(), ALICE, util::PASSWORD).await;
    let mut smtp = SmtpClient::connect(server.smtp()).await;
    server.stop().await;
    let bye = imap.read_line().await;
    assert!(bye.starts_with(b"* BYE"), "{}", String::from_utf8_lossy(&bye));
    let r = smtp.reply().await;
    assert!(r.starts_with("421"), "{r}");
    assert!(server.dir.path().join("data/clean-shutdown").exists());
}
