#![allow(clippy::expect_used, clippy::unwrap_used)] // a benchmark reports failures by panicking
//! SMTP load (issue 4, Performance): 10 concurrent sessions send 2,000
//! messages of 2 KB to local users over loopback, against the real daemon
//! (`coimail_daemon::start`, sled index, fsync'd body files: every 250 is a
//! durable commit). Prints:
//! - accepted msg/s: messages / (last 250 − first MAIL);
//! - the 250 latency (median, p99);
//! - visibility: time from the last 250 until every message is visible over
//!   IMAP, seen by one IDLE session per recipient waiting for its last
//!   `* N EXISTS` (0 when the EXISTS came before the 250, as it usually does:
//!   the store publishes before the session replies).
//!
//! The MX listener's inbound checks are on (`smtp.inbound_checks`), as in
//! production: the sender domain publishes SPF, DMARC `p=reject` and an
//! Ed25519 DKIM key in the bench's own DNS server (`tests/util/dns.rs`),
//! 127.0.0.1 has a PTR record, and every message is DKIM-signed (before the
//! clock starts), so each is verified (SPF, DKIM, ARC, DMARC, iprev) and
//! gets `Authentication-Results`. `--no-checks` turns them off.
//!
//! Run: `cargo bench --bench smtp_load` (release build). Options:
//! `-- --sessions N --messages N --users N --size BYTES --no-checks`. Asserts
//! only that the checks passed on the stored messages.

mod common;
#[allow(dead_code)] // the bench needs only part of the test DNS server
#[path = "../tests/util/dns.rs"]
mod dns;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::net::tcp::OwnedReadHalf;

const PASSWORD: &str = "bench password";

struct Options {
    sessions: usize,
    messages: usize,
    users: usize,
    size: usize,
    checks: bool,
}

fn options() -> Options {
    let mut o = Options { sessions: 10, messages: 2000, users: 10, size: 2048, checks: true };
    let args: Vec<String> = std::env::args().collect();
    o.checks = !args.iter().any(|a| a == "--no-checks");
    for pair in args.windows(2) {
        let n = pair[1].parse().ok();
        match (pair[0].as_str(), n) {
            ("--sessions", Some(n)) => o.sessions = n,
            ("--messages", Some(n)) => o.messages = n,
            ("--users", Some(n)) => o.users = n,
            ("--size", Some(n)) => o.size = n,
            _ => {}
        }
    }
    o
}

fn user(i: usize) -> String {
    format!("user{i}@example.org")
}

/// A `size`-byte message with CRLF lines.
fn message(n: usize, to: &str, size: usize) -> Vec<u8> {
    let mut m = format!(
        "From: load@remote.test\r\nTo: {to}\r\nSubject: load {n}\r\nMessage-ID: <load-{n}@remote.test>\r\n\
         Date: Wed, 25 Nov 2026 08:00:00 +0000\r\n\r\n"
    )
    .into_bytes();
    let line = b"The quick brown fox jumps over the lazy dog, again and again and again.\r\n";
    while m.len() + line.len() <= size {
        m.extend_from_slice(line);
    }
    while m.len() + 2 < size {
        m.push(b'x');
    }
    m.extend_from_slice(b"\r\n");
    m
}

/// The sender domain's DKIM key and what its DNS publishes.
struct Sender {
    signer: mail_auth::dkim::DkimSigner<mail_auth::common::crypto::Ed25519Key, mail_auth::dkim::Done>,
    zone: dns::Zone,
}

fn sender_domain() -> Sender {
    use base64::Engine;
    let pkcs8 = mail_auth::common::crypto::Ed25519Key::generate_pkcs8().unwrap();
    let key = mail_auth::common::crypto::Ed25519Key::from_pkcs8_der(&pkcs8).unwrap();
    let public = base64::engine::general_purpose::STANDARD.encode(key.public_key());
    let zone = dns::Zone::default()
        .ttl(3600)
        .txt("remote.test", "v=spf1 ip4:127.0.0.1 -all")
        .txt("_dmarc.remote.test", "v=DMARC1; p=reject")
        .txt("bench._domainkey.remote.test", &format!("v=DKIM1; k=ed25519; p={public}"))
        .ptr("127.0.0.1".parse().unwrap(), "load.remote.test")
        .a("load.remote.test", "127.0.0.1".parse().unwrap());
    let signer = mail_auth::dkim::DkimSigner::from_key(key).domain("remote.test").selector("bench").headers([
        "From",
        "To",
        "Subject",
        "Message-ID",
        "Date",
    ]);
    Sender { signer, zone }
}

/// `message` with a DKIM-Signature of remote.test in front.
fn signed(sender: &Sender, message: Vec<u8>) -> Vec<u8> {
    use mail_auth::common::headers::HeaderWriter;
    let signature = sender.signer.sign(&message).unwrap();
    let mut out = signature.to_header().into_bytes();
    out.extend_from_slice(&message);
    out
}

/// One SMTP session sending `jobs` (message number, recipient, the message with
/// its end of data); returns the time of each 250 and its latency.
async fn sender(addr: SocketAddr, jobs: Vec<(usize, usize, Vec<u8>)>) -> Vec<(Instant, Duration)> {
    let stream = TcpStream::connect(addr).await.unwrap();
    stream.set_nodelay(true).unwrap();
    let (r, mut w) = stream.into_split();
    let mut r = BufReader::new(r);
    assert!(common::reply(&mut r).await.starts_with("220"));
    w.write_all(b"EHLO load.test\r\n").await.unwrap();
    assert!(common::reply(&mut r).await.starts_with("250"));
    let mut out = Vec::with_capacity(jobs.len());
    for (_, u, data) in jobs {
        let to = user(u);
        let start = Instant::now();
        // PIPELINING: the envelope in one write, the data in another.
        w.write_all(format!("MAIL FROM:<load@remote.test>\r\nRCPT TO:<{to}>\r\nDATA\r\n").as_bytes()).await.unwrap();
        for expect in ["250", "250", "354"] {
            let l = common::reply(&mut r).await;
            assert!(l.starts_with(expect), "{l}");
        }
        w.write_all(&data).await.unwrap();
        let l = common::reply(&mut r).await;
        assert!(l.starts_with("250"), "{l}");
        let now = Instant::now();
        out.push((now, now - start));
    }
    w.write_all(b"QUIT\r\n").await.unwrap();
    out
}

/// Logs in as `login`, selects INBOX and IDLEs until `* want EXISTS`; returns when it saw it.
async fn watcher(addr: SocketAddr, login: String, want: usize, ready: Arc<tokio::sync::Barrier>) -> Instant {
    let stream = TcpStream::connect(addr).await.unwrap();
    stream.set_nodelay(true).unwrap();
    let (r, mut w) = stream.into_split();
    let mut r = BufReader::new(r);
    async fn next(r: &mut BufReader<OwnedReadHalf>) -> String {
        let mut line = String::new();
        assert!(r.read_line(&mut line).await.unwrap() > 0, "IMAP server closed the connection");
        line.trim_end().to_owned()
    }
    next(&mut r).await; // greeting
    w.write_all(format!("a LOGIN \"{login}\" \"{PASSWORD}\"\r\nb SELECT INBOX\r\nc IDLE\r\n").as_bytes())
        .await
        .unwrap();
    loop {
        let l = next(&mut r).await;
        assert!(!l.starts_with("a NO") && !l.starts_with("b NO"), "{l}");
        if l.starts_with('+') {
            break;
        }
    }
    ready.wait().await;
    loop {
        let l = next(&mut r).await;
        let count = l.strip_prefix("* ").and_then(|x| x.strip_suffix(" EXISTS")).and_then(|x| x.parse::<usize>().ok());
        if count.is_some_and(|c| c >= want) {
            let seen = Instant::now();
            let _ = w.write_all(b"DONE\r\nd LOGOUT\r\n").await;
            return seen;
        }
    }
}

fn config(dir: &std::path::Path, dns: Option<SocketAddr>) -> coimail_daemon::Config {
    let mut c = common::loopback_config(dir);
    c.smtp.mx_max_connections_per_ip = 1000;
    c.smtp.submission_max_connections_per_ip = 1000;
    c.imap.max_connections_per_ip = 1000;
    c.imap.max_unauthenticated_per_ip = 1000;
    // One client address and a few recipients carry the whole load.
    c.smtp.mx_messages_per_peer_per_hour = 0;
    c.smtp.mx_messages_per_recipient_per_hour = 0;
    if let Some(dns) = dns {
        c.smtp.inbound_checks = true;
        c.queue.resolvers = vec![dns];
    }
    c
}

/// Every stored message passed every check (the bench measured the verifying path).
async fn assert_checked(running: &coimail_daemon::Running) {
    let account = running.directory().user(&user(0)).unwrap().unwrap();
    let inbox = running.store().mailbox(account.id, "INBOX").unwrap();
    let messages = running.store().messages(account.id, inbox.id).unwrap();
    let first = String::from_utf8(running.store().read_message(&messages[0]).await.unwrap()).unwrap();
    for want in ["iprev=pass", "spf=pass", "dkim=pass", "dmarc=pass"] {
        assert!(first.contains(want), "{want} missing:\n{first}");
    }
    println!("  checks: iprev, spf, dkim, dmarc all pass on the stored messages");
}

fn main() {
    let o = options();
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let domain = sender_domain();
        let dns = dns::TestDns::start(domain.zone.clone()).await;
        let dir = tempfile::tempdir().unwrap();
        let running = coimail_daemon::start(config(dir.path(), o.checks.then_some(dns.addr))).await.unwrap();
        running.directory().add_domain("example.org").await.unwrap();
        for u in 0..o.users {
            running.directory().add_user(&user(u), PASSWORD, None).await.unwrap();
        }
        let (smtp, imap) = (running.addrs().smtp[0], running.addrs().imap[0]);

        // Message n goes to user n % users; session s sends every sessions-th message.
        let mut per_user = vec![0usize; o.users];
        (0..o.messages).for_each(|n| per_user[n % o.users] += 1);
        let ready = Arc::new(tokio::sync::Barrier::new(o.users + 1));
        let watchers: Vec<_> =
            (0..o.users).map(|u| tokio::spawn(watcher(imap, user(u), per_user[u], ready.clone()))).collect();
        ready.wait().await;

        // Messages are made (and signed) before the clock starts.
        let mut jobs: Vec<Vec<(usize, usize, Vec<u8>)>> = (0..o.sessions).map(|_| Vec::new()).collect();
        for n in 0..o.messages {
            let u = n % o.users;
            let mut data = signed(&domain, message(n, &user(u), o.size));
            data.extend_from_slice(b".\r\n");
            jobs[n % o.sessions].push((n, u, data));
        }
        let start = Instant::now();
        let senders: Vec<_> = jobs.into_iter().map(|jobs| tokio::spawn(sender(smtp, jobs))).collect();
        let mut acks = Vec::with_capacity(o.messages);
        for s in senders {
            acks.extend(s.await.unwrap());
        }
        let mut visible = Vec::new();
        for w in watchers {
            visible.push(w.await.unwrap());
        }
        let last_250 = acks.iter().map(|(t, _)| *t).max().unwrap();
        let all_visible = visible.into_iter().max().unwrap();
        let mut lat: Vec<Duration> = acks.iter().map(|(_, l)| *l).collect();
        lat.sort();
        let secs = (last_250 - start).as_secs_f64();
        println!(
            "SMTP load: {} sessions, {} messages of {} bytes to {} local users over loopback (durable commits){}",
            o.sessions,
            o.messages,
            o.size,
            o.users,
            if o.checks { ", inbound checks on" } else { "" }
        );
        println!(
            "  accepted:   {:.0} msg/s ({:.3} s from the first MAIL to the last 250)",
            o.messages as f64 / secs,
            secs
        );
        println!("  250 latency: median {:?}, p99 {:?}", common::percentile(&lat, 0.5), common::percentile(&lat, 0.99));
        println!(
            "  visible over IMAP (IDLE EXISTS) {:?} after the last 250",
            all_visible.saturating_duration_since(last_250)
        );
        if o.checks {
            assert_checked(&running).await;
            let queries = dns.queries.lock().unwrap().clone();
            let mut by_name = std::collections::BTreeMap::<&str, usize>::new();
            queries.iter().for_each(|q| *by_name.entry(q.as_str()).or_default() += 1);
            println!("  DNS queries answered by the bench's server: {} {by_name:?}", queries.len());
        } else {
            println!("  checks: off (--no-checks)");
        }
        running.shutdown().await.unwrap();
    });
}
