//! The commands that add, remove or move messages (APPEND, EXPUNGE,
//! UID EXPUNGE, COPY, MOVE) and STATUS, with the checks on what the server
//! says it created (APPENDUID, COPYUID) and on what STATUS reports.

use crate::client::{Broken, Client, Cmd, OTHER};
use crate::ops::{message, uid_set};
use crate::parse::{self, Code, Untagged};
use crate::wire::quote;

impl Client {
    /// An APPEND to INBOX for the set-up.
    pub async fn seed_append(&mut self) -> Result<(), Broken> {
        self.append("INBOX").await
    }

    pub(crate) async fn append(&mut self, mailbox: &str) -> Result<(), Broken> {
        self.appended += 1;
        let id = format!("{}-{}-{}", self.shared.run_id, self.label(), self.appended);
        let size_pick = self.rng.below(100_000);
        let body = message(&id, size_pick);
        let flags = match self.rng.below(10) {
            0..=5 => "",
            6..=7 => "(\\Seen) ",
            8 => "(\\Flagged \\Seen) ",
            _ => "(\\Draft) ",
        };
        let key = self.key(mailbox);
        let before = self.mem.of(&key).max_uid_seen;
        let line = format!("APPEND {} {flags}", quote(mailbox));
        let mut cmd = Cmd::new("APPEND", line.trim_end().to_owned());
        cmd.literal = Some(body);
        let a = self.cmd(cmd).await?;
        if !a.ok() {
            if a.code != Some(Code::ServerBug) {
                self.violation("append-failed", &line, &a.raw, String::new());
            }
            return Ok(());
        }
        match a.code {
            Some(Code::AppendUid { validity, ref uids }) => {
                let uid = uids.first().map(|r| r.0).unwrap_or(0);
                let mem = self.mem.of(&key);
                let mut problems = Vec::new();
                if mem.uidvalidity.is_some_and(|v| v != validity) {
                    problems.push((
                        "uidvalidity-changed",
                        format!("APPENDUID {validity}, mailbox has {:?}", mem.uidvalidity),
                    ));
                }
                if uid <= before {
                    problems.push((
                        "appenduid-not-above-earlier",
                        format!("APPENDUID {uid}, but UID {before} was seen before"),
                    ));
                }
                if mem.expunged.contains(&uid) {
                    problems.push(("uid-reappeared", format!("APPENDUID {uid} was seen expunged")));
                }
                mem.max_uid_seen = mem.max_uid_seen.max(uid);
                if let Err(e) = self.shared.global.appended(&key, uid, &id) {
                    problems.push(("wrong-message", e));
                }
                for (k, d) in problems {
                    self.violation(k, &line, &a.raw, d);
                }
            }
            _ if self.caps.uidplus => self.violation("append-without-appenduid", &line, &a.raw, String::new()),
            _ => {}
        }
        Ok(())
    }

    pub(crate) async fn expunge(&mut self, by_uid: bool) -> Result<(), Broken> {
        let (name, line) = if by_uid {
            let deleted: Vec<u32> = self
                .sel
                .as_ref()
                .map(|s| {
                    s.slots
                        .iter()
                        .filter(|x| x.flags.as_ref().is_some_and(|f| f.contains("\\deleted")))
                        .filter_map(|x| x.uid)
                        .collect()
                })
                .unwrap_or_default();
            let mut uids: Vec<u32> = deleted.into_iter().filter(|_| self.rng.chance(70)).collect();
            uids.extend(self.targets(false, 3).iter().map(|t| t.1));
            if uids.is_empty() {
                return Ok(());
            }
            ("UID EXPUNGE", format!("UID EXPUNGE {}", uid_set(&uids)))
        } else {
            ("EXPUNGE", "EXPUNGE".to_owned())
        };
        let a = self.cmd(Cmd::new(name, line.clone())).await?;
        if !a.ok() && a.code != Some(Code::ServerBug) {
            self.violation("expunge-failed", &line, &a.raw, String::new());
        }
        Ok(())
    }

    pub(crate) async fn copy_or_move(&mut self, is_move: bool) -> Result<(), Broken> {
        let Some(from) = self.sel.as_ref().map(|s| s.key.clone()) else { return Ok(()) };
        let by_seq = self.rng.chance(20);
        let targets = self.targets(by_seq, 3);
        if targets.is_empty() {
            return Ok(());
        }
        let other = if from.1 == "INBOX" { OTHER } else { "INBOX" };
        let dest = if !is_move && self.rng.chance(25) { from.1.clone() } else { other.to_owned() };
        let to = self.key(&dest);
        let before = self.mem.of(&to).max_uid_seen;
        let verb = if is_move { "MOVE" } else { "COPY" };
        let (name, set) = match (is_move, by_seq) {
            (true, true) => ("MOVE", Self::seq_set(&targets)),
            (true, false) => ("UID MOVE", uid_set(&targets.iter().map(|t| t.1).collect::<Vec<_>>())),
            (false, true) => ("COPY", Self::seq_set(&targets)),
            (false, false) => ("UID COPY", uid_set(&targets.iter().map(|t| t.1).collect::<Vec<_>>())),
        };
        let prefix = if by_seq { "" } else { "UID " };
        let line = format!("{prefix}{verb} {set} {}", quote(&dest));
        let a = self.cmd(Cmd::new(name, line.clone())).await?;
        if !a.ok() {
            if a.code == Some(Code::ExpungeIssued) {
                // RFC 2180 §4.4.1 allows refusing a COPY of expunged messages.
                self.notice("copy-move-expungeissued", &line, &a.raw, String::new());
            } else if a.code != Some(Code::ServerBug) {
                self.violation(if is_move { "move-failed" } else { "copy-failed" }, &line, &a.raw, String::new());
            }
            return Ok(());
        }
        let copyuid = a.codes().find_map(|c| match c {
            Code::CopyUid { validity, src, dst } => Some((*validity, src.clone(), dst.clone())),
            _ => None,
        });
        let mut problems = Vec::new();
        match copyuid {
            Some((validity, src, dst)) => {
                let (Some(src), Some(dst)) = (parse::expand(&src, 10_000), parse::expand(&dst, 10_000)) else {
                    problems.push(("copyuid-malformed", "COPYUID sets too large".into()));
                    return Ok(());
                };
                if src.len() != dst.len() {
                    problems.push((
                        "copyuid-malformed",
                        format!("{} source UIDs, {} destination UIDs", src.len(), dst.len()),
                    ));
                }
                let mem = self.mem.of(&to);
                if mem.uidvalidity.is_some_and(|v| v != validity) {
                    problems.push((
                        "uidvalidity-changed",
                        format!("COPYUID {validity}, mailbox has {:?}", mem.uidvalidity),
                    ));
                }
                for (&s, &d) in src.iter().zip(&dst) {
                    if !targets.iter().any(|t| t.1 == s) {
                        problems.push(("copyuid-outside-set", format!("COPYUID names source UID {s}, not requested")));
                    }
                    if d <= before {
                        problems.push((
                            "copyuid-not-above-earlier",
                            format!("new UID {d}, but UID {before} was seen before"),
                        ));
                    }
                    let mem = self.mem.of(&to);
                    mem.max_uid_seen = mem.max_uid_seen.max(d);
                    if let Err(e) = self.shared.global.copied(&from, s, &to, d) {
                        problems.push(("wrong-message", e));
                    }
                    if is_move {
                        // RFC 6851 §3.3: the moved messages are expunged (and
                        // announced) before the tagged OK.
                        if self.sel.as_ref().is_some_and(|x| x.seq_of(s).is_some()) {
                            problems.push(("move-without-expunge", format!("UID {s} moved but still in the session")));
                        }
                        let t = self.tick();
                        self.shared.global.expunged(&from, s, t);
                    }
                }
            }
            None if self.caps.uidplus => {
                // Nothing copied is fine if the messages were gone (expunged
                // elsewhere); if one is still there at the end, COPYUID was due
                // (RFC 4315 §3).
                for &(_, uid) in &targets {
                    let v = self.pending_violation(
                        if is_move { "move-without-copyuid" } else { "copy-without-copyuid" },
                        &line,
                        &a.raw,
                        format!("UID {uid}; UIDPLUS is advertised"),
                    );
                    self.pending.push(crate::client::Pending { key: from.clone(), uid, violation: v });
                }
            }
            None => {}
        }
        for (k, d) in problems {
            self.violation(k, &line, &a.raw, d);
        }
        Ok(())
    }

    pub(crate) async fn status(&mut self) -> Result<(), Broken> {
        let selected = self.sel.as_ref().map(|s| s.key.1.clone()).unwrap_or_default();
        let mailbox = if selected == "INBOX" { OTHER } else { "INBOX" };
        let key = self.key(mailbox);
        let modseq = if self.condstore { " HIGHESTMODSEQ" } else { "" };
        let line = format!("STATUS {} (MESSAGES UIDNEXT UIDVALIDITY{modseq})", quote(mailbox));
        let max_uid = self.mem.of(&key).max_uid_seen;
        let a = self.cmd(Cmd::new("STATUS", line.clone())).await?;
        if !a.ok() {
            self.violation("status-failed", &line, &a.raw, String::new());
            return Ok(());
        }
        let Some((items, raw)) = a.untagged.iter().find_map(|s| match &s.resp {
            Untagged::Status { items, .. } => Some((items.clone(), s.raw.clone())),
            _ => None,
        }) else {
            self.violation("status-missing", &line, &a.raw, "no STATUS response".into());
            return Ok(());
        };
        let mut problems = Vec::new();
        let mem = self.mem.of(&key);
        for (name, v) in items {
            match name.as_str() {
                "MESSAGES" => mem.size_hint = v as usize,
                "UIDNEXT" if v <= u64::from(max_uid) => {
                    problems
                        .push(("uidnext-not-above-seen-uid", format!("STATUS UIDNEXT {v}, UID {max_uid} was seen")));
                }
                "UIDVALIDITY" if mem.uidvalidity.is_some_and(|u| u64::from(u) != v) => {
                    problems
                        .push(("uidvalidity-changed", format!("STATUS UIDVALIDITY {v}, was {:?}", mem.uidvalidity)));
                }
                "HIGHESTMODSEQ" => crate::model::check_highest_modseq(v, true, mem, &mut problems),
                _ => {}
            }
        }
        for (k, d) in problems {
            self.violation(k, &line, &raw, d);
        }
        Ok(())
    }
}
