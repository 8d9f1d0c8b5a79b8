//! `/new`: chatmail's account endpoint (chatmaild `newemail.py` behind
//! nginx). Delta Chat scans `DCACCOUNT:https://<host>/new`, POSTs an empty
//! body there and reads `{"email": ..., "password": ...}`; on a failure it
//! shows the `reason` of `{"reason": ...}` (chatmail core `src/qr.rs`,
//! `login_param_from_account_qr`). A browser's GET is sent on to the app
//! (`dcaccount:` redirect, as chatmail's nginx does) and creates nothing,
//! so link previews and prefetchers cannot make accounts.
//!
//! The directory makes the account and owns the switch and the per-peer
//! allowance; while it is off both methods answer 404.

use crate::routes::{Ctx, Reject, document, request_host, served};
use crate::{ClientAddr, HttpContext};
use axum::Extension;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::Response;
use coimail_directory::NewAccountError;

/// The served domain the account goes in: the host the request was sent
/// to when it is one (`https://<domain>/new`, chatmail's form), else the
/// only domain served (the URL names the mail host).
fn account_domain(ctx: &HttpContext, headers: &HeaderMap, uri: &Uri) -> Result<String, Reject> {
    let host = request_host(headers, uri).ok_or(Reject::NotFound("no host"))?;
    match served(ctx, &host) {
        Ok(domain) => Ok(domain),
        Err(Reject::NotFound(_)) => {
            let domains = ctx.directory.list_domains().map_err(|e| Reject::Internal(e.to_string()))?;
            match <[String; 1]>::try_from(domains) {
                Ok([only]) => Ok(only),
                Err(_) => Err(Reject::NotFound("the host names none of several served domains")),
            }
        }
        Err(e) => Err(e),
    }
}

fn json(status: StatusCode, body: serde_json::Value) -> Response {
    let mut response = document("application/json", body.to_string());
    *response.status_mut() = status;
    response
}

fn reason(status: StatusCode, reason: &str) -> Response {
    json(status, serde_json::json!({ "reason": reason }))
}

/// POST: a new account, or why not.
pub(crate) async fn create(
    State(ctx): Ctx,
    Extension(ClientAddr(peer)): Extension<ClientAddr>,
    headers: HeaderMap,
    uri: Uri,
) -> Result<Response, Reject> {
    if !ctx.directory.random_accounts_enabled() {
        return Err(Reject::NotFound("account creation is off"));
    }
    let domain = account_domain(&ctx, &headers, &uri)?;
    match ctx.directory.create_random_account(&domain, peer.ip()).await {
        Ok(account) => {
            let body = serde_json::json!({ "email": account.address, "password": account.password });
            let mut response = json(StatusCode::OK, body);
            // The body holds a password: no cache may keep it.
            response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            Ok(response)
        }
        Err(NewAccountError::Off) => Err(Reject::NotFound("account creation is off")),
        Err(NewAccountError::UnknownDomain(_)) => Err(Reject::NotFound("not a domain served here")),
        Err(e @ NewAccountError::Throttled) => Ok(reason(StatusCode::TOO_MANY_REQUESTS, &e.to_string())),
        Err(NewAccountError::Directory(e)) => {
            tracing::error!(error = %e, "creating a random account failed");
            Ok(reason(StatusCode::INTERNAL_SERVER_ERROR, "the server could not create an account"))
        }
    }
}

/// GET (a browser following a link): on to Delta Chat, which then POSTs.
pub(crate) async fn to_app(State(ctx): Ctx, headers: HeaderMap, uri: Uri) -> Result<Response, Reject> {
    if !ctx.directory.random_accounts_enabled() {
        return Err(Reject::NotFound("account creation is off"));
    }
    account_domain(&ctx, &headers, &uri)?;
    let host = request_host(&headers, &uri).ok_or(Reject::NotFound("no host"))?;
    if host.bytes().any(|b| !(b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'))) {
        return Err(Reject::NotFound("not a host name"));
    }
    let port = match ctx.config.https_port {
        Some(443) | None => String::new(),
        Some(p) => format!(":{p}"),
    };
    let target = format!("dcaccount:https://{host}{port}/new");
    let mut response = document("text/plain; charset=utf-8", format!("{target}\n"));
    *response.status_mut() = StatusCode::MOVED_PERMANENTLY;
    let location = HeaderValue::from_str(&target).map_err(|_| Reject::NotFound("not a host name"))?;
    response.headers_mut().insert(header::LOCATION, location);
    Ok(response)
}
