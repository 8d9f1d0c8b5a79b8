//! Not-authenticated state: STARTTLS (RFC 3501 §6.2.1), LOGIN (§6.2.3) and
//! AUTHENTICATE PLAIN (§6.2.2, RFC 4616, SASL-IR RFC 4959).
//!
//! Passwords are never logged. They stay in imap-codec's [`Secret`] until
//! the directory call, which verifies on a blocking thread and throttles
//! peers that keep failing.

use crate::ImapListener;
use crate::error::{Code, ImapError};
use crate::session::{CmdResult, Done, Session, State, Then};
use coimail_directory::AuthError;
use imap_codec::AuthenticateDataCodec;
use imap_codec::decode::Decoder;
use imap_codec::imap_types::IntoStatic;
use imap_codec::imap_types::auth::{AuthMechanism, AuthenticateData};
use imap_codec::imap_types::secret::Secret;
use std::borrow::Cow;
use tokio::time::sleep_until;

/// A SASL response: `[authzid] NUL authcid NUL passwd` for PLAIN.
type SaslResponse<'a> = Secret<Cow<'a, [u8]>>;

pub(crate) fn starttls(s: &mut Session) -> CmdResult {
    if s.kind != ImapListener::Starttls || s.ctx.tls.is_none() {
        return Err(ImapError::bad("STARTTLS is not offered here"));
    }
    if s.conn.is_tls() {
        return Err(ImapError::bad("TLS is already active"));
    }
    Ok(Done { code: None, text: "Begin TLS negotiation now".into(), then: Then::StartTls })
}

fn require_privacy(s: &Session) -> Result<(), ImapError> {
    if s.ctx.config.plaintext_auth.allows(s.peer.ip(), s.conn.is_tls()) {
        Ok(())
    } else {
        Err(ImapError::no(Code::PrivacyRequired, "Use STARTTLS or the TLS port before sending a password"))
    }
}

pub(crate) async fn login<P: AsRef<[u8]>>(s: &mut Session, username: &[u8], password: &Secret<P>) -> CmdResult {
    require_privacy(s)?;
    let Ok(user) = std::str::from_utf8(username) else {
        return Err(failed());
    };
    finish_login(s, user, password).await
}

fn failed() -> ImapError {
    ImapError::no(Code::AuthenticationFailed, "Authentication failed")
}

pub(crate) async fn authenticate(
    s: &mut Session,
    mechanism: &AuthMechanism<'_>,
    initial: Option<SaslResponse<'_>>,
) -> CmdResult {
    if *mechanism != AuthMechanism::Plain {
        return Err(ImapError::no(Code::Cannot, "Unsupported authentication mechanism"));
    }
    require_privacy(s)?;
    let response = match initial {
        Some(r) => r,
        None => continuation(s).await?,
    };
    let Some((authzid, authcid, passwd)) = parse_plain(&response) else {
        return Err(failed());
    };
    if !authzid.is_empty() && authzid != authcid {
        // Acting as another user is not supported.
        return Err(ImapError::no(Code::AuthorizationFailed, "Cannot act as another user"));
    }
    finish_login(s, authcid, &passwd).await
}

/// RFC 4616: `[authzid] NUL authcid NUL passwd`. The names come out in
/// the clear; the password stays secret.
fn parse_plain<'r>(response: &'r SaslResponse<'_>) -> Option<(&'r str, &'r str, Secret<&'r [u8]>)> {
    let mut parts = response.declassify().split(|&b| b == 0);
    let (Some(authzid), Some(authcid), Some(passwd), None) = (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return None;
    };
    let (authzid, authcid) = (std::str::from_utf8(authzid).ok()?, std::str::from_utf8(authcid).ok()?);
    Some((authzid, authcid, Secret::new(passwd)))
}

/// Asks for the SASL response with an empty challenge and reads it.
async fn continuation(s: &mut Session) -> Result<SaslResponse<'static>, ImapError> {
    s.conn.out().extend_from_slice(b"+ \r\n");
    s.conn.flush().await?;
    let deadline = s.deadline();
    let line = loop {
        match s.conn.take_line() {
            Some(Ok(line)) => break line,
            Some(Err(())) => {
                s.bye("Line too long");
                return Err(ImapError::Closed);
            }
            None => {}
        }
        tokio::select! {
            biased;
            _ = s.shutdown.cancelled() => {
                s.bye("Server shutting down");
                return Err(ImapError::Closed);
            }
            r = s.conn.fill() => r?,
            _ = sleep_until(deadline) => {
                s.bye("Autologout; idle for too long");
                return Err(ImapError::Closed);
            }
        }
    };
    let mut framed = line.to_vec();
    framed.extend_from_slice(b"\r\n");
    match AuthenticateDataCodec::default().decode(&framed) {
        Ok((_, AuthenticateData::Continue(data))) => Ok(data.into_static()),
        // RFC 3501 §6.2.2: a cancelled exchange gets BAD.
        Ok((_, AuthenticateData::Cancel)) => Err(ImapError::bad("Authentication cancelled")),
        Err(_) => Err(ImapError::bad("Invalid base64 in SASL response")),
    }
}

async fn finish_login<P: AsRef<[u8]>>(s: &mut Session, user: &str, pass: &Secret<P>) -> CmdResult {
    // The one place the password leaves its wrapper.
    let Ok(password) = std::str::from_utf8(pass.declassify().as_ref()) else {
        return Err(failed());
    };
    match s.ctx.directory.authenticate_session(user, password, s.peer.ip()).await {
        Ok((account, revocation)) => {
            let Some(permit) = s.ctx.user_limits.try_acquire(account.id.0) else {
                tracing::info!(user = account.address.as_str(), "login refused: too many sessions of this user");
                return Err(ImapError::no(Code::Limit, "Too many connections for this user"));
            };
            s.user_permit = Some(permit);
            s.unauth_permit = None;
            // Ends the session (BYE at its next wait) when the password
            // changes or the user is deleted; the task ends with the session.
            let token = s.shutdown.clone();
            let mut watch = revocation.clone();
            tokio::spawn(async move {
                tokio::select! {
                    _ = watch.revoked() => token.cancel(),
                    _ = token.cancelled() => {}
                }
            });
            s.revocation = Some(revocation);
            tracing::Span::current().record("user", account.address.as_str());
            tracing::info!("logged in");
            s.changes = Some(s.ctx.store.subscribe(account.id));
            s.state = State::Authenticated(account);
            let caps = s.capabilities();
            Ok(Done::with_code(format!("CAPABILITY {caps}"), "Logged in"))
        }
        Err(AuthError::Failed) => {
            tracing::info!(login = %coimail_directory::LogSafe(user), "login failed");
            Err(failed())
        }
        Err(AuthError::Throttled) => Err(ImapError::no(Code::Unavailable, "Too many failed logins; try again later")),
        Err(AuthError::Internal(e)) => {
            tracing::error!(error = %e, "authentication backend failed");
            Err(ImapError::no(Code::Unavailable, "Authentication is temporarily unavailable"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{Cow, Secret, parse_plain};
    use crate::testing::{Client, PASSWORD, TestServer, USER, check};
    use coimail_directory::PlaintextAuth;

    #[tokio::test]
    async fn login_ok_carries_capabilities() {
        let srv = TestServer::start().await;
        let mut c = srv.connect().await;
        c.line().await;
        c.send(&format!("a1 LOGIN {USER} {PASSWORD}")).await;
        let ok = c.line().await;
        assert!(ok.starts_with("a1 OK [CAPABILITY IMAP4rev1 IMAP4rev2 "), "{ok}");
        assert!(ok.contains(" IDLE ") && ok.contains("SPECIAL-USE") && !ok.contains("AUTH=PLAIN"), "{ok}");
        assert!(ok.ends_with("] Logged in"), "{ok}");
    }

    /// One account's logged-in sessions are capped; the next login gets
    /// `NO [LIMIT]`, and a slot comes back when a session ends.
    #[tokio::test]
    async fn logins_per_user_are_capped() {
        let srv = TestServer::start_with(|c| c.max_connections_per_user = 2, false).await;
        let mut sessions = Vec::new();
        for _ in 0..2 {
            let mut c = srv.connect().await;
            c.line().await;
            c.send(&format!("a1 LOGIN {USER} {PASSWORD}")).await;
            assert!(c.line().await.starts_with("a1 OK "));
            sessions.push(c);
        }
        let mut third = srv.connect().await;
        third.line().await;
        third.send(&format!("a1 LOGIN {USER} {PASSWORD}")).await;
        assert_eq!(third.line().await, "a1 NO [LIMIT] Too many connections for this user");
        // Still not logged in, and may try again.
        check(&mut third, "C: a2 SELECT INBOX\nS: a2 BAD SELECT is not valid before login").await;
        let mut first = sessions.remove(0);
        first.send("z LOGOUT").await;
        assert_eq!(first.line().await, "* BYE Logging out");
        assert!(first.line().await.starts_with("z OK"));
        // The slot is free once that session's task has ended.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        loop {
            third.send(&format!("a3 LOGIN {USER} {PASSWORD}")).await;
            let line = third.line().await;
            if line.starts_with("a3 OK ") {
                break;
            }
            assert!(std::time::Instant::now() < deadline, "{line}");
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    }

    #[tokio::test]
    async fn wrong_password_and_unknown_user_fail_alike() {
        let srv = TestServer::start().await;
        let mut c = srv.connect().await;
        c.line().await;
        check(
            &mut c,
            &format!(
                "C: a1 LOGIN {USER} wrong
                 S: a1 NO [AUTHENTICATIONFAILED] Authentication failed
                 C: a2 LOGIN nobody@example.org wrong
                 S: a2 NO [AUTHENTICATIONFAILED] Authentication failed
                 C: a3 SELECT INBOX
                 S: a3 BAD SELECT is not valid before login"
            ),
        )
        .await;
    }

    #[tokio::test]
    async fn throttled_peer_gets_unavailable() {
        let srv = TestServer::start().await;
        let mut c = srv.connect().await;
        c.line().await;
        for i in 0..10 {
            c.send(&format!("t{i} LOGIN {USER} wrong")).await;
            assert!(c.line().await.contains("AUTHENTICATIONFAILED"));
        }
        check(
            &mut c,
            &format!(
                "C: a1 LOGIN {USER} {PASSWORD}
                 S: a1 NO [UNAVAILABLE] Too many failed logins; try again later"
            ),
        )
        .await;
    }

    #[tokio::test]
    async fn logindisabled_without_tls() {
        let srv = TestServer::start_with(|c| c.plaintext_auth = PlaintextAuth::Never, false).await;
        let mut c = srv.connect().await;
        let greeting = c.line().await;
        assert!(greeting.contains(" LOGINDISABLED]") && !greeting.contains("AUTH=PLAIN"), "{greeting}");
        check(
            &mut c,
            &format!(
                "C: a1 LOGIN {USER} {PASSWORD}
                 S: a1 NO [PRIVACYREQUIRED] Use STARTTLS or the TLS port before sending a password
                 C: a2 AUTHENTICATE PLAIN AHVAZXhhbXBsZS5vcmcAeA==
                 S: a2 NO [PRIVACYREQUIRED] Use STARTTLS or the TLS port before sending a password
                 C: a3 STARTTLS
                 S: a3 BAD STARTTLS is not offered here"
            ),
        )
        .await;
    }

    #[test]
    fn sasl_plain_keeps_the_password_secret() {
        let response = Secret::new(Cow::Borrowed(&b"\0alice@example.org\0hunter2"[..]));
        let (authzid, authcid, passwd): (&str, &str, Secret<&[u8]>) = parse_plain(&response).unwrap();
        assert_eq!((authzid, authcid, *passwd.declassify()), ("", "alice@example.org", &b"hunter2"[..]));
        assert!(parse_plain(&Secret::new(Cow::Borrowed(&b"a\0b"[..]))).is_none());
        assert!(parse_plain(&Secret::new(Cow::Borrowed(&b"a\0b\0c\0d"[..]))).is_none());
    }

    fn plain(authz: &str, user: &str, pass: &str) -> String {
        crate::testing::base64(format!("{authz}\0{user}\0{pass}").as_bytes())
    }

    #[tokio::test]
    async fn authenticate_plain_with_initial_response_and_continuation() {
        let srv = TestServer::start().await;
        let mut c = srv.connect().await;
        c.line().await;
        check(
            &mut c,
            &format!(
                "C: a1 AUTHENTICATE PLAIN {}
                 S: a1 NO [AUTHENTICATIONFAILED] Authentication failed
                 C: a2 AUTHENTICATE PLAIN {}
                 S: a2 NO [AUTHORIZATIONFAILED] Cannot act as another user
                 C: a3 AUTHENTICATE PLAIN
                 S: +
                 C: *
                 S: a3 BAD Authentication cancelled
                 C: a4 AUTHENTICATE PLAIN
                 S: +
                 C: {}
                 S: a4 OK [CAPABILITY ...",
                plain("", USER, "wrong"),
                plain("other@example.org", USER, PASSWORD),
                plain("", USER, PASSWORD),
            ),
        )
        .await;
        // Logged in: the session is now authenticated.
        check(&mut c, "C: b1 SELECT INBOX\nS: * FLAGS ...").await;
    }

    #[tokio::test]
    async fn starttls_then_login_and_pipelined_plaintext_is_discarded() {
        let srv = TestServer::start_with(|c| c.plaintext_auth = PlaintextAuth::Never, true).await;
        let mut c = srv.connect().await;
        let greeting = c.line().await;
        assert!(greeting.contains(" STARTTLS LOGINDISABLED]"), "{greeting}");
        // An attacker-injected command pipelined after STARTTLS must never run.
        c.send_raw(b"a1 STARTTLS\r\nx1 LOGOUT\r\n").await;
        assert_eq!(c.line().await, "a1 OK Begin TLS negotiation now");
        let mut c: Client = c.start_tls().await;
        check(
            &mut c,
            &format!(
                "C: a2 CAPABILITY
                 S: * CAPABILITY IMAP4rev1 IMAP4rev2 LITERAL+ SASL-IR ID ENABLE IDLE AUTH=PLAIN
                 S: a2 OK CAPABILITY completed
                 C: a3 STARTTLS
                 S: a3 BAD TLS is already active
                 C: a4 LOGIN {USER} {PASSWORD}
                 S: a4 OK [CAPABILITY ..."
            ),
        )
        .await;
    }

    #[tokio::test]
    async fn implicit_tls_listener() {
        let srv = TestServer::start_with(|c| c.plaintext_auth = PlaintextAuth::Never, true).await;
        let mut c = srv.connect_implicit_tls().await;
        let greeting = c.line().await;
        assert!(greeting.contains("AUTH=PLAIN") && !greeting.contains("STARTTLS"), "{greeting}");
        check(&mut c, &format!("C: a1 LOGIN {USER} {PASSWORD}\nS: a1 OK [CAPABILITY ...")).await;
    }
}
