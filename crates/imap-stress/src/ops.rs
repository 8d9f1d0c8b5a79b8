//! The workload: one random command per step, weighted, and the checks
//! that belong to that command (what its tagged answer and its own FETCH,
//! APPENDUID and COPYUID data must say).

use crate::client::{Broken, Client, Cmd, Ctx, OTHER, Pending};
use crate::model::{FlagSet, flag_set};
use crate::parse::{self, Code, Status, Untagged};
use crate::report::Violation;
use std::time::Duration;

const SYSTEM: [&str; 5] = ["\\Seen", "\\Flagged", "\\Answered", "\\Draft", "\\Deleted"];
const KEYWORDS: [&str; 6] = ["$Stress0", "$Stress1", "$Stress2", "$Stress3", "$Stress4", "$Stress5"];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    FetchFlags,
    FetchId,
    FetchBody,
    Store,
    Append,
    Expunge,
    UidExpunge,
    Copy,
    Move,
    Idle,
    Noop,
    Select,
    Status,
    Logout,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StoreKind {
    Add,
    Remove,
    Replace,
}

/// UIDs as a compact set (`3:5,9`).
pub fn uid_set(uids: &[u32]) -> String {
    let mut sorted = uids.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    let mut parts: Vec<String> = Vec::new();
    let mut i = 0;
    while i < sorted.len() {
        let mut j = i;
        while j + 1 < sorted.len() && sorted[j + 1] == sorted[j] + 1 {
            j += 1;
        }
        parts.push(if i == j { sorted[i].to_string() } else { format!("{}:{}", sorted[i], sorted[j]) });
        i = j + 1;
    }
    parts.join(",")
}

/// A test message with a unique `X-Stress-Id`, mostly a few KB.
pub fn message(id: &str, size_pick: usize) -> Vec<u8> {
    let size = match size_pick % 100 {
        0..=1 => 60_000 + size_pick * 7 % 60_000,
        2..=19 => 3_000 + size_pick * 13 % 17_000,
        _ => 500 + size_pick * 29 % 2_500,
    };
    let mut m = format!(
        "From: stress@example.org\r\nTo: stress@example.org\r\nSubject: stress {id}\r\n\
         Date: Wed, 25 Nov 2026 08:00:00 +0000\r\nMessage-ID: <{id}@stress.invalid>\r\nX-Stress-Id: {id}\r\n\r\n"
    )
    .into_bytes();
    let mut n = 0;
    while m.len() < size {
        m.extend_from_slice(
            format!("line {n} of message {id}: the quick brown fox jumps over the lazy dog\r\n").as_bytes(),
        );
        n += 1;
    }
    m
}

fn apply_store(kind: StoreKind, base: &FlagSet, stored: &FlagSet) -> FlagSet {
    match kind {
        StoreKind::Add => base.union(stored).cloned().collect(),
        StoreKind::Remove => base.difference(stored).cloned().collect(),
        StoreKind::Replace => stored.clone(),
    }
}

fn satisfies(kind: StoreKind, fetched: &FlagSet, stored: &FlagSet) -> bool {
    match kind {
        StoreKind::Add => stored.is_subset(fetched),
        StoreKind::Remove => stored.is_disjoint(fetched),
        StoreKind::Replace => fetched == stored,
    }
}

impl Client {
    /// One step of the load: reselect or fill the map if needed, else a random command.
    pub async fn step(&mut self) -> Result<(), Broken> {
        let Some(sel) = self.sel.as_ref() else {
            // Both mailboxes equally: messages flow both ways (APPEND, COPY,
            // MOVE), and each is kept small only while someone has it open.
            let mailbox = if self.rng.chance(50) { "INBOX" } else { OTHER };
            let examine = self.rng.chance(15);
            self.select(mailbox, examine).await?;
            return Ok(());
        };
        if !sel.unknown().is_empty() && !std::mem::take(&mut self.skip_fill) {
            return self.fill().await;
        }
        let (len, read_only) = (sel.len(), sel.read_only);
        let target = self.shared.cfg.mailbox_target.max(4);
        let (big, small) = (len > target, len < target / 4);
        let here = sel.key.clone();
        let there = self.key(if here.1 == "INBOX" { OTHER } else { "INBOX" });
        self.mem.of(&here).size_hint = len;
        let other_big = self.mem.of(&there).size_hint > target;
        let w = |cond: bool, w: u32| if cond { w } else { 0 };
        let has = len > 0;
        let caps = self.caps;
        let table: [(Op, u32); 14] = [
            (Op::FetchFlags, w(has, 12)),
            (Op::FetchId, w(has, 8)),
            (Op::FetchBody, w(has, 2)),
            (Op::Store, w(has && !read_only, 25)),
            (
                Op::Append,
                if big {
                    3
                } else if small {
                    20
                } else {
                    10
                },
            ),
            (Op::Expunge, w(!read_only, if big { 6 } else { 2 })),
            (Op::UidExpunge, w(!read_only && caps.uidplus, if big { 6 } else { 2 })),
            (Op::Copy, w(has && !big && !other_big, 4)),
            (Op::Move, w(has && !read_only && caps.moves && !other_big, 4)),
            (Op::Idle, w(caps.idle, 3)),
            (Op::Noop, 6),
            (Op::Select, 3),
            (Op::Status, 2),
            (Op::Logout, w(self.shared.cfg.logout, 2)),
        ];
        let weights: Vec<u32> = table.iter().map(|(_, w)| *w).collect();
        match table[self.rng.weighted(&weights)].0 {
            Op::FetchFlags => self.fetch_flags().await,
            Op::FetchId => self.fetch_ids().await,
            Op::FetchBody => self.fetch_body().await,
            Op::Store => self.store(big).await,
            Op::Append => {
                let to = if other_big || self.rng.chance(60) { here.1.clone() } else { there.1.clone() };
                self.append(&to).await
            }
            Op::Expunge => self.expunge(false).await,
            Op::UidExpunge => self.expunge(true).await,
            Op::Copy => self.copy_or_move(false).await,
            Op::Move => self.copy_or_move(true).await,
            Op::Idle => {
                let (lo, hi) = self.shared.cfg.idle_millis;
                let d = Duration::from_millis(self.rng.range(lo, hi));
                let mut cmd = Cmd::new("IDLE", "IDLE");
                cmd.idle = Some(d);
                let a = self.cmd(cmd).await?;
                if !a.ok() {
                    self.violation("idle-failed", "IDLE", &a.raw, String::new());
                }
                Ok(())
            }
            Op::Noop => {
                let a = self.cmd(Cmd::new("NOOP", "NOOP")).await?;
                if !a.ok() {
                    self.violation("noop-failed", "NOOP", &a.raw, String::new());
                }
                Ok(())
            }
            Op::Select => {
                let mailbox = if self.rng.chance(50) { "INBOX" } else { OTHER };
                let examine = self.rng.chance(20);
                self.select(mailbox, examine).await.map(|_| ())
            }
            Op::Status => self.status().await,
            Op::Logout => {
                self.logout().await?;
                self.connect(true).await
            }
        }
    }

    /// `FETCH a:b (UID FLAGS)` for the messages whose UIDs the session does not know yet.
    pub async fn fill(&mut self) -> Result<(), Broken> {
        let Some(sel) = self.sel.as_ref() else { return Ok(()) };
        let unknown = sel.unknown();
        let (Some(first), Some(last)) = (unknown.first(), unknown.last()) else { return Ok(()) };
        let modseq = if self.condstore { " MODSEQ" } else { "" };
        let line = format!("FETCH {first}:{last} (UID FLAGS{modseq})");
        let last = *last;
        let a = self
            .cmd(Cmd::new("FETCH", line.clone()).ctx(Ctx { no_expunge: true, fetch: true, ..Ctx::default() }))
            .await?;
        if !a.ok() {
            self.fetch_failed(&line, &a.raw, a.code.as_ref());
            self.skip_fill = true;
            return Ok(());
        }
        // No EXPUNGE may come during a FETCH by number, so the slots asked
        // for are where they were; one still without UID was left out.
        let left = self.sel.as_ref().map(|s| s.unknown().into_iter().filter(|&n| n <= last).count()).unwrap_or(0);
        if left > 0 {
            self.violation("fetch-omitted-message", &line, &a.raw, format!("{left} messages came back without UID"));
            // The view cannot be completed: start over with a new SELECT.
            self.sel = None;
        }
        Ok(())
    }

    fn fetch_failed(&mut self, line: &str, raw: &str, code: Option<&Code>) {
        // RFC 2180 §4.1.2 allows NO for messages expunged elsewhere; §4.1.1
        // (return the data) is better. SERVERBUG was already counted.
        if code != Some(&Code::ServerBug) {
            self.notice("fetch-no", line, raw, "FETCH refused".into());
        }
    }

    /// Known (seq, uid) pairs to act on: a few random ones, or a run of
    /// consecutive sequence numbers.
    pub(crate) fn targets(&mut self, by_seq: bool, max: usize) -> Vec<(u32, u32)> {
        let Some(sel) = self.sel.as_ref() else { return Vec::new() };
        let known = sel.known();
        if known.is_empty() {
            return known;
        }
        let n = 1 + self.rng.below(max);
        if by_seq {
            let start = self.rng.below(known.len());
            let run: Vec<(u32, u32)> = known[start..].iter().take(n).copied().collect();
            // Only a run without gaps is one `a:b` range.
            let mut out = vec![run[0]];
            for w in run.windows(2) {
                if w[1].0 != w[0].0 + 1 {
                    break;
                }
                out.push(w[1]);
            }
            return out;
        }
        let mut out: Vec<(u32, u32)> = (0..n).filter_map(|_| self.rng.pick(&known).copied()).collect();
        out.sort_unstable();
        out.dedup();
        out
    }

    pub(crate) fn seq_set(targets: &[(u32, u32)]) -> String {
        match (targets.first(), targets.last()) {
            (Some(a), Some(b)) if a.0 != b.0 => format!("{}:{}", a.0, b.0),
            (Some(a), _) => a.0.to_string(),
            _ => "1".into(),
        }
    }

    /// Requested messages the session holds must come back (RFC 2180 §4.1.1);
    /// one that does not is a violation if it is still there at the end.
    fn expect_fetched(&mut self, line: &str, raw: &str, targets: &[(u32, u32)], answer: &crate::client::Answer) {
        let Some(key) = self.sel.as_ref().map(|s| s.key.clone()) else { return };
        for &(_, uid) in targets {
            let got = answer.untagged.iter().any(|s| s.uid == Some(uid) && matches!(s.resp, Untagged::Fetch { .. }));
            if !got {
                let violation =
                    self.pending_violation("fetch-omitted-message", line, raw, format!("no FETCH data for UID {uid}"));
                self.pending.push(Pending { key: key.clone(), uid, violation });
            }
        }
    }

    pub fn pending_violation(&self, kind: &'static str, command: &str, line: &str, detail: String) -> Violation {
        Violation { kind, session: self.session(), command: command.to_owned(), line: line.to_owned(), detail }
    }

    async fn fetch_flags(&mut self) -> Result<(), Broken> {
        let by_seq = self.rng.chance(30);
        let targets = self.targets(by_seq, 6);
        if targets.is_empty() {
            // Only messages whose UIDs are not known yet: nothing to name.
            return Ok(());
        }
        let modseq = if self.condstore { " MODSEQ" } else { "" };
        let (name, line) = if by_seq {
            ("FETCH", format!("FETCH {} (UID FLAGS{modseq})", Self::seq_set(&targets)))
        } else {
            let uids: Vec<u32> = targets.iter().map(|t| t.1).collect();
            ("UID FETCH", format!("UID FETCH {} (FLAGS{modseq})", uid_set(&uids)))
        };
        let ctx = Ctx { no_expunge: by_seq, fetch: true, ..Ctx::default() };
        let a = self.cmd(Cmd::new(name, line.clone()).ctx(ctx)).await?;
        if !a.ok() {
            self.fetch_failed(&line, &a.raw, a.code.as_ref());
            return Ok(());
        }
        self.expect_fetched(&line, &a.raw, &targets, &a);
        Ok(())
    }

    async fn fetch_ids(&mut self) -> Result<(), Broken> {
        let targets = self.targets(false, 8);
        if targets.is_empty() {
            return Ok(());
        }
        let uids: Vec<u32> = targets.iter().map(|t| t.1).collect();
        let line = format!("UID FETCH {} (UID BODY.PEEK[HEADER.FIELDS (X-Stress-Id)])", uid_set(&uids));
        let a = self.cmd(Cmd::new("UID FETCH", line.clone()).ctx(Ctx { fetch: true, ..Ctx::default() })).await?;
        if !a.ok() {
            self.fetch_failed(&line, &a.raw, a.code.as_ref());
            return Ok(());
        }
        self.expect_fetched(&line, &a.raw, &targets, &a);
        Ok(())
    }

    /// `BODY[]` (not PEEK) sets `\Seen` in a read-write mailbox.
    async fn fetch_body(&mut self) -> Result<(), Broken> {
        let targets = self.targets(false, 1);
        let Some(&(_, uid)) = targets.first() else { return Ok(()) };
        let line = format!("UID FETCH {uid} (UID BODY[])");
        let key = self.sel.as_ref().map(|s| s.key.clone()).unwrap_or_default();
        let sent = self.tick();
        self.shared.global.flags_begin(&key, &[uid], self.id, sent);
        let a = self.cmd(Cmd::new("UID FETCH", line.clone()).ctx(Ctx { fetch: true, ..Ctx::default() })).await;
        let done = self.tick();
        self.shared.global.flags_end(&key, &[uid], self.id, sent, done);
        let a = a?;
        if !a.ok() {
            self.fetch_failed(&line, &a.raw, a.code.as_ref());
            return Ok(());
        }
        self.expect_fetched(&line, &a.raw, &targets, &a);
        let flags_came = a
            .untagged
            .iter()
            .any(|s| s.uid == Some(uid) && matches!(&s.resp, Untagged::Fetch { att, .. } if att.flags.is_some()));
        let condstore = self.condstore;
        let Some(sel) = self.sel.as_mut() else { return Ok(()) };
        if sel.read_only || flags_came {
            return Ok(());
        }
        if let Some(slot) = sel.slot_of(uid)
            && let Some(flags) = slot.flags.as_mut()
            && flags.insert("\\seen".into())
        {
            // RFC 3501 §6.4.5: the changed flags SHOULD come with the FETCH.
            if condstore {
                slot.modseq = None;
            }
            self.notice("body-fetch-without-flags", &line, &a.raw, format!("\\Seen set on UID {uid} without FLAGS"));
        }
        Ok(())
    }

    fn pick_flags(&mut self, kind: StoreKind, big: bool) -> Vec<&'static str> {
        let keywords_ok = self.sel.as_ref().is_some_and(|s| s.keyword_allowed("$Stress0"));
        let n = match kind {
            StoreKind::Replace => self.rng.below(4),
            _ => 1 + self.rng.below(2),
        };
        let mut out = Vec::new();
        for _ in 0..n {
            let f = if keywords_ok && self.rng.chance(35) {
                KEYWORDS[self.rng.below(KEYWORDS.len())]
            } else {
                SYSTEM[self.rng.below(SYSTEM.len() - 1)]
            };
            out.push(f);
        }
        // \Deleted is what makes EXPUNGE remove anything: more of it when the mailbox is big.
        let deleted = match kind {
            StoreKind::Remove => 20,
            _ if big => 45,
            _ => 10,
        };
        if self.rng.chance(deleted) {
            out.push("\\Deleted");
        }
        out.sort_unstable();
        out.dedup();
        out
    }

    async fn store(&mut self, big: bool) -> Result<(), Broken> {
        if !self.nil_tried && self.rng.chance(1) && self.rng.chance(30) {
            return self.store_nil().await;
        }
        let by_seq = self.rng.chance(25);
        let targets = self.targets(by_seq, 4);
        if targets.is_empty() {
            return Ok(());
        }
        let kind = [StoreKind::Add, StoreKind::Remove, StoreKind::Replace][self.rng.weighted(&[45, 35, 20])];
        let flags = self.pick_flags(kind, big);
        let silent = self.rng.chance(30);
        let mut unchanged = None;
        if self.condstore && self.rng.chance(25) {
            let sel = self.sel.as_ref();
            let known: Option<Vec<u64>> =
                targets.iter().map(|t| sel.and_then(|s| s.slots.get(t.0 as usize - 1)?.modseq)).collect();
            let base = known.and_then(|m| m.into_iter().min()).or(sel.and_then(|s| s.highest_modseq));
            if let Some(b) = base {
                unchanged = Some(if self.rng.chance(25) { b.saturating_sub(1) } else { b });
            }
        }
        let set =
            if by_seq { Self::seq_set(&targets) } else { uid_set(&targets.iter().map(|t| t.1).collect::<Vec<_>>()) };
        let op = match kind {
            StoreKind::Add => "+FLAGS",
            StoreKind::Remove => "-FLAGS",
            StoreKind::Replace => "FLAGS",
        };
        let name = if by_seq { "STORE" } else { "UID STORE" };
        let stored = flag_set(&flags);
        // Whether the STORE changes a message, as far as this session knows:
        // a server need not send FETCH (nor bump MODSEQ) for no change.
        let changes: Vec<(u32, bool)> = targets
            .iter()
            .map(|&(_, uid)| {
                let base = self.sel.as_mut().and_then(|s| s.slot_of(uid)).and_then(|s| s.flags.clone());
                (uid, base.is_none_or(|b| apply_store(kind, &b, &stored) != b))
            })
            .collect();
        let modifier = unchanged.map(|m| format!("(UNCHANGEDSINCE {m}) ")).unwrap_or_default();
        let line = format!("{name} {set} {modifier}{op}{} ({})", if silent { ".SILENT" } else { "" }, flags.join(" "));
        let uids: Vec<u32> = targets.iter().map(|t| t.1).collect();
        let (g, from) = (&self.shared.global, self.sel.as_ref().map(|s| s.key.clone()).unwrap_or_default());
        let sent = g.tick();
        g.flags_begin(&from, &uids, self.id, sent);
        let a = self.cmd(Cmd::new(name, line.clone()).ctx(Ctx { no_expunge: by_seq, ..Ctx::default() })).await;
        let done = self.tick();
        self.shared.global.flags_end(&from, &uids, self.id, sent, done);
        let a = a?;
        if !a.ok() {
            // RFC 2180 §4.2: a STORE on messages expunged elsewhere applies to
            // the rest and answers OK; NO [EXPUNGEISSUED] is not that.
            let kind = if a.code == Some(Code::ExpungeIssued) { "store-expungeissued" } else { "store-failed" };
            if a.status == Status::No && a.code != Some(Code::ServerBug) {
                self.violation(kind, &line, &a.raw, String::new());
            }
            return Ok(());
        }
        let modified: Vec<u32> = match &a.code {
            Some(Code::Modified(set)) => {
                let listed = parse::expand(set, 10_000).unwrap_or_default();
                // MODIFIED lists sequence numbers for STORE, UIDs for UID STORE.
                let uids: Vec<u32> = if by_seq {
                    listed.iter().filter_map(|&n| targets.iter().find(|t| t.0 == n).map(|t| t.1).or(Some(0))).collect()
                } else {
                    listed
                };
                if uids.iter().any(|u| !targets.iter().any(|t| t.1 == *u)) {
                    self.violation(
                        "modified-outside-set",
                        &line,
                        &a.raw,
                        "MODIFIED names a message not in the set".into(),
                    );
                }
                uids
            }
            _ => Vec::new(),
        };
        let Some(key) = self.sel.as_ref().map(|s| s.key.clone()) else { return Ok(()) };
        for &(_, uid) in &targets {
            if modified.contains(&uid) {
                continue;
            }
            let fetched: Vec<(Option<FlagSet>, Option<u64>)> = a
                .untagged
                .iter()
                .filter(|s| s.uid == Some(uid))
                .filter_map(|s| match &s.resp {
                    Untagged::Fetch { att, .. } => Some((att.flags.as_deref().map(flag_set), att.modseq)),
                    _ => None,
                })
                .collect();
            let with_flags: Vec<&FlagSet> = fetched.iter().filter_map(|f| f.0.as_ref()).collect();
            let still_held = self.sel.as_ref().is_some_and(|s| s.seq_of(uid).is_some());
            let changed = changes.iter().any(|&(u, c)| u == uid && c);
            if !silent {
                if with_flags.is_empty() {
                    // Another session may have made the same change first,
                    // unannounced yet; the final comparison shows whether the
                    // session was ever told. Worth noting, not a violation.
                    if still_held && changed {
                        self.notice("store-without-fetch", &line, &a.raw, format!("no FETCH for UID {uid}"));
                    }
                } else if !with_flags.iter().any(|f| satisfies(kind, f, &stored))
                    // A server may show the flags as they are when it writes
                    // the FETCH, after another client's change.
                    && !self.shared.global.flags_touched_by_others(&key, uid, self.id, sent, done)
                {
                    // The whole response: what came before and after the FETCH tells a stale report from a lost change.
                    let lines: Vec<&str> = a.untagged.iter().map(|s| s.raw.as_str()).collect();
                    let detail = format!(
                        "UID {uid}: stored {op} {stored:?}, FETCH said {:?}; response: {} / {}",
                        with_flags,
                        lines.join(" / "),
                        a.raw
                    );
                    let raw = a.untagged.iter().find(|s| s.uid == Some(uid)).map(|s| s.raw.clone()).unwrap_or_default();
                    self.violation("store-fetch-wrong-flags", &line, &raw, detail);
                }
                continue;
            }
            // .SILENT: the client applies its own change to its cache.
            let condstore = self.condstore;
            if let Some(slot) = self.sel.as_mut().and_then(|s| s.slot_of(uid)) {
                if with_flags.is_empty()
                    && let Some(base) = slot.flags.as_ref()
                {
                    slot.flags = Some(apply_store(kind, base, &stored));
                }
                if condstore && !fetched.iter().any(|f| f.1.is_some()) {
                    slot.modseq = None;
                    if unchanged.is_some() && changed {
                        // RFC 7162 §3.1.3: with UNCHANGEDSINCE a FETCH with
                        // MODSEQ is sent even for .SILENT.
                        let v = self.pending_violation(
                            "unchangedsince-silent-without-modseq",
                            &line,
                            &a.raw,
                            format!("UID {uid}"),
                        );
                        self.pending.push(Pending { key: key.clone(), uid, violation: v });
                    }
                }
            }
        }
        Ok(())
    }

    /// A keyword named NIL is not a flag (RFC 9051 §9: flag-keyword excludes
    /// NIL... as an atom it would read as nil in FLAGS); STORE must refuse it.
    async fn store_nil(&mut self) -> Result<(), Broken> {
        self.nil_tried = true;
        let targets = self.targets(false, 1);
        let Some(&(_, uid)) = targets.first() else { return Ok(()) };
        let line = format!("UID STORE {uid} +FLAGS.SILENT (NIL)");
        let cmd = Cmd::new("UID STORE", line.clone()).ctx(Ctx { expect_fail: true, ..Ctx::default() });
        let a = self.cmd(cmd).await?;
        if a.ok() {
            self.violation("nil-keyword-accepted", &line, &a.raw, "STORE of a keyword named NIL answered OK".into());
            // It is stored now: keep the model in step so the end compares the rest.
            if let Some(flags) = self.sel.as_mut().and_then(|s| s.slot_of(uid)).and_then(|s| s.flags.as_mut()) {
                flags.insert("nil".into());
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sets_and_messages() {
        assert_eq!(uid_set(&[5, 3, 4, 9, 11, 10]), "3:5,9:11");
        assert_eq!(uid_set(&[7]), "7");
        for pick in [0, 5, 50, 99_999] {
            let m = message("r-1-2", pick);
            assert_eq!(parse::stress_id(&m).as_deref(), Some("r-1-2"));
            assert!(m.ends_with(b"\r\n"));
        }
    }

    #[test]
    fn store_semantics() {
        let base = flag_set(&["\\seen", "$a"]);
        let s = flag_set(&["$a"]);
        assert_eq!(apply_store(StoreKind::Remove, &base, &s), flag_set(&["\\seen"]));
        assert!(satisfies(StoreKind::Add, &base, &s));
        assert!(!satisfies(StoreKind::Replace, &base, &s));
    }
}
