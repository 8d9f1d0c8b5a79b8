//! Index records as stored in the `mail` tree (JSON values; keys in `keys.rs`).

use crate::error::{Result, StoreError};
use crate::types::{Flags, SpecialUse};
use serde::{Deserialize, Serialize, de::DeserializeOwned};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct AccountRecord {
    pub address: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct MailboxRecord {
    pub id: u64,
    pub account: u64,
    pub name: String,
    pub uid_validity: u32,
    pub uid_next: u32,
    pub highest_modseq: u64,
    pub special_use: Option<SpecialUse>,
    pub subscribed: bool,
    pub exists: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct MessageRecord {
    pub blob: String,
    pub offset: u64,
    pub size: u64,
    pub internal_date: i64,
    pub flags: Flags,
    pub modseq: u64,
}

/// Storage an account uses, for quotas.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    pub bytes: u64,
    pub messages: u64,
}

pub(crate) fn encode<T: Serialize>(v: &T) -> Result<Vec<u8>> {
    serde_json::to_vec(v).map_err(|e| StoreError::Engine(e.to_string()))
}

pub(crate) fn decode<T: DeserializeOwned>(what: &str, bytes: &[u8]) -> Result<T> {
    serde_json::from_slice(bytes).map_err(|e| StoreError::Corrupt(format!("{what}: {e}")))
}
