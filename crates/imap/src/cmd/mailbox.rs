//! Mailbox listing: LIST (RFC 3501 §6.3.8, RFC 9051 §6.3.9) with CHILDREN
//! (RFC 3348) and SPECIAL-USE (RFC 6154) attributes.
//!
//! The store keeps the hierarchy implicit (a parent need not exist), so a
//! missing parent is listed as `\Noselect` wherever the pattern matches it.

use crate::encode;
use crate::error::ImapError;
use crate::session::{CmdResult, Done, MAX_NAME_WIRE, Session};
use coimail_store::SpecialUse;
use coimail_store::names::MAX_NAME_BYTES;
use imap_codec::imap_types::mailbox::{ListMailbox, Mailbox};
use std::collections::BTreeMap;

/// The longest useful pattern once wildcard runs are collapsed: a name of
/// MAX_NAME_BYTES with a wildcard around every byte.
const MAX_PATTERN_BYTES: usize = 2 * MAX_NAME_BYTES + 1;

#[derive(Debug, Default)]
struct Node {
    exists: bool,
    children: bool,
    special_use: Option<SpecialUse>,
}

pub(crate) fn list(s: &mut Session, reference: &Mailbox<'_>, pattern: &ListMailbox<'_>) -> CmdResult {
    let account = s.account().ok_or(ImapError::Closed)?.id;
    let reference = match reference {
        Mailbox::Inbox => "INBOX".to_owned(),
        Mailbox::Other(o) => s.mailbox_name(o.as_ref())?,
    };
    let wire: &[u8] = match pattern {
        ListMailbox::Token(t) => t.as_ref(),
        ListMailbox::String(st) => st.as_ref(),
    };
    let pattern = s.decode_name(wire, 2 * MAX_NAME_WIRE + 1)?;
    if pattern.is_empty() {
        // RFC 3501 §6.3.8: an empty pattern asks for the separator and root.
        s.conn.out().extend_from_slice(b"* LIST (\\Noselect) \"/\" \"\"\r\n");
        return Ok(Done::ok("LIST completed"));
    }
    let full = collapse_wildcards(&canonical_inbox(&format!("{reference}{pattern}")));
    if full.len() > MAX_PATTERN_BYTES {
        return Err(ImapError::bad("LIST pattern too long"));
    }
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
    // No name is longer than MAX_NAME_BYTES, so a longer pattern of
    // non-wildcards cannot match; it only costs time.
    let literal_bytes = full.bytes().filter(|c| !matches!(c, b'*' | b'%')).count();
    if literal_bytes <= MAX_NAME_BYTES {
        let utf8 = s.utf8;
        let out = s.conn.out();
        for (name, node) in &tree {
            if name.len() < literal_bytes || !matches(full.as_bytes(), name.as_bytes()) {
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
mod tests {
    use super::*;
    use crate::testing::{TestServer, check};

    fn m(p: &str, n: &str) -> bool {
        matches(collapse_wildcards(p).as_bytes(), n.as_bytes())
    }

    #[test]
    fn wildcards() {
        assert!(m("*", "a/b/c"));
        assert!(m("%", "abc") && !m("%", "a/b"));
        assert!(m("a/%", "a/b") && !m("a/%", "a/b/c"));
        assert!(m("a*c", "a/b/c") && !m("a%c", "a/b/c") && m("a%c", "abbc"));
        assert!(m("%/%", "a/b") && !m("%/%", "a"));
        assert!(m("INBOX", "INBOX") && !m("INBOX", "INBOX/x"));
        assert!(m("*x", "xx") && !m("x", "xx"));
        assert!(m("Entw\u{fc}*", "Entw\u{fc}rfe"));
        assert_eq!(canonical_inbox("inbox/%"), "INBOX/%");
        assert_eq!(canonical_inbox("inboxes"), "inboxes");
    }

    #[test]
    fn wildcard_runs_collapse() {
        assert_eq!(collapse_wildcards("a**%b%%c%*%/"), "a*b%c*/");
        assert_eq!(collapse_wildcards(&"*%".repeat(3000)), "*");
        assert!(!m(&format!("{}b", "%a".repeat(500)), &"a".repeat(600)));
    }

    #[tokio::test]
    async fn list_pattern_and_name_lengths_are_bounded() {
        let srv = TestServer::start().await;
        let mut c = srv.connect().await;
        c.line().await;
        c.login(&srv).await;
        // Collapses to `*`: everything, cheaply.
        let r = c.command("a1", &format!("LIST \"\" \"{}\"", "*%".repeat(3000))).await;
        assert_eq!(r.len(), 7, "{r:?}");
        assert_eq!(r.last().unwrap(), "a1 OK LIST completed");
        check(
            &mut c,
            &format!(
                "C: a2 LIST \"\" \"{}\"
                 S: a2 BAD LIST pattern too long
                 C: a3 SELECT \"{}\"
                 S: a3 BAD Mailbox name too long",
                "%a".repeat(1100),
                "a".repeat(4000),
            ),
        )
        .await;
    }

    #[tokio::test]
    async fn list_patterns_and_attributes() {
        let srv = TestServer::start().await;
        srv.store.create_mailbox(srv.account.id, "Archive/2024", None).await.unwrap();
        srv.store.create_mailbox(srv.account.id, "Lists/rust", None).await.unwrap();
        srv.store.create_mailbox(srv.account.id, "Entw\u{fc}rfe & Co", None).await.unwrap();
        let mut c = srv.connect().await;
        c.line().await;
        c.login(&srv).await;
        check(
            &mut c,
            "C: a1 LIST \"\" \"\"
             S: * LIST (\\Noselect) \"/\" \"\"
             S: a1 OK LIST completed
             C: a2 LIST \"\" *
             S: * LIST (\\HasChildren \\Archive) \"/\" \"Archive\"
             S: * LIST (\\HasNoChildren) \"/\" \"Archive/2024\"
             S: * LIST (\\HasNoChildren \\Drafts) \"/\" \"Drafts\"
             S: * LIST (\\HasNoChildren) \"/\" \"Entw&APw-rfe &- Co\"
             S: * LIST (\\HasNoChildren) \"/\" \"INBOX\"
             S: * LIST (\\HasNoChildren \\Junk) \"/\" \"Junk\"
             S: * LIST (\\Noselect \\HasChildren) \"/\" \"Lists\"
             S: * LIST (\\HasNoChildren) \"/\" \"Lists/rust\"
             S: * LIST (\\HasNoChildren \\Sent) \"/\" \"Sent\"
             S: * LIST (\\HasNoChildren \\Trash) \"/\" \"Trash\"
             S: a2 OK LIST completed
             C: a3 LIST \"\" %
             S: * LIST (\\HasChildren \\Archive) \"/\" \"Archive\"
             S: * LIST (\\HasNoChildren \\Drafts) \"/\" \"Drafts\"
             S: * LIST (\\HasNoChildren) \"/\" \"Entw&APw-rfe &- Co\"
             S: * LIST (\\HasNoChildren) \"/\" \"INBOX\"
             S: * LIST (\\HasNoChildren \\Junk) \"/\" \"Junk\"
             S: * LIST (\\Noselect \\HasChildren) \"/\" \"Lists\"
             S: * LIST (\\HasNoChildren \\Sent) \"/\" \"Sent\"
             S: * LIST (\\HasNoChildren \\Trash) \"/\" \"Trash\"
             S: a3 OK LIST completed
             C: a4 LIST Lists/ %
             S: * LIST (\\HasNoChildren) \"/\" \"Lists/rust\"
             S: a4 OK LIST completed
             C: a5 LIST \"\" inbox
             S: * LIST (\\HasNoChildren) \"/\" \"INBOX\"
             S: a5 OK LIST completed
             C: a6 LIST \"\" \"Entw&APw-*\"
             S: * LIST (\\HasNoChildren) \"/\" \"Entw&APw-rfe &- Co\"
             S: a6 OK LIST completed
             C: a7 LIST \"\" nothing*
             S: a7 OK LIST completed
             C: a8 ENABLE UTF8=ACCEPT
             S: * ENABLED UTF8=ACCEPT
             S: a8 OK ENABLE completed
             C: a9 LIST \"\" \"Entw\u{fc}*\"
             S: * LIST (\\HasNoChildren) \"/\" \"Entw\u{fc}rfe & Co\"
             S: a9 OK LIST completed",
        )
        .await;
    }
}
