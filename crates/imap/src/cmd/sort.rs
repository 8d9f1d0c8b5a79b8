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
use super::search::fold::casemap_key;
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
        let number: u32 = if req.uid { h.meta.uid.into() } else { h.seq.into() };
        let _ = write!(line, " {number}");
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
        SortKey::Subject => Value::Text(casemap_key(&base_subject(&f.subject).0)),
        SortKey::From => Value::Text(mailbox_part(&f.from)),
        SortKey::To => Value::Text(mailbox_part(&f.to)),
        SortKey::Cc => Value::Text(mailbox_part(&f.cc)),
        SortKey::DisplayFrom => Value::Text(display(&f.from)),
        SortKey::DisplayTo => Value::Text(display(&f.to)),
    }
}

/// RFC 5256 §3 FROM/TO/CC: the `addr-mailbox` (local part, unquoted) of
/// the first address, compared with i;ascii-casemap; empty without one.
fn mailbox_part(addr: &Option<Address>) -> String {
    addr.as_ref().map(|a| a.mailbox.to_ascii_uppercase()).unwrap_or_default()
}

/// RFC 5957 §3: the display name of the first address (decoded), or its
/// addr-spec when it has none; compared with i;unicode-casemap (see
/// [`casemap_key`] for how far we go).
fn display(addr: &Option<Address>) -> String {
    match addr {
        Some(Address { name: Some(name), .. }) if !name.trim().is_empty() => casemap_key(name.trim()),
        Some(a) if a.host.is_empty() => casemap_key(&a.mailbox),
        Some(a) => casemap_key(&format!("{}@{}", a.mailbox, a.host)),
        None => String::new(),
    }
}

/// RFC 5256 §2.1: the base subject, and whether extracting it removed a
/// reply or forward marker (a `subj-refwd`, the `(fwd)` trailer or the
/// `[fwd: ...]` wrapper: THREAD's "is a reply or forward").
///
/// `subject` must have its encoded-words decoded already (step 1's first
/// half; `Fields::parse` does it), so that a `Re:` inside an encoded-word
/// counts too.
pub(crate) fn base_subject(subject: &str) -> (String, bool) {
    // (1) Tabs and continuations become spaces, runs of spaces one space.
    // Only these: other Unicode spaces (U+00A0, say) are subject text.
    let mut s = subject.split([' ', '\t', '\r', '\n']).filter(|w| !w.is_empty()).collect::<Vec<_>>().join(" ");
    let mut reply = false;
    loop {
        // (2) Remove subj-trailers, as long as there are some.
        while let Some((rest, fwd)) = subj_trailer(&s) {
            reply |= fwd;
            s.truncate(rest.len());
        }
        // (3)-(5) Remove subj-leaders, and subj-blobs that leave some text,
        // until neither is left.
        loop {
            if let Some((rest, refwd)) = subj_leader(&s) {
                reply |= refwd;
                s = rest.to_owned();
            } else if let Some(rest) = subj_blob(&s).filter(|r| !r.is_empty()) {
                s = rest.to_owned();
            } else {
                break;
            }
        }
        // (6) A `subj-fwd-hdr ... subj-fwd-trl` wrapper: remove it, then
        // start over from (2).
        match subj_fwd(&s) {
            Some(inner) => {
                s = inner.to_owned();
                reply = true;
            }
            // (7) What is left is the base subject.
            None => return (s, reply),
        }
    }
}

/// `subj-trailer = "(fwd)" / WSP` at the end of `s`: the text before it,
/// and whether it was `(fwd)`.
fn subj_trailer(s: &str) -> Option<(&str, bool)> {
    if let Some(rest) = s.strip_suffix([' ', '\t']) {
        return Some((rest, false));
    }
    let cut = s.len().checked_sub("(fwd)".len())?;
    let tail = s.get(cut..)?;
    tail.eq_ignore_ascii_case("(fwd)").then(|| (s.get(..cut).unwrap_or_default(), true))
}

/// `subj-leader = (*subj-blob subj-refwd) / WSP` at the start of `s`: the
/// text after it, and whether it held a `subj-refwd`.
fn subj_leader(s: &str) -> Option<(&str, bool)> {
    if let Some(rest) = s.strip_prefix([' ', '\t']) {
        return Some((rest, false));
    }
    let mut rest = s;
    while let Some(r) = subj_blob(rest) {
        rest = r;
    }
    subj_refwd(rest).map(|r| (r, true))
}

/// `subj-refwd = ("re" / ("fw" ["d"])) *WSP [subj-blob] ":"` at the start
/// of `s` (ABNF strings are case-insensitive): the text after it.
fn subj_refwd(s: &str) -> Option<&str> {
    let word = |w: &str| s.get(..w.len()).filter(|p| p.eq_ignore_ascii_case(w)).and_then(|_| s.get(w.len()..));
    // "fwd" before "fw": the longer match, so that "fwd:" is not "fw" + "d:".
    let rest = word("re").or_else(|| word("fwd")).or_else(|| word("fw"))?;
    let rest = rest.trim_start_matches([' ', '\t']);
    let rest = subj_blob(rest).unwrap_or(rest);
    rest.strip_prefix(':')
}

/// `subj-blob = "[" *BLOBCHAR "]" *WSP` at the start of `s` (`BLOBCHAR`
/// is anything but `[` and `]`): the text after it.
fn subj_blob(s: &str) -> Option<&str> {
    let inner = s.strip_prefix('[')?;
    let close = inner.find([']', '['])?;
    let rest = inner.get(close..)?.strip_prefix(']')?;
    Some(rest.trim_start_matches([' ', '\t']))
}

/// `subj-fwd = subj-fwd-hdr subject subj-fwd-trl`, `subj-fwd-hdr =
/// "[fwd:"`, `subj-fwd-trl = "]"`, around the whole of `s`: the subject inside.
fn subj_fwd(s: &str) -> Option<&str> {
    let hdr = "[fwd:";
    let head = s.get(..hdr.len())?;
    if !head.eq_ignore_ascii_case(hdr) {
        return None;
    }
    s.get(hdr.len()..)?.strip_suffix(']')
}

#[cfg(test)]
mod tests;
