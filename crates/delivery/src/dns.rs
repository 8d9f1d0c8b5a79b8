//! Where a domain's mail goes (RFC 5321 §5.1): MX records by preference,
//! those of equal preference in random order (so the load spreads over
//! them, as §5.1 asks); no MX record means the domain itself (implicit MX, its A/AAAA records);
//! a single MX of "." means the domain takes no mail (null MX, RFC 7505).
//!
//! The resolver asks the configured DNS servers (tests run one on a
//! loopback port) or, with none configured, those of `/etc/resolv.conf`.
//! Names are queried fully qualified so no search domain is appended.

use crate::DeliveryError;
use hickory_resolver::config::{ConnectionConfig, LookupIpStrategy, NameServerConfig, ResolverConfig};
use hickory_resolver::net::NetError;
use hickory_resolver::net::runtime::TokioRuntimeProvider;
pub use hickory_resolver::proto::rr::{RData, RecordType};
use hickory_resolver::{Resolver, TokioResolver};
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

/// The mail servers of a domain, best first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Route {
    Hosts(Vec<String>),
    /// RFC 7505: the domain accepts no mail.
    NullMx,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum DnsFailure {
    /// NXDOMAIN: permanent.
    NoSuchDomain,
    /// Timeouts, SERVFAIL and the like: try again later.
    Temporary(String),
}

/// A resolver on the configured servers: the queue's, and `coimail dns check`'s.
pub struct Dns {
    resolver: TokioResolver,
}

fn name_server(addr: SocketAddr) -> NameServerConfig {
    let mut udp = ConnectionConfig::udp();
    udp.port = addr.port();
    let mut tcp = ConnectionConfig::tcp();
    tcp.port = addr.port();
    NameServerConfig::new(addr.ip(), true, vec![udp, tcp])
}

fn fqdn(name: &str) -> String {
    if name.ends_with('.') { name.to_owned() } else { format!("{name}.") }
}

/// Lowest preference first; within one preference, the order of `random`.
fn by_preference(hosts: Vec<(u16, String)>, mut random: impl FnMut() -> u64) -> Vec<String> {
    let mut keyed: Vec<(u16, u64, String)> = hosts.into_iter().map(|(pref, host)| (pref, random(), host)).collect();
    keyed.sort_by_key(|(pref, r, _)| (*pref, *r));
    keyed.into_iter().map(|(_, _, host)| host).collect()
}

/// Random enough to spread load, from std alone: each `RandomState` is keyed
/// afresh (per-thread random keys, stepped on every call).
fn random() -> u64 {
    use std::hash::BuildHasher;
    std::collections::hash_map::RandomState::new().hash_one(0u8)
}

fn temporary(e: &NetError) -> DnsFailure {
    DnsFailure::Temporary(e.to_string())
}

/// A hickory resolver asking `servers` (tests run one on a loopback port)
/// or, with none, those of `/etc/resolv.conf`, each query bounded by
/// `timeout`. Shared with the MX listener's SPF/DKIM/DMARC checks
/// (`coimail-smtp`), so every lookup of the server goes to the same place.
pub fn resolver(servers: &[SocketAddr], timeout: Duration) -> Result<TokioResolver, DeliveryError> {
    let system = if servers.is_empty() { Some(TokioResolver::builder_tokio()) } else { None };
    let mut builder = match system {
        Some(Ok(builder)) => builder,
        Some(Err(e)) => {
            // Start anyway: local mail works; remote mail waits in the queue
            // (every lookup fails temporarily) until DNS is configured.
            tracing::error!(error = %e, "no usable /etc/resolv.conf and no [queue] resolvers: DNS lookups will fail");
            Resolver::builder_with_config(
                ResolverConfig::from_name_servers(Vec::new()),
                TokioRuntimeProvider::default(),
            )
        }
        None => {
            let config = ResolverConfig::from_name_servers(servers.iter().copied().map(name_server).collect());
            Resolver::builder_with_config(config, TokioRuntimeProvider::default())
        }
    };
    let opts = builder.options_mut();
    opts.timeout = timeout;
    opts.ip_strategy = LookupIpStrategy::Ipv4AndIpv6;
    builder.build().map_err(|e| DeliveryError::Resolver(e.to_string()))
}

impl Dns {
    pub fn new(servers: &[SocketAddr], timeout: Duration) -> Result<Dns, DeliveryError> {
        Ok(Dns { resolver: resolver(servers, timeout)? })
    }

    /// The mail servers of `domain`, best preference first.
    pub(crate) async fn route(&self, domain: &str) -> Result<Route, DnsFailure> {
        let lookup = match self.resolver.mx_lookup(fqdn(domain)).await {
            Ok(l) => l,
            Err(e) if e.is_nx_domain() => return Err(DnsFailure::NoSuchDomain),
            Err(e) if e.is_no_records_found() => return Ok(Route::Hosts(vec![domain.to_owned()])),
            Err(e) => return Err(temporary(&e)),
        };
        let mut mx: Vec<(u16, String, bool)> = lookup
            .answers()
            .iter()
            .filter_map(|r| match &r.data {
                RData::MX(mx) => Some((mx.preference, mx.exchange.to_ascii(), mx.exchange.is_root())),
                _ => None,
            })
            .collect();
        if mx.len() == 1 && mx.iter().all(|(_, _, root)| *root) {
            return Ok(Route::NullMx);
        }
        mx.retain(|(_, _, root)| !root);
        if mx.is_empty() {
            return Ok(Route::Hosts(vec![domain.to_owned()]));
        }
        let hosts = mx.into_iter().map(|(pref, host, _)| (pref, host.trim_end_matches('.').to_owned())).collect();
        Ok(Route::Hosts(by_preference(hosts, random)))
    }

    /// Every record of `rtype` at `name` (CNAMEs followed to it are left
    /// out); empty when the name or such records do not exist.
    pub async fn records(&self, name: &str, rtype: RecordType) -> Result<Vec<RData>, String> {
        match self.resolver.lookup(fqdn(name), rtype).await {
            Ok(l) => Ok(l.answers().iter().filter(|r| r.record_type() == rtype).map(|r| r.data.clone()).collect()),
            Err(e) if e.is_nx_domain() || e.is_no_records_found() => Ok(Vec::new()),
            Err(e) => Err(e.to_string()),
        }
    }

    /// The addresses of a mail server (IPv4 and IPv6).
    pub(crate) async fn addresses(&self, host: &str) -> Result<Vec<IpAddr>, DnsFailure> {
        if let Ok(ip) = host.trim_start_matches('[').trim_end_matches(']').parse::<IpAddr>() {
            return Ok(vec![ip]);
        }
        match self.resolver.lookup_ip(fqdn(host)).await {
            Ok(l) => Ok(l.iter().collect()),
            Err(e) if e.is_nx_domain() => Err(DnsFailure::NoSuchDomain),
            Err(e) if e.is_no_records_found() => Ok(Vec::new()),
            Err(e) => Err(temporary(&e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lower_preference_first_and_equal_ones_shuffled() {
        let hosts = vec![(20, "c".to_owned()), (10, "a".to_owned()), (10, "b".to_owned()), (30, "d".to_owned())];
        let mut seen = std::collections::BTreeSet::new();
        for _ in 0..200 {
            let order = by_preference(hosts.clone(), random);
            assert_eq!(&order[2..], ["c", "d"], "{order:?}");
            seen.insert(order[..2].join(","));
        }
        assert_eq!(seen.into_iter().collect::<Vec<_>>(), ["a,b", "b,a"], "both orders of the equal pair");
        let mut n = 0;
        let fixed = by_preference(hosts, || {
            n += 1;
            10 - n
        });
        assert_eq!(fixed, ["b", "a", "c", "d"], "the random key decides within a preference");
    }
}
