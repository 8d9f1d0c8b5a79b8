//! Mailbox management: CREATE (with CREATE-SPECIAL-USE, RFC 6154 §3),
//! DELETE, RENAME, SUBSCRIBE, UNSUBSCRIBE (RFC 3501 §6.3.3-7, RFC 9051
//! §6.3.4-8). Listing (LIST with its extensions, LSUB) is in `list.rs`;
//! STATUS in `status.rs`.
//!
//! The store keeps the hierarchy implicit (a parent need not exist), so
//! deleting a mailbox with children leaves a `\Noselect` parent (RFC 3501 §6.3.4).

mod list;

pub(crate) use list::{ListArgs, Returns, Selection, list, list_extended, lsub};
#[cfg(test)]
use list::{canonical_inbox, collapse_wildcards, matches};

use crate::error::{Code, ImapError};
use crate::session::{CmdResult, Done, Session};
use coimail_store::names::{self, SEPARATOR};
use coimail_store::{SpecialUse, StoreError};
use imap_codec::imap_types::mailbox::Mailbox;

/// A mailbox argument as a name (INBOX in any case is `INBOX`).
pub(crate) fn mailbox_arg(s: &Session, mailbox: &Mailbox<'_>) -> Result<String, ImapError> {
    match mailbox {
        Mailbox::Inbox => Ok("INBOX".to_owned()),
        Mailbox::Other(o) => s.mailbox_name(o.as_ref()),
    }
}

/// [`mailbox_arg`] for a mailbox to be created; see [`cannot_create`].
pub(crate) fn new_name_arg(s: &Session, mailbox: &Mailbox<'_>) -> Result<String, ImapError> {
    mailbox_arg(s, mailbox).map_err(cannot_create)
}

/// For CREATE and RENAME's new name: a name no mailbox can have (not
/// modified UTF-7, see `error.rs`) cannot be created either, `NO [CANNOT]`
/// (RFC 5530) rather than `[NONEXISTENT]`.
pub(crate) fn cannot_create(e: ImapError) -> ImapError {
    match e {
        ImapError::No { code: Some(Code::NonExistent), text } => ImapError::No { code: Some(Code::Cannot), text },
        other => other,
    }
}

/// CREATE, with the RFC 6154 `USE` attributes in `special_use`.
pub(crate) async fn create(s: &mut Session, name: &str, special_use: &[String]) -> CmdResult {
    let account = s.account().ok_or(ImapError::Closed)?.id;
    // RFC 3501 §6.3.3: a trailing separator only declares that names will
    // be created under this one; the hierarchy is implicit here anyway.
    let name = name.strip_suffix(SEPARATOR).filter(|n| !n.is_empty()).unwrap_or(name);
    let special_use = match special_use {
        [] => None,
        [one] => Some(parse_special_use(one)?),
        _ => return Err(ImapError::no(Code::UseAttr, "A mailbox can have one special use")),
    };
    let info = s.ctx.store.create_mailbox(account, name, special_use).await?;
    // COI R20: creating `<root>/Chats` turns COI on.
    s.ctx.coi.after_create(account, &info.name).await?;
    Ok(Done::ok("CREATE completed"))
}

/// RFC 6154 §2 attributes this server can give a mailbox; others get `NO [USEATTR]` (§3).
fn parse_special_use(attr: &str) -> Result<SpecialUse, ImapError> {
    [SpecialUse::Drafts, SpecialUse::Sent, SpecialUse::Trash, SpecialUse::Junk, SpecialUse::Archive]
        .into_iter()
        .find(|u| u.attribute().eq_ignore_ascii_case(attr))
        .ok_or_else(|| ImapError::no(Code::UseAttr, format!("Special use {attr} is not supported")))
}

/// DELETE. A mailbox with children loses its messages and becomes the
/// `\Noselect` parent of its children (RFC 3501 §6.3.4); a name that is
/// only such a parent cannot be deleted, nor can INBOX.
pub(crate) async fn delete(s: &mut Session, name: &str) -> CmdResult {
    let account = s.account().ok_or(ImapError::Closed)?.id;
    let name = names::canonical(name)?;
    if name == "INBOX" {
        return Err(ImapError::no(Code::Cannot, "INBOX cannot be deleted"));
    }
    if s.ctx.store.mailbox(account, &name).is_ok() {
        // COI R18: the `enabled` entry goes before the Chats folder does.
        s.ctx.coi.before_delete(account, &name).await?;
    }
    match s.ctx.store.delete_mailbox(account, &name).await {
        Err(StoreError::NotFound(_)) if has_children(s, &name)? => {
            Err(ImapError::no(Code::HasChildren, format!("{name} has inferior hierarchical names and no messages")))
        }
        r => r.map_err(ImapError::from),
    }?;
    Ok(Done::ok("DELETE completed"))
}

fn has_children(s: &Session, name: &str) -> Result<bool, ImapError> {
    let account = s.account().ok_or(ImapError::Closed)?.id;
    let prefix = format!("{name}{SEPARATOR}");
    Ok(s.ctx.store.list_mailboxes(account)?.iter().any(|m| m.name.starts_with(&prefix)))
}

/// RENAME, children included; INBOX's special case is the store's (RFC 3501 §6.3.5).
pub(crate) async fn rename(s: &mut Session, from: &str, to: &str) -> CmdResult {
    let account = s.account().ok_or(ImapError::Closed)?.id;
    // COI R19/R20: Chats may only go to the Trash (disabling COI), and a
    // folder renamed to Chats enables it.
    let coi = s.ctx.coi.check_rename(account, &names::canonical(from)?, &names::canonical(to)?)?;
    s.ctx.store.rename_mailbox(account, from, to).await.map_err(|e| match e {
        StoreError::Invalid(why) => ImapError::no(Code::Cannot, why),
        other => other.into(),
    })?;
    s.ctx.coi.after_rename(account, coi).await?;
    Ok(Done::ok("RENAME completed"))
}

/// SUBSCRIBE and UNSUBSCRIBE. Only existing mailboxes can be subscribed
/// (RFC 3501 §6.3.6 lets the server check).
pub(crate) async fn subscribe(s: &mut Session, name: &str, on: bool) -> CmdResult {
    let account = s.account().ok_or(ImapError::Closed)?.id;
    s.ctx.store.set_subscribed(account, name, on).await?;
    Ok(Done::ok(if on { "SUBSCRIBE completed" } else { "UNSUBSCRIBE completed" }))
}

#[cfg(test)]
mod tests;
