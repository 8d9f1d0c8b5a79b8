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
//! address inside. `[queue] allow_private_destinations = true` turns the
//! check off (tests, and sites whose mail servers are all on a LAN).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// True if the queue may deliver to `ip`.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => is_public_v6(v6),
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    let refused = a == 0                                  // 0/8 "this network"
        || a == 10                                        // 10/8 private (RFC 1918)
        || (a == 100 && (64..128).contains(&b))           // 100.64/10 shared (CGN, RFC 6598)
        || a == 127                                       // 127/8 loopback
        || (a == 169 && b == 254)                         // 169.254/16 link-local
        || (a == 172 && (16..32).contains(&b))            // 172.16/12 private
        || (a == 192 && b == 0 && c == 0)                 // 192.0.0/24 IETF protocol assignments
        || (a == 192 && b == 0 && c == 2)                 // 192.0.2/24 TEST-NET-1
        || (a == 192 && b == 88 && c == 99)               // 192.88.99/24 6to4 relay anycast (deprecated)
        || (a == 192 && b == 168)                         // 192.168/16 private
        || (a == 198 && (b == 18 || b == 19))             // 198.18/15 benchmarking
        || (a == 198 && b == 51 && c == 100)              // 198.51.100/24 TEST-NET-2
        || (a == 203 && b == 0 && c == 113)               // 203.0.113/24 TEST-NET-3
        || a >= 224; // 224/4 multicast, 240/4 reserved, 255.255.255.255 broadcast
    !refused
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    let s = ip.segments();
    if let Some(v4) = ip.to_ipv4_mapped() {
        return is_public_v4(v4); // ::ffff:0:0/96
    }
    if s[0] == 0x0064 && s[1] == 0xff9b && s[2..6] == [0, 0, 0, 0] {
        // 64:ff9b::/96, NAT64 well-known prefix: the IPv4 address inside decides.
        return is_public_v4(Ipv4Addr::new((s[6] >> 8) as u8, s[6] as u8, (s[7] >> 8) as u8, s[7] as u8));
    }
    if s[0] == 0x2002 {
        // 2002::/16, 6to4: the IPv4 address in bits 16..48 decides.
        return is_public_v4(Ipv4Addr::new((s[1] >> 8) as u8, s[1] as u8, (s[2] >> 8) as u8, s[2] as u8));
    }
    let refused = s[..6] == [0, 0, 0, 0, 0, 0]            // ::/128, ::1, ::/96 IPv4-compatible (deprecated)
        || (s[0] == 0x0064 && s[1] == 0xff9b && s[2] == 1) // 64:ff9b:1::/48 local-use NAT64
        || (s[0] == 0x0100 && s[1..4] == [0, 0, 0])        // 100::/64 discard-only
        || (s[0] == 0x2001 && s[1] < 0x0200)               // 2001::/23 IETF protocol assignments (Teredo, ORCHID, ...)
        || (s[0] == 0x2001 && s[1] == 0x0db8)              // 2001:db8::/32 documentation
        || (s[0] & 0xfff0) == 0x3ff0                       // 3fff::/20 documentation
        || s[0] == 0x5f00                                  // 5f00::/16 SRv6 SIDs
        || (s[0] & 0xfe00) == 0xfc00                       // fc00::/7 unique local
        || (s[0] & 0xffc0) == 0xfe80                       // fe80::/10 link-local
        || (s[0] & 0xffc0) == 0xfec0                       // fec0::/10 site-local (deprecated)
        || (s[0] & 0xff00) == 0xff00; // ff00::/8 multicast
    !refused
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
