//! Errors classified by who is at fault, and the one function that puts
//! them on the wire ([`ImapError::write_tagged`]).

use coimail_store::StoreError;
use thiserror::Error;

/// Response codes we send (RFC 3501 §7.1, RFC 5530).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Code {
    AlreadyExists,
    AuthenticationFailed,
    AuthorizationFailed,
    /// RFC 5465 §3.1: NOTIFY named events we do not support; lists those we do.
    BadEvent,
    Cannot,
    ExpungeIssued,
    HasChildren,
    /// RFC 5530: a server limit was hit (COI: too many push subscriptions).
    Limit,
    NonExistent,
    /// RFC 5530: the user may not do this (server METADATA /shared, SETQUOTA).
    NoPerm,
    /// RFC 5465 §5.8: too many notifications; NOTIFY is off.
    NotificationOverflow,
    OverQuota,
    PrivacyRequired,
    ServerBug,
    TooBig,
    TryCreate,
    Unavailable,
    UseAttr,
}

impl Code {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Code::AlreadyExists => "ALREADYEXISTS",
            Code::AuthenticationFailed => "AUTHENTICATIONFAILED",
            Code::AuthorizationFailed => "AUTHORIZATIONFAILED",
            Code::BadEvent => crate::cmd::notify::BADEVENT,
            Code::Cannot => "CANNOT",
            Code::ExpungeIssued => "EXPUNGEISSUED",
            Code::HasChildren => "HASCHILDREN",
            Code::Limit => "LIMIT",
            Code::NonExistent => "NONEXISTENT",
            Code::NoPerm => "NOPERM",
            Code::NotificationOverflow => "NOTIFICATIONOVERFLOW",
            Code::OverQuota => "OVERQUOTA",
            Code::PrivacyRequired => "PRIVACYREQUIRED",
            Code::ServerBug => "SERVERBUG",
            Code::TooBig => "TOOBIG",
            Code::TryCreate => "TRYCREATE",
            Code::Unavailable => "UNAVAILABLE",
            Code::UseAttr => "USEATTR",
        }
    }
}

#[derive(Debug, Error)]
pub(crate) enum ImapError {
    /// The client's protocol error: tagged `BAD`.
    #[error("{0}")]
    Bad(String),
    /// A valid request we refuse: tagged `NO [code]`.
    #[error("{text}")]
    No { code: Option<Code>, text: String },
    /// Our fault: `NO [SERVERBUG]` with generic text; details go to the log only.
    #[error("internal error: {0}")]
    Internal(String),
    /// The connection is gone or must end now; nothing more is written.
    #[error("connection closed")]
    Closed,
}

impl ImapError {
    pub(crate) fn bad(text: impl Into<String>) -> Self {
        ImapError::Bad(text.into())
    }

    pub(crate) fn no(code: Code, text: impl Into<String>) -> Self {
        ImapError::No { code: Some(code), text: text.into() }
    }

    pub(crate) fn not_implemented(what: &str) -> Self {
        ImapError::No { code: Some(Code::Cannot), text: format!("{what} is not implemented yet") }
    }

    /// Writes the tagged response for this error (untagged `* BAD` when the
    /// command had no usable tag). Returns false when the session must end.
    pub(crate) fn write_tagged(&self, out: &mut Vec<u8>, tag: Option<&str>) -> bool {
        let (status, code, text) = match self {
            ImapError::Bad(text) => ("BAD", None, text.as_str()),
            ImapError::No { code, text } => ("NO", *code, text.as_str()),
            ImapError::Internal(detail) => {
                tracing::error!(error = %detail, "internal error");
                ("NO", Some(Code::ServerBug), "Internal server error; the problem has been logged")
            }
            ImapError::Closed => return false,
        };
        out.extend_from_slice(tag.unwrap_or("*").as_bytes());
        out.push(b' ');
        out.extend_from_slice(status.as_bytes());
        out.push(b' ');
        if let Some(code) = code {
            out.push(b'[');
            out.extend_from_slice(code.as_str().as_bytes());
            out.extend_from_slice(b"] ");
        }
        push_text(out, text);
        out.extend_from_slice(b"\r\n");
        true
    }
}

/// Response text is `1*TEXT-CHAR`: 7-bit (UTF8=ACCEPT covers mailbox names
/// and strings, never `text`), no CR, LF or NUL, never empty. Each
/// non-ASCII character (from a mailbox name, say) becomes `?`.
pub(crate) fn push_text(out: &mut Vec<u8>, text: &str) {
    let start = out.len();
    out.extend(text.chars().map(|c| match c {
        '\r' | '\n' | '\0' => b' ',
        c if c.is_ascii() => c as u8,
        _ => b'?',
    }));
    if out.len() == start {
        out.extend_from_slice(b"Done");
    }
}

impl From<StoreError> for ImapError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound(what) => ImapError::no(Code::NonExistent, format!("{what} does not exist")),
            StoreError::InvalidName(why) => ImapError::No { code: None, text: format!("Invalid mailbox name: {why}") },
            StoreError::AlreadyExists(what) => ImapError::no(Code::AlreadyExists, format!("{what} already exists")),
            StoreError::QuotaExceeded => ImapError::no(Code::OverQuota, "Quota exceeded"),
            // The server's disk, not the user's quota; deleting mail still works.
            StoreError::DiskFull => ImapError::no(
                Code::OverQuota,
                "Server storage is full: new messages are refused until space is freed (expunging messages frees it)",
            ),
            StoreError::Invalid(why) => ImapError::No { code: None, text: why },
            e @ (StoreError::Corrupt(_) | StoreError::Engine(_) | StoreError::Io(_)) => {
                ImapError::Internal(format!("store: {e}"))
            }
        }
    }
}

/// A name that is not modified UTF-7 (RFC 3501 §5.1.3) is no name any
/// mailbox can have: a well-formed command naming it is refused with NO,
/// not BAD. CREATE and RENAME's new name turn this into `[CANNOT]`
/// (`cmd::mailbox::cannot_create`); LIST matches nothing (`list.rs`).
impl From<crate::mutf7::Mutf7Error> for ImapError {
    fn from(e: crate::mutf7::Mutf7Error) -> Self {
        ImapError::no(Code::NonExistent, e.to_string())
    }
}

/// COI hooks answer with the codes the COI clients expect (R9).
impl From<coimail_coi::CoiError> for ImapError {
    fn from(e: coimail_coi::CoiError) -> Self {
        use coimail_coi::CoiError;
        match e {
            CoiError::Cannot(text) => ImapError::no(Code::Cannot, text),
            CoiError::Limit(text) => ImapError::no(Code::Limit, text),
            CoiError::Unavailable(text) => ImapError::no(Code::Unavailable, text),
            CoiError::Store(e) => e.into(),
            e @ CoiError::WebPush(_) => ImapError::no(Code::Unavailable, e.to_string()),
        }
    }
}

impl From<std::io::Error> for ImapError {
    fn from(e: std::io::Error) -> Self {
        tracing::debug!(error = %e, "connection I/O ended");
        ImapError::Closed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wire(e: ImapError, tag: Option<&str>) -> String {
        let mut out = Vec::new();
        assert!(e.write_tagged(&mut out, tag));
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn errors_map_to_the_wire() {
        assert_eq!(wire(ImapError::bad("x\r\ny"), Some("a1")), "a1 BAD x  y\r\n");
        assert_eq!(wire(ImapError::bad("junk"), None), "* BAD junk\r\n");
        assert_eq!(
            wire(StoreError::NotFound("mailbox Foo".into()).into(), Some("t")),
            "t NO [NONEXISTENT] mailbox Foo does not exist\r\n"
        );
        assert!(wire(StoreError::Engine("disk on fire".into()).into(), Some("t")).starts_with("t NO [SERVERBUG] "));
        let full = std::io::Error::from(std::io::ErrorKind::StorageFull);
        assert!(wire(StoreError::from(full).into(), Some("t")).starts_with("t NO [OVERQUOTA] Server storage is full"));
        assert!(!wire(StoreError::Engine("disk on fire".into()).into(), Some("t")).contains("fire"));
        assert!(!ImapError::Closed.write_tagged(&mut Vec::new(), Some("t")));
    }

    #[tokio::test]
    async fn names_in_errors_stay_seven_bit_on_the_wire() {
        use crate::testing::{TestServer, check};
        let srv = TestServer::start().await;
        let mut c = srv.connect().await;
        c.line().await;
        c.login(&srv).await;
        // Once as modified UTF-7, once as (tolerated) raw UTF-8: the text is ASCII either way.
        check(
            &mut c,
            "C: a1 SELECT Entw&APw-rfe
             S: a1 NO [NONEXISTENT] mailbox Entw?rfe does not exist
             C: a2 SELECT \"Entw\u{fc}rfe\"
             S: a2 NO [NONEXISTENT] mailbox Entw?rfe does not exist",
        )
        .await;
    }

    #[test]
    fn response_text_is_seven_bit() {
        assert_eq!(
            wire(StoreError::NotFound("mailbox Entw\u{fc}rfe \u{1f600}".into()).into(), Some("t")),
            "t NO [NONEXISTENT] mailbox Entw?rfe ? does not exist\r\n"
        );
    }
}
