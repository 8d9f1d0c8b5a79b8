//! DNS answers for the inbound checks, kept until their TTL runs out, so a
//! burst of mail from one sender resolves its SPF, DKIM key, DMARC and PTR
//! records once (mail-auth asks these caches before the resolver, and keeps
//! the *parsed* record: a DKIM key is decoded once, not per message).
//!
//! Each cache is a map behind a std mutex: entries are looked up and
//! replaced, never held across an await. A full cache first drops what has
//! expired and, if still full, starts over: simpler than LRU bookkeeping,
//! and a refill costs one lookup per name.

use mail_auth::common::cache::NoCache;
use mail_auth::{MX, Parameters, RecordSet, ResolverCache, Txt};
use std::borrow::Borrow;
use std::collections::HashMap;
use std::hash::Hash;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Mutex;
use std::time::Instant;

/// Names per cache; a record is small (a parsed key is ~1 KiB at most).
const CAPACITY: usize = 4096;

/// One record type's answers, each with the instant it expires.
pub(crate) struct DnsCache<K, V> {
    entries: Mutex<HashMap<K, (V, Instant)>>,
    capacity: usize,
}

impl<K, V> DnsCache<K, V> {
    pub(crate) fn new(capacity: usize) -> Self {
        DnsCache { entries: Mutex::new(HashMap::new()), capacity }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<K, (V, Instant)>> {
        // A panic elsewhere while holding the lock leaves a map that is still
        // consistent (every update is one insert or remove): keep using it.
        self.entries.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.lock().len()
    }
}

impl<K: Hash + Eq, V: Clone> ResolverCache<K, V> for DnsCache<K, V> {
    fn get<Q>(&self, name: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let mut entries = self.lock();
        match entries.get(name) {
            Some((value, expires)) if *expires > Instant::now() => Some(value.clone()),
            Some(_) => {
                entries.remove(name);
                None
            }
            None => None,
        }
    }

    fn remove<Q>(&self, name: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.lock().remove(name).map(|(value, _)| value)
    }

    fn insert(&self, key: K, value: V, valid_until: Instant) {
        let mut entries = self.lock();
        if entries.len() >= self.capacity {
            let now = Instant::now();
            entries.retain(|_, (_, expires)| *expires > now);
            if entries.len() >= self.capacity {
                entries.clear();
            }
        }
        entries.insert(key, (value, valid_until));
    }
}

/// The caches mail-auth can use, one per record type.
pub(crate) struct Caches {
    txt: DnsCache<Box<str>, Txt>,
    mx: DnsCache<Box<str>, RecordSet<MX>>,
    ipv4: DnsCache<Box<str>, RecordSet<Ipv4Addr>>,
    ipv6: DnsCache<Box<str>, RecordSet<Ipv6Addr>>,
    ptr: DnsCache<IpAddr, RecordSet<Box<str>>>,
}

/// mail-auth's parameters with every cache of [`Caches`].
pub(crate) type Cached<'x, P> = Parameters<
    'x,
    P,
    DnsCache<Box<str>, Txt>,
    DnsCache<Box<str>, RecordSet<MX>>,
    DnsCache<Box<str>, RecordSet<Ipv4Addr>>,
    DnsCache<Box<str>, RecordSet<Ipv6Addr>>,
    DnsCache<IpAddr, RecordSet<Box<str>>>,
>;

impl Caches {
    pub(crate) fn new() -> Caches {
        Caches {
            txt: DnsCache::new(CAPACITY),
            mx: DnsCache::new(CAPACITY),
            ipv4: DnsCache::new(CAPACITY),
            ipv6: DnsCache::new(CAPACITY),
            ptr: DnsCache::new(CAPACITY),
        }
    }

    /// `params` for a mail-auth check that consults these caches.
    pub(crate) fn with<'x, P>(&'x self, params: P) -> Cached<'x, P> {
        let plain: Parameters<'x, P, NoCache<_, _>, NoCache<_, _>, NoCache<_, _>, NoCache<_, _>, NoCache<_, _>> =
            Parameters::new(params);
        plain
            .with_txt_cache(&self.txt)
            .with_mx_cache(&self.mx)
            .with_ipv4_cache(&self.ipv4)
            .with_ipv6_cache(&self.ipv6)
            .with_ptr_cache(&self.ptr)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn entries_expire_and_a_full_cache_makes_room() {
        let c: DnsCache<Box<str>, u32> = DnsCache::new(2);
        let later = Instant::now() + Duration::from_secs(60);
        c.insert("a.".into(), 1, later);
        c.insert("gone.".into(), 2, Instant::now());
        assert_eq!(c.get("a."), Some(1));
        assert_eq!(c.get("gone."), None, "expired");
        assert_eq!(c.len(), 1, "an expired entry is dropped when seen");
        c.insert("b.".into(), 3, later);
        c.insert("c.".into(), 4, later);
        assert_eq!(c.get("c."), Some(4), "a full cache still takes the new entry");
        assert!(c.len() <= 2);
        assert_eq!(c.remove("c."), Some(4));
        assert_eq!(c.get("c."), None);
    }
}
