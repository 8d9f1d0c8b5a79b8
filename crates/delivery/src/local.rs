//! Bounces go into the sender's INBOX through the store, like any local
//! delivery (one `Store::deliver`, durable on return). Our senders are our
//! own users (submission checks that), so no bounce ever leaves the server.

use crate::DeliveryError;
use coimail_directory::Directory;
use coimail_store::{Flags, Placement, Store, StoreError};

/// Delivers `message` to the local user `sender`. `Ok(false)` when there is
/// no such user any more, or the user's quota is full (the bounce is then
/// dropped: retrying would not make room).
pub(crate) async fn deliver_to_sender(
    store: &Store,
    directory: &Directory,
    sender: &str,
    message: &[u8],
    now: i64,
) -> Result<bool, DeliveryError> {
    let Some(account) = directory.resolve_recipient(sender)? else {
        return Ok(false);
    };
    let placement =
        Placement { account: account.id, address: account.address, mailbox: "INBOX".to_owned(), flags: Flags::new() };
    match store.deliver(message, now, vec![placement]).await {
        Ok(_) => Ok(true),
        Err(StoreError::QuotaExceeded) => Ok(false),
        Err(e) => Err(e.into()),
    }
}
