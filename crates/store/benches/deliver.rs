#![allow(clippy::expect_used)] // a benchmark has nobody to report errors to but its panic
//! Durable delivery throughput: one writer vs many, to show that concurrent
//! commits share flushes (group commit) instead of paying one flush each.
//! Run: `cargo bench -p coimail-store --bench deliver`. Prints numbers; asserts nothing.

use coimail_store::{AccountId, Flags, Placement, Store, StoreOptions};
use std::time::Instant;

const MESSAGE_BYTES: usize = 2048;

fn message(n: usize) -> Vec<u8> {
    let mut m = format!("Subject: bench {n}\r\nMessage-ID: <{n}@bench>\r\n\r\n").into_bytes();
    m.resize(MESSAGE_BYTES - 2, b'x');
    m.extend_from_slice(b"\r\n");
    m
}

async fn run(writers: usize, per_writer: usize) -> f64 {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path(), &StoreOptions { cache_bytes: 64 << 20, ..Default::default() }).expect("open");
    let account = AccountId(1);
    store.create_account(account, "bench@example.org").await.expect("account");
    let start = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..writers {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..per_writer {
                let p = Placement {
                    account,
                    address: "bench@example.org".into(),
                    mailbox: "INBOX".into(),
                    flags: Flags::new(),
                };
                store.deliver(&message(w * per_writer + i), 0, vec![p]).await.expect("deliver");
            }
        }));
    }
    for t in tasks {
        t.await.expect("writer");
    }
    let secs = start.elapsed().as_secs_f64();
    (writers * per_writer) as f64 / secs
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    println!("durable deliveries of {MESSAGE_BYTES}-byte messages (body fsync + index flush each):");
    for (writers, per_writer) in [(1, 400), (4, 200), (16, 100), (64, 40)] {
        let rate = rt.block_on(run(writers, per_writer));
        println!("  {writers:>3} concurrent writers: {rate:>8.0} msg/s");
    }
}
