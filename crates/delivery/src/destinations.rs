//! Which addresses the queue may connect to. A recipient domain's MX (or
//! A/AAAA) records are chosen by whoever controls that domain, so without
//! this check anyone with a submission account, or any domain a user writes
//! to, could point us at loopback services, the private network we run in,
//! or a cloud metadata endpoint (169.254.169.254).
//!
//! Refused: every address that is not globally reachable in the IANA IPv4
//! and IPv6 special-purpose address registries (RFC 6890 and successors),
//! plus multicast and the IPv4 forms embedded in IPv6 (`::ffff:a.b.c.d`,
//! NAT64 `64:ff9b::/96`, 6to4 `2002::/16`), which are judged by the IPv4
//! address inside. One classifier serves this and push endpoints
//! (`coimail_coi::webpush::addr`). `[queue] allow_private_destinations =
//! true` turns the check off (tests, and sites whose mail servers are all on
//! a LAN).

use coimail_coi::webpush::addr::{AddrClass, classify};
use std::net::IpAddr;

/// True if the queue may deliver to `ip`. The same classification as push
/// endpoints (`coimail_coi::webpush::addr`): only globally routable unicast,
/// IPv6 restricted to 2000::/3, loopback never (the queue has no loopback
/// exception; the config switch covers tests).
pub fn is_public(ip: IpAddr) -> bool {
    classify(ip) == AddrClass::Public
}

#[cfg(test)]
mod tests {
    use super::*;

    fn public(s: &str) -> bool {
        is_public(s.parse().unwrap())
    }

    #[test]
    fn special_purpose_addresses_are_refused() {
        for ip in [
            "0.0.0.0",
            "0.1.2.3",
            "10.0.0.1",
            "100.64.0.1",
            "100.127.255.254",
            "127.0.0.1",
            "127.0.0.3",
            "169.254.169.254",
            "172.16.0.1",
            "172.31.255.255",
            "192.0.0.8",
            "192.0.2.1",
            "192.168.1.1",
            "198.18.0.1",
            "198.19.255.255",
            "198.51.100.7",
            "203.0.113.9",
            "224.0.0.1",
            "240.0.0.1",
            "255.255.255.255",
            "::",
            "::1",
            "::ffff:127.0.0.1",
            "::ffff:10.1.2.3",
            "::ffff:169.254.169.254",
            "::127.0.0.1",
            "64:ff9b::a00:1",
            "64:ff9b:1::1",
            "100::1",
            "2001::1",
            "2001:db8::1",
            "2002:7f00:1::1",
            "2002:c0a8:101::1",
            "3fff::1",
            "fc00::1",
            "fd12:3456::1",
            "fe80::1",
            "fec0::1",
            "ff02::1",
        ] {
            assert!(!public(ip), "{ip} must be refused");
        }
    }

    #[test]
    fn ordinary_internet_addresses_are_allowed() {
        for ip in [
            "1.1.1.1",
            "8.8.8.8",
            "100.63.255.255",
            "100.128.0.1",
            "172.15.0.1",
            "172.32.0.1",
            "192.0.1.1",
            "192.169.0.1",
            "198.17.0.1",
            "198.20.0.1",
            "223.255.255.254",
            "2a00:1450:4001::1b",
            "2606:4700::1111",
            "::ffff:8.8.8.8",
            "64:ff9b::808:808",
            "2002:808:808::1",
        ] {
            assert!(public(ip), "{ip} must be allowed");
        }
    }
}
