//! Encrypted-only mail, as chatmail relays enforce it (filtermail.py in
//! github.com/chatmail/relay): a relay carries only what it cannot read.
//!
//! [`classify`] says what a message is; [`FilterPolicy::check`] decides with
//! the envelope, separately for the two directions filtermail has:
//! - **Outgoing** (submission, to anyone, local users included): passes if
//!   encrypted or a Secure-Join request; else if the sender is a
//!   passthrough sender; else if it is an Autocrypt Setup Message sent to
//!   oneself; else only if every recipient is a passthrough recipient.
//! - **Incoming** (MX): passes if encrypted, a Secure-Join request, or a
//!   bounce (`Auto-Submitted`, from `mailer-daemon@`, `multipart/report`).
//!
//! Everything else is refused with filtermail's words. Two deliberate
//! differences: filtermail also refuses an envelope sender that is not the
//! `From` address, which coimail's submission checks already do (553 5.7.1,
//! `smtp/src/submission.rs`); and a CRC24-less armor (allowed since RFC 9580)
//! is accepted here, where filtermail's parsing would refuse it.

use crate::openpgp;
use mail_parser::{MessageParser, MessagePart, MimeHeaders};

/// Which of filtermail's two filters applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Mail submitted by our users (to local users or anywhere else).
    Outgoing,
    /// Mail arriving from other servers over MX.
    Incoming,
}

/// What a message is, as far as the encrypted-only rule cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `multipart/encrypted` per RFC 3156: `application/pgp-encrypted`
    /// saying `Version: 1`, then `application/octet-stream` holding an
    /// armored message of session-key packets and one SEIPD.
    Encrypted,
    /// The first step of a Secure-Join handshake, which has no key to
    /// encrypt with yet: `Secure-Join: vc-request` / `vg-request` in a
    /// one-part multipart whose text says the same.
    SecureJoin,
    /// `Subject: Autocrypt Setup Message`, `multipart/mixed` (the key
    /// backup a client sends to itself; passes only when self-addressed).
    AutocryptSetup,
    /// A delivery report from a mailer daemon (passes only incoming).
    Bounce,
    /// Anything else.
    Cleartext,
}

/// The refusal, in filtermail's words (Delta Chat shows it to the user).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("Encryption Needed: Invalid Unencrypted Mail")]
pub struct Refused;

/// The exceptions an operator configured (filtermail's `passthrough_*`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FilterPolicy {
    /// Our users who may send cleartext mail to anyone (e.g. a support bot).
    pub passthrough_senders: Vec<String>,
    /// Recipients anyone of ours may send cleartext mail to: whole
    /// addresses, or `@domain` for every address of a domain.
    pub passthrough_recipients: Vec<String>,
}

impl FilterPolicy {
    /// Whether a message from `mail_from` (the envelope sender) to
    /// `recipients` may pass in `direction`; `message` is the message as
    /// the client sent it (without our trace headers).
    pub fn check(
        &self,
        direction: Direction,
        mail_from: &str,
        recipients: &[&str],
        message: &[u8],
    ) -> Result<Kind, Refused> {
        let Some(parsed) = MessageParser::default().parse(message) else { return Err(Refused) };
        let kind = classify(&parsed, direction);
        match (kind, direction) {
            (Kind::Encrypted | Kind::SecureJoin, _) => Ok(kind),
            (Kind::Bounce, Direction::Incoming) => Ok(kind),
            (_, Direction::Incoming) => Err(Refused),
            (_, Direction::Outgoing) => {
                if self.passthrough_senders.iter().any(|s| s.eq_ignore_ascii_case(mail_from)) {
                    return Ok(kind);
                }
                let from = header_address(&parsed);
                if kind == Kind::AutocryptSetup
                    && let [only] = recipients
                    && from.is_some_and(|f| f.eq_ignore_ascii_case(only))
                {
                    return Ok(kind);
                }
                if !recipients.is_empty() && recipients.iter().all(|r| self.passthrough_recipient(r)) {
                    return Ok(kind);
                }
                Err(Refused)
            }
        }
    }

    fn passthrough_recipient(&self, rcpt: &str) -> bool {
        self.passthrough_recipients.iter().any(|p| {
            if p.starts_with('@') {
                rcpt.len() > p.len() && rcpt.get(rcpt.len() - p.len()..).is_some_and(|s| s.eq_ignore_ascii_case(p))
            } else {
                rcpt.eq_ignore_ascii_case(p)
            }
        })
    }
}

/// What `message` is (see [`Kind`]). Pure. `direction` matters only for
/// armor headers (`Version: ...`), which outgoing mail may not have.
pub fn classify(message: &mail_parser::Message<'_>, direction: Direction) -> Kind {
    let raw = message.raw_message();
    let root = message.root_part();
    if is_encrypted(message, root, raw, direction) {
        return Kind::Encrypted;
    }
    if is_securejoin(message, root, raw) {
        return Kind::SecureJoin;
    }
    if message.subject() == Some("Autocrypt Setup Message") && content_type(root) == ("multipart", "mixed") {
        return Kind::AutocryptSetup;
    }
    let auto_submitted = message.header_raw("Auto-Submitted").is_some_and(|v| !v.trim().is_empty());
    let daemon = header_address(message).is_some_and(|f| f.to_ascii_lowercase().starts_with("mailer-daemon@"));
    if auto_submitted && daemon && content_type(root) == ("multipart", "report") {
        return Kind::Bounce;
    }
    Kind::Cleartext
}

/// The first `From` address.
fn header_address<'a>(message: &'a mail_parser::Message<'_>) -> Option<&'a str> {
    message.from()?.first()?.address()
}

/// (type, subtype), lower-cased by the parser; a part without a
/// Content-Type is text/plain (RFC 2045 §5.2).
fn content_type<'a>(part: &'a MessagePart<'_>) -> (&'a str, &'a str) {
    match part.content_type() {
        Some(ct) => (ct.ctype(), ct.subtype().unwrap_or("")),
        None => ("text", "plain"),
    }
}

fn eq_type(part: &MessagePart<'_>, ctype: &str, subtype: &str) -> bool {
    let (t, s) = content_type(part);
    t.eq_ignore_ascii_case(ctype) && s.eq_ignore_ascii_case(subtype)
}

/// The part's body as sent (not transfer-decoded), as filtermail reads it.
fn raw_body<'a>(part: &MessagePart<'_>, raw: &'a [u8]) -> Option<&'a str> {
    let (start, end) = (part.raw_body_offset() as usize, part.raw_end_offset() as usize);
    std::str::from_utf8(raw.get(start..end)?).ok()
}

/// The leaf parts directly under `root`, or `None` when it is no
/// multipart or one of them is itself a multipart.
fn leaves<'m, 'x>(message: &'m mail_parser::Message<'x>, root: &MessagePart<'_>) -> Option<Vec<&'m MessagePart<'x>>> {
    let ids = root.sub_parts()?;
    let parts: Vec<_> = ids.iter().filter_map(|id| message.part(*id)).collect();
    (parts.len() == ids.len() && parts.iter().all(|p| !p.is_multipart())).then_some(parts)
}

fn is_encrypted(message: &mail_parser::Message<'_>, root: &MessagePart<'_>, raw: &[u8], dir: Direction) -> bool {
    if !eq_type(root, "multipart", "encrypted") {
        return false;
    }
    let Some(parts) = leaves(message, root) else { return false };
    let [control, payload] = parts.as_slice() else { return false };
    eq_type(control, "application", "pgp-encrypted")
        && raw_body(control, raw).is_some_and(|b| b.trim() == "Version: 1")
        && eq_type(payload, "application", "octet-stream")
        && raw_body(payload, raw).is_some_and(|b| openpgp::armored_message_ok(b, dir == Direction::Incoming))
}

fn is_securejoin(message: &mail_parser::Message<'_>, root: &MessagePart<'_>, raw: &[u8]) -> bool {
    const STEPS: [&str; 2] = ["vc-request", "vg-request"];
    let Some(step) = message.header_raw("Secure-Join").map(str::trim) else { return false };
    if !STEPS.contains(&step) {
        return false;
    }
    let Some(parts) = leaves(message, root) else { return false };
    let [text] = parts.as_slice() else { return false };
    eq_type(text, "text", "plain")
        && raw_body(text, raw).is_some_and(|b| {
            let b = b.trim().to_ascii_lowercase();
            STEPS.iter().any(|s| b == format!("secure-join: {s}"))
        })
}

#[cfg(test)]
mod tests;
