//! The two routers: what the HTTPS listener answers and what the plain HTTP
//! listener answers, and the one place a refusal becomes a status
//! ([`Reject`]).
//!
//! Which domain a request is about comes from the request: the address it
//! names (autoconfig's `emailaddress`, Autodiscover's `EMailAddress`, the
//! profile's `email`) or else the host it was sent to (`autoconfig.<domain>`,
//! `mta-sts.<domain>`, `<domain>`). Only domains this server serves get an
//! answer; any other gets 404, so the server does not confirm or describe
//! domains it does not hold.

use crate::{HttpContext, MAX_BODY, acme, autoconfig, autodiscover, mobileconfig, new_account};
use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use coimail_directory::{Address, LogSafe};
use serde::Deserialize;
use std::sync::Arc;

pub(crate) type Ctx = State<Arc<HttpContext>>;

/// Why a request gets no answer; [`IntoResponse`] is the one mapping to
/// the wire. Texts are generic: details go to the log.
#[derive(Debug)]
pub(crate) enum Reject {
    /// Nothing here for this request (an unknown domain, no ACME token).
    NotFound(&'static str),
    /// The client's fault: a body or parameter we cannot use.
    BadRequest(&'static str),
    /// Ours: the directory could not be read.
    Internal(String),
}

impl IntoResponse for Reject {
    fn into_response(self) -> Response {
        match self {
            Reject::NotFound(why) => {
                tracing::debug!(why, "not found");
                (StatusCode::NOT_FOUND, "not found\n").into_response()
            }
            Reject::BadRequest(why) => {
                tracing::debug!(why, "bad request");
                (StatusCode::BAD_REQUEST, "bad request\n").into_response()
            }
            Reject::Internal(e) => {
                tracing::error!(error = %e, "request failed");
                (StatusCode::INTERNAL_SERVER_ERROR, "internal error\n").into_response()
            }
        }
    }
}

/// The HTTPS listener: autoconfig, Autodiscover, the Apple profile, MTA-STS.
pub(crate) fn https(ctx: Arc<HttpContext>) -> Router {
    Router::new()
        .route("/mail/config-v1.1.xml", get(mozilla))
        .route("/.well-known/autoconfig/mail/config-v1.1.xml", get(mozilla))
        .route("/autodiscover/autodiscover.xml", post(outlook))
        .route("/Autodiscover/Autodiscover.xml", post(outlook))
        .route("/apple/mail.mobileconfig", get(apple))
        .route("/.well-known/mta-sts.txt", get(mta_sts))
        .route("/new", post(new_account::create).get(new_account::to_app))
        // chatmail's old path, still on printed QR codes.
        .route("/cgi-bin/newemail.py", post(new_account::create).get(new_account::to_app))
        .fallback(|| async { Reject::NotFound("no such path") })
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .layer(middleware::from_fn(log_request))
        .with_state(ctx)
}

/// The plain HTTP listener: ACME HTTP-01 (RFC 8555 §8.3 validates on port
/// 80), Mozilla autoconfig (Thunderbird asks `http://autoconfig.<domain>/`
/// too), and a redirect to HTTPS for everything else.
pub(crate) fn http(ctx: Arc<HttpContext>) -> Router {
    Router::new()
        .route("/.well-known/acme-challenge/{token}", get(acme_challenge))
        .route("/mail/config-v1.1.xml", get(mozilla))
        .route("/.well-known/autoconfig/mail/config-v1.1.xml", get(mozilla))
        .fallback(to_https)
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .layer(middleware::from_fn(log_request))
        .with_state(ctx)
}

/// One event per request: method, path (never the query, which holds
/// addresses) and status.
async fn log_request(req: Request, next: Next) -> Response {
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let response = next.run(req).await;
    tracing::info!(%method, path = %LogSafe(&path), status = response.status().as_u16(), "request");
    response
}

/// The host the request was sent to, lower-case, without port or final dot.
pub(crate) fn request_host(headers: &HeaderMap, uri: &Uri) -> Option<String> {
    let raw = match uri.host() {
        Some(h) => h.to_owned(),
        None => {
            let h = headers.get(header::HOST)?.to_str().ok()?;
            if h.starts_with('[') {
                // An IPv6 literal is never one of our domains.
                return None;
            }
            match h.rsplit_once(':') {
                Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name.to_owned(),
                _ => h.to_owned(),
            }
        }
    };
    let host = raw.trim_end_matches('.').to_ascii_lowercase();
    (!host.is_empty()).then_some(host)
}

/// `domain` in canonical form if this server serves it.
pub(crate) fn served(ctx: &HttpContext, domain: &str) -> Result<String, Reject> {
    let domain = coimail_directory::canonical_domain(domain).map_err(|_| Reject::NotFound("not a domain name"))?;
    match ctx.directory.is_local_domain(&domain) {
        Ok(true) => Ok(domain),
        Ok(false) => Err(Reject::NotFound("not a domain served here")),
        Err(e) => Err(Reject::Internal(e.to_string())),
    }
}

/// A user's address whose domain we serve, canonical.
fn served_address(ctx: &HttpContext, address: &str) -> Result<Address, Reject> {
    let parsed = Address::parse(address).map_err(|_| Reject::BadRequest("not a mail address"))?;
    served(ctx, &parsed.domain)?;
    Ok(parsed)
}

pub(crate) fn document(content_type: &'static str, body: String) -> Response {
    ([(header::CONTENT_TYPE, HeaderValue::from_static(content_type))], body).into_response()
}

#[derive(Deserialize)]
struct MozillaQuery {
    emailaddress: Option<String>,
}

/// The address's domain when the client names one (Thunderbird does), else
/// the host's: `autoconfig.<domain>`, or `<domain>` for `.well-known`.
async fn mozilla(
    State(ctx): Ctx,
    Query(q): Query<MozillaQuery>,
    headers: HeaderMap,
    uri: Uri,
) -> Result<Response, Reject> {
    let domain = match q.emailaddress.as_deref().filter(|a| !a.is_empty()) {
        Some(address) => served_address(&ctx, address)?.domain,
        None => {
            let host = request_host(&headers, &uri).ok_or(Reject::NotFound("no host"))?;
            served(&ctx, host.strip_prefix("autoconfig.").unwrap_or(&host))?
        }
    };
    let body = autoconfig::document(&domain, &ctx.config.hostname, &ctx.config.services);
    Ok(document("application/xml; charset=utf-8", body))
}

async fn outlook(State(ctx): Ctx, body: Bytes) -> Result<Response, Reject> {
    let address = autodiscover::requested_address(&body).map_err(Reject::BadRequest)?;
    let address = served_address(&ctx, &address)?.key();
    let body = autodiscover::document(&address, &ctx.config.hostname, &ctx.config.services);
    Ok(document("text/xml; charset=utf-8", body))
}

#[derive(Deserialize)]
struct AppleQuery {
    email: String,
}

async fn apple(State(ctx): Ctx, Query(q): Query<AppleQuery>) -> Result<Response, Reject> {
    let address = served_address(&ctx, &q.email)?.key();
    let body = mobileconfig::document(&address, &ctx.config.hostname, &ctx.config.services)
        .ok_or(Reject::NotFound("no IMAP or no submission listener"))?;
    let mut response = document("application/x-apple-aspen-config", body);
    let file = format!("attachment; filename=\"{}.mobileconfig\"", ctx.config.hostname);
    if let Ok(v) = HeaderValue::from_str(&file) {
        response.headers_mut().insert(header::CONTENT_DISPOSITION, v);
    }
    Ok(response)
}

/// RFC 8461 §3.2: the policy, served only for `mta-sts.<domain>` of a
/// domain we serve.
async fn mta_sts(State(ctx): Ctx, headers: HeaderMap, uri: Uri) -> Result<Response, Reject> {
    let host = request_host(&headers, &uri).ok_or(Reject::NotFound("no host"))?;
    let domain = host.strip_prefix("mta-sts.").ok_or(Reject::NotFound("not an mta-sts host"))?;
    served(&ctx, domain)?;
    Ok(document("text/plain; charset=utf-8", ctx.config.mta_sts_policy.clone()))
}

async fn acme_challenge(State(ctx): Ctx, Path(token): Path<String>) -> Result<Response, Reject> {
    let responder = ctx.http01.as_ref().ok_or(Reject::NotFound("no ACME client"))?;
    if !acme::is_token(&token) {
        return Err(Reject::NotFound("not an ACME token"));
    }
    let key_authorization = responder.key_authorization(&token).ok_or(Reject::NotFound("unknown ACME token"))?;
    Ok(document("application/octet-stream", key_authorization))
}

/// Everything else on plain HTTP moves to HTTPS, same host and path.
async fn to_https(State(ctx): Ctx, headers: HeaderMap, uri: Uri) -> Result<Response, Reject> {
    let port = ctx.config.https_port.ok_or(Reject::NotFound("no HTTPS listener"))?;
    let host = request_host(&headers, &uri).ok_or(Reject::NotFound("no host"))?;
    if host.bytes().any(|b| !(b.is_ascii_alphanumeric() || b == b'.' || b == b'-')) {
        return Err(Reject::NotFound("not a host name"));
    }
    let port = if port == 443 { String::new() } else { format!(":{port}") };
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    Ok(Redirect::permanent(&format!("https://{host}{port}{path}")).into_response())
}

#[cfg(test)]
mod tests {
    use super::request_host;
    use axum::http::{HeaderMap, HeaderValue, Uri, header};

    #[test]
    fn the_host_comes_without_port_and_final_dot() {
        let host = |h: &str| {
            let mut headers = HeaderMap::new();
            headers.insert(header::HOST, HeaderValue::from_str(h).unwrap());
            request_host(&headers, &Uri::from_static("/x"))
        };
        assert_eq!(host("AutoConfig.Example.org:8443").as_deref(), Some("autoconfig.example.org"));
        assert_eq!(host("example.org.").as_deref(), Some("example.org"));
        assert_eq!(host("[::1]:443"), None);
        assert_eq!(host(""), None);
        let abs = request_host(&HeaderMap::new(), &Uri::from_static("http://mta-sts.example.org/x"));
        assert_eq!(abs.as_deref(), Some("mta-sts.example.org"));
    }
}
