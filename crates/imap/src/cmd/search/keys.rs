//! The search query twice over: [`Key`] as the client wrote it (RFC 3501
//! §6.4.4, RFC 9051 §6.4.4 and extensions), and [`Cond`], the same query
//! bound to one selected mailbox at one moment: sequence sets resolved,
//! `$` replaced by the saved result, strings checked and case-folded, WITHIN
//! intervals turned into instants. Evaluation (`eval.rs`) only sees `Cond`.

use super::fold::fold;
use crate::error::ImapError;
use crate::selected::SeqNum;
use coimail_store::{ModSeq, Uid};

/// One end of a `seq-range`: a number or `*`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Bound {
    Num(u32),
    Star,
}

/// A `sequence-set`, or `$`: the saved search result (RFC 5182 §3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum SeqSet {
    Saved,
    Ranges(Vec<(Bound, Bound)>),
}

/// A calendar day as written, without time or zone (RFC 3501 `date`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Day {
    pub year: i32,
    pub month: u8,
    pub day: u8,
}

/// BEFORE / ON / SINCE and their SENT* forms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum When {
    Before,
    On,
    Since,
}

impl When {
    /// RFC 3501 §6.4.4: dates compare by day, disregarding time and timezone.
    pub(crate) fn matches(self, day: Day, wanted: Day) -> bool {
        match self {
            When::Before => day < wanted,
            When::On => day == wanted,
            When::Since => day >= wanted,
        }
    }
}

/// A search key as parsed; a list of keys is an [`Key::And`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Key {
    All,
    And(Vec<Key>),
    Or(Box<Key>, Box<Key>),
    Not(Box<Key>),
    Seq(SeqSet),
    Uid(SeqSet),
    /// A system flag (`\Seen`) or keyword, and whether it must be set.
    Flag(String, bool),
    /// \Recent: recent for this session (RFC 3501 §2.3.2; NEW and OLD build on it).
    Recent,
    Larger(u64),
    Smaller(u64),
    /// INTERNALDATE against a day.
    Internal(When, Day),
    /// The Date header against a day.
    Sent(When, Day),
    /// RFC 5032 WITHIN: OLDER / YOUNGER, in seconds.
    Older(u32),
    Younger(u32),
    /// RFC 7162 §3.1.5: messages with a mod-sequence at least this.
    ModSeq(ModSeq),
    /// A header field name and the substring its value must contain;
    /// SUBJECT is this with the field name.
    Header(String, Vec<u8>),
    /// FROM, TO, CC and BCC: an address field (lower-case name) and the
    /// substring its addresses must contain.
    Address(&'static str, Vec<u8>),
    Body(Vec<u8>),
    Text(Vec<u8>),
}

impl Key {
    /// Whether the key is MODSEQ anywhere: the response then carries the
    /// highest mod-sequence (RFC 7162 §3.1.5).
    pub(crate) fn uses_modseq(&self) -> bool {
        match self {
            Key::ModSeq(_) => true,
            Key::And(keys) => keys.iter().any(Key::uses_modseq),
            Key::Or(a, b) => a.uses_modseq() || b.uses_modseq(),
            Key::Not(k) => k.uses_modseq(),
            _ => false,
        }
    }
}

/// Sorted, merged, inclusive ranges of sequence numbers or of UIDs (`N`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RangeSet<N>(Vec<(N, N)>);

impl<N: Copy + Ord + Into<u32>> RangeSet<N> {
    pub(crate) fn new(mut ranges: Vec<(N, N)>) -> Self {
        ranges.sort_unstable();
        let mut merged: Vec<(N, N)> = Vec::with_capacity(ranges.len());
        for (lo, hi) in ranges {
            match merged.last_mut() {
                // Adjacent ranges merge too: `lo` is at most one past `last.1`.
                Some(last) if lo.into() <= last.1.into().saturating_add(1) => last.1 = last.1.max(hi),
                _ => merged.push((lo, hi)),
            }
        }
        RangeSet(merged)
    }

    pub(crate) fn contains(&self, x: N) -> bool {
        let i = self.0.partition_point(|&(_, hi)| hi < x);
        self.0.get(i).is_some_and(|&(lo, _)| lo <= x)
    }
}

/// A query bound to the selected mailbox; see the module doc.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Cond {
    Const(bool),
    And(Vec<Cond>),
    Or(Box<Cond>, Box<Cond>),
    Not(Box<Cond>),
    Seq(RangeSet<SeqNum>),
    Uid(RangeSet<Uid>),
    Flag(String, bool),
    Larger(u64),
    Smaller(u64),
    Internal(When, Day),
    Sent(When, Day),
    /// INTERNALDATE (Unix seconds) strictly before this.
    InternalBefore(i64),
    /// INTERNALDATE at or after this.
    InternalFrom(i64),
    ModSeq(ModSeq),
    /// Lower-case field name, folded needle.
    Header(String, String),
    /// Lower-case field name, folded needle (see `Doc::address_contains`).
    Address(&'static str, String),
    Body(String),
    Text(String),
}

/// What binding needs to know about the mailbox and the session.
pub(crate) struct Scope<'a> {
    /// Messages in the session's view (the highest sequence number).
    pub exists: u32,
    /// The highest UID in the view (`*` in a UID set), 0 when empty.
    pub last_uid: Uid,
    /// The saved search result (`$`), UIDs ascending.
    pub saved: &'a [Uid],
    /// UID ranges (inclusive) recent for this session (RFC 3501 §2.3.2).
    pub recent: &'a [(Uid, Uid)],
    /// Now, in Unix seconds (for WITHIN).
    pub now: i64,
}

/// Binds `key`; fails only for strings that are not UTF-8 (RFC 9051 §6.4.4:
/// strings are UTF-8 once CHARSET UTF-8 or IMAP4rev2 applies; US-ASCII is a subset).
pub(crate) fn bind(key: &Key, scope: &Scope<'_>) -> Result<Cond, ImapError> {
    let text = |bytes: &[u8]| -> Result<String, ImapError> {
        let s = std::str::from_utf8(bytes).map_err(|_| ImapError::bad("Search string is not valid UTF-8"))?;
        Ok(fold(s))
    };
    Ok(match key {
        Key::All => Cond::Const(true),
        Key::Recent => Cond::Uid(RangeSet::new(scope.recent.to_vec())),
        Key::And(keys) => Cond::And(keys.iter().map(|k| bind(k, scope)).collect::<Result<_, _>>()?),
        Key::Or(a, b) => Cond::Or(Box::new(bind(a, scope)?), Box::new(bind(b, scope)?)),
        Key::Not(k) => Cond::Not(Box::new(bind(k, scope)?)),
        Key::Seq(SeqSet::Saved) | Key::Uid(SeqSet::Saved) => {
            Cond::Uid(RangeSet::new(scope.saved.iter().map(|&u| (u, u)).collect()))
        }
        // Where the client's numbers become sequence numbers or UIDs.
        Key::Seq(SeqSet::Ranges(r)) => Cond::Seq(ranges(r, SeqNum(scope.exists), SeqNum)),
        Key::Uid(SeqSet::Ranges(r)) => Cond::Uid(ranges(r, scope.last_uid, Uid)),
        Key::Flag(name, set) => Cond::Flag(name.clone(), *set),
        Key::Larger(n) => Cond::Larger(*n),
        Key::Smaller(n) => Cond::Smaller(*n),
        Key::Internal(w, d) => Cond::Internal(*w, *d),
        Key::Sent(w, d) => Cond::Sent(*w, *d),
        // RFC 5032 §3: OLDER is older than the interval, YOUNGER within it.
        Key::Older(secs) => Cond::InternalBefore(scope.now - i64::from(*secs)),
        Key::Younger(secs) => Cond::InternalFrom(scope.now - i64::from(*secs)),
        Key::ModSeq(m) => Cond::ModSeq(*m),
        Key::Header(name, value) => Cond::Header(name.to_ascii_lowercase(), text(value)?),
        Key::Address(name, value) => Cond::Address(name, text(value)?),
        Key::Body(value) => Cond::Body(text(value)?),
        Key::Text(value) => Cond::Text(text(value)?),
    })
}

/// A parsed set as ranges, `*` being `star` (RFC 3501 §6.4.8 / §9: `*` is
/// the highest number in use, and `n:*` includes it even when `n` is larger).
/// Nothing matches `*` in an empty mailbox. `number` says what the
/// client's numbers are: `SeqNum` or `Uid`.
fn ranges<N: Copy + Ord + Into<u32>>(set: &[(Bound, Bound)], star: N, number: fn(u32) -> N) -> RangeSet<N> {
    let value = |b: Bound| match b {
        Bound::Num(n) => number(n),
        Bound::Star => star,
    };
    RangeSet::new(
        set.iter()
            .filter(|(a, b)| star.into() > 0 || !(matches!(a, Bound::Star) || matches!(b, Bound::Star)))
            .map(|&(a, b)| (value(a).min(value(b)), value(a).max(value(b))))
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn range_sets_merge_and_look_up() {
        let u = |a, b| (Uid(a), Uid(b));
        let r = RangeSet::new(vec![u(5, 9), u(1, 3), u(4, 4), u(20, 20), u(8, 12)]);
        assert_eq!(r, RangeSet(vec![u(1, 12), u(20, 20)]));
        assert!(r.contains(Uid(1)) && r.contains(Uid(12)) && r.contains(Uid(20)));
        assert!(!r.contains(Uid(0)) && !r.contains(Uid(13)) && !r.contains(Uid(21)));
        assert!(!RangeSet::<Uid>::new(Vec::new()).contains(Uid(1)));
    }

    #[test]
    fn stars_and_reversed_ranges() {
        use Bound::*;
        let s = |a, b| (SeqNum(a), SeqNum(b));
        assert_eq!(ranges(&[(Star, Num(3))], SeqNum(10), SeqNum), RangeSet(vec![s(3, 10)]));
        assert_eq!(ranges(&[(Num(7), Num(2))], SeqNum(10), SeqNum), RangeSet(vec![s(2, 7)]));
        // A UID range past the last UID still includes it (RFC 3501 §6.4.8).
        assert_eq!(ranges(&[(Num(559), Star)], Uid(100), Uid), RangeSet(vec![(Uid(100), Uid(559))]));
        assert_eq!(ranges(&[(Star, Star), (Num(1), Num(2))], SeqNum(0), SeqNum), RangeSet(vec![s(1, 2)]));
    }

    #[test]
    fn days_compare_by_calendar() {
        let d = |year, month, day| Day { year, month, day };
        assert!(When::Before.matches(d(2023, 12, 31), d(2024, 1, 1)));
        assert!(!When::Before.matches(d(2024, 1, 1), d(2024, 1, 1)));
        assert!(When::On.matches(d(2024, 1, 1), d(2024, 1, 1)));
        assert!(When::Since.matches(d(2024, 1, 1), d(2024, 1, 1)));
        assert!(!When::Since.matches(d(2023, 12, 31), d(2024, 1, 1)));
    }
}
