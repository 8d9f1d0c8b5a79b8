//! Replies and errors, and the one place they become bytes on the wire.
//!
//! Every 2xx/4xx/5xx reply carries an RFC 3463 enhanced status code, except
//! where RFC 2034 §3 says not to: the greeting and the replies to HELO/EHLO
//! (and 3xx intermediate replies, which have no enhanced codes at all).
//! Client-facing text is generic; details go to the log.

use std::borrow::Cow;
use std::fmt;

/// RFC 3463 enhanced status code `class.subject.detail`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Enhanced(pub u8, pub u16, pub u16);

impl fmt::Display for Enhanced {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.0, self.1, self.2)
    }
}

/// A refusal sent to the client: reply code, enhanced code and text.
/// 4xx codes are temporary (the client retries), 5xx permanent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code} {enhanced} {text}")]
pub struct SmtpError {
    pub code: u16,
    pub enhanced: Enhanced,
    pub text: Cow<'static, str>,
}

impl SmtpError {
    pub const fn new(code: u16, enhanced: Enhanced, text: &'static str) -> Self {
        SmtpError { code, enhanced, text: Cow::Borrowed(text) }
    }

    pub fn with_text(code: u16, enhanced: Enhanced, text: String) -> Self {
        SmtpError { code, enhanced, text: Cow::Owned(text) }
    }

    /// True for 4xx: the client should try again later.
    pub fn is_temporary(&self) -> bool {
        self.code / 100 == 4
    }
}

// The errors used in more than one place. RFC 5321 §4.2.2 / RFC 3463 §3.
pub const BAD_SEQUENCE: SmtpError = SmtpError::new(503, Enhanced(5, 5, 1), "bad sequence of commands");
pub const SYNTAX: SmtpError = SmtpError::new(500, Enhanced(5, 5, 2), "syntax error");
pub const UNKNOWN_COMMAND: SmtpError = SmtpError::new(500, Enhanced(5, 5, 1), "command not recognized");
pub const NOT_IMPLEMENTED: SmtpError = SmtpError::new(502, Enhanced(5, 5, 1), "command not implemented");
pub const LINE_TOO_LONG: SmtpError = SmtpError::new(500, Enhanced(5, 5, 2), "line too long");
/// Bare LF or bare CR in a command line (SMTP smuggling; RFC 5321 §2.3.8).
pub const BARE_LINE_ENDING: SmtpError =
    SmtpError::new(500, Enhanced(5, 5, 2), "bare CR or LF in command line is not allowed; use CRLF");
/// Bare LF or bare CR in message data; the transaction is rejected and reset.
pub const BARE_LINE_ENDING_DATA: SmtpError =
    SmtpError::new(554, Enhanced(5, 6, 0), "message contains bare CR or LF; lines must end with CRLF");
pub const TOO_BIG: SmtpError =
    SmtpError::new(552, Enhanced(5, 3, 4), "message size exceeds fixed maximum message size");
/// RFC 3463 4.2.2, as Dovecot says it; 4xx so the sender tries again later.
pub const MAILBOX_FULL: SmtpError = SmtpError::new(452, Enhanced(4, 2, 2), "Mailbox full");
/// The server's disk is below its free-space reserve (RFC 3463 4.3.1).
pub const DISK_FULL: SmtpError = SmtpError::new(452, Enhanced(4, 3, 1), "insufficient system storage; try again later");
pub const TOO_MANY_RECIPIENTS: SmtpError = SmtpError::new(452, Enhanced(4, 5, 3), "too many recipients");
/// The user's submission rate (`rate.rs`).
pub const RATE_LIMITED: SmtpError =
    SmtpError::new(450, Enhanced(4, 7, 1), "message rate limit reached for this user; try again later");
/// MX: the peer delivered its hourly share of messages (`rate.rs`).
pub const MX_PEER_RATE_LIMITED: SmtpError =
    SmtpError::new(450, Enhanced(4, 7, 1), "rate limit: too many messages from your address; try again later");
/// MX: the recipient received its hourly share of messages (`rate.rs`).
pub const MX_RECIPIENT_RATE_LIMITED: SmtpError =
    SmtpError::new(450, Enhanced(4, 7, 1), "rate limit: too many messages for this recipient; try again later");
pub const NO_SUCH_USER: SmtpError = SmtpError::new(550, Enhanced(5, 1, 1), "no such user here");
pub const RELAY_DENIED: SmtpError = SmtpError::new(550, Enhanced(5, 7, 1), "relay access denied");
pub const REMOTE_DISABLED: SmtpError =
    SmtpError::new(554, Enhanced(5, 3, 3), "remote delivery is not enabled on this server");
pub const AUTH_REQUIRED: SmtpError = SmtpError::new(530, Enhanced(5, 7, 0), "authentication required");
pub const SENDER_NOT_OWNED: SmtpError =
    SmtpError::new(553, Enhanced(5, 7, 1), "sender address not owned by the authenticated user");
pub const FROM_NOT_OWNED: SmtpError =
    SmtpError::new(553, Enhanced(5, 7, 1), "From header address not owned by the authenticated user");
pub const LOCAL_ERROR: SmtpError = SmtpError::new(451, Enhanced(4, 3, 0), "local error in processing; try again later");
pub const SHUTTING_DOWN: SmtpError =
    SmtpError::new(421, Enhanced(4, 3, 2), "service shutting down, closing transmission channel");
pub const TOO_MANY_ERRORS: SmtpError =
    SmtpError::new(421, Enhanced(4, 7, 0), "too many errors, closing transmission channel");
pub const TIMEOUT: SmtpError = SmtpError::new(421, Enhanced(4, 4, 2), "timeout, closing transmission channel");

/// One reply, possibly multi-line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub code: u16,
    pub enhanced: Option<Enhanced>,
    pub lines: Vec<Cow<'static, str>>,
}

impl Reply {
    pub fn new(code: u16, enhanced: Enhanced, text: impl Into<Cow<'static, str>>) -> Self {
        Reply { code, enhanced: Some(enhanced), lines: vec![text.into()] }
    }

    /// A reply without an enhanced code (greeting, HELO/EHLO, 3xx).
    pub fn plain(code: u16, text: impl Into<Cow<'static, str>>) -> Self {
        Reply { code, enhanced: None, lines: vec![text.into()] }
    }

    pub fn ok(text: impl Into<Cow<'static, str>>) -> Self {
        Reply::new(250, Enhanced(2, 0, 0), text)
    }

    /// Appends the reply to `out` as RFC 5321 §4.2 lines (`code-text` for all
    /// but the last line). Text never carries CR or LF onto the wire.
    pub fn write_to(&self, out: &mut Vec<u8>) {
        let last = self.lines.len().saturating_sub(1);
        let empty = [Cow::Borrowed("")];
        let lines: &[Cow<'static, str>] = if self.lines.is_empty() { &empty } else { &self.lines };
        for (i, line) in lines.iter().enumerate() {
            out.extend_from_slice(self.code.to_string().as_bytes());
            out.push(if i == last { b' ' } else { b'-' });
            if let Some(e) = self.enhanced {
                out.extend_from_slice(e.to_string().as_bytes());
                out.push(b' ');
            }
            out.extend(line.bytes().map(|b| if b == b'\r' || b == b'\n' { b' ' } else { b }));
            out.extend_from_slice(b"\r\n");
        }
    }
}

impl From<SmtpError> for Reply {
    fn from(e: SmtpError) -> Self {
        Reply { code: e.code, enhanced: Some(e.enhanced), lines: vec![e.text] }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn render(r: &Reply) -> String {
        let mut out = Vec::new();
        r.write_to(&mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn renders_codes_and_lines() {
        assert_eq!(render(&NO_SUCH_USER.into()), "550 5.1.1 no such user here\r\n");
        let multi = Reply { code: 250, enhanced: None, lines: vec!["a".into(), "b".into()] };
        assert_eq!(render(&multi), "250-a\r\n250 b\r\n");
        assert_eq!(render(&Reply::plain(354, "go")), "354 go\r\n");
        assert_eq!(render(&Reply::ok("x\r\ny")), "250 2.0.0 x  y\r\n");
        assert!(LOCAL_ERROR.is_temporary() && !TOO_BIG.is_temporary());
    }
}
