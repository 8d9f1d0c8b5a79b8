#![allow(clippy::expect_used, clippy::unwrap_used)] // a benchmark reports failures by panicking
//! Delta Chat one-way latency through coimail in chatmail mode (issue 13;
//! docs/BENCHMARKS.md "Delta Chat on a chatmail relay"): a
//! deltachat-rpc-server pair (Delta Chat's own core, from PyPI) on the real
//! daemon (`coimail_daemon::start`, release build) with `[chatmail]` on:
//! both accounts are created by their first login, set up contact with
//! Secure-Join, and then ping-pong `--messages` (20) messages each way, all
//! encrypted, through the encrypted-only filter. `benches/deltachat/pingpong.py`
//! measures from `send_text` to the receiver's IncomingMsg event.
//!
//! Prints median and p90 per direction and together (target: median ≤ 60 ms,
//! p90 ≤ 100 ms). Needs the deltachat-rpc-server virtualenv that
//! `tests/run.sh` makes in target/test-venv (or COIMAIL_PYTHON).
//!
//! Run: `cargo bench --bench chatmail_latency` (options: `-- --messages N`).

mod common;

use std::time::Duration;

const PASSWORD: &str = "bench password 1";

fn messages() -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.windows(2).find(|p| p[0] == "--messages").and_then(|p| p[1].parse().ok()).unwrap_or(20)
}

fn venv() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/test-venv/bin")
}

fn report(name: &str, ms: &[f64]) {
    let mut v: Vec<Duration> = ms.iter().map(|m| Duration::from_secs_f64(m / 1000.0)).collect();
    v.sort();
    let f = |d: Duration| format!("{:.1} ms", d.as_secs_f64() * 1000.0);
    println!(
        "{name:<16} n {:>3}  median {:>9}  p90 {:>9}  max {:>9}",
        v.len(),
        f(common::percentile(&v, 0.5)),
        f(common::percentile(&v, 0.9)),
        f(v.last().copied().unwrap_or_default())
    );
}

fn numbers(json: &str, key: &str) -> Vec<f64> {
    let start = json.find(&format!("\"{key}\": [")).expect(key) + key.len() + 5;
    let end = start + json[start..].find(']').expect("]");
    json[start..end].split(',').filter_map(|s| s.trim().parse().ok()).collect()
}

#[tokio::main]
async fn main() {
    let n = messages();
    let dir = tempfile::tempdir().unwrap();
    let mut config = common::loopback_config(dir.path());
    config.chatmail.enabled = true;
    config.chatmail.create_accounts_on_login = true;
    let running = coimail_daemon::start(config).await.unwrap();
    running.directory().add_domain("example.org").await.unwrap();
    let addrs = running.addrs().clone();
    let python = std::env::var("COIMAIL_PYTHON").unwrap_or_else(|_| venv().join("python").display().to_string());
    let path = format!("{}:{}", venv().display(), std::env::var("PATH").unwrap_or_default());
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/benches/deltachat/pingpong.py");
    let accounts = dir.path().join("accounts");
    let out = tokio::process::Command::new(python)
        .env("PATH", path)
        .arg(script)
        .arg("127.0.0.1")
        .arg(addrs.imap[0].port().to_string())
        .arg(addrs.submission[0].port().to_string())
        .arg("alice0001@example.org")
        .arg("bob000001@example.org")
        .arg(PASSWORD)
        .arg(&accounts)
        .arg(n.to_string())
        .kill_on_drop(true)
        .output()
        .await
        .expect("python with deltachat-rpc-client (tests/run.sh makes target/test-venv)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "pingpong failed:\n{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    let json = stdout.lines().last().unwrap_or_default();
    assert!(json.contains("\"xchatmail\": true"), "XCHATMAIL not seen: {json}");
    let (ab, ba) = (numbers(json, "a_to_b"), numbers(json, "b_to_a"));
    assert_eq!((ab.len(), ba.len()), (n, n), "{json}");
    println!("coimail, chatmail mode, Delta Chat {n} messages each way (one-way, send_text -> IncomingMsg):");
    report("alice -> bob", &ab);
    report("bob -> alice", &ba);
    let all: Vec<f64> = ab.iter().chain(&ba).copied().collect();
    report("both", &all);
    println!("target: median <= 60 ms, p90 <= 100 ms");
    running.shutdown().await.unwrap();
}
