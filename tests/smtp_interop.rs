//! Real, unmodified SMTP clients against coimail:
//! - swaks: plain MX, STARTTLS and implicit TLS submission, AUTH PLAIN and
//!   LOGIN, PIPELINING, an open-relay attempt. swaks 20201014 (Debian 12)
//!   cannot send BDAT, so CHUNKING is driven by
//! - mail-send's `SmtpClient` (Stalwart's client library): STARTTLS, AUTH, BDAT;
//! - Python's smtplib: submission with STARTTLS + AUTH PLAIN/LOGIN and over 465;
//! - Postfix's smtp-source: 10 concurrent sessions of 2 KB messages.
//!
//! The tools come from Debian (`tests/run.sh` installs them and sets
//! COIMAIL_EXTERNAL=1). Without COIMAIL_EXTERNAL a missing tool skips its
//! test with a note; with it, a missing tool fails the test.

use crate::util::{self, ImapClient, TestServer, imap::exists};
use std::path::PathBuf;
use std::process::Output;
use std::time::Duration;

const ALICE: &str = "alice@example.org";
const BOB: &str = "bob@example.org";

/// The tool's path, searching PATH and the sbin directories (smtp-source
/// lives in /usr/sbin, often outside a user's PATH).
fn tool(name: &str) -> Option<PathBuf> {
    let path = std::env::var("PATH").unwrap_or_default();
    let found = path
        .split(':')
        .chain(["/usr/sbin", "/usr/local/sbin", "/sbin"])
        .map(|d| PathBuf::from(d).join(name))
        .find(|p| p.is_file());
    if found.is_none() {
        assert!(
            std::env::var("COIMAIL_EXTERNAL").as_deref() != Ok("1"),
            "{name} is missing (tests/run.sh installs it)"
        );
        eprintln!("skipped: {name} is not installed (tests/run.sh installs it)");
    }
    found
}

fn python() -> String {
    std::env::var("COIMAIL_PYTHON").unwrap_or_else(|_| "python3".into())
}

/// Runs a client to its end (bounded), with its output for the assertion message.
async fn run(cmd: &mut tokio::process::Command) -> (Output, String) {
    let out = tokio::time::timeout(Duration::from_secs(120), cmd.kill_on_drop(true).output())
        .await
        .expect("client took over 2 minutes")
        .expect("client could not be started");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out, text)
}

/// The user's INBOX over IMAP: message count and every message's bytes.
async fn inbox(server: &TestServer, user: &str) -> (u32, String) {
    let mut c = ImapClient::login(server.imap(), user, util::PASSWORD).await;
    let r = c.command("SELECT INBOX").await;
    let n = exists(&r.text()).unwrap();
    if n == 0 {
        return (0, String::new());
    }
    let r = c.command("FETCH 1:* BODY.PEEK[]").await;
    assert!(r.ok(), "{}", r.status);
    (n, r.text())
}

fn swaks(server_addr: std::net::SocketAddr, args: &[&str]) -> tokio::process::Command {
    let mut c = tokio::process::Command::new(tool("swaks").unwrap_or_else(|| "swaks".into()));
    c.arg("--server").arg(server_addr.ip().to_string()).arg("--port").arg(server_addr.port().to_string());
    c.args(["--helo", "client.test", "--timeout", "30"]).args(args);
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn swaks_mx_submission_tls_and_auth() {
    if tool("swaks").is_none() {
        return;
    }
    let server = TestServer::start(&[ALICE, BOB]).await;
    let addrs = server.addrs().clone();
    let id = |n: u32| format!("Message-ID: <swaks-{n}@client.test>");

    // 1. Plain MX, pipelined.
    let (out, text) = run(&mut swaks(
        server.smtp(),
        &["--from", "sender@remote.test", "--to", ALICE, "--pipeline", "--header", &id(1), "--body", "plain MX"],
    ))
    .await;
    assert!(out.status.success(), "{text}");
    assert!(text.contains("250 2.0.0"), "{text}");

    // 2. Submission on 587: STARTTLS, AUTH PLAIN.
    let sub = addrs.submission[0];
    let auth = |mech: &'static str| ["--auth", mech, "--auth-user", BOB, "--auth-password", util::PASSWORD];
    let mut args = vec!["--from", BOB, "--to", ALICE, "--tls", "--header"];
    let h2 = id(2);
    args.extend([h2.as_str(), "--body", "starttls plain"]);
    args.extend(auth("PLAIN"));
    let (out, text) = run(&mut swaks(sub, &args)).await;
    assert!(out.status.success(), "{text}");
    assert!(text.contains("STARTTLS") && text.contains("235 2.7.0"), "{text}");

    // 3. Submission on 587: STARTTLS, AUTH LOGIN.
    let mut args = vec!["--from", BOB, "--to", ALICE, "--tls", "--header"];
    let h3 = id(3);
    args.extend([h3.as_str(), "--body", "starttls login"]);
    args.extend(auth("LOGIN"));
    let (out, text) = run(&mut swaks(sub, &args)).await;
    assert!(out.status.success(), "{text}");
    assert!(text.contains("334 VXNlcm5hbWU6"), "LOGIN dialogue expected: {text}");

    // 4. Implicit TLS on 465, AUTH PLAIN.
    let mut args = vec!["--from", BOB, "--to", ALICE, "--tls-on-connect", "--header"];
    let h4 = id(4);
    args.extend([h4.as_str(), "--body", "implicit tls"]);
    args.extend(auth("PLAIN"));
    let (out, text) = run(&mut swaks(addrs.submissions[0], &args)).await;
    assert!(out.status.success(), "{text}");

    // 5. Refusals swaks must see: relaying through MX, and submission without AUTH.
    let (out, text) = run(&mut swaks(server.smtp(), &["--from", "a@remote.test", "--to", "x@elsewhere.test"])).await;
    assert!(!out.status.success() && text.contains("550 5.7.1"), "{text}");
    let (out, text) = run(&mut swaks(sub, &["--from", BOB, "--to", ALICE, "--tls"])).await;
    assert!(!out.status.success() && text.contains("530 5.7.0"), "{text}");

    let (n, all) = inbox(&server, ALICE).await;
    assert_eq!(n, 4, "{all}");
    for i in 1..=4 {
        assert!(all.contains(&format!("<swaks-{i}@client.test>")), "message {i} missing: {all}");
    }
    assert!(all.contains("with ESMTPSA"), "TLS and AUTH in Received (RFC 3848): {all}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mail_send_client_submits_with_bdat_over_starttls() {
    let server = TestServer::start(&[ALICE, BOB]).await;
    let sub = server.addrs().submission[0];
    let mut client = mail_send::SmtpClientBuilder::new("localhost".to_owned(), sub.port())
        .unwrap()
        .implicit_tls(false)
        .allow_invalid_certs()
        .helo_host("laptop.test")
        .credentials((BOB.to_owned(), util::PASSWORD.to_owned()))
        .connect()
        .await
        .unwrap();
    let params = Default::default();
    for n in 0..2 {
        client.mail_from(BOB, &params).await.unwrap();
        client.rcpt_to(ALICE, &params).await.unwrap();
        let msg = format!(
            "From: {BOB}\r\nTo: {ALICE}\r\nSubject: chunked {n}\r\nMessage-ID: <bdat-{n}@laptop.test>\r\n\r\n\
             sent with BDAT {n}\r\n.leading dot, not stuffed\r\n"
        );
        let reply = client.bdat(msg.as_bytes()).await.unwrap();
        assert_eq!(reply.code(), 250, "{reply:?}");
    }
    client.quit().await.unwrap();
    let (n, all) = inbox(&server, ALICE).await;
    assert_eq!(n, 2);
    assert!(all.contains("sent with BDAT 1\r\n.leading dot, not stuffed\r\n"), "{all}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_smtplib_submits_with_starttls_and_auth() {
    let server = TestServer::start(&[ALICE, BOB]).await;
    let addrs = server.addrs().clone();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/external/smtplib_submission.py");
    let (out, text) = run(tokio::process::Command::new(python())
        .arg(script)
        .arg("127.0.0.1")
        .arg(addrs.submission[0].port().to_string())
        .arg(addrs.submissions[0].port().to_string())
        .arg(BOB)
        .arg(util::PASSWORD)
        .arg(ALICE)
        .arg("smtplib"))
    .await;
    assert!(out.status.success() && text.contains("smtplib submission ok"), "{text}");
    let (n, all) = inbox(&server, ALICE).await;
    assert_eq!(n, 3, "{all}");
    for i in 1..=3 {
        assert!(all.contains(&format!("<smtplib-{i}@python.test>")), "{all}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postfix_smtp_source_load_is_all_delivered() {
    let Some(smtp_source) = tool("smtp-source") else { return };
    let server = TestServer::start(&[ALICE]).await;
    const MESSAGES: u32 = 400;
    let started = std::time::Instant::now();
    // 10 sessions at once, 2 KB messages, several per connection (-d).
    let (out, text) = run(tokio::process::Command::new(smtp_source)
        .args(["-s", "10", "-m", &MESSAGES.to_string(), "-l", "2048", "-d", "-f", "load@remote.test", "-t", ALICE])
        .args(["-M", "client.test", "-S", "smtp-source load"])
        .arg(server.smtp().to_string()))
    .await;
    assert!(out.status.success(), "smtp-source failed: {text}");
    let secs = started.elapsed().as_secs_f64();
    let (n, _) = inbox(&server, ALICE).await;
    println!("smtp-source: {MESSAGES} messages in {secs:.2} s ({:.0} msg/s, debug build)", f64::from(MESSAGES) / secs);
    assert_eq!(n, MESSAGES);
}
