//! The directory mirrored to a JSON file, so it survives losing the index.
//! Written like a body file: temp → fsync → rename → fsync directory, and
//! readable by the owner only (it holds password hashes).

use crate::{Directory, DirectoryError, DomainRecord, UserRecord};
use coimail_store::kv::Batch;
use coimail_store::{AccountId, Store};
use serde::{Deserialize, Serialize};
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

#[derive(Debug, Default, Serialize, Deserialize)]
pub(crate) struct Snapshot {
    domains: Vec<(String, DomainRecord)>,
    users: Vec<UserRecord>,
    aliases: Vec<(String, String)>,
    account_counter: u64,
}

pub(crate) fn write(path: &Path, snap: &Snapshot) -> Result<(), DirectoryError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let tmp = path.with_extension("tmp");
    let bytes = serde_json::to_vec_pretty(snap).map_err(|e| DirectoryError::Corrupt(e.to_string()))?;
    let mut f = OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(&tmp)?;
    f.write_all(&bytes)?;
    f.sync_all()?;
    fs::rename(&tmp, path)?;
    File::open(dir)?.sync_all()?;
    Ok(())
}

impl Directory {
    pub(crate) fn export(&self) -> Result<Snapshot, DirectoryError> {
        let tree = &self.inner.tree;
        let mut snap = Snapshot::default();
        for (k, v) in tree.scan_prefix(crate::DOMAIN)? {
            let name = String::from_utf8_lossy(&k[crate::DOMAIN.len()..]).into_owned();
            snap.domains.push((name, crate::decode(&v)?));
        }
        for (_, v) in tree.scan_prefix(crate::USER)? {
            snap.users.push(crate::decode(&v)?);
        }
        snap.aliases = self.list_aliases()?;
        snap.account_counter = tree
            .get(crate::ACCOUNT_COUNTER)?
            .and_then(|v| <[u8; 8]>::try_from(v.as_slice()).ok())
            .map(u64::from_be_bytes)
            .unwrap_or(0);
        Ok(snap)
    }

    /// Loads `path` into an empty directory and re-creates every user's
    /// account in the store, keeping account ids. Returns the number of users.
    pub async fn restore(store: &Store, path: &Path) -> Result<usize, DirectoryError> {
        let bytes = fs::read(path)?;
        let snap: Snapshot =
            serde_json::from_slice(&bytes).map_err(|e| DirectoryError::Corrupt(format!("{}: {e}", path.display())))?;
        let dir = Directory::open(store, Some(path.to_owned()))?;
        if !dir.inner.tree.scan_prefix(b"")?.is_empty() {
            return Err(DirectoryError::Invalid("the directory is not empty; refusing to restore over it".into()));
        }
        let mut b = Batch::default();
        for (name, rec) in &snap.domains {
            b.insert(crate::key(crate::DOMAIN, name), crate::encode(rec)?);
        }
        for u in &snap.users {
            b.insert(crate::key(crate::USER, &u.address), crate::encode(u)?);
        }
        for (alias, target) in &snap.aliases {
            b.insert(crate::key(crate::ALIAS, alias), target.clone().into_bytes());
        }
        let max_id = snap.users.iter().map(|u| u.id).max().unwrap_or(0).max(snap.account_counter);
        b.insert(crate::ACCOUNT_COUNTER.to_vec(), max_id.to_be_bytes().to_vec());
        dir.inner.tree.apply(b)?;
        for u in &snap.users {
            store.create_account(AccountId(u.id), &u.address).await?;
            store
                .set_quota(AccountId(u.id), coimail_store::QuotaLimits { bytes: u.quota_bytes, messages: None })
                .await?;
        }
        store.flush().await?;
        Ok(snap.users.len())
    }
}
