//! [`StoreError`], shared by every storage trait.

/// Why a storage operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The record to create already exists (e.g. a user id that is taken).
    #[error("already exists: {0}")]
    Conflict(String),
    /// The record to update does not exist.
    #[error("not found: {0}")]
    NotFound(String),
    /// Stored bytes could not be decoded: the store is damaged or was written
    /// by an incompatible version.
    #[error("corrupt record: {0}")]
    Corrupt(String),
    /// The backend failed (I/O, network, the database itself).
    #[error("storage backend: {0}")]
    Backend(String),
    /// The store is closed or shutting down.
    #[error("store is closed")]
    Closed,
}
