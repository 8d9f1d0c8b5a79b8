//! coimail-delivery: everything after SMTP said 250 for a remote recipient.
//!
//! The SMTP submission path hands an accepted message with remote
//! recipients to [`Queue::enqueue`], which DKIM-signs it ([`dkim`]) and
//! makes it durable in the store's spool (`coimail_store::spool`) before the
//! client hears 250, and wakes the runner. The [`runner`] leases due entries, delivers each one domain by
//! domain over SMTP ([`outbound`]: MX lookup with hickory-resolver against
//! the configured DNS servers, fallback to A/AAAA, opportunistic STARTTLS
//! or, where the domain's MTA-STS policy enforces it, verified TLS ([`sts`];
//! results kept as TLS report records, [`tlsrpt`]), mail-send's low-level
//! `SmtpClient`, one result per recipient), records
//! every result with its attempt history, retries temporary failures on the
//! [`retry`] schedule until the entry expires, and turns permanent failures
//! and expiry into RFC 3464 bounces ([`dsn`]) delivered into the sender's
//! INBOX through the store ([`local`]). The same reports say `relayed` when a
//! server without DSN took a NOTIFY=SUCCESS recipient, `delayed` once a
//! recipient has waited longer than the delay warning ([`notify`]), and
//! `delivered` for SMTP's local deliveries ([`report_delivered`]).
//!
//! # Layout
//! - `lib.rs` — [`QueueConfig`], [`Queue`] (the enqueue handle), [`DeliveryError`]
//! - `retry.rs` — the backoff schedule, a pure function of the clock
//! - `runner.rs` — the loop: lease, spawn attempts up to the concurrency, sleep until due or woken
//! - `runner.rs` also keeps the per-destination connection limit
//! - `attempt.rs` — one entry: deliver per domain, record, notify, delete ([`attempt::Transport`] seam)
//! - `notify.rs` — which DSNs an attempt owes the sender (failed, relayed, delayed)
//! - `outbound.rs` — one domain over SMTP; `dns.rs` — MX and address lookups; `tls.rs` — the client TLS config
//!   and the certificate check of MTA-STS
//! - `sts/` — MTA-STS (RFC 8461): policy discovery, fetch, cache; `tlsrpt.rs` — TLS report records (RFC 8460)
//! - `dkim/` — signing at enqueue ([`dkim::Dkim`]) and the keys on disk ([`dkim::KeyStore`])
//! - `dsn.rs` — building reports; `local.rs` — handing them to the sender (INBOX, or the queue)
//!
//! # Guarantees
//! - A recipient's result is durable before anything depends on it: a
//!   delivered recipient is never sent again after a restart, a failed one
//!   gets exactly one bounce unless the process dies between delivering the
//!   bounce and recording it (then a second one; a duplicate beats a loss).
//! - A message the remote accepted but whose 250 we never recorded (crash
//!   in between) is sent again: delivery is at least once, exactly once as
//!   far as the remote's replies allow.

pub mod attempt;
pub mod destinations;
pub mod dkim;
pub mod dns;
pub mod dsn;
mod files;
mod local;
pub mod notify;
pub mod outbound;
pub mod report_limit;
pub mod retry;
pub mod runner;
pub mod sts;
mod tls;
pub mod tlsrpt;

pub use coimail_store::spool::{DsnNotify, DsnRet, SpoolEntry, SpoolEnvelope, SpoolRecipient};
pub use dns::{Dns, RData, RecordType};
pub use local::{Delivered, Reporter, report_delivered, report_failed};
pub use outbound::Outbound;
pub use report_limit::ReportLimit;
pub use retry::RetryPolicy;

/// Told of a report the queue filed into a local sender's mailbox, with
/// where it went and its octets, once it is durable: the daemon wires Delta
/// Chat's push here, so a bounce wakes the sender's devices like any new
/// mail. Must return at once.
pub type DeliveredHook =
    std::sync::Arc<dyn Fn(&[(coimail_store::Stored, &coimail_store::Placement)], &[u8]) + Send + Sync>;
pub use runner::Runner;

use coimail_store::{Store, StoreError};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;

/// Settings of the outbound queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueConfig {
    /// Our name in EHLO, in bounces and their Message-IDs.
    pub hostname: String,
    pub retry: RetryPolicy,
    /// DNS servers to ask; empty: the system's (`/etc/resolv.conf`).
    pub resolvers: Vec<SocketAddr>,
    /// Port of remote mail servers (25 on the internet).
    pub port: u16,
    /// Deliveries in progress at once.
    pub concurrency: usize,
    /// Deliveries in progress at once to one destination domain, so each
    /// opens at most this many connections to its mail servers.
    pub destination_concurrency: usize,
    /// Seconds a recipient may wait in the queue before its sender gets one
    /// `delayed` DSN (RFC 3464); 0: never.
    pub delay_warning: i64,
    pub connect_timeout: Duration,
    /// Bound on each SMTP command and reply (RFC 5321 §4.5.3.2).
    pub command_timeout: Duration,
    /// Where the MTA-STS policy cache (`mta-sts/`) and the TLS report
    /// records (`tls-reports/`) live: the data directory.
    pub data_dir: PathBuf,
    /// Apply recipient domains' MTA-STS policies (RFC 8461).
    pub mta_sts: bool,
    /// Port of the policy hosts' HTTPS servers (443 on the internet).
    pub mta_sts_port: u16,
    /// A PEM file of CA certificates trusted besides the platform's, for
    /// MTA-STS (policy hosts and MX certificates).
    pub tls_extra_roots: Option<PathBuf>,
    /// Connect to loopback, private, link-local and other special-purpose
    /// addresses an MX resolves to (`destinations.rs`); off in production.
    pub allow_private_destinations: bool,
    /// Delivery reports per hour to one address, and in all; 0: no cap
    /// ([`ReportLimit`]).
    pub reports_per_address_per_hour: usize,
    pub reports_per_hour: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum DeliveryError {
    #[error("store: {0}")]
    Store(#[from] StoreError),
    #[error("directory: {0}")]
    Directory(#[from] coimail_directory::DirectoryError),
    #[error("DNS resolver setup: {0}")]
    Resolver(String),
    #[error("TLS setup: {0}")]
    Tls(String),
    #[error("building a bounce: {0}")]
    Dsn(String),
    #[error("DKIM: {0}")]
    Dkim(#[from] dkim::DkimError),
}

/// The enqueue handle: cheap to clone, shared by SMTP sessions and the
/// runner, which it wakes.
#[derive(Clone)]
pub struct Queue {
    store: Store,
    wake: Arc<Notify>,
    dkim: Option<dkim::Dkim>,
}

impl Queue {
    /// A queue that sends messages as given (no DKIM signatures).
    pub fn new(store: Store) -> Queue {
        Queue { store, wake: Arc::new(Notify::new()), dkim: None }
    }

    /// Signs every message it queues with `dkim` (see [`dkim`]).
    pub fn with_dkim(mut self, dkim: dkim::Dkim) -> Queue {
        self.dkim = Some(dkim);
        self
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Queues `message` for the envelope's (remote) recipients, DKIM-signed
    /// when the queue has keys for it; returns once it is durable, so the
    /// caller may reply 250.
    pub async fn enqueue(&self, envelope: SpoolEnvelope, message: &[u8]) -> Result<SpoolEntry, DeliveryError> {
        let signatures = match &self.dkim {
            Some(dkim) => {
                // Two signatures hash the whole body: off the async threads.
                let (dkim, copy, sender) = (dkim.clone(), message.to_vec(), envelope.sender.clone());
                tokio::task::spawn_blocking(move || dkim.sign(&copy, &sender))
                    .await
                    .map_err(|e| dkim::DkimError::Sign(format!("signing task: {e}")))??
            }
            None => None,
        };
        let signed;
        let message = match signatures {
            Some(mut headers) => {
                headers.extend_from_slice(message);
                signed = headers;
                &signed[..]
            }
            None => message,
        };
        let entry = self.store.spool_enqueue(envelope, message, now()).await?;
        metrics::counter!("coimail_queue_enqueued_total").increment(1);
        tracing::info!(queue_id = entry.id, recipients = entry.recipients.len(), size = entry.size, "queued");
        self.wake();
        Ok(entry)
    }

    /// Makes every entry (or one) due now and wakes the runner. Returns how
    /// many entries were rescheduled.
    pub async fn flush(&self, id: Option<u64>) -> Result<usize, StoreError> {
        let id_given = id;
        let ids: Vec<u64> = match id {
            Some(id) => vec![id],
            None => self.store.spool_list()?.into_iter().map(|e| e.id).collect(),
        };
        let now = now();
        let mut n = 0;
        for id in ids {
            match self.store.spool_reschedule(id, now).await {
                Ok(_) => n += 1,
                // Finished meanwhile.
                Err(StoreError::NotFound(_)) if id_given.is_none() => {}
                Err(e) => return Err(e),
            }
        }
        self.wake();
        Ok(n)
    }

    /// Tells the runner to look for due work now.
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    pub(crate) fn woken(&self) -> &Notify {
        &self.wake
    }
}

/// RFC 5322 date-time in UTC, e.g. `Thu, 1 Jan 1970 00:00:00 +0000`.
pub fn rfc5322_date(unix: i64) -> String {
    mail_parser::DateTime::from_timestamp(unix).to_rfc822()
}

/// One entry as `coimail queue list` shows it: a summary line, then one
/// indented line per recipient.
pub fn describe(entry: &SpoolEntry) -> Vec<String> {
    let sender = if entry.sender.is_empty() { "<>" } else { entry.sender.as_str() };
    let mut lines = vec![format!(
        "{}  from {sender}  queued {}  {} bytes  {} attempts  next {}",
        entry.id,
        rfc5322_date(entry.queued_at),
        entry.size,
        entry.attempts,
        rfc5322_date(entry.next_attempt),
    )];
    for r in &entry.recipients {
        let state = match r.state {
            coimail_store::spool::RecipientState::Pending => "pending",
            coimail_store::spool::RecipientState::Delivered => "delivered",
            coimail_store::spool::RecipientState::Failed => "failed",
        };
        let reply = r.last_reply.as_deref().unwrap_or("");
        lines.push(format!("    {}  {state}  {reply}", r.address).trim_end().to_owned());
    }
    lines
}

/// Seconds since the Unix epoch.
pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}
