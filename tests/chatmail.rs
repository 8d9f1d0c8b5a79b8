//! Chatmail mode (`[chatmail]`, docs/chatmail.md) over real sockets:
//! XCHATMAIL, the encrypted-only filter on MX and submission (DATA and
//! BDAT), account creation on first login and its rate limit, message and
//! account expiry seen by open sessions, and real Delta Chat through it all.

use crate::util::mailhost::{base64, submit};
use crate::util::{self, ImapClient, PASSWORD, SmtpClient, TestServer};
use coimail_daemon::Config;
use std::time::Duration;

const ALICE: &str = "alice@example.org";
const BOB: &str = "bob@example.org";
const REFUSAL: &str = "550 5.7.1 Encryption Needed: Invalid Unencrypted Mail";

fn chatmail(c: &mut Config) {
    c.chatmail.enabled = true;
}

fn crlf(s: &str) -> Vec<u8> {
    s.replace("\r\n", "\n").replace('\n', "\r\n").into_bytes()
}

fn plain(from: &str, to: &str) -> Vec<u8> {
    crlf(&format!("From: {from}\nTo: {to}\nSubject: hello\nMessage-ID: <p.{from}>\n\nhello in the clear\n"))
}

/// RFC 3156 with a PKESK and a SEIPD packet (base64 of C1 03 03 01 02 D2 03 01 09 09).
fn encrypted(from: &str, to: &str) -> Vec<u8> {
    crlf(&format!(
        "From: {from}\nTo: {to}\nSubject: [...]\nMessage-ID: <e.{from}>\nMIME-Version: 1.0\n\
         Content-Type: multipart/encrypted; protocol=\"application/pgp-encrypted\"; boundary=\"b\"\n\n\
         --b\nContent-Type: application/pgp-encrypted\n\nVersion: 1\n\n\
         --b\nContent-Type: application/octet-stream; name=\"encrypted.asc\"\n\n\
         -----BEGIN PGP MESSAGE-----\n\nwQMDAQLSAwEJCQ==\n=njUN\n-----END PGP MESSAGE-----\n\n--b--\n"
    ))
}

fn securejoin_request(from: &str, to: &str) -> Vec<u8> {
    crlf(&format!(
        "From: <{from}>\nTo: <{to}>\nSubject: Message from {from}\nMessage-ID: <sj.{from}>\nChat-Version: 1.0\n\
         Secure-Join: vc-request\nSecure-Join-Invitenumber: Wg0xXSNsuMs\nMIME-Version: 1.0\n\
         Content-Type: multipart/mixed; boundary=\"sj\"\n\n\n--sj\nContent-Type: text/plain; charset=utf-8\n\n\
         Secure-Join: vc-request\n\n\n--sj--\n"
    ))
}

fn autocrypt_setup(addr: &str) -> Vec<u8> {
    crlf(&format!(
        "From: {addr}\nTo: {addr}\nSubject: Autocrypt Setup Message\nMessage-ID: <asm.{addr}>\n\
         Autocrypt-Setup-Message: v1\nMIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=\"a\"\n\n\
         --a\nContent-Type: text/plain\n\nThis is the Autocrypt Setup Message.\n\n--a\n\
         Content-Type: application/autocrypt-setup\n\n<html><pre>-----BEGIN PGP MESSAGE-----\n</pre></html>\n--a--\n"
    ))
}

async fn mx(server: &TestServer, from: &str, to: &str, message: &[u8]) -> String {
    SmtpClient::connect(server.smtp()).await.send(from, &[to], message).await
}

async fn capability_after_login(server: &TestServer) -> String {
    let mut c = ImapClient::login(server.imap(), ALICE, PASSWORD).await;
    c.command("CAPABILITY").await.text()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn xchatmail_is_advertised_only_in_chatmail_mode() {
    let plain_server = TestServer::start(&[ALICE]).await;
    assert!(!capability_after_login(&plain_server).await.contains("XCHATMAIL"));
    let relay = TestServer::start_with(&[ALICE], chatmail).await;
    assert!(capability_after_login(&relay).await.contains(" XCHATMAIL"));
    // Not before login (Delta Chat looks after login, as Dovecot's imap_capability adds it).
    let mut c = ImapClient::connect(relay.imap()).await;
    assert!(!c.command("CAPABILITY").await.text().contains("XCHATMAIL"));
    let off = TestServer::start_with(&[ALICE], |c| {
        chatmail(c);
        c.chatmail.xchatmail = false;
    })
    .await;
    assert!(!capability_after_login(&off).await.contains("XCHATMAIL"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_mail_is_refused_over_mx_and_submission_encrypted_mail_passes() {
    let server = TestServer::start_with(&[ALICE, BOB], chatmail).await;
    let stranger = "someone@elsewhere.example";
    // MX (incoming).
    assert!(mx(&server, stranger, BOB, &plain(stranger, BOB)).await.starts_with(REFUSAL));
    assert!(mx(&server, stranger, BOB, &encrypted(stranger, BOB)).await.starts_with("250"));
    assert!(mx(&server, stranger, BOB, &securejoin_request(stranger, BOB)).await.starts_with("250"));
    // Submission (outgoing), between our users.
    let sub = server.addrs().submission[0];
    assert!(submit(sub, ALICE, &[BOB], &plain(ALICE, BOB)).await.starts_with(REFUSAL));
    assert!(submit(sub, ALICE, &[BOB], &encrypted(ALICE, BOB)).await.starts_with("250"));
    assert!(submit(sub, ALICE, &[BOB], &securejoin_request(ALICE, BOB)).await.starts_with("250"));
    // The Autocrypt Setup Message passes to oneself only, and never from outside.
    assert!(submit(sub, ALICE, &[ALICE], &autocrypt_setup(ALICE)).await.starts_with("250"));
    assert!(submit(sub, ALICE, &[BOB], &autocrypt_setup(ALICE)).await.starts_with(REFUSAL));
    assert!(mx(&server, stranger, BOB, &autocrypt_setup(stranger)).await.starts_with(REFUSAL));
    // Bob got exactly the three that passed to him (MX: encrypted + Secure-Join; submission: the same).
    let mut c = ImapClient::login(server.imap(), BOB, PASSWORD).await;
    assert_eq!(util::imap::exists(&c.command("SELECT INBOX").await.text()), Some(4));
    // Without chatmail mode the same plain message is delivered.
    let open = TestServer::start(&[ALICE, BOB]).await;
    assert!(mx(&open, stranger, BOB, &plain(stranger, BOB)).await.starts_with("250"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bdat_gets_the_same_filter() {
    let server = TestServer::start_with(&[BOB], chatmail).await;
    let stranger = "someone@elsewhere.example";
    for (message, want) in [(plain(stranger, BOB), "550 5.7.1"), (encrypted(stranger, BOB), "250")] {
        let mut c = SmtpClient::connect(server.smtp()).await;
        assert!(c.cmd("EHLO relay.test").await.contains("CHUNKING"));
        assert!(c.cmd(&format!("MAIL FROM:<{stranger}>")).await.starts_with("250"));
        assert!(c.cmd(&format!("RCPT TO:<{BOB}>")).await.starts_with("250"));
        let (head, tail) = message.split_at(message.len() / 2);
        c.send_raw(format!("BDAT {}\r\n", head.len()).as_bytes()).await;
        c.send_raw(head).await;
        assert!(c.reply().await.starts_with("250"));
        c.send_raw(format!("BDAT {} LAST\r\n", tail.len()).as_bytes()).await;
        c.send_raw(tail).await;
        let r = c.reply().await;
        assert!(r.starts_with(want), "{r}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passthrough_recipients_may_get_cleartext() {
    let server = TestServer::start_with(&[ALICE, BOB], |c| {
        chatmail(c);
        c.chatmail.passthrough_recipients = vec![BOB.into()];
    })
    .await;
    let sub = server.addrs().submission[0];
    assert!(submit(sub, ALICE, &[BOB], &plain(ALICE, BOB)).await.starts_with("250"));
    assert!(submit(sub, BOB, &[ALICE], &plain(BOB, ALICE)).await.starts_with(REFUSAL));
}

async fn imap_login(server: &TestServer, user: &str, password: &str) -> String {
    let mut c = ImapClient::connect(server.imap()).await;
    c.command(&format!("LOGIN \"{user}\" \"{password}\"")).await.status
}

async fn smtp_auth(server: &TestServer, user: &str, password: &str) -> String {
    let mut c = SmtpClient::connect(server.addrs().submission[0]).await;
    c.cmd("EHLO laptop.test").await;
    c.cmd(&format!("AUTH PLAIN {}", base64(format!("\0{user}\0{password}").as_bytes()))).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accounts_are_created_on_first_login_within_the_rate_limit() {
    let server = TestServer::start_with(&[], |c| {
        chatmail(c);
        c.chatmail.create_accounts_on_login = true;
        c.chatmail.accounts_per_ip_per_hour = 2;
    })
    .await;
    let dir = server.running.as_ref().unwrap().directory().clone();
    // doveauth's rules: 9-character local part, password of 9 or more.
    assert!(imap_login(&server, "short@example.org", "longenough").await.contains("NO"));
    assert!(imap_login(&server, "abcdefghi@example.org", "12345678").await.contains("NO"));
    assert!(imap_login(&server, "abcdefghi@elsewhere.example", "longenough").await.contains("NO"));
    assert!(dir.list_users().unwrap().is_empty());
    // IMAP LOGIN creates; the account then has its password like any other.
    assert!(imap_login(&server, "abcdefghi@example.org", "longenough").await.contains("OK"));
    assert!(dir.user("abcdefghi@example.org").unwrap().is_some());
    assert!(imap_login(&server, "abcdefghi@example.org", "otherpassword").await.contains("NO"));
    assert!(imap_login(&server, "abcdefghi@example.org", "longenough").await.contains("OK"));
    // SMTP AUTH creates too.
    assert!(smtp_auth(&server, "jklmnopqr@example.org", "longenough").await.starts_with("235"));
    assert!(dir.user("jklmnopqr@example.org").unwrap().is_some());
    // A third account from this peer within the hour is refused, on both protocols.
    assert!(imap_login(&server, "stuvwxyz1@example.org", "longenough").await.contains("NO [UNAVAILABLE]"));
    assert!(smtp_auth(&server, "stuvwxyz1@example.org", "longenough").await.starts_with("454 4.7.0"));
    assert!(dir.user("stuvwxyz1@example.org").unwrap().is_none());
    assert_eq!(dir.list_users().unwrap().len(), 2);
    // Existing accounts still log in.
    assert!(smtp_auth(&server, "abcdefghi@example.org", "longenough").await.starts_with("235"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_switch_unknown_logins_fail() {
    let server = TestServer::start_with(&[], chatmail).await;
    assert!(imap_login(&server, "abcdefghi@example.org", "longenough").await.contains("NO"));
    assert!(server.running.as_ref().unwrap().directory().list_users().unwrap().is_empty());
}

/// Reads lines until one equals `want` (IDLE untagged responses).
async fn wait_line(c: &mut ImapClient, want: &str, within: Duration) {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let line = tokio::time::timeout_at(deadline, c.read_line()).await.unwrap_or_else(|_| panic!("no {want}"));
        if String::from_utf8_lossy(&line).trim_end() == want {
            return;
        }
    }
}

/// APPENDs an encrypted message to `user`'s INBOX, with INTERNALDATE `date` (`None`: now).
async fn append(user: &str, date: Option<&str>, server: &TestServer) {
    let mut c = ImapClient::login(server.imap(), user, PASSWORD).await;
    let msg = encrypted(user, user);
    let tag = c.tag();
    let date = date.map(|d| format!(" \"{d}\"")).unwrap_or_default();
    c.send_raw(format!("{tag} APPEND INBOX{date} {{{}+}}\r\n", msg.len()).as_bytes()).await;
    c.send_raw(&msg).await;
    c.send_raw(b"\r\n").await;
    assert!(c.until_tagged(&tag).await.ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn old_messages_expire_and_open_sessions_see_expunge() {
    // The first run is one interval after start: time to set the scene.
    let server = TestServer::start_with(&[ALICE], |c| {
        chatmail(c);
        c.chatmail.expire_interval_secs = 4;
    })
    .await;
    // A message from now stays; one that arrived in 2020 goes (default: after 20 days).
    append(ALICE, None, &server).await;
    append(ALICE, Some("01-Jan-2020 00:00:00 +0000"), &server).await;
    let mut watcher = ImapClient::login(server.imap(), ALICE, PASSWORD).await;
    assert_eq!(util::imap::exists(&watcher.command("SELECT INBOX").await.text()), Some(2));
    watcher.send_raw(b"I1 IDLE\r\n").await;
    wait_line(&mut watcher, "+ idling", Duration::from_secs(5)).await;
    wait_line(&mut watcher, "* 2 EXPUNGE", Duration::from_secs(20)).await;
    watcher.send_raw(b"DONE\r\n").await;
    assert!(watcher.until_tagged("I1").await.ok());
    let r = watcher.command("UID SEARCH ALL").await.text();
    assert!(r.contains("* SEARCH 1\r\n"), "{r}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accounts_unused_for_long_are_removed_with_their_sessions() {
    let server = TestServer::start_with(&[ALICE, BOB], |c| {
        chatmail(c);
        c.chatmail.delete_inactive_users_after_days = 30;
        c.chatmail.expire_interval_secs = 2;
    })
    .await;
    let dir = server.running.as_ref().unwrap().directory().clone();
    // Alice last logged in 31 days ago (and has a session open now, which
    // the removal ends); Bob logs in today. An account never logged in to stays.
    let mut alice = ImapClient::login(server.imap(), ALICE, PASSWORD).await;
    assert!(alice.command("SELECT INBOX").await.ok());
    let today = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() / 86_400;
    dir.set_last_login_day(ALICE, today - 31).await.unwrap();
    let _bob = ImapClient::login(server.imap(), BOB, PASSWORD).await;
    dir.add_user("carol@example.org", PASSWORD, None).await.unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while dir.user(ALICE).unwrap().is_some() {
        assert!(tokio::time::Instant::now() < deadline, "alice was not removed");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(dir.user(BOB).unwrap().is_some() && dir.user("carol@example.org").unwrap().is_some());
    // Her session ends.
    let line = tokio::time::timeout(Duration::from_secs(10), alice.read_line()).await.unwrap();
    assert!(String::from_utf8_lossy(&line).starts_with("* BYE"), "{}", String::from_utf8_lossy(&line));
}

/// Real Delta Chat: two accounts created on first login, Secure-Join, then
/// encrypted messages both ways through the filter. Needs the
/// deltachat-rpc-server virtualenv (`tests/run.sh`, COIMAIL_EXTERNAL=1).
/// With COIMAIL_CHATMAIL_SAMPLES=DIR, saves the messages it saw there
/// (how crates/chatmail/src/filter/samples/ were made).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deltachat_creates_accounts_joins_securely_and_exchanges_encrypted_mail() {
    if std::env::var("COIMAIL_EXTERNAL").as_deref() != Ok("1") {
        eprintln!("skipped: run tests/run.sh (COIMAIL_EXTERNAL=1) for the Delta Chat chatmail test");
        return;
    }
    let server = TestServer::start_with(&[], |c| {
        chatmail(c);
        c.chatmail.create_accounts_on_login = true;
    })
    .await;
    let accounts = tempfile::tempdir().unwrap();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/external/deltachat_chatmail.py");
    let python = std::env::var("COIMAIL_PYTHON").unwrap_or_else(|_| "python3".into());
    let run = tokio::process::Command::new(python)
        .arg(script)
        .arg("127.0.0.1")
        .arg(server.imap().port().to_string())
        .arg(server.addrs().submission[0].port().to_string())
        .arg("alice0001@example.org")
        .arg("bob000001@example.org")
        .arg("a long enough password")
        .arg(accounts.path())
        .args(std::env::var("COIMAIL_CHATMAIL_SAMPLES").ok())
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(300), run)
        .await
        .expect("the Delta Chat chatmail run took over 5 minutes")
        .expect("python3 with deltachat-rpc-client must be installed (tests/run.sh)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "Delta Chat chatmail run failed:\n{stdout}\n{stderr}");
    assert!(stdout.contains("deltachat chatmail ok"), "{stdout}");
    let users = server.running.as_ref().unwrap().directory().list_users().unwrap();
    assert_eq!(users.len(), 2, "both accounts were created by their first login");
}
