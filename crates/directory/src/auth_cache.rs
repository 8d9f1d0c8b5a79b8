//! The login cache: logins that argon2 verified, remembered for a short
//! while, so a client that logs in again and again (webmail logs in per
//! request, polling clients and phones reconnect all day) costs an HMAC
//! instead of an argon2 verification (~28 ms of a core and 19 MiB). Like
//! Dovecot's auth cache, without its negative entries (see `Directory::authenticate`).
//!
//! What an entry holds, per login address: an HMAC-SHA256, under a random
//! key made when the process starts and never written anywhere, of the
//! user's record exactly as stored (address, id, argon2 hash, quota) and the
//! password, plus when argon2 accepted it. Never the password itself: the
//! tag cannot be reversed without the key, and the key dies with the process.
//!
//! Invalidation is by construction. A lookup recomputes the tag over the
//! record as it is stored *now*; any change to the record (a new password
//! hash, the user deleted or created again, any field a future "disabled" or
//! rename would touch) gives another tag, so the entry no longer matches,
//! whichever path made the change (admin socket, API, the CLI while no
//! daemon ran, a restored snapshot) and even when a login verified against
//! the old record finishes after the change and stores its entry late.
//! `Directory::set_password`/`del_user` also drop the entry at once, to
//! free it, but correctness does not rest on them.
//!
//! Entries live at most `ttl` from their verification (a hit does not extend
//! it), so a password is checked by argon2 again at least that often and a
//! tag stays in memory no longer than that. At `max_entries`, expired entries
//! go first, then the oldest verification.

use aws_lc_rs::constant_time::verify_slices_are_equal;
use aws_lc_rs::hmac;
use aws_lc_rs::rand::SystemRandom;
use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// How long and how many logins the cache remembers. A zero in either turns it off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheOptions {
    pub ttl: Duration,
    pub max_entries: usize,
}

impl Default for CacheOptions {
    /// 5 minutes covers what repeats logins (webmail requests, clients that
    /// poll every few minutes, reconnects) while a password is re-checked by
    /// argon2 at least every 5 minutes; 10,000 entries are ~1.5 MB.
    fn default() -> Self {
        CacheOptions { ttl: Duration::from_secs(300), max_entries: 10_000 }
    }
}

struct Entry {
    tag: hmac::Tag,
    verified: Instant,
}

pub(crate) struct AuthCache {
    opts: CacheOptions,
    key: hmac::Key,
    entries: Mutex<HashMap<String, Entry>>,
}

impl AuthCache {
    /// `None` when the system's random number generator fails (no key, no cache).
    pub(crate) fn new(opts: CacheOptions) -> Option<AuthCache> {
        let key = hmac::Key::generate(hmac::HMAC_SHA256, &SystemRandom::new()).ok()?;
        Some(AuthCache { opts, key, entries: Mutex::new(HashMap::new()) })
    }

    fn enabled(&self) -> bool {
        !self.opts.ttl.is_zero() && self.opts.max_entries > 0
    }

    fn entries(&self) -> MutexGuard<'_, HashMap<String, Entry>> {
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn tag(&self, record: &[u8], password: &str) -> hmac::Tag {
        let mut ctx = hmac::Context::with_key(&self.key);
        // Length-prefixed, so no (record, password) pair can be shifted into another.
        ctx.update(&(record.len() as u64).to_be_bytes());
        ctx.update(record);
        ctx.update(password.as_bytes());
        ctx.sign()
    }

    /// Whether argon2 accepted `password` for `login` within the TTL, with
    /// the user's record then exactly `record` (its stored bytes).
    pub(crate) fn hit(&self, login: &str, record: &[u8], password: &str, now: Instant) -> bool {
        if !self.enabled() {
            return false;
        }
        // The HMAC is computed outside the lock: logins of other users need not wait for it.
        let tag = self.tag(record, password);
        let mut entries = self.entries();
        let Some(entry) = entries.get(login) else { return false };
        if now.saturating_duration_since(entry.verified) >= self.opts.ttl {
            entries.remove(login);
            return false;
        }
        verify_slices_are_equal(entry.tag.as_ref(), tag.as_ref()).is_ok()
    }

    /// Remembers that argon2 accepted `password` for `login` against `record`.
    /// Only ever called after a successful verification.
    pub(crate) fn insert(&self, login: &str, record: &[u8], password: &str, now: Instant) {
        if !self.enabled() {
            return;
        }
        let tag = self.tag(record, password);
        let mut entries = self.entries();
        if entries.len() >= self.opts.max_entries && !entries.contains_key(login) {
            let ttl = self.opts.ttl;
            entries.retain(|_, e| now.saturating_duration_since(e.verified) < ttl);
            if entries.len() >= self.opts.max_entries {
                // A linear scan, but only when full and right after an argon2
                // verification, which costs a thousand times more.
                let oldest = entries.iter().min_by_key(|(_, e)| e.verified).map(|(k, _)| k.clone());
                if let Some(k) = oldest {
                    entries.remove(&k);
                }
            }
        }
        entries.insert(login.to_owned(), Entry { tag, verified: now });
    }

    pub(crate) fn forget(&self, login: &str) {
        self.entries().remove(login);
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.entries().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cache(ttl_secs: u64, max_entries: usize) -> AuthCache {
        AuthCache::new(CacheOptions { ttl: Duration::from_secs(ttl_secs), max_entries }).unwrap()
    }

    #[test]
    fn only_the_verified_password_and_record_hit() {
        let c = cache(300, 10);
        let t0 = Instant::now();
        assert!(!c.hit("a@x.org", b"rec1", "pw", t0), "nothing cached yet");
        c.insert("a@x.org", b"rec1", "pw", t0);
        assert!(c.hit("a@x.org", b"rec1", "pw", t0));
        assert!(!c.hit("a@x.org", b"rec1", "pw ", t0), "another password");
        assert!(!c.hit("a@x.org", b"rec1", "", t0));
        assert!(!c.hit("b@x.org", b"rec1", "pw", t0), "another login");
        assert!(!c.hit("a@x.org", b"rec2", "pw", t0), "the record changed (new hash, re-created user)");
        // No shifting bytes between record and password.
        assert!(!c.hit("a@x.org", b"rec", "1pw", t0));
        // A miss does not evict the good entry.
        assert!(c.hit("a@x.org", b"rec1", "pw", t0));
        c.forget("a@x.org");
        assert!(!c.hit("a@x.org", b"rec1", "pw", t0));
    }

    #[test]
    fn entries_expire_after_the_ttl_and_hits_do_not_extend_it() {
        let c = cache(300, 10);
        let t0 = Instant::now();
        c.insert("a@x.org", b"r", "pw", t0);
        assert!(c.hit("a@x.org", b"r", "pw", t0 + Duration::from_secs(299)));
        assert!(!c.hit("a@x.org", b"r", "pw", t0 + Duration::from_secs(300)));
        assert_eq!(c.len(), 0, "an expired entry is dropped when found");
        // Verified again: a fresh lifetime.
        c.insert("a@x.org", b"r", "pw", t0 + Duration::from_secs(301));
        assert!(c.hit("a@x.org", b"r", "pw", t0 + Duration::from_secs(600)));
    }

    #[test]
    fn size_is_bounded_dropping_expired_then_oldest() {
        let c = cache(300, 3);
        let t0 = Instant::now();
        let at = |s| t0 + Duration::from_secs(s);
        c.insert("a", b"r", "pw", at(0));
        c.insert("b", b"r", "pw", at(10));
        c.insert("c", b"r", "pw", at(20));
        c.insert("d", b"r", "pw", at(30));
        assert_eq!(c.len(), 3);
        assert!(!c.hit("a", b"r", "pw", at(30)), "the oldest went");
        assert!(c.hit("b", b"r", "pw", at(30)) && c.hit("d", b"r", "pw", at(30)));
        // Replacing an entry evicts nothing.
        c.insert("d", b"r", "pw2", at(31));
        assert!(c.hit("b", b"r", "pw", at(31)) && c.hit("c", b"r", "pw", at(31)));
        // When b and c have expired, both go before anything live is evicted.
        c.insert("e", b"r", "pw", at(321));
        assert_eq!(c.len(), 2);
        assert!(c.hit("d", b"r", "pw2", at(321)) && c.hit("e", b"r", "pw", at(321)));
    }

    #[test]
    fn zero_ttl_or_size_turns_it_off() {
        for c in [cache(0, 10), cache(300, 0)] {
            let t0 = Instant::now();
            c.insert("a", b"r", "pw", t0);
            assert!(!c.hit("a", b"r", "pw", t0));
            assert_eq!(c.len(), 0);
        }
    }

    #[test]
    fn two_caches_have_different_keys() {
        // The key is random per process (per cache): tags are useless elsewhere.
        let (a, b) = (cache(300, 10), cache(300, 10));
        assert_ne!(a.tag(b"r", "pw").as_ref(), b.tag(b"r", "pw").as_ref());
        assert_eq!(a.tag(b"r", "pw").as_ref(), a.tag(b"r", "pw").as_ref());
    }
}
