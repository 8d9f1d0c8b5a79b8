//! Limits on what one peer may take (issue 11), each tried the way an
//! attacker would over real sockets from its own loopback address: the MX
//! and submission connection pools, IMAP sessions that never log in, and
//! the MX message rates per peer and per recipient.

use crate::util::imap::exists;
use crate::util::mailhost::base64;
use crate::util::slow::connect_from;
use crate::util::{ImapClient, PASSWORD, SmtpClient, TestServer, message};
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::net::TcpStream;

const ALICE: &str = "alice@example.org";
const BOB: &str = "bob@example.org";
const ATTACKER: &str = "127.0.0.2";
const ACCOMPLICE: &str = "127.0.0.4";
const NORMAL: &str = "127.0.0.3";

/// Connects from `src` and reads the server's first line; the connection
/// stays open (and holds its slot) as long as the stream lives.
async fn first_line(src: &str, addr: SocketAddr) -> (BufReader<TcpStream>, String) {
    let mut r = BufReader::new(connect_from(src, addr).await);
    let mut line = String::new();
    tokio::time::timeout(Duration::from_secs(10), r.read_line(&mut line)).await.unwrap().unwrap();
    (r, line.trim_end().to_owned())
}

async fn submit_as(addr: SocketAddr, src: &str, user: &str) -> SmtpClient {
    let mut c = SmtpClient::on(connect_from(src, addr).await).await;
    assert!(c.cmd("EHLO laptop.test").await.starts_with("250"));
    let r = c.cmd(&format!("AUTH PLAIN {}", base64(format!("\0{user}\0{PASSWORD}").as_bytes()))).await;
    assert!(r.starts_with("235"), "{r}");
    c
}

/// A submitted message from `from` to `to`.
fn submitted(from: &str, to: &str) -> Vec<u8> {
    format!("From: <{from}>\r\nTo: <{to}>\r\nSubject: submitted\r\n\r\nhi\r\n").into_bytes()
}

const TOO_MANY: &str = "421 4.7.0 Too many connections, try again later";

/// Two addresses fill the MX pool: MX is refused to everyone else, yet
/// submission (its own pool, 587 and 465 together) still takes users'
/// mail, also from the addresses that hold the MX slots. With one shared
/// pool, as before, submission was refused too.
#[tokio::test]
async fn mx_and_submission_have_separate_pools() {
    let srv = TestServer::start_with(&[ALICE, BOB], |c| {
        (c.smtp.mx_max_connections, c.smtp.mx_max_connections_per_ip) = (6, 3);
        (c.smtp.submission_max_connections, c.smtp.submission_max_connections_per_ip) = (6, 3);
    })
    .await;
    let (mx, submission) = (srv.smtp(), srv.addrs().submission[0]);
    let mut held = Vec::new();
    for src in [ATTACKER, ACCOMPLICE] {
        for _ in 0..3 {
            let (c, line) = first_line(src, mx).await;
            assert!(line.starts_with("220 "), "{line}");
            held.push(c);
        }
    }
    // Over the attacker's own cap, then over the pool for everyone.
    assert_eq!(first_line(ATTACKER, mx).await.1, TOO_MANY);
    assert_eq!(first_line(NORMAL, mx).await.1, TOO_MANY);
    // Submission is untouched: a user sends, and the attacker's address has
    // submission slots of its own.
    let mut c = submit_as(submission, NORMAL, BOB).await;
    let r =
        c.transaction(&format!("MAIL FROM:<{BOB}>"), &[&format!("RCPT TO:<{ALICE}>")], &submitted(BOB, ALICE)).await;
    assert!(r.starts_with("250"), "{r}");
    let (_sub, line) = first_line(ATTACKER, submission).await;
    assert!(line.starts_with("220 "), "{line}");
    // A freed MX slot is taken by the next client.
    drop(held.pop());
    let mut admitted = None;
    for _ in 0..100 {
        let (c, line) = first_line(NORMAL, mx).await;
        if line.starts_with("220 ") {
            admitted = Some(c);
            break;
        }
        assert_eq!(line, TOO_MANY);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(admitted.is_some(), "the MX slot was never freed");
}

/// An address that only opens IMAP connections and never logs in gets
/// `max_unauthenticated_per_ip` of them, even where the per-address cap
/// is higher (a NAT full of users); a login gives its slot back.
#[tokio::test]
async fn imap_sessions_not_logged_in_are_capped_per_peer() {
    let srv = TestServer::start_with(&[ALICE], |c| {
        (c.imap.max_connections_per_ip, c.imap.max_unauthenticated_per_ip) = (20, 3);
    })
    .await;
    let mut held = Vec::new();
    for _ in 0..3 {
        let (c, line) = first_line(ATTACKER, srv.imap()).await;
        assert!(line.starts_with("* OK"), "{line}");
        held.push(c);
    }
    assert_eq!(first_line(ATTACKER, srv.imap()).await.1, "* BYE Too many connections");
    // Another address is not affected.
    let (_other, line) = first_line(NORMAL, srv.imap()).await;
    assert!(line.starts_with("* OK"), "{line}");
    // Logged-in sessions do not count against the cap.
    drop(held.pop());
    let mut logged_in = Vec::new();
    for _ in 0..5 {
        let mut c = None;
        for _ in 0..100 {
            let (probe, line) = first_line(ATTACKER, srv.imap()).await;
            if line.starts_with("* OK") {
                // Only the greeting was sent, so the reader holds nothing more.
                c = Some(ImapClient::on_greeted(probe.into_inner()));
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let mut c = c.expect("a slot for a new login was never free");
        let r = c.command(&format!("LOGIN {ALICE} \"{PASSWORD}\"")).await;
        assert!(r.ok(), "{}", r.status);
        logged_in.push(c);
    }
    assert_eq!(first_line(ATTACKER, srv.imap()).await.1.get(..4), Some("* OK"));
}

/// A peer that delivered `mx_messages_per_peer_per_hour` messages gets
/// `450 4.7.1` at MAIL, in this session and the next; other peers and the
/// peer's authenticated submission go on.
#[tokio::test]
async fn mx_rate_limit_per_peer() {
    let srv = TestServer::start_with(&[ALICE, BOB], |c| c.smtp.mx_messages_per_peer_per_hour = 3).await;
    let mut c = SmtpClient::on(connect_from(ATTACKER, srv.smtp()).await).await;
    for i in 0..3 {
        let to = [ALICE, BOB][i % 2];
        let r = if i == 0 {
            c.send("spam@remote.test", &[to], &message(i, to)).await
        } else {
            c.transaction("MAIL FROM:<spam@remote.test>", &[&format!("RCPT TO:<{to}>")], &message(i, to)).await
        };
        assert!(r.starts_with("250"), "{i}: {r}");
    }
    let r = c.cmd("MAIL FROM:<spam@remote.test>").await;
    assert!(r.starts_with("450 4.7.1") && r.contains("rate limit"), "{r}");
    let mut again = SmtpClient::on(connect_from(ATTACKER, srv.smtp()).await).await;
    assert!(again.cmd("EHLO again.test").await.starts_with("250"));
    let r = again.cmd("MAIL FROM:<spam@remote.test>").await;
    assert!(r.starts_with("450 4.7.1 rate limit: too many messages from your address"), "{r}");
    // Others deliver; the attacker's address may still submit as a user.
    let mut other = SmtpClient::on(connect_from(NORMAL, srv.smtp()).await).await;
    assert!(other.send("friend@remote.test", &[ALICE], &message(9, ALICE)).await.starts_with("250"));
    let mut sub = submit_as(srv.addrs().submission[0], ATTACKER, BOB).await;
    for _ in 0..4 {
        let rcpt = format!("RCPT TO:<{ALICE}>");
        let r = sub.transaction(&format!("MAIL FROM:<{BOB}>"), &[&rcpt], &submitted(BOB, ALICE)).await;
        assert!(r.starts_with("250"), "{r}");
    }
}

/// A local user who got `mx_messages_per_recipient_per_hour` messages over
/// MX, from any number of peers, is refused at RCPT with `450 4.7.1`; the
/// other recipients of the same message still get it, and mail submitted
/// by local users still reaches the user.
#[tokio::test]
async fn mx_rate_limit_per_recipient() {
    let srv = TestServer::start_with(&[ALICE, BOB], |c| c.smtp.mx_messages_per_recipient_per_hour = 2).await;
    for (i, src) in [ATTACKER, ACCOMPLICE].into_iter().enumerate() {
        let mut c = SmtpClient::on(connect_from(src, srv.smtp()).await).await;
        assert!(c.send("flood@remote.test", &[ALICE], &message(i, ALICE)).await.starts_with("250"));
    }
    let mut c = SmtpClient::on(connect_from(NORMAL, srv.smtp()).await).await;
    assert!(c.cmd("EHLO friend.test").await.starts_with("250"));
    assert!(c.cmd("MAIL FROM:<friend@remote.test>").await.starts_with("250"));
    let r = c.cmd(&format!("RCPT TO:<{ALICE}>")).await;
    assert!(r.starts_with("450 4.7.1 rate limit: too many messages for this recipient"), "{r}");
    assert!(c.cmd(&format!("RCPT TO:<{BOB}>")).await.starts_with("250"));
    assert!(c.cmd("DATA").await.starts_with("354"));
    let r = c.cmd("Subject: to both\r\n\r\nhi\r\n.").await;
    assert!(r.starts_with("250"), "{r}");
    let mut sub = submit_as(srv.addrs().submission[0], NORMAL, BOB).await;
    let r =
        sub.transaction(&format!("MAIL FROM:<{BOB}>"), &[&format!("RCPT TO:<{ALICE}>")], &submitted(BOB, ALICE)).await;
    assert!(r.starts_with("250"), "submission is not limited by MX rates: {r}");
    let mut imap = ImapClient::login(srv.imap(), ALICE, PASSWORD).await;
    assert_eq!(exists(&imap.command("SELECT INBOX").await.text()), Some(3), "two over MX, one submitted");
    let mut imap = ImapClient::login(srv.imap(), BOB, PASSWORD).await;
    assert_eq!(exists(&imap.command("SELECT INBOX").await.text()), Some(1));
}
