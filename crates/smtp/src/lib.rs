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
//! - Connections: MX and submission (587 and 465) have separate pools, each
//!   with a total and a per-peer cap (`421 4.7.0`). Every wait on a client
//!   is bounded (`io.rs`, [`Timeouts`]): a command line, message data as a
//!   whole and its minimum rate, the session; `421 4.4.2` says which.
//! - MX message rates per peer (`450 4.7.1` at MAIL) and per recipient
//!   account (`450 4.7.1` at RCPT), counted as messages are accepted (`rate.rs`).
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
//!   the message (no second copy of it). A session holds at most about
//!   0.5 MiB of a message: the rest of a large one is staged on disk by the
//!   store as it arrives (`body.rs`). Local copies go to the store in
//!   ONE `Store::deliver` call (one copy per distinct account; the staged
//!   file is renamed into place); remote
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
//!   `bdat.rs` — BDAT; `body.rs` — a message in memory and staged on disk; `auth.rs` — AUTH
//!   PLAIN/LOGIN; `submission.rs` — checks on submitted messages
//! - `reader_check.rs` — the DATA/BDAT readers against references (proptests, fuzzing)
//! - `policy.rs` — who may send to whom (the open-relay rule); `rate.rs` — messages per user, per
//!   MX peer and per MX recipient per hour
//! - `inbound/` — SPF/DKIM/ARC/DMARC/iprev on MX, the verdict, `Authentication-Results`, DNS caches
//! - `delivery.rs` — where a message goes ([`delivery::placements`], the COI hook), storing and queueing it
//! - `received.rs` — trace headers and the RFC 5322 date
//! - `reply.rs` — replies, [`SmtpError`], rendering; `io.rs` — streams, line reader, TLS upgrade,
//!   the time bounds on the client

mod auth;
mod bdat;
mod body;
mod data;
pub mod delivery;
pub mod inbound;
mod io;
mod mail;
pub mod policy;
mod rate;
#[cfg(any(test, fuzzing))]
mod reader_check;
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
    /// Bounds on how long a client may take (`io.rs`; RFC 5321 §4.5.3.2
    /// suggests 5 minutes per command).
    pub timeouts: io::Timeouts,
    /// Concurrent sessions on the MX listener; more get `421 4.7.0`.
    pub mx_pool: Pool,
    /// Concurrent sessions on the submission listeners (587 and 465
    /// together): a pool of their own, so a flood on port 25 cannot keep
    /// users from sending, nor users the world from delivering.
    pub submission_pool: Pool,
    /// Messages one user may submit per hour (sliding window); more get
    /// `450 4.7.1`. 0: no cap. MX is not limited by it.
    pub max_messages_per_hour: usize,
    /// Messages one peer (IPv4 address or IPv6 /64) may deliver over MX per
    /// hour; more get `450 4.7.1` at MAIL. 0: no cap.
    pub mx_messages_per_peer_per_hour: usize,
    /// Messages one local account may receive over MX per hour; more get
    /// `450 4.7.1` at RCPT. 0: no cap. Submission is not limited by it.
    pub mx_messages_per_recipient_per_hour: usize,
}

/// A pool of connection slots: at most `max` sessions, `max_per_ip` of
/// them from one IPv4 address or IPv6 /64 (0: no cap).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pool {
    pub max: usize,
    pub max_per_ip: usize,
}

pub use io::Timeouts;

/// What every session needs; shared by all SMTP listeners.
pub struct SmtpContext {
    pub store: coimail_store::Store,
    pub directory: coimail_directory::Directory,
    pub tls: Option<coimail_tls::TlsAcceptor>,
    pub config: SmtpConfig,
    /// Listeners that take PROXY protocol headers, and from where.
    proxy_from: Vec<(SmtpListener, TrustedProxies)>,
    /// The outbound queue; without it remote recipients are refused.
    pub queue: Option<coimail_delivery::Queue>,
    /// Built from `config` by [`SmtpContext::new`], so every listener
    /// sharing this context shares the caps: one pool for MX, one for
    /// submission (587 and 465).
    mx_limits: Arc<ConnectionLimits>,
    submission_limits: Arc<ConnectionLimits>,
    /// Messages per user per hour on submission (`rate.rs`).
    rate: rate::RateLimit<coimail_store::AccountId>,
    /// MX messages per peer (its `peer_key`) and per recipient account per hour.
    mx_peer_rate: rate::RateLimit<std::net::IpAddr>,
    mx_recipient_rate: rate::RateLimit<coimail_store::AccountId>,
    /// COI's delivery decision and WebPush (`delivery.rs` calls it).
    pub coi: coimail_coi::Coi,
    /// Delta Chat push (`delivery.rs` calls it after the commit, beside COI's WebPush).
    pub deltachat: coimail_deltachat::DeltaChat,
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
        tls: Option<coimail_tls::TlsAcceptor>,
        config: SmtpConfig,
    ) -> SmtpContext {
        let pool = |p: Pool| ConnectionLimits::new(p.max, p.max_per_ip);
        let (mx_limits, submission_limits) = (pool(config.mx_pool), pool(config.submission_pool));
        let rate = rate::RateLimit::new(config.max_messages_per_hour, rate::WINDOW);
        let mx_peer_rate = rate::RateLimit::new(config.mx_messages_per_peer_per_hour, rate::WINDOW);
        let mx_recipient_rate = rate::RateLimit::new(config.mx_messages_per_recipient_per_hour, rate::WINDOW);
        let coi = coimail_coi::Coi::new(store.clone());
        let deltachat = coimail_deltachat::DeltaChat::new(store.clone());
        let reports = coimail_delivery::ReportLimit::default();
        SmtpContext {
            store,
            directory,
            tls,
            config,
            queue: None,
            mx_limits,
            submission_limits,
            rate,
            mx_peer_rate,
            mx_recipient_rate,
            coi,
            deltachat,
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

    /// Sessions open now on every listener of this context, both pools
    /// (the metrics' `coimail_sessions`).
    pub fn open_sessions(&self) -> usize {
        self.mx_limits.open() + self.submission_limits.open()
    }

    fn proxies(&self, kind: SmtpListener) -> Option<&TrustedProxies> {
        self.proxy_from.iter().find(|(k, _)| *k == kind).map(|(_, t)| t)
    }

    /// Replaces the default COI service (no WebPush) with a configured one.
    pub fn with_coi(mut self, coi: coimail_coi::Coi) -> SmtpContext {
        self.coi = coi;
        self
    }

    /// Replaces the default Delta Chat service (no push) with a configured one.
    pub fn with_deltachat(mut self, deltachat: coimail_deltachat::DeltaChat) -> SmtpContext {
        self.deltachat = deltachat;
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

impl SmtpListener {
    /// The listener's key in `[listen]`, also its metrics label.
    pub fn name(self) -> &'static str {
        match self {
            SmtpListener::Mx => "smtp",
            SmtpListener::Submission => "submission",
            SmtpListener::Submissions => "submissions",
        }
    }
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
    metrics::counter!("coimail_connections_total", "protocol" => "smtp", "listener" => kind.name()).increment(1);
    let pool = if kind == SmtpListener::Mx { &ctx.mx_limits } else { &ctx.submission_limits };
    let permit = match pool.try_acquire(peer.ip()) {
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

/// Entry points for the cargo-fuzz targets in `fuzz/`; compiled only there
/// (cargo-fuzz sets `--cfg fuzzing`), so they add nothing to the server.
#[cfg(fuzzing)]
#[doc(hidden)]
pub mod fuzzing {
    /// The first octets of `data` choose the size limit, the spill point
    /// and where reads end; the rest is the input.
    fn setup(data: &[u8]) -> (usize, usize, Vec<usize>, &[u8]) {
        let (setup, input) = data.split_at(data.len().min(4));
        let byte = |i: usize| usize::from(setup.get(i).copied().unwrap_or(0));
        let max = byte(0) * 64;
        let spill_at = byte(1) * 16;
        let step = 1 + byte(2) * byte(3).max(1);
        (max, spill_at, (1..input.len()).step_by(step).collect(), input)
    }

    /// The DATA reader: end of data, dot-unstuffing, bare CR/LF, limits.
    pub fn data(data: &[u8]) {
        let (max, spill_at, cuts, input) = setup(data);
        crate::reader_check::check_data(input, &cuts, max, spill_at);
    }

    /// The BDAT chunk reader: chunks, bare CR/LF across them, limits.
    pub fn bdat(data: &[u8]) {
        let (max, spill_at, cuts, input) = setup(data);
        crate::reader_check::check_bdat(input, &cuts, max, spill_at);
    }
}
