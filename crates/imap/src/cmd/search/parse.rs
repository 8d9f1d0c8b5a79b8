//! Our grammar for SEARCH, SORT and THREAD and their UID forms (nom 8).
//!
//! imap-codec 2.0.0-alpha.10 parses plain SEARCH, but not ESEARCH's
//! `RETURN (...)` (RFC 4731 §3), SEARCHRES's `$` (RFC 5182 §3), WITHIN's
//! OLDER/YOUNGER (RFC 5032, not enabled in our build) nor SORT=DISPLAY
//! (RFC 5957). Rather than two grammars for one command, the session hands
//! every SEARCH / SORT / THREAD line here (`session.rs`, before imap-codec).
//!
//! ```abnf
//! search   = ["UID" SP] "SEARCH" [SP search-return-opts] [SP "CHARSET" SP astring] 1*(SP search-key)
//! sort     = ["UID" SP] "SORT" SP sort-criteria SP charset 1*(SP search-key)      ; RFC 5256 §4
//! thread   = ["UID" SP] "THREAD" SP thread-alg SP charset 1*(SP search-key)     ; RFC 5256 §4
//! search-return-opts = "RETURN" SP "(" [search-return-opt *(SP search-return-opt)] ")"
//! ```

use super::keys::{Bound, Day, Key, SeqSet, When};
use crate::error::ImapError;
use coimail_store::ModSeq;
use nom::branch::alt;
use nom::bytes::complete::{tag_no_case, take, take_while_m_n, take_while1};
use nom::character::complete::{char, digit1};
use nom::combinator::{map, map_opt, map_res, opt, value};
use nom::error::{Error, ErrorKind};
use nom::multi::{many1, separated_list0, separated_list1};
use nom::sequence::{delimited, preceded};
use nom::{IResult, Parser};

type Res<'a, T> = IResult<&'a [u8], T>;

/// Deepest nesting of parentheses, NOT and OR; deeper input gets BAD
/// rather than a deep recursion.
const MAX_DEPTH: usize = 64;

/// One SEARCH, SORT or THREAD command as parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Request {
    pub uid: bool,
    pub kind: Kind,
    pub charset: Option<Vec<u8>>,
    /// The criteria; several keys are an [`Key::And`].
    pub key: Key,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Kind {
    /// `None`: no RETURN; `Some(empty)`: `RETURN ()`, which means ALL (RFC 4731 §3.1).
    Search(Option<Vec<ReturnOpt>>),
    /// Criteria in order, each with its REVERSE.
    Sort(Vec<(bool, SortKey)>),
    Thread(ThreadAlg),
}

impl Kind {
    pub(crate) fn name(&self) -> &'static str {
        match self {
            Kind::Search(_) => "SEARCH",
            Kind::Sort(_) => "SORT",
            Kind::Thread(_) => "THREAD",
        }
    }
}

/// RFC 4731 §3.1 result options, and RFC 5182's SAVE.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ReturnOpt {
    Min,
    Max,
    All,
    Count,
    Save,
}

/// RFC 5256 §3 sort keys and RFC 5957 DISPLAYFROM / DISPLAYTO.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SortKey {
    Arrival,
    Cc,
    Date,
    From,
    Size,
    Subject,
    To,
    DisplayFrom,
    DisplayTo,
}

/// RFC 5256 §3 threading algorithms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ThreadAlg {
    OrderedSubject,
    References,
}

/// If `bytes` (a whole command, final CRLF included) is a SEARCH, SORT or
/// THREAD command, its tag and the parsed request (or BAD); otherwise `None`.
pub(crate) fn parse(bytes: &[u8]) -> Option<(String, Result<Request, ImapError>)> {
    let tag = crate::conn::command_tag(bytes)?;
    let rest = bytes.get(tag.len() + 1..)?;
    let rest = rest.strip_suffix(b"\n").map(|r| r.strip_suffix(b"\r").unwrap_or(r)).unwrap_or(rest);
    let (rest, uid) = match tag_no_case::<_, _, Error<&[u8]>>("UID ").parse(rest) {
        Ok((r, _)) => (r, true),
        Err(_) => (rest, false),
    };
    let end = rest.iter().position(|&b| !b.is_ascii_alphabetic()).unwrap_or(rest.len());
    let (verb, args) = rest.split_at(end);
    let parsed = match verb.to_ascii_uppercase().as_slice() {
        b"SEARCH" => search(args),
        b"SORT" => sort(args),
        b"THREAD" => thread(args),
        _ => return None,
    };
    let name = String::from_utf8_lossy(verb).to_ascii_uppercase();
    let result = match parsed {
        Ok((&[], (kind, charset, key))) => Ok(Request { uid, kind, charset, key }),
        Ok((left, _)) => Err(syntax(&name, left)),
        Err(nom::Err::Failure(e)) if e.code == ErrorKind::TooLarge => {
            Err(ImapError::bad("Search keys nested too deeply"))
        }
        Err(nom::Err::Failure(e) | nom::Err::Error(e)) => Err(syntax(&name, e.input)),
        Err(nom::Err::Incomplete(_)) => Err(syntax(&name, &[])),
    };
    Some((tag.to_owned(), result))
}

fn syntax(name: &str, at: &[u8]) -> ImapError {
    if at.is_empty() {
        return ImapError::bad(format!("Syntax error in {name} arguments at end of line"));
    }
    let near = String::from_utf8_lossy(at.get(..24).unwrap_or(at)).into_owned();
    ImapError::bad(format!("Syntax error in {name} arguments near \"{near}\""))
}

type Parsed = (Kind, Option<Vec<u8>>, Key);

fn search(i: &[u8]) -> Res<'_, Parsed> {
    let (i, ret) = opt(preceded(sp, return_opts)).parse(i)?;
    let (i, charset) = opt(preceded((sp, tag_no_case("CHARSET"), sp), astring)).parse(i)?;
    let (i, key) = keys(i)?;
    Ok((i, (Kind::Search(ret), charset, key)))
}

fn sort(i: &[u8]) -> Res<'_, Parsed> {
    let criterion = (opt(tag_no_case("REVERSE ")), sort_key);
    let criteria = delimited(char('('), separated_list1(sp, criterion), char(')'));
    let (i, (_, criteria, _, charset, key)) = (sp, criteria, sp, astring, keys).parse(i)?;
    let criteria = criteria.into_iter().map(|(rev, k)| (rev.is_some(), k)).collect();
    Ok((i, (Kind::Sort(criteria), Some(charset), key)))
}

fn thread(i: &[u8]) -> Res<'_, Parsed> {
    let alg = alt((
        value(ThreadAlg::OrderedSubject, tag_no_case("ORDEREDSUBJECT")),
        value(ThreadAlg::References, tag_no_case("REFERENCES")),
    ));
    let (i, (_, alg, _, charset, key)) = (sp, alg, sp, astring, keys).parse(i)?;
    Ok((i, (Kind::Thread(alg), Some(charset), key)))
}

fn sort_key(i: &[u8]) -> Res<'_, SortKey> {
    alt((
        value(SortKey::Arrival, tag_no_case("ARRIVAL")),
        value(SortKey::Cc, tag_no_case("CC")),
        value(SortKey::Date, tag_no_case("DATE")),
        value(SortKey::DisplayFrom, tag_no_case("DISPLAYFROM")),
        value(SortKey::DisplayTo, tag_no_case("DISPLAYTO")),
        value(SortKey::From, tag_no_case("FROM")),
        value(SortKey::Size, tag_no_case("SIZE")),
        value(SortKey::Subject, tag_no_case("SUBJECT")),
        value(SortKey::To, tag_no_case("TO")),
    ))
    .parse(i)
}

/// RFC 4731 §3.1 and RFC 5182 §3.
fn return_opts(i: &[u8]) -> Res<'_, Vec<ReturnOpt>> {
    let opt_ = alt((
        value(ReturnOpt::Min, tag_no_case("MIN")),
        value(ReturnOpt::Max, tag_no_case("MAX")),
        value(ReturnOpt::All, tag_no_case("ALL")),
        value(ReturnOpt::Count, tag_no_case("COUNT")),
        value(ReturnOpt::Save, tag_no_case("SAVE")),
    ));
    preceded((tag_no_case("RETURN"), sp), delimited(char('('), separated_list0(sp, opt_), char(')'))).parse(i)
}

/// `1*(SP search-key)`, as one key.
fn keys(i: &[u8]) -> Res<'_, Key> {
    map(many1(preceded(sp, |i| key(i, 0))), and).parse(i)
}

fn and(mut keys: Vec<Key>) -> Key {
    if keys.len() == 1 { keys.pop().unwrap_or(Key::All) } else { Key::And(keys) }
}

/// One `search-key` (RFC 3501 §9, RFC 9051 §9, RFC 5032, RFC 5182, RFC 7162).
fn key(i: &[u8], depth: usize) -> Res<'_, Key> {
    if depth > MAX_DEPTH {
        return Err(nom::Err::Failure(Error::new(i, ErrorKind::TooLarge)));
    }
    let sub = move |i| key(i, depth + 1);
    match i.first() {
        Some(b'(') => {
            return map(delimited(char('('), separated_list1(sp, sub), char(')')), and).parse(i);
        }
        Some(b'0'..=b'9' | b'*' | b'$') => return map(seq_set, Key::Seq).parse(i),
        _ => {}
    }
    let (rest, word) = take_while1(|b: u8| b.is_ascii_alphabetic()).parse(i)?;
    let flag = |name: &str, set: bool| Ok((rest, Key::Flag(name.into(), set)));
    let header = |name: &str| map(preceded(sp, astring), |v| Key::Header(name.into(), v)).parse(rest);
    let address = |name: &'static str| map(preceded(sp, astring), |v| Key::Address(name, v)).parse(rest);
    let on_day = |f: fn(When, Day) -> Key, w: When| map(preceded(sp, date), move |d| f(w, d)).parse(rest);
    match word.to_ascii_uppercase().as_slice() {
        b"ALL" => Ok((rest, Key::All)),
        b"ANSWERED" => flag("\\Answered", true),
        b"DELETED" => flag("\\Deleted", true),
        b"DRAFT" => flag("\\Draft", true),
        b"FLAGGED" => flag("\\Flagged", true),
        b"SEEN" => flag("\\Seen", true),
        b"UNANSWERED" => flag("\\Answered", false),
        b"UNDELETED" => flag("\\Deleted", false),
        b"UNDRAFT" => flag("\\Draft", false),
        b"UNFLAGGED" => flag("\\Flagged", false),
        b"UNSEEN" => flag("\\Seen", false),
        b"KEYWORD" => map(preceded(sp, atom), |k| Key::Flag(k, true)).parse(rest),
        b"UNKEYWORD" => map(preceded(sp, atom), |k| Key::Flag(k, false)).parse(rest),
        // RFC 3501 §6.4.4: NEW is RECENT UNSEEN, OLD is NOT RECENT.
        b"RECENT" => Ok((rest, Key::Recent)),
        b"NEW" => Ok((rest, Key::And(vec![Key::Recent, Key::Flag("\\Seen".into(), false)]))),
        b"OLD" => Ok((rest, Key::Not(Box::new(Key::Recent)))),
        b"BCC" => address("bcc"),
        b"CC" => address("cc"),
        b"FROM" => address("from"),
        b"SUBJECT" => header("subject"),
        b"TO" => address("to"),
        b"HEADER" => map((sp, astring, sp, astring), |(_, name, _, v)| {
            Key::Header(String::from_utf8_lossy(&name).into_owned(), v)
        })
        .parse(rest),
        b"BODY" => map(preceded(sp, astring), Key::Body).parse(rest),
        b"TEXT" => map(preceded(sp, astring), Key::Text).parse(rest),
        b"BEFORE" => on_day(Key::Internal, When::Before),
        b"ON" => on_day(Key::Internal, When::On),
        b"SINCE" => on_day(Key::Internal, When::Since),
        b"SENTBEFORE" => on_day(Key::Sent, When::Before),
        b"SENTON" => on_day(Key::Sent, When::On),
        b"SENTSINCE" => on_day(Key::Sent, When::Since),
        b"LARGER" => map(preceded(sp, number64), Key::Larger).parse(rest),
        b"SMALLER" => map(preceded(sp, number64), Key::Smaller).parse(rest),
        b"OLDER" => map(preceded(sp, nz_number), Key::Older).parse(rest),
        b"YOUNGER" => map(preceded(sp, nz_number), Key::Younger).parse(rest),
        b"UID" => map(preceded(sp, seq_set), Key::Uid).parse(rest),
        b"MODSEQ" => modseq(rest),
        b"NOT" => map(preceded(sp, sub), |k| Key::Not(Box::new(k))).parse(rest),
        b"OR" => map((sp, sub, sp, sub), |(_, a, _, b)| Key::Or(Box::new(a), Box::new(b))).parse(rest),
        _ => Err(nom::Err::Error(Error::new(i, ErrorKind::Tag))),
    }
}

/// RFC 7162 §3.1.5: `"MODSEQ" [SP entry-name SP entry-type-req] SP mod-sequence-valzer`.
/// The entry names one flag's mod-sequence; we keep one per message, which
/// the RFC allows to stand for every entry.
fn modseq(i: &[u8]) -> Res<'_, Key> {
    let entry_type = alt((tag_no_case("priv"), tag_no_case("shared"), tag_no_case("all")));
    let entry = opt((sp, quoted, sp, entry_type));
    map((entry, sp, number64), |(_, _, n)| Key::ModSeq(ModSeq(n))).parse(i)
}

/// `sequence-set` or `$` (RFC 5182 §3: `seq-last-command`, alone).
pub(crate) fn seq_set(i: &[u8]) -> Res<'_, SeqSet> {
    let number = |i| alt((map(nz_number, Bound::Num), value(Bound::Star, char('*')))).parse(i);
    let item = map((number, opt(preceded(char(':'), number))), |(a, b)| (a, b.unwrap_or(a)));
    alt((value(SeqSet::Saved, char('$')), map(separated_list1(char(','), item), SeqSet::Ranges))).parse(i)
}

/// `nz-number`: 1..=2^32-1, no leading zero.
fn nz_number(i: &[u8]) -> Res<'_, u32> {
    let digits = take_while1(|b: u8| b.is_ascii_digit());
    map_opt(digits, |d: &[u8]| {
        if d.first() == Some(&b'0') {
            return None;
        }
        std::str::from_utf8(d).ok()?.parse::<u32>().ok()
    })
    .parse(i)
}

/// `number64` (RFC 9051 §9): sizes and mod-sequences.
fn number64(i: &[u8]) -> Res<'_, u64> {
    map_res(map_res(digit1, std::str::from_utf8), str::parse::<u64>).parse(i)
}

const MONTHS: [&[u8]; 12] =
    [b"JAN", b"FEB", b"MAR", b"APR", b"MAY", b"JUN", b"JUL", b"AUG", b"SEP", b"OCT", b"NOV", b"DEC"];

/// `date = date-text / DQUOTE date-text DQUOTE`, `date-text = date-day "-" date-month "-" date-year`.
fn date(i: &[u8]) -> Res<'_, Day> {
    alt((delimited(char('"'), date_text, char('"')), date_text)).parse(i)
}

fn date_text(i: &[u8]) -> Res<'_, Day> {
    let digits = |min, max| take_while_m_n(min, max, |b: u8| b.is_ascii_digit());
    let parts = (digits(1, 2), char('-'), take(3usize), char('-'), digits(4, 4));
    map_opt(parts, |(d, _, m, _, y): (&[u8], _, &[u8], _, &[u8])| {
        let day: u8 = std::str::from_utf8(d).ok()?.parse().ok()?;
        let year: i32 = std::str::from_utf8(y).ok()?.parse().ok()?;
        let month = MONTHS.iter().position(|n| n.eq_ignore_ascii_case(m))? as u8 + 1;
        (day >= 1 && day <= days_in_month(year, month)).then_some(Day { year, month, day })
    })
    .parse(i)
}

fn days_in_month(year: i32, month: u8) -> u8 {
    match month {
        2 if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

fn sp(i: &[u8]) -> Res<'_, char> {
    char(' ').parse(i)
}

/// ATOM-CHAR: any CHAR except atom-specials (RFC 3501 §9).
fn is_atom_char(b: u8) -> bool {
    (0x21..0x7f).contains(&b) && !b"(){%*\"\\]".contains(&b)
}

fn atom(i: &[u8]) -> Res<'_, String> {
    map(take_while1(is_atom_char), |a: &[u8]| String::from_utf8_lossy(a).into_owned()).parse(i)
}

/// `astring = 1*ASTRING-CHAR / string`.
fn astring(i: &[u8]) -> Res<'_, Vec<u8>> {
    let chars = take_while1(|b| is_atom_char(b) || b == b']');
    alt((map(chars, <[u8]>::to_vec), quoted, literal)).parse(i)
}

/// `quoted`: 8-bit UTF-8 is allowed (RFC 9051 §9 `QUOTED-CHAR` / RFC 6855).
fn quoted(i: &[u8]) -> Res<'_, Vec<u8>> {
    let (mut rest, _) = char('"').parse(i)?;
    let mut out = Vec::new();
    loop {
        match rest {
            [b'"', tail @ ..] => return Ok((tail, out)),
            [b'\\', c @ (b'"' | b'\\'), tail @ ..] => {
                out.push(*c);
                rest = tail;
            }
            [b'\\', ..] | [b'\r' | b'\n', ..] | [] => return Err(nom::Err::Error(Error::new(rest, ErrorKind::Char))),
            [c, tail @ ..] => {
                out.push(*c);
                rest = tail;
            }
        }
    }
}

/// `literal = "{" number64 ["+"] "}" CRLF *CHAR8` (the framing already
/// read the bytes; this finds them again).
fn literal(i: &[u8]) -> Res<'_, Vec<u8>> {
    let mut header = (char('{'), number64, opt(char('+')), char('}'), opt(char('\r')), char('\n'));
    let (rest, (_, n, _, _, _, _)) = header.parse(i)?;
    let n = usize::try_from(n).map_err(|_| nom::Err::Error(Error::new(i, ErrorKind::TooLarge)))?;
    map(take(n), <[u8]>::to_vec).parse(rest)
}

#[cfg(test)]
mod tests;
