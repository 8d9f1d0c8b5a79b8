//! The `[deltachat]` section: what Delta Chat clients get beyond IMAP and
//! SMTP (`crates/deltachat`, docs/DELTACHAT.md). Its own small struct so
//! Delta Chat features can add keys here without touching the rest.

use super::ConfigError;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// The public Delta Chat notification proxy (chatmail's `notifier.py`).
pub const DELTA_CHAT_NOTIFY_URL: &str = "https://notifications.delta.chat/notify";

/// Delta Chat: push notifications and server metadata.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DeltaChatConfig {
    /// Chatmail mode, as the issue names it: the same switch as
    /// `[chatmail] enabled` (docs/chatmail.md), either turns it on.
    pub chatmail: bool,
    /// Push for Delta Chat: where device tokens are POSTed when mail arrives,
    /// and the XDELTAPUSH capability. Empty: off. Delta Chat's own proxy is
    /// "https://notifications.delta.chat/notify" (it wakes iPhones and Androids
    /// running the official apps; tokens are encrypted to it).
    pub notify_url: String,
    /// How long one request to the proxy may take, in seconds.
    pub notify_timeout_secs: u64,
    /// The first retry's wait in milliseconds; each further retry waits 8 times longer.
    pub notify_retry_base_ms: u64,
    /// No retry later than this many seconds after the delivery.
    pub notify_deadline_secs: u64,
    /// Notifications held at most (waiting, in flight or waiting to retry);
    /// beyond that new ones are dropped (and logged).
    pub notify_queue: usize,
    /// Notifications one user may hold at most, so one busy user cannot take the queue.
    pub notify_queue_per_user: usize,
    /// Requests to the proxy in flight at once.
    pub notify_workers: usize,
    /// The iroh relay URL Delta Chat uses for realtime apps
    /// (/shared/vendor/deltachat/irohrelay). Empty: not served.
    pub iroh_relay: String,
    /// A TURN server for calls, "host:port" (/shared/vendor/deltachat/turn).
    /// Empty: not served. Needs turn_secret.
    pub turn_server: String,
    /// The secret shared with the TURN server (coturn: use-auth-secret,
    /// static-auth-secret); users get credentials derived from it.
    pub turn_secret: String,
    /// How long the TURN credentials handed out stay valid, in seconds.
    pub turn_ttl_secs: u64,
    /// Recipients per message Delta Chat may send in one SMTP transaction
    /// (/shared/vendor/deltachat/maxsmtprecipients; without it Delta Chat uses 50).
    /// 0: not served. Delta Chat also takes its presence as "push supported".
    pub max_smtp_recipients: u32,
}

impl Default for DeltaChatConfig {
    fn default() -> Self {
        // chatmail's notifier: 60 s timeout, 8 s base delay, 5 h deadline.
        DeltaChatConfig {
            chatmail: false,
            notify_url: String::new(),
            notify_timeout_secs: 60,
            notify_retry_base_ms: 8000,
            notify_deadline_secs: 5 * 3600,
            notify_queue: 1024,
            notify_queue_per_user: 16,
            notify_workers: 4,
            iroh_relay: String::new(),
            turn_server: String::new(),
            turn_secret: String::new(),
            turn_ttl_secs: 5 * 24 * 3600,
            max_smtp_recipients: 0,
        }
    }
}

impl DeltaChatConfig {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |key, message: String| Err(ConfigError::Invalid { key, message });
        if !self.notify_url.is_empty()
            && let Err(e) = coimail_deltachat::check_notify_url(&self.notify_url)
        {
            return invalid("deltachat.notify_url", e);
        }
        if self.notify_timeout_secs == 0 || self.notify_queue == 0 || self.notify_queue_per_user == 0 {
            return invalid("deltachat.notify_queue", "timeout, queue and per-user queue must be at least 1".into());
        }
        if self.notify_workers == 0 {
            return invalid("deltachat.notify_workers", "must be at least 1".into());
        }
        if !self.iroh_relay.is_empty() && !self.iroh_relay.starts_with("https://") {
            return invalid("deltachat.iroh_relay", "must be an https:// URL".into());
        }
        if !self.turn_server.is_empty() {
            let port = self.turn_server.rsplit_once(':').and_then(|(host, port)| {
                (!host.is_empty() && !host.contains(':')).then(|| port.parse::<u16>().ok()).flatten()
            });
            if port.is_none_or(|p| p == 0) {
                return invalid("deltachat.turn_server", "must be host:port, like turn.example.org:3478".into());
            }
            if self.turn_secret.is_empty() {
                return invalid("deltachat.turn_secret", "must be set when turn_server is".into());
            }
            if self.turn_ttl_secs == 0 {
                return invalid("deltachat.turn_ttl_secs", "must be at least 1".into());
            }
        }
        Ok(())
    }

    /// The settings as the deltachat crate takes them.
    pub fn settings(&self) -> coimail_deltachat::DeltaChatSettings {
        let push = (!self.notify_url.is_empty()).then(|| coimail_deltachat::PushSettings {
            notify_url: self.notify_url.clone(),
            timeout: Duration::from_secs(self.notify_timeout_secs),
            retry_base: Duration::from_millis(self.notify_retry_base_ms),
            deadline: Duration::from_secs(self.notify_deadline_secs),
            queue: self.notify_queue,
            queue_per_account: self.notify_queue_per_user,
            workers: self.notify_workers,
        });
        let turn = (!self.turn_server.is_empty()).then(|| coimail_deltachat::Turn {
            server: self.turn_server.clone(),
            secret: self.turn_secret.clone(),
            ttl: Duration::from_secs(self.turn_ttl_secs),
        });
        coimail_deltachat::DeltaChatSettings {
            push,
            metadata: coimail_deltachat::ServerMetadata {
                iroh_relay: self.iroh_relay.clone(),
                turn,
                max_smtp_recipients: (self.max_smtp_recipients > 0).then_some(self.max_smtp_recipients),
            },
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn push_is_off_unless_a_url_is_set() {
        let c = DeltaChatConfig::default();
        c.validate().unwrap();
        assert!(c.settings().push.is_none());
        let c = DeltaChatConfig { notify_url: DELTA_CHAT_NOTIFY_URL.into(), ..Default::default() };
        c.validate().unwrap();
        let push = c.settings().push.unwrap();
        assert_eq!(push.notify_url, DELTA_CHAT_NOTIFY_URL);
        assert_eq!(push.retry_base, Duration::from_secs(8));
    }

    #[test]
    fn bad_values_are_named() {
        type Edit = fn(&mut DeltaChatConfig);
        let cases: [(&str, Edit); 5] = [
            ("deltachat.notify_url", |c| c.notify_url = "http://notifications.delta.chat/notify".into()),
            ("deltachat.notify_workers", |c| c.notify_workers = 0),
            ("deltachat.turn_server", |c| c.turn_server = "turn.example.org".into()),
            ("deltachat.turn_secret", |c| c.turn_server = "turn.example.org:3478".into()),
            ("deltachat.iroh_relay", |c| c.iroh_relay = "iroh.example.org".into()),
        ];
        for (key, edit) in cases {
            let mut c = DeltaChatConfig::default();
            edit(&mut c);
            assert!(c.validate().unwrap_err().to_string().contains(key), "{key}");
        }
    }
}
