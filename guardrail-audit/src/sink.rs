//! The trait every audit store implements.

use std::fmt;

use crate::error::AuditError;
use crate::event::Record;

/// What a sink returns once an event is recorded (as durably as the sink promises).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Receipt {
    /// The sequence number the event got in that sink's chain.
    pub seq: u64,
}

/// A place audit events are chained and stored.
///
/// `append` returns only once the event is recorded as durably as the sink promises (a
/// memory sink: in memory; the file sink in `Fsync` mode: on disk). An `Err` means the event
/// is not recorded, and the guarded call that needed it is denied.
pub trait AuditSink: Send + Sync + fmt::Debug {
    /// A short name used in policy (`[audit] required = [..]`), metrics and errors.
    fn name(&self) -> &str;

    /// Chains and stores one event.
    fn append(&self, record: Record) -> Result<Receipt, AuditError>;

    /// Makes everything appended so far durable (a no-op for sinks that already are).
    fn flush(&self) -> Result<(), AuditError> {
        Ok(())
    }
}

impl<S: AuditSink + ?Sized> AuditSink for std::sync::Arc<S> {
    fn name(&self) -> &str {
        (**self).name()
    }
    fn append(&self, record: Record) -> Result<Receipt, AuditError> {
        (**self).append(record)
    }
    fn flush(&self) -> Result<(), AuditError> {
        (**self).flush()
    }
}
