//! The journal's records and the state they fold into: what a batch of
//! index changes means in placement terms ([`records_of`]), and the
//! [`Projection`] that replaying records (or reading the index) yields.

use crate::error::{Result, StoreError};
use crate::keys;
use crate::kv::{Batch, Tree};
use crate::records::{AccountRecord, MailboxRecord, MessageRecord, decode};
use crate::types::{Flags, SpecialUse, Uid};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// What the journal knows about a mailbox.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct MailboxEntry {
    pub account: u64,
    pub name: String,
    pub uid_validity: u32,
    pub special_use: Option<SpecialUse>,
    /// The subscription, in records of earlier versions, which kept it in
    /// the mailbox: the subscription went along with the record (renamed,
    /// deleted). `None` in records written since subscriptions have records
    /// of their own; opening an older index moves every such flag there
    /// (`upgrade.rs`), so a later record of the mailbox says `None`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subscribed: Option<bool>,
}

impl MailboxEntry {
    fn of(rec: &MailboxRecord) -> MailboxEntry {
        MailboxEntry {
            account: rec.account,
            name: rec.name.clone(),
            uid_validity: rec.uid_validity,
            special_use: rec.special_use,
            subscribed: rec.legacy_subscribed,
        }
    }
}

/// One journal record (see the module doc).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum Record {
    Account {
        id: u64,
        address: String,
    },
    AccountGone {
        id: u64,
    },
    Mailbox {
        id: u64,
        mailbox: MailboxEntry,
    },
    MailboxGone {
        id: u64,
    },
    Message {
        mailbox: u64,
        uid: Uid,
        blob: String,
        flags: Flags,
    },
    MessageGone {
        mailbox: u64,
        uid: Uid,
    },
    BlobGone {
        blob: String,
    },
    /// A body file's whole octets (base64), for a file written without
    /// fsync (`body_sync.rs`): the frame is what makes them durable.
    Body {
        blob: String,
        file: String,
    },
    Subscribed {
        account: u64,
        name: String,
    },
    Unsubscribed {
        account: u64,
        name: String,
    },
}

impl Record {
    /// The journal's copy of a body file written without fsync: its whole
    /// octets, base64 in the frame's JSON.
    pub(crate) fn body(blob: &crate::types::BlobId, file: &[u8]) -> Record {
        use base64::Engine;
        Record::Body { blob: blob.0.clone(), file: base64::engine::general_purpose::STANDARD.encode(file) }
    }
}

/// The octets a [`Record::Body`] holds.
pub(crate) fn body_octets(file: &str) -> std::result::Result<Vec<u8>, base64::DecodeError> {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.decode(file)
}

/// Live placements per body file: (mailbox id, UID, flags).
pub(crate) type Placed<'a> = HashMap<&'a str, Vec<(u64, Uid, &'a Flags)>>;

/// The state a history of records describes.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Projection {
    pub accounts: BTreeMap<u64, String>,
    pub mailboxes: BTreeMap<u64, MailboxEntry>,
    /// (mailbox id, UID) → (body file, flags).
    pub messages: BTreeMap<(u64, Uid), (String, Flags)>,
    /// Every body file this history mentions, live or gone.
    pub known: BTreeSet<String>,
    /// Subscribed names: (account id, name).
    pub subscriptions: BTreeSet<(u64, String)>,
    /// Body file octets (base64) by body file, kept only when `keep_bodies`
    /// (reconcile restores files from them; compaction never needs them).
    pub bodies: HashMap<String, String>,
    pub keep_bodies: bool,
}

impl Projection {
    pub(crate) fn apply(&mut self, r: Record) {
        match r {
            Record::Account { id, address } => {
                self.accounts.insert(id, address);
            }
            Record::AccountGone { id } => {
                self.accounts.remove(&id);
                self.subscriptions.retain(|(a, _)| *a != id);
            }
            Record::Mailbox { id, mailbox } => {
                if let Some(on) = mailbox.subscribed {
                    // An earlier version's record: the subscription is the
                    // mailbox's and moves with it.
                    self.drop_legacy_subscription(id);
                    if on {
                        self.subscriptions.insert((mailbox.account, mailbox.name.clone()));
                    }
                }
                self.mailboxes.insert(id, mailbox);
            }
            Record::MailboxGone { id } => {
                self.drop_legacy_subscription(id);
                self.mailboxes.remove(&id);
                let gone: Vec<_> = self.messages.range((id, Uid(0))..=(id, Uid::MAX)).map(|(k, _)| *k).collect();
                for k in gone {
                    self.messages.remove(&k);
                }
            }
            Record::Message { mailbox, uid, blob, flags } => {
                self.known.insert(blob.clone());
                self.messages.insert((mailbox, uid), (blob, flags));
            }
            Record::MessageGone { mailbox, uid } => {
                self.messages.remove(&(mailbox, uid));
            }
            Record::BlobGone { blob } => {
                self.bodies.remove(&blob);
                self.known.insert(blob);
            }
            Record::Body { blob, file } => {
                if self.keep_bodies {
                    self.bodies.insert(blob, file);
                }
            }
            Record::Subscribed { account, name } => {
                self.subscriptions.insert((account, name));
            }
            Record::Unsubscribed { account, name } => {
                self.subscriptions.remove(&(account, name));
            }
        }
    }

    /// Earlier versions kept the subscription in the mailbox: one recorded
    /// that way goes when its mailbox is renamed or deleted. A mailbox last
    /// recorded since (`subscribed: None`) leaves subscriptions alone.
    fn drop_legacy_subscription(&mut self, id: u64) {
        if let Some(old) = self.mailboxes.get(&id).filter(|m| m.subscribed == Some(true)) {
            self.subscriptions.remove(&(old.account, old.name.clone()));
        }
    }

    /// Live placements per body file: (mailbox id, UID, flags), in that order.
    pub(crate) fn by_blob(&self) -> Placed<'_> {
        let mut out: Placed<'_> = HashMap::new();
        for ((mailbox, uid), (blob, flags)) in &self.messages {
            out.entry(blob.as_str()).or_default().push((*mailbox, *uid, flags));
        }
        out
    }

    /// Body files mentioned but no longer placed anywhere.
    pub(super) fn gone(&self) -> Vec<&str> {
        let live: BTreeSet<&str> = self.messages.values().map(|(b, _)| b.as_str()).collect();
        self.known.iter().map(String::as_str).filter(|b| !live.contains(b)).collect()
    }

    /// The records that re-create this state.
    pub(super) fn records(&self) -> impl Iterator<Item = Record> + '_ {
        let accounts = self.accounts.iter().map(|(id, a)| Record::Account { id: *id, address: a.clone() });
        let mailboxes = self.mailboxes.iter().map(|(id, m)| Record::Mailbox { id: *id, mailbox: m.clone() });
        let subscriptions = self
            .subscriptions
            .iter()
            .map(|(account, name)| Record::Subscribed { account: *account, name: name.clone() });
        let messages = self.messages.iter().map(|((mailbox, uid), (blob, flags))| Record::Message {
            mailbox: *mailbox,
            uid: *uid,
            blob: blob.clone(),
            flags: flags.clone(),
        });
        // Subscriptions after the mailboxes: a legacy mailbox record must not drop one.
        accounts.chain(mailboxes).chain(subscriptions).chain(messages)
    }
}

/// The placement records a batch implies, in batch order.
pub(super) fn records_of(batch: &Batch) -> Result<Vec<Record>> {
    let mut out = Vec::new();
    for (key, value) in batch.ops() {
        let Some((&table, rest)) = key.split_first() else { continue };
        match (table, rest.len(), value) {
            (keys::MESSAGE, 12, v) => {
                let (mailbox, uid) = message_ids(rest)?;
                match v {
                    Some(v) => {
                        let msg: MessageRecord = decode("message", v)?;
                        out.push(Record::Message { mailbox, uid, blob: msg.blob, flags: msg.flags });
                    }
                    None => out.push(Record::MessageGone { mailbox, uid }),
                }
            }
            (keys::MAILBOX_BY_ID, 8, v) => {
                let id = u64_of(rest)?;
                match v {
                    Some(v) => {
                        let rec: MailboxRecord = decode("mailbox", v)?;
                        out.push(Record::Mailbox { id, mailbox: MailboxEntry::of(&rec) });
                    }
                    None => out.push(Record::MailboxGone { id }),
                }
            }
            (keys::ACCOUNT, 8, v) => {
                let id = u64_of(rest)?;
                match v {
                    Some(v) => {
                        out.push(Record::Account { id, address: decode::<AccountRecord>("account", v)?.address })
                    }
                    None => out.push(Record::AccountGone { id }),
                }
            }
            (keys::SUBSCRIPTION, n, v) if n > 8 => {
                let (account, name) = rest.split_at(8);
                let account = u64_of(account)?;
                let name =
                    std::str::from_utf8(name).map_err(|_| StoreError::Corrupt("subscription key".into()))?.to_owned();
                out.push(match v {
                    Some(_) => Record::Subscribed { account, name },
                    None => Record::Unsubscribed { account, name },
                });
            }
            (keys::BLOB_REFS, _, None) => {
                let blob = std::str::from_utf8(rest).map_err(|_| StoreError::Corrupt("blob reference key".into()))?;
                out.push(Record::BlobGone { blob: blob.to_owned() });
            }
            _ => {}
        }
    }
    Ok(out)
}

pub(super) fn u64_of(b: &[u8]) -> Result<u64> {
    let a: [u8; 8] = b.try_into().map_err(|_| StoreError::Corrupt("id in key".into()))?;
    Ok(u64::from_be_bytes(a))
}

pub(super) fn message_ids(rest: &[u8]) -> Result<(u64, Uid)> {
    let (m, u) = rest.split_at_checked(8).ok_or_else(|| StoreError::Corrupt("message key".into()))?;
    let u: [u8; 4] = u.try_into().map_err(|_| StoreError::Corrupt("message key".into()))?;
    Ok((u64_of(m)?, Uid::from_be_bytes(u)))
}

/// The index's placements as records, for a snapshot of it.
pub(super) fn projection_of_index(tree: &Tree) -> Result<Projection> {
    let mut p = Projection::default();
    for (k, v) in tree.scan_prefix(&[keys::ACCOUNT])? {
        if let Some(rest) = k.get(1..).filter(|r| r.len() == 8) {
            p.accounts.insert(u64_of(rest)?, decode::<AccountRecord>("account", &v)?.address);
        }
    }
    for (k, v) in tree.scan_prefix(&[keys::MAILBOX_BY_ID])? {
        if let Some(rest) = k.get(1..).filter(|r| r.len() == 8) {
            p.mailboxes.insert(u64_of(rest)?, MailboxEntry::of(&decode("mailbox", &v)?));
        }
    }
    for (k, _) in tree.scan_prefix(&[keys::SUBSCRIPTION])? {
        if let (Some(account), Some(name)) = (k.get(1..9), keys::name_of_subscription_key(&k)) {
            p.subscriptions.insert((u64_of(account)?, name.to_owned()));
        }
    }
    for (k, v) in tree.scan_prefix(&[keys::MESSAGE])? {
        if let Some(rest) = k.get(1..).filter(|r| r.len() == 12) {
            let msg: MessageRecord = decode("message", &v)?;
            p.known.insert(msg.blob.clone());
            p.messages.insert(message_ids(rest)?, (msg.blob, msg.flags));
        }
    }
    Ok(p)
}
