//! The NOTIFY grammar (RFC 5465 §8), which imap-codec cannot decode; run
//! from `cmd::ext::decode` after the `NOTIFY ` keyword:
//!
//! ```abnf
//! notify              = "NOTIFY" SP (notify-set / notify-none)
//! notify-none         = "NONE"
//! notify-set          = "SET" [status-indicator] SP event-groups
//! status-indicator    = SP "STATUS"
//! event-groups        = event-group *(SP event-group)
//! event-group         = "(" filter-mailboxes SP events ")"
//! filter-mailboxes    = "selected" / "selected-delayed" / "inboxes" / "personal" / "subscribed" /
//!                       ("subtree" SP one-or-more-mailbox) / ("mailboxes" SP one-or-more-mailbox)
//! one-or-more-mailbox = mailbox / "(" mailbox *(SP mailbox) ")"
//! events              = ("(" event *(SP event) ")") / "NONE"
//! event               = ("MessageNew" [SP "(" fetch-att *(SP fetch-att) ")"]) / atom
//! ```
//!
//! Keywords are case-insensitive. Event names are kept as written (the
//! rules about which events may go together, and which we support, are
//! checked in `cmd/notify.rs`); MessageNew's fetch attributes are kept as
//! raw bytes, to be decoded by imap-codec as a FETCH item list.

use crate::cmd::ext::Parser;

/// A decoded NOTIFY command.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Request {
    None,
    Set { status: bool, groups: Vec<RawGroup> },
}

#[derive(Debug, PartialEq, Eq)]
pub(crate) struct RawGroup {
    pub filter: RawFilter,
    /// Empty for `NONE`.
    pub events: Vec<RawEvent>,
}

#[derive(Debug, PartialEq, Eq)]
pub(crate) enum RawFilter {
    Selected,
    SelectedDelayed,
    Inboxes,
    Personal,
    Subscribed,
    /// Mailbox names as sent (modified UTF-7 or UTF-8).
    Subtree(Vec<Vec<u8>>),
    Mailboxes(Vec<Vec<u8>>),
}

#[derive(Debug, PartialEq, Eq)]
pub(crate) struct RawEvent {
    pub name: String,
    /// MessageNew's fetch attributes, without the outer parentheses.
    pub fetch: Option<Vec<u8>>,
}

/// NOTIFY's arguments, or `None` on a syntax error.
pub(crate) fn parse(p: &mut Parser<'_>) -> Option<Request> {
    let verb = p.atom()?;
    if verb.eq_ignore_ascii_case(b"NONE") {
        return Some(Request::None);
    }
    if !verb.eq_ignore_ascii_case(b"SET") {
        return None;
    }
    p.sp()?;
    let mut status = false;
    if p.peek() != Some(b'(') {
        // status-indicator
        status = p.atom()?.eq_ignore_ascii_case(b"STATUS").then_some(true)?;
        p.sp()?;
    }
    let mut groups = vec![group(p)?];
    while p.peek() == Some(b' ') {
        p.sp()?;
        groups.push(group(p)?);
    }
    Some(Request::Set { status, groups })
}

fn group(p: &mut Parser<'_>) -> Option<RawGroup> {
    p.byte(b'(')?;
    let word = p.atom()?.to_ascii_lowercase();
    let filter = match word.as_slice() {
        b"selected" => RawFilter::Selected,
        b"selected-delayed" => RawFilter::SelectedDelayed,
        b"inboxes" => RawFilter::Inboxes,
        b"personal" => RawFilter::Personal,
        b"subscribed" => RawFilter::Subscribed,
        b"subtree" => {
            p.sp()?;
            RawFilter::Subtree(mailboxes(p)?)
        }
        b"mailboxes" => {
            p.sp()?;
            RawFilter::Mailboxes(mailboxes(p)?)
        }
        _ => return None,
    };
    p.sp()?;
    let events = events(p)?;
    p.byte(b')')?;
    Some(RawGroup { filter, events })
}

fn mailboxes(p: &mut Parser<'_>) -> Option<Vec<Vec<u8>>> {
    if p.peek() != Some(b'(') {
        return Some(vec![p.astring()?]);
    }
    p.byte(b'(')?;
    let mut names = vec![p.astring()?];
    while p.peek() == Some(b' ') {
        p.sp()?;
        names.push(p.astring()?);
    }
    p.byte(b')')?;
    Some(names)
}

fn events(p: &mut Parser<'_>) -> Option<Vec<RawEvent>> {
    if p.peek() != Some(b'(') {
        return p.atom()?.eq_ignore_ascii_case(b"NONE").then(Vec::new);
    }
    p.byte(b'(')?;
    let mut events = vec![event(p)?];
    while p.peek() == Some(b' ') {
        p.sp()?;
        let last = events.last_mut()?;
        if p.peek() == Some(b'(') && last.fetch.is_none() && last.name.eq_ignore_ascii_case("MessageNew") {
            last.fetch = Some(balanced(p)?);
        } else {
            events.push(event(p)?);
        }
    }
    p.byte(b')')?;
    Some(events)
}

fn event(p: &mut Parser<'_>) -> Option<RawEvent> {
    let name = String::from_utf8(p.atom()?.to_vec()).ok()?;
    Some(RawEvent { name, fetch: None })
}

/// A parenthesised list with nested lists and quoted strings (a fetch-att
/// list such as `(UID BODY.PEEK[HEADER.FIELDS (From "Subject")])`),
/// returned without its outer parentheses. Literals are refused.
fn balanced(p: &mut Parser<'_>) -> Option<Vec<u8>> {
    p.byte(b'(')?;
    let mut out = Vec::new();
    let (mut depth, mut quoted) = (1usize, false);
    loop {
        let b = p.peek()?;
        p.byte(b)?;
        if quoted {
            if b == b'\\' {
                out.push(b);
                let escaped = p.peek()?;
                p.byte(escaped)?;
                out.push(escaped);
                continue;
            }
            quoted = b != b'"';
        } else {
            match b {
                b'"' => quoted = true,
                b'(' => depth += 1,
                b')' => {
                    depth -= 1;
                    if depth == 0 {
                        return Some(out);
                    }
                }
                b'{' | b'\r' | b'\n' => return None,
                _ => {}
            }
        }
        out.push(b);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cmd::ext::{Extended, decode};

    fn notify(line: &str) -> Option<Request> {
        match decode(format!("t {line}\r\n").as_bytes()) {
            Some((_, Extended::Notify(r))) => Some(r),
            _ => None,
        }
    }

    fn ev(name: &str) -> RawEvent {
        RawEvent { name: name.into(), fetch: None }
    }

    #[test]
    fn set_none_and_status() {
        assert_eq!(notify("NOTIFY NONE"), Some(Request::None));
        assert_eq!(notify("notify none"), Some(Request::None));
        let r = notify("NOTIFY SET STATUS (selected (MessageNew (UID BODY.PEEK[HEADER.FIELDS (From \"Sub)ject\")]) MessageExpunge)) (subtree (INBOX \"COI/Chats\") (MessageNew MessageExpunge FlagChange)) (personal NONE)").unwrap();
        let Request::Set { status, groups } = r else { panic!() };
        assert!(status);
        assert_eq!(groups.len(), 3);
        assert_eq!(groups[0].filter, RawFilter::Selected);
        assert_eq!(
            groups[0].events,
            vec![
                RawEvent {
                    name: "MessageNew".into(),
                    fetch: Some(b"UID BODY.PEEK[HEADER.FIELDS (From \"Sub)ject\")]".to_vec())
                },
                ev("MessageExpunge")
            ]
        );
        assert_eq!(groups[1].filter, RawFilter::Subtree(vec![b"INBOX".to_vec(), b"COI/Chats".to_vec()]));
        assert_eq!(groups[1].events, vec![ev("MessageNew"), ev("MessageExpunge"), ev("FlagChange")]);
        assert_eq!(groups[2], RawGroup { filter: RawFilter::Personal, events: vec![] });
        let r = notify("NOTIFY SET (SELECTED-DELAYED (MessageExpunge MessageNew)) (mailboxes Sent (MailboxName))");
        let Some(Request::Set { status: false, groups }) = r else { panic!() };
        assert_eq!(groups[0].filter, RawFilter::SelectedDelayed);
        assert_eq!(groups[1].filter, RawFilter::Mailboxes(vec![b"Sent".to_vec()]));
    }

    #[test]
    fn refusals() {
        for bad in [
            "NOTIFY",
            "NOTIFY SET",
            "NOTIFY SET STATUS",
            "NOTIFY SET FOO (selected (MessageNew MessageExpunge))",
            "NOTIFY SET (selected)",
            "NOTIFY SET (selected MessageNew)",
            "NOTIFY SET (selected ())",
            "NOTIFY SET (subtree (MessageNew MessageExpunge))",
            "NOTIFY SET (everything (MessageNew MessageExpunge))",
            "NOTIFY SET (selected (MessageNew MessageExpunge)",
            "NOTIFY SET (selected (MessageNew (UID MessageExpunge))",
            "NOTIFY SET (selected (MessageNew ({3}\r\nUID) MessageExpunge))",
            "NOTIFY SET (selected (MessageExpunge (UID)))",
            "NOTIFY NONE extra",
        ] {
            assert_eq!(notify(bad), None, "{bad}");
        }
    }
}
