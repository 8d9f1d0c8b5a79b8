//! coimail-daemon: wiring only. It knows every crate and owns no protocol
//! logic: it validates the config, opens the store and directory, binds every
//! listener, builds TLS, and hands each listener to its protocol crate.
//!
//! # Startup order ([`start`])
//! 1. Validate the config (the caller loaded it; errors name the key).
//! 2. Open the store on a blocking thread (sled allows one process per
//!    database: a second daemon fails here with a clear message).
//! 3. Open the directory; if the index was lost but the directory snapshot
//!    survives, restore users from it and re-index every body file.
//! 4. Reconcile body files with the index after an unclean stop; release
//!    the outbound queue's leases (always: their holder is gone).
//! 5. Load TLS, then bind **every** listener before serving anything, so
//!    port 0 resolves and a taken port fails the start, not a later request.
//! 6. Start COI (VAPID key in `<data>/vapid.p8`, push workers) and Delta
//!    Chat's push notifier, build the outbound queue (resolver, client TLS,
//!    DKIM keys in `<data>/dkim/`), then spawn IMAP, SMTP, HTTP(S), the queue
//!    runner, the admin socket and the metrics listener (`metrics.rs`: the
//!    process's Prometheus recorder is installed before anything is served),
//!    each with its shutdown token.
//!
//! # Shutdown ([`Running::shutdown`])
//! Cancel the token (listeners stop accepting, sessions finish the command
//! or transaction in progress and say goodbye), wait for sessions up to the
//! grace period, flush, and mark the store cleanly closed if nothing was cut off.

pub mod acme;
pub mod admin;
pub mod certs;
pub mod chatmail;
pub mod config;
pub mod metrics;
pub mod telemetry;
pub mod tls;

pub use config::Config;

use coimail_delivery::dkim::{Dkim, KeyStore};
use coimail_delivery::{Outbound, Queue, ReportLimit, Runner, attempt};
use coimail_directory::Directory;
use coimail_imap::{ImapContext, ImapListener};
use coimail_smtp::{Pool, SmtpContext, SmtpListener};
use coimail_store::Store;
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info, warn};

/// Bound on each DNS query of the inbound checks; a server that does not
/// answer in time is a temporary failure (`451`), not a pass.
const INBOUND_DNS_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error(transparent)]
    Config(#[from] config::ConfigError),
    #[error(transparent)]
    Tls(#[from] tls::TlsError),
    #[error("store: {0}")]
    Store(#[from] coimail_store::StoreError),
    #[error("directory: {0}")]
    Directory(#[from] coimail_directory::DirectoryError),
    #[error("outbound queue: {0}")]
    Delivery(#[from] coimail_delivery::DeliveryError),
    #[error("cannot listen on {addr} ({service}): {source}")]
    Bind { service: &'static str, addr: SocketAddr, source: std::io::Error },
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("another coimail is already running on this data dir (its admin socket {0} answers)")]
    AlreadyRunning(PathBuf),
    #[error("the data dir is locked by another process (is coimail already running?): {0}")]
    Locked(String),
    #[error("{0}")]
    Other(String),
}

impl DaemonError {
    pub(crate) fn io(path: &Path, source: std::io::Error) -> Self {
        DaemonError::Io { path: path.to_owned(), source }
    }
}

/// The addresses each service actually listens on (port 0 resolved).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BoundAddrs {
    pub imap: Vec<SocketAddr>,
    pub imaps: Vec<SocketAddr>,
    pub smtp: Vec<SocketAddr>,
    pub submission: Vec<SocketAddr>,
    pub submissions: Vec<SocketAddr>,
    #[serde(default)]
    pub https: Vec<SocketAddr>,
    #[serde(default)]
    pub http: Vec<SocketAddr>,
    #[serde(default)]
    pub metrics: Vec<SocketAddr>,
}

/// A started daemon.
pub struct Running {
    addrs: BoundAddrs,
    store: Store,
    directory: Directory,
    shutdown: CancellationToken,
    tracker: TaskTracker,
    grace: Duration,
    admin_socket: PathBuf,
    tls: certs::TlsHandle,
}

/// Opens the store and directory of `config`, restoring and reconciling as
/// needed. Used by `start` and by the CLI when no daemon runs.
pub async fn open_data(config: &Config) -> Result<(Store, Directory), DaemonError> {
    let data = config.server.data_dir.clone();
    create_private_dir(&data)?;
    let options = config.store_options();
    let store = tokio::task::spawn_blocking(move || Store::open(&data, &options))
        .await
        .map_err(|e| DaemonError::Other(format!("store open task failed: {e}")))?
        .map_err(|e| match e {
            coimail_store::StoreError::Io(io) if io.kind() == std::io::ErrorKind::WouldBlock => {
                DaemonError::Locked(io.to_string())
            }
            coimail_store::StoreError::Io(io) if io.to_string().contains("lock") => DaemonError::Locked(io.to_string()),
            other => DaemonError::Store(other),
        })?;
    let snapshot = config.directory_snapshot();
    if let Some(aside) = store.healed_from() {
        if !snapshot.exists() {
            return Err(DaemonError::Other(format!(
                "the index was damaged and was moved to {}; a new one can be built from the body files, but \
                 users live only in {}, which is missing: restore it from a backup, then run `coimail store rebuild`",
                aside.display(),
                snapshot.display()
            )));
        }
        warn!(old_index = %aside.display(), "rebuilding the index: users from {}, mail from the body files and the journal", snapshot.display());
    }
    let mut directory = Directory::open_with(&store, Some(snapshot.clone()), config.auth_options())?;
    directory.set_default_quota(config.default_quota());
    let mut force_reconcile = false;
    if directory.list_domains()?.is_empty() && directory.list_users()?.is_empty() && snapshot.exists() {
        // The index is gone but the snapshot is not: bring users back, then
        // their mail from the body files.
        let users = Directory::restore(&store, &snapshot).await?;
        warn!(users, "index had no directory; restored it from {}", snapshot.display());
        directory = Directory::open_with(&store, Some(snapshot), config.auth_options())?;
        directory.set_default_quota(config.default_quota());
        force_reconcile = true;
    }
    let report = store.reconcile(force_reconcile).await?;
    if let Some(aside) = store.healed_from() {
        warn!(?report, old_index = %aside.display(), "the damaged index was replaced by a rebuilt one; the old one can be deleted once all mail is confirmed there");
    } else if report != Default::default() {
        info!(?report, "reconciled message files with the index");
    }
    let spool = store.spool_recover().await?;
    if spool != Default::default() {
        info!(?spool, "recovered the outbound queue");
    }
    Ok((store, directory))
}

/// Creates the data dir with mode 0700, or makes one made by hand (often
/// 0755) private: it holds every user's mail, the index and the queue.
fn create_private_dir(dir: &Path) -> Result<(), DaemonError> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    if !dir.exists() {
        std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir).map_err(|e| DaemonError::io(dir, e))?;
        return Ok(());
    }
    let mode = std::fs::metadata(dir).map_err(|e| DaemonError::io(dir, e))?.permissions().mode() & 0o7777;
    if mode & 0o077 != 0 {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(mode & 0o700))
            .map_err(|e| DaemonError::io(dir, e))?;
        warn!(
            "data dir {} was mode {mode:04o}, readable by other users; set it to {:04o}",
            dir.display(),
            mode & 0o700
        );
    }
    Ok(())
}

async fn bind_all(service: &'static str, addrs: &[SocketAddr]) -> Result<Vec<TcpListener>, DaemonError> {
    let mut out = Vec::with_capacity(addrs.len());
    for &addr in addrs {
        let l = TcpListener::bind(addr).await.map_err(|source| DaemonError::Bind { service, addr, source })?;
        out.push(l);
    }
    Ok(out)
}

fn local_addrs(listeners: &[TcpListener]) -> Vec<SocketAddr> {
    listeners.iter().filter_map(|l| l.local_addr().ok()).collect()
}

/// The outbound queue's enqueue handle and its runner (not yet running).
fn outbound_queue(
    config: &Config,
    store: &Store,
    directory: &Directory,
    dkim: &Dkim,
    reports: &ReportLimit,
    deltachat: &coimail_deltachat::DeltaChat,
) -> Result<(Queue, Runner<Outbound>), DaemonError> {
    let delivery = config.delivery();
    let mut queue = Queue::new(store.clone());
    if config.dkim.sign {
        queue = queue.with_dkim(dkim.clone());
    }
    let mut ctx = attempt::Context::new(store.clone(), directory.clone(), Outbound::new(&delivery)?, &delivery);
    ctx.reports = reports.clone();
    // A bounce filed into a sender's INBOX pushes to their devices like any delivery.
    let deltachat = deltachat.clone();
    ctx.on_report_delivered = Some(std::sync::Arc::new(move |copies, raw| deltachat.delivered(copies, raw)));
    let runner = Runner::new(ctx, queue.clone(), delivery.concurrency);
    Ok((queue, runner))
}

fn smtp_context(
    config: &Config,
    store: &Store,
    directory: &Directory,
    tls: Option<coimail_tls::TlsAcceptor>,
) -> SmtpContext {
    let smtp = coimail_smtp::SmtpConfig {
        hostname: config.server.hostname.clone(),
        max_message_bytes: config.smtp.max_message_bytes,
        max_recipients: config.smtp.max_recipients,
        plaintext_auth: config.auth.plaintext,
        timeouts: config.smtp_timeouts(),
        mx_pool: Pool { max: config.smtp.mx_max_connections, max_per_ip: config.smtp.mx_max_connections_per_ip },
        submission_pool: Pool {
            max: config.smtp.submission_max_connections,
            max_per_ip: config.smtp.submission_max_connections_per_ip,
        },
        max_messages_per_hour: config.smtp.max_messages_per_hour,
        mx_messages_per_peer_per_hour: config.smtp.mx_messages_per_peer_per_hour,
        mx_messages_per_recipient_per_hour: config.smtp.mx_messages_per_recipient_per_hour,
    };
    SmtpContext::new(store.clone(), directory.clone(), tls, smtp)
}

/// The HTTP(S) listeners' context: what clients are told comes from the
/// bound addresses (port 0 resolved), so it is always what is served.
fn http_context(
    config: &Config,
    addrs: &BoundAddrs,
    directory: &Directory,
    tls: Option<coimail_tls::TlsAcceptor>,
    http01: Option<acme::Http01Store>,
) -> Result<coimail_http::HttpContext, DaemonError> {
    let port = |a: &[SocketAddr]| a.first().map(SocketAddr::port);
    // Implicit-TLS listeners serve nothing without TLS; don't advertise them.
    let with_tls = |a: &[SocketAddr]| if tls.is_some() { port(a) } else { None };
    let services = coimail_http::MailServices::new(
        with_tls(&addrs.imaps),
        port(&addrs.imap),
        with_tls(&addrs.submissions),
        port(&addrs.submission),
    );
    let http = coimail_http::HttpConfig {
        hostname: config.server.hostname.trim_end_matches('.').to_ascii_lowercase(),
        services,
        mta_sts_policy: config.mta_sts_policy().to_text(),
        https_port: with_tls(&addrs.https),
        max_connections: config.http.max_connections,
        max_connections_per_ip: config.http.max_connections_per_ip,
    };
    let [https_proxy, http_proxy] = config.listen.proxy_protocol_from.parsed_http()?;
    // HTTP/1.1 only (no h2 here); validations are still answered by `accept`.
    let tls = tls.map(|t| t.with_alpn(&[b"http/1.1"]));
    let mut ctx = coimail_http::HttpContext::new(directory.clone(), tls, http)
        .with_proxy_protocol(coimail_http::HttpListener::Https, https_proxy)
        .with_proxy_protocol(coimail_http::HttpListener::Http, http_proxy);
    if let Some(store) = http01 {
        ctx = ctx.with_http01(Arc::new(store));
    }
    Ok(ctx)
}

/// The MX listener's SPF/DKIM/ARC/DMARC/iprev checks, resolving where the
/// queue does; `None` when `smtp.inbound_checks` is off.
fn inbound_checks(config: &Config) -> Result<Option<coimail_smtp::inbound::Checker>, DaemonError> {
    if !config.smtp.inbound_checks {
        warn!("smtp.inbound_checks is off: mail on the MX port is not checked (SPF, DKIM, DMARC)");
        return Ok(None);
    }
    let resolver = coimail_delivery::dns::resolver(&config.queue.resolvers, INBOUND_DNS_TIMEOUT)
        .map_err(|e| DaemonError::Other(format!("inbound checks: {e}")))?;
    Ok(Some(coimail_smtp::inbound::Checker::new(resolver, &config.server.hostname)))
}

/// Starts the daemon; returns once every listener is bound and serving.
pub async fn start(config: Config) -> Result<Running, DaemonError> {
    config.validate()?;
    let (store, directory) = open_data(&config).await?;

    let (tls, certs, acme) = load_tls(&config, &directory)?;

    let l = &config.listen;
    let imap = bind_all("imap", &l.imap).await?;
    let imaps = bind_all("imaps", &l.imaps).await?;
    let smtp = bind_all("smtp", &l.smtp).await?;
    let submission = bind_all("submission", &l.submission).await?;
    let submissions = bind_all("submissions", &l.submissions).await?;
    let https = bind_all("https", &l.https).await?;
    let http = bind_all("http", &l.http).await?;
    let metrics_listeners = bind_all("metrics", &l.metrics).await?;
    metrics::warn_if_public(&l.metrics);
    let addrs = BoundAddrs {
        imap: local_addrs(&imap),
        imaps: local_addrs(&imaps),
        smtp: local_addrs(&smtp),
        submission: local_addrs(&submission),
        submissions: local_addrs(&submissions),
        https: local_addrs(&https),
        http: local_addrs(&http),
        metrics: local_addrs(&metrics_listeners),
    };
    if !metrics_listeners.is_empty() {
        // Before anything is served, so every event is counted.
        metrics::install();
    }
    let admin_socket = config.admin_socket();
    let admin_listener = admin::bind(&admin_socket).await?;

    let shutdown = CancellationToken::new();
    let tracker = TaskTracker::new();
    let (auth_timeout, idle_timeout) = config.imap_timeouts();
    // One COI service for IMAP and SMTP: loads (or makes) the VAPID key and
    // starts the push workers.
    let coi =
        coimail_coi::Coi::start(store.clone(), config.coi()).map_err(|e| DaemonError::Other(format!("coi: {e}")))?;
    // Delta Chat's push notifier beside COI's WebPush: both hear of deliveries from SMTP.
    let deltachat = coimail_deltachat::DeltaChat::start(store.clone(), config.deltachat.settings(), shutdown.clone())
        .map_err(|e| DaemonError::Other(format!("deltachat: {e}")))?;
    let [imap_proxy, imaps_proxy, smtp_proxy, submission_proxy, submissions_proxy] =
        config.listen.proxy_protocol_from.parsed()?;
    let imap_ctx = Arc::new(
        ImapContext::new(
            store.clone(),
            directory.clone(),
            tls.clone(),
            coimail_imap::ImapConfig {
                hostname: config.server.hostname.clone(),
                plaintext_auth: config.auth.plaintext,
                auth_timeout,
                idle_timeout,
                max_line_bytes: config.imap.max_line_bytes,
                max_literal_bytes: config.imap.max_literal_bytes,
                max_connections: config.imap.max_connections,
                max_connections_per_ip: config.imap.max_connections_per_ip,
                max_unauthenticated_per_ip: config.imap.max_unauthenticated_per_ip,
                max_connections_per_user: config.imap.max_connections_per_user,
                max_commands_per_second: config.imap.max_commands_per_second,
                command_burst: config.imap_command_burst(),
                max_bad_commands: config.imap.max_bad_commands,
                metadata_max_entry_bytes: config.imap.metadata_max_entry_bytes,
                metadata_max_entries: config.imap.metadata_max_entries,
            },
        )
        .with_coi(coi.clone())
        .with_deltachat(deltachat.clone())
        .with_xchatmail(config.chatmail.advertises_xchatmail())
        .with_proxy_protocol(ImapListener::Starttls, imap_proxy)
        .with_proxy_protocol(ImapListener::ImplicitTls, imaps_proxy),
    );
    // One key cache for signing and for the admin requests that change keys.
    let dkim = Dkim::new(KeyStore::new(config.dkim_dir()));
    // One cap on delivery reports for the queue's and SMTP's.
    let delivery = config.delivery();
    let reports = ReportLimit::new(delivery.reports_per_address_per_hour, delivery.reports_per_hour);
    let (queue, runner) = outbound_queue(&config, &store, &directory, &dkim, &reports, &deltachat)?;
    let http01 = acme.as_ref().map(|(_, handle)| handle.http01().clone());
    let http_ctx = Arc::new(http_context(&config, &addrs, &directory, tls.clone(), http01)?);
    let mut smtp_ctx = smtp_context(&config, &store, &directory, tls)
        .with_queue(queue.clone())
        .with_coi(coi.clone())
        .with_deltachat(deltachat)
        .with_report_limit(reports)
        .with_proxy_protocol(SmtpListener::Mx, smtp_proxy)
        .with_proxy_protocol(SmtpListener::Submission, submission_proxy)
        .with_proxy_protocol(SmtpListener::Submissions, submissions_proxy);
    if let Some(checker) = inbound_checks(&config)? {
        smtp_ctx = smtp_ctx.with_inbound_checks(checker);
    }
    if let Some(policy) = config.chatmail.filter_policy() {
        smtp_ctx = smtp_ctx.with_encrypted_only(policy);
    }
    directory.set_auto_create(config.chatmail.auto_create());
    directory.set_random_accounts(config.chatmail.random_accounts());
    let smtp_ctx = Arc::new(smtp_ctx);
    let sources = metrics::Sources { store: store.clone(), imap: imap_ctx.clone(), smtp: smtp_ctx.clone() };
    metrics::serve(metrics_listeners, sources, &shutdown, &tracker);
    let coi_admin = coi;
    let imap_listeners = imap
        .into_iter()
        .map(|l| (l, ImapListener::Starttls))
        .chain(imaps.into_iter().map(|l| (l, ImapListener::ImplicitTls)));
    for (listener, kind) in imap_listeners {
        tracker.spawn(coimail_imap::serve(listener, kind, imap_ctx.clone(), shutdown.clone(), tracker.clone()));
    }
    let smtp_listeners = smtp
        .into_iter()
        .map(|l| (l, SmtpListener::Mx))
        .chain(submission.into_iter().map(|l| (l, SmtpListener::Submission)))
        .chain(submissions.into_iter().map(|l| (l, SmtpListener::Submissions)));
    for (listener, kind) in smtp_listeners {
        tracker.spawn(coimail_smtp::serve(listener, kind, smtp_ctx.clone(), shutdown.clone(), tracker.clone()));
    }
    let http_listeners = https
        .into_iter()
        .map(|l| (l, coimail_http::HttpListener::Https))
        .chain(http.into_iter().map(|l| (l, coimail_http::HttpListener::Http)));
    for (listener, kind) in http_listeners {
        tracker.spawn(coimail_http::serve(listener, kind, http_ctx.clone(), shutdown.clone(), tracker.clone()));
    }
    tracker.spawn(runner.run(shutdown.clone()));
    if let Some(expiry) = config.chatmail.expiry() {
        tracker.spawn(coimail_chatmail::expiry::run(store.clone(), directory.clone(), expiry, shutdown.clone()));
    }
    let acme_handle = acme.map(|(task, handle)| {
        tracker.spawn(task.run(shutdown.clone()));
        handle
    });
    let tls_handle = certs::TlsHandle::new(certs, &config, acme_handle);
    let admin_ctx =
        admin::AdminContext { directory: directory.clone(), queue, coi: coi_admin, dkim, tls: tls_handle.clone() };
    tracker.spawn(admin::serve(admin_listener, admin_ctx, shutdown.clone()));
    info!(?addrs, "coimail is serving");
    Ok(Running {
        addrs,
        store,
        directory,
        shutdown,
        tracker,
        grace: Duration::from_secs(config.shutdown.grace_secs),
        admin_socket,
        tls: tls_handle,
    })
}

/// The certificates every TLS listener serves: the `[tls]` files (required when an
/// implicit-TLS listener is on and ACME is off) and, with ACME on, the stored ACME certificate
/// plus the task that issues and renews it. No acceptor at all when there is nothing to serve.
#[allow(clippy::type_complexity)]
fn load_tls(
    config: &Config,
    directory: &Directory,
) -> Result<
    (Option<coimail_tls::TlsAcceptor>, Arc<coimail_tls::Certs>, Option<(acme::Acme, acme::AcmeHandle)>),
    DaemonError,
> {
    let certs = Arc::new(coimail_tls::Certs::new());
    let acme_on = config.tls.acme.enabled;
    if config.tls.cert.exists() || config.tls.key.exists() || (config.listen.needs_tls() && !acme_on) {
        certs.install(tls::load_file_pair(&config.tls.cert, &config.tls.key)?);
    }
    let acme = acme_on.then(|| acme::Acme::new(config, directory.clone(), certs.clone()));
    if certs.is_empty() && acme.is_none() {
        warn!("no TLS certificate at {}: STARTTLS is not offered", config.tls.cert.display());
        return Ok((None, certs, None));
    }
    if certs.is_empty() {
        warn!("no certificate until ACME issues one: TLS handshakes fail until then");
    }
    let acceptor = coimail_tls::TlsAcceptor::new(certs.clone()).map_err(tls::TlsError::from)?;
    Ok((Some(acceptor), certs, acme))
}

impl Running {
    pub fn addrs(&self) -> &BoundAddrs {
        &self.addrs
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    pub fn directory(&self) -> &Directory {
        &self.directory
    }

    /// The listeners' certificates: reload (SIGHUP), status, ACME renewal.
    pub fn tls(&self) -> &certs::TlsHandle {
        &self.tls
    }

    /// Stops accepting, lets sessions finish (bounded by the grace period),
    /// flushes, and records a clean stop when nothing was cut off.
    pub async fn shutdown(self) -> Result<(), DaemonError> {
        info!("shutting down");
        self.shutdown.cancel();
        self.tracker.close();
        let finished = tokio::time::timeout(self.grace, self.tracker.wait()).await.is_ok();
        let _ = std::fs::remove_file(&self.admin_socket);
        if finished {
            self.store.close().await?;
            info!("stopped cleanly");
        } else {
            // Sessions are still writing: flush what is there, but let the
            // next start reconcile.
            self.store.flush().await?;
            warn!(grace = ?self.grace, "sessions did not finish in time; the next start will reconcile");
        }
        Ok(())
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        // Tests that drop a server without `shutdown` must not leave sessions running.
        self.shutdown.cancel();
    }
}
