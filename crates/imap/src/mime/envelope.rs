//! ENVELOPE (RFC 3501 §7.4.2, RFC 9051 §7.5.2): built from the raw header,
//! so every string is the header text as sent (unfolded, encoded-words
//! still encoded), and written with the NIL rules of both RFCs.

use super::address::{self, Addr, Mailbox};
use super::header;
use crate::encode;

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct Envelope {
    pub date: Option<Vec<u8>>,
    pub subject: Option<Vec<u8>>,
    pub from: Vec<Addr>,
    /// `None` when absent or empty: then it is `from` on the wire.
    pub sender: Option<Vec<Addr>>,
    pub reply_to: Option<Vec<Addr>>,
    pub to: Vec<Addr>,
    pub cc: Vec<Addr>,
    pub bcc: Vec<Addr>,
    pub in_reply_to: Option<Vec<u8>>,
    pub message_id: Option<Vec<u8>>,
}

impl Envelope {
    /// The first occurrence of each field counts. A field that is present
    /// but empty is the empty string (not NIL) for date, subject,
    /// in-reply-to and message-id (RFC 9051 §7.5.2).
    pub(crate) fn from_header(h: &[u8]) -> Envelope {
        let text = |name| header::first(h, name).map(|f| header::unfold(f.value));
        let addrs = |name| header::first(h, name).map(|f| address::parse(&header::unfold(f.value)));
        Envelope {
            date: text("Date"),
            subject: text("Subject"),
            from: addrs("From").unwrap_or_default(),
            sender: addrs("Sender").filter(|a| !a.is_empty()),
            reply_to: addrs("Reply-To").filter(|a| !a.is_empty()),
            to: addrs("To").unwrap_or_default(),
            cc: addrs("Cc").unwrap_or_default(),
            bcc: addrs("Bcc").unwrap_or_default(),
            in_reply_to: text("In-Reply-To"),
            message_id: text("Message-ID"),
        }
    }

    /// `(date subject from sender reply-to to cc bcc in-reply-to message-id)`.
    /// With `utf8` (UTF8=ACCEPT or IMAP4rev2), UTF-8 strings may be quoted;
    /// otherwise 8-bit strings are literals, as are strings with CR or LF.
    pub(crate) fn write(&self, out: &mut Vec<u8>, utf8: bool) {
        out.push(b'(');
        nstring(out, self.date.as_deref(), utf8);
        out.push(b' ');
        nstring(out, self.subject.as_deref(), utf8);
        out.push(b' ');
        // RFC 3501 §7.4.2: sender and reply-to default to from.
        let sender = self.sender.as_deref().unwrap_or(&self.from);
        let reply_to = self.reply_to.as_deref().unwrap_or(&self.from);
        for list in [&self.from[..], sender, reply_to, &self.to, &self.cc, &self.bcc] {
            address_list(out, list, utf8);
            out.push(b' ');
        }
        nstring(out, self.in_reply_to.as_deref(), utf8);
        out.push(b' ');
        nstring(out, self.message_id.as_deref(), utf8);
        out.push(b')');
    }
}

pub(crate) fn nstring(out: &mut Vec<u8>, value: Option<&[u8]>, utf8: bool) {
    match value {
        Some(v) => encode::string(out, v, utf8),
        None => out.extend_from_slice(b"NIL"),
    }
}

/// `"(" 1*address ")"` or NIL for no address.
fn address_list(out: &mut Vec<u8>, list: &[Addr], utf8: bool) {
    if list.is_empty() {
        return out.extend_from_slice(b"NIL");
    }
    out.push(b'(');
    for a in list {
        match a {
            Addr::Mailbox(Mailbox { name, adl, mailbox, host }) => {
                out.push(b'(');
                nstring(out, name.as_deref(), utf8);
                out.push(b' ');
                nstring(out, adl.as_deref(), utf8);
                out.push(b' ');
                encode::string(out, mailbox, utf8);
                out.push(b' ');
                // NIL host means group syntax (RFC 3501 §7.4.2); a missing
                // domain is the empty string.
                encode::string(out, host, utf8);
                out.push(b')');
            }
            Addr::GroupStart(name) => {
                out.extend_from_slice(b"(NIL NIL ");
                encode::string(out, name, utf8);
                out.extend_from_slice(b" NIL)");
            }
            Addr::GroupEnd => out.extend_from_slice(b"(NIL NIL NIL NIL)"),
        }
    }
    out.push(b')');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(h: &str, utf8: bool) -> String {
        let mut out = Vec::new();
        Envelope::from_header(h.as_bytes()).write(&mut out, utf8);
        String::from_utf8_lossy(&out).into_owned()
    }

    #[test]
    fn nil_rules_and_defaults() {
        assert_eq!(env("", false), "(NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL)");
        assert_eq!(
            env("Subject:\r\nFrom: A <a@x>\r\nSender:\r\nMessage-ID: <1@x>\r\n\r\n", false),
            "(NIL \"\" ((\"A\" NIL \"a\" \"x\")) ((\"A\" NIL \"a\" \"x\")) ((\"A\" NIL \"a\" \"x\")) NIL NIL NIL NIL \"<1@x>\")"
        );
        assert_eq!(
            env(
                "From: a@x\r\nSender: s@x\r\nReply-To: r@x\r\nTo: g:;\r\nSubject: two\r\n  lines\r\nSubject: no\r\n",
                false
            ),
            "(NIL \"two  lines\" ((NIL NIL \"a\" \"x\")) ((NIL NIL \"s\" \"x\")) ((NIL NIL \"r\" \"x\")) \
             ((NIL NIL \"g\" NIL)(NIL NIL NIL NIL)) NIL NIL NIL NIL)"
        );
    }

    #[test]
    fn raw_strings_quoted_or_literal() {
        let h = "Subject: =?utf-8?q?caf=C3=A9?= \"q\"\r\nFrom: J\u{fc}rgen <j@x>\r\n";
        let seven_bit = env(h, false);
        assert!(
            seven_bit.starts_with("(NIL \"=?utf-8?q?caf=C3=A9?= \\\"q\\\"\" (({7}\r\nJ\u{fc}rgen NIL \"j\" \"x\")) "),
            "{seven_bit}"
        );
        assert!(env(h, true).contains("((\"J\u{fc}rgen\" NIL \"j\" \"x\"))"));
    }
}
