//! The trait every audit store implements.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

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

    /// Chains and queues one event without waiting for it to become durable: its receipt,
    /// and what to wait on before counting on it ([`Submitted::pending`]). An async caller
    /// awaits that instead of holding a thread while the sink writes; nothing may rely on
    /// the event (a guarded body may not run, a result may not leave) before it resolves.
    ///
    /// The default appends and has nothing left to wait for; a sink that queues (the file
    /// sink in `Fsync` mode) returns a [`Pending`].
    fn submit(&self, record: Record) -> Result<Submitted, AuditError> {
        self.append(record).map(Submitted::durable)
    }
}

/// What [`AuditSink::submit`] returns.
#[derive(Debug)]
#[must_use = "an event is not durable until its `pending` resolves"]
pub struct Submitted {
    /// The event's place in the sink's chain.
    pub receipt: Receipt,
    /// `None` when the event is already as durable as the sink promises.
    pub pending: Option<Pending>,
}

impl Submitted {
    /// An event with nothing left to wait for.
    pub fn durable(receipt: Receipt) -> Submitted {
        Submitted {
            receipt,
            pending: None,
        }
    }
}

/// How a sink that queues tells when a submitted event has become durable.
pub trait Durable: Send + Sync + fmt::Debug {
    /// `Ready(Ok)` once the event is durable, `Ready(Err)` once it never will be (the sink
    /// failed first); otherwise registers `cx`'s waker and returns `Pending`.
    fn poll_durable(&self, cx: &mut Context<'_>) -> Poll<Result<(), AuditError>>;

    /// Blocks the thread until [`Durable::poll_durable`] would be ready.
    fn wait(&self) -> Result<(), AuditError>;
}

/// An event chained and queued but not yet durable. `.await` it (on any executor: it
/// registers the task's waker with the sink) or [`Pending::wait`] on a thread.
///
/// ```
/// use guardrail_audit::{AuditSink, EventKind, FileSink, FileSinkOptions, Record};
/// let dir = tempfile::tempdir().unwrap();
/// let sink = FileSink::open(dir.path(), FileSinkOptions::default()).unwrap();
/// let submitted = sink.submit(Record::new(EventKind::Decision)).unwrap();
/// if let Some(pending) = submitted.pending {
///     pending.wait().unwrap(); // or `pending.await` in async code
/// }
/// assert_eq!(sink.head().next_seq, 1);
/// ```
#[derive(Debug)]
pub struct Pending(Box<dyn Durable>);

impl Pending {
    /// Wraps a sink's [`Durable`].
    pub fn new(durable: impl Durable + 'static) -> Pending {
        Pending(Box::new(durable))
    }

    /// Blocks until the event is durable, or the sink failed first.
    pub fn wait(self) -> Result<(), AuditError> {
        self.0.wait()
    }
}

impl Future for Pending {
    type Output = Result<(), AuditError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.0.poll_durable(cx)
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
    fn submit(&self, record: Record) -> Result<Submitted, AuditError> {
        (**self).submit(record)
    }
}
