//! APPEND (RFC 3501 §6.3.11, RFC 9051 §6.3.12) with MULTIAPPEND (RFC 3502),
//! UIDPLUS's APPENDUID (RFC 4315 §3) and APPENDLIMIT (RFC 7889).
//!
//! Literal size is checked by the framer before any of it is read (`conn`:
//! `NO [TOOBIG]` for a synchronising literal, RFC 7888 §4), so a message
//! reaching here is within the advertised APPENDLIMIT. Every message of one
//! command is stored in ONE commit or none is (RFC 3502 §6.3.11), and the
//! tagged OK is written only after that commit is durable.
//!
//! APPENDs a client pipelined (with LITERAL+ nothing waits between them)
//! are stored together: `pipeline.rs`.

use crate::cmd::copy_move::number_set;
use crate::cmd::store::parse_flags;
use crate::error::{Code, ImapError};
use crate::session::{CmdResult, Done, Session};
use coimail_store::{NewMessage, StoreError, Stored, Uid};
use imap_codec::imap_types::datetime::DateTime;
use imap_codec::imap_types::extensions::binary::LiteralOrLiteral8;
use imap_codec::imap_types::flag::Flag;
use imap_codec::imap_types::mailbox::Mailbox;
use std::time::{SystemTime, UNIX_EPOCH};

/// One message to append, as the command gave it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct AppendMessage {
    /// As written: `\Seen` (any case) or a keyword.
    pub flags: Vec<String>,
    /// INTERNALDATE in seconds since the epoch; `None`: now.
    pub date: Option<i64>,
    pub data: Vec<u8>,
}

/// The single-message form, as imap-codec decodes it.
pub(crate) async fn append(
    s: &mut Session,
    mailbox: &Mailbox<'_>,
    flags: &[Flag<'_>],
    date: Option<&DateTime>,
    message: &LiteralOrLiteral8<'_>,
) -> CmdResult {
    let (name, msg) = from_codec(s, mailbox, flags, date, message)?;
    append_all(s, &name, vec![msg]).await
}

/// The mailbox name and message of imap-codec's APPEND.
pub(crate) fn from_codec(
    s: &Session,
    mailbox: &Mailbox<'_>,
    flags: &[Flag<'_>],
    date: Option<&DateTime>,
    message: &LiteralOrLiteral8<'_>,
) -> Result<(String, AppendMessage), ImapError> {
    let name = match mailbox {
        Mailbox::Inbox => "INBOX".to_owned(),
        Mailbox::Other(o) => s.mailbox_name(o.as_ref())?,
    };
    let data = match message {
        LiteralOrLiteral8::Literal(l) => l.data(),
        LiteralOrLiteral8::Literal8(l) => l.data.as_ref(),
    };
    let msg = AppendMessage {
        flags: flags.iter().map(ToString::to_string).collect(),
        date: date.map(|d| d.as_ref().timestamp()),
        data: data.to_vec(),
    };
    Ok((name, msg))
}

/// MULTIAPPEND (and any APPEND imap-codec refused), decoded by `cmd::ext`.
pub(crate) async fn multiappend(s: &mut Session, mailbox: &[u8], messages: Vec<AppendMessage>) -> CmdResult {
    let name = s.mailbox_name(mailbox)?;
    append_all(s, &name, messages).await
}

async fn append_all(s: &mut Session, name: &str, messages: Vec<AppendMessage>) -> CmdResult {
    let account = s.account().ok_or(ImapError::Closed)?.id;
    let new = new_messages(messages)?;
    done(name, s.ctx.store.append_many(account, name, new).await)
}

/// The messages of one command as the store takes them. A message that can
/// never be stored fails the whole command (RFC 3502 §6.3.11).
pub(crate) fn new_messages(messages: Vec<AppendMessage>) -> Result<Vec<NewMessage>, ImapError> {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64);
    let mut new = Vec::with_capacity(messages.len());
    for m in messages {
        if m.data.is_empty() {
            // Nothing a client could ever read back as a message.
            return Err(ImapError::No { code: None, text: "Empty messages are not accepted".into() });
        }
        new.push(NewMessage { flags: parse_flags(&m.flags)?, internal_date: m.date.unwrap_or(now), raw: m.data });
    }
    Ok(new)
}

/// The tagged outcome of one command's store call: APPENDUID (RFC 4315 §3)
/// with the UIDs of its messages, or its error.
pub(crate) fn done(name: &str, stored: Result<Vec<Stored>, StoreError>) -> CmdResult {
    // RFC 3501 §6.3.11: a missing mailbox is never created here; TRYCREATE
    // tells the client it may CREATE it and try again.
    let stored = stored.map_err(|e| try_create(e, name))?;
    let uid_validity = stored.first().map_or(0, |st| st.uid_validity);
    let uids: Vec<Uid> = stored.iter().map(|st| st.uid).collect();
    Ok(Done::with_code(format!("APPENDUID {uid_validity} {}", number_set(&uids)), "APPEND completed"))
}

/// A missing target mailbox becomes `NO [TRYCREATE]` (RFC 3501 §6.3.11, §6.4.7).
pub(crate) fn try_create(e: StoreError, name: &str) -> ImapError {
    match e {
        StoreError::NotFound(_) => ImapError::no(Code::TryCreate, format!("Mailbox {name} does not exist")),
        other => other.into(),
    }
}

pub(crate) mod pipeline;
#[cfg(test)]
mod tests;
