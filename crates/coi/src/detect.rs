//! Chat message recognition on the raw RFC 5322 message (COI spec R22, R23,
//! R36), plus the small header scanner the WebPush payload shares.
//!
//! Everything here sees raw mail from the internet before any other parser
//! has looked at it: arbitrary bytes, 8-bit headers, bare LF line ends,
//! folded or enormous headers, no header section at all. So it works on
//! bytes, stops at the first empty line (a `Chat-Version:` line in a body
//! must not make a chat), allocates at most the header values it returns, and
//! never panics. Header names compare case-insensitively, as RFC 5322 says;
//! the `chat$` prefix compares case-sensitively, as Dovecot does (R22).

/// Message-id prefix that marks a chat (R22).
const CHAT_PREFIX: &[u8] = b"chat$";
/// Message-id prefix that marks a group chat; the group id follows (R23).
const GROUP_PREFIX: &[u8] = b"chat$group.";
/// Longest group id accepted: longer ones are not Delta Chat's and would
/// only bloat the push payload.
const MAX_GROUP_ID: usize = 128;

/// Splits a raw message into its header section (including the last header
/// line's line end) and its body (after the empty line). Without an empty
/// line the whole message is header; a message starting with one has none.
pub fn split(raw: &[u8]) -> (&[u8], &[u8]) {
    let mut pos = 0;
    while pos < raw.len() {
        let rest = &raw[pos..];
        let (line, next) = match rest.iter().position(|&b| b == b'\n') {
            Some(i) => (&rest[..i], pos + i + 1),
            None => (rest, raw.len()),
        };
        if line.is_empty() || line == b"\r" {
            return (&raw[..pos], &raw[next..]);
        }
        pos = next;
    }
    (raw, &[])
}

/// The header fields of a raw message in order, as `(name, raw value)`. The
/// value is everything after the colon, folds and line end included; see
/// [`unfold`]. Lines that are not `name: value` (no colon, a space in the
/// name, a continuation with nothing before it) are skipped, not fatal:
/// real mail has them, and a later valid field must still count.
pub fn fields(raw: &[u8]) -> Fields<'_> {
    Fields { rest: split(raw).0 }
}

/// Iterator returned by [`fields`].
#[derive(Debug, Clone)]
pub struct Fields<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for Fields<'a> {
    type Item = (&'a [u8], &'a [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        while !self.rest.is_empty() {
            let rest = self.rest;
            let first_end = line_end(rest, 0);
            let mut end = first_end;
            while matches!(rest.get(end), Some(b' ' | b'\t')) {
                end = line_end(rest, end);
            }
            self.rest = &rest[end..];
            let first_line = &rest[..first_end];
            let Some(colon) = first_line.iter().position(|&b| b == b':') else { continue };
            let name = trim_end_wsp(&rest[..colon]);
            if !name.is_empty() && name.iter().all(|b| b.is_ascii_graphic()) {
                return Some((name, &rest[colon + 1..end]));
            }
        }
        None
    }
}

/// Index just past the `\n` ending the line that starts at `from` (or the end).
fn line_end(s: &[u8], from: usize) -> usize {
    match s.get(from..).and_then(|tail| tail.iter().position(|&b| b == b'\n')) {
        Some(i) => from + i + 1,
        None => s.len(),
    }
}

fn trim_end_wsp(s: &[u8]) -> &[u8] {
    let end = s.iter().rposition(|&b| b != b' ' && b != b'\t').map_or(0, |i| i + 1);
    &s[..end]
}

fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n')
}

fn trim(s: &[u8]) -> &[u8] {
    let start = s.iter().position(|&b| !is_space(b)).unwrap_or(s.len());
    let end = s.iter().rposition(|&b| !is_space(b)).map_or(start, |i| i + 1);
    s.get(start..end).unwrap_or_default()
}

/// A raw field value unfolded (line breaks removed, the whitespace after
/// them kept, RFC 5322 §2.2.3) and trimmed.
pub fn unfold(value: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(value.len());
    for line in value.split(|&b| b == b'\n') {
        out.extend_from_slice(line.strip_suffix(b"\r").unwrap_or(line));
    }
    trim(&out).to_vec()
}

fn name_is(name: &[u8], wanted: &str) -> bool {
    name.eq_ignore_ascii_case(wanted.as_bytes())
}

/// The unfolded, trimmed value of the first `name` field, if any.
pub fn header(raw: &[u8], name: &str) -> Option<Vec<u8>> {
    fields(raw).find(|(n, _)| name_is(n, name)).map(|(_, v)| unfold(v))
}

/// [`header`] as text; bytes that are not UTF-8 become U+FFFD.
pub fn header_string(raw: &[u8], name: &str) -> Option<String> {
    header(raw, name).map(|v| String::from_utf8_lossy(&v).into_owned())
}

/// The first message id of a `Message-ID`/`References` value, without its
/// angle brackets. Whitespace, commas and comments before it are skipped; an
/// id without brackets (seen from broken mailers) runs to the next space.
/// May still contain folding line breaks inside the brackets.
pub fn first_msg_id(value: &[u8]) -> Option<&[u8]> {
    let mut i = 0;
    loop {
        match value.get(i) {
            Some(&b) if is_space(b) || b == b',' => i += 1,
            Some(b'(') => i = skip_comment(value, i),
            _ => break,
        }
    }
    let rest = value.get(i..)?;
    let id = if let Some(inner) = rest.strip_prefix(b"<") {
        let end = inner.iter().position(|&b| b == b'>').unwrap_or(inner.len());
        trim(&inner[..end])
    } else {
        let end = rest.iter().position(|&b| is_space(b) || matches!(b, b'(' | b'<' | b',')).unwrap_or(rest.len());
        &rest[..end]
    };
    (!id.is_empty()).then_some(id)
}

/// Index just past the comment opening at `start` (nested, `\`-escapes), or
/// the end of `value` if it never closes.
fn skip_comment(value: &[u8], start: usize) -> usize {
    let mut depth = 0usize;
    let mut i = start;
    while let Some(&b) = value.get(i) {
        match b {
            b'\\' => i += 1,
            b'(' => depth += 1,
            b')' => {
                depth = depth.saturating_sub(1);
                if depth == 0 {
                    return i + 1;
                }
            }
            _ => {}
        }
        i += 1;
    }
    value.len()
}

/// R22: a `Chat-Version` field (any value), or the first `References` id or
/// the `Message-ID` starting with `chat$`. Only the first occurrence of each
/// field counts; `In-Reply-To` never does.
pub fn is_chat(raw: &[u8]) -> bool {
    let (mut references_seen, mut message_id_seen) = (false, false);
    let chat_id = |value: &[u8]| first_msg_id(value).is_some_and(|id| id.starts_with(CHAT_PREFIX));
    for (name, value) in fields(raw) {
        if name_is(name, "Chat-Version") {
            return true;
        }
        if !references_seen && name_is(name, "References") {
            references_seen = true;
            if chat_id(value) {
                return true;
            }
        } else if !message_id_seen && name_is(name, "Message-ID") {
            message_id_seen = true;
            if chat_id(value) {
                return true;
            }
        }
    }
    false
}

/// R23: the group id of a group chat message, from the `Message-ID` or, when
/// that is no group id, the first `References` id (a plain reply inside a
/// group thread still belongs to the group).
pub fn group_id(raw: &[u8]) -> Option<String> {
    let (mut references, mut message_id) = (None, None);
    for (name, value) in fields(raw) {
        if references.is_none() && name_is(name, "References") {
            references = Some(value);
        } else if message_id.is_none() && name_is(name, "Message-ID") {
            message_id = Some(value);
        }
        if references.is_some() && message_id.is_some() {
            break;
        }
    }
    [message_id, references].into_iter().flatten().find_map(|value| group_of(&unfold(value)))
}

/// `chat$group.<id>.<rest>@host` → `<id>`. The closing dot must lie before
/// the `@`: a dot in the domain would otherwise cut a garbage id out of
/// `chat$group.x@example.com`.
fn group_of(value: &[u8]) -> Option<String> {
    let id = first_msg_id(value)?;
    let after = id.strip_prefix(GROUP_PREFIX)?;
    let local = after.split(|&b| b == b'@').next()?;
    let dot = local.iter().position(|&b| b == b'.')?;
    let group = &local[..dot];
    if group.is_empty() || group.len() > MAX_GROUP_ID {
        return None;
    }
    let group = std::str::from_utf8(group).ok()?;
    if group.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return None;
    }
    Some(group.to_owned())
}

/// R36/§6: a top-level `multipart/report` (MDN or DSN), which is never pushed.
pub fn is_disposition_notification(raw: &[u8]) -> bool {
    const REPORT: &[u8] = b"multipart/report";
    header(raw, "Content-Type").is_some_and(|v| v.get(..REPORT.len()).is_some_and(|p| p.eq_ignore_ascii_case(REPORT)))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn msg(headers: &str) -> Vec<u8> {
        format!("{headers}\r\n\r\nbody\r\n").into_bytes()
    }

    const PLAIN: &str = "From: a@x\r\nTo: b@y\r\nSubject: hi\r\nMessage-ID: <plain1@x>";

    #[test]
    fn r22_observed_matrix() {
        let cases = [
            ("Chat-Version: garbage", true),
            ("References: <chat$root@x> <plain@y>", true),
            ("References: <plain@y> <chat$root@x>", false),
            ("In-Reply-To: <chat$root@x>", false),
            ("Message-ID: <Chat$upper@example.test>", false),
            ("Message-ID: <chat$mid6@example.test>", true),
            ("", false),
        ];
        for (extra, want) in cases {
            // Message-ID of PLAIN comes first, so a second Message-ID must not count;
            // put the case's field first to test it.
            let headers = if extra.is_empty() {
                PLAIN.to_owned()
            } else {
                format!("{extra}\r\n{}", PLAIN.replace("Message-ID: <plain1@x>", "X-Other: 1"))
            };
            assert_eq!(is_chat(&msg(&headers)), want, "{extra}");
        }
    }

    #[test]
    fn chat_version_any_value() {
        for v in
            ["Chat-Version: 1.0", "Chat-Version:", "Chat-Version:   ", "Chat-Version: \u{1}\u{ff}", "chat-version: 1"]
        {
            assert!(is_chat(&msg(&format!("{PLAIN}\r\n{v}"))), "{v}");
        }
        assert!(is_chat(b"Subject: x\r\nChat-Version : 1.0\r\n\r\n"), "space before the colon");
        assert!(!is_chat(&msg(&format!("{PLAIN}\r\nX-Chat-Version: 1.0\r\nChat-Versions: 1"))));
    }

    #[test]
    fn header_name_case_variants() {
        for h in [
            "CHAT-VERSION: 1.0",
            "chat-version: 1.0",
            "references: <chat$r@x>",
            "REFERENCES: <chat$r@x>",
            "message-id: <chat$m@x>",
            "MESSAGE-ID: <chat$m@x>",
            "Message-Id: <chat$m@x>",
        ] {
            assert!(is_chat(&msg(&format!("From: a@x\r\n{h}"))), "{h}");
        }
    }

    #[test]
    fn only_first_occurrence_counts() {
        assert!(!is_chat(&msg("References: <plain@y>\r\nReferences: <chat$r@x>")));
        assert!(!is_chat(&msg("Message-ID: <plain@y>\r\nMessage-ID: <chat$r@x>")));
        assert!(is_chat(&msg("Message-ID: <chat$r@x>\r\nMessage-ID: <plain@y>")));
    }

    #[test]
    fn msg_id_syntax_tolerated() {
        for v in [
            "References:   <chat$r@x>",
            "References: (comment) <chat$r@x>",
            "References: (nested (comment) \\) ) <chat$r@x> <b@y>",
            "References: , <chat$r@x>",
            "References: < chat$r@x >",
            "References: <chat$r@x",
            "References: chat$r@x <b@y>",
            "References:\r\n <chat$r@x>",
            "References:\r\n\t<chat$r@x>\r\n <b@y>",
            "Message-ID:<chat$m@x>",
        ] {
            assert!(is_chat(&msg(v)), "{v:?}");
        }
        for v in ["References: (<chat$r@x>) <b@y>", "References: <>", "References: (unclosed <chat$r@x>", "References:"]
        {
            assert!(!is_chat(&msg(v)), "{v:?}");
        }
    }

    #[test]
    fn folded_headers() {
        assert!(is_chat(b"Subject: a\r\n  folded\r\nMessage-ID:\r\n <chat$m@x>\r\n\r\n"));
        // A folded line that looks like a field is part of the previous value.
        assert!(!is_chat(b"Subject: a\r\n Chat-Version: 1.0\r\n\r\n"));
        assert_eq!(header(b"Subject: a\r\n  b\r\n\tc\r\nX: y\r\n\r\n", "subject").unwrap(), b"a  b\tc");
        assert_eq!(header(b"Subject: a\n b\nX: y\n\n", "Subject").unwrap(), b"a b");
    }

    #[test]
    fn lf_only_messages() {
        assert!(is_chat(b"From: a@x\nMessage-ID: <chat$m@x>\n\nbody\n"));
        assert!(is_chat(b"From: a@x\nChat-Version: 1.0\n\nbody\n"));
        assert!(!is_chat(b"From: a@x\nMessage-ID: <m@x>\n\nChat-Version: 1.0\n"));
        let (head, body) = split(b"A: 1\nB: 2\n\nbody\n\nmore");
        assert_eq!((head, body), (&b"A: 1\nB: 2\n"[..], &b"body\n\nmore"[..]));
    }

    #[test]
    fn body_is_not_header() {
        assert!(!is_chat(&msg(&format!("{PLAIN}\r\n\r\nChat-Version: 1.0"))));
        assert!(!is_chat(b"Subject: x\r\n\r\nChat-Version: 1.0\r\nMessage-ID: <chat$m@x>\r\n"));
        assert!(!is_chat(b"Subject: x\n\r\nChat-Version: 1.0\r\n"));
        assert_eq!(header(b"Subject: x\r\n\r\nFrom: a@x\r\n", "From"), None);
    }

    #[test]
    fn no_header_section() {
        assert!(!is_chat(b""));
        assert!(!is_chat(b"\r\n"));
        assert!(!is_chat(b"\n"));
        assert!(!is_chat(b"\r\nChat-Version: 1.0\r\n"));
        assert!(!is_chat(b"\nMessage-ID: <chat$m@x>\n"));
        assert_eq!(split(b"\r\nbody"), (&b""[..], &b"body"[..]));
        // Only headers, no empty line, no final line end.
        assert!(is_chat(b"Chat-Version: 1.0"));
        assert!(is_chat(b"Message-ID: <chat$m@x>"));
        assert_eq!(split(b"A: 1\r\nB: 2"), (&b"A: 1\r\nB: 2"[..], &b""[..]));
        assert_eq!(split(b"A: 1\r\n\r"), (&b"A: 1\r\n"[..], &b""[..]));
    }

    #[test]
    fn malformed_lines_skipped() {
        assert!(is_chat(b"From mbox-line 2019\r\nno colon here\r\n leading continuation\r\nChat-Version: 1\r\n\r\n"));
        assert!(!is_chat(b"Bad Name: 1\r\n: empty name\r\nChat Version: 1\r\n\r\n"));
        let got: Vec<_> = fields(b" cont: 1\r\nA: 1\r\nno colon\r\nB:2\r\n\r\nC: 3").map(|(n, _)| n.to_vec()).collect();
        assert_eq!(got, vec![b"A".to_vec(), b"B".to_vec()]);
    }

    #[test]
    fn binary_garbage() {
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        for len in 0..2000usize {
            let mut raw = Vec::with_capacity(len);
            for _ in 0..len {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                // Bias towards the bytes the scanner cares about.
                let b = match seed % 8 {
                    0 => b'\n',
                    1 => b'\r',
                    2 => b':',
                    3 => b' ',
                    4 => b"<>()\\,$."[(seed >> 8) as usize % 8],
                    _ => (seed >> 16) as u8,
                };
                raw.push(b);
            }
            let _ = is_chat(&raw);
            let _ = group_id(&raw);
            let _ = is_disposition_notification(&raw);
            let _ = header(&raw, "Message-ID");
            let (h, b) = split(&raw);
            assert!(h.len() + b.len() <= raw.len());
        }
        assert!(!is_chat(&[0xff, 0xfe, 0x00, b':', 0x80, b'\n', b'\n']));
        assert!(is_chat(b"\xff\xfeX: \x80\r\nChat-Version: \xff\r\n\r\n"));
    }

    #[test]
    fn huge_header() {
        let mut raw = b"Subject: x".to_vec();
        for _ in 0..100_000 {
            raw.extend_from_slice(b"\r\n folded");
        }
        raw.extend_from_slice(b"\r\nMessage-ID: <chat$m@x>\r\n\r\n");
        assert!(is_chat(&raw));
        assert_eq!(header(&raw, "Subject").unwrap().len(), 1 + 100_000 * 7);
    }

    #[test]
    fn r23_group_ids() {
        let gid = |h: &str| group_id(&msg(h));
        assert_eq!(gid("Message-ID: <chat$group.4321dcba1234.S2571BC@x>").as_deref(), Some("4321dcba1234"));
        assert_eq!(
            gid("References: <chat$group.4321dcba1234.S2571BC@x> <b@y>\r\nMessage-ID: <plain@x>").as_deref(),
            Some("4321dcba1234")
        );
        assert_eq!(
            gid("References: <chat$group.ref.1@x>\r\nMessage-ID: <chat$group.mid.2@x>").as_deref(),
            Some("mid"),
            "Message-ID first"
        );
        assert_eq!(gid("Message-ID:\r\n <chat$group.abc.d@x>").as_deref(), Some("abc"));
        for h in [
            "Message-ID: <chat$group..x@y>",
            "Message-ID: <chat$group.noclosingdot@example.com>",
            "Message-ID: <chat$groupx.abc.d@x>",
            "Message-ID: <Chat$group.abc.d@x>",
            "Message-ID: <chat$abc.d@x>",
            "References: <b@y> <chat$group.abc.d@x>",
            "In-Reply-To: <chat$group.abc.d@x>",
            "Message-ID: <chat$group.a b.d@x>",
            "Message-ID: <chat$group.\u{1}.d@x>",
            "",
        ] {
            assert_eq!(gid(h), None, "{h:?}");
        }
        let long = "g".repeat(128);
        assert_eq!(gid(&format!("Message-ID: <chat$group.{long}.d@x>")), Some(long));
        assert_eq!(gid(&format!("Message-ID: <chat$group.{}.d@x>", "g".repeat(129))), None);
        assert_eq!(group_id(b"Message-ID: <chat$group.\xff\xfe.d@x>\r\n\r\n"), None);
        assert_eq!(gid("Message-ID: <chat$group.grüppe.d@x>").as_deref(), Some("grüppe"));
    }

    #[test]
    fn disposition_notifications() {
        for ct in [
            "Content-Type: multipart/report; report-type=disposition-notification; boundary=x",
            "Content-Type: Multipart/Report; report-type=delivery-status",
            "content-type:MULTIPART/REPORT",
            "Content-Type:\r\n multipart/report; boundary=x",
        ] {
            assert!(is_disposition_notification(&msg(ct)), "{ct}");
        }
        for ct in ["Content-Type: multipart/mixed", "Content-Type: text/plain", "Content-Type: multipart/repor", ""] {
            assert!(!is_disposition_notification(&msg(ct)), "{ct}");
        }
        assert!(!is_disposition_notification(b"Subject: x\r\n\r\nContent-Type: multipart/report\r\n"));
    }

    #[test]
    fn unfolding() {
        assert_eq!(unfold(b"  a\r\n b  \r\n"), b"a b");
        assert_eq!(unfold(b""), b"");
        assert_eq!(unfold(b" \r\n \t"), b"");
        assert_eq!(header_string(b"Subject: caf\xc3\xa9 \xff\r\n\r\n", "subject").unwrap(), "café \u{fffd}");
    }
}
