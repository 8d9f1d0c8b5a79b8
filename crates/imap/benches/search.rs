#![allow(clippy::expect_used, clippy::unwrap_used)] // a benchmark has nobody to report errors to but its panic
//! SEARCH, SORT and THREAD over loopback on 10,000 messages of ~1.5 KB in
//! one mailbox (issue 3: `UID SEARCH BODY word` <= 100 ms). A real sled
//! store in a temp dir, messages delivered with `Store::deliver`, a real
//! `coimail_imap::serve`, and a client that reads every response.
//! Most messages are plain text; every 10th is quoted-printable Latin-1 and
//! every 10th (offset 5) multipart/alternative with a base64 part, so the
//! decoding paths are in the numbers. The searched word is in 1 in 100.
//! Run: `cargo bench -p coimail-imap --bench search`. Prints numbers; asserts nothing.

mod common;

use coimail_imap::{ImapContext, ImapListener};
use coimail_store::{Flags, Placement};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const MESSAGES: usize = 10_000;
const USER: &str = "bench@example.org";
const PASSWORD: &str = "bench-password-1";
const RUNS: usize = 15;
const WORDS: [&str; 16] = [
    "lorem", "ipsum", "dolor", "sit", "amet", "meeting", "budget", "schedule", "project", "release", "review",
    "coffee", "report", "quarter", "garden", "weather",
];

/// Deterministic filler text of about `len` bytes, with `extra` in the middle.
fn text(n: usize, len: usize, extra: &str) -> String {
    let mut seed = n as u64 * 2_654_435_761 + 1;
    let mut out = String::new();
    while out.len() < len {
        seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        out.push_str(WORDS[(seed >> 33) as usize % WORDS.len()]);
        out.push_str(if (seed >> 20).is_multiple_of(12) { ".\r\n" } else { " " });
        if out.len() > len / 2 && !extra.is_empty() && !out.contains(extra) {
            out.push_str(extra);
            out.push(' ');
        }
    }
    out
}

fn base64(data: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for (i, chunk) in data.chunks(3).enumerate() {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let v = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for k in 0..4 {
            out.push(if k <= chunk.len() { A[(v >> (18 - 6 * k) & 63) as usize] as char } else { '=' });
        }
        if i % 19 == 18 {
            out.push_str("\r\n");
        }
    }
    out
}

fn message(n: usize) -> Vec<u8> {
    let extra = if n % 100 == 42 { "zebra" } else { "" };
    let subject = if n.is_multiple_of(3) {
        format!("=?utf-8?q?R=C3=A9union_{n}?=")
    } else {
        format!("Re: Meeting notes {}", n / 4)
    };
    let head = format!(
        "Return-Path: <sender{s}@example.net>\r\nFrom: \"Sender {s}\" <sender{s}@example.net>\r\n\
To: Bench User <{USER}>\r\nSubject: {subject}\r\nDate: Tue, 14 Nov 2023 {h:02}:13:20 +0100\r\n\
Message-ID: <{n}.bench@example.net>\r\nReferences: <{p}.bench@example.net>\r\nMIME-Version: 1.0\r\n",
        s = n % 97,
        h = n % 24,
        p = n / 4 * 4
    );
    let body = match n % 10 {
        0 => format!(
            "Content-Type: text/plain; charset=iso-8859-1\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\nK=E4se {}",
            text(n, 1100, extra)
        ),
        5 => format!(
            "Content-Type: multipart/alternative; boundary=\"b{n}\"\r\n\r\n--b{n}\r\nContent-Type: text/plain; charset=utf-8\r\n\
Content-Transfer-Encoding: base64\r\n\r\n{}\r\n--b{n}\r\nContent-Type: text/html; charset=utf-8\r\n\r\n<p>{}</p>\r\n--b{n}--\r\n",
            base64(text(n, 500, extra).as_bytes()),
            text(n + 1, 300, "")
        ),
        _ => format!("Content-Type: text/plain; charset=utf-8\r\n\r\n{}", text(n, 1200, extra)),
    };
    (head + &body).into_bytes()
}

async fn setup(dir: &std::path::Path) -> Arc<ImapContext> {
    let (store, directory, account) = common::store_with_user(dir, USER, PASSWORD).await;
    let started = Instant::now();
    let writers = 64;
    let mut tasks = Vec::new();
    for w in 0..writers {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            for n in (w..MESSAGES).step_by(writers) {
                let flags: Flags = if n.is_multiple_of(2) { ["\\Seen"].into_iter().collect() } else { Flags::new() };
                let p = Placement { account: account.id, address: USER.into(), mailbox: "INBOX".into(), flags };
                store.deliver(&message(n), 1_700_000_000 + n as i64, vec![p]).await.expect("deliver");
            }
        }));
    }
    for t in tasks {
        t.await.expect("writer");
    }
    let bytes: usize = (0..MESSAGES).map(|n| message(n).len()).sum();
    println!(
        "delivered {MESSAGES} messages ({:.0} bytes on average) in {:.1} s (setup, not measured)",
        bytes as f64 / MESSAGES as f64,
        started.elapsed().as_secs_f64()
    );
    let config = common::config();
    Arc::new(ImapContext::new(store, directory, None, config))
}

struct Client {
    tcp: TcpStream,
    buf: Vec<u8>,
}

impl Client {
    /// Sends `tag command`, reads up to the tagged OK; returns the untagged lines.
    async fn command(&mut self, tag: &str, command: &str) -> Vec<String> {
        self.tcp.write_all(format!("{tag} {command}\r\n").as_bytes()).await.unwrap();
        let mut lines = Vec::new();
        loop {
            while let Some(nl) = self.buf.windows(2).position(|w| w == b"\r\n") {
                let line = String::from_utf8_lossy(&self.buf[..nl]).into_owned();
                self.buf.drain(..nl + 2);
                if let Some(status) = line.strip_prefix(&format!("{tag} ")) {
                    assert!(status.starts_with("OK"), "{line}");
                    return lines;
                }
                lines.push(line);
            }
            let n = self.tcp.read_buf(&mut self.buf).await.unwrap();
            assert!(n > 0, "server closed the connection");
        }
    }
}

async fn time(c: &mut Client, command: &str, runs: usize) {
    let mut times = Vec::with_capacity(runs);
    let mut answer = Vec::new();
    for i in 0..runs {
        let started = Instant::now();
        answer = c.command(&format!("t{i}"), command).await;
        times.push(started.elapsed());
    }
    times.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let first = answer.first().map_or(0, |l| l.split(' ').count().saturating_sub(2));
    println!(
        "  {command:<44} min {:>7.1} ms  median {:>7.1} ms  max {:>7.1} ms  ({first} numbers)",
        ms(times[0]),
        ms(times[times.len() / 2]),
        ms(times[times.len() - 1])
    );
}

async fn run() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ctx = setup(dir.path()).await;
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let shutdown = tokio_util::sync::CancellationToken::new();
    let tracker = tokio_util::task::TaskTracker::new();
    tokio::spawn(coimail_imap::serve(listener, ImapListener::Starttls, ctx, shutdown.clone(), tracker.clone()));
    let tcp = TcpStream::connect(addr).await.unwrap();
    tcp.set_nodelay(true).unwrap();
    let mut c = Client { tcp, buf: Vec::new() };
    while !c.buf.windows(2).any(|w| w == b"\r\n") {
        c.tcp.read_buf(&mut c.buf).await.unwrap();
    }
    c.buf.clear();
    c.command("l", &format!("LOGIN {USER} {PASSWORD}")).await;
    c.command("s", "SELECT INBOX").await;
    println!(
        "over loopback, {MESSAGES} messages, {} cores:",
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    time(&mut c, "UID SEARCH BODY zebra", 1).await;
    time(&mut c, "UID SEARCH BODY zebra", RUNS).await;
    time(&mut c, "UID SEARCH TEXT zebra", RUNS).await;
    time(&mut c, "UID SEARCH BODY nonexistentword", RUNS).await;
    time(&mut c, "UID SEARCH SUBJECT \"r\u{e9}union\"", RUNS).await;
    time(&mut c, "UID SEARCH FROM sender42", RUNS).await;
    time(&mut c, "UID SEARCH UNSEEN SINCE 1-Jan-2020", RUNS).await;
    time(&mut c, "UID SEARCH RETURN (COUNT) BODY zebra", RUNS).await;
    time(&mut c, "UID SORT (SUBJECT) UTF-8 ALL", 5).await;
    time(&mut c, "UID SORT (REVERSE ARRIVAL) UTF-8 ALL", RUNS).await;
    time(&mut c, "UID THREAD REFERENCES UTF-8 ALL", 5).await;
    c.command("o", "LOGOUT").await;
    shutdown.cancel();
    tracker.close();
    tracker.wait().await;
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    rt.block_on(run());
}
