#![allow(clippy::expect_used, clippy::unwrap_used)] // a benchmark has nobody to report errors to but its panic
//! Memory per idle authenticated connection (issue 3: <= 64 KiB, measured
//! with 2,000 connections in IDLE). The server runs in this process (a real
//! sled store, a real `coimail_imap::serve` on loopback); the clients run in
//! a child process (this same binary, re-executed), so the server's
//! resident set (`VmRSS` in /proc/self/status) holds only server state.
//! Each client logs in, selects INBOX (100 messages of ~1.5 KB), fetches
//! all of them (as a client's first sync does) and enters IDLE.
//! The RSS is read before the clients connect and once all are idling;
//! the difference over the connection count is the per-connection cost.
//! Kernel socket buffers are not in the RSS (they are not per-process memory).
//! Run: `cargo bench -p coimail-imap --bench idle_memory`. Prints numbers;
//! asserts nothing. `IDLE_BENCH_CONNECTIONS` overrides the count;
//! `IDLE_BENCH_COMPRESS=1` turns COMPRESS=DEFLATE on before IDLE.

mod common;

use coimail_imap::{ImapConfig, ImapContext, ImapListener};
use coimail_store::{Flags, Placement};
use std::io::{BufRead, Write};
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const USER: &str = "bench@example.org";
const PASSWORD: &str = "bench-password-1";
const CLIENT_ENV: &str = "IDLE_BENCH_CLIENT";

fn compress() -> bool {
    std::env::var("IDLE_BENCH_COMPRESS").as_deref() == Ok("1")
}

fn connections() -> usize {
    std::env::var("IDLE_BENCH_CONNECTIONS").ok().and_then(|v| v.parse().ok()).unwrap_or(2_000)
}

fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).expect("VmRSS");
    line.split_whitespace().nth(1).and_then(|v| v.parse().ok()).expect("VmRSS value")
}

/// Raises the soft open-file limit to the hard one (2,000 sockets need more than 1,024).
fn raise_fd_limit() {
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit/setrlimit only read and write the struct we pass.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 {
            lim.rlim_cur = lim.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
}

/// Reads until `want` is in the input; returns what was read.
async fn expect(tcp: &mut TcpStream, want: &[u8]) -> Vec<u8> {
    let mut buf = Vec::with_capacity(256);
    loop {
        if buf.windows(want.len()).any(|w| w == want) {
            return buf;
        }
        let n = tcp.read_buf(&mut buf).await.unwrap();
        assert!(n > 0, "server closed: {}", String::from_utf8_lossy(&buf));
    }
}

/// One client: log in, select INBOX, fetch everything, IDLE; returns the idling socket.
async fn idle_client(addr: SocketAddr) -> TcpStream {
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    expect(&mut tcp, b"\r\n").await;
    let commands = format!(
        "l LOGIN {USER} {PASSWORD}\r\ns SELECT INBOX\r\nf FETCH 1:* (UID FLAGS ENVELOPE BODY.PEEK[])\r\ni IDLE\r\n"
    );
    if !compress() {
        tcp.write_all(commands.as_bytes()).await.unwrap();
        expect(&mut tcp, b"+ idling\r\n").await;
        return tcp;
    }
    let (before_idle, idle) = commands.split_at(commands.find("i IDLE").unwrap());
    tcp.write_all(format!("{before_idle}z COMPRESS DEFLATE\r\n").as_bytes()).await.unwrap();
    expect(&mut tcp, b"z OK DEFLATE active\r\n").await;
    let mut z = flate2::Compress::new(flate2::Compression::default(), false);
    let mut out = Vec::with_capacity(256);
    z.compress_vec(idle.as_bytes(), &mut out, flate2::FlushCompress::Sync).unwrap();
    tcp.write_all(&out).await.unwrap();
    let mut raw = Vec::new();
    let mut d = flate2::Decompress::new(false);
    let mut text = Vec::with_capacity(4096);
    while !text.windows(10).any(|w| w == b"+ idling\r\n") {
        let n = tcp.read_buf(&mut raw).await.unwrap();
        assert!(n > 0, "server closed");
        let before = d.total_in();
        d.decompress_vec(&raw, &mut text, flate2::FlushDecompress::None).unwrap();
        raw.drain(..(d.total_in() - before) as usize);
    }
    tcp
}

/// A ~1.5 KB message.
fn message(n: usize) -> Vec<u8> {
    let mut m = format!(
        "From: \"Sender {n}\" <sender{n}@example.net>\r\nTo: <{USER}>\r\nSubject: message {n}\r\n\
Date: Tue, 14 Nov 2023 23:13:20 +0100\r\nMessage-ID: <{n}.idle@example.net>\r\n\r\n"
    )
    .into_bytes();
    while m.len() < 1500 {
        m.extend_from_slice(b"Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor.\r\n");
    }
    m
}

/// The child: opens the connections (a few at a time: logins cost an
/// argon2 verify each), prints "ready", holds them until stdin closes.
fn client_main(addr: SocketAddr, n: usize) {
    raise_fd_limit();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let mut held = Vec::with_capacity(n);
        let mut pending = tokio::task::JoinSet::new();
        let mut started = 0;
        while held.len() < n {
            while started < n && pending.len() < 16 {
                pending.spawn(idle_client(addr));
                started += 1;
            }
            held.push(pending.join_next().await.unwrap().unwrap());
        }
        println!("ready {}", held.len());
        std::io::stdout().flush().unwrap();
        let mut rest = String::new();
        let _ = std::io::stdin().read_line(&mut rest);
        drop(held);
    });
}

async fn setup(dir: &std::path::Path, max: usize) -> SocketAddr {
    let (store, directory, account) = common::store_with_user(dir, USER, PASSWORD).await;
    for n in 0..100 {
        let p = Placement { account: account.id, address: USER.into(), mailbox: "INBOX".into(), flags: Flags::new() };
        store.deliver(&message(n), 1_700_000_000, vec![p]).await.expect("deliver");
    }
    let config = ImapConfig {
        auth_timeout: Duration::from_secs(600),
        max_connections: max + 10,
        max_connections_per_ip: 0,
        max_unauthenticated_per_ip: 0,
        // One account, logged in 2,000 times.
        max_connections_per_user: 0,
        ..common::config()
    };
    let ctx = Arc::new(ImapContext::new(store, directory, None, config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let shutdown = tokio_util::sync::CancellationToken::new();
    let tracker = tokio_util::task::TaskTracker::new();
    tokio::spawn(coimail_imap::serve(listener, ImapListener::Starttls, ctx, shutdown, tracker));
    addr
}

fn main() {
    if let Ok(addr) = std::env::var(CLIENT_ENV) {
        return client_main(addr.parse().unwrap(), connections());
    }
    raise_fd_limit();
    // What `coimail serve` does at startup (crates/cli/serve.rs): a fixed mmap
    // threshold keeps argon2's 19 MiB login buffers out of the heap.
    // IDLE_BENCH_DEFAULT_MALLOC=1 measures glibc's defaults instead.
    if std::env::var("IDLE_BENCH_DEFAULT_MALLOC").as_deref() != Ok("1") {
        // SAFETY: allocator tuning only, before the server starts.
        unsafe {
            libc::mallopt(libc::M_MMAP_THRESHOLD, 128 * 1024);
        }
    }
    let n = connections();
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    let dir = tempfile::tempdir().expect("tempdir");
    let addr = rt.block_on(async {
        let addr = setup(dir.path(), n).await;
        // Warm up the paths every session takes (login, SELECT, IDLE) so
        // one-time allocations are not counted per connection.
        let mut warm = Vec::new();
        for _ in 0..32 {
            warm.push(idle_client(addr).await);
        }
        drop(warm);
        tokio::time::sleep(Duration::from_millis(500)).await;
        addr
    });
    let before = rss_kib();
    let started = Instant::now();
    let mut child = Command::new(std::env::current_exe().unwrap())
        .env(CLIENT_ENV, addr.to_string())
        .env("IDLE_BENCH_CONNECTIONS", n.to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("client process");
    let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    assert!(line.starts_with("ready"), "client: {line}");
    let ready = started.elapsed();
    rt.block_on(async { tokio::time::sleep(Duration::from_secs(2)).await });
    let after = rss_kib();
    let per = (after.saturating_sub(before)) as f64 * 1024.0 / n as f64;
    let how = if compress() { " with COMPRESS=DEFLATE" } else { "" };
    println!(
        "{n} connections logged in, INBOX (100 messages) selected and fetched, in IDLE{how} (set up in {:.1} s):",
        ready.as_secs_f64()
    );
    println!("  server RSS before {before} KiB, after {after} KiB");
    println!("  per idle connection: {:.1} KiB", per / 1024.0);
    drop(child.stdin.take());
    let _ = child.wait();
}
