//! ACME end to end against Pebble (tests/util/pebble.rs): a certificate issued at start
//! through TLS-ALPN-01 answered on the IMAPS port, served by IMAPS and SMTPS to a client that
//! trusts only Pebble's root, renewed on demand (`coimail tls renew`) and swapped in without
//! dropping an authenticated IDLE session; and HTTP-01 answered from the daemon's token store.

use crate::util::dns::{TestDns, Zone};
use crate::util::pebble::{self, Pebble};
use crate::util::server::test_config;
use crate::util::{DOMAIN, PASSWORD, SmtpClient};
use coimail_daemon::admin::{self, AdminRequest};
use coimail_daemon::config::AcmeChallenge;
use coimail_daemon::{Config, Running};
use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio_rustls::rustls::pki_types::CertificateDer;

const HOST: &str = "mail.example.org";
const USER: &str = "alice@example.org";

fn zone() -> Zone {
    [HOST, "autoconfig.example.org", "mta-sts.example.org"]
        .iter()
        .fold(Zone::default(), |z, name| z.a(name, Ipv4Addr::LOCALHOST))
}

/// A loopback config with ACME on against `pebble`, IMAPS on `imaps_port`.
fn acme_config(dir: &Path, pebble: &Pebble, imaps_port: u16, challenge: AcmeChallenge) -> Config {
    let mut c = test_config(dir);
    c.server.hostname = HOST.into();
    c.listen.imaps = vec![SocketAddr::from(([127, 0, 0, 1], imaps_port))];
    c.tls.acme.enabled = true;
    c.tls.acme.directory = pebble.directory.clone();
    c.tls.acme.directory_ca = pebble.ca_file.clone();
    c.tls.acme.contact = "postmaster@example.org".into();
    c.tls.acme.challenge = challenge;
    c
}

/// Starts the daemon with example.org and [`USER`] already in the store, so the first order
/// (made as soon as the daemon starts) has every automatic name.
async fn start(config: Config) -> Running {
    let mut without = config.clone();
    without.tls.acme.enabled = false;
    let running = coimail_daemon::start(without).await.unwrap();
    running.directory().add_domain(DOMAIN).await.unwrap();
    running.directory().add_user(USER, PASSWORD, None).await.unwrap();
    running.shutdown().await.unwrap();
    coimail_daemon::start(config).await.unwrap()
}

/// Waits for the first ACME certificate to be served.
async fn first_certificate(running: &Running, dir: &Path) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        if let Some(served) = running.tls().certs().acme() {
            return served.info.names.clone();
        }
        assert!(
            Instant::now() < deadline,
            "no ACME certificate; status: {:?}; pebble log: {}",
            running.tls().status(),
            std::fs::read_to_string(dir.join("pebble.log")).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A line reader/writer over any stream.
struct Lines<S> {
    io: BufReader<S>,
}

impl<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin> Lines<S> {
    async fn line(&mut self) -> String {
        let mut line = String::new();
        let n = tokio::time::timeout(Duration::from_secs(20), self.io.read_line(&mut line)).await.unwrap().unwrap();
        assert!(n > 0, "connection closed");
        line
    }

    async fn send(&mut self, line: &str) {
        self.io.get_mut().write_all(format!("{line}\r\n").as_bytes()).await.unwrap();
    }

    /// Sends a tagged command; returns every line up to and including the tagged one.
    async fn command(&mut self, tag: &str, cmd: &str) -> Vec<String> {
        self.send(&format!("{tag} {cmd}")).await;
        let mut lines = Vec::new();
        loop {
            let line = self.line().await;
            let done = line.starts_with(&format!("{tag} "));
            lines.push(line);
            if done {
                return lines;
            }
        }
    }
}

/// The leaf certificate IMAPS and SMTPS serve to a client trusting only `root`, for `name`.
async fn served_by_imaps_smtps_and_https(running: &Running, name: &str, root: &CertificateDer<'static>) -> Vec<u8> {
    let (imaps, leaf) = pebble::connect(running.addrs().imaps[0], name, root).await.unwrap();
    let mut imap = Lines { io: BufReader::new(imaps) };
    assert!(imap.line().await.starts_with("* OK"));
    let (smtps, smtp_leaf) = pebble::connect(running.addrs().submissions[0], name, root).await.unwrap();
    assert_eq!(smtp_leaf, leaf, "IMAPS and SMTPS serve one certificate");
    let mut smtp = Lines { io: BufReader::new(smtps) };
    assert!(smtp.line().await.starts_with("220 "));
    // HTTPS too: the same certificate, and an autoconfig answer through it.
    let (mut https, https_leaf) = pebble::connect(running.addrs().https[0], name, root).await.unwrap();
    assert_eq!(https_leaf, leaf, "HTTPS serves the certificate IMAPS and SMTPS serve");
    let request = format!(
        "GET /.well-known/autoconfig/mail/config-v1.1.xml?emailaddress={USER} HTTP/1.1\r\nHost: {name}\r\nConnection: close\r\n\r\n"
    );
    https.write_all(request.as_bytes()).await.unwrap();
    let mut http = Lines { io: BufReader::new(https) };
    let status = http.line().await;
    assert!(status.starts_with("HTTP/1.1 200"), "{status}");
    leaf.to_vec()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_alpn01_issues_serves_and_renews_without_dropping_idle() {
    if !pebble::available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let dns = TestDns::start(zone()).await;
    let imaps_port = pebble::free_port();
    let pebble = Pebble::start(dir.path(), imaps_port, pebble::free_port(), dns.addr);
    let config = acme_config(dir.path(), &pebble, imaps_port, AcmeChallenge::TlsAlpn01);
    let admin_socket = config.admin_socket();
    let data = config.server.data_dir.clone();
    let running = start(config).await;

    // Issued at start, for the host name and the names clients and senders look up.
    let names = first_certificate(&running, dir.path()).await;
    assert_eq!(names, [HOST, "autoconfig.example.org", "mta-sts.example.org"]);
    let root = pebble.issuing_root().await;
    let first = served_by_imaps_smtps_and_https(&running, HOST, &root).await;
    // Account and certificate are kept, private.
    let ca_dir = std::fs::read_dir(data.join("acme")).unwrap().next().unwrap().unwrap().path();
    for file in ["account.json", "cert.pem", "key.pem"] {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(ca_dir.join(file)).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{file}");
    }
    let status = admin::call(&admin_socket, &AdminRequest::TlsStatus).await.unwrap().unwrap().unwrap();
    let text = status.join("\n");
    assert!(text.contains(&format!("acme  {}", ca_dir.join("cert.pem").display())), "{text}");
    assert!(text.contains("names      mail.example.org, autoconfig.example.org, mta-sts.example.org"), "{text}");
    assert!(text.contains("acme next renewal  20"), "{text}");

    // An authenticated IDLE session over the first certificate.
    let (stream, leaf) = pebble::connect(running.addrs().imaps[0], HOST, &root).await.unwrap();
    assert_eq!(leaf.to_vec(), first);
    let mut idle = Lines { io: BufReader::new(stream) };
    assert!(idle.line().await.starts_with("* OK"));
    let login = idle.command("a1", &format!("LOGIN {USER} \"{PASSWORD}\"")).await;
    assert!(login.last().unwrap().starts_with("a1 OK"), "{login:?}");
    let select = idle.command("a2", "SELECT INBOX").await;
    assert!(select.iter().any(|l| l == "* 0 EXISTS\r\n"), "{select:?}");
    idle.send("a3 IDLE").await;
    assert!(idle.line().await.starts_with("+ "));

    // A forced renewal validates again (Pebble reuses no authorization) on the same port
    // while the session idles, and new handshakes get the new certificate.
    let renewed = admin::call(&admin_socket, &AdminRequest::TlsRenew).await.unwrap().unwrap();
    let renewed = renewed.unwrap_or_else(|e| panic!("renewal failed: {e}"));
    assert!(renewed[0].starts_with("certificate for mail.example.org,"), "{renewed:?}");
    let second = served_by_imaps_smtps_and_https(&running, HOST, &root).await;
    assert_ne!(second, first, "the renewed certificate is served");

    // The session opened before the swap is still there, and still told about new mail.
    let mut smtp = SmtpClient::connect(running.addrs().smtp[0]).await;
    let reply = smtp.send("bob@remote.test", &[USER], &crate::util::message(1, USER)).await;
    assert!(reply.starts_with("250"), "{reply}");
    let mut untagged = Vec::new();
    while !untagged.iter().any(|l| l == "* 1 EXISTS\r\n") {
        assert!(untagged.len() < 5, "{untagged:?}");
        untagged.push(idle.line().await);
    }
    idle.send("DONE").await;
    let mut line = idle.line().await;
    while line.starts_with("* ") {
        line = idle.line().await;
    }
    assert!(line.starts_with("a3 OK"), "{line}");
    drop(idle);
    running.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http01_is_answered_from_the_token_store() {
    if !pebble::available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let dns = TestDns::start(zone()).await;
    // Pebble validates HTTP-01 only, at the daemon's own plain HTTP listener
    // (port 80 in production); the TLS port leads nowhere.
    let http_port = pebble::free_port();
    let pebble = Pebble::start(dir.path(), pebble::free_port(), http_port, dns.addr);
    let mut config = acme_config(dir.path(), &pebble, 0, AcmeChallenge::Http01);
    config.listen.http = vec![SocketAddr::from(([127, 0, 0, 1], http_port))];
    // A name that does not resolve yet fails its validation: the certificate is issued
    // without it rather than not at all, and the failure is reported.
    config.tls.acme.names = vec![HOST.into(), "nowhere.example.org".into()];
    let admin_socket = config.admin_socket();
    let running = start(config).await;
    let store = running.tls().http01().unwrap().clone();
    let names = first_certificate(&running, dir.path()).await;
    assert_eq!(names, [HOST]);
    let status = admin::call(&admin_socket, &AdminRequest::TlsStatus).await.unwrap().unwrap().unwrap().join("\n");
    assert!(
        status.contains("acme last attempt failed: ") && status.contains("left out nowhere.example.org"),
        "{status}"
    );
    let root = pebble.issuing_root().await;
    served_by_imaps_smtps_and_https(&running, HOST, &root).await;
    // Answered tokens are not kept.
    assert_eq!(format!("{store:?}"), "Http01Store { pending: 0 }");
    running.shutdown().await.unwrap();
}
