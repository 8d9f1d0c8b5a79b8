//! The metrics listener (`[listen] metrics`, loopback by default): plain
//! HTTP/1.1 served by axum, two routes.
//!
//! - `GET /metrics`: every metric in the Prometheus text format, rendered by
//!   metrics-exporter-prometheus. The crates where things happen count them
//!   through the `metrics` facade (a line each; libraries depend on the
//!   facade only); snapshots of state (sessions, queue size and age, free
//!   space) are read from this daemon when scraped. [`METRICS`] lists them
//!   all; docs/METRICS.md says the same for people.
//! - `GET /healthz`: `200 ok` when a probe commit to the store
//!   ([`coimail_store::Store::probe`]: free space above the reserve, a file
//!   fsync'd where bodies go, an index commit) succeeds within
//!   [`PROBE_TIMEOUT`]; otherwise `503` and the reason. At most one probe
//!   runs at a time and a result is reused for [`PROBE_REUSE`], so a client
//!   polling hard costs one small fsync a second at most.
//!
//! # One recorder per process
//! The facade's macros report to one global recorder, which can be set once
//! per process. The daemon installs a Prometheus recorder the first time a
//! daemon with a metrics listener starts ([`install`]) and every later
//! daemon in the process (the in-process tests start many) shares it and
//! its handle. So event counters are per process, not per daemon: per-daemon
//! recorders would need every protocol crate to carry a recorder handle
//! (against the facade's point, and noisy in code others edit), and a
//! production process runs one daemon. Snapshot gauges are set from the
//! daemon being scraped just before rendering. Tests that count exactly run
//! the daemon as a child process (tests/metrics.rs). Without a metrics
//! listener nothing is installed and the macros cost next to nothing.
//!
//! Histograms are kept as samples until drained; a thread started with the
//! recorder drains them every [`UPKEEP_EVERY`] (the exporter's own upkeep
//! task comes only with its HTTP listener, which we do not use).

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use coimail_imap::ImapContext;
use coimail_smtp::SmtpContext;
use coimail_store::{Store, StoreError};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{error, info, warn};

/// How long `/healthz` waits for the store's probe commit.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(5);
/// How long one probe's result answers `/healthz`.
pub const PROBE_REUSE: Duration = Duration::from_secs(1);
/// How often histogram samples are drained into their buckets.
const UPKEEP_EVERY: Duration = Duration::from_secs(5);

/// Upper bounds, in seconds, of `coimail_store_commit_seconds`' buckets: a
/// group commit is an fsync or two, ~0.1 ms on NVMe, a few ms on SATA SSDs,
/// 10-30 ms on spinning disks; seconds mean trouble.
const COMMIT_BUCKETS: &[f64] = &[0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

/// What a metric is, for its `# TYPE` line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
    Histogram,
}

/// Every metric coimail exports: name, kind, help text. docs/METRICS.md
/// lists the same names (tests/metrics.rs checks).
pub const METRICS: &[(&str, Kind, &str)] = &[
    (
        "coimail_connections_total",
        Kind::Counter,
        "Connections accepted, by protocol and listener (refused ones over the caps included).",
    ),
    ("coimail_sessions", Kind::Gauge, "Sessions open now, by protocol (imap, smtp)."),
    ("coimail_logins_total", Kind::Counter, "Login attempts by protocol and result (ok, failed, throttled, error)."),
    ("coimail_imap_idle_sessions", Kind::Gauge, "IMAP sessions in IDLE now."),
    (
        "coimail_messages_received_total",
        Kind::Counter,
        "Messages accepted over SMTP (250 sent), by listener kind (mx, submission).",
    ),
    (
        "coimail_messages_delivered_local_total",
        Kind::Counter,
        "Copies of received messages stored in local mailboxes (one per recipient account).",
    ),
    ("coimail_queue_enqueued_total", Kind::Counter, "Messages put into the outbound queue."),
    ("coimail_queue_sent_total", Kind::Counter, "Queued recipients a remote server accepted."),
    (
        "coimail_queue_deferred_total",
        Kind::Counter,
        "Delivery attempts to queued recipients that failed temporarily (retried later).",
    ),
    (
        "coimail_queue_bounced_total",
        Kind::Counter,
        "Queued recipients that failed for good (bounced to the sender when asked for).",
    ),
    ("coimail_queue_size", Kind::Gauge, "Messages in the outbound queue now."),
    (
        "coimail_queue_oldest_age_seconds",
        Kind::Gauge,
        "Age of the oldest message in the outbound queue (0 when empty).",
    ),
    ("coimail_push_sent_total", Kind::Counter, "WebPush notifications a push service accepted."),
    (
        "coimail_push_failed_total",
        Kind::Counter,
        "WebPush notifications not delivered, by reason (gone, error, dropped).",
    ),
    (
        "coimail_store_commit_seconds",
        Kind::Histogram,
        "Time a durable store commit (index flush and journal fsync, shared by concurrent writers) took.",
    ),
    (
        "coimail_store_unsynced_bodies",
        Kind::Gauge,
        "Body files written without fsync whose octets are durable in the journal until a checkpoint syncs them.",
    ),
    ("coimail_disk_free_bytes", Kind::Gauge, "Bytes free for the daemon on the data dir's filesystem."),
    (
        "coimail_disk_reserve_bytes",
        Kind::Gauge,
        "The free-space reserve on the data dir's filesystem; below it new mail is refused.",
    ),
];

static RECORDER: OnceLock<PrometheusHandle> = OnceLock::new();

/// The process's Prometheus recorder, installed as the global one at the
/// first call (see "One recorder per process").
pub fn install() -> &'static PrometheusHandle {
    RECORDER.get_or_init(|| {
        let builder = PrometheusBuilder::new();
        let builder = match builder
            .set_buckets_for_metric(Matcher::Full("coimail_store_commit_seconds".into()), COMMIT_BUCKETS)
        {
            Ok(b) => b,
            Err(e) => {
                error!(error = %e, "commit latency buckets refused; exported as a summary");
                PrometheusBuilder::new()
            }
        };
        let recorder = builder.build_recorder();
        let handle = recorder.handle();
        if let Err(e) = ::metrics::set_global_recorder(recorder) {
            // Only an embedding program could have done this; its recorder
            // gets the counts, ours stays empty.
            error!(error = %e, "another metrics recorder is installed in this process; /metrics will be empty");
        }
        describe_and_zero();
        let upkeep = handle.clone();
        let spawned = std::thread::Builder::new().name("metrics-upkeep".into()).spawn(move || {
            loop {
                std::thread::sleep(UPKEEP_EVERY);
                upkeep.run_upkeep();
            }
        });
        if let Err(e) = spawned {
            warn!(error = %e, "no metrics upkeep thread; histogram samples are drained at scrapes only");
        }
        handle
    })
}

/// HELP lines for every metric, and counters at 0 for the label values known
/// up front, so a rate is defined from the first scrape on.
fn describe_and_zero() {
    for &(name, kind, help) in METRICS {
        match kind {
            Kind::Counter => ::metrics::describe_counter!(name, help),
            Kind::Gauge => ::metrics::describe_gauge!(name, help),
            Kind::Histogram => ::metrics::describe_histogram!(name, help),
        }
    }
    for (protocol, listener) in
        [("imap", "imap"), ("imap", "imaps"), ("smtp", "smtp"), ("smtp", "submission"), ("smtp", "submissions")]
    {
        ::metrics::counter!("coimail_connections_total", "protocol" => protocol, "listener" => listener).absolute(0);
    }
    for protocol in ["imap", "smtp"] {
        for result in ["ok", "failed"] {
            ::metrics::counter!("coimail_logins_total", "protocol" => protocol, "result" => result).absolute(0);
        }
    }
    for reason in ["gone", "error", "dropped"] {
        ::metrics::counter!("coimail_push_failed_total", "reason" => reason).absolute(0);
    }
    for via in ["mx", "submission"] {
        ::metrics::counter!("coimail_messages_received_total", "via" => via).absolute(0);
    }
    for name in [
        "coimail_messages_delivered_local_total",
        "coimail_queue_enqueued_total",
        "coimail_queue_sent_total",
        "coimail_queue_deferred_total",
        "coimail_queue_bounced_total",
        "coimail_push_sent_total",
    ] {
        ::metrics::counter!(name).absolute(0);
    }
    ::metrics::gauge!("coimail_imap_idle_sessions").increment(0.0);
    // The store's checkpoint sets it every half second; 0 until then.
    ::metrics::gauge!("coimail_store_unsynced_bodies").increment(0.0);
}

/// What a scrape reads from this daemon.
pub(crate) struct Sources {
    pub store: Store,
    pub imap: Arc<ImapContext>,
    pub smtp: Arc<SmtpContext>,
}

struct Shared {
    sources: Sources,
    handle: &'static PrometheusHandle,
    probe: tokio::sync::Mutex<Probe>,
}

/// The last probe's result, and a probe still running past its timeout
/// (awaited by the next request instead of starting a second one).
#[derive(Default)]
struct Probe {
    last: Option<(Instant, Result<(), String>)>,
    running: Option<JoinHandle<coimail_store::Result<()>>>,
}

/// Warns when metrics are reachable from other hosts: they carry no login.
pub(crate) fn warn_if_public(addrs: &[std::net::SocketAddr]) {
    for a in addrs.iter().filter(|a| !a.ip().is_loopback()) {
        warn!(addr = %a, "the metrics listener is not on loopback: whoever reaches it reads the counters, without a login");
    }
}

/// Serves `/metrics` and `/healthz` on each listener until `shutdown`.
pub(crate) fn serve(
    listeners: Vec<TcpListener>,
    sources: Sources,
    shutdown: &CancellationToken,
    tracker: &TaskTracker,
) {
    if listeners.is_empty() {
        return;
    }
    let shared = Arc::new(Shared { sources, handle: install(), probe: tokio::sync::Mutex::new(Probe::default()) });
    let app = Router::new().route("/metrics", get(metrics)).route("/healthz", get(healthz)).with_state(shared);
    for listener in listeners {
        let (app, stop) = (app.clone(), shutdown.clone());
        tracker.spawn(async move {
            let addr = listener.local_addr().ok();
            info!(?addr, "metrics listening");
            if let Err(e) = axum::serve(listener, app).with_graceful_shutdown(stop.cancelled_owned()).await {
                error!(?addr, error = %e, "metrics listener failed");
            }
        });
    }
}

async fn metrics(State(shared): State<Arc<Shared>>) -> Response {
    shared.sources.refresh().await;
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], shared.handle.render()).into_response()
}

async fn healthz(State(shared): State<Arc<Shared>>) -> Response {
    match shared.health().await {
        Ok(()) => (StatusCode::OK, "ok\n").into_response(),
        Err(why) => (StatusCode::SERVICE_UNAVAILABLE, format!("{why}\n")).into_response(),
    }
}

impl Sources {
    /// Sets the snapshot gauges from this daemon's state.
    async fn refresh(&self) {
        ::metrics::gauge!("coimail_sessions", "protocol" => "imap").set(self.imap.open_sessions() as f64);
        ::metrics::gauge!("coimail_sessions", "protocol" => "smtp").set(self.smtp.open_sessions() as f64);
        // Reads every queue entry: off the async threads.
        let store = self.store.clone();
        let read = tokio::task::spawn_blocking(move || (store.spool_list(), store.space())).await;
        let Ok((queue, space)) = read else { return };
        match queue {
            Ok(entries) => {
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs() as i64);
                let oldest = entries.iter().map(|e| e.queued_at).min().map_or(0, |t| now.saturating_sub(t).max(0));
                ::metrics::gauge!("coimail_queue_size").set(entries.len() as f64);
                ::metrics::gauge!("coimail_queue_oldest_age_seconds").set(oldest as f64);
            }
            Err(e) => warn!(error = %e, "metrics: cannot read the outbound queue"),
        }
        match space {
            Ok(s) => {
                ::metrics::gauge!("coimail_disk_free_bytes").set(s.available as f64);
                ::metrics::gauge!("coimail_disk_reserve_bytes").set(s.reserve as f64);
            }
            Err(e) => warn!(error = %e, "metrics: cannot measure the data dir's free space"),
        }
    }
}

impl Shared {
    /// `Ok` when the store can commit now; else why not, for the 503's body.
    async fn health(&self) -> Result<(), String> {
        let deadline = tokio::time::Instant::now() + PROBE_TIMEOUT;
        let timed_out = || format!("store cannot commit: no commit within {} s", PROBE_TIMEOUT.as_secs());
        let Ok(mut probe) = tokio::time::timeout_at(deadline, self.probe.lock()).await else {
            return Err(timed_out());
        };
        if let Some((at, result)) = &probe.last
            && at.elapsed() < PROBE_REUSE
        {
            return result.clone();
        }
        let mut running = probe.running.take().unwrap_or_else(|| {
            let store = self.sources.store.clone();
            tokio::spawn(async move { store.probe().await })
        });
        let result = match tokio::time::timeout_at(deadline, &mut running).await {
            Err(_) => {
                probe.running = Some(running);
                Err(timed_out())
            }
            Ok(Err(e)) => Err(format!("store probe failed: {e}")),
            Ok(Ok(Ok(()))) => Ok(()),
            Ok(Ok(Err(StoreError::DiskFull))) => Err(self.disk_full()),
            Ok(Ok(Err(e))) => Err(format!("store cannot commit: {e}")),
        };
        let was_ok = probe.last.as_ref().is_none_or(|(_, r)| r.is_ok());
        match &result {
            Err(why) if was_ok => error!("health check failing: {why}"),
            Ok(()) if !was_ok => info!("health check passing again"),
            _ => {}
        }
        probe.last = Some((Instant::now(), result.clone()));
        result
    }

    /// Why a probe met a full disk: the reserve, or the disk itself.
    fn disk_full(&self) -> String {
        match self.sources.store.space() {
            Ok(s) if s.low() => format!(
                "store refuses new mail: {} bytes free on the data dir's filesystem, below the free-space \
                 reserve of {} bytes (store.min_free_percent / store.min_free_mb)",
                s.available, s.reserve
            ),
            _ => "store cannot commit: the data dir's filesystem is full".to_owned(),
        }
    }
}
