//! RFC 5464 METADATA entries: server-level or per-mailbox, private (per
//! account) or shared. Entry names are case-insensitive, so they are stored
//! lower-cased. Validation of names and size limits is the IMAP layer's job.

use crate::keys;
use crate::kv::Batch;
use crate::{AccountId, MailboxId, Result, Store, StoreError};

/// Whose entry, and on what.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MetadataScope {
    /// The account for `/private/...` entries; `None` for `/shared/...`.
    pub owner: Option<AccountId>,
    /// The mailbox; `None` for server-level entries (mailbox name `""`).
    pub mailbox: Option<MailboxId>,
}

impl MetadataScope {
    fn prefix(&self) -> Vec<u8> {
        keys::metadata_scope(self.owner.map_or(0, |a| a.0), self.mailbox.map_or(0, |m| m.0))
    }

    fn key(&self, entry: &str) -> Vec<u8> {
        let mut k = self.prefix();
        k.extend_from_slice(entry.to_ascii_lowercase().as_bytes());
        k
    }
}

impl Store {
    /// Sets (`Some`) or removes (`None`) an entry; durable on return.
    pub async fn set_metadata(&self, scope: MetadataScope, entry: &str, value: Option<&[u8]>) -> Result<()> {
        if entry.is_empty() {
            return Err(StoreError::Invalid("empty metadata entry name".into()));
        }
        {
            let _g = self.lock();
            let mut batch = Batch::default();
            match value {
                Some(v) => batch.insert(scope.key(entry), v.to_vec()),
                None => batch.remove(scope.key(entry)),
            }
            self.inner.mail.apply(batch)?;
        }
        self.flush().await
    }

    pub fn get_metadata(&self, scope: MetadataScope, entry: &str) -> Result<Option<Vec<u8>>> {
        self.inner.mail.get(&scope.key(entry))
    }

    /// Entries whose (lower-cased) name starts with `prefix`, in name order.
    pub fn list_metadata(&self, scope: MetadataScope, prefix: &str) -> Result<Vec<(String, Vec<u8>)>> {
        let base = scope.prefix().len();
        self.inner
            .mail
            .scan_prefix(&scope.key(prefix))?
            .into_iter()
            .map(|(k, v)| {
                let name = k
                    .get(base..)
                    .and_then(|n| std::str::from_utf8(n).ok())
                    .ok_or_else(|| StoreError::Corrupt("metadata key".into()))?;
                Ok((name.to_owned(), v))
            })
            .collect()
    }
}
