use thiserror::Error;

/// Everything the store can refuse or fail at. Protocol crates map
/// `InvalidName`, `NotFound`, `AlreadyExists` and `QuotaExceeded` to the user's
/// fault (IMAP `NO`, SMTP 5xx), `DiskFull` to a temporary refusal (IMAP
/// `NO [OVERQUOTA]`, SMTP `452 4.3.1`); the rest are server faults.
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
    /// The data dir's free space is below the reserve (`space.rs`), or a
    /// write met ENOSPC: refused without harm, try again once space is freed.
    #[error("the server's disk is full")]
    DiskFull,
    #[error("invalid request: {0}")]
    Invalid(String),
    #[error("corrupt store data: {0}")]
    Corrupt(String),
    #[error("storage engine: {0}")]
    Engine(String),
    #[error("I/O: {0}")]
    Io(std::io::Error),
}

impl From<std::io::Error> for StoreError {
    /// ENOSPC (and EDQUOT) become [`StoreError::DiskFull`], so a write that
    /// meets a full disk is answered as one, not as a server bug.
    fn from(e: std::io::Error) -> Self {
        match e.kind() {
            std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded => StoreError::DiskFull,
            _ => StoreError::Io(e),
        }
    }
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;
