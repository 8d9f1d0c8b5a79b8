//! `/new`, chatmail's account endpoint behind `DCACCOUNT:` QR codes
//! (docs/chatmail.md), over real HTTPS: the account it answers logs in over
//! IMAP and SMTP, the per-peer allowance it shares with creation on login,
//! 404 while it is off, the browser redirect that creates nothing, and
//! `coimail chatmail invite`.

use crate::util::http::{Response, request};
use crate::util::mailhost::base64;
use crate::util::server::test_config;
use crate::util::sts::TestCa;
use crate::util::{self, ImapClient, SmtpClient, TestServer};
use coimail_daemon::Config;
use std::net::SocketAddr;

/// A server whose certificate, for the mail host and the domain, comes from
/// a test CA; returns the CA's PEM.
async fn start(edit: impl FnOnce(&mut Config)) -> (TestServer, String) {
    let ca = TestCa::new();
    let leaf = ca.leaf(&["mail.example.org", "example.org"]);
    let server = TestServer::start_with(&[], |c| {
        leaf.write(&c.tls.cert, &c.tls.key);
        c.chatmail.enabled = true;
        edit(c);
    })
    .await;
    (server, ca.pem())
}

/// `method` on the HTTPS listener, the certificate verified for `host`.
async fn new(s: &TestServer, ca: &str, method: &str, host: &str, path: &str) -> Response {
    request(s.addrs().https[0], Some((ca, host)), method, host, path, "").await
}

/// What Delta Chat reads from a 200 (chatmail core `CreateAccountSuccessResponse`).
fn credentials(r: &Response) -> (String, String) {
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.header("content-type"), Some("application/json"), "{r:?}");
    assert_eq!(r.header("cache-control"), Some("no-store"), "{r:?}");
    let v: serde_json::Value = serde_json::from_str(&r.body).unwrap();
    let (email, password) = (v["email"].as_str().unwrap(), v["password"].as_str().unwrap());
    (email.to_owned(), password.to_owned())
}

fn users(s: &TestServer) -> Vec<String> {
    s.running.as_ref().unwrap().directory().list_users().unwrap().into_iter().map(|a| a.address).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn post_new_makes_an_account_that_logs_in_over_imap_and_smtp() {
    let (s, ca) = start(|_| {}).await;
    let (email, password) = credentials(&new(&s, &ca, "POST", "example.org", "/new").await);
    let (local, domain) = email.split_once('@').unwrap();
    assert_eq!(domain, "example.org");
    assert!(local.len() == 9 && local.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit()), "{local}");
    assert!(password.len() >= 24 && password.bytes().all(|b| b.is_ascii_alphanumeric()), "{password}");
    assert_eq!(users(&s), std::slice::from_ref(&email));

    let mut imap = ImapClient::connect(s.imap()).await;
    let login = imap.command(&format!("LOGIN \"{email}\" \"{password}\"")).await;
    assert!(login.ok(), "{}", login.text());
    assert!(imap.command("SELECT INBOX").await.ok());
    let mut smtp = SmtpClient::connect(s.addrs().submission[0]).await;
    smtp.cmd("EHLO laptop.test").await;
    let auth = smtp.cmd(&format!("AUTH PLAIN {}", base64(format!("\0{email}\0{password}").as_bytes()))).await;
    assert!(auth.starts_with("235"), "{auth}");
    // Creation on login is off: a made-up name with a password gets nowhere.
    let mut other = ImapClient::connect(s.imap()).await;
    assert!(!other.command("LOGIN \"abcdefghi@example.org\" \"long password\"").await.ok());

    // Sent to the mail host (the URI `coimail chatmail invite` prints), the
    // account goes in the one domain served; chatmail's old path works too.
    let (second, _) = credentials(&new(&s, &ca, "POST", "mail.example.org", "/cgi-bin/newemail.py").await);
    assert!(second.ends_with("@example.org") && second != email, "{second}");
    assert_eq!(users(&s).len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_browser_get_is_sent_on_to_delta_chat_and_creates_nothing() {
    let (s, ca) = start(|_| {}).await;
    let r = new(&s, &ca, "GET", "example.org", "/new").await;
    assert_eq!(r.status, 301, "{r:?}");
    let port = s.addrs().https[0].port();
    assert_eq!(r.header("location"), Some(format!("dcaccount:https://example.org:{port}/new").as_str()));
    assert!(users(&s).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_accounts_are_limited_per_peer_together_with_creation_on_login() {
    let (s, ca) = start(|c| {
        c.chatmail.accounts_per_ip_per_hour = 3;
        c.chatmail.create_accounts_on_login = true;
    })
    .await;
    credentials(&new(&s, &ca, "POST", "example.org", "/new").await);
    let mut c = ImapClient::connect(s.imap()).await;
    assert!(c.command("LOGIN \"abcdefghi@example.org\" \"long password\"").await.ok(), "created on login");
    credentials(&new(&s, &ca, "POST", "example.org", "/new").await);
    // The allowance is spent: Delta Chat shows the reason.
    let r = new(&s, &ca, "POST", "example.org", "/new").await;
    assert_eq!(r.status, 429, "{r:?}");
    let v: serde_json::Value = serde_json::from_str(&r.body).unwrap();
    assert!(v["reason"].as_str().unwrap().contains("too many accounts"), "{r:?}");
    let mut c = ImapClient::connect(s.imap()).await;
    assert!(c.command("LOGIN \"jklmnopqr@example.org\" \"long password\"").await.status.contains("NO [UNAVAILABLE]"));
    assert_eq!(users(&s).len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_is_404_when_off() {
    let offs: [fn(&mut Config); 2] = [|c| c.chatmail.enabled = false, |c| c.chatmail.new_account_endpoint = false];
    for edit in offs {
        let (s, ca) = start(edit).await;
        for method in ["POST", "GET"] {
            let r = new(&s, &ca, method, "example.org", "/new").await;
            assert_eq!(r.status, 404, "{method}: {r:?}");
        }
        assert!(users(&s).is_empty());
    }
    // On, but for a domain not served here and more than one domain served.
    let (s, ca) = start(|_| {}).await;
    s.running.as_ref().unwrap().directory().add_domain("example.net").await.unwrap();
    assert_eq!(new(&s, &ca, "POST", "mail.example.org", "/new").await.status, 404);
    assert!(users(&s).is_empty());
    let (email, _) = credentials(&new(&s, &ca, "POST", "example.org", "/new").await);
    assert!(email.ends_with("@example.org"), "the host names the domain: {email}");
}

/// `coimail chatmail invite` prints the URI and its QR code (the server
/// need not run: it reads the config).
#[test]
fn the_cli_prints_the_dcaccount_invite() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(dir.path());
    config.listen.https = vec![SocketAddr::from(([127, 0, 0, 1], 1443))];
    let path = dir.path().join("coimail.toml");
    std::fs::write(&path, toml::to_string(&config).unwrap()).unwrap();
    let (ok, _, err) = util::server::cli(&path, &["chatmail", "invite"], None);
    assert!(!ok && err.contains("[chatmail] enabled"), "{err}");
    config.chatmail.enabled = true;
    std::fs::write(&path, toml::to_string(&config).unwrap()).unwrap();
    let (ok, out, err) = util::server::cli(&path, &["chatmail", "invite"], None);
    assert!(ok, "{err}");
    let mut lines = out.lines();
    assert_eq!(lines.next(), Some("DCACCOUNT:https://mail.example.org:1443/new"));
    assert!(lines.filter(|l| l.contains('█') || l.contains('▀') || l.contains('▄')).count() > 10, "{out}");
}

/// Runs in the namespace after coimail is up (`util::namespace`): Delta
/// Chat, then the users the server has.
const NAMESPACE_SCRIPT: &str = r#""$PYTHON" "$SCRIPT" "$URI" "$HOST" "$DIR/accounts"
echo "users:"
"$COIMAIL" --config "$DIR/coimail.toml" user list
"#;

/// Real Delta Chat scans the invite `coimail chatmail invite` prints: its
/// QR parser reads it as an account invite, and its HTTP client POSTs to
/// `/new` over TLS, which makes an account, whose address Delta Chat then
/// sets up.
///
/// Certificates: Delta Chat checks HTTPS against the Mozilla roots compiled
/// into it, except for host names starting with `_`, which it takes with
/// any certificate valid for the name (chatmail core
/// `src/net/tls/danger.rs`, for self-signed relays). So the invite names
/// `_new.coimail.test` (`--host`), which a hosts file in a namespace of the
/// test's own points at the server. Setting the account up then fails, and
/// is not what this tests: Delta Chat checks the mail host's certificate
/// against its roots too, and coimail's host names cannot start with `_`.
/// Its error names the guessed mail host in the account's domain, which
/// only the JSON answer gave it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deltachat_scans_the_invite_and_gets_an_account_from_new() {
    if let Some(why) = util::namespace::unavailable() {
        eprintln!("skipped: {why}");
        return;
    }
    const DOMAIN: &str = "coimail.test";
    const HOST: &str = "_new.coimail.test";
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let ca = TestCa::new();
    let mail = format!("mail.{DOMAIN}");
    ca.leaf(&[mail.as_str(), DOMAIN, HOST]).write(&d.join("tls/cert.pem"), &d.join("tls/key.pem"));
    std::fs::write(d.join("hosts"), format!("127.0.0.1 localhost {mail} {DOMAIN} {HOST}\n")).unwrap();
    let mut config = test_config(d);
    config.server.hostname = mail.clone();
    config.chatmail.enabled = true;
    config.listen.https = vec![SocketAddr::from(([127, 0, 0, 1], 443))];
    let config_path = d.join("coimail.toml");
    std::fs::write(&config_path, toml::to_string(&config).unwrap()).unwrap();
    let (ok, _, err) = util::server::cli(&config_path, &["domain", "add", DOMAIN], None);
    assert!(ok, "{err}");
    let (ok, out, err) = util::server::cli(&config_path, &["chatmail", "invite", "--host", HOST], None);
    assert!(ok, "{err}");
    let uri = out.lines().next().unwrap().to_owned();
    assert_eq!(uri, format!("DCACCOUNT:https://{HOST}/new"));

    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/external/deltachat_dcaccount.py");
    let env = [("SCRIPT", script), ("URI", uri.as_str()), ("HOST", HOST)];
    let (stdout, log) = util::namespace::run(d, NAMESPACE_SCRIPT, &env).await;
    assert!(stdout.contains("invite read:") && stdout.contains("deltachat dcaccount done"), "{stdout}");
    let (_, users) = stdout.split_once("users:\n").unwrap();
    let users: Vec<&str> = users.lines().filter(|l| l.contains('@')).collect();
    assert_eq!(users.len(), 1, "Delta Chat's POST made one account: {stdout}\n{log}");
    assert!(users[0].contains(&format!("@{DOMAIN}")), "{users:?}");
    assert!(log.contains("POST") && log.contains("/new"), "{log}");
    // Delta Chat went on with the address it was given: it looked for that
    // domain's mail host (not the invite's `_new.` host).
    let setup = stdout.lines().find(|l| l.starts_with("setup error:") || *l == "configured").unwrap_or_default();
    assert!(setup.replace(HOST, "").contains(DOMAIN), "{stdout}");
}
