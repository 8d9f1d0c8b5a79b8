//! The delivery decision (R22–R30): for one recipient account and one
//! message, the mailbox it is stored in and the flags it gets. Called by
//! every local delivery path before the store commit, with the recipient's
//! configuration read at that moment.

use crate::config::MessageFilter;
use crate::{CHAT_KEYWORD, Coi, CoiError, detect};
use coimail_store::{AccountId, Flags};

/// Where one delivered copy goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Filing {
    pub mailbox: String,
    pub flags: Flags,
}

impl Filing {
    fn inbox() -> Filing {
        Filing { mailbox: "INBOX".to_owned(), flags: Flags::new() }
    }
}

impl Coi {
    /// Decides where `raw` goes for `account`. Chat messages of an account
    /// with COI enabled get `$Chat` (R24; only while enabled, §6) and, with
    /// the `active` filter, go straight to `<root>/Chats`, created if
    /// missing (R27), so INBOX watchers are never woken. Everything else
    /// goes to INBOX untouched (R26, R28, R29).
    ///
    /// An error means the chat folder could not be made: the caller must
    /// fail this recipient temporarily, never drop the message (R27).
    pub async fn file(&self, account: AccountId, raw: &[u8]) -> Result<Filing, CoiError> {
        let cfg = self.config(account)?;
        let Some(filter) = cfg.effective_filter() else { return Ok(Filing::inbox()) };
        if !detect::is_chat(raw) {
            return Ok(Filing::inbox());
        }
        let mut flags = Flags::new();
        flags.insert(CHAT_KEYWORD);
        let mailbox = match filter {
            MessageFilter::Active => self.ensure_chats(account).await?.name,
            MessageFilter::None | MessageFilter::Seen => "INBOX".to_owned(),
        };
        Ok(Filing { mailbox, flags })
    }
}
