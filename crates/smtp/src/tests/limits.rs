//! Connection caps in the accept loop, over real sockets.

use super::{Client, Options, Pool, Server};
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

/// A client that has read whatever the server said first.
async fn first_reply(addr: SocketAddr) -> (Client, String) {
    let tcp = TcpStream::connect(addr).await.unwrap();
    let mut c = Client::new(Box::new(tcp));
    let r = c.reply().await;
    (c, r)
}

/// Connects until greeted: the slot is freed when the session task ends,
/// which may be just after the client sees the close.
async fn connect_when_free(addr: SocketAddr) -> Client {
    for _ in 0..200 {
        let (c, r) = first_reply(addr).await;
        if r.starts_with("220 ") {
            return c;
        }
        assert_eq!(r, "421 4.7.0 Too many connections, try again later");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("the slot was never released");
}

#[tokio::test]
async fn per_ip_cap_is_per_pool_and_released_on_quit() {
    let pool = Pool { max: 200, max_per_ip: 2 };
    let s = Server::with(Options { mx_pool: pool, submission_pool: pool, ..Options::default() }).await;
    let mut a = s.connect(s.mx).await;
    let mut a2 = s.connect(s.mx).await;
    let (mut c, r) = first_reply(s.mx).await;
    assert_eq!(r, "421 4.7.0 Too many connections, try again later");
    assert!(c.closed().await);
    // The peer's MX slots do not count against its submission slots...
    let mut b = s.connect(s.submission).await;
    let _b2 = s.connect(s.submission).await;
    // ...which 587 and 465 share.
    let (mut c, r) = first_reply(s.submission).await;
    assert_eq!(r, "421 4.7.0 Too many connections, try again later");
    assert!(c.closed().await);
    // The sessions admitted are unaffected.
    a2.cmd("EHLO client.example", "250").await;
    b.cmd("EHLO client.example", "250").await;
    a.cmd("QUIT", "221 2.0.0").await;
    assert!(a.closed().await);
    let mut c = connect_when_free(s.mx).await;
    c.cmd("EHLO client.example", "250").await;
    let done = c.send_mail("sender@remote.example", &["alice@example.org"], "Subject: hi\r\n\r\nhi\r\n").await;
    assert!(done.starts_with("250 2.0.0"), "{done}");
}

#[tokio::test]
async fn total_cap_per_pool_and_implicit_tls_refusal_is_silent() {
    let one = Pool { max: 1, max_per_ip: 0 };
    let s = Server::with(Options { mx_pool: one, submission_pool: one, ..Options::default() }).await;
    let mut a = s.connect(s.submission).await;
    // A full MX pool leaves submission alone and the other way round.
    let mut m = s.connect(s.mx).await;
    let (mut c, r) = first_reply(s.mx).await;
    assert_eq!(r, "421 4.7.0 Too many connections, try again later");
    assert!(c.closed().await);
    m.cmd("QUIT", "221").await;
    // On 465 no handshake is spent on a refused client: it is just closed.
    let mut tcp = TcpStream::connect(s.submissions).await.unwrap();
    let mut rest = Vec::new();
    let n = tokio::time::timeout(Duration::from_secs(10), tcp.read_to_end(&mut rest)).await.unwrap();
    assert!(matches!(n, Ok(0)) || n.is_err(), "{rest:?}");
    a.cmd("QUIT", "221").await;
    assert!(a.closed().await);
    connect_when_free(s.mx).await.cmd("QUIT", "221").await;
}

#[tokio::test]
async fn submission_rate_per_user_per_hour() {
    let s = Server::with(Options { max_messages_per_hour: 2, ..Options::default() }).await;
    let mut c = super::submit_as(&s, "alice@example.org", "alice-pw").await;
    for i in 0..2 {
        let r = c.send_mail("alice@example.org", &["bob@example.org"], &format!("Subject: {i}\r\n\r\nhi\r\n")).await;
        assert!(r.starts_with("250 2.0.0"), "{r}");
    }
    // The third message of the hour: refused before any data is sent, temporarily.
    c.cmd("MAIL FROM:<alice@example.org>", "450 4.7.1").await;
    // A message refused for another reason takes no slot: bob still has both.
    let mut b = super::submit_as(&s, "bob@example.org", "bob-pw").await;
    let r = b.send_mail("bob@example.org", &["alice@example.org"], "From: mallory@example.org\r\n\r\nx\r\n").await;
    assert!(r.starts_with("553 5.7.1"), "{r}");
    for i in 0..2 {
        let r = b.send_mail("bob@example.org", &["alice@example.org"], &format!("Subject: {i}\r\n\r\nhi\r\n")).await;
        assert!(r.starts_with("250 2.0.0"), "{r}");
    }
    // Two sessions of one user share the count; MX is not limited.
    let mut again = super::submit_as(&s, "alice@example.org", "alice-pw").await;
    again.cmd("MAIL FROM:<alice@example.org>", "450 4.7.1").await;
    let mut mx = s.connect(s.mx).await;
    mx.cmd("EHLO remote.example", "250").await;
    for _ in 0..3 {
        let r = mx.send_mail("someone@remote.example", &["alice@example.org"], "Subject: mx\r\n\r\nhi\r\n").await;
        assert!(r.starts_with("250 2.0.0"), "{r}");
    }
}

/// BDAT's message data runs from the first chunk to LAST: chunks sent
/// briskly but never the last one are cut off by the data deadline, which
/// the command lines between chunks do not restart.
#[tokio::test]
async fn bdat_chunks_without_end_meet_the_data_deadline() {
    let timeouts = super::Timeouts { data: Duration::from_secs(1), ..super::TIMEOUTS };
    let s = Server::with(Options { timeouts, ..Options::default() }).await;
    let mut c = s.connect(s.mx).await;
    c.cmd("EHLO chunky.example", "250").await;
    c.cmd("MAIL FROM:<a@remote.example>", "250").await;
    c.cmd("RCPT TO:<alice@example.org>", "250").await;
    let start = std::time::Instant::now();
    let mut last = String::new();
    for _ in 0..20 {
        c.send(b"BDAT 4\r\nabcd").await;
        last = c.reply().await;
        if !last.starts_with("250") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(last, "421 4.4.2 message not received within 1 s, closing transmission channel");
    assert!(start.elapsed() < Duration::from_secs(5), "{:?}", start.elapsed());
    assert!(c.closed().await);
    // A transaction that ends in time leaves the next one a fresh deadline.
    let mut c = s.connect(s.mx).await;
    c.cmd("EHLO chunky.example", "250").await;
    for _ in 0..2 {
        c.cmd("MAIL FROM:<a@remote.example>", "250").await;
        c.cmd("RCPT TO:<alice@example.org>", "250").await;
        c.send(b"BDAT 18 LAST\r\nSubject: x\r\n\r\nhi\r\n").await;
        c.expect("250 2.0.0").await;
        tokio::time::sleep(Duration::from_millis(700)).await;
    }
}
