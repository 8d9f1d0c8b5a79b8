//! coimail-imap: the IMAP server (RFC 3501 IMAP4rev1 and RFC 9051 IMAP4rev2).
//!
//! The crate parses, decides and answers; it owns no durable data. Every
//! mailbox operation goes through [`coimail_store::Store`], every login
//! through [`coimail_directory::Directory`].
//!
//! # Layout
//! - [`serve`] (this file): the accept loop; one task per connection, each
//!   holding a permit from the connection caps (total and per IPv4 address
//!   or IPv6 /64, shared by every listener of one [`ImapContext`]).
//! - `conn`: buffered I/O over TCP or TLS, the STARTTLS swap, and framing of
//!   command lines and literals with size caps (so a command reaches the
//!   parser whole, and nothing oversized is ever buffered).
//! - `session`: the connection state (NotAuthenticated, Authenticated,
//!   Selected, Logout), the ONE dispatch `match` and the state check before it.
//! - `selected`: the selected mailbox as this session sees it (sequence
//!   number <-> UID) and the changes it has not been told about yet.
//! - `cmd/*`: one file per command group, named after the RFC commands.
//! - `mime`: message structure, ENVELOPE, BODYSTRUCTURE, body sections,
//!   BINARY decoding and the shared structure cache (FETCH; header and text
//!   decoding for SEARCH).
//! - `limits`: the per-session command rate (a client over it waits, one
//!   kept over it for long is closed) and the cap on BAD responses.
//! - `capability`, `error` (the one place errors become `BAD`/`NO`),
//!   `encode` (our own response encoder), `mutf7` (RFC 3501 §5.1.3 names).
//!
//! Commands are decoded with imap-codec's `CommandCodec`; responses are
//! written by hand (`encode`) because the hot path (FETCH) should not build
//! an owned response tree per message.
//!
//! # Invariants
//! - A session never writes to its socket while it holds a store lock: the
//!   store API is call-and-return, and only the session task writes.
//! - Unsolicited EXPUNGE (VANISHED with QRESYNC) is sent only where RFC 3501
//!   §7.4.1 allows it: never while answering FETCH, STORE or SEARCH, and
//!   between commands only when NOTIFY asked for it (RFC 5465 §5;
//!   `cmd/notify.rs` is the one place unsolicited responses are written).
//! - Passwords and message bodies are never logged.

mod capability;
mod cmd;
mod conn;
mod encode;
mod error;
#[cfg(any(test, fuzzing))]
mod framing_check;
mod limits;
mod mime;
mod mutf7;
mod selected;
mod session;
#[cfg(test)]
mod testing;

use coimail_directory::{ConnectionLimits, LogSafe, TrustedProxies};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

/// The IMAP slice of the server configuration.
#[derive(Debug, Clone)]
pub struct ImapConfig {
    /// Host name announced in the greeting.
    pub hostname: String,
    /// When LOGIN / AUTHENTICATE PLAIN may be used without TLS.
    pub plaintext_auth: coimail_directory::PlaintextAuth,
    /// Longest a client may stay silent before it has logged in. However
    /// active, it must log in within three times this of connecting.
    pub auth_timeout: Duration,
    /// Longest a logged-in client may stay silent, IDLE included
    /// (RFC 9051 §5.4 asks for at least 30 minutes).
    pub idle_timeout: Duration,
    /// Most bytes of one command outside its literals (all its lines together).
    pub max_line_bytes: usize,
    /// Largest literal accepted after login; also the cap on all literals of
    /// one command. Before login the cap is 8 KiB (or this, if smaller).
    pub max_literal_bytes: u64,
    /// Concurrent sessions over all IMAP listeners of this context; more get
    /// `* BYE` and are closed. 0: no cap.
    pub max_connections: usize,
    /// Concurrent sessions from one IPv4 address or IPv6 /64. 0: no cap.
    pub max_connections_per_ip: usize,
    /// Concurrent sessions from one IPv4 address or IPv6 /64 that have not
    /// logged in yet; more get `* BYE`. Lets `max_connections_per_ip` be
    /// raised for a NAT full of users without letting one address hold as
    /// many slots with connections that never log in. 0: no cap.
    pub max_unauthenticated_per_ip: usize,
    /// Concurrent logged-in sessions of one account; one more login gets
    /// `NO [LIMIT]`. 0: no cap.
    pub max_connections_per_user: usize,
    /// Commands per second one session may keep up. A command over the rate
    /// waits for its turn; a session kept over it for long gets `* BYE Too
    /// many commands`. 0: no limit.
    pub max_commands_per_second: u32,
    /// Commands a session may send at once before the rate applies (a
    /// pipelining client's batch); at least 1.
    pub command_burst: u32,
    /// BAD responses after which a session gets `* BYE Too many invalid
    /// commands` and is closed. 0: no limit.
    pub max_bad_commands: u32,
    /// Largest METADATA value SETMETADATA accepts, in octets (RFC 5464 §4.3
    /// `[METADATA MAXSIZE n]`).
    pub metadata_max_entry_bytes: usize,
    /// Most METADATA entries one account may hold, server and mailboxes,
    /// private and shared (RFC 5464 §4.3 `[METADATA TOOMANY]`).
    pub metadata_max_entries: usize,
}

/// Everything a session needs; shared by all sessions of all IMAP listeners.
pub struct ImapContext {
    pub store: coimail_store::Store,
    pub directory: coimail_directory::Directory,
    /// `None`: no STARTTLS offered, and implicit-TLS listeners cannot serve.
    pub tls: Option<coimail_tls::TlsAcceptor>,
    pub config: ImapConfig,
    /// Built from `config` by [`ImapContext::new`], so every listener
    /// sharing this context shares the caps.
    limits: Arc<ConnectionLimits>,
    /// Sessions not logged in yet, per peer; the slot is given back at login.
    unauth_limits: Arc<ConnectionLimits>,
    /// Logged-in sessions per account, taken at login.
    pub(crate) user_limits: Arc<coimail_directory::UserLimits>,
    /// Parsed message structures (ENVELOPE, BODYSTRUCTURE, sections), shared
    /// by all sessions: a warm FETCH reads no message file.
    pub(crate) mime_cache: mime::Cache,
    /// COI hooks (METADATA entries, folder switches, the `seen` mover).
    pub coi: coimail_coi::Coi,
    /// Delta Chat's hooks (XDELTAPUSH, device tokens, server metadata).
    pub deltachat: coimail_deltachat::DeltaChat,
    /// Listeners that take PROXY protocol headers, and from where.
    proxy_from: Vec<(ImapListener, TrustedProxies)>,
    /// Advertise `XCHATMAIL` (a chatmail relay; [`ImapContext::with_xchatmail`]).
    pub(crate) xchatmail: bool,
}

impl ImapContext {
    pub fn new(
        store: coimail_store::Store,
        directory: coimail_directory::Directory,
        tls: Option<coimail_tls::TlsAcceptor>,
        config: ImapConfig,
    ) -> ImapContext {
        let limits = ConnectionLimits::new(config.max_connections, config.max_connections_per_ip);
        let unauth_limits = ConnectionLimits::new(0, config.max_unauthenticated_per_ip);
        let user_limits = coimail_directory::UserLimits::new(config.max_connections_per_user);
        let coi = coimail_coi::Coi::new(store.clone());
        let deltachat = coimail_deltachat::DeltaChat::new(store.clone());
        ImapContext {
            store,
            directory,
            tls,
            config,
            limits,
            unauth_limits,
            user_limits,
            mime_cache: mime::Cache::default(),
            coi,
            deltachat,
            proxy_from: Vec::new(),
            xchatmail: false,
        }
    }

    /// Connections to `kind` listeners from `trusted` must begin with a
    /// PROXY protocol header, whose client address the session then uses.
    pub fn with_proxy_protocol(mut self, kind: ImapListener, trusted: TrustedProxies) -> ImapContext {
        self.proxy_from.retain(|(k, _)| *k != kind);
        if !trusted.is_empty() {
            self.proxy_from.push((kind, trusted));
        }
        self
    }

    /// Sessions open now on every listener of this context (the metrics' `coimail_sessions`).
    pub fn open_sessions(&self) -> usize {
        self.limits.open()
    }

    fn proxies(&self, kind: ImapListener) -> Option<&TrustedProxies> {
        self.proxy_from.iter().find(|(k, _)| *k == kind).map(|(_, t)| t)
    }

    /// Replaces the default COI service (no WebPush) with a configured one.
    pub fn with_coi(mut self, coi: coimail_coi::Coi) -> ImapContext {
        self.coi = coi;
        self
    }

    /// Replaces the default Delta Chat service (no push) with a configured one.
    pub fn with_deltachat(mut self, deltachat: coimail_deltachat::DeltaChat) -> ImapContext {
        self.deltachat = deltachat;
        self
    }

    /// Advertises `XCHATMAIL` after login when `on` (chatmail mode).
    pub fn with_xchatmail(mut self, on: bool) -> ImapContext {
        self.xchatmail = on;
        self
    }
}

/// Which kind of port a listener is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ImapListener {
    /// Port 143: plain text, STARTTLS offered when TLS is configured.
    Starttls,
    /// Port 993: TLS from the first byte (RFC 8314).
    ImplicitTls,
}

impl ImapListener {
    /// The listener's key in `[listen]`, also its metrics label.
    pub fn name(self) -> &'static str {
        match self {
            ImapListener::Starttls => "imap",
            ImapListener::ImplicitTls => "imaps",
        }
    }
}

/// Sent to a client over the connection caps, before closing.
const TOO_MANY_CONNECTIONS: &[u8] = b"* BYE Too many connections\r\n";

/// Log correlation only: unique per process, meaningless otherwise.
static NEXT_SESSION: AtomicU64 = AtomicU64::new(1);

/// Accepts connections until `shutdown` is cancelled; spawns each session on `tracker`.
///
/// A connection over the caps in [`ImapConfig`] gets `* BYE Too many
/// connections` (nothing on an implicit-TLS listener: no handshake is spent
/// on it) and is closed at once, without a task.
///
/// On shutdown, sessions finish the command in progress, send `* BYE` and
/// close (a session in IDLE ends with BYE too).
pub async fn serve(
    listener: TcpListener,
    kind: ImapListener,
    ctx: Arc<ImapContext>,
    shutdown: CancellationToken,
    tracker: TaskTracker,
) {
    if kind == ImapListener::ImplicitTls && ctx.tls.is_none() {
        tracing::error!(proto = "imap", "implicit-TLS IMAP listener has no TLS configuration; not serving it");
        return;
    }
    loop {
        let accepted = tokio::select! {
            _ = shutdown.cancelled() => return,
            r = listener.accept() => r,
        };
        let (stream, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                // Usually EMFILE or a connection reset before accept: back off briefly
                // rather than spin, and keep serving.
                tracing::warn!(proto = "imap", error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        if ctx.proxies(kind).is_some_and(|t| t.trusts(peer.ip())) {
            // The header is read in a task of its own, so a slow balancer
            // holds up no one; the connection caps then apply to the client.
            let (ctx, shutdown, inner) = (ctx.clone(), shutdown.clone(), tracker.clone());
            tracker.spawn(async move {
                let mut stream = stream;
                match coimail_directory::read_proxy_header(&mut stream, PROXY_HEADER_TIMEOUT).await {
                    Ok(client) => admit(stream, client.unwrap_or(peer), kind, &ctx, &shutdown, &inner),
                    Err(e) => tracing::info!(proto = "imap", %peer, "connection refused: {}", LogSafe(&e.to_string())),
                }
            });
            continue;
        }
        admit(stream, peer, kind, &ctx, &shutdown, &tracker);
    }
}

/// How long a trusted balancer may take to send its PROXY header.
const PROXY_HEADER_TIMEOUT: Duration = Duration::from_secs(5);

/// Takes a connection slot for `peer` (the client, after a PROXY header)
/// and spawns its session, or refuses it over the caps.
fn admit(
    stream: TcpStream,
    peer: std::net::SocketAddr,
    kind: ImapListener,
    ctx: &Arc<ImapContext>,
    shutdown: &CancellationToken,
    tracker: &TaskTracker,
) {
    metrics::counter!("coimail_connections_total", "protocol" => "imap", "listener" => kind.name()).increment(1);
    let permits = ctx.limits.try_acquire(peer.ip()).and_then(|p| Ok((p, ctx.unauth_limits.try_acquire(peer.ip())?)));
    let (permit, unauth_permit) = match permits {
        Ok(p) => p,
        Err(e) => {
            tracing::info!(proto = "imap", %peer, "connection refused: {e}");
            if kind == ImapListener::Starttls {
                // Non-blocking: a fresh socket's send buffer has room, and the
                // accept loop must never wait on a refused client.
                let _ = stream.try_write(TOO_MANY_CONNECTIONS);
            }
            return;
        }
    };
    let _ = stream.set_nodelay(true);
    let id = NEXT_SESSION.fetch_add(1, Ordering::Relaxed);
    let span = tracing::info_span!("imap", proto = "imap", %peer, session_id = id, user = tracing::field::Empty);
    let ctx = ctx.clone();
    let shutdown = shutdown.clone();
    tracker.spawn(
        async move {
            // Held for the whole session; dropping it frees the slot.
            let _permit = permit;
            tracing::debug!(?kind, "connected");
            session::run(ctx, stream, peer, kind, shutdown, unauth_permit).await;
            tracing::debug!("disconnected");
        }
        .instrument(span),
    );
}

#[cfg(test)]
mod tests {
    use crate::testing::{Client, TestServer};
    use std::time::Duration;
    use tokio::io::AsyncReadExt;

    /// Connects until greeted: the slot is freed when the session task ends,
    /// which may be just after the client sees the close.
    async fn connect_when_free(srv: &TestServer) -> Client {
        for _ in 0..200 {
            let mut c = srv.connect().await;
            let first = c.line().await;
            if first.starts_with("* OK") {
                return c;
            }
            assert_eq!(first, "* BYE Too many connections");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("the slot was never released");
    }

    #[tokio::test]
    async fn per_ip_cap_says_bye_and_frees_the_slot_on_logout() {
        let srv = TestServer::start_with(|c| c.max_connections_per_ip = 1, false).await;
        let mut a = srv.connect().await;
        assert!(a.line().await.starts_with("* OK"));
        let mut b = srv.connect().await;
        assert_eq!(b.line().await, "* BYE Too many connections");
        b.expect_closed().await;
        // The admitted session is unaffected.
        a.login(&srv).await;
        let r = a.command("z", "LOGOUT").await;
        assert!(r.last().unwrap().starts_with("z OK"), "{r:?}");
        a.expect_closed().await;
        let mut c = connect_when_free(&srv).await;
        c.login(&srv).await;
    }

    #[tokio::test]
    async fn total_cap_covers_every_listener_and_implicit_tls_is_closed_silently() {
        let srv = TestServer::start_with(|c| (c.max_connections, c.max_connections_per_ip) = (1, 0), true).await;
        let mut a = srv.connect().await;
        assert!(a.line().await.starts_with("* OK"));
        // No handshake is spent on a refused implicit-TLS client: it is just closed.
        let mut tcp = tokio::net::TcpStream::connect(srv.tls_addr.unwrap()).await.unwrap();
        let mut rest = Vec::new();
        let n = tokio::time::timeout(Duration::from_secs(10), tcp.read_to_end(&mut rest)).await.unwrap();
        assert!(matches!(n, Ok(0)) || n.is_err(), "{rest:?}");
        let mut b = srv.connect().await;
        assert_eq!(b.line().await, "* BYE Too many connections");
        b.expect_closed().await;
        drop(a);
        connect_when_free(&srv).await;
    }
}

/// Entry points for the cargo-fuzz targets in `fuzz/`; compiled only there
/// (cargo-fuzz sets `--cfg fuzzing`), so they add nothing to the server.
#[cfg(fuzzing)]
#[doc(hidden)]
pub mod fuzzing {
    /// MIME structure parsing and everything FETCH and SEARCH derive from it.
    pub fn mime(raw: &[u8]) {
        let parsed = crate::mime::ParsedMessage::parse(raw);
        let mut out = Vec::new();
        for utf8 in [false, true] {
            parsed.structure().write_envelope(&mut out, utf8);
            for extended in [false, true] {
                let form = crate::mime::Form { extended, utf8, rev2: utf8 };
                parsed.structure().write_structure(&mut out, form);
            }
        }
        let _ = parsed.header("subject");
        for part in parsed.text_parts() {
            let _ = part.plain();
        }
    }

    /// The command framer (literals `{n}`, `{n+}`, `~{n}`, line and literal
    /// limits) on `data` read in pieces: the first octets choose the limits
    /// and where reads end, the rest is the input. Panics if an invariant of
    /// `framing_check.rs` breaks.
    pub fn framer(data: &[u8]) {
        let (max_line, max_literal, cuts, input) = framer_setup(data);
        crate::framing_check::check_plain(input, &cuts, max_line, max_literal);
    }

    /// The same over COMPRESS=DEFLATE: `data`'s input is the compressed stream.
    pub fn framer_compressed(data: &[u8]) {
        let (max_line, max_literal, cuts, input) = framer_setup(data);
        let _ = crate::framing_check::check_compressed(input, &cuts, max_line, max_literal);
    }

    fn framer_setup(data: &[u8]) -> (usize, u64, Vec<usize>, &[u8]) {
        let (setup, input) = data.split_at(data.len().min(4));
        let byte = |i: usize| usize::from(setup.get(i).copied().unwrap_or(0));
        let max_line = 8 + byte(0) * 4;
        let max_literal = byte(1) as u64 * 16;
        let step = 1 + byte(2) * byte(3).max(1);
        let cuts = (1..input.len()).step_by(step).collect();
        (max_line, max_literal, cuts, input)
    }

    /// The command grammars imap-codec does not cover (SEARCH/SORT/THREAD,
    /// MULTIAPPEND, CREATE USE, LIST RETURN, NOTIFY, SETMETADATA atoms).
    pub fn extended_command(line: &[u8]) {
        let _ = crate::cmd::search::parse_extended(line);
        let _ = crate::cmd::ext::decode(line);
    }
}
