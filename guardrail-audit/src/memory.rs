//! An in-memory sink for tests, examples and benchmarks.

use std::sync::{Arc, Mutex, MutexGuard};

use crate::chain::Chain;
use crate::error::AuditError;
use crate::event::{AuditEvent, Record};
use crate::sink::{AuditSink, Receipt};

/// Keeps the trail in memory. Durability is not promised, so hashing is deferred: `append`
/// only assigns the sequence number and stores the record; the chain is sealed the first time
/// the events are read ([`MemorySink::events`]). The resulting chain is identical to the one a
/// durable sink would have written.
///
/// Clones share the same trail.
///
/// ```
/// use guardrail_audit::{AuditSink, EventKind, MemorySink, Record, verify_events};
/// let sink = MemorySink::new();
/// sink.append(Record::new(EventKind::Decision)).unwrap();
/// sink.append(Record::new(EventKind::Outcome)).unwrap();
/// let events = sink.events();
/// assert_eq!(events.len(), 2);
/// assert!(verify_events(&events).is_ok());
/// ```
#[derive(Debug, Clone, Default)]
pub struct MemorySink {
    inner: Arc<Mutex<Inner>>,
    name: Arc<str>,
}

#[derive(Debug, Default)]
struct Inner {
    chain: Chain,
    sealed: Vec<AuditEvent>,
    pending: Vec<Record>,
    failure: Option<String>,
}

impl MemorySink {
    /// An empty trail named `memory`.
    pub fn new() -> MemorySink {
        MemorySink::named("memory")
    }

    /// An empty trail with a name of your choice.
    pub fn named(name: &str) -> MemorySink {
        MemorySink {
            inner: Arc::default(),
            name: Arc::from(name),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding this lock cannot leave the trail half-written (pushes are
        // atomic), so a poisoned lock is still safe to use.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Every event so far, sealed into the chain.
    pub fn events(&self) -> Vec<AuditEvent> {
        let mut inner = self.lock();
        inner.seal_pending();
        inner.sealed.clone()
    }

    /// Number of events so far.
    pub fn len(&self) -> usize {
        let inner = self.lock();
        inner.sealed.len() + inner.pending.len()
    }

    /// True when nothing was recorded.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The trail as JSON lines, exactly as a file sink would store it.
    pub fn to_lines(&self) -> String {
        let mut out = String::new();
        for e in self.events() {
            out.push_str(e.line());
            out.push('\n');
        }
        out
    }

    /// Makes every later append fail with `reason` (fault injection for fail-closed tests);
    /// `None` heals the sink.
    pub fn fail_with(&self, reason: Option<&str>) {
        self.lock().failure = reason.map(str::to_owned);
    }

    /// Forgets everything (keeping the memory it had, so a trail that is cleared and
    /// refilled does not grow again from nothing).
    pub fn clear(&self) {
        let mut inner = self.lock();
        let mut sealed = std::mem::take(&mut inner.sealed);
        let mut pending = std::mem::take(&mut inner.pending);
        sealed.clear();
        pending.clear();
        *inner = Inner {
            sealed,
            pending,
            ..Inner::default()
        };
    }
}

impl Inner {
    fn seal_pending(&mut self) {
        for record in std::mem::take(&mut self.pending) {
            match self.chain.link(record) {
                Ok(event) => self.sealed.push(event),
                // Encoding a Record cannot fail (no maps with non-string keys, no floats);
                // should it ever, the gap makes verification fail rather than hide it.
                Err(_) => self.chain.next_seq += 1,
            }
        }
    }
}

impl AuditSink for MemorySink {
    fn name(&self) -> &str {
        &self.name
    }

    fn append(&self, record: Record) -> Result<Receipt, AuditError> {
        let mut inner = self.lock();
        if let Some(reason) = &inner.failure {
            return Err(AuditError::Io(std::io::Error::other(reason.clone())));
        }
        let seq = inner.chain.next_seq + inner.pending.len() as u64;
        inner.pending.push(record);
        Ok(Receipt { seq })
    }
}
