//! The in-process change bus: every session of an account subscribes and is
//! told about new, expunged and re-flagged messages right after the change
//! is durable. Its own small seam so a cluster can back it with pub/sub.

use crate::types::{AccountId, Change};
use std::collections::HashMap;
use std::sync::Mutex;
use tokio::sync::broadcast;

/// How many changes a slow subscriber may fall behind before it is told it
/// lagged (and must resynchronise from the store).
const CAPACITY: usize = 1024;

pub type ChangeReceiver = broadcast::Receiver<Change>;

#[derive(Default)]
pub struct ChangeBus {
    senders: Mutex<HashMap<AccountId, broadcast::Sender<Change>>>,
}

impl ChangeBus {
    pub fn subscribe(&self, account: AccountId) -> ChangeReceiver {
        let mut senders = self.senders.lock().unwrap_or_else(|e| e.into_inner());
        senders.entry(account).or_insert_with(|| broadcast::channel(CAPACITY).0).subscribe()
    }

    /// Publishes to every account with a subscriber.
    pub fn publish_all(&self, change: Change) {
        let mut senders = self.senders.lock().unwrap_or_else(|e| e.into_inner());
        senders.retain(|_, tx| tx.send(change.clone()).is_ok());
    }

    pub fn publish(&self, account: AccountId, change: Change) {
        let mut senders = self.senders.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(tx) = senders.get(&account)
            && tx.send(change).is_err()
        {
            // Nobody listens any more: drop the channel so idle accounts cost nothing.
            senders.remove(&account);
        }
    }
}
