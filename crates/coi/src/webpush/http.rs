//! A minimal HTTP/1.1 client for push services: one POST per connection.

use super::WebPushError;

/// A push endpoint URL, split into what the request and the VAPID `aud` need.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// `http` or `https`.
    pub scheme: String,
    /// Host name or IP literal (IPv6 without brackets), lower-cased.
    pub host: String,
    pub port: u16,
    /// Path and query, starting with `/`.
    pub path: String,
}

impl Endpoint {
    /// Parses `http(s)://host[:port][/path]`. Userinfo and fragments are refused.
    pub fn parse(url: &str) -> Result<Endpoint, WebPushError> {
        let bad = |why: &str| WebPushError::Endpoint(format!("{why}: {url}"));
        let (scheme, rest) = url.split_once("://").ok_or_else(|| bad("no scheme"))?;
        let scheme = scheme.to_ascii_lowercase();
        let default_port = match scheme.as_str() {
            "http" => 80,
            "https" => 443,
            _ => return Err(bad("scheme must be http or https")),
        };
        if url.bytes().any(|b| !b.is_ascii_graphic()) || url.contains('#') {
            return Err(bad("invalid character"));
        }
        let (authority, path) = match rest.find(['/', '?']) {
            Some(i) => (&rest[..i], rest[i..].to_owned()),
            None => (rest, "/".to_owned()),
        };
        let path = if path.starts_with('?') { format!("/{path}") } else { path };
        if authority.contains('@') {
            return Err(bad("userinfo is not allowed"));
        }
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let (host, after) = v6.split_once(']').ok_or_else(|| bad("unclosed IPv6 literal"))?;
            let port = match after.strip_prefix(':') {
                Some(p) => p.parse().map_err(|_| bad("invalid port"))?,
                None if after.is_empty() => default_port,
                None => return Err(bad("invalid authority")),
            };
            (host.to_owned(), port)
        } else {
            match authority.rsplit_once(':') {
                Some((h, p)) => (h.to_owned(), p.parse().map_err(|_| bad("invalid port"))?),
                None => (authority.to_owned(), default_port),
            }
        };
        if host.is_empty() {
            return Err(bad("no host"));
        }
        Ok(Endpoint { scheme, host: host.to_ascii_lowercase(), port, path })
    }

    /// RFC 8292 `aud`: scheme and host, no port (what the OX push service checks).
    pub fn audience(&self) -> String {
        if self.host.contains(':') {
            format!("{}://[{}]", self.scheme, self.host)
        } else {
            format!("{}://{}", self.scheme, self.host)
        }
    }

    /// A loopback host: the only place plain `http` is allowed (tests).
    pub fn is_loopback(&self) -> bool {
        self.host == "localhost"
            || self.host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints() {
        let e = Endpoint::parse("https://Push.Example.com/push/send/1?x=1").unwrap();
        assert_eq!((e.host.as_str(), e.port, e.path.as_str()), ("push.example.com", 443, "/push/send/1?x=1"));
        assert_eq!(e.audience(), "https://push.example.com");
        let e = Endpoint::parse("http://127.0.0.1:18080/push").unwrap();
        assert_eq!((e.port, e.audience().as_str(), e.is_loopback()), (18080, "http://127.0.0.1", true));
        let e = Endpoint::parse("http://[::1]:8/").unwrap();
        assert_eq!((e.host.as_str(), e.audience().as_str()), ("::1", "http://[::1]"));
        for bad in ["ftp://x/", "https://", "https://u@h/", "https://h:x/", "https://h/ a", "nourl"] {
            assert!(Endpoint::parse(bad).is_err(), "{bad}");
        }
    }
}
