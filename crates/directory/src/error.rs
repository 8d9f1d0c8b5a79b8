use thiserror::Error;

#[derive(Debug, Error)]
pub enum DirectoryError {
    #[error("invalid address: {0}")]
    InvalidAddress(String),
    #[error("domain {0} is not served here")]
    UnknownDomain(String),
    #[error("{0} not found")]
    NotFound(String),
    #[error("{0} already exists")]
    AlreadyExists(String),
    #[error("{0}")]
    Invalid(String),
    #[error("corrupt directory data: {0}")]
    Corrupt(String),
    #[error("the system's random number generator failed")]
    Random,
    #[error("password hashing failed: {0}")]
    Hash(String),
    #[error(transparent)]
    Store(#[from] coimail_store::StoreError),
    #[error("snapshot I/O: {0}")]
    Io(#[from] std::io::Error),
}
