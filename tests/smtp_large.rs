//! Large messages over SMTP: staged on disk as they arrive (`smtp/src/body.rs`),
//! stored byte for byte, and no temp file left behind by a transfer that
//! does not finish.

use crate::util::{self, ImapClient, SmtpClient, TestServer};
use std::path::Path;
use std::time::{Duration, Instant};

const ALICE: &str = "alice@example.org";

/// A message of about `size` octets whose lines vary (some start with a
/// dot, so DATA stuffs them), ending in CRLF.
fn large_message(n: usize, size: usize) -> Vec<u8> {
    let mut m = format!(
        "From: sender@remote.test\r\nTo: {ALICE}\r\nSubject: large {n}\r\nMessage-ID: <large-{n}@remote.test>\r\n\r\n"
    )
    .into_bytes();
    let mut i = 0usize;
    while m.len() < size {
        let line = match i % 7 {
            0 => format!(".dot line {i}\r\n"),
            1 => "..\r\n".to_owned(),
            2 => "\r\n".to_owned(),
            _ => format!("{i:08} {}\r\n", "abcdefghijklmnopqrstuvwxyz".repeat(1 + i % 30)),
        };
        m.extend_from_slice(line.as_bytes());
        i += 1;
    }
    m
}

/// `.tmp-` files under the blob shards: staged bodies and body files being written.
fn temp_files(data: &Path) -> usize {
    let Ok(shards) = std::fs::read_dir(data.join("blobs")) else { return 0 };
    shards
        .filter_map(|s| std::fs::read_dir(s.ok()?.path()).ok())
        .flatten()
        .filter(|e| e.as_ref().is_ok_and(|e| e.file_name().to_string_lossy().starts_with(".tmp-")))
        .count()
}

async fn wait_for_temp_files(data: &Path, want: impl Fn(usize) -> bool, what: &str) {
    let start = Instant::now();
    while !want(temp_files(data)) {
        assert!(start.elapsed() < Duration::from_secs(20), "{what}: {} temp files", temp_files(data));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The n-th message in INBOX, as IMAP returns it.
async fn fetch(imap: &mut ImapClient, n: usize) -> Vec<u8> {
    let r = imap.command(&format!("FETCH {n} BODY.PEEK[]")).await;
    assert!(r.ok(), "{}", r.status);
    let data = r.data;
    let open = data.windows(3).position(|w| w == b"}\r\n").expect("a literal") + 3;
    let len: usize = std::str::from_utf8(&data[data[..open].iter().rposition(|&b| b == b'{').unwrap() + 1..open - 3])
        .unwrap()
        .parse()
        .unwrap();
    data[open..open + len].to_vec()
}

/// What we add in front of a message: Return-Path and Received, ending
/// where the client's first field starts.
fn without_trace(stored: &[u8]) -> &[u8] {
    let at = stored.windows(7).position(|w| w == b"\r\nFrom:").expect("the client's header") + 2;
    &stored[at..]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smtp_large_messages_over_data_and_bdat_arrive_byte_identical() {
    let server = TestServer::start(&[ALICE]).await;
    let data = server.dir.path().join("data");
    let mut smtp = SmtpClient::connect(server.smtp()).await;
    let by_data = large_message(1, 5 << 20);
    let r = smtp.send("sender@remote.test", &[ALICE], &by_data).await;
    assert!(r.starts_with("250"), "{r}");

    // BDAT in uneven chunks, the last of them empty (`BDAT 0 LAST`).
    let by_bdat = large_message(2, 3 << 20);
    for cmd in ["MAIL FROM:<sender@remote.test>", &format!("RCPT TO:<{ALICE}>")] {
        let r = smtp.cmd(cmd).await;
        assert!(r.starts_with("250"), "{cmd}: {r}");
    }
    let cuts = [0, 1, 300_000, 300_001, 2_000_000, by_bdat.len()];
    for w in cuts.windows(2) {
        let chunk = &by_bdat[w[0]..w[1]];
        smtp.send_raw(format!("BDAT {}\r\n", chunk.len()).as_bytes()).await;
        smtp.send_raw(chunk).await;
        let r = smtp.reply().await;
        assert!(r.starts_with("250"), "BDAT {}: {r}", chunk.len());
    }
    let r = smtp.cmd("BDAT 0 LAST").await;
    assert!(r.starts_with("250"), "{r}");

    // One chunk holding the whole message, LAST.
    let one_chunk = large_message(3, 1 << 20);
    for cmd in ["MAIL FROM:<sender@remote.test>", &format!("RCPT TO:<{ALICE}>")] {
        assert!(smtp.cmd(cmd).await.starts_with("250"));
    }
    smtp.send_raw(format!("BDAT {} LAST\r\n", one_chunk.len()).as_bytes()).await;
    smtp.send_raw(&one_chunk).await;
    let r = smtp.reply().await;
    assert!(r.starts_with("250"), "{r}");

    let mut imap = ImapClient::login(server.imap(), ALICE, util::PASSWORD).await;
    assert!(imap.command("SELECT INBOX").await.ok());
    for (n, sent) in [(1, &by_data), (2, &by_bdat), (3, &one_chunk)] {
        let stored = fetch(&mut imap, n).await;
        assert!(stored.starts_with(b"Return-Path: <sender@remote.test>\r\nReceived: "), "message {n}");
        let got = without_trace(&stored);
        assert_eq!(got.len(), sent.len(), "message {n}: length");
        assert!(got == &sent[..], "message {n}: the stored message differs from the one sent");
    }
    assert_eq!(temp_files(&data), 0, "every staged file became a body file");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smtp_aborted_large_transfers_leave_no_temp_files() {
    let server = TestServer::start(&[ALICE]).await;
    let data = server.dir.path().join("data");
    let message = large_message(4, 4 << 20);

    // DATA, half sent, then the client goes away: the staged file goes with it.
    let mut smtp = SmtpClient::connect(server.smtp()).await;
    assert!(smtp.cmd("EHLO client.test").await.starts_with("250"));
    assert!(smtp.cmd("MAIL FROM:<sender@remote.test>").await.starts_with("250"));
    assert!(smtp.cmd(&format!("RCPT TO:<{ALICE}>")).await.starts_with("250"));
    assert!(smtp.cmd("DATA").await.starts_with("354"));
    smtp.send_raw(&message[..2 << 20]).await;
    wait_for_temp_files(&data, |n| n == 1, "a large message is staged while it arrives").await;
    drop(smtp);
    wait_for_temp_files(&data, |n| n == 0, "a disconnect removes the staged file").await;

    // BDAT chunks, then RSET: removed by the time RSET is answered.
    let mut smtp = SmtpClient::connect(server.smtp()).await;
    assert!(smtp.cmd("EHLO client.test").await.starts_with("250"));
    assert!(smtp.cmd("MAIL FROM:<sender@remote.test>").await.starts_with("250"));
    assert!(smtp.cmd(&format!("RCPT TO:<{ALICE}>")).await.starts_with("250"));
    smtp.send_raw(format!("BDAT {}\r\n", 2 << 20).as_bytes()).await;
    smtp.send_raw(&message[..2 << 20]).await;
    assert!(smtp.reply().await.starts_with("250"));
    assert_eq!(temp_files(&data), 1, "the chunks are staged");
    assert!(smtp.cmd("RSET").await.starts_with("250"));
    assert_eq!(temp_files(&data), 0, "RSET removes the staged file");

    // BDAT cut off in the middle of a chunk.
    assert!(smtp.cmd("MAIL FROM:<sender@remote.test>").await.starts_with("250"));
    assert!(smtp.cmd(&format!("RCPT TO:<{ALICE}>")).await.starts_with("250"));
    smtp.send_raw(format!("BDAT {}\r\n", message.len()).as_bytes()).await;
    smtp.send_raw(&message[..3 << 20]).await;
    wait_for_temp_files(&data, |n| n == 1, "a chunk is staged while it arrives").await;
    drop(smtp);
    wait_for_temp_files(&data, |n| n == 0, "a disconnect mid-chunk removes the staged file").await;

    // A large message whose header section never ends is refused (only
    // the header section stays in memory), and leaves nothing behind.
    let mut smtp = SmtpClient::connect(server.smtp()).await;
    let endless = b"X-Filler: abcdefghijklmnopqrstuvwxyz\r\n".repeat(60_000);
    let r = smtp.send("sender@remote.test", &[ALICE], &endless).await;
    assert!(r.starts_with("552 5.3.4"), "{r}");
    assert_eq!(temp_files(&data), 0);

    // The same session then delivers a whole message; nothing is left over.
    let r = smtp.transaction("MAIL FROM:<sender@remote.test>", &[&format!("RCPT TO:<{ALICE}>")], &message).await;
    assert!(r.starts_with("250"), "{r}");
    assert_eq!(temp_files(&data), 0);
    let mut imap = ImapClient::login(server.imap(), ALICE, util::PASSWORD).await;
    let r = imap.command("SELECT INBOX").await;
    assert_eq!(util::imap::exists(&r.text()), Some(1), "only the message that was finished is stored");
}

/// A field of `/proc/<pid>/status` in KiB (`VmRSS`, `VmHWM`).
fn proc_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with(field)).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// The daemon's peak RSS while 10 clients each send a 40 MiB message at
/// once (docs/BENCHMARKS.md). Prints the numbers; asserts only that every
/// message was accepted. Run:
/// `cargo test --test integration smtp_rss -- --ignored --nocapture`;
/// `COIMAIL_SERVE_BIN=path/to/other/coimail` measures another build.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement: prints the daemon's peak RSS"]
async fn smtp_rss_of_ten_concurrent_40_mib_messages() {
    const CLIENTS: usize = 10;
    const SIZE: usize = 40 << 20;
    let dir = tempfile::tempdir().unwrap();
    let server = util::ChildServer::spawn(dir.path());
    util::server::add_user(&server, ALICE);
    let pid = server.pid().unwrap();
    let message = std::sync::Arc::new(large_message(0, SIZE));
    // Warm up: one small message, so the baseline includes a used session.
    let mut smtp = SmtpClient::connect(server.smtp()).await;
    assert!(smtp.send("sender@remote.test", &[ALICE], &util::message(0, ALICE)).await.starts_with("250"));
    drop(smtp);
    let before = proc_kib(pid, "VmRSS:");
    let hwm_before = proc_kib(pid, "VmHWM:");
    let start = Instant::now();
    let sends: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let (addr, message) = (server.smtp(), message.clone());
            tokio::spawn(async move {
                let mut smtp = SmtpClient::connect(addr).await;
                smtp.send("sender@remote.test", &[ALICE], &message).await
            })
        })
        .collect();
    let mut peak_sampled = 0;
    let mut all = futures_join(sends, || peak_sampled = peak_sampled.max(proc_kib(pid, "VmRSS:"))).await;
    let elapsed = start.elapsed();
    all.sort();
    for r in &all {
        assert!(r.starts_with("250"), "{r}");
    }
    let hwm = proc_kib(pid, "VmHWM:");
    println!(
        "rss: {CLIENTS} x {} MiB over DATA in {:.1} s: RSS before {} MiB (peak so far {} MiB), \
         peak RSS during {} MiB (sampled {} MiB), growth {} MiB",
        SIZE >> 20,
        elapsed.as_secs_f64(),
        before / 1024,
        hwm_before / 1024,
        hwm / 1024,
        peak_sampled / 1024,
        hwm.saturating_sub(before) / 1024,
    );
}

/// Waits for every task, calling `tick` every 50 ms meanwhile.
async fn futures_join(tasks: Vec<tokio::task::JoinHandle<String>>, mut tick: impl FnMut()) -> Vec<String> {
    let mut out = Vec::new();
    for mut t in tasks {
        loop {
            tokio::select! {
                r = &mut t => { out.push(r.unwrap()); break; }
                _ = tokio::time::sleep(Duration::from_millis(50)) => tick(),
            }
        }
    }
    out
}
