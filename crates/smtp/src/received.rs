//! Trace header fields prepended to every accepted message: `Return-Path`
//! (RFC 5321 §4.4) and `Received` (RFC 5321 §4.4, RFC 5322 §3.6.7), with the
//! protocol keyword from RFC 3848 / RFC 6531 and the TLS parameters as a
//! comment.
//!
//! On submission listeners the client's IP address is left out of
//! `Received` (it would publish the user's location); on MX it is included.

use crate::io::TlsInfo;

/// What the Received header says about the session.
#[derive(Debug, Clone)]
pub struct Trace<'a> {
    /// The EHLO/HELO argument as the client sent it.
    pub helo: &'a str,
    pub esmtp: bool,
    /// The client IP to record (`None` on submission).
    pub peer_ip: Option<std::net::IpAddr>,
    /// Our hostname.
    pub by: &'a str,
    pub tls: Option<&'a TlsInfo>,
    pub authenticated: bool,
    pub smtputf8: bool,
    pub id: &'a str,
    /// The recipient, when there is exactly one.
    pub for_rcpt: Option<&'a str>,
    /// Reverse path; empty for the null sender.
    pub sender: &'a str,
    pub now_unix: i64,
}

/// RFC 3848 / RFC 6531 `with` keyword: (UTF8)SMTP or ESMTP, +S for TLS, +A for auth.
fn protocol(t: &Trace<'_>) -> String {
    let mut p = String::from(match (t.smtputf8, t.esmtp) {
        (true, _) => "UTF8SMTP",
        (false, true) => "ESMTP",
        (false, false) => "SMTP",
    });
    if t.tls.is_some() {
        p.push('S');
    }
    if t.authenticated {
        p.push('A');
    }
    p
}

/// Keeps a client-supplied name from breaking the header's syntax.
fn sanitize(name: &str) -> String {
    let s: String = name
        .chars()
        .filter(|c| c.is_alphanumeric() || matches!(c, '.' | '-' | '_' | ':' | '[' | ']'))
        .take(255)
        .collect();
    if s.is_empty() { "unknown".to_owned() } else { s }
}

/// The message without its first field if that is `Return-Path` (which
/// only final delivery adds, RFC 5321 §4.4): what a relay passes on.
pub fn without_return_path(message: &[u8]) -> &[u8] {
    if !message.starts_with(b"Return-Path:") {
        return message;
    }
    match message.windows(2).position(|w| w == b"\r\n") {
        Some(end) => &message[end + 2..],
        None => message,
    }
}

/// `Return-Path` and `Received`, each ending in CRLF, folded with tabs.
pub fn trace_headers(t: &Trace<'_>) -> Vec<u8> {
    let mut h = format!("Return-Path: <{}>\r\n", t.sender);
    h.push_str("Received: from ");
    h.push_str(&sanitize(t.helo));
    if let Some(ip) = t.peer_ip {
        match ip {
            std::net::IpAddr::V4(v4) => h.push_str(&format!(" ([{v4}])")),
            std::net::IpAddr::V6(v6) => h.push_str(&format!(" ([IPv6:{v6}])")),
        }
    }
    h.push_str(&format!("\r\n\tby {} with {} id {}", sanitize(t.by), protocol(t), t.id));
    if let Some(tls) = t.tls {
        h.push_str(&format!("\r\n\t(version={} cipher={})", tls.version, tls.cipher));
    }
    if let Some(rcpt) = t.for_rcpt {
        h.push_str(&format!("\r\n\tfor <{rcpt}>"));
    }
    h.push_str(&format!(";\r\n\t{}\r\n", rfc5322_date(t.now_unix)));
    h.into_bytes()
}

/// RFC 5322 §3.3 date-time in UTC, e.g. `Thu, 1 Jan 1970 00:00:00 +0000`.
pub fn rfc5322_date(unix: i64) -> String {
    mail_parser::DateTime::from_timestamp(unix).to_rfc822()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        assert_eq!(rfc5322_date(0), "Thu, 1 Jan 1970 00:00:00 +0000");
        assert_eq!(rfc5322_date(951_782_400), "Tue, 29 Feb 2000 00:00:00 +0000");
        assert_eq!(rfc5322_date(1_700_000_000), "Tue, 14 Nov 2023 22:13:20 +0000");
        assert_eq!(rfc5322_date(4_133_980_799), "Fri, 31 Dec 2100 23:59:59 +0000");
        assert_eq!(rfc5322_date(4_107_542_399), "Sun, 28 Feb 2100 23:59:59 +0000");
        assert_eq!(rfc5322_date(-1), "Wed, 31 Dec 1969 23:59:59 +0000");
    }

    #[test]
    fn received_header() {
        let tls = TlsInfo { version: "TLSv1.3".into(), cipher: "TLS13_AES_128_GCM_SHA256".into() };
        let t = Trace {
            helo: "client.example (evil);",
            esmtp: true,
            peer_ip: Some("192.0.2.7".parse().unwrap()),
            by: "mx.example.org",
            tls: Some(&tls),
            authenticated: false,
            smtputf8: false,
            id: "abc.1",
            for_rcpt: Some("bob@example.org"),
            sender: "alice@example.net",
            now_unix: 0,
        };
        let h = String::from_utf8(trace_headers(&t)).unwrap();
        assert_eq!(
            h,
            "Return-Path: <alice@example.net>\r\nReceived: from client.exampleevil ([192.0.2.7])\r\n\t\
             by mx.example.org with ESMTPS id abc.1\r\n\t(version=TLSv1.3 cipher=TLS13_AES_128_GCM_SHA256)\r\n\t\
             for <bob@example.org>;\r\n\tThu, 1 Jan 1970 00:00:00 +0000\r\n"
        );
        let sub = Trace { peer_ip: None, tls: None, authenticated: true, for_rcpt: None, ..t };
        let h = String::from_utf8(trace_headers(&sub)).unwrap();
        assert!(h.contains("from client.exampleevil\r\n\tby mx.example.org with ESMTPA id abc.1;"), "{h}");
        let relayed = without_return_path(h.as_bytes());
        assert!(relayed.starts_with(b"Received: from client.exampleevil\r\n"));
        assert_eq!(without_return_path(b"Subject: x\r\n"), b"Subject: x\r\n");
    }
}
