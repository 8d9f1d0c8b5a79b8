//! What all sessions know together: which `X-Stress-Id` each UID holds,
//! which UIDs the server said it created (APPENDUID, COPYUID), which UIDs
//! some session saw expunged, each mailbox's UIDVALIDITY.
//!
//! Time here is a logical clock: every expunge is stamped with it, and a
//! session notes the clock when it sends a command. A response may only be
//! held against an expunge stamped *before* its command was sent; an
//! expunge another session learns of while our command runs may be newer
//! than the data the server is sending us.

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};

/// (account, mailbox name).
pub type MailboxKey = (String, String);

/// Alias chains longer than this are treated as unresolved (a COPY of a
/// COPY of a COPY ... whose first APPEND nobody has reported yet).
const MAX_ALIAS_HOPS: usize = 64;

#[derive(Debug, Clone)]
enum IdEntry {
    /// From our APPEND, or as first seen in a FETCH (`None`: no header).
    Id(Option<String>),
    /// A copy: the same message as this UID of that mailbox.
    Alias(MailboxKey, u32),
}

#[derive(Debug, Default)]
pub struct MailboxFacts {
    pub uidvalidity: Option<u32>,
    ids: HashMap<u32, IdEntry>,
    /// UIDs an APPENDUID or COPYUID reported.
    pub created: BTreeSet<u32>,
    /// UID -> clock at which some session learned it was expunged.
    pub expunged: HashMap<u32, u64>,
    /// Open intervals (lo, hi) in which a message whose UID the session did
    /// not know was expunged: a created UID missing at the end is excused
    /// if one of these covers it.
    pub unknown_expunges: Vec<(u32, u32)>,
}

/// Flag changes kept per message for [`Global::flags_touched_by_others`].
const WINDOWS_PER_MESSAGE: usize = 16;

/// A flag change in flight or done: (client, sent, answered).
type Window = (usize, u64, Option<u64>);

#[derive(Debug, Default)]
struct State {
    mailboxes: HashMap<MailboxKey, MailboxFacts>,
    /// Per message, the recent commands that may change its flags.
    windows: HashMap<(MailboxKey, u32), Vec<Window>>,
}

#[derive(Debug, Default)]
pub struct Global {
    clock: AtomicU64,
    state: Mutex<State>,
}

impl Global {
    fn state(&self) -> MutexGuard<'_, State> {
        // A panic elsewhere while holding the lock leaves plain data behind;
        // keep checking with it rather than stopping the run.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The next tick; what happened before it has a smaller stamp.
    pub fn tick(&self) -> u64 {
        self.clock.fetch_add(1, Ordering::SeqCst) + 1
    }

    /// A mailbox's UIDVALIDITY as reported; `Err` if it changed.
    pub fn uidvalidity(&self, key: &MailboxKey, v: u32) -> Result<(), String> {
        let mut s = self.state();
        let facts = s.mailboxes.entry(key.clone()).or_default();
        match facts.uidvalidity {
            Some(old) if old != v => Err(format!("UIDVALIDITY of {key:?} was {old}, now {v}")),
            _ => {
                facts.uidvalidity = Some(v);
                Ok(())
            }
        }
    }

    /// Our APPEND of the message with `id` became `uid` (APPENDUID).
    pub fn appended(&self, key: &MailboxKey, uid: u32, id: &str) -> Result<(), String> {
        let mut s = self.state();
        let known = resolve(&s, key, uid);
        let facts = s.mailboxes.entry(key.clone()).or_default();
        facts.created.insert(uid);
        let entry = IdEntry::Id(Some(id.to_owned()));
        match known {
            Some(Some(other)) if other != id => {
                facts.ids.insert(uid, entry);
                Err(format!("APPENDUID {uid} of {key:?} for {id}, but a FETCH of that UID showed {other}"))
            }
            Some(None) => Err(format!("APPENDUID {uid} of {key:?} for {id}, but a FETCH showed no X-Stress-Id")),
            _ => {
                facts.ids.insert(uid, entry);
                Ok(())
            }
        }
    }

    /// COPYUID / MOVE: `dst` in `to` is a copy of `src` in `from`.
    pub fn copied(&self, from: &MailboxKey, src: u32, to: &MailboxKey, dst: u32) -> Result<(), String> {
        let mut s = self.state();
        let source = resolve(&s, from, src);
        let before = resolve(&s, to, dst);
        let facts = s.mailboxes.entry(to.clone()).or_default();
        facts.created.insert(dst);
        if facts.ids.contains_key(&dst) {
            if let (Some(a), Some(b)) = (&source, &before)
                && a != b
            {
                return Err(format!("COPYUID {src}->{dst}: source holds {a:?}, but the copy was seen holding {b:?}"));
            }
            if source.is_none() {
                return Ok(());
            }
        }
        let entry = match source {
            Some(id) => IdEntry::Id(id),
            None => IdEntry::Alias(from.clone(), src),
        };
        facts.ids.insert(dst, entry);
        Ok(())
    }

    /// A FETCH showed `id` for `uid`; `Err` if that contradicts what is known.
    pub fn observed(&self, key: &MailboxKey, uid: u32, id: Option<&str>) -> Result<(), String> {
        let mut s = self.state();
        match resolve(&s, key, uid) {
            Some(known) if known.as_deref() != id => {
                Err(format!("UID {uid} of {key:?} holds X-Stress-Id {known:?}, the server returned {id:?}"))
            }
            Some(_) => Ok(()),
            None => {
                let facts = s.mailboxes.entry(key.clone()).or_default();
                facts.ids.entry(uid).or_insert_with(|| IdEntry::Id(id.map(str::to_owned)));
                Ok(())
            }
        }
    }

    /// Some session learned at `clock` that `uid` is gone.
    pub fn expunged(&self, key: &MailboxKey, uid: u32, clock: u64) {
        let mut s = self.state();
        s.mailboxes.entry(key.clone()).or_default().expunged.entry(uid).or_insert(clock);
    }

    /// A message whose UID lies in the open interval (lo, hi) was expunged.
    pub fn unknown_expunge(&self, key: &MailboxKey, lo: u32, hi: u32) {
        let mut s = self.state();
        s.mailboxes.entry(key.clone()).or_default().unknown_expunges.push((lo, hi));
    }

    /// Whether some session had learned before `clock` that `uid` is gone.
    pub fn expunged_before(&self, key: &MailboxKey, uid: u32, clock: u64) -> Option<u64> {
        let s = self.state();
        s.mailboxes.get(key)?.expunged.get(&uid).copied().filter(|&at| at < clock)
    }

    /// The id a UID holds, if known (`Some(None)`: a message without one).
    #[cfg(test)]
    pub fn id_of(&self, key: &MailboxKey, uid: u32) -> Option<Option<String>> {
        resolve(&self.state(), key, uid)
    }

    /// A command that may change these messages' flags was sent at `sent`.
    pub fn flags_begin(&self, key: &MailboxKey, uids: &[u32], client: usize, sent: u64) {
        let mut s = self.state();
        for &uid in uids {
            let w = s.windows.entry((key.clone(), uid)).or_default();
            if w.len() >= WINDOWS_PER_MESSAGE
                && let Some(i) = w.iter().position(|x| x.2.is_some())
            {
                w.remove(i);
            }
            w.push((client, sent, None));
        }
    }

    /// ... and answered at `done`.
    pub fn flags_end(&self, key: &MailboxKey, uids: &[u32], client: usize, sent: u64, done: u64) {
        let mut s = self.state();
        for &uid in uids {
            if let Some(w) = s.windows.get_mut(&(key.clone(), uid)) {
                for x in w.iter_mut().filter(|x| x.0 == client && x.1 == sent) {
                    x.2 = Some(done);
                }
            }
        }
    }

    /// Whether another client's flag change on `uid` ran at the same time as
    /// ours (sent..done): then the FETCH our STORE got may show theirs.
    pub fn flags_touched_by_others(&self, key: &MailboxKey, uid: u32, client: usize, sent: u64, done: u64) -> bool {
        let s = self.state();
        s.windows
            .get(&(key.clone(), uid))
            .is_some_and(|w| w.iter().any(|x| x.0 != client && x.1 < done && x.2.is_none_or(|end| end > sent)))
    }

    /// Runs `f` on a mailbox's facts (an empty set if nothing is known).
    pub fn with_facts<T>(&self, key: &MailboxKey, f: impl FnOnce(&MailboxFacts) -> T) -> T {
        let s = self.state();
        match s.mailboxes.get(key) {
            Some(facts) => f(facts),
            None => f(&MailboxFacts::default()),
        }
    }
}

/// The id a UID holds, following copies; `None` when nobody knows yet.
fn resolve(s: &State, key: &MailboxKey, uid: u32) -> Option<Option<String>> {
    let (mut key, mut uid) = (key, uid);
    for _ in 0..MAX_ALIAS_HOPS {
        match s.mailboxes.get(key)?.ids.get(&uid)? {
            IdEntry::Id(id) => return Some(id.clone()),
            IdEntry::Alias(k, u) => (key, uid) = (k, *u),
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn k(m: &str) -> MailboxKey {
        ("a".into(), m.into())
    }

    #[test]
    fn ids_follow_copies_and_conflicts_are_found() {
        let g = Global::default();
        // The copy is reported before the original's APPENDUID.
        g.copied(&k("INBOX"), 5, &k("Other"), 9).unwrap();
        assert_eq!(g.id_of(&k("Other"), 9), None);
        g.appended(&k("INBOX"), 5, "x-1").unwrap();
        assert_eq!(g.id_of(&k("Other"), 9), Some(Some("x-1".into())));
        assert!(g.observed(&k("Other"), 9, Some("x-1")).is_ok());
        assert!(g.observed(&k("Other"), 9, Some("x-2")).is_err());
        // Seen first, then appended with another id.
        g.observed(&k("INBOX"), 6, Some("x-3")).unwrap();
        assert!(g.appended(&k("INBOX"), 6, "x-4").is_err());
    }

    #[test]
    fn concurrent_flag_changes_are_seen() {
        let g = Global::default();
        g.flags_begin(&k("INBOX"), &[1], 0, 10);
        g.flags_begin(&k("INBOX"), &[1], 1, 12);
        g.flags_end(&k("INBOX"), &[1], 1, 12, 13);
        g.flags_end(&k("INBOX"), &[1], 0, 10, 14);
        assert!(g.flags_touched_by_others(&k("INBOX"), 1, 0, 10, 14));
        assert!(!g.flags_touched_by_others(&k("INBOX"), 1, 1, 14, 20));
        assert!(!g.flags_touched_by_others(&k("INBOX"), 2, 1, 0, 20));
    }

    #[test]
    fn expunges_count_only_before_the_command() {
        let g = Global::default();
        let t = g.tick();
        g.expunged(&k("INBOX"), 3, t);
        assert_eq!(g.expunged_before(&k("INBOX"), 3, t), None);
        assert_eq!(g.expunged_before(&k("INBOX"), 3, g.tick()), Some(t));
        assert!(g.uidvalidity(&k("INBOX"), 1).is_ok());
        assert!(g.uidvalidity(&k("INBOX"), 2).is_err());
    }
}
