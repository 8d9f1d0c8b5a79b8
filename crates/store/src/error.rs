use thiserror::Error;

/// Everything the store can refuse or fail at. Protocol crates map
/// `InvalidName`, `NotFound`, `AlreadyExists` and `QuotaExceeded` to the user's
/// fault (IMAP `NO`, SMTP 5xx); the rest are server faults.
#[derive(Debug, Error)]
pub enum StoreError {
    #[error("invalid mailbox name: {0}")]
    InvalidName(&'static str),
    #[error("{0} not found")]
    NotFound(String),
    #[error("{0} already exists")]
    AlreadyExists(String),
    #[error("quota exceeded")]
    QuotaExceeded,
    #[error("invalid request: {0}")]
    Invalid(String),
    #[error("corrupt store data: {0}")]
    Corrupt(String),
    #[error("storage engine: {0}")]
    Engine(String),
    #[error("I/O: {0}")]
    Io(#[from] std::io::Error),
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;
