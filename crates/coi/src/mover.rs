//! The `seen` filter's move (R28): a chat message in INBOX that gains
//! `\Seen` moves to `<root>/Chats` with all its flags. The IMAP crate calls
//! [`Coi::seen_set`] after any command that set `\Seen` (STORE, UID STORE,
//! the implicit `\Seen` of a non-PEEK FETCH) with the messages that changed
//! from unseen to seen. The move is one store commit; every session with
//! INBOX selected learns of it as an EXPUNGE at its next point where RFC 3501
//! allows one (the calling session included), and Chats watchers as EXISTS.

use crate::config::MessageFilter;
use crate::{CHAT_KEYWORD, Coi, CoiError};
use coimail_store::{AccountId, MailboxId, Uid};

impl Coi {
    /// Moves the chat messages among `uids` (which just gained `\Seen` in
    /// `mailbox`) to Chats when the account is enabled with the `seen`
    /// filter and `mailbox` is INBOX. Returns how many moved.
    pub async fn seen_set(&self, account: AccountId, mailbox: MailboxId, uids: &[Uid]) -> Result<usize, CoiError> {
        if uids.is_empty() {
            return Ok(0);
        }
        if self.config(account)?.effective_filter() != Some(MessageFilter::Seen) {
            return Ok(0);
        }
        let store = self.store();
        if store.mailbox_by_id(account, mailbox)?.name != "INBOX" {
            return Ok(0);
        }
        let ranges: Vec<_> = uids.iter().map(|u| *u..=*u).collect();
        let chats: Vec<Uid> = store
            .messages_in(account, mailbox, &ranges)?
            .into_iter()
            // Keywords compare case-insensitively here (R28), and the
            // message must still be seen: a concurrent STORE may have undone it.
            .filter(|m| m.flags.contains("\\Seen") && m.flags.iter().any(|f| f.eq_ignore_ascii_case(CHAT_KEYWORD)))
            .map(|m| m.uid)
            .collect();
        if chats.is_empty() {
            return Ok(0);
        }
        let target = self.ensure_chats(account).await?;
        let moved = store.move_messages(account, mailbox, &chats, target.id).await?;
        tracing::debug!(moved = moved.len(), "coi: seen chat messages moved to Chats");
        Ok(moved.len())
    }
}
