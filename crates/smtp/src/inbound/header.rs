//! The `Authentication-Results` header field (RFC 8601): the one we write,
//! and the ones claiming to be ours that arrived with the message.
//!
//! Ours names the host as authserv-id and has one result per method in a
//! fixed order: iprev, spf (HELO), spf (MAIL FROM), dkim (one per
//! signature, or `none`), arc, dmarc. The per-method text comes from
//! mail-auth's writer (it quotes and sanitizes client-supplied values);
//! this file only puts the pieces together.
//!
//! RFC 8601 §5: a field carrying our authserv-id that we did not write is a
//! forgery meant to fool the user's client, so every such field in the
//! message's header section is removed before ours is added. Fields of
//! other authserv-ids are kept (they are another host's record).

use super::Results;
use mail_auth::AuthenticationResults;
use std::net::IpAddr;
use std::ops::Range;

/// The session facts the header reports.
pub(crate) struct Identities<'a> {
    pub ip: IpAddr,
    pub helo: &'a str,
    /// Reverse path; empty for `<>`.
    pub mail_from: &'a str,
}

/// Our `Authentication-Results` field, CRLF-terminated.
pub(crate) fn write(authserv_id: &str, r: &Results<'_>, id: &Identities<'_>) -> String {
    // Each builder renders "<authserv-id>;\r\n\t<method>=..."; we keep what follows the id.
    let part = |ar: AuthenticationResults<'_>| {
        let text = ar.to_string();
        text.strip_prefix(authserv_id).map(str::to_owned).unwrap_or_default()
    };
    let new = || AuthenticationResults::new(authserv_id);
    let mut h = format!("Authentication-Results: {authserv_id}");
    h.push_str(&part(new().with_iprev_result(&r.iprev, id.ip)));
    h.push_str(&part(new().with_spf_ehlo_result(&r.spf_helo, id.ip, id.helo)));
    h.push_str(&part(new().with_spf_mailfrom_result(&r.spf_mail_from, id.ip, id.mail_from, id.helo)));
    if r.dkim.is_empty() {
        h.push_str(";\r\n\tdkim=none");
    } else {
        h.push_str(&part(new().with_dkim_results(&r.dkim, r.header_from)));
    }
    h.push_str(&part(new().with_arc_result(&r.arc, id.ip)));
    if r.dmarc.domain().is_empty() {
        // No single From domain to evaluate (none, or several): DMARC does not apply.
        h.push_str(";\r\n\tdmarc=none");
    } else {
        h.push_str(&part(new().with_dmarc_result(&r.dmarc)));
    }
    h.push_str("\r\n");
    h
}

/// The octet ranges of `message`'s header fields named
/// `Authentication-Results` whose authserv-id is `ours` (ASCII case
/// ignored), each with its folded lines and final CRLF, in order.
pub(crate) fn forged(message: &[u8], ours: &str) -> Vec<Range<usize>> {
    let mut out = Vec::new();
    let mut at = 0;
    while at < message.len() && !message[at..].starts_with(b"\r\n") {
        let end = field_end(message, at);
        if let Some(value) = field_value(&message[at..end], b"authentication-results")
            && authserv_id(value).is_some_and(|id| id.eq_ignore_ascii_case(ours.as_bytes()))
        {
            out.push(at..end);
        }
        at = end;
    }
    out
}

/// Removes the fields [`forged`] finds; returns how many there were.
pub(crate) fn remove_forged(message: &mut Vec<u8>, start: usize, ours: &str) -> usize {
    let ranges = forged(message.get(start..).unwrap_or_default(), ours);
    for r in ranges.iter().rev() {
        message.drain(start + r.start..start + r.end);
    }
    ranges.len()
}

/// Where the field starting at `start` ends: after the CRLF of its last
/// line (continuation lines start with a space or tab), or at the end.
fn field_end(message: &[u8], start: usize) -> usize {
    let mut at = start;
    loop {
        match message[at..].windows(2).position(|w| w == b"\r\n") {
            None => return message.len(),
            Some(i) => at += i + 2,
        }
        if !matches!(message.get(at), Some(b' ' | b'\t')) {
            return at;
        }
    }
}

/// The value of `field` if its name is `name` (lower case).
fn field_value<'a>(field: &'a [u8], name: &[u8]) -> Option<&'a [u8]> {
    let colon = field.iter().position(|&b| b == b':')?;
    let (n, rest) = field.split_at(colon);
    n.trim_ascii_end().eq_ignore_ascii_case(name).then(|| rest.get(1..).unwrap_or_default())
}

/// RFC 8601 §2.2: the authserv-id, after leading whitespace and comments.
fn authserv_id(value: &[u8]) -> Option<&[u8]> {
    let mut i = 0;
    let mut depth = 0usize;
    while let Some(&b) = value.get(i) {
        match b {
            b'(' => depth += 1,
            b')' if depth > 0 => depth -= 1,
            b' ' | b'\t' | b'\r' | b'\n' => {}
            _ if depth > 0 => {}
            _ => break,
        }
        i += 1;
    }
    let rest = value.get(i..)?;
    let len = rest.iter().position(|b| matches!(b, b';' | b' ' | b'\t' | b'\r' | b'\n' | b'(')).unwrap_or(rest.len());
    (len > 0).then(|| &rest[..len])
}

#[cfg(test)]
mod tests {
    use super::*;
    use mail_auth::{ArcOutput, DkimOutput, DmarcOutput, IprevOutput, IprevResult, SpfOutput, SpfResult};

    const OURS: &str = "mx.example.org";

    #[test]
    fn forged_results_of_our_id_are_found_with_their_folded_lines() {
        let m = b"Received: x\r\nAuthentication-Results: MX.example.org;\r\n\tdkim=pass header.d=example.org\r\n\
                  Authentication-Results: other.example; spf=pass\r\n\
                  authentication-results : (comment (nested)) mx.example.org 1; none\r\n\
                  Authentication-Results: mx.example.org.evil; none\r\n\
                  Subject: Authentication-Results: mx.example.org; none\r\n\r\n\
                  Authentication-Results: mx.example.org; in the body\r\n";
        let text = |r: &Range<usize>| String::from_utf8_lossy(&m[r.clone()]).into_owned();
        let found: Vec<String> = forged(m, OURS).iter().map(text).collect();
        assert_eq!(
            found,
            [
                "Authentication-Results: MX.example.org;\r\n\tdkim=pass header.d=example.org\r\n",
                "authentication-results : (comment (nested)) mx.example.org 1; none\r\n",
            ]
        );
        let mut v = m.to_vec();
        v.splice(0..0, b"Return-Path: <a@b>\r\n".iter().copied());
        assert_eq!(remove_forged(&mut v, 20, OURS), 2);
        assert_eq!(
            String::from_utf8(v).unwrap(),
            "Return-Path: <a@b>\r\nReceived: x\r\nAuthentication-Results: other.example; spf=pass\r\n\
             Authentication-Results: mx.example.org.evil; none\r\n\
             Subject: Authentication-Results: mx.example.org; none\r\n\r\n\
             Authentication-Results: mx.example.org; in the body\r\n"
        );
    }

    #[test]
    fn no_header_section_or_no_final_crlf_is_handled() {
        assert!(forged(b"", OURS).is_empty());
        assert!(forged(b"\r\nAuthentication-Results: mx.example.org; x\r\n", OURS).is_empty(), "all body");
        assert_eq!(forged(b"Authentication-Results: mx.example.org", OURS), vec![Range { start: 0, end: 38 }]);
        assert!(forged(b"Authentication-Results:", OURS).is_empty(), "no id at all");
        assert!(forged(b"Authentication-Results: (unclosed mx.example.org\r\n", OURS).is_empty());
    }

    #[test]
    fn our_header_has_every_method_in_order() {
        let ip: IpAddr = "192.0.2.7".parse().unwrap();
        let results = Results {
            iprev: IprevOutput { result: IprevResult::None, ptr: None },
            spf_helo: SpfOutput::new("client.example".into()).with_result(SpfResult::None),
            spf_mail_from: SpfOutput::new("example.net".into()).with_result(SpfResult::Pass),
            dkim: Vec::<DkimOutput<'_>>::new(),
            arc: ArcOutput::default(),
            dmarc: DmarcOutput::default(),
            header_from: "",
        };
        let id = Identities { ip, helo: "client.example", mail_from: "a@example.net" };
        let h = write(OURS, &results, &id);
        let methods: Vec<&str> = h.split(";\r\n\t").skip(1).map(|m| m.split([' ', '\r']).next().unwrap()).collect();
        assert_eq!(methods, ["iprev=none", "spf=none", "spf=pass", "dkim=none", "arc=none", "dmarc=none"], "{h}");
        assert!(h.starts_with("Authentication-Results: mx.example.org;\r\n\tiprev=none policy.iprev=192.0.2.7"), "{h}");
        assert!(h.contains("smtp.helo=client.example"), "{h}");
        assert!(h.contains("smtp.mailfrom=a@example.net"), "{h}");
        assert!(h.ends_with("\r\n") && !h[..h.len() - 2].contains("\r\n\r\n"), "{h:?}");
        assert_eq!(
            forged(h.as_bytes(), OURS),
            vec![Range { start: 0, end: h.len() }],
            "what we write is what we remove next time"
        );
    }
}
