//! Real third-party clients, installed by `.ci/run`: Python's smtplib and imaplib.

use crate::util::{self, TestServer};

fn python() -> &'static str {
    "python3"
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
