//! The expiry task: chatmail's expire.py and delete_inactive_users, run by
//! the daemon instead of cron. Each run deletes messages older than
//! `messages_after` (and large ones older than `large_after`), then
//! accounts nobody logged in to for `inactive_accounts_after`, and logs one
//! line with what went. The store and the directory do the deleting (open
//! sessions see EXPUNGE; a removed account's sessions end).

use coimail_directory::Directory;
use coimail_store::{ExpiryRule, Store};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio_util::sync::CancellationToken;

const DAY: u64 = 86_400;

/// What to delete, and how often to look.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpiryOptions {
    /// Messages older than this go; `None`: kept.
    pub messages_after: Option<Duration>,
    /// Messages over `large_bytes` older than this go; `None`: no separate rule.
    pub large_after: Option<Duration>,
    pub large_bytes: u64,
    /// Accounts without a login for this long go, with their mail; `None`: kept.
    pub inactive_accounts_after: Option<Duration>,
    /// Time between runs (the first run is one interval after start).
    pub interval: Duration,
}

/// What one run removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExpiryReport {
    pub messages: u64,
    pub accounts: Vec<String>,
}

impl ExpiryOptions {
    fn rule(&self, now: i64) -> Option<ExpiryRule> {
        let ago = |d: Duration| now.saturating_sub(i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
        let before = self.messages_after.map_or(i64::MIN, ago);
        let large_before = self.large_after.map_or(i64::MIN, ago);
        (before != i64::MIN || large_before != i64::MIN).then_some(ExpiryRule {
            before,
            large_before,
            large_bytes: self.large_bytes,
        })
    }

    /// Whether there is anything to do at all.
    pub fn is_active(&self) -> bool {
        self.messages_after.is_some() || self.large_after.is_some() || self.inactive_accounts_after.is_some()
    }
}

/// One run, now. Errors are the store's or directory's, as text.
pub async fn run_once(store: &Store, directory: &Directory, opts: &ExpiryOptions) -> Result<ExpiryReport, String> {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(0));
    let mut report = ExpiryReport::default();
    if let Some(rule) = opts.rule(now) {
        report.messages = store.expire_messages(rule).await.map_err(|e| e.to_string())?;
    }
    if let Some(after) = opts.inactive_accounts_after {
        // Whole days, as chatmail counts (a day begun counts as not yet passed).
        let days = after.as_secs().div_ceil(DAY).max(1);
        report.accounts = directory.remove_inactive(days).await.map_err(|e| e.to_string())?;
    }
    Ok(report)
}

/// Runs [`run_once`] every `opts.interval` until `shutdown`.
pub async fn run(store: Store, directory: Directory, opts: ExpiryOptions, shutdown: CancellationToken) {
    if !opts.is_active() {
        return;
    }
    tracing::info!(interval = ?opts.interval, "chatmail expiry started");
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(opts.interval) => {}
        }
        let started = std::time::Instant::now();
        match run_once(&store, &directory, &opts).await {
            Ok(r) => tracing::info!(
                messages = r.messages,
                accounts = r.accounts.len(),
                took_ms = started.elapsed().as_millis() as u64,
                "chatmail expiry: removed {} messages and {} accounts",
                r.messages,
                r.accounts.len()
            ),
            Err(e) => tracing::error!(error = %e, "chatmail expiry failed"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_from_options() {
        let mut o = ExpiryOptions {
            messages_after: Some(Duration::from_secs(20 * DAY)),
            large_after: Some(Duration::from_secs(7 * DAY)),
            large_bytes: 200_000,
            inactive_accounts_after: None,
            interval: Duration::from_secs(3600),
        };
        let now = 100 * DAY as i64;
        assert_eq!(
            o.rule(now),
            Some(ExpiryRule { before: 80 * DAY as i64, large_before: 93 * DAY as i64, large_bytes: 200_000 })
        );
        o.large_after = None;
        assert_eq!(o.rule(now).map(|r| r.large_before), Some(i64::MIN));
        o.messages_after = None;
        assert_eq!(o.rule(now), None);
        assert!(!o.is_active());
        o.inactive_accounts_after = Some(Duration::from_secs(DAY));
        assert!(o.is_active());
    }
}
