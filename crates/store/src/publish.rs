//! Publication in commit order.
//!
//! Every change to messages takes a ticket while it holds the write lock,
//! so tickets are in the order UIDs and modseqs were allocated. After its
//! flush the change hands its publication in ([`Pending::publish`]), and
//! publications go out strictly in ticket order: one that finishes its
//! flush early waits (in memory, not in a task) for the earlier ones.
//!
//! Why: sessions build their view of a mailbox from the bus. If a change
//! with modseq 11 were published before one with modseq 10, a session
//! would tell its client MODSEQ 11 and then 10 for the same message, or
//! HIGHESTMODSEQ 11 while change 10 was still unknown to it, and a
//! CONDSTORE client resynchronising from there would skip change 10.
//! Because the flush is a group commit, the ticket being published is
//! durable whenever a later one is: waiting costs no extra fsync.
//!
//! A [`Pending`] that is dropped without [`Pending::publish`] (its task
//! was cancelled, or its flush failed) publishes in its drop: its change
//! is in the index either way, and a ticket that never went out would
//! stop every later publication.

use crate::Store;
use crate::types::{AccountId, BlobId, Change, MailboxId, Stored};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};
use tokio::sync::oneshot;

/// A point in the order of published changes. Every change published up to
/// it has been sent on the bus before the mark was read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct ChangeMark(pub(crate) u64);

/// What one committed change tells the world once it is durable.
#[derive(Debug, Default)]
pub(crate) struct Publication {
    /// New entries: the visibility watermark moves past them and the bus says `Appended`.
    pub stored: Vec<Stored>,
    pub changes: Vec<(AccountId, Change)>,
    /// Body files no index entry refers to any more (`retention.rs` decides when they go).
    pub unreferenced: Vec<BlobId>,
}

#[derive(Default)]
struct Order {
    next_ticket: u64,
    /// The lowest ticket not yet published.
    next_publish: u64,
    ready: BTreeMap<u64, Publication>,
    /// Who waits for a ticket to go out: callers of [`Pending::publish`]
    /// queued behind an earlier ticket, and of [`Store::caught_up`]. Each is
    /// woken once, when that ticket goes out. (One shared watch woke every
    /// waiting writer at every publication: with 50 clients, dozens of task
    /// wake-ups per change.)
    waiting: BTreeMap<u64, Vec<oneshot::Sender<()>>>,
}

/// The ticket counter and the publications waiting for an earlier ticket.
pub(crate) struct CommitOrder {
    order: Mutex<Order>,
    /// Every ticket below this has been published.
    published: AtomicU64,
}

impl Default for CommitOrder {
    fn default() -> Self {
        CommitOrder {
            order: Mutex::new(Order { next_ticket: 1, next_publish: 1, ..Order::default() }),
            published: AtomicU64::new(1),
        }
    }
}

impl CommitOrder {
    fn lock(&self) -> MutexGuard<'_, Order> {
        self.order.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Call with the store's write lock held, in the same critical section
    /// that allocates the change's UIDs and modseqs.
    pub(crate) fn reserve(&self) -> u64 {
        let mut o = self.lock();
        let t = o.next_ticket;
        o.next_ticket += 1;
        t
    }

    /// The mark just past the last published change. Read it BEFORE
    /// draining a bus receiver: the drain then holds everything up to it.
    pub(crate) fn mark(&self) -> ChangeMark {
        ChangeMark(self.published.load(Ordering::Acquire))
    }
}

/// A committed change waiting to be published.
#[must_use = "a change must be published once durable"]
pub(crate) struct Pending {
    store: Store,
    ticket: u64,
    publication: Option<Publication>,
}

impl Pending {
    /// Reserves the next ticket; the caller holds the write lock.
    pub(crate) fn new(store: &Store, publication: Publication) -> Pending {
        let ticket = store.inner.order.reserve();
        Pending { store: store.clone(), ticket, publication: Some(publication) }
    }

    pub(crate) fn ticket(&self) -> u64 {
        self.ticket
    }

    /// What to publish (replacing what was given before).
    pub(crate) fn set(&mut self, publication: Publication) {
        self.publication = Some(publication);
    }

    /// Publishes this change and every later one already waiting, and
    /// returns once this one is out (after the earlier ones: their holders
    /// are past their flush too, as the flush is shared, so the wait is
    /// short). Returns the body files that may now be deleted (the caller
    /// deletes them off the async workers).
    ///
    /// So a caller that returns to its session after this finds its own
    /// change on the session's bus receiver. Never call it while holding
    /// another unpublished [`Pending`] with a lower ticket.
    pub(crate) async fn publish(mut self) -> Vec<BlobId> {
        let Some(p) = self.publication.take() else { return Vec::new() };
        let (store, ticket) = (self.store.clone(), self.ticket);
        drop(self);
        let (files, out) = store.publish_in_order(ticket, p, true);
        if let Some(out) = out {
            // The sender is dropped only after sending, or with the store we hold.
            let _ = out.await;
        }
        files
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        if let Some(p) = self.publication.take() {
            let (files, _) = self.store.publish_in_order(self.ticket, p, false);
            self.store.delete_files_later(files);
        }
    }
}

/// What resolves once `ticket` is published.
fn wait_for(o: &mut Order, ticket: u64) -> oneshot::Receiver<()> {
    let (tx, rx) = oneshot::channel();
    o.waiting.entry(ticket).or_default().push(tx);
    rx
}

impl Store {
    /// Queues `p` under `ticket` and publishes every ready publication from
    /// the lowest unpublished ticket on, in order, under one lock. Returns
    /// the body files that may go and, when `wait` and `ticket` itself is
    /// still queued behind an earlier one, what resolves once it is out.
    fn publish_in_order(
        &self,
        ticket: u64,
        p: Publication,
        wait: bool,
    ) -> (Vec<BlobId>, Option<oneshot::Receiver<()>>) {
        let order = &self.inner.order;
        let mut o = order.lock();
        o.ready.insert(ticket, p);
        let mut files = Vec::new();
        loop {
            let next = o.next_publish;
            let Some(p) = o.ready.remove(&next) else { break };
            self.publish_appended(&p.stored);
            let touched: Vec<MailboxId> = p
                .changes
                .iter()
                .filter_map(|(_, c)| match c {
                    Change::Expunged { mailbox, .. } => Some(*mailbox),
                    _ => None,
                })
                .collect();
            for (account, change) in p.changes {
                self.inner.bus.publish(account, change);
            }
            o.next_publish = next + 1;
            // After the sends: a reader of the mark finds them on its receiver.
            order.published.store(next + 1, Ordering::Release);
            for w in o.waiting.remove(&next).into_iter().flatten() {
                let _ = w.send(());
            }
            files.extend(self.inner.retention.published(next, &touched, p.unreferenced));
        }
        let out = (wait && o.next_publish <= ticket).then(|| wait_for(&mut o, ticket));
        (files, out)
    }

    /// Returns once every change committed before this call is published,
    /// so the caller's bus receiver holds them all. For a caller that found
    /// a message gone that its session still shows: the expunge is then
    /// reported with its answer, not after it.
    pub(crate) async fn caught_up(&self) {
        let out = {
            let mut o = self.inner.order.lock();
            let last = o.next_ticket - 1;
            (o.next_publish <= last).then(|| wait_for(&mut o, last))
        };
        if let Some(out) = out {
            let _ = out.await;
        }
    }

    /// See [`CommitOrder::mark`].
    pub fn change_mark(&self) -> ChangeMark {
        self.inner.order.mark()
    }

    /// Deletes body files on the blocking pool without waiting for it (or
    /// here, when there is no runtime). A file that stays after a crash is
    /// removed by reconciliation at the next start.
    pub(crate) fn delete_files_later(&self, files: Vec<BlobId>) {
        if files.is_empty() {
            return;
        }
        let this = self.clone();
        let delete = move || {
            for id in &files {
                if let Err(e) = this.inner.blobs.delete(id) {
                    tracing::error!(error = %e, blob = %id.0, "could not delete an unreferenced body file");
                }
            }
        };
        match tokio::runtime::Handle::try_current() {
            Ok(h) => {
                h.spawn_blocking(delete);
            }
            Err(_) => delete(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tickets_increase() {
        let o = CommitOrder::default();
        let (a, b) = (o.reserve(), o.reserve());
        assert!(a < b);
        assert_eq!(o.mark(), ChangeMark(1));
    }
}
