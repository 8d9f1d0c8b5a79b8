//! `[chatmail]`: coimail as a chatmail relay for Delta Chat users
//! (docs/chatmail.md). One master switch, `enabled`, and a switch per part,
//! whose defaults are chatmail's (github.com/chatmail/relay, chatmail.ini)
//! except the two that delete or create accounts, which stay off until
//! asked for. Kept out of `config.rs` so `[deltachat]` (push) can grow
//! there independently.

use crate::config::ConfigError;
use serde::{Deserialize, Serialize};
use std::time::Duration;

const DAY_SECS: u64 = 86_400;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ChatmailConfig {
    /// Run as a chatmail relay. Every switch below applies only when this is on.
    pub enabled: bool,
    /// Advertise XCHATMAIL after IMAP login; Delta Chat then drops its own send rate limit.
    pub xchatmail: bool,
    /// Accept only OpenPGP-encrypted mail (RFC 3156), Secure-Join requests,
    /// self-sent Autocrypt Setup Messages and (incoming) bounces, on
    /// submission and MX; others get "550 5.7.1 Encryption Needed".
    pub encrypted_only: bool,
    /// Our users who may send cleartext mail to anyone.
    pub passthrough_senders: Vec<String>,
    /// Recipients our users may send cleartext mail to: addresses, or "@domain".
    pub passthrough_recipients: Vec<String>,
    /// Delete messages older than this many days; 0: keep them.
    pub delete_mails_after_days: u64,
    /// Delete messages larger than `large_message_bytes` older than this many days; 0: no such rule.
    pub delete_large_after_days: u64,
    pub large_message_bytes: u64,
    /// Delete accounts (and their mail) nobody logged in to for this many days; 0: keep them.
    pub delete_inactive_users_after_days: u64,
    /// Seconds between expiry runs (each logs one line).
    pub expire_interval_secs: u64,
    /// Create an account when an unknown address of a served domain logs in
    /// (IMAP or SMTP) with a password of at least `password_min_length` characters.
    pub create_accounts_on_login: bool,
    pub password_min_length: usize,
    /// Length bounds of the local part of accounts created on login.
    pub username_min_length: usize,
    pub username_max_length: usize,
    /// Accounts one IP address (IPv6: /64) may create per hour, on login and
    /// through `/new` together.
    pub accounts_per_ip_per_hour: u32,
    /// Serve `/new` on the HTTPS listener: a POST creates an account with a
    /// random name (`username_max_length` characters) and password and
    /// answers them as JSON, what Delta Chat does with a
    /// `DCACCOUNT:https://<domain>/new` QR code (`coimail chatmail invite`).
    pub new_account_endpoint: bool,
}

impl Default for ChatmailConfig {
    fn default() -> Self {
        let create = coimail_directory::AutoCreate::default();
        ChatmailConfig {
            enabled: false,
            xchatmail: true,
            encrypted_only: true,
            passthrough_senders: Vec::new(),
            passthrough_recipients: Vec::new(),
            delete_mails_after_days: 20,
            delete_large_after_days: 7,
            large_message_bytes: 200_000,
            delete_inactive_users_after_days: 0,
            expire_interval_secs: 3600,
            create_accounts_on_login: false,
            password_min_length: create.password_min_chars,
            username_min_length: create.local_min_chars,
            username_max_length: create.local_max_chars,
            accounts_per_ip_per_hour: create.per_peer_per_hour,
            new_account_endpoint: true,
        }
    }
}

impl ChatmailConfig {
    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |key, message: &str| Err(ConfigError::Invalid { key, message: message.to_owned() });
        if self.expire_interval_secs == 0 {
            return invalid("chatmail.expire_interval_secs", "must be at least 1");
        }
        if self.username_min_length == 0 || self.username_max_length < self.username_min_length {
            return invalid("chatmail.username_max_length", "needs 1 <= username_min_length <= username_max_length");
        }
        if self.password_min_length == 0 {
            return invalid("chatmail.password_min_length", "must be at least 1");
        }
        for r in &self.passthrough_recipients {
            let domain = r.strip_prefix('@');
            let ok = match domain {
                Some(d) => coimail_directory::canonical_domain(d).is_ok(),
                None => coimail_directory::Address::parse(r).is_ok(),
            };
            if !ok {
                return invalid("chatmail.passthrough_recipients", "entries are addresses or @domain");
            }
        }
        if self.passthrough_senders.iter().any(|s| coimail_directory::Address::parse(s).is_err()) {
            return invalid("chatmail.passthrough_senders", "entries are addresses");
        }
        Ok(())
    }

    pub fn advertises_xchatmail(&self) -> bool {
        self.enabled && self.xchatmail
    }

    /// The encrypted-only rule for SMTP, when on.
    pub fn filter_policy(&self) -> Option<coimail_chatmail::FilterPolicy> {
        (self.enabled && self.encrypted_only).then(|| coimail_chatmail::FilterPolicy {
            passthrough_senders: self.passthrough_senders.clone(),
            passthrough_recipients: self.passthrough_recipients.clone(),
        })
    }

    fn create_rules(&self) -> coimail_directory::AutoCreate {
        coimail_directory::AutoCreate {
            password_min_chars: self.password_min_length,
            local_min_chars: self.username_min_length,
            local_max_chars: self.username_max_length,
            per_peer_per_hour: self.accounts_per_ip_per_hour,
        }
    }

    /// Account creation on login, when on.
    pub fn auto_create(&self) -> Option<coimail_directory::AutoCreate> {
        (self.enabled && self.create_accounts_on_login).then(|| self.create_rules())
    }

    /// Random accounts through `/new`, when on. On by default in chatmail
    /// mode, unlike creation on login: what it creates is bounded by the
    /// per-peer allowance and names nobody chose, so it takes no address a
    /// person might want, and it is what a chatmail relay's front page offers.
    pub fn random_accounts(&self) -> Option<coimail_directory::AutoCreate> {
        (self.enabled && self.new_account_endpoint).then(|| self.create_rules())
    }

    /// The expiry task's settings; `None` when it has nothing to do.
    pub fn expiry(&self) -> Option<coimail_chatmail::ExpiryOptions> {
        let days = |d: u64| (d != 0).then(|| Duration::from_secs(d.saturating_mul(DAY_SECS)));
        let opts = coimail_chatmail::ExpiryOptions {
            messages_after: days(self.delete_mails_after_days),
            large_after: days(self.delete_large_after_days),
            large_bytes: self.large_message_bytes,
            inactive_accounts_after: days(self.delete_inactive_users_after_days),
            interval: Duration::from_secs(self.expire_interval_secs),
        };
        (self.enabled && opts.is_active()).then_some(opts)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn everything_is_off_until_enabled_and_destructive_parts_until_asked() {
        let mut c = ChatmailConfig::default();
        assert!(!c.advertises_xchatmail() && c.filter_policy().is_none() && c.expiry().is_none());
        assert!(c.random_accounts().is_none());
        c.enabled = true;
        assert!(c.advertises_xchatmail() && c.filter_policy().is_some());
        assert!(c.auto_create().is_none(), "creation is opt-in");
        assert_eq!(c.random_accounts().unwrap().local_max_chars, 9, "/new is on in chatmail mode");
        let e = c.expiry().unwrap();
        assert_eq!(e.messages_after, Some(Duration::from_secs(20 * DAY_SECS)));
        assert_eq!(e.inactive_accounts_after, None, "account deletion is opt-in");
        c.create_accounts_on_login = true;
        assert_eq!(c.auto_create().unwrap().password_min_chars, 9);
        c.delete_mails_after_days = 0;
        c.delete_large_after_days = 0;
        assert!(c.expiry().is_none());
    }

    #[test]
    fn bad_values_are_named() {
        let mut c = ChatmailConfig { passthrough_recipients: vec!["not an address".into()], ..Default::default() };
        assert!(c.validate().unwrap_err().to_string().contains("chatmail.passthrough_recipients"));
        c.passthrough_recipients = vec!["@example.org".into(), "x@example.net".into()];
        c.validate().unwrap();
        c.username_max_length = 3;
        assert!(c.validate().unwrap_err().to_string().contains("chatmail.username_max_length"));
        c.username_max_length = 9;
        c.expire_interval_secs = 0;
        assert!(c.validate().unwrap_err().to_string().contains("chatmail.expire_interval_secs"));
    }
}
