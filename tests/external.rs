//! Real third-party clients: Python's smtplib and imaplib, and Delta Chat.

use crate::util::{self, TestServer};

/// The interpreter with the test clients: `tests/run.sh` points COIMAIL_PYTHON
/// at its virtualenv.
pub(crate) fn python() -> String {
    std::env::var("COIMAIL_PYTHON").unwrap_or_else(|_| "python3".into())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_smtplib_sends_and_imaplib_reads_back_byte_identical() {
    let server = TestServer::start(&["carol@example.org"]).await;
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/external/smtp_imap_roundtrip.py");
    let out = tokio::process::Command::new(python())
        .arg(script)
        .arg(server.smtp().port().to_string())
        .arg(server.imap().port().to_string())
        .arg("carol@example.org")
        .arg(util::PASSWORD)
        .output()
        .await
        .expect("python3 must be installed (see .ci/run)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "python client failed:\n{stdout}\n{stderr}");
    assert!(stdout.contains("roundtrip ok"), "{stdout}");
}

/// Delta Chat's core, as the real app runs it. Needs `deltachat-rpc-server`
/// and `deltachat-rpc-client` from PyPI, which `tests/run.sh` installs into a
/// virtualenv and announces with COIMAIL_EXTERNAL=1; plain `cargo test`
/// without them skips this test and says so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deltachat_accounts_exchange_messages_both_ways() {
    deltachat_exchange(false).await;
}

/// The same with COI turned on (filter `none`) for both accounts first, as
/// a COI client would: Delta Chat still receives everything, the server
/// leaves its mail in INBOX (never COI/Chats), tagged `$Chat` exactly when
/// the outer headers carry a chat marker (COI R22/R24/R26, D6). Delta Chat
/// 2.x encrypts with header protection, so in practice it carries none.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deltachat_with_coi_on_filter_none_still_receives_everything_in_inbox() {
    deltachat_exchange(true).await;
}

async fn deltachat_exchange(coi: bool) {
    if std::env::var("COIMAIL_EXTERNAL").as_deref() != Ok("1") {
        eprintln!("skipped: run tests/run.sh (COIMAIL_EXTERNAL=1) for the Delta Chat interop test");
        return;
    }
    let server = TestServer::start(&["alice@example.org", "bob@example.org"]).await;
    let accounts = tempfile::tempdir().unwrap();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/external/deltachat_exchange.py");
    let run = tokio::process::Command::new(python())
        .arg(script)
        .arg("127.0.0.1")
        .arg(server.imap().port().to_string())
        .arg(server.addrs().submission[0].port().to_string())
        .arg("alice@example.org")
        .arg("bob@example.org")
        .arg(util::PASSWORD)
        .arg(accounts.path())
        .args(coi.then_some("coi"))
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(std::time::Duration::from_secs(300), run)
        .await
        .expect("Delta Chat exchange took over 5 minutes")
        .expect("python3 with deltachat-rpc-client must be installed (tests/run.sh)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "Delta Chat exchange failed:\n{stdout}\n{stderr}");
    assert!(stdout.contains("deltachat exchange ok"), "{stdout}");
}
