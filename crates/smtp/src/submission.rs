//! Submission checks on the message itself (RFC 6409 §8), once DATA or the
//! last BDAT chunk is in, on the submission listeners only:
//! - every address in every `From` field must be the authenticated user's
//!   own (or an alias, see `policy.rs`), else 553 5.7.1: a user cannot
//!   forge another sender in what recipients see. A message without `From`
//!   passes (it claims nobody);
//! - `Date` (§8.2) and `Message-ID` (§8.3) are added when missing, right
//!   after our trace headers.

use crate::reply::{self, SmtpError};
use crate::{SmtpContext, policy, received};
use coimail_directory::Account;
use mail_parser::{HeaderName, MessageParser};

/// Checks `message` (trace headers in its first `head` octets) and adds
/// what is missing.
pub(crate) fn complete(
    ctx: &SmtpContext,
    account: Option<&Account>,
    message: &mut Vec<u8>,
    head: usize,
    id: &str,
    now: i64,
) -> Result<(), SmtpError> {
    let Some(account) = account else {
        return Err(reply::AUTH_REQUIRED);
    };
    let (has_date, has_id) = {
        let body = message.get(head..).unwrap_or_default();
        let parsed = MessageParser::default().parse_headers(body);
        let headers = parsed.as_ref().map_or(&[][..], |m| m.headers());
        let mut from: Vec<Option<String>> = Vec::new();
        for h in headers.iter().filter(|h| h.name == HeaderName::From) {
            match h.value.as_address() {
                Some(list) => from.extend(list.iter().map(|a| a.address.as_ref().map(|s| s.to_string()))),
                None => from.push(None),
            }
        }
        policy::check_from_header(&ctx.directory, account, &from)?;
        let has = |name: HeaderName<'_>| headers.iter().any(|h| h.name == name);
        (has(HeaderName::Date), has(HeaderName::MessageId))
    };
    let mut added = String::new();
    if !has_date {
        added.push_str(&format!("Date: {}\r\n", received::rfc5322_date(now)));
    }
    if !has_id {
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
        added.push_str(&format!("Message-ID: <{id}.{nanos:08x}@{}>\r\n", ctx.config.hostname));
    }
    if !added.is_empty() {
        let at = head.min(message.len());
        message.splice(at..at, added.into_bytes());
    }
    Ok(())
}
