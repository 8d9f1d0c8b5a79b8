//! Fetching `https://mta-sts.<domain>/.well-known/mta-sts.txt` (RFC 8461
//! §3.3) with reqwest: the certificate must be valid for the policy host
//! (web PKI, [`crate::tls::Pki`]), redirects are not followed, only a `200`
//! with `Content-Type: text/plain` counts, the body is at most
//! [`MAX_POLICY`] bytes and the whole exchange is bounded by a timeout. Names
//! are resolved by the queue's own resolver, so the configured DNS servers
//! (the tests' DNS server too) apply here as they do to MX lookups.

use crate::DeliveryError;
use crate::dns::{Dns, DnsFailure};
use crate::tls::Pki;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

/// Policies are a few lines; RFC 8461 §3.3 suggests a limit of 64 KiB.
pub const MAX_POLICY: usize = 64 * 1024;

/// Why no policy text came back, with its RFC 8460 §4.3.2.1 result type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FetchError {
    /// `sts-webpki-invalid` (the policy host's certificate) or
    /// `sts-policy-fetch-error` (anything else).
    pub result_type: &'static str,
    pub detail: String,
}

pub(crate) struct Fetcher {
    client: reqwest::Client,
    port: u16,
}

/// The queue's resolver, for reqwest. Port 0: reqwest puts the URL's in.
struct QueueResolver(Arc<Dns>);

impl Resolve for QueueResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let dns = self.0.clone();
        Box::pin(async move {
            let ips = match dns.addresses(name.as_str()).await {
                Ok(ips) if !ips.is_empty() => ips,
                Ok(_) | Err(DnsFailure::NoSuchDomain) => {
                    return Err(format!("{} has no address", name.as_str()).into());
                }
                Err(DnsFailure::Temporary(e)) => return Err(format!("resolving {}: {e}", name.as_str()).into()),
            };
            let addrs: Addrs = Box::new(ips.into_iter().map(|ip| SocketAddr::new(ip, 0)));
            Ok(addrs)
        })
    }
}

impl Fetcher {
    /// `port`: 443 on the internet; tests serve policies on another.
    pub(crate) fn new(dns: Arc<Dns>, pki: &Pki, port: u16, timeout: Duration) -> Result<Fetcher, DeliveryError> {
        let client = reqwest::Client::builder()
            .tls_backend_preconfigured(pki.client_config()?)
            .dns_resolver(Arc::new(QueueResolver(dns)))
            .redirect(reqwest::redirect::Policy::none())
            // A proxy from the environment would see (and could alter) what
            // decides our TLS policy; the policy host is asked directly.
            .no_proxy()
            .http1_only()
            .connect_timeout(timeout)
            .timeout(timeout)
            .user_agent(concat!("coimail/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| DeliveryError::Tls(format!("MTA-STS HTTPS client: {e}")))?;
        Ok(Fetcher { client, port })
    }

    /// The policy text of `domain` (already checked to be a host name).
    pub(crate) async fn fetch(&self, domain: &str) -> Result<String, FetchError> {
        let fail = |detail: String| FetchError { result_type: "sts-policy-fetch-error", detail };
        let port = if self.port == 443 { String::new() } else { format!(":{}", self.port) };
        let url = format!("https://mta-sts.{domain}{port}/.well-known/mta-sts.txt");
        let mut response = self.client.get(&url).send().await.map_err(|e| classify(&url, &e))?;
        let status = response.status();
        if status != reqwest::StatusCode::OK {
            // Redirects included (§3.3: not followed).
            return Err(fail(format!("{url}: HTTP status {status}")));
        }
        let content_type = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();
        let media = content_type.split(';').next().unwrap_or("").trim();
        if !media.eq_ignore_ascii_case("text/plain") {
            return Err(fail(format!("{url}: Content-Type is {content_type:?}, not text/plain")));
        }
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|e| classify(&url, &e))? {
            if body.len() + chunk.len() > MAX_POLICY {
                return Err(fail(format!("{url}: policy larger than {MAX_POLICY} bytes")));
            }
            body.extend_from_slice(&chunk);
        }
        String::from_utf8(body).map_err(|_| fail(format!("{url}: policy is not UTF-8")))
    }
}

/// A certificate problem is `sts-webpki-invalid`; everything else a fetch
/// error. The rustls error sits somewhere down the source chain, inside
/// io::Errors (whose `source()` skips the error they wrap).
fn classify(url: &str, e: &reqwest::Error) -> FetchError {
    let mut next: Option<&(dyn std::error::Error + 'static)> = Some(e);
    let mut causes: Vec<String> = Vec::new();
    while let Some(err) = next {
        let rustls = err.downcast_ref::<rustls::Error>().or_else(|| {
            err.downcast_ref::<std::io::Error>().and_then(|io| io.get_ref()).and_then(|i| i.downcast_ref())
        });
        if let Some(r @ rustls::Error::InvalidCertificate(_)) = rustls {
            return FetchError { result_type: "sts-webpki-invalid", detail: format!("{url}: {r}") };
        }
        let text = err.to_string();
        if !causes.iter().any(|c| c.contains(&text)) {
            causes.push(text);
        }
        next = err.source();
    }
    FetchError { result_type: "sts-policy-fetch-error", detail: format!("{url}: {}", causes.join(": ")) }
}
