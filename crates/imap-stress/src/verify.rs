//! After the load: every client, once all have stopped changing anything,
//! polls (NOOP) and asks for the whole mailbox (`UID FETCH 1:* (FLAGS
//! MODSEQ)`); its model must equal the answer. Then a fresh session per
//! account reads every mailbox with `X-Stress-Id`s, and the run's global
//! knowledge is held against it: every UID the server created and nobody
//! saw expunged is there, no UID seen expunged is, every message holds the
//! id its UID was created with, and all sessions agree on flags.

use crate::client::{Broken, Client, Cmd, Ctx, MAILBOXES, Pending};
use crate::global::MailboxKey;
use crate::model::{FlagSet, flag_set};
use crate::parse::Untagged;
use crate::report::{Findings, Violation};
use std::collections::{BTreeMap, BTreeSet};

/// One session's final answer for one mailbox: UID -> (flags, MODSEQ).
#[derive(Debug, Clone)]
pub struct FinalView {
    pub key: MailboxKey,
    pub session: String,
    pub messages: BTreeMap<u32, (FlagSet, Option<u64>)>,
}

const FINAL: &str = "(final check)";

impl Client {
    /// `UID FETCH 1:*` of the selected mailbox, after a NOOP and filling in
    /// unknown UIDs. Compares with the model when `compare`.
    pub async fn final_view(&mut self, compare: bool, with_ids: bool) -> Result<Option<FinalView>, Broken> {
        let a = self.cmd(Cmd::new("NOOP", "NOOP")).await?;
        if !a.ok() {
            self.violation("noop-failed", "NOOP", &a.raw, String::new());
        }
        for _ in 0..3 {
            if self.sel.as_ref().is_none_or(|s| s.unknown().is_empty()) {
                break;
            }
            self.fill().await?;
        }
        let Some(sel) = self.sel.as_ref() else { return Ok(None) };
        let key = sel.key.clone();
        let model: BTreeMap<u32, (Option<FlagSet>, Option<u64>)> =
            sel.slots.iter().filter_map(|s| Some((s.uid?, (s.flags.clone(), s.modseq)))).collect();
        let unknown = sel.unknown().len();
        if unknown > 0 {
            self.violation("final-unknown-uids", FINAL, "", format!("{unknown} messages whose UID never came"));
        }
        let modseq = if self.condstore { " MODSEQ" } else { "" };
        let ids = if with_ids { " BODY.PEEK[HEADER.FIELDS (X-Stress-Id)]" } else { "" };
        let line = format!("UID FETCH 1:* (UID FLAGS{modseq}{ids})");
        let a = self.cmd(Cmd::new("UID FETCH", line.clone()).ctx(Ctx { fetch: true, ..Ctx::default() })).await?;
        if !a.ok() {
            self.violation("final-fetch-failed", &line, &a.raw, String::new());
            return Ok(None);
        }
        let mut messages = BTreeMap::new();
        for s in &a.untagged {
            match &s.resp {
                Untagged::Fetch { att, .. } => {
                    if let (Some(uid), Some(flags)) = (s.uid, &att.flags) {
                        messages.insert(uid, (flag_set(flags), att.modseq));
                    }
                }
                Untagged::Exists(_) | Untagged::Expunge(_) | Untagged::Vanished { .. } if compare => {
                    self.violation(
                        "update-after-quiesce",
                        &line,
                        &s.raw,
                        "a change after all clients had stopped".into(),
                    );
                }
                _ => {}
            }
        }
        if compare {
            self.compare(&line, &model, &messages);
        }
        Ok(Some(FinalView { key, session: self.session(), messages }))
    }

    fn compare(
        &mut self,
        line: &str,
        model: &BTreeMap<u32, (Option<FlagSet>, Option<u64>)>,
        server: &BTreeMap<u32, (FlagSet, Option<u64>)>,
    ) {
        for uid in model.keys().filter(|u| !server.contains_key(u)) {
            self.violation(
                "final-uid-set-differs",
                line,
                "",
                format!("the session holds UID {uid}, the server has no such message"),
            );
        }
        for uid in server.keys().filter(|u| !model.contains_key(u)) {
            self.violation(
                "final-uid-set-differs",
                line,
                "",
                format!("the server has UID {uid}, the session was never told"),
            );
        }
        for (uid, (flags, modseq)) in server {
            let Some((mflags, mmodseq)) = model.get(uid) else { continue };
            if let Some(m) = mflags.as_ref().filter(|m| *m != flags) {
                self.violation(
                    "final-flags-differ",
                    line,
                    "",
                    format!("UID {uid}: the session holds {m:?}, the server has {flags:?}"),
                );
            }
            if let (Some(m), Some(s)) = (mmodseq, modseq)
                && m != s
            {
                self.violation(
                    "final-modseq-differs",
                    line,
                    "",
                    format!("UID {uid}: the session holds MODSEQ {m}, the server has {s}"),
                );
            }
        }
    }

    /// The last phase of a load client: back online if needed, then the final view.
    pub async fn finish(&mut self) -> Option<FinalView> {
        if !self.connected()
            && let Err(e) = self.connect(false).await
        {
            self.lost(e, "(reconnect for the final check)");
            return None;
        }
        if self.sel.is_none() {
            match self.select("INBOX", false).await {
                Ok(true) => {}
                Ok(false) => return None,
                Err(e) => {
                    self.lost(e, "(select for the final check)");
                    return None;
                }
            }
        }
        let view = match self.final_view(true, false).await {
            Ok(v) => v,
            Err(e) => {
                self.lost(e, FINAL);
                return None;
            }
        };
        if self.logout().await.is_err() {
            self.drop_connection();
        }
        view
    }

    /// The auditor: a fresh session on one account reads each mailbox.
    pub async fn audit(&mut self) -> Vec<FinalView> {
        let mut views = Vec::new();
        if let Err(e) = self.connect(false).await {
            self.lost(e, "(audit login)");
            return views;
        }
        for mailbox in MAILBOXES {
            match self.select(mailbox, true).await {
                Ok(true) => {}
                Ok(false) => continue,
                Err(e) => {
                    self.lost(e, "(audit)");
                    return views;
                }
            }
            match self.final_view(false, true).await {
                Ok(Some(v)) => views.push(v),
                Ok(None) => {}
                Err(e) => {
                    self.lost(e, "(audit)");
                    return views;
                }
            }
        }
        if self.logout().await.is_err() {
            self.drop_connection();
        }
        views
    }
}

fn violation(kind: &'static str, session: &str, detail: String) -> Violation {
    Violation { kind, session: session.to_owned(), command: FINAL.into(), line: String::new(), detail }
}

/// Everything held against the audit's views: created UIDs present,
/// expunged ones absent, deferred checks decided, sessions in agreement.
pub fn judge(
    global: &crate::global::Global,
    audit: &[FinalView],
    sessions: &[FinalView],
    pending: Vec<Pending>,
    findings: &mut Findings,
) {
    for view in audit {
        let present: BTreeSet<u32> = view.messages.keys().copied().collect();
        global.with_facts(&view.key, |facts| {
            for &uid in &facts.created {
                let excused = facts.expunged.contains_key(&uid)
                    || facts.unknown_expunges.iter().any(|&(lo, hi)| lo < uid && uid < hi);
                if !excused && !present.contains(&uid) {
                    findings.violation(violation(
                        "acknowledged-message-missing",
                        "audit",
                        format!(
                            "{:?} UID {uid} was created (APPENDUID/COPYUID) and never seen expunged, but is gone",
                            view.key
                        ),
                    ));
                }
            }
            for uid in facts.expunged.keys().filter(|u| present.contains(u)) {
                findings.violation(violation(
                    "expunged-message-present",
                    "audit",
                    format!("{:?} UID {uid} was seen expunged but is still there", view.key),
                ));
            }
        });
    }
    for p in pending {
        let still_there = audit.iter().any(|v| v.key == p.key && v.messages.contains_key(&p.uid));
        if still_there {
            findings.violation(p.violation);
        }
    }
    // All sessions that ended on a mailbox, and the auditor, must agree.
    for s in sessions {
        let Some(a) = audit.iter().find(|a| a.key == s.key) else { continue };
        let uids_a: BTreeSet<&u32> = a.messages.keys().collect();
        let uids_s: BTreeSet<&u32> = s.messages.keys().collect();
        if uids_a != uids_s {
            let only_s: Vec<_> = uids_s.difference(&uids_a).collect();
            let only_a: Vec<_> = uids_a.difference(&uids_s).collect();
            findings.violation(violation(
                "sessions-disagree",
                &s.session,
                format!("{:?}: UIDs only this session got {only_s:?}, only the auditor got {only_a:?}", s.key),
            ));
            continue;
        }
        for (uid, (flags, modseq)) in &s.messages {
            let Some((fa, ma)) = a.messages.get(uid) else { continue };
            if fa != flags {
                findings.violation(violation(
                    "sessions-disagree",
                    &s.session,
                    format!("{:?} UID {uid}: flags {flags:?}, the auditor got {fa:?}", s.key),
                ));
            }
            if let (Some(m), Some(n)) = (modseq, ma)
                && m != n
            {
                findings.violation(violation(
                    "sessions-disagree",
                    &s.session,
                    format!("{:?} UID {uid}: MODSEQ {m}, the auditor got {n}", s.key),
                ));
            }
        }
    }
}
