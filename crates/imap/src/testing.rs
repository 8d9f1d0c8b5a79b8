//! Test harness: a real [`crate::serve`] on a loopback socket over an
//! in-memory store, a line-based client, and [`check`] for `C:`/`S:`
//! transcripts.

use crate::{ImapConfig, ImapContext, ImapListener};
use coimail_directory::{Account, Directory, PlaintextAuth};
use coimail_store::{Placement, Store, Stored};
use coimail_tls::TlsAcceptor;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tempfile::TempDir;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsConnector;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use tokio_rustls::rustls::{self, ClientConfig, RootCertStore, ServerConfig};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub(crate) const USER: &str = "alice@example.org";
pub(crate) const PASSWORD: &str = "s3cret-pass";
const WAIT: Duration = Duration::from_secs(10);

pub(crate) struct TestServer {
    pub addr: SocketAddr,
    pub tls_addr: Option<SocketAddr>,
    pub store: Store,
    pub account: Account,
    pub shutdown: CancellationToken,
    pub tracker: TaskTracker,
    connector: Option<TlsConnector>,
    _dir: TempDir,
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// The server settings tests start from: the daemon's defaults for the
/// limits, so every test also shows a normal session never meets them.
pub(crate) fn config() -> ImapConfig {
    ImapConfig {
        hostname: "mail.example.org".into(),
        plaintext_auth: PlaintextAuth::Loopback,
        auth_timeout: Duration::from_secs(60),
        idle_timeout: Duration::from_secs(1800),
        max_line_bytes: 8192,
        max_literal_bytes: 1 << 20,
        max_connections: 1000,
        max_connections_per_ip: 20,
        max_unauthenticated_per_ip: 10,
        max_connections_per_user: 50,
        max_commands_per_second: 1000,
        command_burst: 5000,
        max_bad_commands: 50,
        metadata_max_entry_bytes: 64 << 10,
        metadata_max_entries: 1000,
    }
}

fn tls_pair() -> (TlsAcceptor, TlsConnector) {
    let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let cert: CertificateDer<'static> = ck.cert.der().clone();
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(ck.signing_key.serialize_der()));
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let server = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert.clone()], key)
        .unwrap();
    let mut roots = RootCertStore::empty();
    roots.add(cert).unwrap();
    let client = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    (TlsAcceptor::from(Arc::new(server)), TlsConnector::from(Arc::new(client)))
}

impl TestServer {
    pub(crate) async fn start() -> Self {
        Self::start_with(|_| {}, false).await
    }

    /// A server with `tweak`ed config; with `tls`, STARTTLS is offered and an
    /// implicit-TLS listener runs too.
    pub(crate) async fn start_with(tweak: impl FnOnce(&mut ImapConfig), tls: bool) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open_memory(dir.path()).unwrap();
        let directory = Directory::open(&store, None).unwrap();
        directory.add_domain("example.org").await.unwrap();
        let account = directory.add_user(USER, PASSWORD, None).await.unwrap();
        let mut cfg = config();
        tweak(&mut cfg);
        let (acceptor, connector) = if tls { Some(tls_pair()) } else { None }.unzip();
        let ctx = Arc::new(ImapContext::new(store.clone(), directory, acceptor, cfg));
        let shutdown = CancellationToken::new();
        let tracker = TaskTracker::new();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tracker.spawn(crate::serve(listener, ImapListener::Starttls, ctx.clone(), shutdown.clone(), tracker.clone()));
        let mut tls_addr = None;
        if tls {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            tls_addr = Some(listener.local_addr().unwrap());
            tracker.spawn(crate::serve(listener, ImapListener::ImplicitTls, ctx, shutdown.clone(), tracker.clone()));
        }
        TestServer { addr, tls_addr, store, account, shutdown, tracker, connector, _dir: dir }
    }

    pub(crate) async fn connect(&self) -> Client {
        let tcp = TcpStream::connect(self.addr).await.unwrap();
        Client { io: Io::Plain(tcp), buf: Vec::new(), connector: self.connector.clone() }
    }

    pub(crate) async fn connect_implicit_tls(&self) -> Client {
        let tcp = TcpStream::connect(self.tls_addr.unwrap()).await.unwrap();
        let connector = self.connector.clone().unwrap();
        let tls = connector.connect(ServerName::try_from("localhost").unwrap(), tcp).await.unwrap();
        Client { io: Io::Tls(Box::new(tls)), buf: Vec::new(), connector: None }
    }

    /// The store's data directory (message files live under `blobs/`).
    pub(crate) fn data_dir(&self) -> &std::path::Path {
        self._dir.path()
    }

    /// Delivers into the test user's INBOX, as SMTP would.
    pub(crate) async fn deliver(&self, raw: &[u8]) -> Stored {
        let p = Placement {
            account: self.account.id,
            address: USER.into(),
            mailbox: "INBOX".into(),
            flags: Default::default(),
        };
        self.store.deliver(raw, 1_700_000_000, vec![p]).await.unwrap().remove(0)
    }
}

enum Io {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
}

pub(crate) struct Client {
    io: Io,
    buf: Vec<u8>,
    connector: Option<TlsConnector>,
}

impl Client {
    pub(crate) async fn send_raw(&mut self, bytes: &[u8]) {
        match &mut self.io {
            Io::Plain(s) => s.write_all(bytes).await.unwrap(),
            Io::Tls(s) => {
                s.write_all(bytes).await.unwrap();
                s.flush().await.unwrap();
            }
        }
    }

    pub(crate) async fn send(&mut self, line: &str) {
        self.send_raw(format!("{line}\r\n").as_bytes()).await;
    }

    /// Reads more input; false at end of stream.
    async fn read_more(&mut self) -> bool {
        let n = match &mut self.io {
            Io::Plain(s) => tokio::time::timeout(WAIT, s.read_buf(&mut self.buf)).await,
            Io::Tls(s) => tokio::time::timeout(WAIT, s.read_buf(&mut self.buf)).await,
        };
        match n.expect("server did not answer in time") {
            Ok(n) => n > 0,
            Err(_) => false,
        }
    }

    /// One raw line without its CRLF.
    async fn raw_line(&mut self) -> Vec<u8> {
        loop {
            if let Some(p) = self.buf.windows(2).position(|w| w == b"\r\n") {
                let line: Vec<u8> = self.buf.drain(..p + 2).take(p).collect();
                return line;
            }
            assert!(self.read_more().await, "connection closed; unread: {:?}", String::from_utf8_lossy(&self.buf));
        }
    }

    pub(crate) async fn line(&mut self) -> String {
        String::from_utf8_lossy(&self.raw_line().await).into_owned()
    }

    /// One whole response: a line plus any literals it announces, with the
    /// literal bytes inline.
    pub(crate) async fn response(&mut self) -> Vec<u8> {
        let mut out = self.raw_line().await;
        while let Some(n) = announced_literal(&out) {
            while self.buf.len() < n {
                assert!(self.read_more().await, "connection closed inside a literal");
            }
            out.extend_from_slice(b"\r\n");
            out.extend(self.buf.drain(..n));
            out.extend(self.raw_line().await);
        }
        out
    }

    pub(crate) async fn expect_closed(&mut self) {
        let more = self.read_more().await;
        assert!(!more && self.buf.is_empty(), "expected close, got {:?}", String::from_utf8_lossy(&self.buf));
    }

    /// Sends a command and collects responses up to its tagged one, which is returned last.
    pub(crate) async fn command(&mut self, tag: &str, command: &str) -> Vec<String> {
        self.send(&format!("{tag} {command}")).await;
        let mut all = Vec::new();
        loop {
            let r = String::from_utf8_lossy(&self.response().await).into_owned();
            let done = r.starts_with(&format!("{tag} "));
            all.push(r);
            if done {
                return all;
            }
        }
    }

    pub(crate) async fn login(&mut self, _srv: &TestServer) {
        let r = self.command("l1", &format!("LOGIN {USER} {PASSWORD}")).await;
        assert!(r.last().unwrap().starts_with("l1 OK "), "{r:?}");
    }

    pub(crate) async fn select(&mut self, mailbox: &str) {
        let r = self.command("s1", &format!("SELECT {mailbox}")).await;
        assert!(r.last().unwrap().starts_with("s1 OK "), "{r:?}");
    }

    pub(crate) async fn start_tls(self) -> Client {
        let Io::Plain(tcp) = self.io else { panic!("already TLS") };
        assert!(self.buf.is_empty(), "unread plaintext after STARTTLS: {:?}", self.buf);
        let connector = self.connector.unwrap();
        let tls = connector.connect(ServerName::try_from("localhost").unwrap(), tcp).await.unwrap();
        Client { io: Io::Tls(Box::new(tls)), buf: Vec::new(), connector: None }
    }
}

fn announced_literal(line: &[u8]) -> Option<usize> {
    let inner = line.strip_suffix(b"}")?;
    let open = inner.iter().rposition(|&b| b == b'{')?;
    std::str::from_utf8(&inner[open + 1..]).ok()?.parse().ok()
}

/// Runs a transcript: `C: ` lines are sent, `S: ` lines must be the next
/// responses. A response shows CR and LF inside literals as `\r` and `\n`;
/// an expected line ending in `...` matches as a prefix.
pub(crate) async fn check(c: &mut Client, transcript: &str) {
    for (n, line) in transcript.lines().map(str::trim).filter(|l| !l.is_empty()).enumerate() {
        if let Some(cmd) = line.strip_prefix("C:") {
            c.send(cmd.strip_prefix(' ').unwrap_or(cmd)).await;
        } else if let Some(expected) = line.strip_prefix("S:") {
            let expected = expected.trim();
            let actual = String::from_utf8_lossy(&c.response().await).replace('\r', "\\r").replace('\n', "\\n");
            let ok = match expected.strip_suffix("...") {
                Some(prefix) => actual.starts_with(prefix),
                None => actual.trim_end() == expected,
            };
            assert!(ok, "transcript line {}:\n  expected: {expected}\n  actual:   {actual}", n + 1);
        } else {
            panic!("transcript line {} must start with C: or S: ({line})", n + 1);
        }
    }
}

pub(crate) fn base64(data: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in data.chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(A[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}
