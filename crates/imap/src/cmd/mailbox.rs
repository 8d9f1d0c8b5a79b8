//! Mailbox management: CREATE (with CREATE-SPECIAL-USE, RFC 6154 §3),
//! DELETE, RENAME, SUBSCRIBE, UNSUBSCRIBE (RFC 3501 §6.3.3-7, RFC 9051
//! §6.3.4-8), and listing: LIST (RFC 3501 §6.3.8, RFC 9051 §6.3.9) with
//! CHILDREN (RFC 3348) and SPECIAL-USE (RFC 6154) attributes, and LSUB
//! (RFC 3501 §6.3.9, for IMAP4rev1 clients). STATUS is in `status.rs`.
//!
//! The store keeps the hierarchy implicit (a parent need not exist), so a
//! missing parent is listed as `\Noselect` wherever the pattern matches it,
//! and deleting a mailbox with children leaves exactly that (RFC 3501 §6.3.4).

use crate::encode;
use crate::error::{Code, ImapError};
use crate::session::{CmdResult, Done, MAX_NAME_WIRE, Session};
use coimail_store::names::{self, MAX_NAME_BYTES, SEPARATOR};
use coimail_store::{SpecialUse, StoreError};
use imap_codec::imap_types::mailbox::{ListMailbox, Mailbox};
use std::collections::{BTreeMap, BTreeSet};

/// The longest useful pattern once wildcard runs are collapsed: a name of
/// MAX_NAME_BYTES with a wildcard around every byte.
const MAX_PATTERN_BYTES: usize = 2 * MAX_NAME_BYTES + 1;

#[derive(Debug, Default)]
struct Node {
    exists: bool,
    children: bool,
    special_use: Option<SpecialUse>,
}

/// A mailbox argument as a name (INBOX in any case is `INBOX`).
pub(crate) fn mailbox_arg(s: &Session, mailbox: &Mailbox<'_>) -> Result<String, ImapError> {
    match mailbox {
        Mailbox::Inbox => Ok("INBOX".to_owned()),
        Mailbox::Other(o) => s.mailbox_name(o.as_ref()),
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
    s.ctx.store.create_mailbox(account, name, special_use).await?;
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
    s.ctx.store.rename_mailbox(account, from, to).await.map_err(|e| match e {
        StoreError::Invalid(why) => ImapError::no(Code::Cannot, why),
        other => other.into(),
    })?;
    Ok(Done::ok("RENAME completed"))
}

/// SUBSCRIBE and UNSUBSCRIBE. Only existing mailboxes can be subscribed
/// (RFC 3501 §6.3.6 lets the server check).
pub(crate) async fn subscribe(s: &mut Session, name: &str, on: bool) -> CmdResult {
    let account = s.account().ok_or(ImapError::Closed)?.id;
    s.ctx.store.set_subscribed(account, name, on).await?;
    Ok(Done::ok(if on { "SUBSCRIBE completed" } else { "UNSUBSCRIBE completed" }))
}

/// The reference and pattern of LIST or LSUB as one pattern, with INBOX
/// canonical and wildcard runs collapsed; `None` for the empty pattern.
fn full_pattern(s: &Session, reference: &Mailbox<'_>, pattern: &ListMailbox<'_>) -> Result<Option<String>, ImapError> {
    let reference = mailbox_arg(s, reference)?;
    let wire: &[u8] = match pattern {
        ListMailbox::Token(t) => t.as_ref(),
        ListMailbox::String(st) => st.as_ref(),
    };
    let pattern = s.decode_name(wire, 2 * MAX_NAME_WIRE + 1)?;
    if pattern.is_empty() {
        return Ok(None);
    }
    let full = collapse_wildcards(&canonical_inbox(&format!("{reference}{pattern}")));
    if full.len() > MAX_PATTERN_BYTES {
        return Err(ImapError::bad("LIST pattern too long"));
    }
    Ok(Some(full))
}

/// No name is longer than MAX_NAME_BYTES, so a pattern with more
/// non-wildcard bytes cannot match; trying only costs time. Returns the
/// shortest name that can match, or `None` when none can.
fn min_match_len(full: &str) -> Option<usize> {
    let literal_bytes = full.bytes().filter(|c| !matches!(c, b'*' | b'%')).count();
    (literal_bytes <= MAX_NAME_BYTES).then_some(literal_bytes)
}

pub(crate) fn list(s: &mut Session, reference: &Mailbox<'_>, pattern: &ListMailbox<'_>) -> CmdResult {
    let account = s.account().ok_or(ImapError::Closed)?.id;
    let Some(full) = full_pattern(s, reference, pattern)? else {
        // RFC 3501 §6.3.8: an empty pattern asks for the separator and root.
        s.conn.out().extend_from_slice(b"* LIST (\\Noselect) \"/\" \"\"\r\n");
        return Ok(Done::ok("LIST completed"));
    };
    let mut tree: BTreeMap<String, Node> = BTreeMap::new();
    for mb in s.ctx.store.list_mailboxes(account)? {
        let mut parent = mb.name.as_str();
        while let Some((p, _)) = parent.rsplit_once('/') {
            tree.entry(p.to_owned()).or_default().children = true;
            parent = p;
        }
        let node = tree.entry(mb.name).or_default();
        node.exists = true;
        node.special_use = mb.special_use;
    }
    if let Some(min_len) = min_match_len(&full) {
        let utf8 = s.utf8;
        let out = s.conn.out();
        for (name, node) in &tree {
            if name.len() < min_len || !matches(full.as_bytes(), name.as_bytes()) {
                continue;
            }
            out.extend_from_slice(b"* LIST (");
            let mut attrs: Vec<&str> = Vec::new();
            if !node.exists {
                attrs.push("\\Noselect");
            }
            attrs.push(if node.children { "\\HasChildren" } else { "\\HasNoChildren" });
            if let Some(u) = node.special_use {
                attrs.push(u.attribute());
            }
            out.extend_from_slice(attrs.join(" ").as_bytes());
            out.extend_from_slice(b") \"/\" ");
            encode::mailbox(out, name, utf8);
            out.extend_from_slice(b"\r\n");
        }
    }
    Ok(Done::ok("LIST completed"))
}

/// LSUB: the subscribed mailboxes matching the pattern. A parent that is
/// not subscribed but has a subscribed child the pattern misses (`%` stops
/// at the separator) is listed with `\Noselect` (RFC 3501 §6.3.9).
pub(crate) fn lsub(s: &mut Session, reference: &Mailbox<'_>, pattern: &ListMailbox<'_>) -> CmdResult {
    let account = s.account().ok_or(ImapError::Closed)?.id;
    let Some(full) = full_pattern(s, reference, pattern)? else {
        s.conn.out().extend_from_slice(b"* LSUB (\\Noselect) \"/\" \"\"\r\n");
        return Ok(Done::ok("LSUB completed"));
    };
    let Some(min_len) = min_match_len(&full) else { return Ok(Done::ok("LSUB completed")) };
    let subscribed: BTreeSet<String> =
        s.ctx.store.list_mailboxes(account)?.into_iter().filter(|m| m.subscribed).map(|m| m.name).collect();
    let fits = |name: &str| name.len() >= min_len && matches(full.as_bytes(), name.as_bytes());
    let mut shown: BTreeMap<&str, bool> = BTreeMap::new();
    for name in &subscribed {
        if fits(name) {
            shown.insert(name, true);
            continue;
        }
        let mut parent = name.as_str();
        while let Some((p, _)) = parent.rsplit_once(SEPARATOR) {
            if !subscribed.contains(p) && fits(p) {
                shown.entry(p).or_insert(false);
            }
            parent = p;
        }
    }
    let utf8 = s.utf8;
    let out = s.conn.out();
    for (name, is_subscribed) in shown {
        out.extend_from_slice(if is_subscribed { &b"* LSUB () \"/\" "[..] } else { b"* LSUB (\\Noselect) \"/\" " });
        encode::mailbox(out, name, utf8);
        out.extend_from_slice(b"\r\n");
    }
    Ok(Done::ok("LSUB completed"))
}

/// INBOX is case-insensitive (RFC 3501 §5.1), also as a pattern's first level.
fn canonical_inbox(pattern: &str) -> String {
    match pattern.get(..5) {
        Some(first)
            if first.eq_ignore_ascii_case("INBOX") && matches!(pattern.as_bytes().get(5), None | Some(b'/')) =>
        {
            format!("INBOX{}", pattern.get(5..).unwrap_or_default())
        }
        _ => pattern.to_owned(),
    }
}

/// Each run of wildcards as one: `*` if the run has one (it absorbs the
/// `%`s), else `%`. The match is the same and costs less.
fn collapse_wildcards(pattern: &str) -> String {
    let mut out = String::with_capacity(pattern.len());
    let mut run: Option<char> = None;
    for c in pattern.chars() {
        if matches!(c, '*' | '%') {
            run = Some(if run == Some('*') { '*' } else { c });
            continue;
        }
        out.extend(run.take());
        out.push(c);
    }
    out.extend(run);
    out
}

/// LIST wildcard match: `*` matches anything, `%` anything but the
/// hierarchy separator. Dynamic programming, so no pattern is exponential.
/// Bytewise is the same as charwise: literal bytes of the pattern line up
/// only at character boundaries of the (UTF-8) name.
fn matches(pattern: &[u8], name: &[u8]) -> bool {
    // reach[j]: the pattern prefix processed so far can match name[..j].
    let mut reach = vec![false; name.len() + 1];
    let mut next = vec![false; name.len() + 1];
    reach[0] = true;
    for &p in pattern {
        match p {
            b'*' | b'%' => {
                let mut on = false;
                for j in 0..=name.len() {
                    on = on || reach[j];
                    next[j] = on;
                    if p == b'%' && name.get(j) == Some(&b'/') {
                        // `%` cannot extend over a separator; later
                        // positions need a fresh start from reach.
                        on = false;
                    }
                }
            }
            c => {
                next[0] = false;
                for j in 0..name.len() {
                    next[j + 1] = reach[j] && name[j] == c;
                }
            }
        }
        std::mem::swap(&mut reach, &mut next);
        if !reach.contains(&true) {
            return false;
        }
    }
    reach[name.len()]
}

#[cfg(test)]
mod tests;
