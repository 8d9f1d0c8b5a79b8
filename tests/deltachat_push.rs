//! Push for Delta Chat (issue 13; chatmail's notifier and metadata dict
//! proxy as the reference): the real daemon on loopback, the commands Delta
//! Chat sends replayed over a raw IMAP socket, and a loopback stand-in for
//! the notification proxy (`util::notify_proxy`) that records every POST.

use crate::util::dns::{TestDns, Zone};
use crate::util::mailhost::submit;
use crate::util::notify_proxy::NotifyProxy;
use crate::util::{self, ImapClient, SmtpClient, TestServer, imap::exists};
use std::time::{Duration, Instant};

const ALICE: &str = "alice@example.org";
const BOB: &str = "bob@example.org";
/// Tokens as Delta Chat sends them: `openpgp:` and base64, to be passed on untouched.
const PHONE: &str = "openpgp:wV4DgYXa9r+/0ZMSAQdA3kAb/1x+Gy0P7m5Rj2eZy8uL0Kx3Q9c=Zz0zbD8fQ+Y1NQ==";
const TABLET: &str = "openpgp:wV4DAAAAAAAAAAASAQdAbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb=Yy0yYy0yYy0yYy==";
const WAIT: Duration = Duration::from_secs(10);
/// How long "no further request" is watched for.
const QUIET: Duration = Duration::from_millis(700);

async fn start(proxy: Option<&NotifyProxy>, tweak: impl FnOnce(&mut coimail_daemon::Config)) -> TestServer {
    let url = proxy.map(NotifyProxy::url);
    TestServer::start_with(&[ALICE, BOB], |c| {
        if let Some(url) = url {
            c.deltachat.notify_url = url;
        }
        c.deltachat.notify_retry_base_ms = 100;
        tweak(c);
    })
    .await
}

/// Exactly what chatmail core's `register_token` sends (D4).
async fn register(server: &TestServer, user: &str, token: &str) {
    let mut c = ImapClient::login(server.imap(), user, util::PASSWORD).await;
    let r = c.command(&format!("SETMETADATA \"INBOX\" (/private/devicetoken \"{token}\")")).await;
    assert!(r.ok(), "{r:?}");
}

async fn deliver(server: &TestServer, to: &str, n: usize) {
    let mut smtp = SmtpClient::connect(server.smtp()).await;
    let r = smtp.send("sender@remote.test", &[to], &util::message(n, to)).await;
    assert!(r.starts_with("250"), "{r}");
}

async fn tokens(server: &TestServer, user: &str) -> String {
    let mut c = ImapClient::login(server.imap(), user, util::PASSWORD).await;
    let r = c.command("GETMETADATA \"INBOX\" (/private/devicetoken)").await;
    assert!(r.ok(), "{r:?}");
    r.text()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deltachat_xdeltapush_only_when_notify_url_is_set() {
    let proxy = NotifyProxy::start().await;
    for (with_push, server) in [(false, start(None, |_| {}).await), (true, start(Some(&proxy), |_| {}).await)] {
        let mut c = ImapClient::connect(server.imap()).await;
        let r = c.command("CAPABILITY").await;
        assert!(!r.text().contains("XDELTAPUSH"), "never before login: {}", r.text());
        let r = c.command(&format!("LOGIN \"{ALICE}\" \"{}\"", util::PASSWORD)).await;
        // Delta Chat reads the list from the LOGIN OK's [CAPABILITY ...] code (D1).
        assert_eq!(r.status.contains(" XDELTAPUSH"), with_push, "{}", r.status);
        let r = c.command("CAPABILITY").await;
        assert_eq!(r.text().contains(" XDELTAPUSH"), with_push, "{}", r.text());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deltachat_registration_and_metadata_commands_as_delta_chat_sends_them() {
    let proxy = NotifyProxy::start().await;
    let server = start(Some(&proxy), |c| {
        c.deltachat.iroh_relay = "https://iroh.example.org/".into();
        c.deltachat.turn_server = "turn.example.org:3478".into();
        c.deltachat.turn_secret = "north".into();
        c.deltachat.max_smtp_recipients = 1000;
    })
    .await;
    let mut c = ImapClient::login(server.imap(), ALICE, util::PASSWORD).await;
    // D3, byte for byte as chatmail core's update_metadata sends it.
    let r = c
        .command(
            "GETMETADATA \"\" (/shared/comment /shared/admin /shared/vendor/deltachat/irohrelay \
             /shared/vendor/deltachat/turn /shared/vendor/deltachat/maxsmtprecipients \
             /shared/vendor/deltachat/appversions)",
        )
        .await;
    assert!(r.ok(), "{r:?}");
    let text = r.text();
    assert_eq!(text.lines().count(), 1, "one METADATA line: {text}");
    assert!(text.starts_with("* METADATA \"\" (/shared/comment NIL /shared/admin NIL "), "{text}");
    assert!(text.contains("/shared/vendor/deltachat/irohrelay \"https://iroh.example.org/\""), "{text}");
    assert!(text.contains("/shared/vendor/deltachat/maxsmtprecipients \"1000\""), "{text}");
    assert!(text.ends_with("/shared/vendor/deltachat/appversions NIL)\r\n"), "{text}");
    // turn: host:port:<expiry>:<password>, the form chatmail core parses.
    let turn = text.split("/shared/vendor/deltachat/turn \"").nth(1).unwrap().split('"').next().unwrap();
    let parts: Vec<&str> = turn.splitn(4, ':').collect();
    assert_eq!(&parts[..2], &["turn.example.org", "3478"], "{turn}");
    let expiry: i64 = parts[2].parse().unwrap();
    assert!(expiry > crate::coi_webpush::now_unix() + 3600, "{turn}");
    assert_eq!(parts[3].len(), 28, "base64 of an HMAC-SHA1: {turn}");
    // Server /shared entries are the administrator's.
    let r = c.command("SETMETADATA \"\" (/shared/vendor/deltachat/maxsmtprecipients \"5\")").await;
    assert!(r.status.contains("NO [NOPERM]"), "{r:?}");

    // D4 as chatmail core 2.x sends it (quoted), and as older cores sent it (LITERAL+).
    let r = c.command(&format!("SETMETADATA \"INBOX\" (/private/devicetoken \"{PHONE}\")")).await;
    assert!(r.ok(), "{r:?}");
    let tag = c.tag();
    c.send_raw(
        format!("{tag} SETMETADATA \"INBOX\" (/private/devicetoken {{{}+}}\r\n{TABLET})\r\n", TABLET.len()).as_bytes(),
    )
    .await;
    let r = c.until_tagged(&tag).await;
    assert!(r.ok(), "{r:?}");
    // Resent on every reconnect: still one entry per device.
    register(&server, ALICE, PHONE).await;
    // Read back as chatmail answers: every device's token, space-separated.
    let r = c.command("GETMETADATA \"INBOX\" (/private/devicetoken)").await;
    assert!(r.ok(), "{r:?}");
    assert_eq!(r.text(), format!("* METADATA \"INBOX\" (/private/devicetoken \"{PHONE} {TABLET}\")\r\n"));
    // Per account, and a mailbox entry of INBOX only.
    assert!(tokens(&server, BOB).await.contains("/private/devicetoken NIL"));
    let r = c.command("GETMETADATA \"\" (/private/devicetoken)").await;
    assert!(r.text().contains("/private/devicetoken NIL"), "{r:?}");
    // NIL removes the entry (RFC 5464 §4.3): every token.
    let r = c.command("SETMETADATA \"INBOX\" (/private/devicetoken NIL)").await;
    assert!(r.ok(), "{r:?}");
    assert!(tokens(&server, ALICE).await.contains("/private/devicetoken NIL"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deltachat_delivery_posts_each_device_token_once() {
    let mut proxy = NotifyProxy::start().await;
    let server = start(Some(&proxy), |_| {}).await;
    // No token yet: nothing to send.
    deliver(&server, ALICE, 1).await;
    proxy.none_for(QUIET).await;

    register(&server, ALICE, PHONE).await;
    deliver(&server, ALICE, 2).await;
    let post = proxy.next(WAIT).await;
    assert_eq!((post.method.as_str(), post.path.as_str(), post.body.as_str()), ("POST", "/notify", PHONE));
    proxy.none_for(QUIET).await;

    // A second device: two POSTs per delivery, one per token; bob's mail wakes neither.
    register(&server, ALICE, TABLET).await;
    deliver(&server, ALICE, 3).await;
    let mut bodies = vec![proxy.next(WAIT).await.body, proxy.next(WAIT).await.body];
    bodies.sort();
    let mut want = vec![PHONE.to_owned(), TABLET.to_owned()];
    want.sort();
    assert_eq!(bodies, want);
    deliver(&server, BOB, 4).await;
    proxy.none_for(QUIET).await;
    // A device's own sent copy (From: the user) wakes nobody, as in chatmail.
    let own = format!("From: <{}>\r\nTo: {ALICE}\r\nSubject: self\r\n\r\nmine\r\n", ALICE.to_uppercase());
    let mut smtp = SmtpClient::connect(server.smtp()).await;
    assert!(smtp.send("sender@remote.test", &[ALICE], own.as_bytes()).await.starts_with("250"));
    proxy.none_for(QUIET).await;

    // chatmail pushes for deliveries only: an APPEND (the client's own) wakes nobody.
    let mut c = ImapClient::login(server.imap(), ALICE, util::PASSWORD).await;
    let msg = util::message(5, ALICE);
    let tag = c.tag();
    c.send_raw(format!("{tag} APPEND INBOX {{{}+}}\r\n", msg.len()).as_bytes()).await;
    c.send_raw(&msg).await;
    c.send_raw(b"\r\n").await;
    assert!(c.until_tagged(&tag).await.ok());
    proxy.none_for(QUIET).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deltachat_chat_filed_into_coi_chats_is_pushed() {
    let mut proxy = NotifyProxy::start().await;
    let server = start(Some(&proxy), |_| {}).await;
    register(&server, ALICE, PHONE).await;
    let mut c = ImapClient::login(server.imap(), ALICE, util::PASSWORD).await;
    crate::coi_webpush::enable_coi(&mut c).await;
    let mut smtp = SmtpClient::connect(server.smtp()).await;
    let r = smtp.send("bob@remote.test", &[ALICE], crate::coi_webpush::chat(1).as_bytes()).await;
    assert!(r.starts_with("250"), "{r}");
    assert_eq!(crate::coi_webpush::uids(&mut c, "COI/Chats").await.1.len(), 1, "COI filed it");
    assert_eq!(proxy.next(WAIT).await.body, PHONE);
    proxy.none_for(QUIET).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deltachat_gone_token_is_deleted_and_never_sent_again() {
    let mut proxy = NotifyProxy::start().await;
    let server = start(Some(&proxy), |_| {}).await;
    register(&server, ALICE, PHONE).await;
    register(&server, ALICE, TABLET).await;
    proxy.script(&[410]);
    deliver(&server, ALICE, 1).await;
    let gone = proxy.next(WAIT).await.body;
    let kept = proxy.next(WAIT).await.body;
    proxy.none_for(QUIET).await;
    // Deleted once the proxy said so (durably, before anything else reads it).
    let deadline = Instant::now() + WAIT;
    while tokens(&server, ALICE).await.contains(&gone) {
        assert!(Instant::now() < deadline, "the gone token is still stored");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(tokens(&server, ALICE).await.contains(&kept));
    deliver(&server, ALICE, 2).await;
    assert_eq!(proxy.next(WAIT).await.body, kept);
    proxy.none_for(QUIET).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deltachat_server_errors_are_retried_with_backoff() {
    let mut proxy = NotifyProxy::start().await;
    // Retry n waits 100 ms * 8^(n-1): 100 ms, then 800 ms.
    let server = start(Some(&proxy), |_| {}).await;
    register(&server, ALICE, PHONE).await;
    proxy.script(&[503, 500]);
    deliver(&server, ALICE, 1).await;
    let first = proxy.next(WAIT).await;
    let second = proxy.next(WAIT).await;
    let third = proxy.next(WAIT).await;
    assert!([&first, &second, &third].iter().all(|p| p.body == PHONE));
    let (gap1, gap2) = (second.arrived - first.arrived, third.arrived - second.arrived);
    assert!(gap1 >= Duration::from_millis(100) && gap1 < Duration::from_millis(700), "{gap1:?}");
    assert!(gap2 >= Duration::from_millis(800), "{gap2:?}");
    // 200: done, no more.
    proxy.none_for(QUIET).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deltachat_retries_stop_at_the_deadline() {
    let mut proxy = NotifyProxy::start().await;
    // 100 ms, 800 ms, 6.4 s: the third retry would start past a 2 s deadline.
    let server = start(Some(&proxy), |c| c.deltachat.notify_deadline_secs = 2).await;
    register(&server, ALICE, PHONE).await;
    proxy.script(&[502, 502, 502, 502]);
    deliver(&server, ALICE, 1).await;
    for _ in 0..3 {
        assert_eq!(proxy.next(WAIT).await.body, PHONE);
    }
    proxy.none_for(Duration::from_secs(2)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deltachat_stalled_proxy_delays_no_delivery() {
    let mut proxy = NotifyProxy::start().await;
    let server = start(Some(&proxy), |c| {
        c.deltachat.notify_workers = 2;
        c.deltachat.notify_queue = 4;
    })
    .await;
    register(&server, ALICE, PHONE).await;
    register(&server, ALICE, TABLET).await;
    register(&server, BOB, PHONE).await;
    let stall = proxy.stall();

    let mut idle = ImapClient::login(server.imap(), ALICE, util::PASSWORD).await;
    let r = idle.command("SELECT INBOX").await;
    assert!(r.ok() && exists(&r.text()) == Some(0), "{r:?}");
    let tag = idle.tag();
    idle.send_raw(format!("{tag} IDLE\r\n").as_bytes()).await;
    assert!(idle.read_line().await.starts_with(b"+ "));
    let mut smtp = SmtpClient::connect(server.smtp()).await;
    for n in 1..=20u32 {
        let started = Instant::now();
        let r = smtp.send("sender@remote.test", &[ALICE, BOB], &util::message(n as usize, ALICE)).await;
        assert!(r.starts_with("250"), "{r}");
        let acked = started.elapsed();
        let line = String::from_utf8_lossy(&idle.read_line().await).into_owned();
        assert_eq!(line.trim_end(), format!("* {n} EXISTS"));
        let _recent = idle.read_line().await;
        // The proxy answers nothing; delivery and IDLE do not wait for it.
        assert!(acked < Duration::from_secs(2) && started.elapsed() < Duration::from_secs(2), "{n}: {acked:?}");
        assert!(smtp.cmd("RSET").await.starts_with("250"));
    }
    // Two workers hold two requests open; nothing else went out.
    let held = [proxy.next(WAIT).await, proxy.next(WAIT).await];
    proxy.none_for(QUIET).await;
    drop(stall);
    // Released: the queue (bounded at 4, the rest dropped) drains, then stops.
    let mut after = 0;
    while tokio::time::timeout(Duration::from_secs(2), proxy.next(WAIT)).await.is_ok() {
        after += 1;
    }
    assert!(after <= 2, "at most the queue's other two: {after} ({held:?})");
    idle.send_raw(b"DONE\r\n").await;
    assert!(idle.until_tagged(&tag).await.ok());
}

/// `coimail user add --dclogin` against the running server, through its admin
/// socket, with a config naming the ports it really listens on; returns
/// (stdout, the URI).
async fn dclogin_via_cli(server: &TestServer, proxy: &NotifyProxy, address: &str) -> (String, String) {
    let mut config = crate::util::server::test_config(server.dir.path());
    config.server.hostname = "127.0.0.1".into();
    let a = server.addrs();
    (config.listen.imap, config.listen.imaps) = (a.imap.clone(), a.imaps.clone());
    (config.listen.submission, config.listen.submissions) = (a.submission.clone(), a.submissions.clone());
    config.listen.smtp = a.smtp.clone();
    config.deltachat.notify_url = proxy.url();
    let path = server.dir.path().join("coimail.toml");
    std::fs::write(&path, toml::to_string(&config).unwrap()).unwrap();
    let address = address.to_owned();
    let (ok, stdout, stderr) = tokio::task::spawn_blocking(move || {
        let args = ["user", "add", "--dclogin", "--accept-invalid-certificates", &address];
        crate::util::server::cli(&path, &args, Some(util::PASSWORD))
    })
    .await
    .unwrap();
    assert!(ok, "{stdout}\n{stderr}");
    assert!(stderr.contains("hold the password"), "{stderr}");
    let uri = stdout.lines().find(|l| l.starts_with("dclogin:")).unwrap_or_else(|| panic!("{stdout}")).to_owned();
    (stdout, uri)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deltachat_cli_dclogin_names_the_real_servers() {
    let proxy = NotifyProxy::start().await;
    let server = start(Some(&proxy), |_| {}).await;
    let (stdout, uri) = dclogin_via_cli(&server, &proxy, "carol@example.org").await;
    let a = server.addrs();
    let pw = util::PASSWORD.replace(' ', "%20");
    assert_eq!(
        uri,
        format!(
            "dclogin:carol@example.org?p={pw}&v=1&ih=127.0.0.1&ip={}&is=ssl&sh=127.0.0.1&sp={}&ss=ssl&ic=3",
            a.imaps[0].port(),
            a.submissions[0].port()
        )
    );
    // The QR code follows: half-block rows of equal width.
    let rows: Vec<&str> = stdout.lines().skip_while(|l| !l.starts_with("dclogin:")).skip(1).collect();
    assert!(rows.len() > 20 && rows.iter().all(|r| r.chars().count() == rows[0].chars().count()), "{stdout}");
    // The user exists and logs in with the password.
    ImapClient::login(server.imap(), "carol@example.org", util::PASSWORD).await;
}

/// Real Delta Chat: configured from the URI the CLI printed, it exchanges
/// messages, and its account's device token reaches the proxy on delivery.
/// deltachat-rpc-server 2.65 has no JSON-RPC call that hands core a device
/// token (core's `set_push_device_token` is the apps' Rust API), so the token
/// is stored the way core's `register_token` stores it, over IMAP.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deltachat_configured_from_cli_dclogin_gets_pushes() {
    if std::env::var("COIMAIL_EXTERNAL").as_deref() != Ok("1") {
        eprintln!("skipped: run tests/run.sh (COIMAIL_EXTERNAL=1) for the Delta Chat interop test");
        return;
    }
    let mut proxy = NotifyProxy::start().await;
    let server = start(Some(&proxy), |_| {}).await;
    let (_, uri) = dclogin_via_cli(&server, &proxy, "carol@example.org").await;
    register(&server, "carol@example.org", PHONE).await;
    let accounts = tempfile::tempdir().unwrap();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/external/deltachat_dclogin.py");
    let run = tokio::process::Command::new(crate::external::python())
        .arg(script)
        .arg(&uri)
        .arg("127.0.0.1")
        .arg(server.imap().port().to_string())
        .arg(server.addrs().submission[0].port().to_string())
        .arg(ALICE)
        .arg(util::PASSWORD)
        .arg(accounts.path())
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(300), run)
        .await
        .expect("Delta Chat took over 5 minutes")
        .expect("python3 with deltachat-rpc-client must be installed (tests/run.sh)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "Delta Chat failed:\n{stdout}\n{stderr}");
    assert!(stdout.contains("deltachat dclogin ok"), "{stdout}");
    // Alice's message to carol woke carol's device; alice has no token.
    let post = proxy.next(WAIT).await;
    assert_eq!(post.body, PHONE);
    while let Ok(post) = tokio::time::timeout(QUIET, proxy.next(WAIT)).await {
        assert_eq!(post.body, PHONE, "only carol's token is ever sent");
    }
}

/// A bounce the queue files into a sender's INBOX wakes their devices like
/// any new mail (chatmail's notifier hears of every INBOX delivery): Alice
/// writes to a domain that takes no mail (RFC 7505 null MX), and her phone
/// gets one push for the bounce.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deltachat_a_bounce_into_the_inbox_is_pushed() {
    let mut proxy = NotifyProxy::start().await;
    let dns = TestDns::start(Zone::default().mx("nomail.test", 0, "")).await;
    let server = start(Some(&proxy), |c| c.queue.resolvers = vec![dns.addr]).await;
    register(&server, ALICE, PHONE).await;
    let message = format!("From: <{ALICE}>\r\nTo: <x@nomail.test>\r\nSubject: lost\r\n\r\nhello\r\n");
    let r = submit(server.addrs().submission[0], ALICE, &["x@nomail.test"], message.as_bytes()).await;
    assert!(r.starts_with("250"), "{r}");
    let post = proxy.next(WAIT).await;
    assert_eq!((post.path.as_str(), post.body.as_str()), ("/notify", PHONE));
    proxy.none_for(QUIET).await;
    let mut c = ImapClient::login(server.imap(), ALICE, util::PASSWORD).await;
    let r = c.command("SELECT INBOX").await;
    assert_eq!(exists(&r.text()), Some(1), "the bounce is what woke the phone: {}", r.text());
}
