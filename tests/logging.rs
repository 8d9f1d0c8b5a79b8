//! What the logs say: one span per connection with peer and session id, and
//! never a password or a message body, even at the most verbose level.

use crate::util::{self, ChildServer, ImapClient, SmtpClient, server::add_user};

const USER: &str = "fred@example.org";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trace_logs_have_connection_spans_and_no_secrets() {
    let dir = tempfile::tempdir().unwrap();
    // JSON logs, every coimail crate at trace level.
    let mut config = crate::util::server::test_config(dir.path());
    config.log.format = coimail_daemon::config::LogFormat::Json;
    std::fs::write(dir.path().join("coimail.toml"), toml::to_string(&config).unwrap()).unwrap();
    let filter = "warn,coimail=trace,coimail_daemon=trace,coimail_imap=trace,coimail_smtp=trace,\
                  coimail_store=trace,coimail_directory=trace";
    let mut server = ChildServer::spawn_logging(dir.path(), filter);
    add_user(&server, USER);

    let body_marker = "BODY-MARKER-7c1f";
    let mut smtp = SmtpClient::connect(server.smtp()).await;
    let msg = format!("Subject: secret\r\n\r\n{body_marker}\r\n");
    assert!(smtp.send("x@remote.test", &[USER], msg.as_bytes()).await.starts_with("250"));
    let mut imap = ImapClient::login(server.imap(), USER, util::PASSWORD).await;
    let wrong = ImapClient::connect(server.imap()).await.command("LOGIN fred@example.org WRONG-PW-MARKER").await;
    assert!(wrong.status.contains(" NO "), "{}", wrong.status);
    imap.command("SELECT INBOX").await;
    let r = imap.command("FETCH 1 BODY[]").await;
    assert!(r.text().contains(body_marker));
    assert!(server.terminate());

    let log = std::fs::read_to_string(dir.path().join("server.log")).unwrap();
    assert!(log.lines().count() > 10, "trace logging produced almost nothing:\n{log}");
    for line in log.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        assert!(v.get("level").is_some(), "{line}");
    }
    for secret in [util::PASSWORD, "WRONG-PW-MARKER", body_marker] {
        assert!(!log.contains(secret), "the log contains {secret:?}");
    }
    for proto in ["imap", "smtp"] {
        let spans = log.lines().filter(|l| l.contains(&format!("\"proto\":\"{proto}\"")) && l.contains("peer"));
        assert!(spans.count() > 0, "no {proto} connection span with a peer in the log");
    }
    assert!(log.contains("session_id"), "no session ids in the log");
}
