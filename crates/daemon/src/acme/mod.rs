//! ACME (RFC 8555): trusted certificates without certbot. A background task issues a
//! certificate for the configured names when there is none (or it lacks a name), renews it
//! well before expiry, retries failures with exponential backoff, and installs each new
//! certificate in the listeners' [`Certs`] — new handshakes get it, open connections keep
//! theirs.
//!
//! * `order.rs`: one issuance (order, challenges, CSR, download).
//! * `challenge.rs`: TLS-ALPN-01 certificates (answered by [`coimail_tls::TlsAcceptor`] on
//!   every TLS listener) and the HTTP-01 token store the HTTP listener serves.
//! * `files.rs`: account and certificate files in `<data>/acme/<CA>/`, mode 0600.
//!
//! Names: `tls.acme.names`, or else `server.hostname` plus `autoconfig.<domain>` and
//! `mta-sts.<domain>` of every served domain (re-read hourly, so a new domain gets its names
//! at the next check).

mod challenge;
mod files;
mod order;

pub use challenge::Http01Store;

use crate::config::{AcmeChallenge, Config};
use crate::tls::{self, TlsError};
use coimail_directory::Directory;
use coimail_tls::{CertInfo, Certs, Served, Source};
use instant_acme::{Account, AccountBuilder, NewAccount};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

/// Longest sleep between two looks at the names and the clock.
const CHECK_INTERVAL: i64 = 3600;
/// First retry after a failed issuance; each further failure doubles it, up to a day. Let's
/// Encrypt allows 5 failed validations per name and hour.
const RETRY_INITIAL: i64 = 5 * 60;
const RETRY_MAX: i64 = 24 * 3600;

#[derive(Debug, thiserror::Error)]
pub enum AcmeError {
    #[error("ACME: {0}")]
    Acme(#[from] instant_acme::Error),
    #[error("the CA refused: {0}")]
    Rejected(String),
    /// Validation failed for `names` (lowercased).
    #[error("validation failed: {message}")]
    Invalid { message: String, names: Vec<String> },
    #[error(transparent)]
    Tls(#[from] TlsError),
    #[error("certificate request: {0}")]
    Rcgen(#[from] rcgen::Error),
    #[error("{}: {source}", path.display())]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{0}")]
    Other(String),
}

/// When a certificate is due for renewal: `renew_before` ahead of expiry, or after two thirds
/// of its lifetime if that is later (a 6-day certificate is not renewed at once).
pub fn renew_at(info: &CertInfo, renew_before: Duration) -> i64 {
    let lifetime = (info.not_after - info.not_before).max(0);
    let before = i64::try_from(renew_before.as_secs()).unwrap_or(i64::MAX).min(lifetime / 3);
    info.not_after - before
}

/// Wait after the `failures`-th failure in a row (1-based).
pub fn backoff(failures: u32) -> i64 {
    let doublings = failures.saturating_sub(1).min(20);
    (RETRY_INITIAL << doublings).min(RETRY_MAX)
}

fn now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// Unix seconds as shown by `coimail tls status`.
pub fn show_time(unix: i64) -> String {
    coimail_coi::webpush::subscription::rfc3339(unix).replace("+00:00", "Z")
}

/// What one issuance needs besides the account.
pub(crate) struct Issuer {
    pub certs: Arc<Certs>,
    pub http01: Http01Store,
    pub challenge: AcmeChallenge,
}

#[derive(Default)]
struct Status {
    next: Option<i64>,
    last_error: Option<String>,
}

/// A forced renewal's reply channel.
type Renewal = oneshot::Sender<Result<String, String>>;

/// What the rest of the daemon holds of the ACME task: status, a forced renewal, the HTTP-01
/// store. Cheap to clone.
#[derive(Clone)]
pub struct AcmeHandle {
    status: Arc<Mutex<Status>>,
    renew: mpsc::Sender<Renewal>,
    http01: Http01Store,
}

impl AcmeHandle {
    /// When the task will next try, and its last error if the last try failed.
    pub fn next_renewal(&self) -> (Option<i64>, Option<String>) {
        let s = self.status.lock().unwrap_or_else(PoisonError::into_inner);
        (s.next, s.last_error.clone())
    }

    /// Issues a new certificate now, whatever the schedule, and waits for the outcome.
    pub async fn renew_now(&self) -> Result<String, String> {
        let (tx, rx) = oneshot::channel();
        self.renew.send(tx).await.map_err(|_| "the ACME task has stopped".to_owned())?;
        rx.await.map_err(|_| "the ACME task has stopped".to_owned())?
    }

    /// The pending HTTP-01 responses, for the HTTP listener on port 80.
    pub fn http01(&self) -> &Http01Store {
        &self.http01
    }
}

/// The ACME settings of `config`, resolved.
struct Settings {
    directory: String,
    contact: Option<String>,
    names: Vec<String>,
    hostname: String,
    renew_before: Duration,
    directory_ca: Option<PathBuf>,
    dir: PathBuf,
}

impl Settings {
    fn new(config: &Config) -> Settings {
        let a = &config.tls.acme;
        let contact = a.contact.trim();
        Settings {
            directory: a.directory.clone(),
            contact: (!contact.is_empty())
                .then(|| if contact.starts_with("mailto:") { contact.to_owned() } else { format!("mailto:{contact}") }),
            names: a.names.iter().map(|n| n.to_ascii_lowercase()).collect(),
            hostname: config.server.hostname.to_ascii_lowercase(),
            renew_before: Duration::from_secs(a.renew_before_days.saturating_mul(86_400)),
            directory_ca: (!a.directory_ca.as_os_str().is_empty()).then(|| a.directory_ca.clone()),
            dir: files::ca_dir(&config.acme_dir(), &a.directory),
        }
    }
}

/// The ACME certificate files of `config`'s CA (whether or not ACME is on).
pub fn cert_files(config: &Config) -> (PathBuf, PathBuf) {
    let dir = files::ca_dir(&config.acme_dir(), &config.tls.acme.directory);
    (files::cert_path(&dir), files::key_path(&dir))
}

/// Loads the stored ACME certificate of `config`'s CA, if there is one.
pub fn load_stored(config: &Config) -> Result<Option<Served>, TlsError> {
    let (cert, key) = cert_files(config);
    if !cert.exists() {
        return Ok(None);
    }
    tls::load_served(&cert, &key, Source::Acme { cert: cert.clone() }).map(Some)
}

/// The background task; [`Acme::start`] spawns it.
pub struct Acme {
    settings: Settings,
    directory: Directory,
    issuer: Issuer,
    status: Arc<Mutex<Status>>,
    renew: mpsc::Receiver<Renewal>,
    account: Option<Account>,
}

impl Acme {
    /// Makes the task and its handle; installs a stored certificate right away (an unusable one
    /// is logged and issued again). Run the task with [`Acme::run`].
    pub fn new(config: &Config, directory: Directory, certs: Arc<Certs>) -> (Acme, AcmeHandle) {
        match load_stored(config) {
            Ok(Some(served)) if served.info.not_after > now() => certs.install(served),
            Ok(Some(_)) => warn!("the stored ACME certificate has expired; issuing a new one"),
            Ok(None) => {}
            Err(e) => warn!(error = %e, "cannot load the stored ACME certificate; issuing a new one"),
        }
        let (tx, rx) = mpsc::channel(4);
        let status = Arc::new(Mutex::new(Status::default()));
        let http01 = Http01Store::default();
        let challenge = config.tls.acme.challenge;
        let handle = AcmeHandle { status: status.clone(), renew: tx, http01: http01.clone() };
        let issuer = Issuer { certs, http01, challenge };
        (Acme { settings: Settings::new(config), directory, issuer, status, renew: rx, account: None }, handle)
    }

    /// The names the certificate must cover, in order (the host name first).
    fn wanted(&self) -> Vec<String> {
        if !self.settings.names.is_empty() {
            return self.settings.names.clone();
        }
        let mut names = vec![self.settings.hostname.clone()];
        match self.directory.list_domains() {
            Ok(domains) => {
                for d in domains {
                    for name in [format!("autoconfig.{d}"), format!("mta-sts.{d}")] {
                        let name = name.to_ascii_lowercase();
                        if !names.contains(&name) {
                            names.push(name);
                        }
                    }
                }
            }
            Err(e) => warn!(error = %e, "ACME: cannot list the domains; ordering the host name only"),
        }
        names
    }

    /// When to issue next, from the certificate being served.
    fn due(&self, wanted: &[String]) -> i64 {
        match self.issuer.certs.acme() {
            Some(s) if wanted.iter().all(|n| s.info.covers(n)) => renew_at(&s.info, self.settings.renew_before),
            _ => now(),
        }
    }

    fn set_status(&self, next: i64, last_error: Option<String>) {
        let mut s = self.status.lock().unwrap_or_else(PoisonError::into_inner);
        s.next = Some(next);
        s.last_error = last_error;
    }

    /// Issues and renews until `shutdown`.
    pub async fn run(mut self, shutdown: CancellationToken) {
        let mut failures = 0u32;
        let mut retry_at: Option<i64> = None;
        loop {
            let wanted = self.wanted();
            let due = retry_at.unwrap_or_else(|| self.due(&wanted));
            {
                let mut s = self.status.lock().unwrap_or_else(PoisonError::into_inner);
                s.next = Some(due);
            }
            let wait = Duration::from_secs(u64::try_from((due - now()).clamp(0, CHECK_INTERVAL)).unwrap_or(0));
            let forced = tokio::select! {
                _ = shutdown.cancelled() => return,
                r = self.renew.recv() => r,
                _ = tokio::time::sleep(wait) => None,
            };
            if forced.is_none() && now() < due {
                continue;
            }
            let result = tokio::select! {
                _ = shutdown.cancelled() => return,
                r = self.renew_once(&wanted) => r,
            };
            let reply = match result {
                Ok(done) => {
                    failures = 0;
                    retry_at = None;
                    info!("ACME: {done}");
                    self.set_status(self.due(&wanted), None);
                    Ok(done)
                }
                Err(e) => {
                    failures = failures.saturating_add(1);
                    let at = now() + backoff(failures);
                    retry_at = Some(at);
                    warn!(error = %e, names = ?wanted, retry_at = %show_time(at), "ACME: certificate not issued");
                    self.set_status(at, Some(e.to_string()));
                    Err(e.to_string())
                }
            };
            if let Some(tx) = forced {
                let _ = tx.send(reply);
            }
        }
    }

    /// One issuance for `wanted`. When only some names fail validation (say `autoconfig.` of a
    /// domain whose DNS is not there yet) and the host name is not among them, the others are
    /// ordered without them: a certificate for the host name matters more than one for all.
    /// The left-out names make the task try again after the backoff; it orders the smaller set
    /// only when nothing served covers it, so repeated failures issue no duplicates.
    async fn renew_once(&mut self, wanted: &[String]) -> Result<String, AcmeError> {
        let err = match self.order(wanted).await {
            Ok(done) => return Ok(done),
            Err(e) => e,
        };
        let AcmeError::Invalid { names: failed, .. } = &err else { return Err(err) };
        let rest: Vec<String> = wanted.iter().filter(|n| !failed.contains(n)).cloned().collect();
        if failed.is_empty() || rest.is_empty() || wanted.first().is_some_and(|host| failed.contains(host)) {
            return Err(err);
        }
        let covered = self.issuer.certs.acme().is_some_and(|s| {
            rest.iter().all(|n| s.info.covers(n)) && renew_at(&s.info, self.settings.renew_before) > now()
        });
        if covered {
            return Err(err);
        }
        warn!(left_out = ?failed, error = %err, "ACME: ordering without the names that failed validation");
        let done = self.order(&rest).await?;
        Err(AcmeError::Other(format!("{done}; left out {}: {err}", failed.join(", "))))
    }

    /// Orders `names`; stored, then installed from the stored files (so what is served is what
    /// the next start loads).
    async fn order(&mut self, names: &[String]) -> Result<String, AcmeError> {
        info!(names = ?names, directory = %self.settings.directory, "ACME: ordering a certificate");
        let account = self.account().await?;
        let issued = order::issue(&self.issuer, &account, names).await?;
        let dir = &self.settings.dir;
        files::save_certificate(dir, &issued.chain_pem, &issued.key_pem)?;
        let cert = files::cert_path(dir);
        let served = tls::load_served(&cert, &files::key_path(dir), Source::Acme { cert: cert.clone() })?;
        let done = format!(
            "certificate for {} issued by {}, valid until {}; stored in {}",
            served.info.names.join(", "),
            served.info.issuer,
            show_time(served.info.not_after),
            cert.display()
        );
        self.issuer.certs.install(served);
        Ok(done)
    }

    /// The account: loaded once from `account.json`, or registered and saved there.
    async fn account(&mut self) -> Result<Account, AcmeError> {
        if let Some(a) = &self.account {
            return Ok(a.clone());
        }
        let s = &self.settings;
        let account = match files::load_account(&s.dir)? {
            Some(credentials) => builder(s.directory_ca.as_deref())?.from_credentials(credentials).await?,
            None => {
                let contact: Vec<&str> = s.contact.iter().map(String::as_str).collect();
                let new = NewAccount { contact: &contact, terms_of_service_agreed: true, only_return_existing: false };
                let (account, credentials) =
                    builder(s.directory_ca.as_deref())?.create(&new, s.directory.clone(), None).await?;
                files::save_account(&s.dir, &credentials)?;
                info!(account = %account.id(), "ACME: account registered");
                account
            }
        };
        self.account = Some(account.clone());
        Ok(account)
    }
}

fn builder(directory_ca: Option<&Path>) -> Result<AccountBuilder, AcmeError> {
    Ok(match directory_ca {
        Some(ca) => Account::builder_with_root(ca)?,
        None => Account::builder()?,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn info(not_before: i64, days: i64) -> CertInfo {
        CertInfo {
            subject: String::new(),
            names: vec![],
            issuer: String::new(),
            not_before,
            not_after: not_before + days * 86_400,
        }
    }

    #[test]
    fn renewal_is_well_before_expiry() {
        let day = 86_400;
        let thirty = Duration::from_secs(30 * 86_400);
        // Let's Encrypt's 90 days: 30 days before.
        assert_eq!(renew_at(&info(0, 90), thirty), 60 * day);
        // A year: 30 days before.
        assert_eq!(renew_at(&info(0, 365), thirty), 335 * day);
        // Short-lived (6 days): after two thirds, not at once.
        assert_eq!(renew_at(&info(0, 6), thirty), 4 * day);
        // Nonsense dates: due at expiry at the latest.
        assert_eq!(renew_at(&info(100, -1), thirty), 100 - day);
    }

    #[test]
    fn retries_back_off_to_a_day() {
        assert_eq!(backoff(1), 300);
        assert_eq!(backoff(2), 600);
        assert_eq!(backoff(5), 4800);
        assert_eq!(backoff(12), RETRY_MAX);
        assert_eq!(backoff(u32::MAX), RETRY_MAX);
    }

    #[test]
    fn contact_becomes_a_mailto_url() {
        let mut c = Config::default();
        c.tls.acme.contact = "admin@example.org".into();
        assert_eq!(Settings::new(&c).contact.as_deref(), Some("mailto:admin@example.org"));
        c.tls.acme.contact = "mailto:a@b.org".into();
        assert_eq!(Settings::new(&c).contact.as_deref(), Some("mailto:a@b.org"));
        c.tls.acme.contact = " ".into();
        assert_eq!(Settings::new(&c).contact, None);
    }
}
