//! WebPush (COI spec R31–R40): VAPID key, RFC 8291 encryption, subscriptions,
//! payloads and the asynchronous sender.

pub mod addr;
pub mod ece;
mod fair;
pub mod http;
pub mod payload;
pub mod sender;
pub mod subscription;
pub mod throttle;
pub mod vapid;

/// Failures of the WebPush machinery. None of them may affect delivery.
#[derive(Debug, thiserror::Error)]
pub enum WebPushError {
    #[error("crypto: {0}")]
    Crypto(String),
    #[error("invalid key: {0}")]
    InvalidKey(String),
    #[error("{path}: {source}")]
    KeyFile { path: std::path::PathBuf, source: std::io::Error },
    #[error("invalid push endpoint: {0}")]
    Endpoint(String),
    #[error("push service: {0}")]
    Http(String),
    #[error("push service did not answer in time")]
    Timeout,
}
