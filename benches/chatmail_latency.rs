#![allow(clippy::expect_used, clippy::unwrap_used)] // a benchmark reports failures by panicking
//! Delta Chat one-way latency through coimail in chatmail mode (issue 13;
//! docs/BENCHMARKS.md "Delta Chat on a chatmail relay"): a
//! deltachat-rpc-server pair (Delta Chat's own core, from PyPI) on the real
//! daemon (`coimail_daemon::start`, release build) with `[chatmail]` on:
//! both accounts are created by their first login, set up contact with
//! Secure-Join, and then ping-pong `--messages` (20) messages each way, 1.2 s
//! between rounds (Delta Chat paces its own sends at about one per second), all
//! encrypted, through the encrypted-only filter. `benches/deltachat/pingpong.py`
//! measures from `send_text` to the receiver's IncomingMsg event.
//!
//! Then the same with Dovecot + Postfix (benches/deltachat/dovecot_postfix.sh:
//! Dovecot IMAP advertising XCHATMAIL as chatmail's does, Postfix submission
//! with Dovecot SASL and LMTP delivery, STARTTLS on both; users made
//! beforehand, no filtermail hop), unless `--no-dovecot`.
//!
//! Prints median and p90 per direction and together (target: median ≤ 60 ms,
//! p90 ≤ 100 ms). Needs the deltachat-rpc-server virtualenv that
//! `tests/run.sh` makes in target/test-venv (or COIMAIL_PYTHON), and root
//! for Dovecot + Postfix.
//!
//! Run: `cargo bench --bench chatmail_latency` (options: `-- --messages N --no-dovecot`).

#[allow(dead_code)] // the SMTP reply reader is for the other benches
mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

const PASSWORD: &str = "bench password 1";
/// Nine-character local parts: what chatmail's account creation allows.
const USERS: [&str; 2] = ["alice0001@example.org", "bob000001@example.org"];

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

/// Runs benches/deltachat/pingpong.py against a server; prints its numbers.
async fn pingpong(name: &str, imap: u16, submission: u16, accounts: &Path, n: usize) {
    let python = std::env::var("COIMAIL_PYTHON").unwrap_or_else(|_| venv().join("python").display().to_string());
    let path = format!("{}:{}", venv().display(), std::env::var("PATH").unwrap_or_default());
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/benches/deltachat/pingpong.py");
    let out = tokio::process::Command::new(python)
        .env("PATH", path)
        .arg(script)
        .arg("127.0.0.1")
        .arg(imap.to_string())
        .arg(submission.to_string())
        .args(USERS)
        .arg(PASSWORD)
        .arg(accounts)
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
    println!("{name}: Delta Chat, {n} messages each way (one-way, send_text -> IncomingMsg):");
    report("  alice -> bob", &ab);
    report("  bob -> alice", &ba);
    let all: Vec<f64> = ab.iter().chain(&ba).copied().collect();
    report("  both", &all);
}

/// Dovecot + Postfix via benches/deltachat/dovecot_postfix.sh, stopped on drop.
struct DovecotPostfix {
    dir: PathBuf,
    imap: u16,
    submission: u16,
}

fn setup_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/deltachat/dovecot_postfix.sh")
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

impl DovecotPostfix {
    fn start(dir: PathBuf, cert: &Path, key: &Path) -> DovecotPostfix {
        let (imap, submission) = (free_port(), free_port());
        let out = std::process::Command::new(setup_script())
            .env("TLS_CERT", cert)
            .env("TLS_KEY", key)
            .arg("start")
            .arg(&dir)
            .arg(imap.to_string())
            .arg(submission.to_string())
            .arg(PASSWORD)
            .args(USERS)
            .output()
            .expect("run benches/deltachat/dovecot_postfix.sh");
        assert!(out.status.success(), "dovecot/postfix setup failed: {}", String::from_utf8_lossy(&out.stderr));
        DovecotPostfix { dir, imap, submission }
    }
}

impl Drop for DovecotPostfix {
    fn drop(&mut self) {
        let _ = std::process::Command::new(setup_script()).arg("stop").arg(&self.dir).status();
    }
}

#[tokio::main]
async fn main() {
    let n = messages();
    let dir = tempfile::tempdir().unwrap();
    let mut config = common::loopback_config(dir.path());
    config.chatmail.enabled = true;
    config.chatmail.create_accounts_on_login = true;
    let (cert, key) = (config.tls.cert.clone(), config.tls.key.clone());
    // RUST_LOG=... shows the daemon's log (e.g. per-command IMAP traces) to explain a slow message.
    if std::env::var_os("RUST_LOG").is_some() {
        coimail_daemon::telemetry::init(&config.log);
    }
    let running = coimail_daemon::start(config).await.unwrap();
    running.directory().add_domain("example.org").await.unwrap();
    let addrs = running.addrs().clone();
    pingpong("coimail (chatmail mode)", addrs.imap[0].port(), addrs.submission[0].port(), &dir.path().join("dc1"), n)
        .await;
    running.shutdown().await.unwrap();
    if std::env::args().any(|a| a == "--no-dovecot") {
        return;
    }
    // Dovecot's mail processes run as `mail`: they must reach its directory.
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let dp = DovecotPostfix::start(dir.path().join("dovecot-postfix"), &cert, &key);
    pingpong("Dovecot + Postfix", dp.imap, dp.submission, &dir.path().join("dc2"), n).await;
    println!("target (coimail): median <= 60 ms, p90 <= 100 ms");
}
