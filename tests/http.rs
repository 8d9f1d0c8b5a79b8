//! The HTTP(S) listeners of the running daemon, with real requests: the
//! client documents parsed the way clients read them (Thunderbird's
//! `clientConfig` element by element, Outlook's Autodiscover answer, the
//! Apple profile through Python's plistlib), the MTA-STS policy against
//! what `coimail dns` prints, 404 for domains not served here, ACME HTTP-01
//! through a responder, and Delta Chat setting itself up from an address
//! and a password.

use crate::util::http::{Element, Response, request};
use crate::util::server::{ChildServer, test_config};
use crate::util::sts::TestCa;
use crate::util::{self, TestServer};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::io::{AsyncBufReadExt, BufReader};

/// The names a domain's clients and senders look up, all on the test certificate.
const NAMES: [&str; 5] =
    ["mail.example.org", "autoconfig.example.org", "example.org", "mta-sts.example.org", "autodiscover.example.org"];

/// A server whose certificate, for [`NAMES`], comes from a test CA; returns the CA's PEM.
async fn start(users: &[&str]) -> (TestServer, String) {
    let ca = TestCa::new();
    let leaf = ca.leaf(&NAMES);
    let server = TestServer::start_with(users, |c| leaf.write(&c.tls.cert, &c.tls.key)).await;
    (server, ca.pem())
}

/// A request to the HTTPS listener, the certificate verified for `host`.
async fn https(s: &TestServer, ca: &str, method: &str, host: &str, path: &str, body: &str) -> Response {
    request(s.addrs().https[0], Some((ca, host)), method, host, path, body).await
}

async fn http(s: &TestServer, host: &str, path: &str) -> Response {
    request(s.addrs().http[0], None, "GET", host, path, "").await
}

/// Checks Thunderbird's `incomingServer`/`outgoingServer` elements field by field.
fn check_servers(servers: &[&Element], kind: &str, expected: &[(u16, &str)]) {
    assert_eq!(servers.len(), expected.len(), "{servers:#?}");
    for (s, (port, socket)) in servers.iter().zip(expected) {
        assert_eq!(s.attr("type"), Some(kind));
        assert_eq!(s.get("hostname"), "mail.example.org");
        assert_eq!(s.get("port"), port.to_string());
        assert_eq!(s.get("socketType"), *socket);
        assert_eq!(s.get("username"), "%EMAILADDRESS%");
        assert_eq!(s.get("authentication"), "password-cleartext");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn autoconfig_lists_every_listener_with_its_port_and_security() {
    let (s, ca) = start(&["carol@example.org"]).await;
    let a = s.addrs().clone();
    let incoming = [(a.imaps[0].port(), "SSL"), (a.imap[0].port(), "STARTTLS")];
    let outgoing = [(a.submissions[0].port(), "SSL"), (a.submission[0].port(), "STARTTLS")];
    let query = "/mail/config-v1.1.xml?emailaddress=carol%40example.org";
    for (tls, host, path) in [
        (true, "autoconfig.example.org", query),
        (true, "example.org", "/.well-known/autoconfig/mail/config-v1.1.xml"),
        (true, "autoconfig.example.org", "/mail/config-v1.1.xml"),
        // Thunderbird asks over plain HTTP too.
        (false, "autoconfig.example.org", query),
    ] {
        let r = if tls { https(&s, &ca, "GET", host, path, "").await } else { http(&s, host, path).await };
        assert_eq!(r.status, 200, "{host}{path}: {r:?}");
        assert!(r.header("content-type").unwrap().starts_with("application/xml"), "{r:?}");
        let doc = Element::parse(&r.body);
        assert_eq!((doc.name.as_str(), doc.attr("version")), ("clientConfig", Some("1.1")));
        let provider = doc.child("emailProvider");
        assert_eq!(provider.attr("id"), Some("example.org"));
        assert_eq!(provider.get("domain"), "example.org");
        check_servers(&provider.all("incomingServer"), "imap", &incoming);
        check_servers(&provider.all("outgoingServer"), "smtp", &outgoing);
    }
    // What it names works: IMAPS answers on that port, with a certificate
    // valid for the host name it gives.
    let tcp = tokio::net::TcpStream::connect(a.imaps[0]).await.unwrap();
    let name = tokio_rustls::rustls::pki_types::ServerName::try_from("mail.example.org").unwrap();
    let tls = util::http::connector(&ca).connect(name, tcp).await.unwrap();
    let mut greeting = String::new();
    BufReader::new(tls).read_line(&mut greeting).await.unwrap();
    assert!(greeting.starts_with("* OK"), "{greeting}");
}

const OUTLOOK_REQUEST: &str = r#"<?xml version="1.0" encoding="utf-8"?>
<Autodiscover xmlns="http://schemas.microsoft.com/exchange/autodiscover/outlook/requestschema/2006">
  <Request>
    <EMailAddress>carol@example.org</EMailAddress>
    <AcceptableResponseSchema>http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a</AcceptableResponseSchema>
  </Request>
</Autodiscover>
"#;

/// What iOS sends (ActiveSync's schema); answered with the IMAP settings too.
const MOBILESYNC_REQUEST: &str = r#"<?xml version="1.0" encoding="utf-8"?>
<Autodiscover xmlns="http://schemas.microsoft.com/exchange/autodiscover/mobilesync/requestschema/2006">
<Request><EMailAddress>carol@Example.ORG</EMailAddress><AcceptableResponseSchema>http://schemas.microsoft.com/exchange/autodiscover/mobilesync/responseschema/2006</AcceptableResponseSchema></Request>
</Autodiscover>"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn autodiscover_answers_outlooks_request_with_imap_and_smtp() {
    let (s, ca) = start(&["carol@example.org"]).await;
    let a = s.addrs().clone();
    for (host, path, body) in [
        ("autodiscover.example.org", "/autodiscover/autodiscover.xml", OUTLOOK_REQUEST),
        ("example.org", "/Autodiscover/Autodiscover.xml", OUTLOOK_REQUEST),
        ("autodiscover.example.org", "/autodiscover/autodiscover.xml", MOBILESYNC_REQUEST),
    ] {
        let r = https(&s, &ca, "POST", host, path, body).await;
        assert_eq!(r.status, 200, "{r:?}");
        assert!(r.header("content-type").unwrap().starts_with("text/xml"), "{r:?}");
        let doc = Element::parse(&r.body);
        assert_eq!(doc.name, "Autodiscover");
        let response = doc.child("Response");
        assert_eq!(
            response.attr("xmlns"),
            Some("http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a")
        );
        let account = response.child("Account");
        assert_eq!((account.get("AccountType"), account.get("Action")), ("email".into(), "settings".into()));
        let protocols = account.all("Protocol");
        let expected = [
            ("IMAP", a.imaps[0].port(), "SSL"),
            ("IMAP", a.imap[0].port(), "TLS"),
            ("SMTP", a.submissions[0].port(), "SSL"),
            ("SMTP", a.submission[0].port(), "TLS"),
        ];
        assert_eq!(protocols.len(), expected.len(), "{}", r.body);
        for (p, (kind, port, encryption)) in protocols.iter().zip(expected) {
            assert_eq!(p.get("Type"), kind);
            assert_eq!(p.get("Server"), "mail.example.org");
            assert_eq!(p.get("Port"), port.to_string());
            assert_eq!(p.get("Encryption"), encryption);
            assert_eq!(p.get("SSL"), "on");
            assert_eq!(p.get("LoginName"), "carol@example.org", "the address canonical, from the request");
            assert_eq!((p.get("SPA"), p.get("AuthRequired")), ("off".into(), "on".into()));
        }
    }
    let r = https(&s, &ca, "POST", "example.org", "/autodiscover/autodiscover.xml", "<Autodiscover><Request>").await;
    assert_eq!(r.status, 400, "a body without an address");
    let r = https(&s, &ca, "GET", "example.org", "/autodiscover/autodiscover.xml", "").await;
    assert_eq!(r.status, 405);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_apple_profile_is_a_plist_with_the_account() {
    let (s, ca) = start(&["carol@example.org"]).await;
    let a = s.addrs().clone();
    let r = https(&s, &ca, "GET", "mail.example.org", "/apple/mail.mobileconfig?email=carol%40example.org", "").await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.header("content-type"), Some("application/x-apple-aspen-config"));
    assert!(r.header("content-disposition").unwrap().starts_with("attachment;"), "{r:?}");
    // Python's plistlib reads Apple's format strictly (and with the DTD line).
    let script = "import json,plistlib,sys; p=plistlib.loads(sys.stdin.buffer.read()); print(json.dumps(p))";
    let mut child = tokio::process::Command::new("python3")
        .args(["-c", script])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("python3");
    use tokio::io::AsyncWriteExt;
    child.stdin.take().unwrap().write_all(r.body.as_bytes()).await.unwrap();
    let out = child.wait_with_output().await.unwrap();
    assert!(out.status.success(), "not a plist: {}\n{}", String::from_utf8_lossy(&out.stderr), r.body);
    let plist: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(plist["PayloadType"], "Configuration");
    assert_eq!(plist["PayloadVersion"], 1);
    let mail = &plist["PayloadContent"][0];
    assert_eq!(mail["PayloadType"], "com.apple.mail.managed");
    assert_eq!(mail["EmailAccountType"], "EmailTypeIMAP");
    assert_eq!(mail["EmailAddress"], "carol@example.org");
    for side in ["Incoming", "Outgoing"] {
        assert_eq!(mail[format!("{side}MailServerHostName")], "mail.example.org");
        assert_eq!(mail[format!("{side}MailServerUsername")], "carol@example.org");
        assert_eq!(mail[format!("{side}MailServerUseSSL")], true);
        assert_eq!(mail[format!("{side}MailServerAuthentication")], "EmailAuthPassword");
    }
    assert_eq!(mail["IncomingMailServerPortNumber"], a.imaps[0].port());
    assert_eq!(mail["OutgoingMailServerPortNumber"], a.submissions[0].port());
    assert_ne!(plist["PayloadUUID"], mail["PayloadUUID"]);
    // A second download is the same profile (it replaces the installed one).
    let again =
        https(&s, &ca, "GET", "mail.example.org", "/apple/mail.mobileconfig?email=carol%40example.org", "").await;
    assert_eq!(again.body, r.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_mta_sts_policy_is_what_coimail_dns_publishes() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new();
    let leaf = ca.leaf(&NAMES);
    leaf.write(&dir.path().join("tls/cert.pem"), &dir.path().join("tls/key.pem"));
    let mut config = test_config(dir.path());
    config.mta_sts.mode = coimail_delivery::sts::Mode::Enforce;
    config.mta_sts.max_age_secs = 86_400;
    std::fs::write(dir.path().join("coimail.toml"), toml::to_string(&config).unwrap()).unwrap();
    let server = ChildServer::spawn(dir.path());
    let (ok, _, err) = server.cli(&["domain", "add", "example.org"], None);
    assert!(ok, "{err}");
    let addr = server.addrs().https[0];
    let ca = ca.pem();
    let r =
        request(addr, Some((&ca, "mta-sts.example.org")), "GET", "mta-sts.example.org", "/.well-known/mta-sts.txt", "")
            .await;
    assert_eq!(r.status, 200, "{r:?}");
    assert!(r.header("content-type").unwrap().starts_with("text/plain"), "{r:?}");
    // What a sending server's MTA-STS client makes of it (ours).
    let policy = coimail_delivery::sts::Policy::parse(&r.body).unwrap();
    assert_eq!(policy.mode, coimail_delivery::sts::Mode::Enforce);
    assert_eq!(policy.mx, vec!["mail.example.org".to_owned()]);
    assert_eq!(policy.max_age, 86_400);
    assert!(policy.matches("mail.example.org"));

    let (ok, zone, err) = server.cli(&["dns", "example.org"], None);
    assert!(ok, "{err}");
    // The policy `dns` shows, line by line, is the one served...
    let shown: Vec<&str> = zone.lines().filter_map(|l| l.strip_prefix(";   ")).collect();
    let served: Vec<&str> = r.body.lines().map(|l| l.trim_end_matches('\r')).collect();
    assert_eq!(shown, served, "{zone}");
    assert!(r.body.ends_with("\r\n") && !r.body.replace("\r\n", "").contains('\n'), "CRLF lines (RFC 8461 §3.2)");
    // ...and the record's id is the digest of exactly the bytes served.
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, r.body.as_bytes());
    let id: String = digest.as_ref()[..8].iter().map(|b| format!("{b:02x}")).collect();
    let record = format!("_mta-sts.example.org. 3600 IN TXT \"v=STSv1; id={id}\"");
    assert!(zone.lines().any(|l| l == record), "{record} not in:\n{zone}");

    for host in ["mta-sts.example.net", "example.org", "autoconfig.example.org"] {
        let r = request(addr, Some((&ca, "mta-sts.example.org")), "GET", host, "/.well-known/mta-sts.txt", "").await;
        assert_eq!(r.status, 404, "{host}: {r:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn domains_not_served_here_get_404() {
    let (s, ca) = start(&["carol@example.org"]).await;
    let other = OUTLOOK_REQUEST.replace("carol@example.org", "carol@example.net");
    for (method, host, path, body) in [
        ("GET", "autoconfig.example.net", "/mail/config-v1.1.xml", ""),
        ("GET", "autoconfig.example.org", "/mail/config-v1.1.xml?emailaddress=carol%40example.net", ""),
        ("GET", "example.net", "/.well-known/autoconfig/mail/config-v1.1.xml", ""),
        ("GET", "mail.example.org", "/.well-known/autoconfig/mail/config-v1.1.xml", ""),
        ("POST", "autodiscover.example.org", "/autodiscover/autodiscover.xml", other.as_str()),
        ("GET", "mail.example.org", "/apple/mail.mobileconfig?email=carol%40example.net", ""),
        ("GET", "mta-sts.example.net", "/.well-known/mta-sts.txt", ""),
        ("GET", "example.org", "/no/such/path", ""),
    ] {
        // The certificate is for our names; the Host header asks for another.
        let r = request(s.addrs().https[0], Some((&ca, "example.org")), method, host, path, body).await;
        assert_eq!(r.status, 404, "{method} {host}{path}: {r:?}");
        assert!(!r.body.contains("mail.example.org"), "{r:?}");
    }
    let r = http(&s, "autoconfig.example.net", "/mail/config-v1.1.xml").await;
    assert_eq!(r.status, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_http_redirects_to_https_and_shutdown_closes_open_connections() {
    let (mut s, ca) = start(&[]).await;
    let https_port = s.addrs().https[0].port();
    let r = http(&s, "example.org", "/some/page?x=1").await;
    assert_eq!(r.status, 308, "{r:?}");
    assert_eq!(r.header("location"), Some(format!("https://example.org:{https_port}/some/page?x=1").as_str()));
    // Kept-alive connections, one idle on each listener, do not hold up shutdown.
    let _idle_http = tokio::net::TcpStream::connect(s.addrs().http[0]).await.unwrap();
    let tcp = tokio::net::TcpStream::connect(s.addrs().https[0]).await.unwrap();
    let name = tokio_rustls::rustls::pki_types::ServerName::try_from("example.org").unwrap();
    let _idle_https = util::http::connector(&ca).connect(name, tcp).await.unwrap();
    let data = s.dir.path().join("data");
    tokio::time::timeout(std::time::Duration::from_secs(20), s.stop()).await.expect("shutdown finishes");
    assert!(data.join("clean-shutdown").exists(), "nothing was cut off");
}

struct Tokens(HashMap<String, String>);

impl coimail_http::Http01Responder for Tokens {
    fn key_authorization(&self, token: &str) -> Option<String> {
        self.0.get(token).cloned()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acme_http01_challenges_are_answered_through_the_responder() {
    let (s, _ca) = start(&[]).await;
    // The daemon has no ACME client yet: nothing to answer.
    let r =
        http(&s, "mail.example.org", "/.well-known/acme-challenge/LoqXcYV8q5ONbJQxbmR7SCTNo3tiAXDfowyjxAjEuX0").await;
    assert_eq!(r.status, 404, "{r:?}");

    // The plain HTTP listener as the daemon builds it, with a responder.
    let token = "LoqXcYV8q5ONbJQxbmR7SCTNo3tiAXDfowyjxAjEuX0";
    let key_authorization = format!("{token}.9jg46WB3rR_AHD-EBXdN7cBkH1WOu0tA3M9fm21mqTI");
    let config = coimail_http::HttpConfig {
        hostname: "mail.example.org".into(),
        services: coimail_http::MailServices::default(),
        mta_sts_policy: String::new(),
        https_port: None,
        max_connections: 10,
        max_connections_per_ip: 10,
    };
    let ctx = coimail_http::HttpContext::new(s.running.as_ref().unwrap().directory().clone(), None, config)
        .with_http01(Arc::new(Tokens(HashMap::from([(token.to_owned(), key_authorization.clone())]))));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr: SocketAddr = listener.local_addr().unwrap();
    let shutdown = tokio_util::sync::CancellationToken::new();
    let tracker = tokio_util::task::TaskTracker::new();
    tracker.spawn(coimail_http::serve(
        listener,
        coimail_http::HttpListener::Http,
        Arc::new(ctx),
        shutdown.clone(),
        tracker.clone(),
    ));
    let path = format!("/.well-known/acme-challenge/{token}");
    let r = request(addr, None, "GET", "autoconfig.example.org", &path, "").await;
    assert_eq!((r.status, r.body.as_str()), (200, key_authorization.as_str()), "{r:?}");
    let r = request(addr, None, "GET", "mail.example.org", "/.well-known/acme-challenge/unknownToken", "").await;
    assert_eq!(r.status, 404);
    let r = request(addr, None, "GET", "mail.example.org", "/.well-known/acme-challenge/..%2Fx", "").await;
    assert_eq!(r.status, 404);
    // No HTTPS listener to send the rest to.
    let r = request(addr, None, "GET", "mail.example.org", "/", "").await;
    assert_eq!(r.status, 404);
    shutdown.cancel();
}

/// Runs in the namespace after coimail is up (`util::namespace`): a
/// CA-checking client (curl, openssl) on the names and ports Delta Chat will
/// use, then Delta Chat.
const NAMESPACE_SCRIPT: &str = r#"curl -fsS --cacert "$DIR/ca.pem" "https://autoconfig.$DOMAIN/mail/config-v1.1.xml?emailaddress=$ADDR1" | grep -q "<hostname>mail.$DOMAIN</hostname>"
for port in 993 465; do
    openssl s_client -brief -verify_return_error -CAfile "$DIR/ca.pem" -verify_hostname "mail.$DOMAIN" \
        -servername "mail.$DOMAIN" -connect "mail.$DOMAIN:$port" </dev/null >"$DIR/s_client.log" 2>&1
done
echo "names and certificates ok"
"$PYTHON" "$SCRIPT" "$ADDR1" "$ADDR2" "$PASSWORD" "$DIR/accounts" "$EXPECTED" "$CHECKS"
"#;

/// Delta Chat configures two accounts from address and password alone: it
/// finds `autoconfig.<domain>` on 127.0.0.1:443 (a hosts file in a network
/// and mount namespace of the test's own), reads the servers from it, logs
/// in to them and exchanges a message.
///
/// Certificates: Delta Chat's strict mode checks only against the Mozilla
/// roots compiled into it (webpki-roots; chatmail/core `src/net/tls.rs`),
/// and no environment variable or trust store adds a private CA, so it runs
/// with `acceptInvalidCertificates`. The same names and ports are checked
/// with the test CA by curl and openssl in the namespace before it, so the
/// test still fails if a name Delta Chat uses has no valid certificate.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deltachat_sets_itself_up_from_address_and_password_by_autoconfig() {
    if let Some(why) = util::namespace::unavailable() {
        eprintln!("skipped: {why}");
        return;
    }
    const DOMAIN: &str = "coimail.test";
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let ca = TestCa::new();
    let names: Vec<String> =
        ["mail", "autoconfig", "mta-sts", "autodiscover"].iter().map(|n| format!("{n}.{DOMAIN}")).collect();
    let mut all: Vec<&str> = names.iter().map(String::as_str).collect();
    all.push(DOMAIN);
    ca.leaf(&all).write(&d.join("tls/cert.pem"), &d.join("tls/key.pem"));
    std::fs::write(d.join("ca.pem"), ca.pem()).unwrap();
    std::fs::write(d.join("hosts"), format!("127.0.0.1 localhost {} {DOMAIN}\n", names.join(" "))).unwrap();

    let mut config = test_config(d);
    config.server.hostname = format!("mail.{DOMAIN}");
    let at = |port: u16| vec![SocketAddr::from(([127, 0, 0, 1], port))];
    let l = &mut config.listen;
    (l.imap, l.imaps, l.smtp, l.submission, l.submissions, l.https, l.http) =
        (at(143), at(993), at(25), at(587), at(465), at(443), at(80));
    let config_path = d.join("coimail.toml");
    std::fs::write(&config_path, toml::to_string(&config).unwrap()).unwrap();
    let (addr1, addr2) = (format!("alice@{DOMAIN}"), format!("bob@{DOMAIN}"));
    // Set up with the server stopped: the CLI opens the store itself.
    let (ok, _, err) = util::server::cli(&config_path, &["domain", "add", DOMAIN], None);
    assert!(ok, "{err}");
    for a in [&addr1, &addr2] {
        let (ok, _, err) = util::server::cli(&config_path, &["user", "add", a], Some(&format!("{}\n", util::PASSWORD)));
        assert!(ok, "{err}");
    }

    let h = format!("mail.{DOMAIN}");
    let expected = format!("imap:[{h}:993:tls, {h}:143:starttls] smtp:[{h}:465:tls, {h}:587:starttls]");
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/external/deltachat_autoconfig.py");
    let env = [
        ("SCRIPT", script),
        ("DOMAIN", DOMAIN),
        ("ADDR1", &addr1),
        ("ADDR2", &addr2),
        ("PASSWORD", util::PASSWORD),
        ("EXPECTED", &expected),
        ("CHECKS", "acceptInvalidCertificates"),
    ];
    let (stdout, _) = util::namespace::run(d, NAMESPACE_SCRIPT, &env).await;
    assert!(stdout.contains("names and certificates ok") && stdout.contains("deltachat autoconfig ok"), "{stdout}");
}
