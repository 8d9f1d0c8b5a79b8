//! coimail-imap: the IMAP server (RFC 3501 IMAP4rev1 and RFC 9051 IMAP4rev2).
//!
//! The crate parses, decides and answers; it owns no durable data. Every
//! mailbox operation goes through [`coimail_store::Store`], every login
//! through [`coimail_directory::Directory`].
//!
//! # Layout
//! - [`serve`] (this file): the accept loop; one task per connection.
//! - `conn`: buffered I/O over TCP or TLS, the STARTTLS swap, and framing of
//!   command lines and literals with size caps (so a command reaches the
//!   parser whole, and nothing oversized is ever buffered).
//! - `session`: the connection state (NotAuthenticated, Authenticated,
//!   Selected, Logout), the ONE dispatch `match` and the state check before it.
//! - `selected`: the selected mailbox as this session sees it (sequence
//!   number <-> UID) and the changes it has not been told about yet.
//! - `cmd/*`: one file per command group, named after the RFC commands.
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
//! - Unsolicited EXPUNGE is sent only where RFC 3501 §7.4.1 allows it: never
//!   while answering FETCH, STORE or SEARCH, never between commands.
//! - Passwords and message bodies are never logged.

mod capability;
mod cmd;
mod conn;
mod encode;
mod error;
mod mutf7;
mod selected;
mod session;
#[cfg(test)]
mod testing;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::net::TcpListener;
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
    /// Longest a client may stay silent before it has logged in.
    pub auth_timeout: Duration,
    /// Longest a logged-in client may stay silent, IDLE included
    /// (RFC 9051 §5.4 asks for at least 30 minutes).
    pub idle_timeout: Duration,
    /// Longest command line (one line between literals) accepted.
    pub max_line_bytes: usize,
    /// Largest literal accepted; also the cap on all literals of one command.
    pub max_literal_bytes: u64,
}

/// Everything a session needs; shared by all sessions of all IMAP listeners.
pub struct ImapContext {
    pub store: coimail_store::Store,
    pub directory: coimail_directory::Directory,
    /// `None`: no STARTTLS offered, and implicit-TLS listeners cannot serve.
    pub tls: Option<tokio_rustls::TlsAcceptor>,
    pub config: ImapConfig,
}

/// Which kind of port a listener is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ImapListener {
    /// Port 143: plain text, STARTTLS offered when TLS is configured.
    Starttls,
    /// Port 993: TLS from the first byte (RFC 8314).
    ImplicitTls,
}

/// Log correlation only: unique per process, meaningless otherwise.
static NEXT_SESSION: AtomicU64 = AtomicU64::new(1);

/// Accepts connections until `shutdown` is cancelled; spawns each session on `tracker`.
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
        let _ = stream.set_nodelay(true);
        let id = NEXT_SESSION.fetch_add(1, Ordering::Relaxed);
        let span = tracing::info_span!("imap", proto = "imap", %peer, session_id = id, user = tracing::field::Empty);
        let ctx = ctx.clone();
        let shutdown = shutdown.clone();
        tracker.spawn(
            async move {
                tracing::debug!(?kind, "connected");
                session::run(ctx, stream, peer, kind, shutdown).await;
                tracing::debug!("disconnected");
            }
            .instrument(span),
        );
    }
}
