#![allow(clippy::expect_used, clippy::unwrap_used)] // a benchmark reports failures by panicking
//! IMAP LOGIN + LOGOUT per second over loopback against the real daemon
//! (`coimail_daemon::start`), the way a login-heavy client mix looks to it:
//! every cycle is a new TCP connection, the greeting, `LOGIN`, `LOGOUT`.
//! Two phases, with `--clients` connections at a time:
//! - first logins: each of `--users` users logs in once; every login is
//!   verified by argon2 (at most one per CPU at a time);
//! - repeated logins: `--logins` cycles round robin over the same users,
//!   which the login cache (`auth.cache_ttl_secs`) answers without argon2.
//!
//! Each phase prints logins/s, the cycle latency (median, p99) and how many
//! logins argon2 verified and the cache answered (`Directory::auth_stats`).
//!
//! Run: `cargo bench --bench auth_load` (release build). Options:
//! `-- --clients N --users N --logins N --cache-ttl SECS` (`--cache-ttl 0`:
//! no cache, every login pays for argon2). `--target HOST:PORT` drives
//! another IMAP server instead (e.g. Dovecot for comparison), whose users
//! `user<i>@example.org` have the password `bench password`; argon2 and
//! cache counts are then unknown. Asserts nothing but success.

#[allow(dead_code)] // the SMTP reply reader is for the SMTP benches
mod common;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

const PASSWORD: &str = "bench password";

struct Options {
    clients: usize,
    users: usize,
    logins: usize,
    cache_ttl: Option<u64>,
    target: Option<SocketAddr>,
}

fn options() -> Options {
    let mut o = Options { clients: 10, users: 100, logins: 5000, cache_ttl: None, target: None };
    let args: Vec<String> = std::env::args().collect();
    for pair in args.windows(2) {
        let n = pair[1].parse().ok();
        match (pair[0].as_str(), n) {
            ("--clients", Some(n)) => o.clients = n,
            ("--users", Some(n)) => o.users = n,
            ("--logins", Some(n)) => o.logins = n,
            ("--cache-ttl", Some(n)) => o.cache_ttl = Some(n as u64),
            ("--target", _) => o.target = pair[1].parse().ok(),
            _ => {}
        }
    }
    o
}

fn user(i: usize) -> String {
    format!("user{i}@example.org")
}

/// Reads lines until one starts with `tag `; returns it.
async fn until_tagged(r: &mut BufReader<tokio::net::tcp::OwnedReadHalf>, tag: &str) -> String {
    loop {
        let mut line = String::new();
        assert!(r.read_line(&mut line).await.unwrap() > 0, "IMAP server closed the connection");
        if line.starts_with(tag) && line.as_bytes().get(tag.len()) == Some(&b' ') {
            return line;
        }
    }
}

/// One cycle: connect, greeting, LOGIN, LOGOUT (until its tagged OK).
async fn cycle(addr: SocketAddr, login: &str) {
    let stream = TcpStream::connect(addr).await.unwrap();
    stream.set_nodelay(true).unwrap();
    let (r, mut w) = stream.into_split();
    let mut r = BufReader::new(r);
    let mut greeting = String::new();
    r.read_line(&mut greeting).await.unwrap();
    assert!(greeting.starts_with("* OK"), "{greeting}");
    w.write_all(format!("a LOGIN \"{login}\" \"{PASSWORD}\"\r\n").as_bytes()).await.unwrap();
    let l = until_tagged(&mut r, "a").await;
    assert!(l.starts_with("a OK"), "{l}");
    w.write_all(b"b LOGOUT\r\n").await.unwrap();
    let l = until_tagged(&mut r, "b").await;
    assert!(l.starts_with("b OK"), "{l}");
}

/// `total` cycles over `users` users, `clients` at a time; each cycle's latency.
async fn phase(addr: SocketAddr, clients: usize, users: usize, total: usize) -> (Duration, Vec<Duration>) {
    let next = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let tasks: Vec<_> = (0..clients)
        .map(|_| {
            let next = next.clone();
            tokio::spawn(async move {
                let mut lat = Vec::new();
                loop {
                    let n = next.fetch_add(1, Ordering::Relaxed);
                    if n >= total {
                        return lat;
                    }
                    let t = Instant::now();
                    cycle(addr, &user(n % users)).await;
                    lat.push(t.elapsed());
                }
            })
        })
        .collect();
    let mut lat = Vec::with_capacity(total);
    for t in tasks {
        lat.extend(t.await.unwrap());
    }
    let elapsed = start.elapsed();
    lat.sort();
    (elapsed, lat)
}

type Stats = Option<coimail_directory::AuthStats>;

fn report(name: &str, n: usize, (elapsed, lat): (Duration, Vec<Duration>), before: Stats, after: Stats) {
    let counts = match (before, after) {
        (Some(b), Some(a)) => format!(
            "; argon2 verified {}, cache answered {}",
            a.argon2_verifications - b.argon2_verifications,
            a.cache_hits - b.cache_hits
        ),
        _ => String::new(),
    };
    println!(
        "  {name}: {n} logins, {:.0} logins/s; LOGIN+LOGOUT cycle median {:?}, p99 {:?}{counts}",
        n as f64 / elapsed.as_secs_f64(),
        common::percentile(&lat, 0.5),
        common::percentile(&lat, 0.99),
    );
}

async fn start(o: &Options, dir: &std::path::Path) -> coimail_daemon::Running {
    let mut config = common::loopback_config(dir);
    config.imap.max_connections_per_ip = 1000;
    config.imap.max_unauthenticated_per_ip = 1000;
    if let Some(ttl) = o.cache_ttl {
        config.auth.cache_ttl_secs = ttl;
    }
    let ttl = config.auth.cache_ttl_secs;
    let running = coimail_daemon::start(config).await.unwrap();
    let directory = running.directory();
    directory.add_domain("example.org").await.unwrap();
    for u in 0..o.users {
        directory.add_user(&user(u), PASSWORD, None).await.unwrap();
    }
    println!(
        "coimail IMAP LOGIN+LOGOUT over loopback (new connection each, no TLS): {} clients, {} users, \
         auth.cache_ttl_secs = {ttl}, argon2 at most {} at once",
        o.clients,
        o.users,
        coimail_directory::cpu_count()
    );
    running
}

fn main() {
    let o = options();
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let running = match o.target {
            Some(t) => {
                println!(
                    "IMAP server at {t}, LOGIN+LOGOUT (new connection each, no TLS): {} clients, {} users",
                    o.clients, o.users
                );
                None
            }
            None => Some(start(&o, dir.path()).await),
        };
        let imap = o.target.or_else(|| running.as_ref().map(|r| r.addrs().imap[0])).unwrap();
        let stats = || running.as_ref().map(|r| r.directory().auth_stats());
        let s0 = stats();
        let first = phase(imap, o.clients, o.users, o.users).await;
        let s1 = stats();
        report("first logins   ", o.users, first, s0, s1);
        let repeated = phase(imap, o.clients, o.users, o.logins).await;
        let s2 = stats();
        report("repeated logins", o.logins, repeated, s1, s2);
        if let Some(r) = running {
            r.shutdown().await.unwrap();
        }
    });
}
