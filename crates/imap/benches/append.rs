#![allow(clippy::expect_used, clippy::unwrap_used)] // a benchmark has nobody to report errors to but its panic
//! APPEND rate from one connection with LITERAL+ (issue 3: >= 1,000 msg/s
//! for 10,000 messages of ~1.5 KB), then SELECT on the resulting 10k
//! mailbox (<= 10 ms). A real sled store in a temp dir (every APPEND is
//! durable before its OK: body file fsync'd, renamed, directory fsync'd,
//! index flushed), a real `coimail_imap::serve` over loopback.
//!
//! Two APPEND runs of 10,000 each: "one at a time" waits for each tagged OK
//! (with its APPENDUID) before sending the next, as a client that needs the
//! UID does; "pipelined" keeps up to 32 APPENDs in flight on the same
//! connection (LITERAL+ needs no continuation round trip; the server
//! commits the APPENDs it finds queued behind each other together,
//! `cmd/append/pipeline.rs`, and still acknowledges each only once durable).
//! Then SELECT: in the same session, and as the first command after a
//! restart (store closed and opened again, new server: sled's cache cold).
//! Run: `cargo bench -p coimail-imap --bench append`. Prints numbers;
//! asserts nothing. `APPEND_BENCH_MESSAGES` overrides the count.

mod common;

use coimail_imap::{ImapContext, ImapListener};
use coimail_store::Store;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const USER: &str = "bench@example.org";
const PASSWORD: &str = "bench-password-1";
const WINDOW: usize = 32;

fn messages() -> usize {
    std::env::var("APPEND_BENCH_MESSAGES").ok().and_then(|v| v.parse().ok()).unwrap_or(10_000)
}

/// A ~1.5 KB message with the header fields a real client message has.
fn message(n: usize) -> Vec<u8> {
    let mut m = format!(
        "From: \"Sender {s}\" <sender{s}@example.net>\r\nTo: Bench User <{USER}>\r\nSubject: Appended {n}\r\n\
Date: Tue, 14 Nov 2023 23:13:20 +0100\r\nMessage-ID: <{n}.append@example.net>\r\nMIME-Version: 1.0\r\n\
Content-Type: text/plain; charset=utf-8\r\n\r\n",
        s = n % 97
    )
    .into_bytes();
    while m.len() < 1500 {
        m.extend_from_slice(b"Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor.\r\n");
    }
    m
}

/// `tag APPEND mailbox (\Seen) {n+}` with the message: one write, no continuation.
fn append_command(tag: &str, mailbox: &str, n: usize) -> Vec<u8> {
    let msg = message(n);
    let mut cmd = format!("{tag} APPEND {mailbox} (\\Seen) {{{}+}}\r\n", msg.len()).into_bytes();
    cmd.extend_from_slice(&msg);
    cmd.extend_from_slice(b"\r\n");
    cmd
}

struct Client {
    tcp: TcpStream,
    buf: Vec<u8>,
}

impl Client {
    /// The next line (CRLF stripped). The responses here carry no literals.
    async fn line(&mut self) -> String {
        loop {
            if let Some(p) = self.buf.windows(2).position(|w| w == b"\r\n") {
                let line: Vec<u8> = self.buf.drain(..p + 2).take(p).collect();
                return String::from_utf8_lossy(&line).into_owned();
            }
            let n = self.tcp.read_buf(&mut self.buf).await.unwrap();
            assert!(n > 0, "server closed the connection");
        }
    }

    /// Reads up to the tagged response of `tag`, which must be OK.
    async fn tagged(&mut self, tag: &str) {
        loop {
            let line = self.line().await;
            if line.starts_with(tag) && line.as_bytes().get(tag.len()) == Some(&b' ') {
                assert!(line[tag.len() + 1..].starts_with("OK"), "{line}");
                return;
            }
        }
    }

    async fn command(&mut self, tag: &str, command: &str) {
        self.tcp.write_all(format!("{tag} {command}\r\n").as_bytes()).await.unwrap();
        self.tagged(tag).await;
    }
}

async fn setup(dir: &std::path::Path) -> (Client, Store, tokio_util::sync::CancellationToken) {
    let (store, directory, _account) = common::store_with_user(dir, USER, PASSWORD).await;
    serve(store, directory).await
}

/// Opens the store of an earlier [`setup`] again, as a restarted server does.
async fn restart(dir: &std::path::Path) -> (Client, Store, tokio_util::sync::CancellationToken) {
    let store = Store::open(dir, &coimail_store::StoreOptions::default()).expect("reopen store");
    let directory = coimail_directory::Directory::open(&store, None).expect("directory");
    serve(store, directory).await
}

/// A server on `store`, and a client logged in to it.
async fn serve(
    store: Store,
    directory: coimail_directory::Directory,
) -> (Client, Store, tokio_util::sync::CancellationToken) {
    let config = common::config();
    let ctx = Arc::new(ImapContext::new(store.clone(), directory, None, config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let shutdown = tokio_util::sync::CancellationToken::new();
    let tracker = tokio_util::task::TaskTracker::new();
    tokio::spawn(coimail_imap::serve(listener, ImapListener::Starttls, ctx, shutdown.clone(), tracker));
    let tcp = TcpStream::connect(addr).await.unwrap();
    tcp.set_nodelay(true).unwrap();
    let mut c = Client { tcp, buf: Vec::new() };
    assert!(c.line().await.starts_with("* OK"));
    c.command("l", &format!("LOGIN {USER} {PASSWORD}")).await;
    (c, store, shutdown)
}

fn rate(what: &str, n: usize, elapsed: Duration, latencies: &mut [Duration]) {
    let per_sec = n as f64 / elapsed.as_secs_f64();
    let mut line = format!("  {what:<34} {n:>6} msgs in {:>6.2} s = {per_sec:>7.0} msg/s", elapsed.as_secs_f64());
    if !latencies.is_empty() {
        latencies.sort();
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        let p = |q: f64| latencies[((latencies.len() - 1) as f64 * q) as usize];
        line.push_str(&format!("  (latency p50 {:.2} ms, p99 {:.2} ms)", ms(p(0.5)), ms(p(0.99))));
    }
    println!("{line}");
}

async fn run() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut c, store, shutdown) = setup(dir.path()).await;
    let total = messages();
    println!("APPEND over loopback, one connection, LITERAL+, {total} messages of {} bytes:", message(0).len());

    // One at a time: send, wait for the tagged OK, repeat.
    let mut latencies = Vec::with_capacity(total);
    let started = Instant::now();
    for n in 0..total {
        let tag = format!("a{n}");
        let t = Instant::now();
        c.tcp.write_all(&append_command(&tag, "INBOX", n)).await.unwrap();
        c.tagged(&tag).await;
        latencies.push(t.elapsed());
    }
    rate("one at a time (INBOX)", total, started.elapsed(), &mut latencies);

    // Pipelined: up to WINDOW APPENDs in flight.
    c.command("c", "CREATE Pipelined").await;
    let started = Instant::now();
    let (mut sent, mut done) = (0, 0);
    while done < total {
        while sent < total && sent - done < WINDOW {
            c.tcp.write_all(&append_command(&format!("p{sent}"), "Pipelined", sent)).await.unwrap();
            sent += 1;
        }
        c.tagged(&format!("p{done}")).await;
        done += 1;
    }
    rate(&format!("pipelined, {WINDOW} in flight (Pipelined)"), total, started.elapsed(), &mut []);

    // SELECT on the 10k mailbox: first (cold session view) and repeated.
    println!("SELECT over loopback on a mailbox of {total} messages:");
    let mut times = Vec::new();
    for i in 0..21 {
        let t = Instant::now();
        c.command(&format!("s{i}"), "SELECT INBOX").await;
        times.push(t.elapsed());
    }
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!("  first SELECT INBOX                 {:>7.2} ms", ms(times[0]));
    let mut rest = times[1..].to_vec();
    rest.sort();
    println!("  SELECT INBOX, 20 more              min {:>6.2} ms  median {:>6.2} ms", ms(rest[0]), ms(rest[10]));
    let t = Instant::now();
    c.command("e", "EXAMINE Pipelined").await;
    println!("  EXAMINE Pipelined (first)          {:>7.2} ms", ms(t.elapsed()));
    c.command("o", "LOGOUT").await;
    shutdown.cancel();
    store.close().await.unwrap();
    drop(store);

    // A restart: the first SELECT reads an index nothing has touched since it was opened.
    let (mut c, store, shutdown) = restart(dir.path()).await;
    let t = Instant::now();
    c.command("r", "SELECT INBOX").await;
    println!("  first SELECT INBOX after a restart {:>7.2} ms", ms(t.elapsed()));
    c.command("o", "LOGOUT").await;
    shutdown.cancel();
    store.close().await.unwrap();
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    rt.block_on(run());
}
