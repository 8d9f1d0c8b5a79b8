//! Session tests over real loopback sockets: `serve()` on `127.0.0.1:0`
//! against an in-memory-index store, driven by a small line client.

mod chunking;
mod dsn;
mod limits;
mod mx;
mod queue;
mod quota;
mod submission;

use crate::{Pool, SmtpConfig, SmtpContext, SmtpListener, Timeouts, serve};
use coimail_directory::{Account, Directory, PlaintextAuth};
use coimail_store::{MessageMeta, Store};
use coimail_tls::TlsAcceptor;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsConnector;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use tokio_rustls::rustls::{self, ClientConfig, RootCertStore, ServerConfig};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Bound on every wait in the tests, so a bug fails instead of hanging.
const WAIT: Duration = Duration::from_secs(10);

pub(crate) struct Options {
    pub plaintext_auth: PlaintextAuth,
    pub max_message_bytes: usize,
    pub max_recipients: usize,
    pub timeouts: Timeouts,
    pub tls: bool,
    pub mx_pool: Pool,
    pub submission_pool: Pool,
    /// Give the server an outbound queue (remote recipients accepted).
    pub queue: bool,
    pub max_messages_per_hour: usize,
    pub mx_messages_per_peer_per_hour: usize,
    pub mx_messages_per_recipient_per_hour: usize,
}

/// Generous bounds: only the tests of the bounds themselves meet them.
pub(crate) const TIMEOUTS: Timeouts = Timeouts {
    command: Duration::from_secs(30),
    first_command: Duration::from_secs(30),
    session: Duration::from_secs(600),
    data: Duration::from_secs(600),
    min_data_rate: 0,
    min_data_rate_grace: Duration::from_secs(30),
};

impl Default for Options {
    fn default() -> Self {
        Options {
            plaintext_auth: PlaintextAuth::Loopback,
            max_message_bytes: 64 * 1024,
            max_recipients: 5,
            timeouts: TIMEOUTS,
            tls: true,
            mx_pool: Pool { max: 200, max_per_ip: 10 },
            submission_pool: Pool { max: 200, max_per_ip: 10 },
            queue: false,
            max_messages_per_hour: 0,
            mx_messages_per_peer_per_hour: 0,
            mx_messages_per_recipient_per_hour: 0,
        }
    }
}

pub(crate) struct Server {
    _dir: tempfile::TempDir,
    pub store: Store,
    pub alice: Account,
    pub bob: Account,
    pub mx: SocketAddr,
    pub submission: SocketAddr,
    pub submissions: SocketAddr,
    pub shutdown: CancellationToken,
    pub tracker: TaskTracker,
    pub cert: CertificateDer<'static>,
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

impl Server {
    pub async fn start() -> Server {
        Server::with(Options::default()).await
    }

    pub async fn with(opts: Options) -> Server {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open_memory(dir.path()).unwrap();
        let directory = Directory::open(&store, None).unwrap();
        directory.add_domain("example.org").await.unwrap();
        let alice = directory.add_user("alice@example.org", "alice-pw", None).await.unwrap();
        let bob = directory.add_user("bob@example.org", "bob-pw", None).await.unwrap();
        directory.add_alias("al@example.org", "alice@example.org").await.unwrap();

        let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
        let cert = certified.cert.der().clone();
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(certified.signing_key.serialize_der()));
        let server_config = ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(vec![cert.clone()], key)
            .unwrap();
        let tls = opts.tls.then(|| TlsAcceptor::from(Arc::new(server_config)));

        let config = SmtpConfig {
            hostname: "mx.example.org".into(),
            max_message_bytes: opts.max_message_bytes,
            max_recipients: opts.max_recipients,
            plaintext_auth: opts.plaintext_auth,
            timeouts: opts.timeouts,
            mx_pool: opts.mx_pool,
            submission_pool: opts.submission_pool,
            max_messages_per_hour: opts.max_messages_per_hour,
            mx_messages_per_peer_per_hour: opts.mx_messages_per_peer_per_hour,
            mx_messages_per_recipient_per_hour: opts.mx_messages_per_recipient_per_hour,
        };
        let mut ctx = SmtpContext::new(store.clone(), directory, tls, config);
        if opts.queue {
            ctx = ctx.with_queue(coimail_delivery::Queue::new(store.clone()));
        }
        let ctx = Arc::new(ctx);
        let shutdown = CancellationToken::new();
        let tracker = TaskTracker::new();
        let mut addrs = Vec::new();
        for kind in [SmtpListener::Mx, SmtpListener::Submission, SmtpListener::Submissions] {
            let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
            addrs.push(l.local_addr().unwrap());
            tracker.spawn(serve(l, kind, ctx.clone(), shutdown.clone(), tracker.clone()));
        }
        Server {
            _dir: dir,
            store,
            alice,
            bob,
            mx: addrs[0],
            submission: addrs[1],
            submissions: addrs[2],
            shutdown,
            tracker,
            cert,
        }
    }

    pub fn data_dir(&self) -> &std::path::Path {
        self._dir.path()
    }

    /// Messages in the account's INBOX, with their bytes.
    pub async fn inbox(&self, account: &Account) -> Vec<(MessageMeta, Vec<u8>)> {
        let inbox = self.store.mailbox(account.id, "INBOX").unwrap();
        let mut out = Vec::new();
        for meta in self.store.messages(account.id, inbox.id).unwrap() {
            let raw = self.store.read_message(&meta).await.unwrap();
            out.push((meta, raw));
        }
        out
    }

    /// A plaintext client that has read the greeting.
    pub async fn connect(&self, addr: SocketAddr) -> Client {
        let tcp = tokio::time::timeout(WAIT, TcpStream::connect(addr)).await.unwrap().unwrap();
        let mut c = Client::new(Box::new(tcp));
        c.expect("220 ").await;
        c
    }

    pub fn tls_connector(&self) -> TlsConnector {
        let mut roots = RootCertStore::empty();
        roots.add(self.cert.clone()).unwrap();
        let config = ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        TlsConnector::from(Arc::new(config))
    }

    /// An implicit-TLS client on the submissions listener, greeting read.
    pub async fn connect_tls(&self) -> Client {
        let tcp = TcpStream::connect(self.submissions).await.unwrap();
        let name = ServerName::try_from("localhost").unwrap();
        let tls = tokio::time::timeout(WAIT, self.tls_connector().connect(name, tcp)).await.unwrap().unwrap();
        let mut c = Client::new(Box::new(tls));
        c.expect("220 ").await;
        c
    }
}

pub(crate) trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

pub(crate) struct Client {
    io: BufReader<Box<dyn Io>>,
}

impl Client {
    pub fn new(io: Box<dyn Io>) -> Client {
        Client { io: BufReader::new(io) }
    }

    pub async fn send(&mut self, bytes: &[u8]) {
        self.io.get_mut().write_all(bytes).await.unwrap();
        self.io.get_mut().flush().await.unwrap();
    }

    /// Reads one complete (possibly multi-line) reply; lines joined by `\n`.
    pub async fn reply(&mut self) -> String {
        let mut all = Vec::new();
        loop {
            let mut line = String::new();
            let n = tokio::time::timeout(WAIT, self.io.read_line(&mut line)).await.expect("reply timed out").unwrap();
            assert!(n > 0, "connection closed; got so far: {all:?}");
            assert!(line.ends_with("\r\n"), "reply line without CRLF: {line:?}");
            let line = line.trim_end().to_owned();
            let last = line.as_bytes().get(3) != Some(&b'-');
            all.push(line);
            if last {
                return all.join("\n");
            }
        }
    }

    /// Reads a reply and checks it starts with `prefix`.
    pub async fn expect(&mut self, prefix: &str) -> String {
        let r = self.reply().await;
        assert!(r.starts_with(prefix), "expected {prefix:?}, got {r:?}");
        r
    }

    /// Sends `line` + CRLF and checks the reply starts with `prefix`.
    pub async fn cmd(&mut self, line: &str, prefix: &str) -> String {
        self.send(format!("{line}\r\n").as_bytes()).await;
        self.expect(prefix).await
    }

    /// True if the server closed the connection (EOF) without more replies.
    pub async fn closed(&mut self) -> bool {
        let mut rest = Vec::new();
        matches!(tokio::time::timeout(WAIT, self.io.read_to_end(&mut rest)).await, Ok(Ok(_)) if rest.is_empty())
    }

    /// Upgrades with STARTTLS (after the 220 has been read).
    pub async fn upgrade(self, connector: &TlsConnector) -> Client {
        assert!(self.io.buffer().is_empty(), "unread bytes before TLS");
        let io = self.io.into_inner();
        let name = ServerName::try_from("localhost").unwrap();
        let tls = tokio::time::timeout(WAIT, connector.connect(name, io)).await.unwrap().unwrap();
        Client::new(Box::new(tls))
    }

    /// One full transaction on an EHLO'd session; returns the final reply.
    pub async fn send_mail(&mut self, from: &str, to: &[&str], body: &str) -> String {
        self.cmd(&format!("MAIL FROM:<{from}>"), "250 2.1.0").await;
        for rcpt in to {
            self.cmd(&format!("RCPT TO:<{rcpt}>"), "250 2.1.5").await;
        }
        self.cmd("DATA", "354 ").await;
        self.send(body.as_bytes()).await;
        self.send(b".\r\n").await;
        self.reply().await
    }
}

/// A submission client, authenticated as `login`.
pub(crate) async fn submit_as(s: &Server, login: &str, password: &str) -> Client {
    let mut c = s.connect(s.submission).await;
    c.cmd("EHLO laptop", "250").await;
    c.cmd(&format!("AUTH PLAIN {}", plain(login, password)), "235").await;
    c
}

/// AUTH PLAIN initial response for `login`/`password`.
pub(crate) fn plain(login: &str, password: &str) -> String {
    crate::auth::base64_encode(format!("\0{login}\0{password}").as_bytes())
}
