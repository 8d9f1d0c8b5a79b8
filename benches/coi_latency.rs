#![allow(clippy::expect_used, clippy::unwrap_used)] // a benchmark reports failures by panicking
//! COI chat latency (COI issue targets; docs/BENCHMARKS.md "COI chat
//! latency"): how soon a chat message delivered over SMTP is seen by a COI
//! client, against the real daemon (`coimail_daemon::start`, release build).
//!
//! Setup: one user with COI enabled and `message-filter active` (what the
//! OX COI app sets, C4), a validated `chat` WebPush subscription pointing at
//! a loopback push service that verifies the VAPID JWT and decrypts every
//! push (tests/util/push_service.rs), and an IMAP session SELECTed on
//! `COI/Chats` in IDLE. Then chat messages go one at a time over one SMTP
//! connection to the MX port. For each message:
//! - EXISTS: from reading the `250` reply to the DATA until the IDLE session
//!   reads `* n EXISTS`;
//! - push: from that `250` until the push POST has fully arrived at the push
//!   service.
//!
//! Either can come before the `250` (the store publishes and the push is
//! queued before the SMTP session replies); those count as 0 and are
//! reported as "before the 250". Prints median, p90, p99 and max for both,
//! the first message separately, and for context the same from the moment
//! the final dot of the data was written (dot -> 250, EXISTS, push).
//!
//! Run: `cargo bench --bench coi_latency` (options: `-- --messages N`).
//! Asserts only that every message is seen and pushed.

mod common;
#[path = "../tests/util/imap.rs"]
#[allow(dead_code)]
mod imap;
#[path = "../tests/util/push_service.rs"]
#[allow(dead_code)]
mod push_service;

use imap::ImapClient;
use push_service::PushService;
use std::time::{Duration, Instant};
use tokio::io::{AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

const USER: &str = "alice@example.org";
const PASSWORD: &str = "bench password";
const SUBSCRIPTION: &str = "/private/vendor/vendor.dovecot/webpush/subscriptions/31754ee7-d3ee-4226-b112-6895ed26fcf8";
const WAIT: Duration = Duration::from_secs(10);

fn messages() -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.windows(2).find(|p| p[0] == "--messages").and_then(|p| p[1].parse().ok()).unwrap_or(200)
}

fn config(dir: &std::path::Path) -> coimail_daemon::Config {
    let mut c = common::loopback_config(dir);
    // The push service below listens on 127.0.0.1 over plain http, which production refuses.
    c.coi.allow_loopback_push_endpoints = true;
    c
}

/// A chat message as OX COI / Delta Chat send it.
fn chat(n: usize) -> Vec<u8> {
    format!(
        "From: Bob <bob@remote.test>\r\nTo: {USER}\r\nSubject: Chat: bench {n}\r\n\
         Message-ID: <chat$bench{n}.x@remote.test>\r\nChat-Version: 1.0\r\n\
         Date: Wed, 25 Nov 2026 08:00:00 +0000\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nhello {n}\r\n"
    )
    .into_bytes()
}

fn quoted(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

/// One line of percentiles; `before`: how many came before the `250`.
fn report(name: &str, mut v: Vec<Duration>, before: Option<usize>) {
    v.sort();
    let ms = |d: Duration| format!("{:.3} ms", d.as_secs_f64() * 1000.0);
    let before = before.map(|b| format!("  ({b} of {} before the 250)", v.len())).unwrap_or_default();
    println!(
        "{name:<22} median {}  p90 {}  p99 {}  max {}{before}",
        ms(common::percentile(&v, 0.5)),
        ms(common::percentile(&v, 0.9)),
        ms(common::percentile(&v, 0.99)),
        ms(*v.last().unwrap()),
    );
}

fn main() {
    let n = messages();
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let running = coimail_daemon::start(config(dir.path())).await.unwrap();
        running.directory().add_domain("example.org").await.unwrap();
        running.directory().add_user(USER, PASSWORD, None).await.unwrap();
        let (smtp_addr, imap_addr) = (running.addrs().smtp[0], running.addrs().imap[0]);

        // COI on, filter active, a validated chat subscription (C4, C9).
        let service = PushService::start().await;
        let mut imap = ImapClient::login(imap_addr, USER, PASSWORD).await;
        let r = imap.command("GETMETADATA \"\" /private/vendor/vendor.dovecot/webpush/vapid").await;
        let text = r.text();
        let start = text.find("-----BEGIN PUBLIC KEY-----").expect("VAPID key");
        let end = text.find("-----END PUBLIC KEY-----").expect("VAPID key") + "-----END PUBLIC KEY-----".len();
        service.expect_vapid(&text[start..end]);
        let r = imap
            .command(
                "SETMETADATA \"\" (/private/vendor/vendor.dovecot/coi/config/enabled yes \
                 /private/vendor/vendor.dovecot/coi/config/message-filter active)",
            )
            .await;
        assert!(r.ok(), "{r:?}");
        let mut phone = service.phone("bench");
        let json = phone.subscription("OX COI Messenger", "bench", "chat", "");
        let r = imap.command(&format!("SETMETADATA \"\" ({SUBSCRIPTION} {})", quoted(&json))).await;
        assert!(r.ok(), "{r:?}");
        let validation = phone.next(WAIT).await;
        let secret = validation.json["validation"].as_str().unwrap().to_owned();
        let r = imap.command(&format!("SETMETADATA \"\" ({SUBSCRIPTION}/validate {})", quoted(&secret))).await;
        assert!(r.ok(), "{r:?}");

        // The IDLE session on COI/Chats reports each EXISTS with when it was read.
        let mut idle = ImapClient::login(imap_addr, USER, PASSWORD).await;
        let r = idle.command("SELECT COI/Chats").await;
        assert!(r.ok() && imap::exists(&r.text()) == Some(0), "{r:?}");
        let tag = idle.tag();
        idle.send_raw(format!("{tag} IDLE\r\n").as_bytes()).await;
        assert!(idle.read_line().await.starts_with(b"+ "));
        let (exists_tx, mut exists_rx) = tokio::sync::mpsc::unbounded_channel();
        let watcher = tokio::spawn(async move {
            loop {
                let line = idle.read_line().await;
                let seen = Instant::now();
                if let Some(count) = imap::exists(&String::from_utf8_lossy(&line)) {
                    let _ = exists_tx.send((count as usize, seen));
                }
            }
        });

        let stream = TcpStream::connect(smtp_addr).await.unwrap();
        stream.set_nodelay(true).unwrap();
        let (r, mut w) = stream.into_split();
        let mut r = BufReader::new(r);
        assert!(common::reply(&mut r).await.starts_with("220"));
        w.write_all(b"EHLO bench.test\r\n").await.unwrap();
        assert!(common::reply(&mut r).await.starts_with("250"));
        let (mut to_exists, mut to_push) = (Vec::with_capacity(n), Vec::with_capacity(n));
        let (mut dot_to_ack, mut dot_to_exists, mut dot_to_push) = (Vec::new(), Vec::new(), Vec::new());
        let (mut exists_first, mut push_first) = (0, 0);
        for i in 1..=n {
            // PIPELINING: the envelope in one write, the data (no line starts with '.') in another.
            w.write_all(format!("MAIL FROM:<bob@remote.test>\r\nRCPT TO:<{USER}>\r\nDATA\r\n").as_bytes())
                .await
                .unwrap();
            for expect in ["250", "250", "354"] {
                let l = common::reply(&mut r).await;
                assert!(l.starts_with(expect), "{l}");
            }
            let mut data = chat(i);
            data.extend_from_slice(b".\r\n");
            w.write_all(&data).await.unwrap();
            let dot = Instant::now();
            let l = common::reply(&mut r).await;
            let acked = Instant::now();
            assert!(l.starts_with("250"), "{l}");
            let seen = loop {
                let (count, at) = tokio::time::timeout(WAIT, exists_rx.recv()).await.expect("EXISTS").unwrap();
                if count >= i {
                    assert_eq!(count, i);
                    break at;
                }
            };
            let push = phone.next(WAIT).await;
            assert_eq!(push.json["uid"], i, "{}", push.json);
            exists_first += usize::from(seen < acked);
            push_first += usize::from(push.request.arrived < acked);
            to_exists.push(seen.saturating_duration_since(acked));
            to_push.push(push.request.arrived.saturating_duration_since(acked));
            dot_to_ack.push(acked - dot);
            dot_to_exists.push(seen.saturating_duration_since(dot));
            dot_to_push.push(push.request.arrived.saturating_duration_since(dot));
        }
        watcher.abort();
        assert!(phone.try_next().is_none(), "one push per message");

        let ms = |d: Duration| format!("{:.3} ms", d.as_secs_f64() * 1000.0);
        println!("COI chat latency, {n} chat messages, one at a time, SMTP (MX) -> COI/Chats, release build");
        println!("first message: EXISTS {}, push {}", ms(to_exists[0]), ms(to_push[0]));
        report("250 -> IDLE EXISTS", to_exists, Some(exists_first));
        report("250 -> push arrival", to_push, Some(push_first));
        println!("for context, from the end of the data (final dot written):");
        report("dot -> 250", dot_to_ack, None);
        report("dot -> IDLE EXISTS", dot_to_exists, None);
        report("dot -> push arrival", dot_to_push, None);
        running.shutdown().await.unwrap();
    });
}
