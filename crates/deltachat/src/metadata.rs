//! Delta Chat's server metadata (coi-server.md D3): after login Delta Chat
//! reads `GETMETADATA "" (/shared/comment /shared/admin
//! /shared/vendor/deltachat/irohrelay /shared/vendor/deltachat/turn
//! /shared/vendor/deltachat/maxsmtprecipients /shared/vendor/deltachat/appversions)`.
//! We answer three of them from the config, as chatmail's dict proxy does
//! (`metadata.py`); an unset one is NIL and Delta Chat uses its defaults.
//!
//! - `irohrelay`: a URL (the iroh relay for realtime webxdc channels).
//! - `turn`: `<host>:<port>:<expiry>:<password>`, TURN REST API credentials
//!   (coturn's `use-auth-secret`): the user name is the expiry time, the
//!   password base64(HMAC-SHA1(secret, user name)). Delta Chat asks again
//!   when its copy is within 12 hours of expiry.
//! - `maxsmtprecipients`: RCPTs per SMTP transaction (Delta Chat falls back
//!   to 50). Its presence alone also tells Delta Chat that push is
//!   supported, so set it only on a server that pushes or where that is moot.

use base64::Engine;
use std::time::Duration;

pub const IROH_RELAY: &str = "/shared/vendor/deltachat/irohrelay";
pub const TURN: &str = "/shared/vendor/deltachat/turn";
pub const MAX_SMTP_RECIPIENTS: &str = "/shared/vendor/deltachat/maxsmtprecipients";

/// A TURN server sharing a secret with us (coturn `static-auth-secret`).
#[derive(Clone)]
pub struct Turn {
    /// `host:port`, as clients should reach it.
    pub server: String,
    pub secret: String,
    /// How long the credentials handed out stay valid.
    pub ttl: Duration,
}

impl std::fmt::Debug for Turn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Turn").field("server", &self.server).field("ttl", &self.ttl).finish_non_exhaustive()
    }
}

impl Turn {
    /// The entry value for credentials made at `now` (unix seconds).
    pub fn value(&self, now: i64) -> String {
        let expiry = now.saturating_add(i64::try_from(self.ttl.as_secs()).unwrap_or(i64::MAX));
        let user = expiry.to_string();
        let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, self.secret.as_bytes());
        let tag = aws_lc_rs::hmac::sign(&key, user.as_bytes());
        let password = base64::engine::general_purpose::STANDARD.encode(tag.as_ref());
        format!("{}:{user}:{password}", self.server)
    }
}

/// What `GETMETADATA ""` answers for Delta Chat.
#[derive(Debug, Clone, Default)]
pub struct ServerMetadata {
    /// Empty: not served.
    pub iroh_relay: String,
    pub turn: Option<Turn>,
    /// `None`: not served.
    pub max_smtp_recipients: Option<u32>,
}

impl ServerMetadata {
    pub(crate) fn entries(&self, now: i64) -> Vec<(String, Vec<u8>)> {
        let mut out = Vec::new();
        if !self.iroh_relay.is_empty() {
            out.push((IROH_RELAY.to_owned(), self.iroh_relay.clone().into_bytes()));
        }
        if let Some(turn) = &self.turn {
            out.push((TURN.to_owned(), turn.value(now).into_bytes()));
        }
        if let Some(n) = self.max_smtp_recipients {
            out.push((MAX_SMTP_RECIPIENTS.to_owned(), n.to_string().into_bytes()));
        }
        out
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn turn_credentials_are_the_rest_api_ones() {
        let turn =
            Turn { server: "turn.example.org:3478".into(), secret: "s3cret".into(), ttl: Duration::from_secs(100) };
        let v = turn.value(1_000);
        let (host, rest) = v.split_once(':').unwrap();
        let (port, rest) = rest.split_once(':').unwrap();
        let (user, password) = rest.split_once(':').unwrap();
        assert_eq!((host, port, user), ("turn.example.org", "3478", "1100"));
        // HMAC-SHA1("s3cret", "1100"), as coturn computes it (and Python:
        // base64.b64encode(hmac.new(b"s3cret", b"1100", "sha1").digest())).
        let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, b"s3cret");
        let raw = base64::engine::general_purpose::STANDARD.decode(password).unwrap();
        assert_eq!(raw.len(), 20);
        aws_lc_rs::hmac::verify(&key, b"1100", &raw).unwrap();
        assert!(!format!("{turn:?}").contains("s3cret"));
    }

    #[test]
    fn only_configured_entries_are_served() {
        assert!(ServerMetadata::default().entries(0).is_empty());
        let m = ServerMetadata {
            iroh_relay: "https://iroh.example.org".into(),
            turn: None,
            max_smtp_recipients: Some(1000),
        };
        let names: Vec<_> = m.entries(0).into_iter().map(|(n, v)| (n, String::from_utf8(v).unwrap())).collect();
        assert_eq!(
            names,
            vec![
                (IROH_RELAY.to_owned(), "https://iroh.example.org".to_owned()),
                (MAX_SMTP_RECIPIENTS.to_owned(), "1000".to_owned())
            ]
        );
    }
}
