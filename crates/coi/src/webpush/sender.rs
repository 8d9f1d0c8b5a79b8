//! Asynchronous push delivery (R38/R39). Delivery code only ever calls [`Sender::enqueue`], which
//! never blocks: a full queue drops the push (with a log line and a counter) rather than slow mail
//! down. Behind the queue, at most `workers` HTTP exchanges run at once; a job waiting to retry
//! does not hold one, so a push service that answers 429 with a long Retry-After cannot stall
//! pushes to the others. Accounts share the queue fairly (`fair.rs`): each has a bounded part of
//! the queue and of the workers, and they take turns, so one account's stalled endpoints cannot
//! drop or delay another's pushes. Each job ends in exactly one [`Report`]. Validation pushes
//! ([`Sender::send_once`]) bypass the queue but not a bound: they take permits of their own.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio::sync::{Semaphore, mpsc};

use super::WebPushError;
use super::ece;
use super::fair::{FairQueue, Owned};
use super::http::{Endpoint, HttpClient, PushRequest, PushResponse};
use super::vapid::VapidKey;

/// R38: what Dovecot sends; a chat notification older than that is not worth showing.
const TTL_SECS: u32 = 30;
/// Upper bound on a push service's Retry-After, so one job cannot linger for hours.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(60);

/// How the sender behaves; see the daemon configuration for defaults.
#[derive(Debug, Clone)]
pub struct SenderSettings {
    /// Jobs waiting for a worker; beyond that `enqueue` drops.
    pub queue: usize,
    /// Concurrent HTTP exchanges.
    pub workers: usize,
    /// Jobs of one account waiting for a worker; beyond that its new pushes are dropped.
    pub queue_per_account: usize,
    /// Jobs of one account sending or waiting to retry at once: keep it below `workers` so
    /// other accounts always have workers left.
    pub workers_per_account: usize,
    /// Bound on one whole exchange (connect, TLS, request, response head).
    pub timeout: Duration,
    /// Attempts after the first for 429, 5xx and network errors.
    pub max_retries: u32,
    /// Delay before a retry when the push service gives no Retry-After.
    pub default_retry_delay: Duration,
    /// The VAPID `sub` claim, e.g. `mailto:postmaster@example.org`.
    pub subject: String,
}

/// One push to one subscription.
#[derive(Clone)]
pub struct PushJob {
    pub account: u64,
    /// Subscription id, for the report.
    pub subscription: String,
    pub endpoint: Endpoint,
    /// Subscriber's public key (65-byte uncompressed point).
    pub p256dh: Vec<u8>,
    /// Subscriber's auth secret (16 bytes).
    pub auth: Vec<u8>,
    /// Plaintext JSON; encrypted per attempt, never logged.
    pub payload: Vec<u8>,
    pub enqueued: Instant,
}

impl Owned for PushJob {
    fn account(&self) -> u64 {
        self.account
    }
}

impl std::fmt::Debug for PushJob {
    // The auth secret would let a reader of the log decrypt what the push service stores, and the
    // payload is the user's mail (sender, subject, body): neither is printed.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PushJob")
            .field("account", &self.account)
            .field("subscription", &self.subscription)
            .field("endpoint", &self.endpoint)
            .field("auth", &"<redacted>")
            .field("payload_len", &self.payload.len())
            .field("enqueued", &self.enqueued)
            .finish_non_exhaustive()
    }
}

/// How a job ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The push service took it (2xx; see [`is_accepted`]).
    Delivered,
    /// 404, 410 or another 4xx except 429: the subscription is dead; delete it (R39).
    Gone,
    /// Retries exhausted, or a failure that retrying cannot fix; keep the subscription.
    Failed(String),
}

/// The result of one job, for whoever maintains subscriptions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    pub account: u64,
    pub subscription: String,
    /// The endpoint this job pushed to: a `Gone` must only delete the subscription if it still
    /// points there (the client may have re-registered the id meanwhile).
    pub endpoint: Endpoint,
    pub outcome: Outcome,
    /// The last HTTP status seen, if any attempt got one.
    pub status: Option<u16>,
}

/// Handle to the push queue. Cloning is cheap; when every clone is gone the queue drains, the
/// running jobs finish and the report channel closes.
#[derive(Clone)]
pub struct Sender {
    queue: Arc<Closing>,
    shared: Arc<Shared>,
}

/// The queue as the handles see it: dropped with the last handle, which closes it.
struct Closing(Arc<FairQueue<PushJob>>);

impl Drop for Closing {
    fn drop(&mut self) {
        self.0.close();
    }
}

impl std::fmt::Debug for Sender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sender").field("dropped", &self.dropped()).finish_non_exhaustive()
    }
}

/// What the jobs need; deliberately without the queue's sending half so the queue can close.
struct Shared {
    vapid: Arc<VapidKey>,
    client: Arc<HttpClient>,
    settings: SenderSettings,
    /// Permits for concurrent HTTP exchanges (`workers`).
    exchanges: Semaphore,
    /// Permits for concurrent validation pushes (also `workers`): kept apart from `exchanges` so
    /// a backlog of message pushes cannot make SETMETADATA wait, yet still a bound, so clients
    /// cannot make the server open connections without limit.
    validations: Semaphore,
    dropped: AtomicU64,
}

/// What to do after one attempt.
enum Verdict {
    Done(Outcome),
    Retry { delay: Duration, why: String },
}

impl Sender {
    /// Starts the dispatcher on the current tokio runtime.
    pub fn start(
        vapid: Arc<VapidKey>,
        client: Arc<HttpClient>,
        settings: SenderSettings,
    ) -> (Sender, mpsc::UnboundedReceiver<Report>) {
        let queue_len = settings.queue.max(1);
        let workers = settings.workers.max(1);
        let jobs = Arc::new(FairQueue::new(queue_len, settings.queue_per_account, settings.workers_per_account));
        let (reports, report_rx) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared {
            vapid,
            client,
            settings,
            exchanges: Semaphore::new(workers),
            validations: Semaphore::new(workers),
            dropped: AtomicU64::new(0),
        });
        tokio::spawn(dispatch(shared.clone(), jobs.clone(), reports, queue_len));
        (Sender { queue: Arc::new(Closing(jobs)), shared }, report_rx)
    }

    /// Queues a push; `false` (and the push is dropped) when the queue or the account's share of
    /// it is full, or the sender is shut down.
    pub fn enqueue(&self, job: PushJob) -> bool {
        match self.queue.0.push(job) {
            Ok(()) => true,
            Err((why, job)) => {
                let total = self.shared.dropped.fetch_add(1, Ordering::Relaxed) + 1;
                metrics::counter!("coimail_push_failed_total", "reason" => "dropped").increment(1);
                tracing::warn!(
                    account = job.account,
                    subscription = %job.subscription,
                    dropped_total = total,
                    "push dropped: {}",
                    why.reason()
                );
                false
            }
        }
    }

    /// Pushes dropped by [`Sender::enqueue`] since start.
    pub fn dropped(&self) -> u64 {
        self.shared.dropped.load(Ordering::Relaxed)
    }

    /// One encrypted POST right now, no retry, not queued: the validation push (R32/R34) that
    /// SETMETADATA waits for. At most `workers` of them run at once; waiting for a turn and the
    /// exchange are each bounded by the configured timeout.
    pub async fn send_once(&self, job: &PushJob, validation: bool) -> Result<PushResponse, WebPushError> {
        let permit = tokio::time::timeout(self.shared.settings.timeout, self.shared.validations.acquire())
            .await
            .map_err(|_| WebPushError::Http("too many validation pushes in flight".into()))?
            .map_err(|_| WebPushError::Http("sender closed".into()))?;
        let result = self.shared.attempt(job, validation).await;
        drop(permit);
        result
    }
}

/// Moves jobs from the queue into tasks. `in_flight` caps queued-or-running jobs that left the
/// queue (those sleeping before a retry included), so memory stays bounded and a backlog shows up
/// as a full queue at `enqueue`.
async fn dispatch(
    shared: Arc<Shared>,
    jobs: Arc<FairQueue<PushJob>>,
    reports: mpsc::UnboundedSender<Report>,
    in_flight: usize,
) {
    let in_flight = Arc::new(Semaphore::new(in_flight));
    loop {
        let Ok(slot) = in_flight.clone().acquire_owned().await else { return };
        let Some(job) = jobs.next().await else { return };
        let (shared, reports, jobs) = (shared.clone(), reports.clone(), jobs.clone());
        tokio::spawn(async move {
            let account = job.account;
            let report = shared.run(job).await;
            // Nobody listening any more is fine: reports are advice.
            let _ = reports.send(report);
            jobs.done(account);
            drop(slot);
        });
    }
}

impl Shared {
    async fn run(&self, job: PushJob) -> Report {
        let host = job.endpoint.host.as_str();
        tracing::debug!(account = job.account, subscription = %job.subscription, host, waited_ms =
            job.enqueued.elapsed().as_millis() as u64, "push dequeued");
        let mut status = None;
        let mut attempt = 0u32;
        let outcome = loop {
            let result = match self.exchanges.acquire().await {
                Ok(_permit) => self.attempt(&job, false).await,
                Err(_) => Err(WebPushError::Http("sender closed".into())),
            };
            if let Ok(resp) = &result {
                status = Some(resp.status);
            }
            match verdict(result, self.settings.default_retry_delay) {
                Verdict::Done(outcome) => break outcome,
                Verdict::Retry { why, .. } if attempt >= self.settings.max_retries => {
                    break Outcome::Failed(format!("{why} (after {} attempts)", attempt + 1));
                }
                Verdict::Retry { delay, why } => {
                    tracing::debug!(account = job.account, subscription = %job.subscription, host,
                        delay_ms = delay.as_millis() as u64, "push will be retried: {why}");
                    attempt += 1;
                    tokio::time::sleep(delay).await;
                }
            }
        };
        match &outcome {
            Outcome::Delivered => {
                tracing::debug!(account = job.account, subscription = %job.subscription, host, "push delivered")
            }
            Outcome::Gone => tracing::info!(account = job.account, subscription = %job.subscription, host, status,
                "push service says the subscription is gone"),
            Outcome::Failed(why) => {
                tracing::info!(account = job.account, subscription = %job.subscription, host, "push failed: {why}")
            }
        }
        count_outcome(&outcome);
        Report { account: job.account, subscription: job.subscription, endpoint: job.endpoint, outcome, status }
    }

    async fn attempt(&self, job: &PushJob, validation: bool) -> Result<PushResponse, WebPushError> {
        let body = ece::encrypt(&job.payload, &job.p256dh, &job.auth)?;
        let now = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0);
        let authorization = self.vapid.authorization(&job.endpoint, &self.settings.subject, now)?;
        let req = PushRequest { endpoint: job.endpoint.clone(), authorization, body, ttl: TTL_SECS, validation };
        self.client.post(&req, self.settings.timeout).await
    }
}

/// Whether a push service took a push (message or validation push alike).
///
/// R32/R39 name 201 (RFC 8030 §5: a push service answers 201 Created), but any 2xx is taken:
/// 200 and 202 have been seen from push services in the wild, a 2xx means the service accepted
/// the message, and the validation round trip (the client sending the secret back) is what really
/// proves the endpoint, not the status code. Refusing a 200 would only lose working phones.
pub fn is_accepted(status: u16) -> bool {
    (200..300).contains(&status)
}

/// R39's table.
fn verdict(result: Result<PushResponse, WebPushError>, default_delay: Duration) -> Verdict {
    match result {
        Ok(resp) if is_accepted(resp.status) => Verdict::Done(Outcome::Delivered),
        Ok(resp) => match resp.status {
            429 | 500..=599 => Verdict::Retry {
                delay: resp.retry_after.map_or(default_delay, |d| d.min(MAX_RETRY_AFTER)),
                why: format!("status {}", resp.status),
            },
            400..=499 => Verdict::Done(Outcome::Gone),
            other => Verdict::Done(Outcome::Failed(format!("unexpected status {other}"))),
        },
        Err(e @ (WebPushError::Http(_) | WebPushError::Timeout)) => {
            Verdict::Retry { delay: default_delay, why: e.to_string() }
        }
        // Bad keys or a refused endpoint fail the same way every time.
        Err(e) => Verdict::Done(Outcome::Failed(e.to_string())),
    }
}

/// A queued push's final outcome, in `coimail_push_sent_total` and
/// `coimail_push_failed_total{reason}` (`gone`: the service dropped the
/// subscription; `error`: retries ran out or cannot help).
fn count_outcome(outcome: &Outcome) {
    match outcome {
        Outcome::Delivered => metrics::counter!("coimail_push_sent_total").increment(1),
        Outcome::Gone => metrics::counter!("coimail_push_failed_total", "reason" => "gone").increment(1),
        Outcome::Failed(_) => metrics::counter!("coimail_push_failed_total", "reason" => "error").increment(1),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::webpush::ece::SubscriberKeys;
    use crate::webpush::vapid::{parse_authorization, verify_jwt};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    /// What the test push service saw.
    #[derive(Debug)]
    struct Received {
        head: String,
        body: Vec<u8>,
    }

    /// A loopback push service answering the scripted heads in order (the last one repeats);
    /// `None` means accept and never answer.
    async fn push_service(script: Vec<Option<&'static str>>) -> (Endpoint, mpsc::UnboundedReceiver<Received>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            let mut held = Vec::new();
            for i in 0.. {
                let Ok((mut s, _)) = listener.accept().await else { return };
                let reply = script[i.min(script.len() - 1)];
                let Some(reply) = reply else {
                    held.push(s);
                    continue;
                };
                let tx = tx.clone();
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 4096];
                    let head_end = loop {
                        let n = s.read(&mut chunk).await.unwrap();
                        assert!(n > 0);
                        buf.extend_from_slice(&chunk[..n]);
                        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                            break i + 4;
                        }
                    };
                    let head = String::from_utf8(buf[..head_end].to_vec()).unwrap();
                    let len: usize = header(&head, "content-length").unwrap().parse().unwrap();
                    while buf.len() < head_end + len {
                        let n = s.read(&mut chunk).await.unwrap();
                        buf.extend_from_slice(&chunk[..n]);
                    }
                    let _ = tx.send(Received { head, body: buf[head_end..].to_vec() });
                    let _ = s.write_all(reply.as_bytes()).await;
                });
            }
        });
        (Endpoint::parse(&format!("http://127.0.0.1:{port}/push/send/1")).unwrap(), rx)
    }

    fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
        head.lines().find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }

    fn settings() -> SenderSettings {
        SenderSettings {
            queue: 16,
            workers: 2,
            queue_per_account: 16,
            workers_per_account: 2,
            timeout: Duration::from_secs(5),
            max_retries: 1,
            default_retry_delay: Duration::from_millis(10),
            subject: "mailto:postmaster@example.org".into(),
        }
    }

    fn job(endpoint: &Endpoint, phone: &SubscriberKeys, payload: &[u8]) -> PushJob {
        PushJob {
            account: 7,
            subscription: "31754ee7-d3ee-4226-b112-6895ed26fcf8".into(),
            endpoint: endpoint.clone(),
            p256dh: phone.public.to_vec(),
            auth: phone.auth.to_vec(),
            payload: payload.to_vec(),
            enqueued: Instant::now(),
        }
    }

    fn start(settings: SenderSettings) -> (Arc<VapidKey>, Sender, mpsc::UnboundedReceiver<Report>) {
        let vapid = Arc::new(VapidKey::generate().unwrap());
        let (sender, reports) = Sender::start(vapid.clone(), Arc::new(HttpClient::new(true).unwrap()), settings);
        (vapid, sender, reports)
    }

    const CREATED: &str = "HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n";

    #[tokio::test]
    async fn delivered_push_decrypts_and_carries_a_valid_vapid_jwt() {
        let (endpoint, mut seen) = push_service(vec![Some(CREATED)]).await;
        let (vapid, sender, mut reports) = start(settings());
        let phone = SubscriberKeys::generate().unwrap();
        let payload = br#"{"folder":"COI/Chats","uid":1}"#;
        assert!(sender.enqueue(job(&endpoint, &phone, payload)));
        let report = reports.recv().await.unwrap();
        assert_eq!(
            report,
            Report {
                account: 7,
                subscription: "31754ee7-d3ee-4226-b112-6895ed26fcf8".into(),
                endpoint: endpoint.clone(),
                outcome: Outcome::Delivered,
                status: Some(201)
            }
        );

        let got = seen.recv().await.unwrap();
        assert!(got.head.starts_with("POST /push/send/1 HTTP/1.1\r\n"), "{}", got.head);
        assert_eq!(header(&got.head, "ttl"), Some("30"));
        assert_eq!(header(&got.head, "content-encoding"), Some("aes128gcm"));
        assert_eq!(header(&got.head, "webpush-validation"), None);
        assert_eq!(ece::decrypt(&got.body, &phone.private, &phone.auth).unwrap(), payload);
        let (token, k) = parse_authorization(header(&got.head, "authorization").unwrap()).unwrap();
        assert_eq!(k, vapid.public_raw());
        let claims = verify_jwt(&token, &k).unwrap();
        assert_eq!(claims["aud"], "http://127.0.0.1");
        assert_eq!(claims["sub"], "mailto:postmaster@example.org");
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() as i64;
        assert!(claims["exp"].as_i64().unwrap() > now);
    }

    #[tokio::test]
    async fn gone_subscriptions_are_reported() {
        for (reply, status) in [
            ("HTTP/1.1 410 Gone\r\nContent-Length: 0\r\n\r\n", 410),
            ("HTTP/1.1 404 Not Found\r\n\r\n", 404),
            ("HTTP/1.1 403 Forbidden\r\n\r\n", 403),
        ] {
            let (endpoint, mut seen) = push_service(vec![Some(reply)]).await;
            let (_, sender, mut reports) = start(settings());
            assert!(sender.enqueue(job(&endpoint, &SubscriberKeys::generate().unwrap(), b"{}")));
            let report = reports.recv().await.unwrap();
            assert_eq!((report.outcome, report.status), (Outcome::Gone, Some(status)));
            seen.recv().await.unwrap();
            assert!(seen.try_recv().is_err(), "no retry after {status}");
        }
    }

    #[tokio::test]
    async fn too_many_requests_is_retried() {
        let (endpoint, mut seen) =
            push_service(vec![Some("HTTP/1.1 429 Too Many Requests\r\nRetry-After: 0\r\n\r\n"), Some(CREATED)]).await;
        let (_, sender, mut reports) = start(settings());
        let phone = SubscriberKeys::generate().unwrap();
        assert!(sender.enqueue(job(&endpoint, &phone, b"{}")));
        let report = reports.recv().await.unwrap();
        assert_eq!((report.outcome, report.status), (Outcome::Delivered, Some(201)));
        let (first, second) = (seen.recv().await.unwrap(), seen.recv().await.unwrap());
        assert_ne!(first.body, second.body, "each attempt is encrypted afresh");
    }

    #[tokio::test]
    async fn server_errors_fail_after_the_retries() {
        let (endpoint, mut seen) = push_service(vec![Some("HTTP/1.1 503 Busy\r\n\r\n")]).await;
        let (_, sender, mut reports) = start(SenderSettings { max_retries: 2, ..settings() });
        assert!(sender.enqueue(job(&endpoint, &SubscriberKeys::generate().unwrap(), b"{}")));
        let report = reports.recv().await.unwrap();
        assert!(matches!(&report.outcome, Outcome::Failed(why) if why.contains("503")), "{report:?}");
        assert_eq!(report.status, Some(503));
        for _ in 0..3 {
            seen.recv().await.unwrap();
        }
    }

    #[tokio::test]
    async fn a_silent_push_service_fails_within_the_timeout() {
        let (endpoint, _seen) = push_service(vec![None]).await;
        let (_, sender, mut reports) = start(SenderSettings { timeout: Duration::from_millis(200), ..settings() });
        let started = Instant::now();
        assert!(sender.enqueue(job(&endpoint, &SubscriberKeys::generate().unwrap(), b"{}")));
        let report = reports.recv().await.unwrap();
        assert!(matches!(&report.outcome, Outcome::Failed(why) if why.contains("in time")), "{report:?}");
        assert_eq!(report.status, None);
        // Two attempts of 200 ms and one 10 ms pause, with slack for a loaded machine.
        assert!(started.elapsed() < Duration::from_secs(3), "{:?}", started.elapsed());
    }

    #[tokio::test]
    async fn bad_subscriber_keys_fail_without_retry() {
        let (endpoint, mut seen) = push_service(vec![Some(CREATED)]).await;
        let (_, sender, mut reports) = start(settings());
        let mut bad = job(&endpoint, &SubscriberKeys::generate().unwrap(), b"{}");
        bad.p256dh.truncate(10);
        assert!(sender.enqueue(bad));
        let report = reports.recv().await.unwrap();
        assert!(matches!(report.outcome, Outcome::Failed(_)), "{report:?}");
        assert!(seen.try_recv().is_err());
    }

    #[tokio::test]
    async fn a_full_queue_drops_instead_of_blocking() {
        let (endpoint, _seen) = push_service(vec![None]).await;
        let (_, sender, _reports) = start(SenderSettings { queue: 1, workers: 1, ..settings() });
        let phone = SubscriberKeys::generate().unwrap();
        // On this single-threaded test runtime the dispatcher cannot run between these calls.
        assert!(sender.enqueue(job(&endpoint, &phone, b"{}")));
        assert!(!sender.enqueue(job(&endpoint, &phone, b"{}")));
        assert!(!sender.enqueue(job(&endpoint, &phone, b"{}")));
        assert_eq!(sender.dropped(), 2);
    }

    #[tokio::test]
    async fn one_accounts_stalled_endpoints_neither_drop_nor_delay_anothers_push() {
        // Account 7's push service accepts and never answers: each of its pushes holds a worker
        // for the whole timeout. It gets one of the two workers and four places in the queue.
        let (stalled, _held) = push_service(vec![None]).await;
        let (fine, mut seen) = push_service(vec![Some(CREATED)]).await;
        let (_, sender, _reports) = start(SenderSettings {
            queue: 8,
            queue_per_account: 4,
            workers_per_account: 1,
            timeout: Duration::from_secs(10),
            ..settings()
        });
        let phone = SubscriberKeys::generate().unwrap();
        let queued = (0..8).filter(|_| sender.enqueue(job(&stalled, &phone, b"{}"))).count();
        assert_eq!((queued, sender.dropped()), (4, 4), "account 7 keeps to its share");
        let started = Instant::now();
        for n in 0..3u8 {
            assert!(sender.enqueue(PushJob { account: 8, ..job(&fine, &phone, &[b'0' + n]) }), "room for account 8");
            let got = tokio::time::timeout(Duration::from_secs(5), seen.recv()).await.unwrap().unwrap();
            assert_eq!(ece::decrypt(&got.body, &phone.private, &phone.auth).unwrap(), [b'0' + n]);
        }
        assert!(started.elapsed() < Duration::from_secs(5), "account 8 waited: {:?}", started.elapsed());
    }

    #[tokio::test]
    async fn validation_push_is_sent_once_with_the_header() {
        let (endpoint, mut seen) = push_service(vec![Some("HTTP/1.1 410 Gone\r\n\r\n")]).await;
        let (_, sender, mut reports) = start(settings());
        let phone = SubscriberKeys::generate().unwrap();
        let payload = br#"{"validation":"B/ctyEELqG7Rwo3FL/kGaLkkCMatjzJzcjv1NmqDoAw="}"#;
        let resp = sender.send_once(&job(&endpoint, &phone, payload), true).await.unwrap();
        assert_eq!(resp.status, 410);
        let got = seen.recv().await.unwrap();
        assert_eq!(header(&got.head, "webpush-validation"), Some(""));
        assert_eq!(ece::decrypt(&got.body, &phone.private, &phone.auth).unwrap(), payload);
        drop(sender);
        assert!(reports.recv().await.is_none(), "send_once reports nothing; the channel closes with the sender");
    }

    #[tokio::test]
    async fn validation_pushes_are_bounded_by_their_own_permits() {
        // A push service that accepts and never answers: each validation push holds its permit
        // until the timeout, so with one worker only one connection may be open at a time.
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let endpoint =
            Endpoint::parse(&format!("http://127.0.0.1:{}/v", listener.local_addr().unwrap().port())).unwrap();
        let accepted = Arc::new(AtomicU64::new(0));
        let count = accepted.clone();
        tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((s, _)) = listener.accept().await {
                count.fetch_add(1, Ordering::SeqCst);
                held.push(s);
            }
        });
        let (_, sender, _reports) =
            start(SenderSettings { workers: 1, timeout: Duration::from_millis(400), ..settings() });
        let phone = SubscriberKeys::generate().unwrap();
        let tasks: Vec<_> = (0..3)
            .map(|_| {
                let (sender, job) = (sender.clone(), job(&endpoint, &phone, b"{}"));
                tokio::spawn(async move { sender.send_once(&job, true).await })
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(accepted.load(Ordering::SeqCst), 1, "one validation push at a time");
        for task in tasks {
            assert!(task.await.unwrap().is_err());
        }
        // Queued message pushes have their own permits: a validation push does not block them.
        let (endpoint2, mut seen) = push_service(vec![Some(CREATED)]).await;
        assert!(sender.enqueue(job(&endpoint2, &phone, b"{}")));
        seen.recv().await.unwrap();
    }

    #[test]
    fn debug_hides_secrets_and_payload() {
        let endpoint = Endpoint::parse("https://push.example.com/x").unwrap();
        let mut j = job(&endpoint, &SubscriberKeys::generate().unwrap(), b"{\"subject\":\"TOP SECRET\"}");
        j.auth = vec![0xab; 16];
        let shown = format!("{j:?}");
        assert!(!shown.contains("TOP SECRET") && !shown.contains("[171"), "{shown}");
        assert!(shown.contains("<redacted>") && shown.contains("push.example.com"), "{shown}");
    }

    #[test]
    fn any_2xx_is_accepted() {
        assert!(is_accepted(201) && is_accepted(200) && is_accepted(202) && is_accepted(299));
        assert!(!is_accepted(199) && !is_accepted(300) && !is_accepted(410) && !is_accepted(429));
    }
}
