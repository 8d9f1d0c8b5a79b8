//! Commands valid in more than one state: CAPABILITY, NOOP (in the
//! dispatch), LOGOUT, ID (RFC 2971), ENABLE (RFC 5161), NAMESPACE (RFC 2342).

use crate::error::ImapError;
use crate::session::{CmdResult, Done, Session, Then};
use imap_codec::imap_types::extensions::enable::CapabilityEnable;
use imap_codec::imap_types::extensions::utf8::Utf8Kind;

pub(crate) fn capability(s: &mut Session) -> CmdResult {
    let line = format!("* CAPABILITY {}\r\n", s.capabilities());
    s.conn.out().extend_from_slice(line.as_bytes());
    Ok(Done::ok("CAPABILITY completed"))
}

pub(crate) fn logout(s: &mut Session) -> CmdResult {
    s.bye("Logging out");
    Ok(Done { code: None, text: "LOGOUT completed".into(), then: Then::Close })
}

/// RFC 2971: we say who we are; what the client says is not needed.
pub(crate) fn id(s: &mut Session) -> CmdResult {
    let line = format!("* ID (\"name\" \"coimail\" \"version\" \"{}\")\r\n", env!("CARGO_PKG_VERSION"));
    s.conn.out().extend_from_slice(line.as_bytes());
    Ok(Done::ok("ID completed"))
}

/// RFC 5161. What we can enable: UTF8=ACCEPT (RFC 6855: mailbox names in
/// UTF-8), IMAP4rev2 (RFC 9051 §6.3.1, which implies UTF-8 names),
/// CONDSTORE (RFC 7162 §3.1) and QRESYNC (§3.2.3, which implies CONDSTORE).
/// Anything else is ignored, as the RFC requires. `* ENABLED` lists what
/// this command turned on.
pub(crate) fn enable(s: &mut Session, requested: &[CapabilityEnable<'_>]) -> CmdResult {
    if matches!(s.state, crate::session::State::Selected(..)) {
        // RFC 5161 §3.1: only before a mailbox is selected.
        return Err(ImapError::bad("ENABLE is not allowed once a mailbox is selected"));
    }
    let mut enabled: Vec<&str> = Vec::new();
    for cap in requested {
        match cap {
            CapabilityEnable::CondStore if !s.condstore => {
                s.condstore = true;
                enabled.push("CONDSTORE");
            }
            other if !s.qresync && other.to_string().eq_ignore_ascii_case("QRESYNC") => {
                s.qresync = true;
                s.condstore = true;
                enabled.push("QRESYNC");
            }
            CapabilityEnable::Utf8(Utf8Kind::Accept) if !s.utf8 => {
                s.utf8 = true;
                enabled.push("UTF8=ACCEPT");
            }
            other if !s.rev2 && other.to_string().eq_ignore_ascii_case("IMAP4rev2") => {
                s.rev2 = true;
                s.utf8 = true;
                enabled.push("IMAP4rev2");
            }
            _ => {}
        }
    }
    let mut line = String::from("* ENABLED");
    for e in enabled {
        line.push(' ');
        line.push_str(e);
    }
    line.push_str("\r\n");
    s.conn.out().extend_from_slice(line.as_bytes());
    Ok(Done::ok("ENABLE completed"))
}

/// RFC 2342: one personal namespace, no prefix, `/` as separator.
pub(crate) fn namespace(s: &mut Session) -> CmdResult {
    s.conn.out().extend_from_slice(b"* NAMESPACE ((\"\" \"/\")) NIL NIL\r\n");
    Ok(Done::ok("NAMESPACE completed"))
}

#[cfg(test)]
mod tests {
    use crate::testing::{TestServer, check};

    #[tokio::test]
    async fn greeting_capability_noop_logout() {
        let srv = TestServer::start().await;
        let mut c = srv.connect().await;
        let greeting = c.line().await;
        assert!(
            greeting.starts_with("* OK [CAPABILITY IMAP4rev1 IMAP4rev2 LITERAL+ SASL-IR ID ENABLE IDLE AUTH=PLAIN] "),
            "{greeting}"
        );
        check(
            &mut c,
            "C: a1 CAPABILITY
             S: * CAPABILITY IMAP4rev1 IMAP4rev2 LITERAL+ SASL-IR ID ENABLE IDLE AUTH=PLAIN
             S: a1 OK CAPABILITY completed
             C: a2 NOOP
             S: a2 OK NOOP completed
             C: a3 ID NIL
             S: * ID (\"name\" \"coimail\" \"version\" \"0.1.0\")
             S: a3 OK ID completed
             C: a4 LOGOUT
             S: * BYE Logging out
             S: a4 OK LOGOUT completed",
        )
        .await;
        c.expect_closed().await;
    }

    #[tokio::test]
    async fn enable_namespace_and_state_errors() {
        let srv = TestServer::start().await;
        let mut c = srv.connect().await;
        c.line().await;
        check(
            &mut c,
            "C: a1 ENABLE UTF8=ACCEPT
             S: a1 BAD ENABLE is not valid before login
             C: a2 NAMESPACE
             S: a2 BAD NAMESPACE is not valid before login",
        )
        .await;
        c.login(&srv).await;
        check(
            &mut c,
            "C: b1 ENABLE CONDSTORE UTF8=ACCEPT X-UNKNOWN
             S: * ENABLED CONDSTORE UTF8=ACCEPT
             S: b1 OK ENABLE completed
             C: b2 ENABLE UTF8=ACCEPT
             S: * ENABLED
             S: b2 OK ENABLE completed
             C: b3 NAMESPACE
             S: * NAMESPACE ((\"\" \"/\")) NIL NIL
             S: b3 OK NAMESPACE completed
             C: b4 FETCH 1 FLAGS
             S: b4 BAD FETCH needs a selected mailbox
             C: b5 LOGIN a b
             S: b5 BAD LOGIN is not valid after login
             C: b6 GETMETADATA \"\" /shared/comment
             S: * METADATA \"\" (/shared/comment NIL)
             S: b6 OK GETMETADATA completed",
        )
        .await;
    }

    #[tokio::test]
    async fn garbage_gets_bad_and_the_session_survives() {
        let srv = TestServer::start().await;
        let mut c = srv.connect().await;
        c.line().await;
        check(
            &mut c,
            "C: hello
             S: * BAD Missing or invalid tag
             C: a1 FROBNICATE now
             S: a1 BAD Unknown command FROBNICATE
             C: a2 LOGIN onlyuser
             S: a2 BAD Syntax error in LOGIN arguments
             C: a3
             S: * BAD Missing or invalid tag
             C: a4 \u{1}\u{2}
             S: a4 BAD Missing command
             C: a5 NOOP
             S: a5 OK NOOP completed",
        )
        .await;
    }

    #[tokio::test]
    async fn shutdown_sends_bye_to_waiting_sessions() {
        let srv = TestServer::start().await;
        let mut c = srv.connect().await;
        c.line().await;
        c.login(&srv).await;
        srv.shutdown.cancel();
        assert_eq!(c.line().await, "* BYE Server shutting down");
        c.expect_closed().await;
        srv.tracker.close();
        tokio::time::timeout(std::time::Duration::from_secs(5), srv.tracker.wait()).await.unwrap();
    }
}
