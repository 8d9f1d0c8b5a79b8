//! Expunged messages a session may still show (RFC 2180 §4.1).
//!
//! A session learns of an expunge from the bus and may tell its client only
//! at certain points (RFC 3501 §7.4.1: not during FETCH, STORE or SEARCH).
//! Until then the client can still address the message, and the best
//! answer is its data. So every expunge leaves a *ghost* (the message's
//! last metadata, which names its body file) and a body file whose last
//! index entry went is deleted only when no ghost refers to it.
//!
//! Sessions with a mailbox selected hold a pin on it ([`ViewPin`]): the
//! change mark below which they have received every change AND told their
//! client of every expunge. A ghost made by the change with ticket `t` goes
//! once `t` is published and every pin on its mailbox is past `t`.
//!
//! Why this is enough: ghosts are recorded (under the write lock) before
//! the index change that removes the entry is applied, and a pin starts at
//! the published mark, read before the session reads the index. A session
//! whose index read still found the entry therefore pinned below the
//! expunge's ticket, so the ghost stays until it has told its client.
//!
//! A session that keeps a mailbox selected without ever issuing a command
//! keeps that mailbox's ghosts (and their files) until it does or logs out;
//! the IMAP autologout timer bounds that.

use crate::Store;
use crate::publish::ChangeMark;
use crate::types::{AccountId, BlobId, MailboxId, MessageMeta, Uid};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Mutex, MutexGuard};

#[derive(Default)]
struct Mailbox {
    /// Pin positions (ticket marks) and how many sessions hold each.
    pins: BTreeMap<u64, usize>,
    /// Ghosts in the order they may go.
    by_ticket: BTreeMap<(u64, Uid), (AccountId, MessageMeta)>,
    by_uid: HashMap<Uid, u64>,
}

#[derive(Default)]
struct State {
    mailboxes: HashMap<MailboxId, Mailbox>,
    /// Ghosts per body file.
    blob_ghosts: HashMap<BlobId, usize>,
    /// Body files no index entry refers to, kept for their ghosts.
    doomed: HashSet<BlobId>,
    /// Every ticket below this is published.
    published: u64,
}

#[derive(Default)]
pub(crate) struct Retention {
    state: Mutex<State>,
}

impl Retention {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records the ghost of an entry the change `ticket` removes. Call
    /// before that change is applied to the index.
    pub(crate) fn retain(&self, account: AccountId, meta: MessageMeta, ticket: u64) {
        let mut st = self.lock();
        *st.blob_ghosts.entry(meta.blob.clone()).or_default() += 1;
        let m = st.mailboxes.entry(meta.mailbox).or_default();
        m.by_uid.insert(meta.uid, ticket);
        m.by_ticket.insert((ticket, meta.uid), (account, meta));
    }

    /// The change `ticket`, which expunged from `touched`, was published:
    /// its ghosts may go, and its unreferenced files with them. Returns the
    /// files to delete now. (Ghosts a pin kept go when that pin moves.)
    pub(crate) fn published(&self, ticket: u64, touched: &[MailboxId], unreferenced: Vec<BlobId>) -> Vec<BlobId> {
        let mut st = self.lock();
        st.published = st.published.max(ticket + 1);
        st.doomed.extend(unreferenced);
        let mut files = Vec::new();
        for id in touched {
            sweep(&mut st, *id, &mut files);
        }
        take_free(&mut st, &mut files);
        files
    }

    fn pin(&self, mailbox: MailboxId, at: u64) {
        let mut st = self.lock();
        *st.mailboxes.entry(mailbox).or_default().pins.entry(at).or_default() += 1;
    }

    /// Moves one pin of `mailbox` from `from` to `to` (`None`: removes it).
    fn unpin(&self, mailbox: MailboxId, from: u64, to: Option<u64>) -> Vec<BlobId> {
        let mut st = self.lock();
        let Some(m) = st.mailboxes.get_mut(&mailbox) else { return Vec::new() };
        if let Some(n) = m.pins.get_mut(&from) {
            *n -= 1;
            if *n == 0 {
                m.pins.remove(&from);
            }
        }
        if let Some(to) = to {
            *m.pins.entry(to).or_default() += 1;
        }
        let mut files = Vec::new();
        sweep(&mut st, mailbox, &mut files);
        take_free(&mut st, &mut files);
        files
    }

    /// Ghosts of `mailbox` (owned by `account`) among `uids`, in UID order.
    pub(crate) fn ghosts(&self, account: AccountId, mailbox: MailboxId, uids: &[Uid]) -> Vec<MessageMeta> {
        let st = self.lock();
        let Some(m) = st.mailboxes.get(&mailbox) else { return Vec::new() };
        let mut out: Vec<MessageMeta> = uids
            .iter()
            .filter_map(|u| m.by_uid.get(u).map(|t| (*t, *u)))
            .filter_map(|k| m.by_ticket.get(&k))
            .filter(|(a, _)| *a == account)
            .map(|(_, meta)| meta.clone())
            .collect();
        out.sort_by_key(|m| m.uid);
        out.dedup_by_key(|m| m.uid);
        out
    }

    /// At close, with no session left: every file kept for a ghost.
    pub(crate) fn take_all(&self) -> Vec<BlobId> {
        let mut st = self.lock();
        for m in st.mailboxes.values_mut() {
            m.by_ticket.clear();
            m.by_uid.clear();
        }
        st.blob_ghosts.clear();
        st.doomed.drain().collect()
    }
}

/// Removes the ghosts of `id` that no pin needs any more.
fn sweep(st: &mut State, id: MailboxId, files: &mut Vec<BlobId>) {
    let published = st.published;
    let Some(m) = st.mailboxes.get_mut(&id) else { return };
    // A pin at `p` has every change below `p`; unpublished changes may still be unknown to anyone.
    let limit = m.pins.keys().next().copied().unwrap_or(u64::MAX).min(published);
    let mut gone = Vec::new();
    while let Some(entry) = m.by_ticket.first_entry() {
        if entry.key().0 >= limit {
            break;
        }
        let ((_, uid), (_, meta)) = entry.remove_entry();
        m.by_uid.remove(&uid);
        gone.push(meta.blob);
    }
    if m.pins.is_empty() && m.by_ticket.is_empty() {
        st.mailboxes.remove(&id);
    }
    for blob in gone {
        if let Some(n) = st.blob_ghosts.get_mut(&blob) {
            *n -= 1;
            if *n == 0 {
                st.blob_ghosts.remove(&blob);
                if st.doomed.contains(&blob) {
                    files.push(blob);
                }
            }
        }
    }
}

/// Doomed files without a ghost.
fn take_free(st: &mut State, files: &mut Vec<BlobId>) {
    let State { doomed, blob_ghosts, .. } = st;
    doomed.retain(|b| {
        let keep = blob_ghosts.contains_key(b);
        if !keep && !files.contains(b) {
            files.push(b.clone());
        }
        keep
    });
}

/// A session's hold on the ghosts of its selected mailbox (see the module doc).
pub struct ViewPin {
    store: Store,
    mailbox: MailboxId,
    at: u64,
}

impl ViewPin {
    /// The session has received every change up to `mark` (read before it
    /// drained its bus receiver) and told its client of every expunge.
    pub fn advance(&mut self, mark: ChangeMark) {
        if mark.0 <= self.at {
            return;
        }
        let files = self.store.inner.retention.unpin(self.mailbox, self.at, Some(mark.0));
        self.at = mark.0;
        self.store.delete_files_later(files);
    }
}

impl Drop for ViewPin {
    fn drop(&mut self) {
        let files = self.store.inner.retention.unpin(self.mailbox, self.at, None);
        self.store.delete_files_later(files);
    }
}

impl std::fmt::Debug for ViewPin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ViewPin").field("mailbox", &self.mailbox).field("at", &self.at).finish()
    }
}

impl Store {
    /// Pins `mailbox` for a session about to read it (SELECT/EXAMINE).
    /// Take it BEFORE reading the mailbox's messages.
    pub fn pin_view(&self, mailbox: MailboxId) -> ViewPin {
        let at = self.change_mark().0;
        self.inner.retention.pin(mailbox, at);
        ViewPin { store: self.clone(), mailbox, at }
    }

    /// Expunged messages among `uids` that a pinned session may still show,
    /// as they were when expunged (their body files are kept for them).
    pub fn ghosts(&self, account: AccountId, mailbox: MailboxId, uids: &[Uid]) -> Vec<MessageMeta> {
        self.inner.retention.ghosts(account, mailbox, uids)
    }
}
