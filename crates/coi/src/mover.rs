//! The `seen` filter's move (R28): a chat message in INBOX that gains
//! `\Seen` moves to `<root>/Chats` with all its flags. The IMAP crate calls
//! [`Coi::seen_set`] after any command that set `\Seen` (STORE, UID STORE,
//! the implicit `\Seen` of a non-PEEK FETCH) with the messages that changed
//! from unseen to seen and the flags they had before; a message is a chat if
//! it carried `$Chat` then (as Dovecot judges it: `STORE FLAGS (\Seen)`
//! replaces the keywords, yet the chat still moves). The move is one store commit; every session with
//! INBOX selected learns of it as an EXPUNGE at its next point where RFC 3501
//! allows one (the calling session included), and Chats watchers as EXISTS.

use crate::config::MessageFilter;
use crate::{CHAT_KEYWORD, Coi, CoiError};
use coimail_store::{AccountId, Flags, MailboxId, Uid};

impl Coi {
    /// Moves the chat messages among `seen_gained` (messages that just
    /// gained `\Seen` in `mailbox`, with their flags before) to Chats when
    /// the account is enabled with the `seen` filter and `mailbox` is INBOX.
    /// Returns how many moved.
    pub async fn seen_set(
        &self,
        account: AccountId,
        mailbox: MailboxId,
        seen_gained: &[(Uid, Flags)],
    ) -> Result<usize, CoiError> {
        // Keywords compare case-insensitively here (R28).
        let uids: Vec<Uid> = seen_gained
            .iter()
            .filter(|(_, before)| before.iter().any(|f| f.eq_ignore_ascii_case(CHAT_KEYWORD)))
            .map(|(uid, _)| *uid)
            .collect();
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
            // Still seen: a concurrent STORE may have undone it.
            .filter(|m| m.flags.contains("\\Seen"))
            .map(|m| m.uid)
            .collect();
        if chats.is_empty() {
            return Ok(0);
        }
        let target = self.ensure_chats(account).await?;
        // Only those still seen when the move commits (a concurrent
        // `-FLAGS (\Seen)` wins).
        let moved = store.move_messages_flagged(account, mailbox, &chats, target.id, "\\Seen").await?;
        tracing::debug!(moved = moved.len(), "coi: seen chat messages moved to Chats");
        Ok(moved.len())
    }
}
