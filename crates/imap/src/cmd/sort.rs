//! SORT and UID SORT (RFC 5256 §3), with DISPLAYFROM and DISPLAYTO
//! (RFC 5957), and the header data SORT and THREAD share: sent date,
//! first addresses, and the base subject (RFC 5256 §2.1).
//!
//! Matching uses SEARCH's evaluation (`search::find`); the header fields
//! of the matches are then read in parallel chunks (`eval::map_bodies`),
//! once per message, and each message gets its sort values computed once
//! before the sort.

use super::search::doc::header_of;
use super::search::eval::{Hit, map_bodies};
use super::search::fold::fold;
use super::search::parse::{Request, SortKey};
use crate::mime::{Address, ParsedMessage};
use crate::session::{CmdResult, Done, Session};
use std::cmp::Ordering;
use std::fmt::Write;

/// The header data SORT and THREAD use, decoded.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Fields {
    /// The Date header as Unix seconds (UTC).
    pub sent: Option<i64>,
    pub subject: String,
    /// The first address of each.
    pub from: Option<Address>,
    pub to: Option<Address>,
    pub cc: Option<Address>,
    pub message_id: Option<String>,
    pub references: Vec<String>,
    pub in_reply_to: Vec<String>,
}

impl Fields {
    /// Reads the fields from a message's header (first occurrence of each).
    pub(crate) fn parse(raw: &[u8]) -> Fields {
        // Only the header is needed: the body's structure is not parsed.
        let m = ParsedMessage::parse(header_of(raw));
        let first = |name| m.addresses(name).into_iter().next();
        Fields {
            sent: m.date().map(|d| d.to_timestamp()),
            subject: m.header("Subject").unwrap_or_default(),
            from: first("From"),
            to: first("To"),
            cc: first("Cc"),
            message_id: m.message_ids("Message-ID").into_iter().next(),
            references: m.message_ids("References"),
            in_reply_to: m.message_ids("In-Reply-To"),
        }
    }

    /// RFC 5256 §2.2: the Date header, else INTERNALDATE.
    pub(crate) fn sent_or(&self, internal_date: i64) -> i64 {
        self.sent.unwrap_or(internal_date)
    }
}

/// Every match with its header fields; a message that can no longer be
/// read (expunged meanwhile) gets empty fields.
pub(crate) async fn with_fields(s: &Session, hits: Vec<Hit>) -> Result<Vec<(Hit, Fields)>, crate::error::ImapError> {
    let read = map_bodies(&s.ctx.store, hits, |_, _, raw| Fields::parse(raw)).await?;
    let mut out: Vec<(Hit, Fields)> = read.into_iter().map(|(h, f)| (h, f.unwrap_or_default())).collect();
    out.sort_unstable_by_key(|(h, _)| h.seq);
    Ok(out)
}

/// One message's value for one sort key.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Value {
    Num(i64),
    Text(String),
}

pub(crate) async fn sort(s: &mut Session, req: &Request, criteria: &[(bool, SortKey)]) -> CmdResult {
    let hits = super::search::find(s, req).await?;
    let header_keys = criteria.iter().any(|(_, k)| !matches!(k, SortKey::Arrival | SortKey::Size));
    let rows = if header_keys {
        with_fields(s, hits).await?
    } else {
        hits.into_iter().map(|h| (h, Fields::default())).collect()
    };
    let mut keyed: Vec<(Vec<Value>, Hit)> =
        rows.into_iter().map(|(h, f)| (criteria.iter().map(|(_, k)| value(*k, &h, &f)).collect(), h)).collect();
    keyed.sort_by(|(a, ha), (b, hb)| compare(criteria, a, b).then(ha.seq.cmp(&hb.seq)));
    let mut line = String::from("* SORT");
    for (_, h) in &keyed {
        let _ = write!(line, " {}", if req.uid { h.meta.uid } else { h.seq });
    }
    line.push_str("\r\n");
    s.conn.out().extend_from_slice(line.as_bytes());
    Ok(Done::ok(if req.uid { "UID SORT completed" } else { "SORT completed" }))
}

/// RFC 5256 §3: criteria in order, each possibly REVERSEd. (Ties left
/// after all criteria go by sequence number, in the caller.)
fn compare(criteria: &[(bool, SortKey)], a: &[Value], b: &[Value]) -> Ordering {
    for ((reverse, _), (x, y)) in criteria.iter().zip(a.iter().zip(b)) {
        let o = x.cmp(y);
        let o = if *reverse { o.reverse() } else { o };
        if o != Ordering::Equal {
            return o;
        }
    }
    Ordering::Equal
}

fn value(key: SortKey, h: &Hit, f: &Fields) -> Value {
    match key {
        SortKey::Arrival => Value::Num(h.meta.internal_date),
        SortKey::Size => Value::Num(i64::try_from(h.meta.size).unwrap_or(i64::MAX)),
        SortKey::Date => Value::Num(f.sent_or(h.meta.internal_date)),
        SortKey::Subject => Value::Text(fold(&base_subject(&f.subject).0)),
        SortKey::From => Value::Text(mailbox_part(&f.from)),
        SortKey::To => Value::Text(mailbox_part(&f.to)),
        SortKey::Cc => Value::Text(mailbox_part(&f.cc)),
        SortKey::DisplayFrom => Value::Text(display(&f.from)),
        SortKey::DisplayTo => Value::Text(display(&f.to)),
    }
}

/// RFC 5256 §3 FROM/TO/CC: the `addr-mailbox` (local part) of the first
/// address, compared case-insensitively; empty without one.
fn mailbox_part(addr: &Option<Address>) -> String {
    addr.as_ref().map(|a| fold(&a.mailbox)).unwrap_or_default()
}

/// RFC 5957 §3: the display name of the first address, or its addr-spec
/// when it has none; compared with i;unicode-casemap.
fn display(addr: &Option<Address>) -> String {
    match addr {
        Some(Address { name: Some(name), .. }) if !name.trim().is_empty() => fold(name.trim()),
        Some(a) if a.host.is_empty() => fold(&a.mailbox),
        Some(a) => fold(&format!("{}@{}", a.mailbox, a.host)),
        None => String::new(),
    }
}

/// RFC 5256 §2.1: the base subject, and whether extracting it removed a
/// reply or forward marker (`Re:`, `Fwd:`, `(fwd)`, `[fwd: ...]`).
pub(crate) fn base_subject(subject: &str) -> (String, bool) {
    // (1) Encoded-words are decoded already; whitespace runs become one space.
    let mut s = subject.split_whitespace().collect::<Vec<_>>().join(" ");
    let mut reply = false;
    loop {
        // (2) Trailers: "(fwd)" and white space.
        loop {
            if s.ends_with(' ') {
                s.pop();
            } else if s.len() >= 5 && s.get(s.len() - 5..).is_some_and(|t| t.eq_ignore_ascii_case("(fwd)")) {
                s.truncate(s.len() - 5);
                reply = true;
            } else {
                break;
            }
        }
        // (3)-(5) Leaders and blobs, until none is left.
        loop {
            if let Some(rest) = strip_leader(&s) {
                s = rest.to_owned();
                reply = true;
            } else if let Some(rest) = s.strip_prefix(' ') {
                s = rest.to_owned();
            } else if let Some(rest) = strip_blob(&s).filter(|r| !r.is_empty()) {
                s = rest.to_owned();
            } else {
                break;
            }
        }
        // (6) "[fwd: ... ]" around the whole subject.
        let wrapped = s.len() >= 6 && s.get(..5).is_some_and(|p| p.eq_ignore_ascii_case("[fwd:")) && s.ends_with(']');
        if !wrapped {
            return (s, reply);
        }
        s = s.get(5..s.len() - 1).unwrap_or_default().to_owned();
        reply = true;
    }
}

/// `subj-blob = "[" *BLOBCHAR "]" *WSP`: the text after one.
fn strip_blob(s: &str) -> Option<&str> {
    let rest = s.strip_prefix('[')?;
    let close = rest.find([']', '['])?;
    let rest = rest.get(close..)?.strip_prefix(']')?;
    Some(rest.trim_start_matches([' ', '\t']))
}

/// `subj-leader = *subj-blob subj-refwd`, `subj-refwd = ("re" / ("fw" ["d"])) *WSP [subj-blob] ":"`:
/// the text after one.
fn strip_leader(s: &str) -> Option<&str> {
    let mut rest = s;
    while let Some(r) = strip_blob(rest) {
        rest = r;
    }
    let lower = rest.get(..3).unwrap_or(rest).to_ascii_lowercase();
    let marker = ["fwd", "fw", "re"].into_iter().find(|m| lower.starts_with(m))?;
    rest = rest.get(marker.len()..)?.trim_start_matches([' ', '\t']);
    if let Some(r) = strip_blob(rest) {
        rest = r;
    }
    rest.strip_prefix(':')
}

#[cfg(test)]
mod tests;
