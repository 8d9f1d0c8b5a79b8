#![allow(clippy::expect_used, clippy::unwrap_used)] // a benchmark has nobody to report errors to but its panic
//! FETCH over loopback on 10,000 messages of ~1.5 KB in one mailbox
//! (issue 3: warm `FETCH 1:* (UID FLAGS RFC822.SIZE ENVELOPE)` <= 30 ms).
//! A real sled store in a temp dir, a real `coimail_imap::serve`, and a
//! client that reads every response (literals included) up to the tagged OK.
//! Run: `cargo bench -p coimail-imap --bench fetch`. Prints numbers; asserts nothing.

mod common;

use coimail_imap::{ImapContext, ImapListener};
use coimail_store::{Flags, Placement, Store};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const MESSAGES: usize = 10_000;
const USER: &str = "bench@example.org";
const PASSWORD: &str = "bench-password-1";
/// Warm runs per command; `FETCH_BENCH_RUNS` overrides (e.g. for profiling).
fn warm_runs() -> usize {
    std::env::var("FETCH_BENCH_RUNS").ok().and_then(|v| v.parse().ok()).unwrap_or(15)
}

/// A ~1.5 KB message with the header fields a real client message has.
fn message(n: usize) -> Vec<u8> {
    let subject =
        if n.is_multiple_of(3) { format!("=?utf-8?q?R=C3=A9union_{n}?=") } else { format!("Meeting notes {n}") };
    let mut m = format!(
        "Return-Path: <sender{s}@example.net>\r\nReceived: from mx.example.net by mail.example.org; Tue, 14 Nov 2023 22:13:20 +0000\r\n\
From: \"Sender {s}\" <sender{s}@example.net>\r\nTo: Bench User <{USER}>, other{n}@example.org\r\nCc: team@example.org\r\n\
Subject: {subject}\r\nDate: Tue, 14 Nov 2023 23:13:20 +0100\r\nMessage-ID: <{n}.bench@example.net>\r\n\
In-Reply-To: <{p}.bench@example.net>\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\
Content-Transfer-Encoding: 8bit\r\n\r\n",
        s = n % 97,
        p = n.saturating_sub(1)
    )
    .into_bytes();
    while m.len() < 1500 {
        m.extend_from_slice(b"Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor.\r\n");
    }
    m
}

async fn setup(dir: &std::path::Path) -> (Store, Arc<ImapContext>) {
    let (store, directory, account) = common::store_with_user(dir, USER, PASSWORD).await;
    let started = Instant::now();
    let writers = 64;
    let mut tasks = Vec::new();
    for w in 0..writers {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            for n in (w..MESSAGES).step_by(writers) {
                let p = Placement {
                    account: account.id,
                    address: USER.into(),
                    mailbox: "INBOX".into(),
                    flags: Flags::new(),
                };
                store.deliver(&message(n), 1_700_000_000, vec![p]).await.expect("deliver");
            }
        }));
    }
    for t in tasks {
        t.await.expect("writer");
    }
    println!("delivered {MESSAGES} messages in {:.1} s (setup, not measured)", started.elapsed().as_secs_f64());
    let config = common::config();
    let ctx = Arc::new(ImapContext::new(store.clone(), directory, None, config));
    (store, ctx)
}

/// A client that reads whole responses, skipping over literals.
struct Client {
    tcp: TcpStream,
    buf: Vec<u8>,
}

impl Client {
    /// Sends `tag command` and reads up to the tagged response; returns the bytes read.
    async fn command(&mut self, tag: &str, command: &str) -> usize {
        self.tcp.write_all(format!("{tag} {command}\r\n").as_bytes()).await.unwrap();
        let mut total = 0;
        let mut pos = 0; // start of the line being looked at
        loop {
            while let Some(nl) = self.buf[pos..].windows(2).position(|w| w == b"\r\n") {
                let line = &self.buf[pos..pos + nl];
                let mut next = pos + nl + 2;
                if let Some(n) = literal(line) {
                    while self.buf.len() < next + n {
                        self.read().await;
                    }
                    next += n;
                    // The response goes on after the literal: keep scanning from there.
                    pos = next;
                    continue;
                }
                if line.starts_with(tag.as_bytes()) && line.get(tag.len()) == Some(&b' ') {
                    assert!(line[tag.len() + 1..].starts_with(b"OK"), "{}", String::from_utf8_lossy(line));
                    total += next;
                    self.buf.drain(..next);
                    return total;
                }
                pos = next;
            }
            if pos > 1 << 20 {
                total += pos;
                self.buf.drain(..pos);
                pos = 0;
            }
            self.read().await;
        }
    }

    async fn read(&mut self) {
        let n = self.tcp.read_buf(&mut self.buf).await.unwrap();
        assert!(n > 0, "server closed the connection");
    }
}

fn literal(line: &[u8]) -> Option<usize> {
    let inner = line.strip_suffix(b"}")?;
    let open = inner.iter().rposition(|&b| b == b'{')?;
    std::str::from_utf8(&inner[open + 1..]).ok()?.parse().ok()
}

async fn time(c: &mut Client, command: &str, runs: usize) -> (Duration, Duration, usize) {
    let mut times = Vec::with_capacity(runs);
    let mut bytes = 0;
    for i in 0..runs {
        let started = Instant::now();
        bytes = c.command(&format!("t{i}"), command).await;
        times.push(started.elapsed());
    }
    times.sort();
    (times[0], times[times.len() / 2], bytes)
}

fn report(what: &str, (min, median, bytes): (Duration, Duration, usize)) {
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!("  {what:<58} min {:>7.1} ms  median {:>7.1} ms  ({:.1} MB)", ms(min), ms(median), bytes as f64 / 1e6);
}

async fn run() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (_store, ctx) = setup(dir.path()).await;
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let shutdown = tokio_util::sync::CancellationToken::new();
    let tracker = tokio_util::task::TaskTracker::new();
    tokio::spawn(coimail_imap::serve(listener, ImapListener::Starttls, ctx, shutdown.clone(), tracker.clone()));
    let tcp = TcpStream::connect(addr).await.unwrap();
    tcp.set_nodelay(true).unwrap();
    let mut c = Client { tcp, buf: Vec::new() };
    while !c.buf.windows(2).any(|w| w == b"\r\n") {
        c.read().await;
    }
    c.buf.clear();
    c.command("l", &format!("LOGIN {USER} {PASSWORD}")).await;
    let started = Instant::now();
    c.command("s", "SELECT INBOX").await;
    println!("SELECT INBOX ({MESSAGES} messages): {:.1} ms", started.elapsed().as_secs_f64() * 1000.0);

    let envelope = "FETCH 1:* (UID FLAGS RFC822.SIZE ENVELOPE)";
    println!("over loopback, {MESSAGES} messages of ~1.5 KB:");
    report(&format!("{envelope} cold"), time(&mut c, envelope, 1).await);
    report(&format!("{envelope} warm"), time(&mut c, envelope, warm_runs()).await);
    report("FETCH 1:* (UID FLAGS)", time(&mut c, "FETCH 1:* (UID FLAGS)", warm_runs()).await);
    report("FETCH 1:* BODYSTRUCTURE warm", time(&mut c, "FETCH 1:* BODYSTRUCTURE", warm_runs()).await);
    let fields = "FETCH 1:* BODY.PEEK[HEADER.FIELDS (FROM SUBJECT DATE)]";
    report(&format!("{fields} (reads files)"), time(&mut c, fields, 3).await);
    c.command("o", "LOGOUT").await;
    shutdown.cancel();
    tracker.close();
    tracker.wait().await;
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    rt.block_on(run());
}
