//! The listeners' certificates as the operator sees them: reload of the `[tls]` files (SIGHUP,
//! `coimail tls reload`), `coimail tls status`, and a forced ACME renewal (`coimail tls renew`).
//!
//! A reload that fails (unreadable file, bad PEM, key not matching) changes nothing: the old
//! certificate keeps being served and the error is reported.

use crate::acme::{self, AcmeHandle};
use crate::config::Config;
use crate::tls;
use coimail_tls::{Certs, Served, Source};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// Cheap to clone.
#[derive(Clone)]
pub struct TlsHandle {
    certs: Arc<Certs>,
    cert: PathBuf,
    key: PathBuf,
    acme: Option<AcmeHandle>,
    /// `tls.acme.renew_before_days`, when ACME is on.
    renew_before: Option<Duration>,
    /// Problems loading certificates for an offline status.
    problems: Vec<String>,
    running: bool,
}

impl TlsHandle {
    /// The running daemon's certificates.
    pub fn new(certs: Arc<Certs>, config: &Config, acme: Option<AcmeHandle>) -> TlsHandle {
        TlsHandle {
            certs,
            cert: config.tls.cert.clone(),
            key: config.tls.key.clone(),
            acme,
            renew_before: config.tls.acme.enabled.then(|| renew_before(config)),
            problems: Vec::new(),
            running: true,
        }
    }

    /// No daemon runs: what the files hold, for `tls status`.
    pub fn offline(config: &Config) -> TlsHandle {
        let certs = Arc::new(Certs::new());
        let mut problems = Vec::new();
        if config.tls.cert.exists() {
            match tls::load_file_pair(&config.tls.cert, &config.tls.key) {
                Ok(served) => certs.install(served),
                Err(e) => problems.push(format!("file: {e}")),
            }
        }
        match acme::load_stored(config) {
            Ok(Some(served)) => certs.install(served),
            Ok(None) => {}
            Err(e) => problems.push(format!("acme: {e}")),
        }
        let mut handle = TlsHandle::new(certs, config, None);
        handle.problems = problems;
        handle.running = false;
        handle
    }

    /// The certificates being served (tests and the HTTP listener's status page).
    pub fn certs(&self) -> &Arc<Certs> {
        &self.certs
    }

    /// The pending HTTP-01 responses, when ACME is on (for the HTTP listener on port 80).
    pub fn http01(&self) -> Option<&acme::Http01Store> {
        self.acme.as_ref().map(AcmeHandle::http01)
    }

    /// Reads the `[tls]` files again and serves them to new connections; on error the old
    /// certificate stays.
    pub fn reload(&self) -> Result<String, String> {
        if !self.running {
            return Err("no daemon is running; it loads the certificate files when it starts".into());
        }
        let served = tls::load_file_pair(&self.cert, &self.key)
            .map_err(|e| format!("{e}; still serving the old certificate"))?;
        let line = format!(
            "reloaded {}: {} (not after {})",
            self.cert.display(),
            served.info.names.join(", "),
            acme::show_time(served.info.not_after)
        );
        self.certs.install(served);
        Ok(line)
    }

    /// Issues a new ACME certificate now and waits for the outcome.
    pub async fn renew(&self) -> Result<String, String> {
        match &self.acme {
            Some(acme) => acme.renew_now().await,
            None if !self.running => Err("no daemon is running".into()),
            None => Err("ACME is off (tls.acme.enabled)".into()),
        }
    }

    /// One block per certificate served, then the ACME schedule.
    pub fn status(&self) -> Vec<String> {
        let mut lines = Vec::new();
        let served = self.certs.served();
        if served.is_empty() {
            lines.push("no certificate: implicit TLS and STARTTLS are unavailable".to_owned());
        }
        for s in &served {
            lines.extend(describe(s));
        }
        lines.extend(self.problems.iter().cloned());
        if let Some(before) = self.renew_before {
            let (next, error) = match &self.acme {
                Some(acme) => acme.next_renewal(),
                None => (self.certs.acme().map(|s| acme::renew_at(&s.info, before)), None),
            };
            let next = next.map_or_else(|| "at start".to_owned(), acme::show_time);
            lines.push(format!("acme next renewal  {next}"));
            if let Some(e) = error {
                lines.push(format!("acme last attempt failed: {e}"));
            }
        } else {
            lines.push("acme off".to_owned());
        }
        lines
    }
}

fn renew_before(config: &Config) -> Duration {
    Duration::from_secs(config.tls.acme.renew_before_days.saturating_mul(86_400))
}

fn describe(s: &Served) -> Vec<String> {
    let (source, path) = match &s.source {
        Source::File { cert, .. } => ("file", cert),
        Source::Acme { cert } => ("acme", cert),
    };
    vec![
        format!("{source}  {}", path.display()),
        format!("  names      {}", s.info.names.join(", ")),
        format!("  subject    {}", s.info.subject),
        format!("  issuer     {}", s.info.issuer),
        format!("  not after  {}", acme::show_time(s.info.not_after)),
    ]
}
