//! RFC 5322 §3.4 address lists (with the §4.4 obsolete forms), parsed the
//! way ENVELOPE needs them (RFC 3501 §7.4.2, RFC 9051 §7.5.2): every part
//! is kept as raw text, so encoded-words (RFC 2047) stay encoded. Groups
//! become a start marker, their members and an end marker.
//!
//! Lenient: unbalanced brackets, missing domains, bare words and stray
//! characters never fail; whatever cannot be an address is skipped.

/// One entry of an address list, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Addr {
    Mailbox(Mailbox),
    /// `group-name:` — ENVELOPE `(NIL NIL "group-name" NIL)`.
    GroupStart(Vec<u8>),
    /// `;` — ENVELOPE `(NIL NIL NIL NIL)`.
    GroupEnd,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct Mailbox {
    /// The display name (phrase) unquoted, or the comment of a bare
    /// `addr-spec (Comment)`; `None` when there is neither.
    pub name: Option<Vec<u8>>,
    /// The obsolete source route `@a,@b` (RFC 5322 §4.4).
    pub adl: Option<Vec<u8>>,
    /// The local part as written (a quoted local part keeps its quotes).
    pub mailbox: Vec<u8>,
    /// The domain; empty when the address has none.
    pub host: Vec<u8>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tok<'a> {
    /// Atom text, dots included (`john.doe`, `Q.`).
    Atom(&'a [u8]),
    /// A quoted string with its quotes and escapes, as written.
    Quoted(&'a [u8]),
    /// A domain literal `[...]` as written.
    Literal(&'a [u8]),
    /// The text inside a comment.
    Comment(&'a [u8]),
    Special(u8),
}

fn tokens(s: &[u8]) -> Vec<Tok<'_>> {
    let mut out = Vec::new();
    let mut i = 0;
    while let Some(&b) = s.get(i) {
        let start = i;
        match b {
            b' ' | b'\t' | b'\r' | b'\n' => i += 1,
            b'"' | b'[' => {
                let close = if b == b'"' { b'"' } else { b']' };
                i += 1;
                while let Some(&c) = s.get(i) {
                    i += if c == b'\\' { 2 } else { 1 };
                    if c == close {
                        break;
                    }
                }
                i = i.min(s.len());
                let raw = s.get(start..i).unwrap_or_default();
                out.push(if b == b'"' { Tok::Quoted(raw) } else { Tok::Literal(raw) });
            }
            b'(' => {
                let mut depth = 0u32;
                while let Some(&c) = s.get(i) {
                    i += if c == b'\\' { 2 } else { 1 };
                    match c {
                        b'(' => depth += 1,
                        b')' => depth = depth.saturating_sub(1),
                        _ => {}
                    }
                    if depth == 0 {
                        break;
                    }
                }
                i = i.min(s.len());
                let inner = s.get(start + 1..i).unwrap_or_default();
                out.push(Tok::Comment(inner.strip_suffix(b")").unwrap_or(inner)));
            }
            b'<' | b'>' | b'@' | b',' | b';' | b':' | b'\\' | b')' | b']' => {
                i += 1;
                out.push(Tok::Special(b));
            }
            _ => {
                while s.get(i).is_some_and(|&c| !b" \t\r\n\"[(<>@,;:\\)]".contains(&c)) {
                    i += 1;
                }
                out.push(Tok::Atom(s.get(start..i).unwrap_or_default()));
            }
        }
    }
    out
}

/// Parses an unfolded address-list header value.
pub(crate) fn parse(value: &[u8]) -> Vec<Addr> {
    let toks = tokens(value);
    let mut out = Vec::new();
    let mut in_group = false;
    let mut i = 0;
    while i < toks.len() {
        let (end, group_colon) = element_end(&toks, i, in_group);
        if let Some(colon) = group_colon {
            out.push(Addr::GroupStart(phrase(toks.get(i..colon).unwrap_or_default())));
            in_group = true;
            i = colon + 1;
            continue;
        }
        if let Some(m) = mailbox(toks.get(i..end).unwrap_or_default()) {
            out.push(Addr::Mailbox(m));
        }
        if toks.get(end) == Some(&Tok::Special(b';')) && in_group {
            out.push(Addr::GroupEnd);
            in_group = false;
        }
        i = end + 1;
    }
    if in_group {
        out.push(Addr::GroupEnd);
    }
    out
}

/// Where the element starting at `i` ends (the index of its `,` or `;`,
/// or the end), and the index of its `:` when it opens a group.
fn element_end(toks: &[Tok<'_>], i: usize, in_group: bool) -> (usize, Option<usize>) {
    let mut angle = false;
    let mut seen_addr = false;
    for (j, t) in toks.iter().enumerate().skip(i) {
        match t {
            Tok::Special(b'<') => (angle, seen_addr) = (true, true),
            Tok::Special(b'>') => angle = false,
            Tok::Special(b'@') => seen_addr = true,
            Tok::Special(b':') if !angle && !seen_addr && !in_group => return (j, Some(j)),
            Tok::Special(b',' | b';') if !angle => return (j, None),
            _ => {}
        }
    }
    (toks.len(), None)
}

/// One mailbox from the tokens of one element; `None` for an empty one.
fn mailbox(toks: &[Tok<'_>]) -> Option<Mailbox> {
    if let Some(open) = toks.iter().position(|t| *t == Tok::Special(b'<')) {
        let inner = toks.get(open + 1..).unwrap_or_default();
        let close = inner.iter().position(|t| *t == Tok::Special(b'>')).unwrap_or(inner.len());
        let mut m = angle_addr(inner.get(..close).unwrap_or_default());
        m.name = non_empty(phrase(toks.get(..open).unwrap_or_default()));
        return Some(m);
    }
    let words: Vec<Tok<'_>> = toks.iter().copied().filter(|t| !matches!(t, Tok::Comment(_))).collect();
    if words.is_empty() {
        return None;
    }
    let mut m = addr_spec(&words);
    // `addr-spec (Comment)`: the comment is the only name there is.
    m.name = toks.iter().rev().find_map(|t| match t {
        Tok::Comment(c) => non_empty(c.trim_ascii().to_vec()),
        _ => None,
    });
    Some(m)
}

/// The inside of `<...>`: an optional route `@a,@b:` then an addr-spec.
fn angle_addr(toks: &[Tok<'_>]) -> Mailbox {
    let words: Vec<Tok<'_>> = toks.iter().copied().filter(|t| !matches!(t, Tok::Comment(_))).collect();
    let route_end = match words.first() {
        Some(Tok::Special(b'@')) => words.iter().position(|t| *t == Tok::Special(b':')),
        _ => None,
    };
    match route_end {
        Some(colon) => {
            let mut m = addr_spec(words.get(colon + 1..).unwrap_or_default());
            m.adl = non_empty(joined(words.get(..colon).unwrap_or_default()));
            m
        }
        None => addr_spec(&words),
    }
}

fn addr_spec(words: &[Tok<'_>]) -> Mailbox {
    let at = words.iter().position(|t| *t == Tok::Special(b'@')).unwrap_or(words.len());
    Mailbox {
        name: None,
        adl: None,
        mailbox: joined(words.get(..at).unwrap_or_default()),
        host: joined(words.get(at + 1..).unwrap_or_default()),
    }
}

/// Tokens as written, without the whitespace between them (local parts,
/// domains, routes).
fn joined(toks: &[Tok<'_>]) -> Vec<u8> {
    let mut out = Vec::new();
    for t in toks {
        match t {
            Tok::Atom(a) | Tok::Quoted(a) | Tok::Literal(a) => out.extend_from_slice(a),
            Tok::Special(b) => out.push(*b),
            Tok::Comment(_) => {}
        }
    }
    out
}

/// A display name: words separated by one space, quoted strings unquoted,
/// comments dropped; stray specials (`john@x <...>`) kept in place.
fn phrase(toks: &[Tok<'_>]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut glue = false;
    for t in toks {
        let word: Vec<u8> = match t {
            Tok::Atom(a) | Tok::Literal(a) => a.to_vec(),
            Tok::Quoted(q) => unquote(q),
            Tok::Special(b) => {
                out.push(*b);
                glue = true;
                continue;
            }
            Tok::Comment(_) => continue,
        };
        if !out.is_empty() && !glue {
            out.push(b' ');
        }
        out.extend_from_slice(&word);
        glue = false;
    }
    out
}

/// The content of a quoted string, escapes resolved.
fn unquote(q: &[u8]) -> Vec<u8> {
    let inner = q.strip_prefix(b"\"").unwrap_or(q);
    let inner = inner.strip_suffix(b"\"").unwrap_or(inner);
    let mut out = Vec::with_capacity(inner.len());
    let mut escaped = false;
    for &b in inner {
        if escaped || b != b'\\' {
            out.push(b);
            escaped = false;
        } else {
            escaped = true;
        }
    }
    out
}

/// A local part as written (`"john doe"`, or obsolete `"a".b`) without its
/// RFC 5322 quoting: the quotes removed and the quoted-pairs inside them
/// resolved, as IMAP's `addr-mailbox` has it (RFC 3501 §9).
pub(crate) fn unquote_local(local: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(local.len());
    let (mut quoted, mut escaped) = (false, false);
    for &b in local {
        match b {
            _ if escaped => {
                out.push(b);
                escaped = false;
            }
            b'\\' if quoted => escaped = true,
            b'"' => quoted = !quoted,
            _ => out.push(b),
        }
    }
    out
}

fn non_empty(v: Vec<u8>) -> Option<Vec<u8>> {
    (!v.is_empty()).then_some(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mb(name: Option<&str>, mailbox: &str, host: &str) -> Addr {
        Addr::Mailbox(Mailbox {
            name: name.map(|n| n.as_bytes().to_vec()),
            adl: None,
            mailbox: mailbox.into(),
            host: host.into(),
        })
    }

    #[test]
    fn common_forms() {
        assert_eq!(parse(b"bob@example.org"), vec![mb(None, "bob", "example.org")]);
        assert_eq!(
            parse(b"\"Doe, John\" <john@x.org>, =?utf-8?q?J=C3=B6rg?= <j@y.org>"),
            vec![mb(Some("Doe, John"), "john", "x.org"), mb(Some("=?utf-8?q?J=C3=B6rg?="), "j", "y.org")]
        );
        assert_eq!(parse(b"john@x.org (John Doe)"), vec![mb(Some("John Doe"), "john", "x.org")]);
        assert_eq!(parse(b"John Q. Public <jqp@x.org>"), vec![mb(Some("John Q. Public"), "jqp", "x.org")]);
        assert_eq!(parse(b"\"john doe\"@x.org"), vec![mb(None, "\"john doe\"", "x.org")]);
        assert_eq!(parse(b"<>"), vec![mb(None, "", "")]);
        assert_eq!(parse(b"a@b.c <a@b.c>"), vec![mb(Some("a@b.c"), "a", "b.c")]);
        assert_eq!(parse(b"\"\" <a@[1.2.3.4]>"), vec![mb(None, "a", "[1.2.3.4]")]);
        assert_eq!(parse("J\u{fc}rgen <j@x.de>".as_bytes()), vec![mb(Some("J\u{fc}rgen"), "j", "x.de")]);
    }

    #[test]
    fn groups_routes_and_junk() {
        assert_eq!(
            parse(b"undisclosed-recipients:;"),
            vec![Addr::GroupStart(b"undisclosed-recipients".to_vec()), Addr::GroupEnd]
        );
        assert_eq!(
            parse(b"Team: a@x, B <b@y>; c@z"),
            vec![
                Addr::GroupStart(b"Team".to_vec()),
                mb(None, "a", "x"),
                mb(Some("B"), "b", "y"),
                Addr::GroupEnd,
                mb(None, "c", "z")
            ]
        );
        assert_eq!(parse(b"Open: a@x"), vec![Addr::GroupStart(b"Open".to_vec()), mb(None, "a", "x"), Addr::GroupEnd]);
        let routed = parse(b"<@relay1,@relay2:u@h>");
        let Addr::Mailbox(m) = &routed[0] else { panic!() };
        assert_eq!((m.adl.as_deref(), m.mailbox.as_slice()), (Some(&b"@relay1,@relay2"[..]), &b"u"[..]));
        assert_eq!(parse(b", ,"), vec![]);
        assert_eq!(parse(b"bare"), vec![mb(None, "bare", "")]);
        assert_eq!(parse(b"Unclosed <a@b"), vec![mb(Some("Unclosed"), "a", "b")]);
        assert_eq!(parse(b"\"unterminated <a@b>"), vec![mb(None, "\"unterminated <a@b>", "")]);
        assert_eq!(parse(b"(only a comment)"), vec![]);
    }

    #[test]
    fn local_parts_unquote() {
        assert_eq!(unquote_local(b"\"john doe\""), b"john doe");
        assert_eq!(unquote_local(b"\"a\".b"), b"a.b");
        assert_eq!(unquote_local(b"\"q\\\"x\\\\\""), b"q\"x\\");
        assert_eq!(unquote_local(b"plain\\x"), b"plain\\x");
    }
}
