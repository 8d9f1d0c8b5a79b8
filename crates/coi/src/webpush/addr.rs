//! Where a push may go: the defence against server-side request forgery.
//!
//! Any logged-in user can register an endpoint and make the server POST to it (the validation
//! push, R32/R34), so without a check the server would reach into its own network on the user's
//! behalf (admin interfaces on loopback, cloud metadata on 169.254.169.254, hosts on RFC 1918
//! ranges) and its answers would tell the user which ports are open. Push services are public
//! HTTPS services, so only globally routable addresses are allowed, over TLS. Loopback is allowed
//! only when `coi.allow_loopback_push_endpoints` says so (tests and benches run a push service on
//! 127.0.0.1); plain `http` only then and only to loopback.
//!
//! The check runs twice: on the URL when a subscription is registered ([`check_endpoint`], so a
//! client gets `NO [CANNOT]` for an address it typed), and on every address the host name resolves
//! to right before connecting ([`vet`]); the connection then goes to exactly the vetted address,
//! never to a second resolution, so DNS rebinding cannot swap in another address between check and
//! use.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use super::WebPushError;
use super::http::Endpoint;

/// What an address is, as far as pushing is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddrClass {
    /// Globally routable unicast: where push services live.
    Public,
    /// 127/8, `::1`, `::ffff:127.x.y.z`: a push service on this machine (tests only).
    Loopback,
    /// Never a push service; the text names the range, for logs and error texts.
    Refused(&'static str),
}

/// Classifies an address; IPv6 forms that carry an IPv4 address are judged by that address.
pub fn classify(ip: IpAddr) -> AddrClass {
    match ip {
        IpAddr::V4(v4) => classify_v4(v4),
        IpAddr::V6(v6) => classify_v6(v6),
    }
}

fn classify_v4(ip: Ipv4Addr) -> AddrClass {
    let [a, b, c, _] = ip.octets();
    let range = match (a, b, c) {
        (127, ..) => return AddrClass::Loopback,
        (0, ..) => "this network / unspecified (0.0.0.0/8)",
        (10, ..) => "private (10.0.0.0/8)",
        (100, 64..=127, _) => "shared address space, CGNAT (100.64.0.0/10)",
        (169, 254, _) => "link-local (169.254.0.0/16)",
        (172, 16..=31, _) => "private (172.16.0.0/12)",
        (192, 0, 0) => "IETF protocol assignments (192.0.0.0/24)",
        (192, 0, 2) => "documentation (192.0.2.0/24)",
        (192, 88, 99) => "6to4 relay anycast (192.88.99.0/24)",
        (192, 168, _) => "private (192.168.0.0/16)",
        (198, 18..=19, _) => "benchmarking (198.18.0.0/15)",
        (198, 51, 100) => "documentation (198.51.100.0/24)",
        (203, 0, 113) => "documentation (203.0.113.0/24)",
        (224..=239, ..) => "multicast (224.0.0.0/4)",
        // 255.255.255.255 (limited broadcast) is the top of this block.
        (240..=255, ..) => "reserved or broadcast (240.0.0.0/4)",
        _ => return AddrClass::Public,
    };
    AddrClass::Refused(range)
}

fn classify_v6(ip: Ipv6Addr) -> AddrClass {
    if ip.is_loopback() {
        return AddrClass::Loopback;
    }
    if ip.is_unspecified() {
        return AddrClass::Refused("unspecified (::)");
    }
    let s = ip.segments();
    // IPv4-mapped (::ffff:a.b.c.d): how a dual-stack socket reaches an IPv4 address, so it is
    // exactly that address, loopback included.
    if s[..5] == [0; 5] && s[5] == 0xffff {
        return classify_v4(v4_from(s[6], s[7]));
    }
    // Forms that route to an IPv4 address through some translation or tunnel: IPv4-compatible
    // (::a.b.c.d, deprecated), NAT64 (64:ff9b::/96) and 6to4 (2002::/16). They must not become a
    // way around the IPv4 rules; they never mean this machine, so loopback inside is refused too.
    let compatible = s[..6] == [0; 6];
    let nat64 = s[0] == 0x64 && s[1] == 0xff9b && s[2..6] == [0; 4];
    let embedded = if compatible || nat64 {
        Some(v4_from(s[6], s[7]))
    } else if s[0] == 0x2002 {
        Some(v4_from(s[1], s[2]))
    } else {
        None
    };
    if let Some(v4) = embedded {
        return match classify_v4(v4) {
            AddrClass::Public => AddrClass::Public,
            AddrClass::Loopback => AddrClass::Refused("IPv4 loopback inside an IPv6 translation prefix"),
            refused => refused,
        };
    }
    // Everything outside global unicast (2000::/3) is refused: an allow-list is safer than
    // naming each range, and no push service lives elsewhere.
    let range = match s[0] {
        0x2000..=0x3fff => {
            if s[0] == 0x2001 && s[1] == 0x0db8 {
                "documentation (2001:db8::/32)"
            } else if s[0] == 0x2001 && s[1] < 0x0200 {
                "IETF protocol assignments, Teredo included (2001::/23)"
            } else if s[0] == 0x3fff && s[1] < 0x1000 {
                "documentation (3fff::/20)"
            } else {
                return AddrClass::Public;
            }
        }
        0xfc00..=0xfdff => "unique local (fc00::/7)",
        0xfe80..=0xfebf => "link-local (fe80::/10)",
        0xfec0..=0xfeff => "site-local (fec0::/10)",
        0xff00..=0xffff => "multicast (ff00::/8)",
        _ => "not global unicast (outside 2000::/3)",
    };
    AddrClass::Refused(range)
}

fn v4_from(high: u16, low: u16) -> Ipv4Addr {
    let [a, b] = high.to_be_bytes();
    let [c, d] = low.to_be_bytes();
    Ipv4Addr::new(a, b, c, d)
}

/// Whether a push over `https` (or plain http) may go to `ip`; `Err` says why not.
pub fn permitted(ip: IpAddr, https: bool, allow_loopback: bool) -> Result<(), String> {
    match classify(ip) {
        AddrClass::Public if https => Ok(()),
        AddrClass::Public => Err(format!("{ip}: plain http is only for loopback test push services")),
        AddrClass::Loopback if allow_loopback => Ok(()),
        AddrClass::Loopback => Err(format!("{ip}: loopback (coi.allow_loopback_push_endpoints is off)")),
        AddrClass::Refused(range) => Err(format!("{ip}: {range}")),
    }
}

/// RFC 6761: `localhost` and every name below it are loopback, whatever DNS says.
fn is_localhost_name(host: &str) -> bool {
    let host = host.strip_suffix('.').unwrap_or(host);
    host == "localhost" || host.ends_with(".localhost")
}

/// The check of an endpoint URL when it is registered: the scheme, an IP literal's range, and
/// `localhost` names. Host names are judged again by [`vet`] when they are resolved.
pub fn check_endpoint(ep: &Endpoint, allow_loopback: bool) -> Result<(), WebPushError> {
    let refuse = |why: String| Err(WebPushError::Endpoint(why));
    let https = match ep.scheme.as_str() {
        "https" => true,
        "http" if !allow_loopback => return refuse("plain http is not allowed, use https".into()),
        "http" => false,
        other => return refuse(format!("scheme {other}")),
    };
    if let Ok(ip) = ep.host.parse::<IpAddr>() {
        return permitted(ip, https, allow_loopback).map_err(WebPushError::Endpoint);
    }
    if is_localhost_name(&ep.host) {
        return if allow_loopback { Ok(()) } else { refuse(format!("{}: loopback", ep.host)) };
    }
    if !https {
        return refuse(format!("{}: plain http is only for loopback test push services", ep.host));
    }
    Ok(())
}

/// Vets the addresses a host resolved to. All of them must be permitted: a name that also points
/// into a private network is not a push service, and refusing it outright makes the outcome not
/// depend on which address happens to be tried first.
pub fn vet(addrs: Vec<SocketAddr>, https: bool, allow_loopback: bool) -> Result<Vec<SocketAddr>, WebPushError> {
    if addrs.is_empty() {
        return Err(WebPushError::Http("the host name has no address".into()));
    }
    for addr in &addrs {
        permitted(addr.ip(), https, allow_loopback).map_err(WebPushError::Endpoint)?;
    }
    Ok(addrs)
}

/// Resolves `ep` (an IP literal without DNS) and vets every address; the caller connects only to
/// what this returns.
pub async fn resolve(ep: &Endpoint, allow_loopback: bool) -> Result<Vec<SocketAddr>, WebPushError> {
    check_endpoint(ep, allow_loopback)?;
    let https = ep.scheme == "https";
    if let Ok(ip) = ep.host.parse::<IpAddr>() {
        return vet(vec![SocketAddr::new(ip, ep.port)], https, allow_loopback);
    }
    let addrs = tokio::net::lookup_host((ep.host.as_str(), ep.port))
        .await
        .map_err(|e| WebPushError::Http(format!("{}: cannot resolve: {e}", ep.host)))?;
    vet(addrs.collect(), https, allow_loopback)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn class(s: &str) -> AddrClass {
        classify(s.parse().unwrap())
    }

    fn refused(s: &str) -> bool {
        matches!(class(s), AddrClass::Refused(_))
    }

    #[test]
    fn public_addresses() {
        for ip in [
            "1.1.1.1",
            "8.8.8.8",
            "9.255.255.255",
            "11.0.0.0",
            "100.63.255.255",
            "100.128.0.0",
            "126.255.255.255",
            "128.0.0.0",
            "169.253.255.255",
            "169.255.0.0",
            "172.15.255.255",
            "172.32.0.0",
            "192.0.1.1",
            "192.0.3.1",
            "192.167.255.255",
            "192.169.0.0",
            "198.17.255.255",
            "198.20.0.0",
            "223.255.255.255",
            "2001:4860:4860::8888",
            "2a00:1450:4001:82b::200a",
            "2606:4700::1111",
            "2001:200::1",
            "2001:db9::1",
            "3ffe::1",
            "3fff:1000::1",
            "::ffff:8.8.8.8",
            "64:ff9b::808:808",
            "2002:808:808::1",
        ] {
            assert_eq!(class(ip), AddrClass::Public, "{ip}");
        }
    }

    #[test]
    fn loopback_addresses() {
        for ip in ["127.0.0.1", "127.255.255.254", "127.1.2.3", "::1", "::ffff:127.0.0.1", "::ffff:7f00:2"] {
            assert_eq!(class(ip), AddrClass::Loopback, "{ip}");
        }
    }

    #[test]
    fn ipv4_special_ranges_are_refused() {
        for ip in [
            "0.0.0.0",
            "0.1.2.3",
            "10.0.0.1",
            "10.255.255.255",
            "100.64.0.0",
            "100.100.100.200",
            "100.127.255.255",
            "169.254.169.254",
            "169.254.0.1",
            "172.16.0.1",
            "172.31.255.255",
            "192.0.0.8",
            "192.0.2.1",
            "192.88.99.1",
            "192.168.0.1",
            "192.168.255.255",
            "198.18.0.1",
            "198.19.255.255",
            "198.51.100.7",
            "203.0.113.9",
            "224.0.0.1",
            "239.255.255.250",
            "240.0.0.1",
            "255.255.255.255",
        ] {
            assert!(refused(ip), "{ip}: {:?}", class(ip));
        }
    }

    #[test]
    fn ipv6_special_ranges_are_refused() {
        for ip in [
            "::",
            "fc00::1",
            "fd12:3456:789a::1",
            "fdff:ffff::1",
            "fe80::1",
            "febf::1",
            "fec0::1",
            "ff02::1",
            "ff05::1:3",
            "2001:db8::1",
            "2001:db8:ffff::1",
            "2001::1",
            "2001:0:4136:e378:8000:63bf:3fff:fdd2",
            "2001:10::1",
            "2001:1ff::1",
            "3fff::1",
            "3fff:fff::1",
            "100::1",
            "64:ff9b:1::1",
            "1234::1",
            "4000::1",
            "::ffff:0:a00:1",
        ] {
            assert!(refused(ip), "{ip}: {:?}", class(ip));
        }
    }

    #[test]
    fn ipv4_inside_ipv6_is_judged_as_ipv4() {
        for ip in [
            "::ffff:10.0.0.1",
            "::ffff:169.254.169.254",
            "::ffff:192.168.1.1",
            "::ffff:100.64.0.1",
            "::ffff:0.0.0.0",
            "::ffff:255.255.255.255",
            "::ffff:224.0.0.1",
            "::10.0.0.1",
            "::192.168.1.1",
            "::127.0.0.1",
            "::0.0.0.2",
            "64:ff9b::10.0.0.1",
            "64:ff9b::127.0.0.1",
            "64:ff9b::169.254.169.254",
            "2002:a00:1::1",
            "2002:7f00:1::1",
            "2002:c0a8:101::1",
        ] {
            assert!(refused(ip), "{ip}: {:?}", class(ip));
        }
        assert_eq!(class("::8.8.8.8"), AddrClass::Public, "IPv4-compatible of a public address");
    }

    #[test]
    fn permission_by_scheme_and_flag() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert!(permitted(ip("8.8.8.8"), true, false).is_ok());
        assert!(permitted(ip("8.8.8.8"), false, true).is_err(), "plain http to a public address");
        assert!(permitted(ip("127.0.0.1"), true, false).is_err());
        assert!(permitted(ip("127.0.0.1"), false, false).is_err());
        assert!(permitted(ip("127.0.0.1"), false, true).is_ok());
        assert!(permitted(ip("::1"), true, true).is_ok());
        assert!(permitted(ip("10.0.0.1"), true, true).is_err(), "the flag is about loopback only");
        let why = permitted(ip("169.254.169.254"), true, true).unwrap_err();
        assert!(why.contains("link-local"), "{why}");
    }

    #[test]
    fn endpoint_urls() {
        let check = |url: &str, allow: bool| check_endpoint(&Endpoint::parse(url).unwrap(), allow);
        for url in ["https://push.example.com/x", "https://8.8.8.8/x", "https://[2001:4860:4860::8888]:8443/"] {
            assert!(check(url, false).is_ok(), "{url}");
            assert!(check(url, true).is_ok(), "{url}");
        }
        for url in [
            "http://127.0.0.1:18080/push",
            "http://push.example.com/x",
            "http://localhost/x",
            "https://127.0.0.1/x",
            "https://[::1]/",
            "https://[::ffff:127.0.0.1]/",
            "https://localhost/x",
            "https://LOCALHOST./x",
            "https://push.localhost/x",
            "https://10.0.0.1/x",
            "https://169.254.169.254/latest/meta-data/",
            "https://[fd00::1]/",
            "https://0.0.0.0/",
        ] {
            assert!(check(url, false).is_err(), "{url}");
        }
        for url in ["http://127.0.0.1:18080/push", "http://[::1]:8/", "http://localhost:1/", "https://[::1]/"] {
            assert!(check(url, true).is_ok(), "{url}");
        }
        for url in ["http://push.example.com/x", "http://8.8.8.8/", "https://10.0.0.1/x", "http://10.0.0.1/x"] {
            assert!(check(url, true).is_err(), "{url}");
        }
    }

    #[test]
    fn resolved_addresses_must_all_pass() {
        let sa = |s: &str| s.parse::<SocketAddr>().unwrap();
        let good = vec![sa("8.8.8.8:443"), sa("[2001:4860:4860::8888]:443")];
        assert_eq!(vet(good.clone(), true, false).unwrap(), good);
        // One private address among public ones: the whole name is refused.
        let mixed = vec![sa("8.8.8.8:443"), sa("10.1.2.3:443")];
        assert!(matches!(vet(mixed, true, false), Err(WebPushError::Endpoint(_))));
        assert!(vet(vec![sa("127.0.0.1:443")], true, false).is_err());
        assert!(vet(vec![sa("127.0.0.1:80"), sa("[::1]:80")], false, true).is_ok());
        assert!(vet(vec![sa("127.0.0.1:80"), sa("8.8.8.8:80")], false, true).is_err());
        assert!(vet(vec![], true, false).is_err());
    }

    #[tokio::test]
    async fn resolution_is_checked() {
        // `localhost` resolves (from /etc/hosts) to loopback only.
        let ep = Endpoint::parse("http://localhost:9/x").unwrap();
        let addrs = resolve(&ep, true).await.unwrap();
        assert!(addrs.iter().all(|a| a.ip().is_loopback() && a.port() == 9), "{addrs:?}");
        assert!(resolve(&ep, false).await.is_err());
        let ep = Endpoint::parse("https://127.0.0.1/x").unwrap();
        assert!(matches!(resolve(&ep, false).await, Err(WebPushError::Endpoint(_))));
        let ep = Endpoint::parse("https://[::ffff:a9fe:a9fe]/x").unwrap();
        assert!(matches!(resolve(&ep, true).await, Err(WebPushError::Endpoint(_))));
    }
}
