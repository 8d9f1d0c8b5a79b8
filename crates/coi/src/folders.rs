//! COI folders and how folder operations switch COI on and off.
//!
//! Enabling creates `<root>/Contacts` (unsubscribed) and `<root>/Chats`
//! (subscribed), keeping folders that already exist (R13). The Chats folder
//! is also the switch (R18–R21, compared exactly and case-sensitively):
//! CREATE of it, or RENAME onto it, enables COI; DELETE of it disables COI;
//! RENAME of it is refused unless it goes to the Trash, which disables COI.

use crate::config::{self, ENABLED};
use crate::{Coi, CoiError};
use coimail_store::{AccountId, MailboxInfo, SpecialUse, StoreError};

/// What a RENAME means for COI, decided before it runs ([`Coi::check_rename`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RenameCheck {
    /// COI is not concerned.
    Unrelated,
    /// Chats goes to the Trash: disable COI once the rename is done (R19).
    Disables,
    /// Something becomes Chats: enable COI once the rename is done (R20).
    Enables,
}

/// Whether `name` is `folder` or lies below it.
fn is_or_under(name: &str, folder: &str) -> bool {
    name == folder || name.strip_prefix(folder).is_some_and(|rest| rest.starts_with('/'))
}

impl Coi {
    /// Turns COI on: the folders first, then the entry, so a client that
    /// sees `enabled yes` finds the folders (R13). Idempotent.
    pub(crate) async fn enable(&self, account: AccountId) -> Result<(), CoiError> {
        let cfg = self.config(account)?;
        self.ensure_mailbox(account, &cfg.contacts(), false).await?;
        // Subscribed here whether or not it existed (made by CREATE, or by a
        // filing that crashed before its subscription): enabling is the
        // client asking for the COI folders, and Chats is the one it watches
        // (R13). One subscription commit, not a second one after creating.
        let chats = self.ensure_mailbox(account, &cfg.chats(), false).await?;
        self.store().set_subscribed(account, &chats.name, true).await?;
        if !cfg.enabled {
            self.store().set_metadata(config::server_scope(account), ENABLED, Some(b"yes")).await?;
        }
        Ok(())
    }

    /// Turns COI off; folders and messages stay (R13).
    pub(crate) async fn disable(&self, account: AccountId) -> Result<(), CoiError> {
        if self.config(account)?.enabled {
            self.store().set_metadata(config::server_scope(account), ENABLED, None).await?;
        }
        Ok(())
    }

    /// `<root>/Chats`, created (and subscribed) if missing (R15, R27, R28).
    pub(crate) async fn ensure_chats(&self, account: AccountId) -> Result<MailboxInfo, CoiError> {
        let chats = config::chats_of(&self.inner.root);
        self.ensure_mailbox(account, &chats, true).await
    }

    async fn ensure_mailbox(&self, account: AccountId, name: &str, subscribe: bool) -> Result<MailboxInfo, CoiError> {
        let store = self.store();
        match store.mailbox(account, name) {
            Ok(info) => return Ok(info),
            Err(StoreError::NotFound(_)) => {}
            Err(e) => return Err(e.into()),
        }
        let info = match store.create_mailbox(account, name, None).await {
            Ok(info) => info,
            // A concurrent session or delivery made it first: it still gets
            // its subscription below (that one may not have got there yet).
            Err(StoreError::AlreadyExists(_)) => store.mailbox(account, name)?,
            Err(e) => return Err(e.into()),
        };
        if subscribe {
            store.set_subscribed(account, name, true).await?;
        }
        Ok(info)
    }

    /// After a successful CREATE: creating Chats enables COI (R20, R21).
    pub async fn after_create(&self, account: AccountId, name: &str) -> Result<(), CoiError> {
        if name == config::chats_of(&self.inner.root) {
            self.enable(account).await?;
        }
        Ok(())
    }

    /// Before DELETE: deleting Chats disables COI first (R18). Deleting the
    /// root takes Chats with it only if the store allows that; either way
    /// the entry goes before the folder.
    pub async fn before_delete(&self, account: AccountId, name: &str) -> Result<(), CoiError> {
        if name == config::chats_of(&self.inner.root) {
            self.disable(account).await?;
        }
        Ok(())
    }

    /// Before RENAME: refuses moving Chats anywhere but the Trash (R19);
    /// tells whether the rename disables (Chats to the Trash) or enables COI
    /// (something, or a parent of something, becomes Chats: R20). Only an
    /// existing Chats counts: a user's own folder named like the root is
    /// no concern of COI's while COI has no Chats folder.
    pub fn check_rename(&self, account: AccountId, from: &str, to: &str) -> Result<RenameCheck, CoiError> {
        let chats = config::chats_of(&self.inner.root);
        let exists = |name: &str| self.store().mailbox(account, name).is_ok();
        if is_or_under(&chats, from) && exists(&chats) {
            // Where Chats ends up: `to` itself, or `to` + the rest of its path.
            let moved = format!("{to}{}", &chats[from.len()..]);
            if moved == chats {
                return Ok(RenameCheck::Unrelated);
            }
            return if self.is_in_trash(account, &moved)? {
                Ok(RenameCheck::Disables)
            } else {
                Err(CoiError::Cannot("COI mailbox can't be renamed".to_owned()))
            };
        }
        if is_or_under(&chats, to) && exists(&format!("{from}{}", &chats[to.len()..])) {
            return Ok(RenameCheck::Enables);
        }
        Ok(RenameCheck::Unrelated)
    }

    /// After a successful RENAME checked with [`Coi::check_rename`].
    pub async fn after_rename(&self, account: AccountId, check: RenameCheck) -> Result<(), CoiError> {
        match check {
            RenameCheck::Unrelated => Ok(()),
            RenameCheck::Disables => self.disable(account).await,
            RenameCheck::Enables => self.enable(account).await,
        }
    }

    /// Below a parent named `Trash` (first path element, any case) or below
    /// a mailbox with the `\Trash` special use (R19).
    fn is_in_trash(&self, account: AccountId, name: &str) -> Result<bool, CoiError> {
        let Some((first, _)) = name.split_once('/') else { return Ok(false) };
        if first.eq_ignore_ascii_case("Trash") {
            return Ok(true);
        }
        let trash: Vec<String> = self
            .store()
            .list_mailboxes(account)?
            .into_iter()
            .filter(|m| m.special_use == Some(SpecialUse::Trash))
            .map(|m| m.name)
            .collect();
        Ok(trash.iter().any(|t| name.strip_prefix(t.as_str()).is_some_and(|rest| rest.starts_with('/'))))
    }
}

#[cfg(test)]
mod tests {
    use super::is_or_under;

    #[test]
    fn under() {
        assert!(is_or_under("COI/Chats", "COI"));
        assert!(is_or_under("COI/Chats", "COI/Chats"));
        assert!(!is_or_under("COI/Chats", "CO"));
        assert!(!is_or_under("COI/Chats2", "COI/Chats"));
    }
}
