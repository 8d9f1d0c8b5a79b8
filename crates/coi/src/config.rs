//! The per-user COI configuration (spec R11–R16): three METADATA entries of
//! the account's server scope (mailbox `""`). `enabled` and `message-filter`
//! are stored like any entry; `mailbox-root` is not stored at all: it is the
//! server's setting, answered read-only (R11). Nothing is cached: every
//! delivery and every `\Seen` transition reads the entries afresh, so a change
//! applies to the next message and to every open session at once (R16).

use coimail_store::{AccountId, MetadataScope, Result, Store};

/// Everything COI lives under, server scope.
pub const CONFIG_PREFIX: &str = "/private/vendor/vendor.dovecot/coi/config";
/// `yes` or absent (R12).
pub const ENABLED: &str = "/private/vendor/vendor.dovecot/coi/config/enabled";
/// `none` | `active` | `seen`, absent = `none` (R14).
pub const MESSAGE_FILTER: &str = "/private/vendor/vendor.dovecot/coi/config/message-filter";
/// Read-only: the COI root folder (R11).
pub const MAILBOX_ROOT: &str = "/private/vendor/vendor.dovecot/coi/config/mailbox-root";

/// What happens to chat messages at delivery (R26–R28).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MessageFilter {
    /// Delivered normally, tagged `$Chat` (R26).
    #[default]
    None,
    /// Stored straight into `<root>/Chats` (R27).
    Active,
    /// Delivered to INBOX, moved to `<root>/Chats` once `\Seen` (R28).
    Seen,
}

impl MessageFilter {
    /// The exact lower-case spellings only (R14: `Active` is refused).
    pub fn parse(value: &[u8]) -> Option<MessageFilter> {
        match value {
            b"none" => Some(MessageFilter::None),
            b"active" => Some(MessageFilter::Active),
            b"seen" => Some(MessageFilter::Seen),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            MessageFilter::None => "none",
            MessageFilter::Active => "active",
            MessageFilter::Seen => "seen",
        }
    }
}

/// One account's COI configuration as it is right now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CoiConfig {
    /// The `enabled` entry exists and is exactly `yes` (R12).
    pub enabled: bool,
    /// The stored filter, whether or not COI is enabled (R14: it may be set
    /// while disabled and only takes effect once enabled).
    pub filter: MessageFilter,
    /// The root folder, e.g. `COI` (R11, R17).
    pub root: String,
}

impl CoiConfig {
    /// `<root>/Chats` (separator `/`, no namespace prefix: R17).
    pub fn chats(&self) -> String {
        chats_of(&self.root)
    }

    pub fn contacts(&self) -> String {
        format!("{}/Contacts", self.root)
    }

    /// The filter in force: `none` unless COI is enabled (R29).
    pub fn effective_filter(&self) -> Option<MessageFilter> {
        self.enabled.then_some(self.filter)
    }
}

pub(crate) fn chats_of(root: &str) -> String {
    format!("{root}/Chats")
}

pub(crate) fn server_scope(account: AccountId) -> MetadataScope {
    MetadataScope { account, mailbox: None }
}

/// Reads the account's configuration from the store.
pub(crate) fn read(store: &Store, account: AccountId, root: &str) -> Result<CoiConfig> {
    let scope = server_scope(account);
    let enabled = store.get_metadata(scope, ENABLED)?.is_some_and(|v| v == b"yes");
    // An unparsable stored value cannot come from SETMETADATA (it is checked
    // there); treat it as the default rather than failing deliveries.
    let filter = store.get_metadata(scope, MESSAGE_FILTER)?.and_then(|v| MessageFilter::parse(&v)).unwrap_or_default();
    Ok(CoiConfig { enabled, filter, root: root.to_owned() })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_are_exact_lower_case() {
        assert_eq!(MessageFilter::parse(b"active"), Some(MessageFilter::Active));
        assert_eq!(MessageFilter::parse(b"seen"), Some(MessageFilter::Seen));
        assert_eq!(MessageFilter::parse(b"none"), Some(MessageFilter::None));
        for bad in [&b"Active"[..], b"inactive", b"", b"NONE", b"seen "] {
            assert_eq!(MessageFilter::parse(bad), None);
        }
    }

    #[test]
    fn disabled_means_no_filter() {
        let cfg = CoiConfig { enabled: false, filter: MessageFilter::Active, root: "COI".into() };
        assert_eq!(cfg.effective_filter(), None);
        assert_eq!(cfg.chats(), "COI/Chats");
        assert_eq!(cfg.contacts(), "COI/Contacts");
    }
}
