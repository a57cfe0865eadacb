//! Errors a sink reports when it cannot record an event.

use std::io;

/// Why an event could not be recorded.
///
/// Any of these makes the guarded call that needed the event fail closed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AuditError {
    /// The underlying storage failed (disk full, I/O error, lost connection).
    #[error("audit storage failed: {0}")]
    Io(#[from] io::Error),
    /// The sink stopped accepting events after an earlier failure and must be reopened.
    #[error("audit sink `{sink}` is poisoned after an earlier failure: {reason}")]
    Poisoned {
        /// The sink's name.
        sink: String,
        /// What failed first.
        reason: String,
    },
    /// The event could not be encoded.
    #[error("audit event could not be encoded: {0}")]
    Encode(String),
    /// A database rejected the event.
    #[error("audit database error: {0}")]
    Database(String),
    /// The sink is closed.
    #[error("audit sink `{0}` is closed")]
    Closed(String),
}
