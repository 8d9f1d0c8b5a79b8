//! The PROXY protocol (HAProxy's, versions 1 and 2): a load balancer in
//! front of coimail opens each connection with a header naming the real
//! client, so logs, connection limits, the login throttle and Received
//! headers see the client instead of the balancer. Shared by the IMAP and
//! SMTP accept loops, like the connection limits beside it.
//!
//! A listener reads the header only from the sources it trusts
//! ([`TrustedProxies`]): from those a header is required (without one the
//! connection is refused, so a balancer misconfigured to send none is
//! noticed instead of every client looking like the balancer); from others
//! nothing is read, so a client cannot claim another address.
//!
//! The read is bounded: v1 is one line of at most 107 octets, v2 a 16-octet
//! header and at most [`MAX_V2_PAYLOAD`] more, all within a timeout; and it
//! never reads past the header, so the protocol after it is untouched.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt};

/// The v2 signature (spec §2.2).
const V2_SIGNATURE: [u8; 12] = *b"\r\n\r\n\0\r\nQUIT\n";
/// Longest v1 line, CRLF included (spec §2.1).
const MAX_V1: usize = 107;
/// Largest v2 payload accepted: addresses (at most 216 octets for AF_UNIX)
/// and room for TLVs a balancer adds (which are skipped).
pub const MAX_V2_PAYLOAD: usize = 536;

/// Why a PROXY header was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ProxyError {
    #[error("no PROXY protocol header")]
    Missing,
    #[error("malformed PROXY protocol header: {0}")]
    Malformed(&'static str),
    #[error("PROXY protocol header not received in time")]
    Timeout,
    #[error("connection closed before the PROXY protocol header ended")]
    Truncated,
    #[error("reading the PROXY protocol header: {0}")]
    Io(String),
}

/// Source networks a listener accepts PROXY headers from, e.g. `127.0.0.1/32`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies(Vec<(IpAddr, u8)>);

impl TrustedProxies {
    /// Parses `addr/len` or a bare address (one host). The error names the bad entry.
    pub fn parse<S: AsRef<str>>(networks: &[S]) -> Result<TrustedProxies, String> {
        let mut out = Vec::with_capacity(networks.len());
        for n in networks {
            let n = n.as_ref().trim();
            let (addr, len) = match n.split_once('/') {
                Some((a, l)) => (a, Some(l)),
                None => (n, None),
            };
            let addr: IpAddr = addr.parse().map_err(|_| format!("{n:?} is not an address or network"))?;
            let max = if addr.is_ipv4() { 32 } else { 128 };
            let len = match len {
                Some(l) => {
                    l.parse::<u8>().ok().filter(|l| *l <= max).ok_or_else(|| format!("{n:?}: bad prefix length"))?
                }
                None => max,
            };
            out.push((addr, len));
        }
        Ok(TrustedProxies(out))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether connections from `ip` must start with a PROXY header.
    pub fn trusts(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        self.0.iter().any(|&(net, len)| match (net, ip) {
            (IpAddr::V4(n), IpAddr::V4(a)) => prefix_eq(&n.octets(), &a.octets(), len),
            (IpAddr::V6(n), IpAddr::V6(a)) => prefix_eq(&n.octets(), &a.octets(), len),
            _ => false,
        })
    }
}

fn prefix_eq(a: &[u8], b: &[u8], len: u8) -> bool {
    let (whole, bits) = (usize::from(len / 8), len % 8);
    if a.get(..whole) != b.get(..whole) {
        return false;
    }
    if bits == 0 {
        return true;
    }
    let mask = 0xffu8 << (8 - bits);
    matches!((a.get(whole), b.get(whole)), (Some(x), Some(y)) if x & mask == y & mask)
}

/// Reads one PROXY header (v1 or v2) from `stream`, nothing after it.
/// `Ok(None)`: the balancer speaks for itself (v1 `UNKNOWN`, v2 `LOCAL`, or
/// an address family other than TCP over IPv4/IPv6): use the socket's peer.
pub async fn read_header<R: AsyncRead + Unpin>(
    stream: &mut R,
    timeout: Duration,
) -> Result<Option<SocketAddr>, ProxyError> {
    tokio::time::timeout(timeout, read_inner(stream)).await.map_err(|_| ProxyError::Timeout)?
}

async fn read_inner<R: AsyncRead + Unpin>(stream: &mut R) -> Result<Option<SocketAddr>, ProxyError> {
    // Both versions are at least 12 octets long (v1's shortest is 15).
    let mut head = [0u8; 12];
    read_exact(stream, &mut head).await?;
    if head == V2_SIGNATURE {
        let mut rest = [0u8; 4];
        read_exact(stream, &mut rest).await?;
        let len = usize::from(u16::from_be_bytes([rest[2], rest[3]]));
        if len > MAX_V2_PAYLOAD {
            return Err(ProxyError::Malformed("v2 payload too long"));
        }
        let mut payload = vec![0u8; len];
        read_exact(stream, &mut payload).await?;
        return parse_v2(rest[0], rest[1], &payload);
    }
    if !head.starts_with(b"PROXY ") {
        return Err(ProxyError::Missing);
    }
    let mut line = head.to_vec();
    // Octet by octet up to the LF: reading more would eat the client's first bytes.
    while line.last() != Some(&b'\n') {
        if line.len() >= MAX_V1 {
            return Err(ProxyError::Malformed("v1 line too long"));
        }
        let mut b = [0u8; 1];
        read_exact(stream, &mut b).await?;
        line.push(b[0]);
    }
    parse_v1(&line)
}

async fn read_exact<R: AsyncRead + Unpin>(stream: &mut R, buf: &mut [u8]) -> Result<(), ProxyError> {
    match stream.read_exact(buf).await {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Err(ProxyError::Truncated),
        Err(e) => Err(ProxyError::Io(e.to_string())),
    }
}

/// `PROXY TCP4 <src> <dst> <sport> <dport>\r\n` (or TCP6, or `UNKNOWN ...`).
pub fn parse_v1(line: &[u8]) -> Result<Option<SocketAddr>, ProxyError> {
    let bad = ProxyError::Malformed;
    let line = line.strip_suffix(b"\r\n").ok_or(bad("v1 line must end in CRLF"))?;
    let line = std::str::from_utf8(line).map_err(|_| bad("v1 line is not ASCII"))?;
    let mut parts = line.split(' ');
    if parts.next() != Some("PROXY") {
        return Err(bad("v1 line must start with PROXY"));
    }
    let family = parts.next().ok_or(bad("v1 family missing"))?;
    if family == "UNKNOWN" {
        return Ok(None);
    }
    let fields: Vec<&str> = parts.collect();
    let [src, _dst, sport, _dport] = fields.as_slice() else {
        return Err(bad("v1 needs source, destination and both ports"));
    };
    let ip: IpAddr = match family {
        "TCP4" => IpAddr::V4(src.parse().map_err(|_| bad("v1 source is not IPv4"))?),
        "TCP6" => IpAddr::V6(src.parse().map_err(|_| bad("v1 source is not IPv6"))?),
        _ => return Err(bad("v1 family must be TCP4, TCP6 or UNKNOWN")),
    };
    // Ports are decimal without sign or leading zeros (spec §2.1).
    if sport.is_empty() || sport.len() > 5 || !sport.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad("v1 source port"));
    }
    let port: u16 = sport.parse().map_err(|_| bad("v1 source port"))?;
    Ok(Some(SocketAddr::new(ip, port)))
}

/// The v2 binary form after its signature: version/command, family and the payload.
pub fn parse_v2(ver_cmd: u8, family: u8, payload: &[u8]) -> Result<Option<SocketAddr>, ProxyError> {
    let bad = ProxyError::Malformed;
    if ver_cmd >> 4 != 2 {
        return Err(bad("v2 version must be 2"));
    }
    match ver_cmd & 0x0f {
        0 => return Ok(None), // LOCAL: the balancer's own health check.
        1 => {}
        _ => return Err(bad("v2 command must be LOCAL or PROXY")),
    }
    match family {
        // TCP over IPv4: src(4) dst(4) sport(2) dport(2).
        0x11 => {
            let a = payload.get(..12).ok_or(bad("v2 IPv4 addresses truncated"))?;
            let ip = Ipv4Addr::new(a[0], a[1], a[2], a[3]);
            Ok(Some(SocketAddr::new(IpAddr::V4(ip), u16::from_be_bytes([a[8], a[9]]))))
        }
        // TCP over IPv6: src(16) dst(16) sport(2) dport(2).
        0x21 => {
            let a = payload.get(..36).ok_or(bad("v2 IPv6 addresses truncated"))?;
            let mut src = [0u8; 16];
            src.copy_from_slice(&a[..16]);
            Ok(Some(SocketAddr::new(IpAddr::V6(Ipv6Addr::from(src)), u16::from_be_bytes([a[32], a[33]]))))
        }
        // UNSPEC, UDP, AF_UNIX: nothing we can use; the connection is the balancer's.
        _ => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v2(cmd: u8, family: u8, payload: &[u8]) -> Vec<u8> {
        let mut h = V2_SIGNATURE.to_vec();
        h.extend_from_slice(&[0x20 | cmd, family]);
        h.extend_from_slice(&(payload.len() as u16).to_be_bytes());
        h.extend_from_slice(payload);
        h
    }

    async fn read(bytes: &[u8]) -> (Result<Option<SocketAddr>, ProxyError>, Vec<u8>) {
        let mut r = bytes;
        let got = read_header(&mut r, Duration::from_secs(1)).await;
        (got, r.to_vec())
    }

    #[tokio::test]
    async fn v1_and_v2_name_the_client_and_leave_the_rest() {
        let (got, rest) = read(b"PROXY TCP4 203.0.113.7 192.0.2.1 5555 25\r\nEHLO x\r\n").await;
        assert_eq!(got.unwrap(), Some("203.0.113.7:5555".parse().unwrap()));
        assert_eq!(rest, b"EHLO x\r\n");
        let (got, _) = read(b"PROXY TCP6 2001:db8::7 2001:db8::1 1 143\r\n").await;
        assert_eq!(got.unwrap(), Some("[2001:db8::7]:1".parse().unwrap()));
        assert_eq!(read(b"PROXY UNKNOWN\r\n").await.0.unwrap(), None);
        assert_eq!(read(b"PROXY UNKNOWN ffff::1 ffff::2 1 2\r\n").await.0.unwrap(), None);

        let mut p = vec![198, 51, 100, 9, 192, 0, 2, 1, 0x30, 0x39, 0, 25];
        p.extend_from_slice(&[0x04, 0, 1, 0]); // a TLV (NOOP), skipped
        let mut bytes = v2(1, 0x11, &p);
        bytes.extend_from_slice(b"a1 LOGIN");
        let (got, rest) = read(&bytes).await;
        assert_eq!(got.unwrap(), Some("198.51.100.9:12345".parse().unwrap()));
        assert_eq!(rest, b"a1 LOGIN");
        let mut p6 = vec![0u8; 36];
        p6[0] = 0x20;
        p6[1] = 0x01;
        p6[15] = 9;
        p6[33] = 7;
        assert_eq!(read(&v2(1, 0x21, &p6)).await.0.unwrap(), Some("[2001::9]:7".parse().unwrap()));
        assert_eq!(read(&v2(0, 0x00, &[])).await.0.unwrap(), None, "LOCAL");
        assert_eq!(read(&v2(1, 0x31, &[0; 216])).await.0.unwrap(), None, "AF_UNIX");
    }

    #[tokio::test]
    async fn garbage_and_truncated_headers_are_refused() {
        for (bytes, want) in [
            (&b"EHLO client.example\r\n"[..], ProxyError::Missing),
            (b"a1 LOGIN alice secret\r\n", ProxyError::Missing),
            (b"PROXY TCP4 203.0.113.7", ProxyError::Truncated),
            (b"PROX", ProxyError::Truncated),
            (b"PROXY TCP4 203.0.113.7 192.0.2.1 5555 25\n", ProxyError::Malformed("v1 line must end in CRLF")),
            (b"PROXY TCP4 2001:db8::1 192.0.2.1 5555 25\r\n", ProxyError::Malformed("v1 source is not IPv4")),
            (b"PROXY TCP4 203.0.113.7 192.0.2.1 99999 25\r\n", ProxyError::Malformed("v1 source port")),
            (b"PROXY TCP4 203.0.113.7 192.0.2.1 +5 25\r\n", ProxyError::Malformed("v1 source port")),
            (
                b"PROXY TCP4 203.0.113.7 192.0.2.1 5555\r\n",
                ProxyError::Malformed("v1 needs source, destination and both ports"),
            ),
            (
                b"PROXY UDP4 203.0.113.7 192.0.2.1 1 2\r\n",
                ProxyError::Malformed("v1 family must be TCP4, TCP6 or UNKNOWN"),
            ),
        ] {
            assert_eq!(read(bytes).await.0.unwrap_err(), want, "{}", String::from_utf8_lossy(bytes));
        }
        // A v1 line that never ends stops at 107 octets, reading no further.
        let mut long = b"PROXY TCP4 ".to_vec();
        long.extend(std::iter::repeat_n(b'1', 500));
        let (got, rest) = read(&long).await;
        assert_eq!(got.unwrap_err(), ProxyError::Malformed("v1 line too long"));
        assert_eq!(rest.len(), long.len() - MAX_V1);
        // v2: bad version, bad command, short addresses, oversized or cut payload.
        let mut wrong_version = v2(1, 0x11, &[0; 12]);
        wrong_version[12] = 0x11;
        assert!(matches!(read(&wrong_version).await.0, Err(ProxyError::Malformed(_))));
        assert!(matches!(read(&v2(2, 0x11, &[0; 12])).await.0, Err(ProxyError::Malformed(_))));
        assert!(matches!(read(&v2(1, 0x11, &[0; 11])).await.0, Err(ProxyError::Malformed(_))));
        assert!(matches!(read(&v2(1, 0x21, &[0; 20])).await.0, Err(ProxyError::Malformed(_))));
        let huge = v2(1, 0x11, &[0; MAX_V2_PAYLOAD + 1]);
        assert_eq!(read(&huge).await.0.unwrap_err(), ProxyError::Malformed("v2 payload too long"));
        let cut = v2(1, 0x11, &[0; 12]);
        assert_eq!(read(&cut[..20]).await.0.unwrap_err(), ProxyError::Truncated);
    }

    #[tokio::test]
    async fn a_silent_peer_times_out() {
        let (_client, mut server) = tokio::io::duplex(64);
        let got = read_header(&mut server, Duration::from_millis(50)).await;
        assert_eq!(got.unwrap_err(), ProxyError::Timeout);
    }

    #[test]
    fn trusted_networks() {
        let t = TrustedProxies::parse(&["127.0.0.1/32", "10.1.0.0/16", "2001:db8::/33", "192.0.2.7"]).unwrap();
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert!(t.trusts(ip("127.0.0.1")) && t.trusts(ip("::ffff:127.0.0.1")));
        assert!(!t.trusts(ip("127.0.0.2")));
        assert!(t.trusts(ip("10.1.200.3")) && !t.trusts(ip("10.2.0.1")));
        assert!(t.trusts(ip("2001:db8:7fff::1")) && !t.trusts(ip("2001:db8:8000::1")));
        assert!(t.trusts(ip("192.0.2.7")) && !t.trusts(ip("192.0.2.8")));
        assert!(!TrustedProxies::default().trusts(ip("127.0.0.1")));
        for bad in ["localhost", "10.0.0.0/33", "::/129", "10.0.0.0/x"] {
            assert!(TrustedProxies::parse(&[bad]).is_err(), "{bad}");
        }
    }
}
