//! RFC 3464 delivery status notifications, built with mail-builder.
//!
//! `multipart/report; report-type=delivery-status` (RFC 6522) with three
//! parts: a human-readable explanation, the `message/delivery-status`
//! fields (one per-message group, one group per recipient reported), and
//! the original message. One report speaks of one [`Action`]:
//! - `failed` (a bounce) returns the whole message as `message/rfc822`, or
//!   only its header as `text/rfc822-headers` when the sender asked for
//!   `RET=HDRS` (RFC 3461 §4.3);
//! - `delayed`, `delivered` and `relayed` return only the header, whatever
//!   RET says (as Postfix does): the sender still has the message, and the
//!   header is enough to tell which one it was.
//!
//! A returned header is only the lines that are header fields, at most
//! [`HEADER_CAP`] octets of them ([`header_section`]): a report is never a
//! way to have a message of one's own mailed to someone else.
//!
//! Reports come from the null sender (`Return-Path: <>`) and say
//! `Auto-Submitted: auto-replied` (RFC 3834) so nothing answers them.

use crate::DeliveryError;
use coimail_store::spool::{DsnRet, SpoolEntry, SpoolRecipient};
use mail_builder::MessageBuilder;
use mail_builder::headers::address::Address;
use mail_builder::headers::content_type::ContentType;
use mail_builder::headers::raw::Raw;
use mail_builder::mime::{BodyPart, MimePart};

/// RFC 3464 §2.3.3 `Action`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Failed,
    Delayed,
    /// Put into the recipient's mailbox here.
    Delivered,
    /// Handed to a server that does not pass DSN requests on.
    Relayed,
}

impl Action {
    fn field(self) -> &'static str {
        match self {
            Action::Failed => "failed",
            Action::Delayed => "delayed",
            Action::Delivered => "delivered",
            Action::Relayed => "relayed",
        }
    }

    /// The status when a reply carries none.
    fn default_status(self) -> &'static str {
        match self {
            Action::Failed => "5.0.0",
            Action::Delayed => "4.0.0",
            Action::Delivered | Action::Relayed => "2.0.0",
        }
    }

    fn subject(self) -> &'static str {
        match self {
            Action::Failed => "Undelivered Mail Returned to Sender",
            Action::Delayed => "Delayed Mail (still being retried)",
            Action::Delivered | Action::Relayed => "Successful Mail Delivery Report",
        }
    }
}

/// What a report says.
pub struct Report<'a> {
    /// Our host name (Reporting-MTA, From, Message-ID).
    pub hostname: &'a str,
    pub action: Action,
    /// The message's envelope: sender, ENVID, RET, arrival (`queued_at`), id.
    pub entry: &'a SpoolEntry,
    /// The recipients reported, with their last reply and server.
    pub recipients: &'a [SpoolRecipient],
    /// The queued message, if it could be read.
    pub original: Option<&'a [u8]>,
    pub now: i64,
    /// `delayed`: when we give up (Will-Retry-Until).
    pub retry_until: Option<i64>,
}

use crate::rfc5322_date as date;

/// The RFC 3463 status in a reply (`550 5.1.1 ...` → `5.1.1`).
fn status_in(reply: &str) -> Option<&str> {
    reply.split_whitespace().take(3).find(|token| {
        let parts: Vec<&str> = token.split('.').collect();
        parts.len() == 3
            && matches!(parts[0], "2" | "4" | "5")
            && parts[1..].iter().all(|p| (1..=3).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_digit()))
    })
}

/// The RFC 3463 status in a failure reply, or a generic one.
pub fn status_of(reply: &str) -> String {
    status_in(reply).unwrap_or("5.0.0").to_owned()
}

/// The `message/delivery-status` body.
fn delivery_status(r: &Report<'_>) -> String {
    let mut s = format!("Reporting-MTA: dns; {}\r\n", r.hostname);
    if let Some(id) = &r.entry.env_id {
        s.push_str(&format!("Original-Envelope-Id: {}\r\n", one_line(id)));
    }
    s.push_str(&format!("Arrival-Date: {}\r\n", date(r.entry.queued_at)));
    for rcpt in r.recipients {
        s.push_str("\r\n");
        if let Some(orcpt) = &rcpt.orcpt {
            s.push_str(&format!("Original-Recipient: rfc822;{}\r\n", one_line(orcpt)));
        }
        s.push_str(&format!("Final-Recipient: rfc822;{}\r\n", rcpt.address));
        s.push_str(&format!("Action: {}\r\n", r.action.field()));
        let reply = rcpt.last_reply.as_deref();
        let status = reply.and_then(status_in).unwrap_or(r.action.default_status());
        s.push_str(&format!("Status: {status}\r\n"));
        if let Some(host) = &rcpt.remote_host {
            s.push_str(&format!("Remote-MTA: dns; {host}\r\n"));
        }
        match (reply, r.action) {
            (Some(reply), _) => s.push_str(&format!("Diagnostic-Code: smtp; {}\r\n", one_line(reply))),
            (None, Action::Failed) => s.push_str("Diagnostic-Code: smtp; 550 5.0.0 delivery failed\r\n"),
            (None, _) => {}
        }
        s.push_str(&format!("Last-Attempt-Date: {}\r\n", date(r.now)));
        if let Some(until) = r.retry_until {
            s.push_str(&format!("Will-Retry-Until: {}\r\n", date(until)));
        }
    }
    s
}

fn one_line(s: &str) -> String {
    s.replace(['\r', '\n'], " ")
}

fn explanation(r: &Report<'_>) -> String {
    let what = match r.action {
        Action::Failed => {
            "Your message could not be delivered to one or more recipients. It has been returned below.".to_owned()
        }
        Action::Delayed => format!(
            "Your message could not be delivered to one or more recipients yet. The mail system will keep \
             trying{}; you do not need to send it again.",
            r.retry_until.map(|t| format!(" until {}", date(t))).unwrap_or_default()
        ),
        Action::Delivered => "Your message was delivered to the mailbox of the recipients below.".to_owned(),
        Action::Relayed => "Your message was handed to the mail servers of the recipients below. Those servers \
                            do not send delivery notifications: you may hear nothing more about it."
            .to_owned(),
    };
    let mut s = format!("This is the mail system at {}.\r\n\r\n{what}\r\n\r\n", r.hostname);
    for rcpt in r.recipients {
        match rcpt.last_reply.as_deref() {
            Some(reply) => s.push_str(&format!("<{}>: {}\r\n", rcpt.address, one_line(reply))),
            None => s.push_str(&format!("<{}>\r\n", rcpt.address)),
        }
    }
    s
}

/// Most octets of the original header a report returns.
pub const HEADER_CAP: usize = 16 * 1024;

/// The header section of `message` as a report returns it: its lines up to
/// and including the empty line that ends it, but stopping before the first
/// line that is neither a header field nor the continuation of one, and
/// within [`HEADER_CAP`] octets, cut at a line end. Reports can be made to go
/// to an address of someone else's choosing, so a message without an empty
/// line (all "header" by RFC 5322) must not come back whole: only the lines
/// that look like header fields do, at most 16 KiB of them.
pub(crate) fn header_section(message: &[u8]) -> &[u8] {
    let scope = &message[..message.len().min(HEADER_CAP)];
    let mut end = 0;
    while let Some(len) = scope[end..].windows(2).position(|w| w == b"\r\n") {
        let line = &scope[end..end + len];
        let next = end + len + 2;
        if line.is_empty() {
            return &message[..next];
        }
        let continuation = end > 0 && matches!(line[0], b' ' | b'\t');
        if !continuation && !is_field(line) {
            break;
        }
        end = next;
    }
    &message[..end]
}

/// `name:` with a name of printable ASCII other than `:` (RFC 5322 §2.2;
/// white space before the colon is the obsolete syntax of §4.5).
fn is_field(line: &[u8]) -> bool {
    let Some(colon) = line.iter().position(|&b| b == b':') else { return false };
    let name = line[..colon].trim_ascii_end();
    !name.is_empty() && name.iter().all(|&b| (33..=126).contains(&b))
}

/// Builds the report, addressed to the entry's sender.
pub fn build(r: &Report<'_>) -> Result<Vec<u8>, DeliveryError> {
    let mut parts = vec![
        MimePart::new("text/plain", explanation(r)),
        MimePart::new("message/delivery-status", BodyPart::Binary(delivery_status(r).into_bytes().into()))
            .transfer_encoding("7bit"),
    ];
    if let Some(original) = r.original {
        let whole = r.action == Action::Failed && r.entry.ret != Some(DsnRet::Headers);
        let returned = if whole { original } else { header_section(original) };
        let encoding = if returned.is_ascii() { "7bit" } else { "8bit" };
        let part = if whole {
            MimePart::new("message/rfc822", BodyPart::Binary(returned.into()))
        } else {
            MimePart::new("text/rfc822-headers", BodyPart::Binary(returned.into()))
        };
        parts.push(part.transfer_encoding(encoding));
    }
    let report = ContentType::new("multipart/report").attribute("report-type", "delivery-status");
    let id = format!("dsn.{}.{}.{}@{}", r.entry.id, r.action.field(), r.now, r.hostname);
    MessageBuilder::new()
        .header("Return-Path", Raw::new("<>"))
        .from(Address::new_address(Some("Mail Delivery System"), format!("MAILER-DAEMON@{}", r.hostname)))
        .to(Address::new_address(None::<&str>, r.entry.sender.clone()))
        .subject(r.action.subject())
        .date(r.now)
        .message_id(id)
        .header("Auto-Submitted", Raw::new("auto-replied"))
        .body(MimePart::new(report, BodyPart::Multipart(parts)))
        .write_to_vec()
        .map_err(|e| DeliveryError::Dsn(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use coimail_store::spool::{RecipientState, SpoolEntry};

    fn entry(ret: Option<DsnRet>) -> SpoolEntry {
        let mut failed = SpoolRecipient::new("nobody@b.test", Some("Nobody@B.test".into()), None);
        failed.state = RecipientState::Failed;
        failed.last_reply = Some("550 5.1.1 no such user here".into());
        failed.remote_host = Some("mx.b.test".into());
        SpoolEntry {
            id: 7,
            sender: "alice@a.test".into(),
            env_id: Some("env 42".into()),
            ret,
            queued_at: 0,
            size: 10,
            recipients: vec![failed],
            attempts: 1,
            next_attempt: 0,
            lease_until: 0,
            history: vec![],
        }
    }

    fn report(e: &SpoolEntry, action: Action) -> Report<'_> {
        Report {
            hostname: "mail.a.test",
            action,
            entry: e,
            recipients: &e.recipients,
            original: Some(ORIGINAL),
            now: 60,
            retry_until: (action == Action::Delayed).then_some(432_000),
        }
    }

    const ORIGINAL: &[u8] = b"From: alice@a.test\r\nSubject: hello\r\n\r\nsecret body\r\n";

    #[test]
    fn status_codes_come_from_the_reply() {
        assert_eq!(status_of("550 5.1.1 no such user"), "5.1.1");
        assert_eq!(status_of("451 4.4.7 delivery time expired; last error: 421 4.4.1 x"), "4.4.7");
        assert_eq!(status_of("554 rejected"), "5.0.0");
        assert_eq!(status_of("550 1.2.3 x"), "5.0.0");
    }

    #[test]
    fn bounce_is_an_rfc3464_report() {
        let e = entry(None);
        let dsn = build(&report(&e, Action::Failed)).unwrap();
        let text = String::from_utf8(dsn.clone()).unwrap();
        assert!(text.starts_with("Return-Path: <>\r\n"), "{text}");
        assert!(text.contains("Auto-Submitted: auto-replied\r\n"), "{text}");
        let parsed = mail_parser::MessageParser::default().parse(&dsn).unwrap();
        use mail_parser::MimeHeaders;
        let ct = parsed.root_part().content_type().unwrap();
        assert_eq!((ct.ctype(), ct.subtype()), ("multipart", Some("report")));
        assert_eq!(ct.attribute("report-type"), Some("delivery-status"));
        assert_eq!(parsed.parts.len(), 4, "the report and its three parts");
        assert_eq!(parsed.to().unwrap().first().unwrap().address(), Some("alice@a.test"));
        for field in [
            "Reporting-MTA: dns; mail.a.test",
            "Original-Envelope-Id: env 42",
            "Original-Recipient: rfc822;Nobody@B.test",
            "Final-Recipient: rfc822;nobody@b.test",
            "Action: failed",
            "Status: 5.1.1",
            "Remote-MTA: dns; mx.b.test",
            "Diagnostic-Code: smtp; 550 5.1.1 no such user here",
        ] {
            assert!(text.contains(&format!("{field}\r\n")), "missing {field:?} in {text}");
        }
        assert!(text.contains("Content-Type: message/rfc822"), "{text}");
        assert!(text.contains("secret body"), "RET unset returns the whole message");
    }

    #[test]
    fn ret_hdrs_returns_only_the_header() {
        let e = entry(Some(DsnRet::Headers));
        let dsn = build(&report(&e, Action::Failed)).unwrap();
        let text = String::from_utf8(dsn).unwrap();
        assert!(text.contains("Content-Type: text/rfc822-headers"), "{text}");
        assert!(text.contains("Subject: hello") && !text.contains("secret body"), "{text}");
    }

    /// A message without an empty line is all header to RFC 5322; a report
    /// must still not carry its text to whoever the report goes to.
    #[test]
    fn only_header_fields_come_back_and_at_most_16_kib_of_them() {
        let spam = b"Subject: hi\r\nBuy cheap pills at http://spam.example\r\nmore spam\r\n";
        assert_eq!(header_section(spam), b"Subject: hi\r\n");
        assert_eq!(header_section(b"no header at all, just text\r\n\r\nx"), b"");
        assert_eq!(header_section(b"Subject: x\r\n  folded\r\n\r\nbody"), b"Subject: x\r\n  folded\r\n\r\n");
        assert_eq!(header_section(b" leading fold\r\n"), b"", "a continuation of nothing");
        assert_eq!(header_section(b"Subject: unterminated"), b"");
        let mut huge = Vec::new();
        for i in 0..10_000 {
            huge.extend_from_slice(format!("X-Spam-{i}: {}\r\n", "y".repeat(40)).as_bytes());
        }
        huge.extend_from_slice(b"\r\nbody\r\n");
        let h = header_section(&huge);
        assert!(h.len() <= HEADER_CAP && h.len() > HEADER_CAP - 100, "{}", h.len());
        assert!(h.ends_with(b"\r\n") && h.starts_with(b"X-Spam-0: "));

        let e = entry(Some(DsnRet::Full));
        let mut r = report(&e, Action::Delivered);
        r.original = Some(spam);
        let text = String::from_utf8(build(&r).unwrap()).unwrap();
        assert!(text.contains("Subject: hi") && !text.contains("spam.example"), "{text}");
    }

    #[test]
    fn delayed_delivered_and_relayed_reports() {
        let mut e = entry(Some(DsnRet::Full));
        e.recipients[0].state = RecipientState::Pending;
        e.recipients[0].last_reply = Some("451 4.4.1 mx.b.test[127.0.0.3]: connection refused".into());
        let text = String::from_utf8(build(&report(&e, Action::Delayed)).unwrap()).unwrap();
        for field in [
            "Subject: Delayed Mail (still being retried)",
            "Action: delayed\r\nStatus: 4.4.1\r\n",
            "Will-Retry-Until: Tue, 6 Jan 1970 00:00:00 +0000\r\n",
            "Content-Type: text/rfc822-headers",
        ] {
            assert!(text.contains(field), "missing {field:?} in {text}");
        }
        assert!(!text.contains("secret body"), "delay reports return only the header, even with RET=FULL");

        e.recipients[0].state = RecipientState::Delivered;
        e.recipients[0].last_reply = Some("250 2.6.0 queued as 42".into());
        let text = String::from_utf8(build(&report(&e, Action::Relayed)).unwrap()).unwrap();
        assert!(text.contains("Subject: Successful Mail Delivery Report"), "{text}");
        assert!(text.contains("Action: relayed\r\nStatus: 2.6.0\r\nRemote-MTA: dns; mx.b.test\r\n"), "{text}");
        assert!(!text.contains("Will-Retry-Until") && !text.contains("secret body"), "{text}");

        e.recipients[0].last_reply = None;
        e.recipients[0].remote_host = None;
        let text = String::from_utf8(build(&report(&e, Action::Delivered)).unwrap()).unwrap();
        assert!(text.contains("Action: delivered\r\nStatus: 2.0.0\r\nLast-Attempt-Date"), "{text}");
        assert!(!text.contains("Diagnostic-Code"), "{text}");
    }
}
