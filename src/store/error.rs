//! `StoreError`: how every store operation fails, the same on every backend, so callers match
//! on the contract's outcomes (not found, conflict, precondition failed, …) and retry only
//! what is worth retrying.

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("document {id:?} not found in {container}")]
    NotFound { container: &'static str, id: String },
    #[error("document {id:?} already exists in {container}")]
    Conflict { container: &'static str, id: String },
    #[error("document {id:?} in {container} was changed by another writer (ETag mismatch)")]
    PreconditionFailed { container: &'static str, id: String },
    #[error("invalid document for {container}: {reason}")]
    InvalidDocument {
        container: &'static str,
        reason: String,
    },
    #[error("document is {size} bytes, over the {max}-byte limit")]
    TooLarge { size: usize, max: usize },
    #[error("invalid continuation token")]
    BadContinuation,
    #[error("invalid query: {0}")]
    InvalidQuery(String),
    /// Worth retrying: locked database, throttling, network.
    #[error("store temporarily unavailable: {0}")]
    Unavailable(String),
    /// The device holding the store's files is full (SQLite's `SQLITE_FULL`, ENOSPC).
    #[error("no space left on the device holding {path}")]
    NoSpace { path: String },
    #[error("store error: {0}")]
    Backend(String),
}

impl StoreError {
    pub fn is_transient(&self) -> bool {
        matches!(self, StoreError::Unavailable(_))
    }
}
