//! Device tokens, kept per device: a set per account, as chatmail's
//! `metadata.py` keeps them (every `SETMETADATA "INBOX"
//! (/private/devicetoken ...)` adds one; a phone and a tablet each add
//! theirs). They live in the store as internal METADATA entries of the
//! account's server scope, `deltachat/devicetoken/<sha256 of the token>`,
//! valued `<unix time added> <token>`: internal names (no leading `/`) are
//! out of IMAP's reach and do not count against the client's entry limit.
//!
//! A token not set again for [`MAX_AGE_SECS`] is dropped (chatmail: 90
//! days); Delta Chat sends its token again on every connection, so a live
//! device never ages out. Re-adding refreshes the time at most once a day,
//! so reconnects do not each cost a durable write.

use coimail_store::{AccountId, MetadataScope, Store, StoreError};

const PREFIX: &str = "deltachat/devicetoken/";
/// chatmail's `_is_valid_token_timestamp`: 90 days.
pub const MAX_AGE_SECS: i64 = 90 * 24 * 3600;
/// How stale a stored time may get before a re-add writes it again.
const REFRESH_SECS: i64 = 24 * 3600;
/// Devices one account may register; beyond it the longest unrefreshed goes.
/// (chatmail has no cap; a cap keeps one account from growing the index.)
pub const MAX_TOKENS: usize = 32;

fn scope(account: AccountId) -> MetadataScope {
    MetadataScope { account, mailbox: None }
}

/// The entry name of `token`: tokens run to 4 KiB, names stay short.
fn name(token: &str) -> String {
    format!("{PREFIX}{}", fingerprint_full(token))
}

fn fingerprint_full(token: &str) -> String {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, token.as_bytes());
    digest.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

/// What logs show of a token: never the token (house rule: no secrets in logs).
pub fn fingerprint(token: &str) -> String {
    fingerprint_full(token).chars().take(12).collect()
}

/// One stored token and when it was last set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceToken {
    pub token: String,
    pub added: i64,
}

fn parse(value: &[u8]) -> Option<DeviceToken> {
    let text = std::str::from_utf8(value).ok()?;
    let (added, token) = text.split_once(' ')?;
    Some(DeviceToken { token: token.to_owned(), added: added.parse().ok()? })
}

fn valid(t: &DeviceToken, now: i64) -> bool {
    // chatmail also refuses times in the future (a clock set back).
    t.added > now - MAX_AGE_SECS && t.added < now + 60
}

/// Every stored token of `account`, live or not, with its entry name, oldest first.
fn stored(store: &Store, account: AccountId) -> Result<Vec<(String, DeviceToken)>, StoreError> {
    let mut out: Vec<(String, DeviceToken)> = store
        .list_metadata(scope(account), PREFIX)?
        .into_iter()
        .filter_map(|(name, value)| match parse(&value) {
            Some(t) => Some((name, t)),
            None => {
                tracing::warn!(account = account.0, "deltachat: unreadable device token entry skipped");
                None
            }
        })
        .collect();
    out.sort_by_key(|(_, t)| t.added);
    Ok(out)
}

/// The live tokens of `account`, oldest first.
pub fn list(store: &Store, account: AccountId, now: i64) -> Result<Vec<String>, StoreError> {
    Ok(stored(store, account)?.into_iter().filter(|(_, t)| valid(t, now)).map(|(_, t)| t.token).collect())
}

/// Adds `token` (or refreshes its time), dropping expired tokens and, over
/// [`MAX_TOKENS`], the oldest. Durable on return; `false` when nothing
/// needed writing (the token was set within the last day).
pub async fn add(store: &Store, account: AccountId, token: &str, now: i64) -> Result<bool, StoreError> {
    let own = name(token);
    let all = stored(store, account)?;
    if all.iter().any(|(n, t)| *n == own && t.token == token && valid(t, now) && now - t.added < REFRESH_SECS) {
        return Ok(false);
    }
    let mut entries: Vec<(String, Option<Vec<u8>>)> = Vec::new();
    let mut kept = 0usize;
    // Newest first, so the cap drops the oldest.
    for (n, t) in all.iter().rev() {
        if *n == own {
            continue;
        }
        if !valid(t, now) || kept + 1 >= MAX_TOKENS {
            entries.push((n.clone(), None));
        } else {
            kept += 1;
        }
    }
    entries.push((own, Some(format!("{now} {token}").into_bytes())));
    store.set_metadata_entries(scope(account), &entries, None).await?;
    Ok(true)
}

/// Removes `token` (the proxy said it is gone); fine if it is not there.
pub async fn remove(store: &Store, account: AccountId, token: &str) -> Result<bool, StoreError> {
    let own = name(token);
    if store.get_metadata(scope(account), &own)?.and_then(|v| parse(&v)).is_none_or(|t| t.token != token) {
        return Ok(false);
    }
    store.set_metadata(scope(account), &own, None).await?;
    Ok(true)
}

/// Removes every token of `account` (`SETMETADATA ... NIL`: the entry is gone, RFC 5464 §4.3).
pub async fn clear(store: &Store, account: AccountId) -> Result<(), StoreError> {
    let entries: Vec<(String, Option<Vec<u8>>)> =
        store.list_metadata(scope(account), PREFIX)?.into_iter().map(|(n, _)| (n, None)).collect();
    if entries.is_empty() {
        return Ok(());
    }
    store.set_metadata_entries(scope(account), &entries, None).await
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const A: AccountId = AccountId(7);
    const NOW: i64 = 1_800_000_000;

    fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open_memory(dir.path()).unwrap();
        (dir, store)
    }

    #[tokio::test]
    async fn devices_each_keep_their_token() {
        let (_d, s) = store();
        assert!(add(&s, A, "openpgp:phone", NOW).await.unwrap());
        assert!(add(&s, A, "openpgp:tablet", NOW + 1).await.unwrap());
        assert!(!add(&s, A, "openpgp:phone", NOW + 2).await.unwrap(), "a reconnect writes nothing");
        assert_eq!(list(&s, A, NOW + 3).unwrap(), vec!["openpgp:phone", "openpgp:tablet"]);
        assert_eq!(list(&s, AccountId(8), NOW).unwrap(), Vec::<String>::new());
        assert!(remove(&s, A, "openpgp:phone").await.unwrap());
        assert!(!remove(&s, A, "openpgp:phone").await.unwrap());
        assert_eq!(list(&s, A, NOW + 3).unwrap(), vec!["openpgp:tablet"]);
        clear(&s, A).await.unwrap();
        assert!(list(&s, A, NOW).unwrap().is_empty());
    }

    #[tokio::test]
    async fn old_tokens_expire_and_readding_refreshes() {
        let (_d, s) = store();
        add(&s, A, "old", NOW).await.unwrap();
        add(&s, A, "fresh", NOW).await.unwrap();
        let later = NOW + MAX_AGE_SECS - 10;
        add(&s, A, "fresh", later).await.unwrap();
        assert_eq!(list(&s, A, NOW + MAX_AGE_SECS + 1).unwrap(), vec!["fresh"]);
        // The next add removes the expired entry for good.
        add(&s, A, "third", NOW + MAX_AGE_SECS + 2).await.unwrap();
        assert_eq!(stored(&s, A).unwrap().len(), 2);
    }

    #[tokio::test]
    async fn the_cap_drops_the_oldest() {
        let (_d, s) = store();
        for i in 0..MAX_TOKENS as i64 + 3 {
            add(&s, A, &format!("t{i}"), NOW + i).await.unwrap();
        }
        let live = list(&s, A, NOW + 100).unwrap();
        assert_eq!(live.len(), MAX_TOKENS);
        assert_eq!(live.first().map(String::as_str), Some("t3"));
        assert_eq!(live.last().map(String::as_str), Some(format!("t{}", MAX_TOKENS + 2).as_str()));
    }

    #[test]
    fn fingerprints_hide_the_token() {
        let f = fingerprint("openpgp:secret-token");
        assert_eq!(f.len(), 12);
        assert!(!f.contains("secret"));
    }
}
