//! Sends device tokens to the Delta Chat notification proxy, the way
//! chatmail's `notifier.py` does: an HTTPS POST whose body is the token as
//! stored (`openpgp:...` tokens are passed through untouched: only the
//! proxy can read them). 200 (any 2xx) is done; 410 means the token is
//! gone, and it is deleted; anything else (another status, a timeout, a
//! connection failure) is retried after 8 s, 64 s, 512 s, ... (the base
//! times 8 to the retry number) until five hours after the delivery.
//!
//! Unlike chatmail the queue is in memory: a restart loses pending pushes
//! (a device that missed one still gets its mail at its next fetch).

use crate::queue::{Job, PushQueue, Refused};
use crate::{DeltaChatError, tokens};
use coimail_store::{AccountId, Store};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// chatmail's `BASE_DELAY`: each retry waits this times 8 to the retry number.
const BACKOFF_FACTOR: u32 = 8;

/// How pushes are sent (the `[deltachat]` config section).
#[derive(Debug, Clone)]
pub struct PushSettings {
    /// The proxy, e.g. `https://notifications.delta.chat/notify`.
    pub notify_url: String,
    /// Bound on one request (connect, TLS, request, response head).
    pub timeout: Duration,
    /// The first retry's wait; retry n waits `retry_base * 8^(n-1)`.
    pub retry_base: Duration,
    /// No retry starts later than this after the delivery.
    pub deadline: Duration,
    /// Jobs held at most (waiting, in flight, or waiting to retry).
    pub queue: usize,
    /// Jobs one account may hold at most.
    pub queue_per_account: usize,
    /// Requests in flight at once.
    pub workers: usize,
}

/// Checks a `notify_url`: https, or http to this machine only (tests).
pub fn check_notify_url(url: &str) -> Result<reqwest::Url, String> {
    let parsed = reqwest::Url::parse(url).map_err(|e| format!("not a URL: {e}"))?;
    let Some(host) = parsed.host_str().filter(|h| !h.is_empty()) else {
        return Err("the URL has no host".into());
    };
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    let loopback =
        bare.eq_ignore_ascii_case("localhost") || bare.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback());
    match parsed.scheme() {
        "https" => Ok(parsed),
        "http" if loopback => Ok(parsed),
        _ => Err("must be an https:// URL (http:// only to this machine)".into()),
    }
}

pub(crate) struct Notifier {
    queue: Arc<PushQueue>,
}

struct Worker {
    store: Store,
    queue: Arc<PushQueue>,
    client: reqwest::Client,
    url: reqwest::Url,
    retry_base: Duration,
    deadline: Duration,
}

impl Notifier {
    /// Starts the workers; they stop when `shutdown` is cancelled.
    pub(crate) fn start(
        store: Store,
        settings: PushSettings,
        shutdown: CancellationToken,
    ) -> Result<Notifier, DeltaChatError> {
        let url = check_notify_url(&settings.notify_url).map_err(DeltaChatError::Config)?;
        let client = client(settings.timeout)?;
        let queue = Arc::new(PushQueue::new(settings.queue, settings.queue_per_account));
        let worker = Arc::new(Worker {
            store,
            queue: queue.clone(),
            client,
            url,
            retry_base: settings.retry_base,
            deadline: settings.deadline,
        });
        for _ in 0..settings.workers.max(1) {
            let (worker, shutdown) = (worker.clone(), shutdown.clone());
            tokio::spawn(async move {
                loop {
                    let job = tokio::select! {
                        () = shutdown.cancelled() => return,
                        job = worker.queue.next() => job,
                    };
                    tokio::select! {
                        () = shutdown.cancelled() => return,
                        () = worker.send(job, &shutdown) => {}
                    }
                }
            });
        }
        Ok(Notifier { queue })
    }

    /// Queues one push per token; never waits.
    pub(crate) fn notify(&self, account: AccountId, tokens: Vec<String>) {
        for token in tokens {
            let fp = tokens::fingerprint(&token);
            let job = Job { account: account.0, token, first: Instant::now(), attempts: 0 };
            match self.queue.offer(job) {
                Ok(()) | Err(Refused::Duplicate) => {}
                Err(why) => {
                    tracing::warn!(account = account.0, token = %fp, ?why, "deltachat: push queue full, notification dropped")
                }
            }
        }
    }
}

/// An HTTPS client with the platform's roots and the one aws-lc-rs provider.
fn client(timeout: Duration) -> Result<reqwest::Client, DeltaChatError> {
    use rustls_platform_verifier::BuilderVerifierExt;
    let tls_err = |e: rustls::Error| DeltaChatError::Http(format!("TLS setup: {e}"));
    let tls = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::aws_lc_rs::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(tls_err)?
        .with_platform_verifier()
        .map_err(tls_err)?
        .with_no_client_auth();
    reqwest::Client::builder()
        .tls_backend_preconfigured(tls)
        // A redirect would hand device tokens to whoever the proxy names.
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(timeout)
        .timeout(timeout)
        .user_agent(concat!("coimail/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| DeltaChatError::Http(format!("HTTPS client: {e}")))
}

/// What one attempt came to.
enum Attempt {
    Delivered,
    Gone,
    Failed(String),
}

impl Worker {
    async fn attempt(&self, token: &str) -> Attempt {
        match self.client.post(self.url.clone()).body(token.to_owned()).send().await {
            Ok(r) if r.status().is_success() => Attempt::Delivered,
            Ok(r) if r.status() == reqwest::StatusCode::GONE => Attempt::Gone,
            Ok(r) => Attempt::Failed(format!("the proxy answered {}", r.status())),
            // reqwest's error text names the URL, never the body.
            Err(e) if e.is_timeout() => Attempt::Failed("timed out".into()),
            Err(e) => Attempt::Failed(e.to_string()),
        }
    }

    async fn send(self: &Arc<Self>, mut job: Job, shutdown: &CancellationToken) {
        job.attempts += 1;
        let fp = tokens::fingerprint(&job.token);
        match self.attempt(&job.token).await {
            Attempt::Delivered => {
                tracing::debug!(account = job.account, token = %fp, "deltachat: push sent");
                self.queue.done(job.account);
            }
            Attempt::Gone => {
                match tokens::remove(&self.store, AccountId(job.account), &job.token).await {
                    Ok(_) => {
                        tracing::info!(account = job.account, token = %fp, "deltachat: device token gone (410), deleted")
                    }
                    Err(e) => tracing::warn!(error = %e, "deltachat: deleting a gone device token failed"),
                }
                self.queue.done(job.account);
            }
            Attempt::Failed(why) => {
                let wait = backoff(self.retry_base, job.attempts);
                if job.first.elapsed().saturating_add(wait) > self.deadline {
                    tracing::warn!(account = job.account, token = %fp, %why, attempts = job.attempts,
                        "deltachat: push given up");
                    self.queue.done(job.account);
                    return;
                }
                tracing::info!(account = job.account, token = %fp, %why, retry_in = ?wait, "deltachat: push failed");
                let (me, shutdown) = (self.clone(), shutdown.clone());
                tokio::spawn(async move {
                    tokio::select! {
                        () = shutdown.cancelled() => {}
                        () = tokio::time::sleep(wait) => me.queue.requeue(job),
                    }
                });
            }
        }
    }
}

/// The wait before retry `n` (1 after the first failure): `base * 8^(n-1)`.
fn backoff(base: Duration, n: u32) -> Duration {
    let factor = BACKOFF_FACTOR.checked_pow(n.saturating_sub(1)).unwrap_or(u32::MAX);
    base.saturating_mul(factor)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_is_chatmails() {
        let base = Duration::from_secs(8);
        let waits: Vec<u64> = (1..=5).map(|n| backoff(base, n).as_secs()).collect();
        assert_eq!(waits, vec![8, 64, 512, 4096, 32768]);
        // With chatmail's 5 h deadline the fifth retry never happens.
        assert!(Duration::from_secs(32768) > Duration::from_secs(5 * 3600));
        assert_eq!(backoff(base, 100), Duration::MAX.min(base.saturating_mul(u32::MAX)));
    }

    #[test]
    fn notify_urls() {
        assert!(check_notify_url("https://notifications.delta.chat/notify").is_ok());
        assert!(check_notify_url("http://127.0.0.1:8080/notify").is_ok());
        assert!(check_notify_url("http://localhost/notify").is_ok());
        assert!(check_notify_url("http://notifications.delta.chat/notify").is_err());
        assert!(check_notify_url("ftp://x/").is_err());
        assert!(check_notify_url("notifications.delta.chat").is_err());
    }
}
