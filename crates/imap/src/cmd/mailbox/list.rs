//! Listing: LIST (RFC 3501 §6.3.8, RFC 9051 §6.3.9) with CHILDREN (RFC
//! 3348) and SPECIAL-USE (RFC 6154) attributes, its extended form
//! LIST-EXTENDED (RFC 5258: selection options, several patterns, RETURN
//! options, `\NonExistent`, `\Subscribed`, CHILDINFO) with LIST-STATUS
//! (RFC 5819) and the SPECIAL-USE selection and return options (RFC 6154
//! §3), and LSUB (RFC 3501 §6.3.9, for IMAP4rev1 clients).
//!
//! imap-codec decodes only the RFC 3501 form (`LIST ref pattern`), which
//! keeps its exact old answers; `cmd::ext` parses the extended form into
//! [`ListArgs`]. The children and special-use attributes are always sent
//! (RFC 5258 §4 and RFC 6154 §2 allow it unasked), so the CHILDREN and
//! SPECIAL-USE return options change nothing. REMOTE is accepted and
//! ignores: there are no remote mailboxes (RFC 5258 §3.1).
//!
//! The store keeps the hierarchy implicit (a parent need not exist), so a
//! missing parent is listed wherever a pattern matches it: `\Noselect` in
//! the RFC 3501 form, `\NonExistent` (which implies it) in the extended one.
//!
//! Subscriptions are names of their own and outlive their mailbox (RFC
//! 3501 §6.3.4): LSUB shows a subscribed name that does not exist with
//! `\Noselect`, and the SUBSCRIBED selection option with `\NonExistent`
//! (RFC 5258 §3.1 and its example 5.3). Other listings show existing
//! mailboxes only; the SUBSCRIBED return option marks which of them are.
//!
//! The reference and the pattern are joined as RFC 3501 §6.3.8 describes
//! (see [`join_reference`]); responses always carry full names.

use super::mailbox_arg;
use crate::cmd::status;
use crate::encode;
use crate::error::{Code, ImapError};
use crate::session::{CmdResult, Done, MAX_NAME_WIRE, Session};
use coimail_store::names::{MAX_NAME_BYTES, SEPARATOR};
use coimail_store::{SpecialUse, StoreError};
use imap_codec::imap_types::mailbox::{ListMailbox, Mailbox};
use imap_codec::imap_types::status::StatusDataItemName;
use std::collections::{BTreeMap, BTreeSet};

/// The longest useful pattern once wildcard runs are collapsed: a name of
/// MAX_NAME_BYTES with a wildcard around every byte.
const MAX_PATTERN_BYTES: usize = 2 * MAX_NAME_BYTES + 1;

/// An extended LIST (RFC 5258 §3), as `cmd::ext` decodes it.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct ListArgs {
    /// The reference name as sent.
    pub reference: Vec<u8>,
    /// One or more patterns as sent (RFC 5258 `mbox-or-pat`).
    pub patterns: Vec<Vec<u8>>,
    pub select: Selection,
    pub ret: Returns,
}

/// Selection options (RFC 5258 §3.1, RFC 6154 §3). Base options
/// (SUBSCRIBED, SPECIAL-USE) must all hold for a mailbox to be listed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Selection {
    pub subscribed: bool,
    pub special_use: bool,
    /// Also list names whose descendants meet the base options but miss the patterns.
    pub recursive_match: bool,
}

impl Selection {
    fn has_base(&self) -> bool {
        self.subscribed || self.special_use
    }
}

/// Return options (RFC 5258 §3.2, RFC 5819 STATUS, RFC 6154 §3).
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Returns {
    pub subscribed: bool,
    pub children: bool,
    pub special_use: bool,
    /// STATUS items to send after each selectable mailbox listed.
    pub status: Option<Vec<StatusDataItemName>>,
}

/// One name of the hierarchy: a mailbox, or a parent implied by one.
#[derive(Debug, Default)]
struct Node {
    exists: bool,
    children: bool,
    subscribed: bool,
    special_use: Option<SpecialUse>,
}

fn list_mailbox_wire<'a>(pattern: &'a ListMailbox<'_>) -> &'a [u8] {
    match pattern {
        ListMailbox::Token(t) => t.as_ref(),
        ListMailbox::String(st) => st.as_ref(),
    }
}

/// What a LIST or LSUB pattern asks for once joined with the reference.
enum Wanted {
    /// The empty pattern: the hierarchy delimiter and the reference's root.
    Root,
    /// Names matching this pattern (INBOX canonical, wildcard runs collapsed).
    Names(String),
    /// Nothing can match (a namespace we do not have).
    Nothing,
}

/// The reference and a pattern of LIST or LSUB as one pattern.
fn full_pattern(s: &Session, reference: &str, wire: &[u8]) -> Result<Wanted, ImapError> {
    let pattern = match s.decode_name(wire, 2 * MAX_NAME_WIRE + 1) {
        Ok(pattern) => pattern,
        // Not modified UTF-7: no mailbox name can match it.
        Err(e) if names_nothing(&e) => return Ok(Wanted::Nothing),
        Err(e) => return Err(e),
    };
    if pattern.is_empty() {
        return Ok(Wanted::Root);
    }
    let Some(joined) = join_reference(reference, &pattern) else { return Ok(Wanted::Nothing) };
    let full = collapse_wildcards(&canonical_inbox(&joined));
    if full.len() > MAX_PATTERN_BYTES {
        return Err(ImapError::bad("LIST pattern too long"));
    }
    Ok(Wanted::Names(full))
}

/// Whether a name failed to decode because it is not modified UTF-7
/// (`Session::decode_name` answers NONEXISTENT for that alone): as a LIST
/// reference or pattern, it matches nothing.
fn names_nothing(e: &ImapError) -> bool {
    matches!(e, ImapError::No { code: Some(Code::NonExistent), .. })
}

/// RFC 3501 §6.3.8 (RFC 9051 §6.3.9): the reference is the context the
/// pattern is read in, so the two are concatenated: `LIST "Lists/" "%"`
/// lists what is under Lists, `LIST "Lists" "/%"` the same (the separator
/// may come with either, not with both: one of a doubled one is dropped,
/// as no name has an empty level). There are no break-out characters (a
/// pattern starting with `/` cannot name anything on its own), and a
/// reference starting with `#` names another namespace (RFC 2342), of
/// which we have none: `None`, nothing matches. This is Dovecot's
/// behaviour for a namespace without a prefix.
pub(super) fn join_reference(reference: &str, pattern: &str) -> Option<String> {
    if reference.starts_with('#') {
        return None;
    }
    let pattern = match (reference.ends_with(SEPARATOR), pattern.strip_prefix(SEPARATOR)) {
        (true, Some(rest)) => rest,
        _ => pattern,
    };
    Some(format!("{reference}{pattern}"))
}

/// The root name `LIST reference ""` returns (RFC 3501 §6.3.8): the
/// reference's first hierarchy level with its separator, or the empty
/// string when it has none (as UW-IMAP and Dovecot answer; our one
/// namespace has no prefix of its own).
pub(super) fn reference_root(reference: &str) -> &str {
    reference.find(SEPARATOR).and_then(|i| reference.get(..=i)).unwrap_or("")
}

/// `* LIST (\Noselect) "/" root` (or LSUB): the answer to an empty pattern.
fn write_root(s: &mut Session, verb: &str, reference: &str) {
    let utf8 = s.utf8;
    let out = s.conn.out();
    out.extend_from_slice(format!("* {verb} (\\Noselect) \"/\" ").as_bytes());
    encode::mailbox(out, reference_root(reference), utf8);
    out.extend_from_slice(b"\r\n");
}

/// No name is longer than MAX_NAME_BYTES, so a pattern with more
/// non-wildcard bytes cannot match; trying only costs time. Returns the
/// shortest name that can match, or `None` when none can.
fn min_match_len(full: &str) -> Option<usize> {
    let literal_bytes = full.bytes().filter(|c| !matches!(c, b'*' | b'%')).count();
    (literal_bytes <= MAX_NAME_BYTES).then_some(literal_bytes)
}

/// Patterns that can match something, with the shortest name each can match.
struct Patterns(Vec<(String, usize)>);

impl Patterns {
    fn matches(&self, name: &str) -> bool {
        self.0.iter().any(|(p, min)| name.len() >= *min && matches(p.as_bytes(), name.as_bytes()))
    }
}

/// Every mailbox of the account and every parent they imply; with
/// `subscribed`, also every subscribed name whether or not it exists (and
/// its parents, which RECURSIVEMATCH may list with CHILDINFO). Only
/// existing mailboxes make a parent `\HasChildren`.
fn tree(s: &Session, subscribed: bool) -> Result<BTreeMap<String, Node>, ImapError> {
    let account = s.account().ok_or(ImapError::Closed)?.id;
    let mut tree: BTreeMap<String, Node> = BTreeMap::new();
    for mb in s.ctx.store.list_mailboxes(account)? {
        let mut parent = mb.name.as_str();
        while let Some((p, _)) = parent.rsplit_once(SEPARATOR) {
            tree.entry(p.to_owned()).or_default().children = true;
            parent = p;
        }
        let node = tree.entry(mb.name).or_default();
        node.exists = true;
        node.subscribed = mb.subscribed;
        node.special_use = mb.special_use;
    }
    if subscribed {
        for name in s.ctx.store.subscriptions(account)? {
            let mut parent = name.as_str();
            while let Some((p, _)) = parent.rsplit_once(SEPARATOR) {
                tree.entry(p.to_owned()).or_default();
                parent = p;
            }
            tree.entry(name).or_default().subscribed = true;
        }
    }
    Ok(tree)
}

/// LIST in the RFC 3501 form.
pub(crate) fn list(s: &mut Session, reference: &Mailbox<'_>, pattern: &ListMailbox<'_>) -> CmdResult {
    let reference = match mailbox_arg(s, reference) {
        Err(e) if names_nothing(&e) => return Ok(Done::ok("LIST completed")),
        r => r?,
    };
    let patterns = [list_mailbox_wire(pattern).to_vec()];
    run(s, &reference, &patterns, Selection::default(), &Returns::default(), false)
}

/// LIST in the RFC 5258 extended form.
pub(crate) fn list_extended(s: &mut Session, args: ListArgs) -> CmdResult {
    if args.select.recursive_match && !args.select.has_base() {
        // RFC 5258 §3.1: RECURSIVEMATCH needs another selection option.
        return Err(ImapError::bad("RECURSIVEMATCH needs a base selection option"));
    }
    let reference = match s.mailbox_name(&args.reference) {
        Err(e) if names_nothing(&e) => return Ok(Done::ok("LIST completed")),
        r => r?,
    };
    run(s, &reference, &args.patterns, args.select, &args.ret, true)
}

fn run(
    s: &mut Session,
    reference: &str,
    wires: &[Vec<u8>],
    sel: Selection,
    ret: &Returns,
    extended: bool,
) -> CmdResult {
    let mut fulls = Vec::with_capacity(wires.len());
    let mut any = false;
    for wire in wires {
        match full_pattern(s, reference, wire)? {
            Wanted::Names(full) => {
                any = true;
                fulls.extend(min_match_len(&full).map(|min| (full, min)));
            }
            Wanted::Nothing => any = true,
            Wanted::Root => {}
        }
    }
    if !any {
        // RFC 3501 §6.3.8: an empty pattern asks for the separator and root.
        write_root(s, "LIST", reference);
        return Ok(Done::ok("LIST completed"));
    }
    if fulls.is_empty() {
        return Ok(Done::ok("LIST completed"));
    }
    let patterns = Patterns(fulls);
    let tree = tree(s, sel.subscribed)?;
    let meets = |n: &Node| (!sel.subscribed || n.subscribed) && (!sel.special_use || n.special_use.is_some());
    // RFC 5258 §3.5 (RECURSIVEMATCH): parents of a mailbox that meets the
    // selection but that no pattern matches get CHILDINFO.
    let mut child_info: BTreeSet<&str> = BTreeSet::new();
    if sel.recursive_match {
        for name in tree.iter().filter(|(n, node)| meets(node) && !patterns.matches(n)).map(|(n, _)| n) {
            let mut parent = name.as_str();
            while let Some((p, _)) = parent.rsplit_once(SEPARATOR) {
                child_info.insert(p);
                parent = p;
            }
        }
    }
    for (name, node) in &tree {
        let info = child_info.contains(name.as_str());
        if !patterns.matches(name) || (sel.has_base() && !meets(node) && !info) {
            continue;
        }
        write_list(s, name, node, (sel.subscribed || ret.subscribed) && node.subscribed, extended);
        if info {
            write_child_info(s.conn.out(), sel);
        }
        s.conn.out().extend_from_slice(b"\r\n");
        if let (Some(items), true) = (&ret.status, node.exists) {
            write_status(s, name, items)?;
        }
    }
    Ok(Done::ok("LIST completed"))
}

/// `* LIST (attributes) "/" name`, without the line end.
fn write_list(s: &mut Session, name: &str, node: &Node, subscribed: bool, extended: bool) {
    let mut attrs: Vec<&str> = Vec::new();
    if !node.exists {
        attrs.push(if extended { "\\NonExistent" } else { "\\Noselect" });
    }
    attrs.push(if node.children { "\\HasChildren" } else { "\\HasNoChildren" });
    if subscribed {
        attrs.push("\\Subscribed");
    }
    if let Some(u) = node.special_use {
        attrs.push(u.attribute());
    }
    let utf8 = s.utf8;
    let out = s.conn.out();
    out.extend_from_slice(b"* LIST (");
    out.extend_from_slice(attrs.join(" ").as_bytes());
    out.extend_from_slice(b") \"/\" ");
    encode::mailbox(out, name, utf8);
}

/// RFC 5258 §3.5 extended data: which selection criteria descendants meet.
fn write_child_info(out: &mut Vec<u8>, sel: Selection) {
    let mut criteria = Vec::new();
    if sel.subscribed {
        criteria.push("\"SUBSCRIBED\"");
    }
    if sel.special_use {
        criteria.push("\"SPECIAL-USE\"");
    }
    out.extend_from_slice(format!(" (\"CHILDINFO\" ({}))", criteria.join(" ")).as_bytes());
}

/// RFC 5819 §2: the STATUS of a listed mailbox, right after its LIST line.
/// A mailbox deleted meanwhile is skipped.
fn write_status(s: &mut Session, name: &str, items: &[StatusDataItemName]) -> Result<(), ImapError> {
    let account = s.account().ok_or(ImapError::Closed)?.id;
    match s.ctx.store.mailbox_status(account, name) {
        Ok(st) => {
            status::write_status(s, &st, items)?;
            Ok(())
        }
        Err(StoreError::NotFound(_)) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// LSUB: the subscribed names matching the pattern, `\Noselect` when no
/// mailbox has the name (any more). A parent that is not subscribed but
/// has a subscribed child the pattern misses (`%` stops at the separator)
/// is listed with `\Noselect` too (RFC 3501 §6.3.9).
pub(crate) fn lsub(s: &mut Session, reference: &Mailbox<'_>, pattern: &ListMailbox<'_>) -> CmdResult {
    let account = s.account().ok_or(ImapError::Closed)?.id;
    let reference = match mailbox_arg(s, reference) {
        Err(e) if names_nothing(&e) => return Ok(Done::ok("LSUB completed")),
        r => r?,
    };
    let full = match full_pattern(s, &reference, list_mailbox_wire(pattern))? {
        Wanted::Names(full) => full,
        Wanted::Nothing => return Ok(Done::ok("LSUB completed")),
        Wanted::Root => {
            write_root(s, "LSUB", &reference);
            return Ok(Done::ok("LSUB completed"));
        }
    };
    let Some(min_len) = min_match_len(&full) else { return Ok(Done::ok("LSUB completed")) };
    let subscribed: BTreeSet<String> = s.ctx.store.subscriptions(account)?.into_iter().collect();
    let existing: BTreeSet<String> = s.ctx.store.list_mailboxes(account)?.into_iter().map(|m| m.name).collect();
    let fits = |name: &str| name.len() >= min_len && matches(full.as_bytes(), name.as_bytes());
    // Name → selectable: a subscribed mailbox that exists; not a subscribed
    // name whose mailbox is gone, nor a parent listed for a child `%` missed.
    let mut shown: BTreeMap<&str, bool> = BTreeMap::new();
    for name in &subscribed {
        if fits(name) {
            shown.insert(name, existing.contains(name));
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
    for (name, selectable) in shown {
        out.extend_from_slice(if selectable { &b"* LSUB () \"/\" "[..] } else { b"* LSUB (\\Noselect) \"/\" " });
        encode::mailbox(out, name, utf8);
        out.extend_from_slice(b"\r\n");
    }
    Ok(Done::ok("LSUB completed"))
}

/// INBOX is case-insensitive (RFC 3501 §5.1), also as a pattern's first level.
pub(super) fn canonical_inbox(pattern: &str) -> String {
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
pub(super) fn collapse_wildcards(pattern: &str) -> String {
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
pub(super) fn matches(pattern: &[u8], name: &[u8]) -> bool {
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
