//! WebPush state and flow (R31–R40): the VAPID key, subscriptions kept as
//! METADATA entries, the validation round trip, and a push for every
//! delivery that a validated subscription asks for.
//!
//! A subscription is two entries of the account's server scope: the
//! client-visible JSON at `.../webpush/subscriptions/<id>` (R35, never the
//! secret) and the validation secret under an internal name that IMAP
//! cannot address (R10). Subscriptions are not cached: deliveries read them
//! from the store, so a delete or validation applies to the next message.
//!
//! Every change to an account's subscriptions (subscribe, validate, delete,
//! purge, the deletion after a push service said "gone") runs under that
//! account's lock, so counts and read-modify-write sequences see a stable
//! state. The lock is never held across the network: the phone may send the
//! validation secret back before the validation push returns.

use crate::config::server_scope;
use crate::webpush::http::{Endpoint, HttpClient};
use crate::webpush::sender::{self, Outcome, PushJob, Report, Sender, SenderSettings};
use crate::webpush::subscription::{self, Subscription};
use crate::webpush::throttle::{AccountLocks, AttemptLog};
use crate::webpush::vapid::VapidKey;
use crate::webpush::{WebPushError, addr, payload};
use crate::{CHAT_KEYWORD, CoiError, detect};
use base64::Engine;
use coimail_store::{AccountId, Flags, MetadataScope, Store, Stored};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

pub(crate) const WEBPUSH_PREFIX: &str = "/private/vendor/vendor.dovecot/webpush";
pub(crate) const VAPID: &str = "/private/vendor/vendor.dovecot/webpush/vapid";
pub(crate) const SUBSCRIPTIONS: &str = "/private/vendor/vendor.dovecot/webpush/subscriptions";
/// Internal (no leading `/`): out of METADATA's reach (R10).
const SECRETS: &str = "coi/webpush/secret/";

const NOT_FOUND: &str = "Subscription with matching validation not found";
/// All a client learns about a failed validation push. The reason (connect errors, TLS errors,
/// statuses) goes to the log only: shown to the client it would make SETMETADATA a port scanner.
/// Dovecot appends the reason; clients look only at the response code (digest §8 item 3).
const VALIDATION_FAILED: &str = "Failed to start endpoint validation";
const TOO_MANY_ATTEMPTS: &str = "Too many subscription attempts, try again later";
/// The window of `validation_attempts_per_hour`.
const ATTEMPT_WINDOW: Duration = Duration::from_secs(3600);
/// What `coimail coi status` shows instead of key material.
const REDACTED: &str = "<redacted>";

/// WebPush settings (the `[coi]` config section).
#[derive(Debug, Clone)]
pub struct WebPushSettings {
    /// The server's VAPID key (PKCS#8), created on first start.
    pub vapid_key_file: PathBuf,
    /// Subscriptions per account, unvalidated ones included (R32).
    pub subscription_limit: usize,
    /// How long a new subscription may stay unvalidated (R33).
    pub validation_window: Duration,
    /// Subscription requests per account and hour that may send a validation push (failed ones
    /// and replacements of an existing id count too); beyond that `NO [LIMIT]` (R39: throttle
    /// clients that keep registering).
    pub validation_attempts_per_hour: usize,
    /// Allow push services on loopback, over plain http too: for tests and benchmarks with a
    /// local push service. Off, only public addresses over https are contacted.
    pub allow_loopback_endpoints: bool,
    pub sender: SenderSettings,
}

pub(crate) struct Push {
    store: Store,
    vapid_pem: String,
    sender: Sender,
    limit: usize,
    /// The validation window in seconds, saturated: a huge setting means "never expires", not a
    /// negative window that expires everything.
    window_secs: i64,
    allow_loopback: bool,
    locks: Arc<AccountLocks>,
    attempts: AttemptLog,
}

fn now_unix() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX)).unwrap_or(0)
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

/// An unvalidated subscription older than the window (R33).
fn expired(sub: &Subscription, now: i64, window_secs: i64) -> bool {
    !sub.validated && now.saturating_sub(sub.created) > window_secs
}

/// A fresh validation secret (R34: Dovecot's form, base64 of 32 random bytes).
fn new_secret() -> Result<String, CoiError> {
    let mut random = [0u8; 32];
    aws_lc_rs::rand::fill(&mut random).map_err(|_| CoiError::WebPush(WebPushError::Crypto("rng".into())))?;
    Ok(base64::engine::general_purpose::STANDARD.encode(random))
}

impl Push {
    pub(crate) fn start(store: Store, settings: WebPushSettings) -> Result<Push, CoiError> {
        let vapid = Arc::new(VapidKey::load_or_create(&settings.vapid_key_file)?);
        let client = Arc::new(HttpClient::new(settings.allow_loopback_endpoints)?);
        let (sender, reports) = Sender::start(vapid.clone(), client, settings.sender);
        let locks = Arc::new(AccountLocks::default());
        tokio::spawn(handle_reports(store.clone(), locks.clone(), reports));
        Ok(Push {
            store,
            vapid_pem: vapid.public_pem(),
            sender,
            limit: settings.subscription_limit,
            window_secs: i64::try_from(settings.validation_window.as_secs()).unwrap_or(i64::MAX),
            allow_loopback: settings.allow_loopback_endpoints,
            locks,
            attempts: AttemptLog::new(settings.validation_attempts_per_hour, ATTEMPT_WINDOW),
        })
    }

    pub(crate) fn vapid_pem(&self) -> String {
        self.vapid_pem.clone()
    }

    /// Drops unvalidated subscriptions older than the window (R33).
    pub(crate) async fn purge_expired(&self, account: AccountId) -> Result<(), CoiError> {
        let _guard = self.locks.lock(account.0).await;
        self.purge_locked(account).await
    }

    /// [`Push::purge_expired`] for a caller that holds the account's lock.
    async fn purge_locked(&self, account: AccountId) -> Result<(), CoiError> {
        let now = now_unix();
        for (id, sub) in list(&self.store, account)? {
            if expired(&sub, now, self.window_secs) {
                remove_subscription(&self.store, account, &id).await?;
            }
        }
        Ok(())
    }

    /// R32: validate, store unvalidated, then send the validation push and
    /// answer only when the push service took it; otherwise nothing stays.
    pub(crate) async fn subscribe(&self, account: AccountId, id: &str, json: &[u8]) -> Result<(), CoiError> {
        subscription::check_id(id).map_err(cannot)?;
        let sub = subscription::parse_request(json, now_unix()).map_err(cannot)?;
        // An address the client wrote itself is an invalid value, refused before any network
        // use; the reason names only what the client sent, so it may be shown.
        let endpoint = Endpoint::parse(&sub.endpoint)
            .and_then(|ep| addr::check_endpoint(&ep, self.allow_loopback).map(|()| ep))
            .map_err(|e| {
                let why = match e {
                    WebPushError::Endpoint(why) => why,
                    other => other.to_string(),
                };
                CoiError::Cannot(format!("Invalid subscription: resource {{ endpoint }} is not allowed: {why}"))
            })?;
        let secret = new_secret()?;
        let job = job(account, id, &sub, endpoint, payload::validation(&secret)).map_err(cannot)?;
        let scope = server_scope(account);
        let previous = {
            let _guard = self.locks.lock(account.0).await;
            self.purge_locked(account).await?;
            let others = list(&self.store, account)?.into_iter().filter(|(other, _)| other != id).count();
            if others >= self.limit {
                return Err(CoiError::Limit("Too many subscriptions, delete old ones first".to_owned()));
            }
            if !self.attempts.try_record(account.0, Instant::now()) {
                tracing::info!(account = account.0, "coi: push subscription attempts over the hourly limit");
                return Err(CoiError::Limit(TOO_MANY_ATTEMPTS.to_owned()));
            }
            // Stored before the push: a phone may answer before this command does.
            // What it replaces comes back if the push fails (a working
            // subscription must not be lost to a failed re-registration).
            let previous = [
                (entry(id), self.store.get_metadata(scope, &entry(id))?),
                (secret_entry(id), self.store.get_metadata(scope, &secret_entry(id))?),
            ];
            let entries =
                [(entry(id), Some(sub.to_json().into_bytes())), (secret_entry(id), Some(secret.clone().into_bytes()))];
            self.store.set_metadata_entries(scope, &entries, None).await?;
            previous
        };
        // A host name that resolves into a private network is caught only here, by the sender,
        // and gets the same fixed answer as any other failure: a distinct one would let users
        // probe how the server's resolver sees internal names.
        let failure = match self.sender.send_once(&job, true).await {
            Ok(response) if sender::is_accepted(response.status) => return Ok(()),
            Ok(response) => format!("the push service answered {}", response.status),
            Err(e) => e.to_string(),
        };
        tracing::info!(account = account.0, subscription = id, "coi: endpoint validation failed: {failure}");
        let _guard = self.locks.lock(account.0).await;
        if self.store.get_metadata(scope, &secret_entry(id))?.as_deref() == Some(secret.as_bytes()) {
            // Still our unvalidated entry: put back what it replaced.
            self.store.set_metadata_entries(scope, &previous, None).await?;
        } else if validated_meanwhile(&self.store, scope, id, &sub)? {
            // The phone got the push and sent the secret back before the push service's answer
            // arrived (or timed out): the round trip itself proved the endpoint.
            return Ok(());
        }
        // Otherwise another command replaced or deleted the entry meanwhile: it is theirs now.
        Err(CoiError::Unavailable(VALIDATION_FAILED.to_owned()))
    }

    pub(crate) async fn unsubscribe(&self, account: AccountId, id: &str) -> Result<(), CoiError> {
        let _guard = self.locks.lock(account.0).await;
        remove_subscription(&self.store, account, id).await
    }

    /// R33: the secret of an unvalidated subscription within the window.
    pub(crate) async fn validate(&self, account: AccountId, id: &str, given: &[u8]) -> Result<(), CoiError> {
        let scope = server_scope(account);
        let not_found = || CoiError::Cannot(NOT_FOUND.to_owned());
        let _guard = self.locks.lock(account.0).await;
        let json = self.store.get_metadata(scope, &entry(id))?.ok_or_else(not_found)?;
        let mut sub = Subscription::from_stored(&json).map_err(|_| not_found())?;
        let secret = self.store.get_metadata(scope, &secret_entry(id))?.ok_or_else(not_found)?;
        if sub.validated
            || expired(&sub, now_unix(), self.window_secs)
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
        let wanted: Vec<(String, Subscription)> = list(&self.store, stored.account)?
            .into_iter()
            .filter(|(_, s)| s.validated && !expired(s, now, self.window_secs))
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
            match Endpoint::parse(&sub.endpoint).and_then(|ep| job(stored.account, &id, &sub, ep, body.clone())) {
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

/// The subscriptions as `coimail coi status` shows them: everything the client reads back except
/// the key material (`p256dh`, `auth`), which an operator has no use for and a pasted status
/// output must not carry.
pub(crate) fn status(store: &Store, account: AccountId) -> Result<Vec<serde_json::Value>, CoiError> {
    Ok(list(store, account)?
        .into_iter()
        .map(|(id, sub)| {
            let mut value = serde_json::from_str(&sub.to_json()).unwrap_or(serde_json::Value::Null);
            if let Some(keys) = value.pointer_mut("/resource/keys").and_then(serde_json::Value::as_object_mut) {
                for key in keys.values_mut() {
                    *key = serde_json::Value::from(REDACTED);
                }
            }
            serde_json::json!({ "id": id, "subscription": value })
        })
        .collect())
}

fn job(
    account: AccountId,
    id: &str,
    sub: &Subscription,
    endpoint: Endpoint,
    payload: Vec<u8>,
) -> Result<PushJob, WebPushError> {
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

/// Whether `id` now holds `sub` validated: the phone completed the round trip.
fn validated_meanwhile(store: &Store, scope: MetadataScope, id: &str, sub: &Subscription) -> Result<bool, CoiError> {
    let Some(json) = store.get_metadata(scope, &entry(id))? else { return Ok(false) };
    let mut want = sub.clone();
    want.validated = true;
    Ok(Subscription::from_stored(&json).is_ok_and(|stored| stored == want))
}

/// Deletes subscription `id` of `account` and its secret (R35 `NIL`); fine if it does not exist.
/// Needs only the store, so it also works with WebPush switched off, for cleaning up. Callers with
/// a running [`Push`] hold the account's lock.
pub(crate) async fn remove_subscription(store: &Store, account: AccountId, id: &str) -> Result<(), CoiError> {
    let entries = [(entry(id), None), (secret_entry(id), None)];
    store.set_metadata_entries(server_scope(account), &entries, None).await?;
    Ok(())
}

/// Deletes subscription `id` only if it still points at `endpoint`: a "gone" for an endpoint the
/// client has since replaced under the same id must not delete the new registration. The caller
/// holds the account's lock. `true` if deleted.
async fn remove_if_endpoint(
    store: &Store,
    account: AccountId,
    id: &str,
    endpoint: &Endpoint,
) -> Result<bool, CoiError> {
    let Some(json) = store.get_metadata(server_scope(account), &entry(id))? else { return Ok(false) };
    let current = Subscription::from_stored(&json).ok().and_then(|sub| Endpoint::parse(&sub.endpoint).ok());
    if current.as_ref() != Some(endpoint) {
        return Ok(false);
    }
    remove_subscription(store, account, id).await?;
    Ok(true)
}

/// R39: a subscription the push service calls gone is deleted.
async fn handle_reports(
    store: Store,
    locks: Arc<AccountLocks>,
    mut reports: tokio::sync::mpsc::UnboundedReceiver<Report>,
) {
    while let Some(report) = reports.recv().await {
        match report.outcome {
            Outcome::Delivered => {}
            Outcome::Gone => {
                let (account, id) = (report.account, report.subscription.as_str());
                let _guard = locks.lock(account).await;
                match remove_if_endpoint(&store, AccountId(account), id, &report.endpoint).await {
                    Ok(true) => {
                        tracing::info!(account, subscription = id, status = ?report.status,
                            "coi: push subscription gone, deleted it")
                    }
                    Ok(false) => tracing::info!(account, subscription = id, status = ?report.status,
                        "coi: push subscription gone, but it was re-registered or deleted meanwhile"),
                    Err(e) => tracing::warn!(error = %e, "coi: deleting a gone subscription failed"),
                }
            }
            Outcome::Failed(why) => tracing::info!(%why, "coi: push failed"),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const ACCOUNT: AccountId = AccountId(3);

    fn request(endpoint: &str) -> Vec<u8> {
        let mut p256dh = vec![4u8];
        p256dh.extend(1..=64u8);
        let b64 = |b: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
        format!(
            r#"{{"client":"c","device":"d","msgtype":"chat","resource":{{"endpoint":"{endpoint}","keys":{{"p256dh":"{}","auth":"{}"}}}}}}"#,
            b64(&p256dh),
            b64(&[9u8; 16])
        )
        .into_bytes()
    }

    /// A store holding subscription `id` (to `endpoint`) with a secret, as `subscribe` leaves it.
    async fn store_with(id: &str, endpoint: &str) -> (tempfile::TempDir, Store, Subscription) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open_memory(dir.path()).unwrap();
        let sub = subscription::parse_request(&request(endpoint), 1_795_582_460).unwrap();
        put(&store, id, &sub).await;
        (dir, store, sub)
    }

    async fn put(store: &Store, id: &str, sub: &Subscription) {
        let entries = [(entry(id), Some(sub.to_json().into_bytes())), (secret_entry(id), Some(b"s3cret".to_vec()))];
        store.set_metadata_entries(server_scope(ACCOUNT), &entries, None).await.unwrap();
    }

    fn stored(store: &Store, name: &str) -> Option<Vec<u8>> {
        store.get_metadata(server_scope(ACCOUNT), name).unwrap()
    }

    #[tokio::test]
    async fn gone_deletes_only_the_endpoint_that_failed() {
        let (_dir, store, _) = store_with("phone-1", "https://old.push.example/a").await;
        let old = Endpoint::parse("https://old.push.example/a").unwrap();
        // The client re-registered the id with another endpoint before the 404 came back.
        let new = subscription::parse_request(&request("https://new.push.example/b"), 1_795_582_470).unwrap();
        put(&store, "phone-1", &new).await;
        assert!(!remove_if_endpoint(&store, ACCOUNT, "phone-1", &old).await.unwrap());
        assert!(stored(&store, &entry("phone-1")).is_some() && stored(&store, &secret_entry("phone-1")).is_some());
        let current = Endpoint::parse("https://NEW.push.example/b").unwrap();
        assert!(remove_if_endpoint(&store, ACCOUNT, "phone-1", &current).await.unwrap());
        assert_eq!((stored(&store, &entry("phone-1")), stored(&store, &secret_entry("phone-1"))), (None, None));
        assert!(!remove_if_endpoint(&store, ACCOUNT, "phone-1", &current).await.unwrap(), "already gone");
    }

    #[tokio::test]
    async fn removal_needs_only_the_store() {
        let (_dir, store, _) = store_with("phone-2", "https://push.example/x").await;
        remove_subscription(&store, ACCOUNT, "phone-2").await.unwrap();
        assert_eq!((stored(&store, &entry("phone-2")), stored(&store, &secret_entry("phone-2"))), (None, None));
        remove_subscription(&store, ACCOUNT, "phone-2").await.unwrap();
    }

    #[tokio::test]
    async fn status_shows_no_key_material() {
        let (_dir, store, sub) = store_with("phone-3", "https://push.example/x").await;
        let shown = status(&store, ACCOUNT).unwrap();
        let text = serde_json::to_string(&shown).unwrap();
        assert!(!text.contains(&sub.p256dh) && !text.contains(&sub.auth) && !text.contains("s3cret"), "{text}");
        let s = &shown[0]["subscription"];
        assert_eq!(shown[0]["id"], "phone-3");
        assert_eq!(s["resource"]["keys"], serde_json::json!({"p256dh": REDACTED, "auth": REDACTED}));
        assert_eq!(s["resource"]["endpoint"], "https://push.example/x");
        for (key, want) in
            [("client", "c"), ("device", "d"), ("msgtype", "chat"), ("created", "2026-11-25T04:54:20+00:00")]
        {
            assert_eq!(s[key], want, "{key}");
        }
        assert_eq!(s["validated"], false);
    }

    #[tokio::test]
    async fn validated_meanwhile_needs_the_same_subscription() {
        let (_dir, store, sub) = store_with("phone-4", "https://push.example/x").await;
        let scope = server_scope(ACCOUNT);
        assert!(!validated_meanwhile(&store, scope, "phone-4", &sub).unwrap(), "still unvalidated");
        let mut done = sub.clone();
        done.validated = true;
        put(&store, "phone-4", &done).await;
        assert!(validated_meanwhile(&store, scope, "phone-4", &sub).unwrap());
        let other = subscription::parse_request(&request("https://push.example/y"), sub.created).unwrap();
        assert!(!validated_meanwhile(&store, scope, "phone-4", &other).unwrap(), "another endpoint");
        assert!(!validated_meanwhile(&store, scope, "nobody", &sub).unwrap());
    }

    #[test]
    fn a_huge_window_never_expires_everything() {
        let sub = subscription::parse_request(&request("https://push.example/x"), 1_000).unwrap();
        let window = i64::try_from(Duration::from_secs(u64::MAX).as_secs()).unwrap_or(i64::MAX);
        assert!(!expired(&sub, 2_000_000_000, window));
        assert!(!expired(&sub, 1_300, 300));
        assert!(expired(&sub, 1_301, 300));
        let validated = Subscription { validated: true, ..sub };
        assert!(!expired(&validated, i64::MAX, 300));
    }
}
