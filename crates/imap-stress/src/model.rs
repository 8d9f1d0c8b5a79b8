//! One session's view of its selected mailbox, exactly as the server told
//! it, and the checks that follow from each response (RFC 3501 §7.3-7.4,
//! RFC 9051 §7.4-7.5, RFC 7162 §3.1-3.2).
//!
//! Invariants of `Selected::slots` (the sequence-number -> UID map):
//! - slot i is message i+1; known UIDs strictly increase with i;
//! - a slot whose UID is not known yet (announced by EXISTS, not fetched)
//!   carries a lower bound: the highest UID this view had held when the
//!   slot appeared, so a new message's UID must be above it;
//! - a slot leaves only by EXPUNGE or VANISHED, never by a smaller EXISTS.
//!
//! `Memory` is what a client keeps across its connections and selections
//! (per mailbox: UIDVALIDITY, the highest MODSEQ values seen, per-UID
//! MODSEQ, UIDs it saw expunged), so monotonicity is checked over the run.
//! Every check appends `(kind, detail)` to a `Problems` list; the session
//! turns them into violations with the command and line attached.

use crate::global::MailboxKey;
use crate::parse::FetchAtt;
use std::collections::{BTreeSet, HashMap, HashSet};

pub type Problems = Vec<(&'static str, String)>;

/// Flags are compared case-insensitively (RFC 3501 §2.3.2).
pub type FlagSet = BTreeSet<String>;

pub const SYSTEM_FLAGS: [&str; 6] = ["\\seen", "\\answered", "\\flagged", "\\deleted", "\\draft", "\\recent"];

/// A flag list as a set, lower-cased, without `\Recent` (which no STORE sets).
pub fn flag_set<S: AsRef<str>>(flags: &[S]) -> FlagSet {
    flags.iter().map(|f| f.as_ref().to_ascii_lowercase()).filter(|f| f != "\\recent").collect()
}

#[derive(Debug, Clone)]
pub struct Slot {
    pub uid: Option<u32>,
    /// The UID must be above this (0 for messages there at SELECT).
    pub above: u32,
    /// Announced by the SELECT's own EXISTS (so below its UIDNEXT).
    pub from_select: bool,
    pub flags: Option<FlagSet>,
    pub modseq: Option<u64>,
    /// Global clock when the command whose response announced it was sent:
    /// its UID cannot be one some session saw expunged before then.
    pub created: u64,
}

/// What a FETCH response was about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fetched {
    pub uid: u32,
    /// The UID was not known before this response.
    pub learned: bool,
    pub created: u64,
    /// The message was there when the mailbox was selected.
    pub from_select: bool,
}

/// What leaving the map took with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Removed {
    Uid(u32),
    /// A message whose UID this view never learned, somewhere in (lo, hi).
    Unknown(u32, u32),
}

#[derive(Debug, Default)]
pub struct MailboxMemory {
    pub uidvalidity: Option<u32>,
    /// Highest HIGHESTMODSEQ reported (SELECT, STATUS, untagged OK).
    pub highest_reported: u64,
    /// Highest MODSEQ of any message of this mailbox seen.
    pub max_modseq_seen: u64,
    /// Highest UID of this mailbox the server has shown us (any way).
    pub max_uid_seen: u32,
    pub modseqs: HashMap<u32, u64>,
    pub expunged: HashSet<u32>,
    /// Messages last seen in it (EXISTS while selected, STATUS MESSAGES):
    /// the mix stops adding to a mailbox that has grown too big.
    pub size_hint: usize,
}

#[derive(Debug, Default)]
pub struct Memory {
    pub mailboxes: HashMap<MailboxKey, MailboxMemory>,
}

impl Memory {
    pub fn of(&mut self, key: &MailboxKey) -> &mut MailboxMemory {
        self.mailboxes.entry(key.clone()).or_default()
    }
}

#[derive(Debug)]
pub struct Selected {
    pub key: MailboxKey,
    pub read_only: bool,
    pub slots: Vec<Slot>,
    /// The last untagged FLAGS (lower-cased); a keyword in FETCH FLAGS must be in it.
    pub flags: FlagSet,
    /// PERMANENTFLAGS as given, lower-cased (`\*`: new keywords allowed).
    pub permanent: FlagSet,
    pub uidvalidity: Option<u32>,
    pub uidnext: Option<u32>,
    pub highest_modseq: Option<u64>,
    pub nomodseq: bool,
    /// Highest UID that left the map since the SELECT.
    max_uid_removed: u32,
    exists_seen: bool,
}

impl Selected {
    pub fn new(key: MailboxKey, read_only: bool) -> Selected {
        Selected {
            key,
            read_only,
            slots: Vec::new(),
            flags: FlagSet::new(),
            permanent: FlagSet::new(),
            uidvalidity: None,
            uidnext: None,
            highest_modseq: None,
            nomodseq: false,
            max_uid_removed: 0,
            exists_seen: false,
        }
    }

    pub fn len(&self) -> usize {
        self.slots.len()
    }

    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    pub fn has_exists(&self) -> bool {
        self.exists_seen
    }

    /// Known UIDs with their sequence numbers.
    pub fn known(&self) -> Vec<(u32, u32)> {
        self.slots.iter().enumerate().filter_map(|(i, s)| Some((i as u32 + 1, s.uid?))).collect()
    }

    pub fn seq_of(&self, uid: u32) -> Option<u32> {
        self.slots.iter().position(|s| s.uid == Some(uid)).map(|i| i as u32 + 1)
    }

    pub fn slot_of(&mut self, uid: u32) -> Option<&mut Slot> {
        self.slots.iter_mut().find(|s| s.uid == Some(uid))
    }

    /// Sequence numbers (1-based) of slots whose UID is not known.
    pub fn unknown(&self) -> Vec<u32> {
        self.slots.iter().enumerate().filter(|(_, s)| s.uid.is_none()).map(|(i, _)| i as u32 + 1).collect()
    }

    /// The highest UID this view has held or been told of.
    fn max_uid(&self) -> u32 {
        self.slots.iter().map(|s| s.uid.unwrap_or(s.above)).max().unwrap_or(0).max(self.max_uid_removed)
    }

    /// Keywords may be created (or this one is already permanent).
    pub fn keyword_allowed(&self, kw: &str) -> bool {
        self.permanent.contains("\\*") || self.permanent.contains(&kw.to_ascii_lowercase())
    }

    pub fn on_exists(&mut self, n: u32, created: u64, out: &mut Problems) {
        let n = n as usize;
        if !self.exists_seen {
            self.exists_seen = true;
            self.slots = (0..n)
                .map(|_| Slot { uid: None, above: 0, from_select: true, flags: None, modseq: None, created })
                .collect();
            return;
        }
        if n < self.slots.len() {
            out.push(("exists-shrank", format!("EXISTS {n} while the session holds {} messages", self.slots.len())));
            while self.slots.len() > n {
                if let Some(Slot { uid: Some(u), .. }) = self.slots.pop() {
                    self.max_uid_removed = self.max_uid_removed.max(u);
                }
            }
            return;
        }
        let above = self.max_uid();
        while self.slots.len() < n {
            self.slots.push(Slot { uid: None, above, from_select: false, flags: None, modseq: None, created });
        }
    }

    /// The open UID interval an unknown slot at index `i` must lie in.
    fn bounds(&self, i: usize) -> (u32, u32) {
        let below = self.slots[..i].iter().rev().find_map(|s| s.uid).unwrap_or(0);
        let above = self.slots[i + 1..].iter().find_map(|s| s.uid).unwrap_or(u32::MAX);
        (below.max(self.slots[i].above), above)
    }

    fn remove(&mut self, i: usize) -> Removed {
        let removed = match self.slots[i].uid {
            Some(u) => Removed::Uid(u),
            None => {
                let (lo, hi) = self.bounds(i);
                Removed::Unknown(lo, hi)
            }
        };
        self.slots.remove(i);
        if let Removed::Uid(u) = removed {
            self.max_uid_removed = self.max_uid_removed.max(u);
        }
        removed
    }

    pub fn on_expunge(&mut self, n: u32, out: &mut Problems) -> Option<Removed> {
        if n == 0 || n as usize > self.slots.len() {
            out.push(("expunge-out-of-range", format!("EXPUNGE {n} with {} messages", self.slots.len())));
            return None;
        }
        Some(self.remove(n as usize - 1))
    }

    /// VANISHED without EARLIER: each UID must be one this view holds (RFC
    /// 7162 §3.2.10: it stands for EXPUNGE, decrementing the message count).
    /// A UID not fetched yet can only be one of the unknown slots whose
    /// interval holds it; the last such slot goes, which keeps the weaker
    /// bounds on the others.
    pub fn on_vanished(&mut self, uids: &[u32], out: &mut Problems) -> Vec<Removed> {
        let mut removed = Vec::new();
        for &u in uids {
            if let Some(i) = self.slots.iter().position(|s| s.uid == Some(u)) {
                removed.push(self.remove(i));
                continue;
            }
            let candidate = (0..self.slots.len()).rev().find(|&i| {
                self.slots[i].uid.is_none() && {
                    let (lo, hi) = self.bounds(i);
                    lo < u && u < hi
                }
            });
            match candidate {
                Some(i) => {
                    self.slots.remove(i);
                    self.max_uid_removed = self.max_uid_removed.max(u);
                    removed.push(Removed::Uid(u));
                }
                None => out.push(("vanished-unknown-uid", format!("VANISHED {u}, a UID this session does not hold"))),
            }
        }
        removed
    }

    /// A FETCH response: fills in or checks the slot's UID, records flags and
    /// MODSEQ. Returns the message's UID (if known) and whether it was just
    /// learned.
    pub fn on_fetch(
        &mut self,
        seq: u32,
        att: &FetchAtt,
        mem: &mut MailboxMemory,
        out: &mut Problems,
    ) -> Option<Fetched> {
        if seq == 0 || seq as usize > self.slots.len() {
            out.push(("fetch-seq-out-of-range", format!("FETCH for message {seq} with {} messages", self.slots.len())));
            return None;
        }
        let i = seq as usize - 1;
        let mut learned = false;
        if let Some(u) = att.uid {
            match self.slots[i].uid {
                Some(k) if k != u => {
                    out.push((
                        "fetch-uid-mismatch",
                        format!("message {seq} is UID {k} in this session, the FETCH says {u}"),
                    ));
                    return None;
                }
                Some(_) => {}
                None => {
                    self.learn(i, u, mem, out);
                    learned = true;
                }
            }
        }
        let uid = self.slots[i].uid;
        if let Some(flags) = &att.flags {
            for f in flags {
                let lower = f.to_ascii_lowercase();
                if !SYSTEM_FLAGS.contains(&lower.as_str()) && !self.flags.contains(&lower) {
                    out.push((
                        "keyword-not-announced",
                        format!("FETCH FLAGS has {f}, not in the last FLAGS response ({:?})", self.flags),
                    ));
                }
            }
            self.slots[i].flags = Some(flag_set(flags));
        }
        if let Some(m) = att.modseq {
            if let Some(u) = uid {
                let prev = mem.modseqs.entry(u).or_insert(0);
                if m < *prev {
                    out.push(("modseq-decreased", format!("UID {u} MODSEQ {m} after {prev}")));
                } else {
                    *prev = m;
                }
            }
            mem.max_modseq_seen = mem.max_modseq_seen.max(m);
            self.slots[i].modseq = Some(m);
        }
        let (created, from_select) = (self.slots[i].created, self.slots[i].from_select);
        uid.map(|uid| Fetched { uid, learned, created, from_select })
    }

    /// The server told us the UID of an unknown slot: check where it may be.
    fn learn(&mut self, i: usize, u: u32, mem: &mut MailboxMemory, out: &mut Problems) {
        let (lo, hi) = self.bounds(i);
        let slot = &self.slots[i];
        if u <= slot.above {
            out.push((
                "new-uid-not-above-earlier",
                format!("new message {} got UID {u}, not above {}", i + 1, slot.above),
            ));
        } else if u <= lo || u >= hi {
            out.push((
                "seq-map-not-ascending",
                format!("message {} got UID {u}; its neighbours are UIDs {lo} and {hi}", i + 1),
            ));
        }
        if let Some(next) = self.uidnext {
            if slot.from_select && u >= next {
                out.push((
                    "uid-not-below-uidnext",
                    format!("message {} there at SELECT has UID {u}, UIDNEXT was {next}", i + 1),
                ));
            } else if !slot.from_select && u < next {
                out.push((
                    "new-uid-below-uidnext",
                    format!("message {} announced after SELECT has UID {u} < UIDNEXT {next}", i + 1),
                ));
            }
        }
        if mem.expunged.contains(&u) {
            out.push(("uid-reappeared", format!("UID {u} came back after this client saw it expunged")));
        }
        self.slots[i].uid = Some(u);
        mem.max_uid_seen = mem.max_uid_seen.max(u);
    }

    pub fn on_flags(&mut self, flags: &[String]) {
        self.flags = flag_set(flags);
        // FLAGS never lists \Recent as settable, but it is a system flag anyway.
    }

    /// `snapshot`: from a SELECT, where it describes the mailbox as opened.
    pub fn on_highest_modseq(&mut self, m: u64, snapshot: bool, mem: &mut MailboxMemory, out: &mut Problems) {
        check_highest_modseq(m, snapshot, mem, out);
        self.highest_modseq = Some(m);
    }
}

/// HIGHESTMODSEQ never decreases, and a snapshot of the mailbox (SELECT,
/// STATUS) is never below a MODSEQ already seen in it (RFC 7162 §3.1.2.1:
/// the highest mod-sequence of all messages; §3.1: it MUST NOT decrease).
/// A HIGHESTMODSEQ code during other commands may describe the session's
/// view before the changes it is about to announce (Dovecot's tagged OK of
/// STORE does), so only its monotonicity is checked there.
pub fn check_highest_modseq(m: u64, snapshot: bool, mem: &mut MailboxMemory, out: &mut Problems) {
    if m < mem.highest_reported {
        out.push(("highestmodseq-decreased", format!("HIGHESTMODSEQ {m} after {}", mem.highest_reported)));
    } else if snapshot && m < mem.max_modseq_seen {
        out.push((
            "highestmodseq-below-seen-modseq",
            format!("HIGHESTMODSEQ {m}, but a message had MODSEQ {}", mem.max_modseq_seen),
        ));
    }
    mem.highest_reported = mem.highest_reported.max(m);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sel() -> Selected {
        Selected::new(("a".into(), "INBOX".into()), false)
    }

    fn att(uid: u32) -> FetchAtt {
        FetchAtt { uid: Some(uid), flags: Some(vec![]), ..Default::default() }
    }

    #[test]
    fn map_follows_exists_fetch_expunge() {
        let (mut s, mut m, mut p) = (sel(), MailboxMemory::default(), Problems::new());
        s.uidnext = Some(10);
        s.on_exists(3, 0, &mut p);
        for (seq, uid) in [(1, 2), (2, 5), (3, 9)] {
            assert_eq!(s.on_fetch(seq, &att(uid), &mut m, &mut p).map(|f| (f.uid, f.learned)), Some((uid, true)));
        }
        assert_eq!(s.on_expunge(2, &mut p), Some(Removed::Uid(5)));
        s.on_exists(3, 0, &mut p);
        // A new message must be above 9 (the highest held) and >= UIDNEXT.
        s.on_fetch(3, &att(10), &mut m, &mut p);
        assert!(p.is_empty(), "{p:?}");
        assert_eq!(s.known(), vec![(1, 2), (2, 9), (3, 10)]);
    }

    #[test]
    fn violations_are_named() {
        let (mut s, mut m, mut p) = (sel(), MailboxMemory::default(), Problems::new());
        s.on_exists(2, 0, &mut p);
        s.on_fetch(1, &att(4), &mut m, &mut p);
        s.on_fetch(2, &att(3), &mut m, &mut p);
        s.on_exists(1, 0, &mut p);
        s.on_expunge(5, &mut p);
        s.on_fetch(1, &att(7), &mut m, &mut p);
        let kinds: Vec<_> = p.iter().map(|(k, _)| *k).collect();
        assert_eq!(kinds, ["seq-map-not-ascending", "exists-shrank", "expunge-out-of-range", "fetch-uid-mismatch"]);
    }

    #[test]
    fn new_uid_must_be_above_expunged_ones() {
        let (mut s, mut m, mut p) = (sel(), MailboxMemory::default(), Problems::new());
        s.on_exists(1, 0, &mut p);
        s.on_fetch(1, &att(8), &mut m, &mut p);
        s.on_expunge(1, &mut p);
        s.on_exists(1, 0, &mut p);
        s.on_fetch(1, &att(8), &mut m, &mut p);
        assert_eq!(p[0].0, "new-uid-not-above-earlier");
    }

    #[test]
    fn vanished_takes_known_or_a_fitting_unknown_slot() {
        let (mut s, mut m, mut p) = (sel(), MailboxMemory::default(), Problems::new());
        s.on_exists(2, 0, &mut p);
        s.on_fetch(1, &att(3), &mut m, &mut p);
        s.on_fetch(2, &att(6), &mut m, &mut p);
        s.on_exists(4, 0, &mut p); // two new, unknown, above 6
        assert_eq!(s.on_vanished(&[3, 8], &mut p), vec![Removed::Uid(3), Removed::Uid(8)]);
        assert_eq!(s.len(), 2);
        assert!(p.is_empty());
        s.on_vanished(&[5], &mut p);
        assert_eq!(p[0].0, "vanished-unknown-uid");
    }

    #[test]
    fn keywords_need_a_flags_response_and_modseq_only_grows() {
        let (mut s, mut m, mut p) = (sel(), MailboxMemory::default(), Problems::new());
        s.on_exists(1, 0, &mut p);
        s.on_flags(&["\\Seen".into(), "$A".into()]);
        let mut a = FetchAtt {
            uid: Some(1),
            flags: Some(vec!["$a".into(), "\\Recent".into()]),
            modseq: Some(5),
            ..Default::default()
        };
        s.on_fetch(1, &a, &mut m, &mut p);
        assert!(p.is_empty(), "{p:?}");
        a.flags = Some(vec!["$B".into()]);
        a.modseq = Some(4);
        s.on_fetch(1, &a, &mut m, &mut p);
        let kinds: Vec<_> = p.iter().map(|(k, _)| *k).collect();
        assert_eq!(kinds, ["keyword-not-announced", "modseq-decreased"]);
        p.clear();
        s.on_highest_modseq(4, true, &mut m, &mut p);
        assert_eq!(p[0].0, "highestmodseq-below-seen-modseq");
    }
}
