//! WebPush state and flow (R31–R40): the VAPID key, subscriptions kept as
//! METADATA entries, the validation round trip, and a push for every
//! delivery that a validated subscription asks for.
//!
//! A subscription is two entries of the account's server scope: the
//! client-visible JSON at `.../webpush/subscriptions/<id>` (R35, never the
//! secret) and the validation secret under an internal name that IMAP
//! cannot address (R10). Subscriptions are not cached: deliveries read them
//! from the store, so a delete or validation applies to the next message.

use crate::config::server_scope;
use crate::webpush::http::{Endpoint, HttpClient};
use crate::webpush::sender::{Outcome, PushJob, Report, Sender, SenderSettings};
use crate::webpush::subscription::{self, Subscription};
use crate::webpush::vapid::VapidKey;
use crate::webpush::{WebPushError, payload};
use crate::{CHAT_KEYWORD, CoiError, detect};
use base64::Engine;
use coimail_store::{AccountId, Flags, Store, Stored};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

pub(crate) const WEBPUSH_PREFIX: &str = "/private/vendor/vendor.dovecot/webpush";
pub(crate) const VAPID: &str = "/private/vendor/vendor.dovecot/webpush/vapid";
pub(crate) const SUBSCRIPTIONS: &str = "/private/vendor/vendor.dovecot/webpush/subscriptions";
/// Internal (no leading `/`): out of METADATA's reach (R10).
const SECRETS: &str = "coi/webpush/secret/";

const NOT_FOUND: &str = "Subscription with matching validation not found";

/// WebPush settings (the `[coi]` config section).
#[derive(Debug, Clone)]
pub struct WebPushSettings {
    /// The server's VAPID key (PKCS#8), created on first start.
    pub vapid_key_file: PathBuf,
    /// Subscriptions per account, unvalidated ones included (R32).
    pub subscription_limit: usize,
    /// How long a new subscription may stay unvalidated (R33).
    pub validation_window: Duration,
    pub sender: SenderSettings,
}

pub(crate) struct Push {
    store: Store,
    vapid_pem: String,
    sender: Sender,
    limit: usize,
    window: Duration,
}

fn now_unix() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}

fn entry(id: &str) -> String {
    format!("{SUBSCRIPTIONS}/{id}")
}

fn secret_entry(id: &str) -> String {
    format!("{SECRETS}{id}")
}

fn cannot(e: impl std::fmt::Display) -> CoiError {
    CoiError::Cannot(e.to_string())
}

impl Push {
    pub(crate) fn start(store: Store, settings: WebPushSettings) -> Result<Push, CoiError> {
        let vapid = Arc::new(VapidKey::load_or_create(&settings.vapid_key_file)?);
        let client = Arc::new(HttpClient::new()?);
        let (sender, reports) = Sender::start(vapid.clone(), client, settings.sender);
        tokio::spawn(handle_reports(store.clone(), reports));
        Ok(Push {
            store,
            vapid_pem: vapid.public_pem(),
            sender,
            limit: settings.subscription_limit,
            window: settings.validation_window,
        })
    }

    pub(crate) fn vapid_pem(&self) -> String {
        self.vapid_pem.clone()
    }

    fn list(&self, account: AccountId) -> Result<Vec<(String, Subscription)>, CoiError> {
        list(&self.store, account)
    }

    fn expired(&self, sub: &Subscription, now: i64) -> bool {
        !sub.validated && now.saturating_sub(sub.created) > self.window.as_secs() as i64
    }

    /// Drops unvalidated subscriptions older than the window (R33).
    pub(crate) async fn purge_expired(&self, account: AccountId) -> Result<(), CoiError> {
        let now = now_unix();
        for (id, sub) in self.list(account)? {
            if self.expired(&sub, now) {
                remove(&self.store, account, &id).await?;
            }
        }
        Ok(())
    }

    /// R32: validate, store unvalidated, then send the validation push and
    /// answer only when the push service took it; otherwise nothing stays.
    pub(crate) async fn subscribe(&self, account: AccountId, id: &str, json: &[u8]) -> Result<(), CoiError> {
        subscription::check_id(id).map_err(cannot)?;
        let now = now_unix();
        let sub = subscription::parse_request(json, now).map_err(cannot)?;
        self.purge_expired(account).await?;
        let others = self.list(account)?.into_iter().filter(|(other, _)| other != id).count();
        if others >= self.limit {
            return Err(CoiError::Limit("Too many subscriptions, delete old ones first".to_owned()));
        }
        let mut random = [0u8; 32];
        aws_lc_rs::rand::fill(&mut random).map_err(|_| CoiError::WebPush(WebPushError::Crypto("rng".into())))?;
        let secret = base64::engine::general_purpose::STANDARD.encode(random);
        // Stored before the push: a phone may answer before this command does.
        // What it replaces comes back if the push fails (a working
        // subscription must not be lost to a failed re-registration).
        let scope = server_scope(account);
        let previous = [
            (entry(id), self.store.get_metadata(scope, &entry(id))?),
            (secret_entry(id), self.store.get_metadata(scope, &secret_entry(id))?),
        ];
        let entries =
            [(entry(id), Some(sub.to_json().into_bytes())), (secret_entry(id), Some(secret.clone().into_bytes()))];
        self.store.set_metadata_entries(server_scope(account), &entries, None).await?;
        let outcome = match job(account, id, &sub, payload::validation(&secret)) {
            Ok(job) => self.sender.send_once(&job, true).await.map_err(|e| e.to_string()).and_then(|r| {
                if (200..300).contains(&r.status) {
                    Ok(())
                } else {
                    Err(format!("Subscription is no longer valid: {}", r.status))
                }
            }),
            Err(e) => Err(e.to_string()),
        };
        if let Err(why) = outcome {
            self.store.set_metadata_entries(scope, &previous, None).await?;
            return Err(CoiError::Unavailable(format!("Failed to start endpoint validation: {why}")));
        }
        Ok(())
    }

    pub(crate) async fn unsubscribe(&self, account: AccountId, id: &str) -> Result<(), CoiError> {
        remove(&self.store, account, id).await
    }

    /// R33: the secret of an unvalidated subscription within the window.
    pub(crate) async fn validate(&self, account: AccountId, id: &str, given: &[u8]) -> Result<(), CoiError> {
        let scope = server_scope(account);
        let not_found = || CoiError::Cannot(NOT_FOUND.to_owned());
        let json = self.store.get_metadata(scope, &entry(id))?.ok_or_else(not_found)?;
        let mut sub = Subscription::from_stored(&json).map_err(|_| not_found())?;
        let secret = self.store.get_metadata(scope, &secret_entry(id))?.ok_or_else(not_found)?;
        if sub.validated
            || self.expired(&sub, now_unix())
            || aws_lc_rs::constant_time::verify_slices_are_equal(&secret, given).is_err()
        {
            return Err(not_found());
        }
        sub.validated = true;
        let entries = [(entry(id), Some(sub.to_json().into_bytes())), (secret_entry(id), None)];
        self.store.set_metadata_entries(scope, &entries, None).await?;
        Ok(())
    }

    /// After a delivery is durable: queue a push for every copy and every
    /// validated subscription that wants it (R36). Never blocks on the network.
    pub(crate) fn delivered(&self, copies: &[(Stored, &Flags)], raw: &[u8]) {
        if detect::is_disposition_notification(raw) {
            return;
        }
        let from = payload::from_email(raw);
        for (stored, flags) in copies {
            if let Err(e) = self.push_copy(stored, flags, raw, from.as_deref()) {
                tracing::warn!(error = %e, "coi: push for a delivery skipped");
            }
        }
    }

    fn push_copy(&self, stored: &Stored, flags: &Flags, raw: &[u8], from: Option<&str>) -> Result<(), CoiError> {
        let now = now_unix();
        let wanted: Vec<(String, Subscription)> = self
            .list(stored.account)?
            .into_iter()
            .filter(|(_, s)| s.validated && !self.expired(s, now))
            .filter(|(_, s)| s.wants(flags.contains(CHAT_KEYWORD)))
            .filter(|(_, s)| !from.is_some_and(|f| s.excludes(f)))
            .collect();
        if wanted.is_empty() {
            return Ok(());
        }
        let folder = self.store.mailbox_by_id(stored.account, stored.mailbox)?.name;
        let target = payload::Target { folder: &folder, uidvalidity: stored.uid_validity, uid: stored.uid };
        let Some(body) = payload::build(raw, &target) else { return Ok(()) };
        for (id, sub) in wanted {
            match job(stored.account, &id, &sub, body.clone()) {
                Ok(job) => {
                    self.sender.enqueue(job);
                }
                Err(e) => tracing::warn!(error = %e, "coi: subscription unusable"),
            }
        }
        Ok(())
    }
}

/// Every stored subscription of `account`, by id; unreadable ones are skipped.
fn list(store: &Store, account: AccountId) -> Result<Vec<(String, Subscription)>, CoiError> {
    let prefix = format!("{SUBSCRIPTIONS}/");
    let mut out = Vec::new();
    for (name, json) in store.list_metadata(server_scope(account), &prefix)? {
        let Some(id) = name.strip_prefix(&prefix) else { continue };
        match Subscription::from_stored(&json) {
            Ok(sub) => out.push((id.to_owned(), sub)),
            Err(e) => tracing::warn!(error = %e, "coi: unreadable subscription entry skipped"),
        }
    }
    Ok(out)
}

/// The subscriptions as `coimail coi status` shows them (no secrets).
pub(crate) fn status(store: &Store, account: AccountId) -> Result<Vec<serde_json::Value>, CoiError> {
    Ok(list(store, account)?
        .into_iter()
        .map(|(id, sub)| {
            let value = serde_json::from_str(&sub.to_json()).unwrap_or(serde_json::Value::Null);
            serde_json::json!({ "id": id, "subscription": value })
        })
        .collect())
}

fn job(account: AccountId, id: &str, sub: &Subscription, payload: Vec<u8>) -> Result<PushJob, WebPushError> {
    let endpoint = Endpoint::parse(&sub.endpoint)?;
    let p256dh = sub.p256dh_bytes().ok_or_else(|| WebPushError::InvalidKey("p256dh".into()))?;
    let auth = sub.auth_bytes().ok_or_else(|| WebPushError::InvalidKey("auth".into()))?;
    Ok(PushJob {
        account: account.0,
        subscription: id.to_owned(),
        endpoint,
        p256dh,
        auth,
        payload,
        enqueued: Instant::now(),
    })
}

async fn remove(store: &Store, account: AccountId, id: &str) -> Result<(), CoiError> {
    let entries = [(entry(id), None), (secret_entry(id), None)];
    store.set_metadata_entries(server_scope(account), &entries, None).await?;
    Ok(())
}

/// R39: a subscription the push service calls gone is deleted.
async fn handle_reports(store: Store, mut reports: tokio::sync::mpsc::UnboundedReceiver<Report>) {
    while let Some(report) = reports.recv().await {
        match report.outcome {
            Outcome::Delivered => {}
            Outcome::Gone => {
                tracing::info!(status = ?report.status, "coi: push subscription gone, deleting it");
                if let Err(e) = remove(&store, AccountId(report.account), &report.subscription).await {
                    tracing::warn!(error = %e, "coi: deleting a gone subscription failed");
                }
            }
            Outcome::Failed(why) => tracing::info!(%why, "coi: push failed"),
        }
    }
}
