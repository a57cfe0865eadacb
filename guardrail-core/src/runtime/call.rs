//! [`Call`]: an allowed call in progress, from its decision event to its outcome event.

use std::fmt;
use std::sync::Arc;

use guardrail_audit::{AuditError, Outcome, Record};

use super::record::{self, CallIdentity};
use crate::error::GuardError;
use crate::guardrail::{Deferred, Guardrail};
use crate::mask::{Masker, Redact};
use crate::model::CategorySet;
use crate::policy::Policy;
use crate::registry::ActionDescriptor;

/// The sink name an outcome appended through the caller's transaction is reported under.
pub(super) const TX_SINK: &str = "transaction";

/// An allowed call in progress. Dropping it without [`Call::finish`] records `panic` (when
/// unwinding) or `cancelled`.
pub struct Call {
    pub(super) guardrail: Guardrail,
    pub(super) policy: Arc<Policy>,
    pub(super) action: &'static ActionDescriptor,
    pub(super) identity: CallIdentity,
    pub(super) reveal: CategorySet,
    pub(super) break_glass: bool,
    pub(super) decision_seq: u64,
    pub(super) done: bool,
    /// Where an `ok` outcome waits for the caller's delivery (`Context::hold_outcomes`).
    pub(super) held: Option<super::HeldOutcomes>,
}

impl fmt::Debug for Call {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Call")
            .field("action", &self.action.name)
            .field("request_id", &self.identity.request_id)
            .field("decision_seq", &self.decision_seq)
            .finish_non_exhaustive()
    }
}

impl Call {
    /// The outcome event for `result` (the seam for sinks that write through the caller's
    /// transaction: append it there, then call [`Call::complete`]).
    pub fn outcome_record<T, E>(&self, result: &Result<T, E>) -> Record {
        self.record_for(match result {
            Ok(_) => Outcome::Ok,
            Err(_) => Outcome::Error,
        })
    }

    fn record_for(&self, outcome: Outcome) -> Record {
        record::outcome(
            &self.identity,
            &self.guardrail,
            outcome,
            self.break_glass,
            self.policy.version_arc(),
            self.decision_seq,
        )
    }

    /// Records the outcome in the guardrail's sinks, masks an `Ok` value and returns it.
    /// If the outcome cannot be recorded, an `Ok` becomes `Err(AuditUnavailable)` naming the
    /// sink that failed.
    pub fn finish<T: Redact, E: From<GuardError>>(mut self, result: Result<T, E>) -> Result<T, E> {
        let record = self.outcome_record(&result);
        if let (Ok(_), Some(held)) = (&result, self.held.take()) {
            // Appended (with the delivered result's digest) by `HeldOutcomes::release`, or
            // as `undelivered` when the holder is dropped.
            held.hold(
                self.guardrail.clone(),
                self.policy.clone(),
                self.action.name,
                record,
            );
            self.done = true;
            return result.map(|value| self.mask(value));
        }
        let appended = self.guardrail.append(&self.policy, record).map(|_| ());
        self.done = true;
        match (result, appended) {
            (Ok(value), Ok(())) => Ok(self.mask(value)),
            (Ok(_), Err(f)) => Err(E::from(f.into_guard_error(self.action.name, "outcome"))),
            (Err(e), _) => Err(e),
        }
    }

    /// [`Call::finish`] for an `async fn`: the outcome is queued in the sinks and its
    /// durability awaited, not waited for on the thread; the value leaves (masked) only once
    /// the outcome is durable. Dropped before that, the outcome still reaches the trail (it
    /// is queued) and nothing leaves.
    pub async fn finish_async<T: Redact, E: From<GuardError>>(
        mut self,
        result: Result<T, E>,
    ) -> Result<T, E> {
        if self.held.is_some() {
            // Held outcomes are appended at delivery, not here.
            return self.finish(result);
        }
        let record = self.outcome_record(&result);
        let mut defer = Deferred::default();
        let queued = self
            .guardrail
            .append_with(&self.policy, record, Some(&mut defer))
            .map(|_| ());
        self.done = true;
        let appended = match queued {
            Ok(()) => defer.settle(&self.guardrail).await,
            Err(f) => Err(f),
        };
        match (result, appended) {
            (Ok(value), Ok(())) => Ok(self.mask(value)),
            (Ok(_), Err(f)) => Err(E::from(f.into_guard_error(self.action.name, "outcome"))),
            (Err(e), _) => Err(e),
        }
    }

    /// Completes the call once its outcome was appended (or failed) through the caller's
    /// transaction.
    pub fn complete<T: Redact, E: From<GuardError>>(
        mut self,
        result: Result<T, E>,
        appended: Result<(), AuditError>,
    ) -> Result<T, E> {
        self.done = true;
        match (result, appended) {
            (Ok(value), Ok(())) => Ok(self.mask(value)),
            (Ok(_), Err(e)) => Err(E::from(GuardError::AuditUnavailable {
                action: self.action.name,
                sink: TX_SINK.into(),
                detail: "outcome".into(),
                source: Arc::new(e),
            })),
            (Err(e), _) => Err(e),
        }
    }

    /// Marks this thread as inside the call until the returned scope is dropped (what the
    /// macro wraps a synchronous body in; see `guard`).
    #[inline]
    pub fn enter(&self) -> impl Drop + use<> {
        crate::guard::Scope::enter(self.action)
    }

    /// `body`, polled inside the call's marker (what the macro wraps an async body in).
    pub fn guard<F: std::future::Future>(&self, body: F) -> crate::guard::Guarded<F> {
        crate::guard::guarded(self.action, body)
    }

    fn mask<T: Redact>(&self, mut value: T) -> T {
        let masker = Masker::new(
            self.reveal,
            self.policy.masking(),
            self.guardrail.audit_key(),
        );
        value.redact(&masker);
        value
    }
}

impl Drop for Call {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        let outcome = if std::thread::panicking() {
            Outcome::Panic
        } else {
            Outcome::Cancelled
        };
        let record = self.record_for(outcome);
        // Never panic here (a panic while unwinding aborts): a failure is alerted and counted
        // inside `append`.
        let _ = self.guardrail.append(&self.policy, record);
    }
}
