//! RFC 3464 delivery status notifications (bounces), built with mail-builder.
//!
//! `multipart/report; report-type=delivery-status` (RFC 6522) with three
//! parts: a human-readable explanation, the `message/delivery-status`
//! fields (one per-message group, one group per failed recipient), and the
//! original message — whole as `message/rfc822`, or only its header as
//! `text/rfc822-headers` when the sender asked for `RET=HDRS`
//! (RFC 3461 §4.3). Bounces come from the null sender (`Return-Path: <>`)
//! and say `Auto-Submitted: auto-replied` (RFC 3834) so nothing answers them.

use crate::DeliveryError;
use coimail_store::spool::{DsnRet, SpoolEntry, SpoolRecipient};
use mail_builder::MessageBuilder;
use mail_builder::headers::address::Address;
use mail_builder::headers::content_type::ContentType;
use mail_builder::headers::raw::Raw;
use mail_builder::mime::{BodyPart, MimePart};

/// What a bounce reports.
pub struct Bounce<'a> {
    /// Our host name (Reporting-MTA, From, Message-ID).
    pub hostname: &'a str,
    pub entry: &'a SpoolEntry,
    /// The recipients that failed, with their last reply.
    pub failed: &'a [SpoolRecipient],
    /// The queued message, if it could be read.
    pub original: Option<&'a [u8]>,
    pub now: i64,
}

use crate::rfc5322_date as date;

/// The RFC 3463 status in a reply (`550 5.1.1 ...` → `5.1.1`), or a generic one.
pub fn status_of(reply: &str) -> String {
    let found = reply.split_whitespace().take(3).find(|token| {
        let parts: Vec<&str> = token.split('.').collect();
        parts.len() == 3
            && matches!(parts[0], "2" | "4" | "5")
            && parts[1..].iter().all(|p| (1..=3).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_digit()))
    });
    found.map_or_else(|| "5.0.0".to_owned(), str::to_owned)
}

/// The `message/delivery-status` body.
fn delivery_status(b: &Bounce<'_>) -> String {
    let mut s = format!("Reporting-MTA: dns; {}\r\n", b.hostname);
    if let Some(id) = &b.entry.env_id {
        s.push_str(&format!("Original-Envelope-Id: {}\r\n", one_line(id)));
    }
    s.push_str(&format!("Arrival-Date: {}\r\n", date(b.entry.queued_at)));
    for r in b.failed {
        s.push_str("\r\n");
        if let Some(orcpt) = &r.orcpt {
            s.push_str(&format!("Original-Recipient: rfc822;{}\r\n", one_line(orcpt)));
        }
        s.push_str(&format!("Final-Recipient: rfc822;{}\r\n", r.address));
        s.push_str("Action: failed\r\n");
        let reply = r.last_reply.as_deref().unwrap_or("550 5.0.0 delivery failed");
        s.push_str(&format!("Status: {}\r\n", status_of(reply)));
        if let Some(host) = &r.remote_host {
            s.push_str(&format!("Remote-MTA: dns; {host}\r\n"));
        }
        s.push_str(&format!("Diagnostic-Code: smtp; {}\r\n", one_line(reply)));
        s.push_str(&format!("Last-Attempt-Date: {}\r\n", date(b.now)));
    }
    s
}

fn one_line(s: &str) -> String {
    s.replace(['\r', '\n'], " ")
}

fn explanation(b: &Bounce<'_>) -> String {
    let mut s = format!(
        "This is the mail system at {}.\r\n\r\nYour message could not be delivered to one or more \
         recipients. It has been returned below.\r\n\r\n",
        b.hostname
    );
    for r in b.failed {
        let reply = r.last_reply.as_deref().unwrap_or("delivery failed");
        s.push_str(&format!("<{}>: {}\r\n", r.address, one_line(reply)));
    }
    s
}

/// The header section of a message (up to and including the empty line).
fn header_section(message: &[u8]) -> &[u8] {
    match message.windows(4).position(|w| w == b"\r\n\r\n") {
        Some(i) => &message[..i + 4],
        None => message,
    }
}

/// Builds the bounce for `b.failed`, addressed to the entry's sender.
pub fn build(b: &Bounce<'_>) -> Result<Vec<u8>, DeliveryError> {
    let mut parts = vec![
        MimePart::new("text/plain", explanation(b)),
        MimePart::new("message/delivery-status", BodyPart::Binary(delivery_status(b).into_bytes().into()))
            .transfer_encoding("7bit"),
    ];
    if let Some(original) = b.original {
        let encoding = if original.is_ascii() { "7bit" } else { "8bit" };
        let part = match b.entry.ret {
            Some(DsnRet::Headers) => {
                MimePart::new("text/rfc822-headers", BodyPart::Binary(header_section(original).into()))
            }
            _ => MimePart::new("message/rfc822", BodyPart::Binary(original.into())),
        };
        parts.push(part.transfer_encoding(encoding));
    }
    let report = ContentType::new("multipart/report").attribute("report-type", "delivery-status");
    let id = format!("dsn.{}.{}@{}", b.entry.id, b.now, b.hostname);
    MessageBuilder::new()
        .header("Return-Path", Raw::new("<>"))
        .from(Address::new_address(Some("Mail Delivery System"), format!("MAILER-DAEMON@{}", b.hostname)))
        .to(Address::new_address(None::<&str>, b.entry.sender.clone()))
        .subject("Undelivered Mail Returned to Sender")
        .date(b.now)
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
        let dsn = build(&Bounce {
            hostname: "mail.a.test",
            entry: &e,
            failed: &e.recipients,
            original: Some(ORIGINAL),
            now: 60,
        })
        .unwrap();
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
        let dsn = build(&Bounce { hostname: "h", entry: &e, failed: &e.recipients, original: Some(ORIGINAL), now: 0 })
            .unwrap();
        let text = String::from_utf8(dsn).unwrap();
        assert!(text.contains("Content-Type: text/rfc822-headers"), "{text}");
        assert!(text.contains("Subject: hello") && !text.contains("secret body"), "{text}");
    }
}
