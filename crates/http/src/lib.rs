//! coimail-http: the HTTPS and plain HTTP listeners, and what mail clients,
//! sending servers and certificate authorities fetch from them.
//!
//! # What is served
//! - HTTPS (443): Mozilla autoconfig (`autoconfig.<domain>/mail/config-v1.1.xml`
//!   and `<domain>/.well-known/autoconfig/mail/config-v1.1.xml`), Microsoft
//!   Autodiscover (`POST /autodiscover/autodiscover.xml`), an Apple
//!   configuration profile (`/apple/mail.mobileconfig?email=...`) and the
//!   MTA-STS policy (`mta-sts.<domain>/.well-known/mta-sts.txt`, RFC 8461),
//!   and in chatmail mode `/new`, the account endpoint of `DCACCOUNT:` QR
//!   codes (`new_account`).
//! - HTTP (80): ACME HTTP-01 challenges through an [`Http01Responder`],
//!   Mozilla autoconfig (Thunderbird also asks over plain HTTP), and a
//!   redirect to HTTPS for everything else.
//!
//! Each client document lists this server's real host name and the ports
//! its listeners are bound to ([`MailServices`], built by the daemon from the
//! bound addresses, so port 0 in tests is the port actually used).
//!
//! # Layout
//! - [`serve`] (this file): the accept loop; one task per connection, with
//!   the PROXY header, the TLS handshake (the daemon's rustls config, shared
//!   with IMAP and SMTP) and hyper's HTTP/1.1 connection serving an axum
//!   router; connection caps like the other protocols.
//! - `routes`: the two routers, how a request names its domain, and
//!   `Reject`, the one place a refusal becomes a status.
//! - `autoconfig`, `autodiscover`, `mobileconfig`: the three client formats;
//!   `xml`: escaping and writing them.
//! - `acme`: the [`Http01Responder`] seam the ACME client implements.
//!
//! # Invariants
//! - Only domains the directory serves get an answer; others get 404.
//! - Every value put into XML is escaped (`xml::text`).
//! - Request bodies are capped at [`MAX_BODY`]; a connection lives at most
//!   [`MAX_CONNECTION_TIME`] and must send its request head within
//!   [`HEADER_TIMEOUT`].
//! - Addresses in query strings are never logged.

mod acme;
mod autoconfig;
mod autodiscover;
mod mobileconfig;
mod new_account;
mod routes;
mod xml;

pub use acme::Http01Responder;

use coimail_directory::{ConnectionLimits, Directory, LogSafe, TrustedProxies};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

/// Largest request body read (an Autodiscover request is well under 1 KiB).
pub const MAX_BODY: usize = 64 * 1024;
/// How long a client may take to send a request head, and to wait idle
/// between requests on a kept-alive connection.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a client may take for the TLS handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// A connection is asked to close after this long, however busy: every
/// document here is small, and a slot held for long is a slot denied.
pub const MAX_CONNECTION_TIME: Duration = Duration::from_secs(60);
/// How long a trusted balancer may take to send its PROXY header.
const PROXY_HEADER_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a connection may take to finish its response at shutdown.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// How a client secures a mail connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Security {
    /// TLS from the first byte (IMAPS 993, submissions 465).
    ImplicitTls,
    /// Plain text upgraded with STARTTLS (IMAP 143, submission 587).
    Starttls,
}

/// One mail listener as clients are told about it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Endpoint {
    pub port: u16,
    pub security: Security,
}

/// The IMAP and submission listeners clients may use, each in the order
/// clients should try them: implicit TLS first (RFC 8314 §3).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MailServices {
    pub imap: Vec<Endpoint>,
    pub submission: Vec<Endpoint>,
}

impl MailServices {
    /// From the ports of the IMAPS, IMAP, submissions and submission
    /// listeners (`None`: that listener is off).
    pub fn new(imaps: Option<u16>, imap: Option<u16>, submissions: Option<u16>, submission: Option<u16>) -> Self {
        let list = |tls: Option<u16>, starttls: Option<u16>| {
            let tls = tls.map(|port| Endpoint { port, security: Security::ImplicitTls });
            let starttls = starttls.map(|port| Endpoint { port, security: Security::Starttls });
            tls.into_iter().chain(starttls).collect()
        };
        MailServices { imap: list(imaps, imap), submission: list(submissions, submission) }
    }
}

/// What the HTTP listeners need to know beyond the directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpConfig {
    /// The mail host name clients are told to connect to (`server.hostname`).
    pub hostname: String,
    pub services: MailServices,
    /// The MTA-STS policy file, exactly as served.
    pub mta_sts_policy: String,
    /// Port of the HTTPS listener plain HTTP redirects to; `None`: no redirect.
    pub https_port: Option<u16>,
    /// Most HTTP(S) connections at once, all listeners together (0: no limit).
    pub max_connections: usize,
    /// Most from one IP address (IPv6: one /64) (0: no limit).
    pub max_connections_per_ip: usize,
}

/// Which kind of port a listener is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HttpListener {
    /// TLS from the first byte (443).
    Https,
    /// Plain HTTP (80).
    Http,
}

impl HttpListener {
    fn proto(self) -> &'static str {
        match self {
            HttpListener::Https => "https",
            HttpListener::Http => "http",
        }
    }
}

/// Everything the listeners share.
pub struct HttpContext {
    pub(crate) directory: Directory,
    pub(crate) config: HttpConfig,
    tls: Option<coimail_tls::TlsAcceptor>,
    pub(crate) http01: Option<Arc<dyn Http01Responder>>,
    proxy_from: Vec<(HttpListener, TrustedProxies)>,
    limits: Arc<ConnectionLimits>,
}

impl HttpContext {
    /// `tls`: the daemon's acceptor; `None` leaves HTTPS listeners unserved.
    pub fn new(directory: Directory, tls: Option<coimail_tls::TlsAcceptor>, config: HttpConfig) -> HttpContext {
        let limits = ConnectionLimits::new(config.max_connections, config.max_connections_per_ip);
        HttpContext { directory, config, tls, http01: None, proxy_from: Vec::new(), limits }
    }

    /// Answers ACME HTTP-01 challenges through `responder`.
    pub fn with_http01(mut self, responder: Arc<dyn Http01Responder>) -> HttpContext {
        self.http01 = Some(responder);
        self
    }

    /// Connections to `kind` listeners from `trusted` must begin with a
    /// PROXY protocol header, whose client address is then used.
    pub fn with_proxy_protocol(mut self, kind: HttpListener, trusted: TrustedProxies) -> HttpContext {
        self.proxy_from.retain(|(k, _)| *k != kind);
        if !trusted.is_empty() {
            self.proxy_from.push((kind, trusted));
        }
        self
    }

    fn proxies(&self, kind: HttpListener) -> Option<&TrustedProxies> {
        self.proxy_from.iter().find(|(k, _)| *k == kind).map(|(_, t)| t)
    }
}

/// The client's address (after a PROXY header), for handlers that limit per peer.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ClientAddr(pub(crate) SocketAddr);

/// Log correlation only: unique per process, meaningless otherwise.
static NEXT_CONNECTION: AtomicU64 = AtomicU64::new(1);

/// Accepts connections until `shutdown` is cancelled; spawns each on
/// `tracker`. On shutdown, connections finish the response in progress
/// (bounded) and close.
pub async fn serve(
    listener: TcpListener,
    kind: HttpListener,
    ctx: Arc<HttpContext>,
    shutdown: CancellationToken,
    tracker: TaskTracker,
) {
    if kind == HttpListener::Https && ctx.tls.is_none() {
        tracing::error!(proto = "https", "HTTPS listener has no TLS configuration; not serving it");
        return;
    }
    let router = match kind {
        HttpListener::Https => routes::https(ctx.clone()),
        HttpListener::Http => routes::http(ctx.clone()),
    };
    loop {
        let accepted = tokio::select! {
            _ = shutdown.cancelled() => return,
            r = listener.accept() => r,
        };
        let (stream, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                // Usually EMFILE: back off briefly rather than spin.
                tracing::warn!(proto = kind.proto(), error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let conn = Connection { kind, ctx: ctx.clone(), router: router.clone(), shutdown: shutdown.clone() };
        if ctx.proxies(kind).is_some_and(|t| t.trusts(peer.ip())) {
            // In a task of its own, so a slow balancer holds up no one.
            let inner = tracker.clone();
            tracker.spawn(async move {
                let mut stream = stream;
                match coimail_directory::read_proxy_header(&mut stream, PROXY_HEADER_TIMEOUT).await {
                    Ok(client) => conn.admit(stream, client.unwrap_or(peer), &inner),
                    Err(e) => {
                        tracing::info!(proto = kind.proto(), %peer, "connection refused: {}", LogSafe(&e.to_string()))
                    }
                }
            });
            continue;
        }
        conn.admit(stream, peer, &tracker);
    }
}

/// What one accepted connection is served with.
struct Connection {
    kind: HttpListener,
    ctx: Arc<HttpContext>,
    router: axum::Router,
    shutdown: CancellationToken,
}

impl Connection {
    /// Takes a slot for `peer` and spawns the connection, or closes it over the caps.
    fn admit(self, stream: TcpStream, peer: SocketAddr, tracker: &TaskTracker) {
        let permit = match self.ctx.limits.try_acquire(peer.ip()) {
            Ok(p) => p,
            Err(e) => {
                tracing::info!(proto = self.kind.proto(), %peer, "connection refused: {e}");
                return;
            }
        };
        let _ = stream.set_nodelay(true);
        let id = NEXT_CONNECTION.fetch_add(1, Ordering::Relaxed);
        let span = tracing::info_span!("http", proto = self.kind.proto(), %peer, session_id = id);
        tracker.spawn(
            async move {
                let _permit = permit;
                self.run(stream, peer).await;
            }
            .instrument(span),
        );
    }

    async fn run(mut self, stream: TcpStream, peer: SocketAddr) {
        self.router = self.router.layer(axum::Extension(ClientAddr(peer)));
        match self.kind {
            HttpListener::Http => self.http(stream).await,
            HttpListener::Https => {
                let Some(acceptor) = self.ctx.tls.clone() else { return };
                match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                    Ok(Ok(tls)) => self.http(tls).await,
                    Ok(Err(e)) => tracing::debug!(error = %e, "TLS handshake failed"),
                    Err(_) => tracing::debug!("TLS handshake timed out"),
                }
            }
        }
    }

    /// HTTP/1.1 with keep-alive until the client closes, the connection's
    /// time is up or the server shuts down.
    async fn http<S: AsyncRead + AsyncWrite + Unpin + Send + 'static>(self, io: S) {
        let service = TowerToHyperService::new(self.router);
        let mut builder = hyper::server::conn::http1::Builder::new();
        builder.timer(TokioTimer::new()).header_read_timeout(HEADER_TIMEOUT);
        let conn = builder.serve_connection(TokioIo::new(io), service);
        tokio::pin!(conn);
        tokio::select! {
            r = conn.as_mut() => {
                if let Err(e) = r {
                    tracing::debug!(error = %e, "connection ended with an error");
                }
                return;
            }
            _ = self.shutdown.cancelled() => {}
            _ = tokio::time::sleep(MAX_CONNECTION_TIME) => {}
        }
        // Let the response in progress finish (bounded), then close.
        conn.as_mut().graceful_shutdown();
        if let Ok(Err(e)) = tokio::time::timeout(SHUTDOWN_GRACE, conn.as_mut()).await {
            tracing::debug!(error = %e, "connection ended with an error");
        }
    }
}

#[cfg(test)]
mod tests;

/// Entry points for the cargo-fuzz targets in `fuzz/`; compiled only there
/// (cargo-fuzz sets `--cfg fuzzing`), so they add nothing to the server.
#[cfg(fuzzing)]
#[doc(hidden)]
pub mod fuzzing {
    /// An Autodiscover request body: the address read from it (if any), and
    /// the response written for it, read back the same way (so escaping
    /// round-trips: the address comes back as each `LoginName`).
    pub fn autodiscover(body: &[u8]) {
        let Ok(address) = crate::autodiscover::requested_address(body) else { return };
        assert!(!address.is_empty() && address.trim() == address, "{address:?}");
        let services = crate::MailServices::new(Some(993), Some(143), Some(465), Some(587));
        let response = crate::autodiscover::document(&address, "mail.example.org", &services);
        let mut reader = quick_xml::Reader::from_str(&response);
        let mut logins = 0;
        let mut in_login = false;
        let mut text = String::new();
        loop {
            match reader.read_event() {
                Ok(quick_xml::events::Event::Start(e)) => in_login = e.local_name().as_ref() == b"LoginName",
                Ok(quick_xml::events::Event::Text(t)) if in_login => text.push_str(&t.decode().unwrap_or_default()),
                Ok(quick_xml::events::Event::GeneralRef(r)) if in_login => {
                    let name = r.decode().unwrap_or_default().into_owned();
                    text.push(match name.as_str() {
                        "amp" => '&',
                        "lt" => '<',
                        "gt" => '>',
                        "quot" => '"',
                        "apos" => '\'',
                        _ => panic!("unexpected entity {name:?}"),
                    });
                }
                Ok(quick_xml::events::Event::End(_)) if in_login => {
                    let kept: String =
                        address.chars().filter(|c| *c >= ' ' || matches!(c, '\t' | '\n' | '\r')).collect();
                    assert_eq!(text, kept);
                    logins += 1;
                    (in_login, text) = (false, String::new());
                }
                Ok(quick_xml::events::Event::Eof) => break,
                Err(e) => panic!("our response is not well-formed: {e}\n{response}"),
                Ok(_) => {}
            }
        }
        assert_eq!(logins, 4, "{response}");
    }
}
