//! coimail-smtp: the SMTP server — MX (port 25) and submission (587 with
//! STARTTLS, 465 with implicit TLS). It parses, decides and answers; the
//! store owns the mail.
//!
//! # What a session does
//! - Commands are parsed with smtp-proto from lines our own reader cut
//!   (`io.rs`): CRLF only, 4096 octets at most. A bare LF or bare CR in a
//!   command line gets `500 5.5.2`; in message data the whole transaction
//!   gets `554 5.6.0` after reading to the real `CRLF.CRLF`, and is reset
//!   (SMTP smuggling; `data.rs` explains why nothing else may end the data).
//! - EHLO offers PIPELINING, SIZE, 8BITMIME, ENHANCEDSTATUSCODES, SMTPUTF8,
//!   CHUNKING, DSN, STARTTLS (when TLS is configured and not active) and,
//!   on submission listeners only, `AUTH PLAIN LOGIN` when the
//!   plaintext-auth policy allows it on this connection (`538 5.7.11`
//!   otherwise).
//! - Every 2xx/4xx/5xx reply has an enhanced status code except the
//!   greeting and the EHLO/HELO replies, as RFC 2034 §3 prescribes.
//! - MX accepts mail only for local domains (`550 5.1.1` unknown user,
//!   `550 5.7.1` other domains). Submission requires AUTH (`530 5.7.0`), a
//!   user under its hourly message rate (`450 4.7.1`, `rate.rs`), a
//!   reverse path the user owns (`553 5.7.1`) and, in the message, `From`
//!   addresses the user owns (`553 5.7.1`); it adds `Date` and `Message-ID`
//!   when missing (`submission.rs`). Remote recipients are accepted on
//!   submission when the context has an outbound queue
//!   (`coimail_delivery::Queue`), and get `554 5.3.3` otherwise. The rules
//!   live in `policy.rs` only.
//! - DSN parameters (RFC 3461: RET, ENVID on MAIL; NOTIFY, ORCPT on RCPT)
//!   are accepted after EHLO and kept with the queued message. A local
//!   recipient with NOTIFY=SUCCESS gets its sender an `Action: delivered`
//!   report once stored (`coimail_delivery::report_delivered`, into the
//!   sender's INBOX), in authenticated sessions only: over MX, SUCCESS and
//!   DELAY are accepted and dropped, as the reverse path is unchecked.
//! - A local recipient over quota gets `452 4.2.2 Mailbox full` at RCPT
//!   (one message of the declared `SIZE=`, `mail.rs`), so the others still
//!   get the message; the store's check at the end of the data is final,
//!   for that recipient only: the others get the message and the sender a
//!   bounce for it (`coimail_delivery::report_failed`, `delivery.rs`).
//! - `Return-Path` and `Received` are written into the DATA buffer before
//!   the message (no second copy of it). Local copies go to the store in
//!   ONE `Store::deliver` call (one copy per distinct account); remote
//!   recipients go to the queue as ONE entry, without `Return-Path`.
//!   `250` is sent only after both are durable, `451 4.3.0` (or `452 4.2.2`
//!   when the message fits no recipient's quota) otherwise.
//! - On MX, with checks on ([`SmtpContext::with_inbound_checks`]), every
//!   message is checked at its end (SPF, DKIM, ARC, DMARC, iprev;
//!   `inbound/`): refused (`550 5.7.1` DMARC reject or our own domain
//!   unauthenticated, `550 5.7.23` SPF fail, `451 4.7.1` temporary DNS
//!   failure), quarantined into `\Junk` (DMARC quarantine) or delivered,
//!   with one `Authentication-Results` field of ours.
//! - With chatmail's encrypted-only rule on
//!   ([`SmtpContext::with_encrypted_only`]), a message that is not OpenPGP
//!   encrypted (nor one of filtermail's exceptions) gets `550 5.7.1
//!   Encryption Needed: Invalid Unencrypted Mail` at its end, before any
//!   other check: submission as filtermail's outgoing filter, MX as its
//!   incoming one (`coimail_chatmail::filter`).
//! - BDAT (`bdat.rs`): chunks of exactly the announced size, always read
//!   in full; the same limits, line-ending rule and delivery as DATA.
//! - Shutdown: listeners stop accepting; a session finishes the transaction
//!   in progress, then says `421 4.3.2` and closes.
//!
//! # Layout
//! - `lib.rs` — public types and [`serve`] (accept loop, one span per session)
//! - `session.rs` — command loop, state, dispatch; EHLO, RSET, NOOP, VRFY, HELP, QUIT, STARTTLS
//! - `mail.rs` — MAIL and RCPT; `data.rs` — DATA decoder, DATA and the end of every message;
//!   `bdat.rs` — BDAT; `auth.rs` — AUTH PLAIN/LOGIN; `submission.rs` — checks on submitted messages
//! - `policy.rs` — who may send to whom (the open-relay rule); `rate.rs` — messages per user per hour
//! - `inbound/` — SPF/DKIM/ARC/DMARC/iprev on MX, the verdict, `Authentication-Results`, DNS caches
//! - `delivery.rs` — where a message goes ([`delivery::placements`], the COI hook), storing and queueing it
//! - `received.rs` — trace headers and the RFC 5322 date
//! - `reply.rs` — replies, [`SmtpError`], rendering; `io.rs` — streams, line reader, TLS upgrade

mod auth;
mod bdat;
mod data;
pub mod delivery;
pub mod inbound;
mod io;
mod mail;
pub mod policy;
mod rate;
mod received;
mod reply;
mod session;
mod submission;

pub use reply::{Enhanced, SmtpError};

use coimail_directory::{ConnectionLimits, LogSafe, TrustedProxies};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

/// Settings for every SMTP listener.
#[derive(Debug, Clone)]
pub struct SmtpConfig {
    /// Our name in the greeting, the EHLO reply and Received headers.
    pub hostname: String,
    /// Largest message accepted, advertised as SIZE (RFC 1870); larger gets 552 5.3.4.
    pub max_message_bytes: usize,
    /// Recipients per transaction; more get 452 4.5.3.
    pub max_recipients: usize,
    /// When AUTH may happen without TLS.
    pub plaintext_auth: coimail_directory::PlaintextAuth,
    /// Bound on every wait for the client (RFC 5321 §4.5.3.2 suggests 5 minutes).
    pub command_timeout: Duration,
    /// Concurrent sessions over all SMTP listeners of this context; more get
    /// `421 4.7.0` and are closed. 0: no cap.
    pub max_connections: usize,
    /// Concurrent sessions from one IPv4 address or IPv6 /64. 0: no cap.
    pub max_connections_per_ip: usize,
    /// Messages one user may submit per hour (sliding window); more get
    /// `450 4.7.1`. 0: no cap. MX is not limited.
    pub max_messages_per_hour: usize,
}

/// What every session needs; shared by all SMTP listeners.
pub struct SmtpContext {
    pub store: coimail_store::Store,
    pub directory: coimail_directory::Directory,
    pub tls: Option<tokio_rustls::TlsAcceptor>,
    pub config: SmtpConfig,
    /// Listeners that take PROXY protocol headers, and from where.
    proxy_from: Vec<(SmtpListener, TrustedProxies)>,
    /// The outbound queue; without it remote recipients are refused.
    pub queue: Option<coimail_delivery::Queue>,
    /// Built from `config` by [`SmtpContext::new`], so every listener
    /// sharing this context shares the caps.
    limits: Arc<ConnectionLimits>,
    /// Messages per user per hour on submission (`rate.rs`).
    rate: rate::RateLimit,
    /// COI's delivery decision and WebPush (`delivery.rs` calls it).
    pub coi: coimail_coi::Coi,
    /// SPF/DKIM/ARC/DMARC/iprev on the MX listener; `None`: turned off.
    inbound: Option<Arc<inbound::Checker>>,
    /// The cap on the delivery reports sessions make (shared with the queue's).
    pub reports: coimail_delivery::ReportLimit,
    /// Chatmail's encrypted-only rule (`data.rs` applies it); `None`: off.
    chatmail: Option<Arc<coimail_chatmail::FilterPolicy>>,
}

impl SmtpContext {
    pub fn new(
        store: coimail_store::Store,
        directory: coimail_directory::Directory,
        tls: Option<tokio_rustls::TlsAcceptor>,
        config: SmtpConfig,
    ) -> SmtpContext {
        let limits = ConnectionLimits::new(config.max_connections, config.max_connections_per_ip);
        let rate = rate::RateLimit::new(config.max_messages_per_hour, rate::WINDOW);
        let coi = coimail_coi::Coi::new(store.clone());
        let reports = coimail_delivery::ReportLimit::default();
        SmtpContext {
            store,
            directory,
            tls,
            config,
            queue: None,
            limits,
            rate,
            coi,
            inbound: None,
            reports,
            proxy_from: Vec::new(),
            chatmail: None,
        }
    }

    /// Shares `reports` (the queue's cap on delivery reports) with this context.
    pub fn with_report_limit(mut self, reports: coimail_delivery::ReportLimit) -> SmtpContext {
        self.reports = reports;
        self
    }

    /// Connections to `kind` listeners from `trusted` must begin with a
    /// PROXY protocol header, whose client address the session then uses.
    pub fn with_proxy_protocol(mut self, kind: SmtpListener, trusted: TrustedProxies) -> SmtpContext {
        self.proxy_from.retain(|(k, _)| *k != kind);
        if !trusted.is_empty() {
            self.proxy_from.push((kind, trusted));
        }
        self
    }

    fn proxies(&self, kind: SmtpListener) -> Option<&TrustedProxies> {
        self.proxy_from.iter().find(|(k, _)| *k == kind).map(|(_, t)| t)
    }

    /// Replaces the default COI service (no WebPush) with a configured one.
    pub fn with_coi(mut self, coi: coimail_coi::Coi) -> SmtpContext {
        self.coi = coi;
        self
    }

    /// Checks mail on the MX listener with `checker` (`inbound/`);
    /// without it MX mail is taken unchecked (private networks, tests).
    pub fn with_inbound_checks(mut self, checker: inbound::Checker) -> SmtpContext {
        self.inbound = Some(Arc::new(checker));
        self
    }

    /// Accepts only encrypted mail (and filtermail's exceptions) on every
    /// listener, as a chatmail relay does (`coimail_chatmail::filter`).
    pub fn with_encrypted_only(mut self, policy: coimail_chatmail::FilterPolicy) -> SmtpContext {
        self.chatmail = Some(Arc::new(policy));
        self
    }

    /// Accepts remote recipients on submission listeners, for `queue`.
    pub fn with_queue(mut self, queue: coimail_delivery::Queue) -> SmtpContext {
        self.queue = Some(queue);
        self
    }
}

/// The kind of listener, which sets the policy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SmtpListener {
    /// Port 25: mail for our domains from anyone, no AUTH.
    Mx,
    /// Port 587: authenticated submission, STARTTLS.
    Submission,
    /// Port 465: authenticated submission over implicit TLS (RFC 8314).
    Submissions,
}

/// Sent to a client over the connection caps, before closing.
const TOO_MANY_CONNECTIONS: &[u8] = b"421 4.7.0 Too many connections, try again later\r\n";

/// A short id, unique within the process, for logs and Received headers.
fn session_id() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let start = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    format!("{:x}{:x}", start & 0xffff_ffff, n)
}

/// How long a trusted balancer may take to send its PROXY header.
const PROXY_HEADER_TIMEOUT: Duration = Duration::from_secs(5);

/// Takes a connection slot for `peer` (the client, after a PROXY header)
/// and spawns its session, or refuses it over the caps.
fn admit(
    tcp: TcpStream,
    peer: std::net::SocketAddr,
    kind: SmtpListener,
    ctx: &Arc<SmtpContext>,
    shutdown: &CancellationToken,
    tracker: &TaskTracker,
) {
    let permit = match ctx.limits.try_acquire(peer.ip()) {
        Ok(p) => p,
        Err(e) => {
            tracing::info!(proto = "smtp", listener = ?kind, peer = %peer, "connection refused: {e}");
            if kind != SmtpListener::Submissions {
                // Non-blocking: a fresh socket's send buffer has room, and
                // the accept loop must never wait on a refused client.
                let _ = tcp.try_write(TOO_MANY_CONNECTIONS);
            }
            return;
        }
    };
    let id = session_id();
    let span = tracing::info_span!(
        "smtp", proto = "smtp", listener = ?kind, peer = %peer,
        session_id = %id, user = tracing::field::Empty
    );
    let session = session::run(tcp, peer, kind, ctx.clone(), shutdown.clone(), id);
    tracker.spawn(
        async move {
            // Held for the whole session; dropping it frees the slot.
            let _permit = permit;
            session.await;
        }
        .instrument(span),
    );
}

/// Accepts until `shutdown` is cancelled; spawns each session on `tracker`.
/// A connection over the caps in [`SmtpConfig`] gets `421 4.7.0` (nothing on
/// the implicit-TLS listener: no handshake is spent on it) and is closed at
/// once, without a task. On shutdown a session finishes the transaction in progress (bounded by
/// its timeouts) and then replies 421 4.3.2 and closes.
pub async fn serve(
    listener: TcpListener,
    kind: SmtpListener,
    ctx: Arc<SmtpContext>,
    shutdown: CancellationToken,
    tracker: TaskTracker,
) {
    let local = listener.local_addr().ok();
    tracing::info!(proto = "smtp", listener = ?kind, addr = ?local, "listening");
    loop {
        let accepted = tokio::select! {
            _ = shutdown.cancelled() => break,
            r = listener.accept() => r,
        };
        match accepted {
            Ok((tcp, peer)) if ctx.proxies(kind).is_some_and(|t| t.trusts(peer.ip())) => {
                // The header is read in a task of its own, so a slow balancer
                // holds up no one; the connection caps then apply to the client.
                let (ctx, shutdown, inner) = (ctx.clone(), shutdown.clone(), tracker.clone());
                tracker.spawn(async move {
                    let mut tcp = tcp;
                    match coimail_directory::read_proxy_header(&mut tcp, PROXY_HEADER_TIMEOUT).await {
                        Ok(client) => admit(tcp, client.unwrap_or(peer), kind, &ctx, &shutdown, &inner),
                        Err(e) => {
                            tracing::info!(proto = "smtp", listener = ?kind, %peer, "connection refused: {}", LogSafe(&e.to_string()));
                        }
                    }
                });
            }
            Ok((tcp, peer)) => admit(tcp, peer, kind, &ctx, &shutdown, &tracker),
            Err(e) => {
                // E.g. out of file descriptors: back off instead of spinning.
                tracing::warn!(proto = "smtp", error = %e, "accept failed");
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = tokio::time::sleep(Duration::from_millis(100)) => {}
                }
            }
        }
    }
    tracing::info!(proto = "smtp", listener = ?kind, "stopped accepting");
}

#[cfg(test)]
mod tests;
