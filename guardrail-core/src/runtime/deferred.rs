//! [`HeldOutcomes`]: outcome events held back until the caller knows what it delivers.
//!
//! A tool server (MCP) turns the masked `Ok` value of a guarded call into the JSON a model
//! receives only after the call returned. To record a digest of exactly that JSON in the
//! call's outcome event, the server sets [`Context::hold_outcomes`](crate::Context::hold_outcomes):
//! the `ok` outcome events of the calls made under that context are kept (not yet appended)
//! until [`HeldOutcomes::release`] appends them with the given `detail` entries. Only `ok`
//! outcomes are held; `error`, `panic` and `cancelled` are appended at once, as always.
//!
//! Fails closed: if `release` cannot append, it returns `AuditUnavailable` and the caller must
//! not deliver the result; if the holder is dropped without `release` (the delivery was
//! abandoned), the held events are appended with `detail.result = "undelivered"`, so the trail
//! never lacks the outcome of a call whose body ran.

use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};

use guardrail_audit::Record;

use crate::error::GuardError;
use crate::guardrail::{Deferred, Guardrail};
use crate::policy::Policy;

/// One held outcome event and where it goes.
struct Held {
    guardrail: Guardrail,
    policy: Arc<Policy>,
    action: &'static str,
    record: Record,
}

#[derive(Default)]
struct Inner {
    held: Mutex<Vec<Held>>,
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, Vec<Held>> {
        // A poisoned lock still holds valid records: recording them beats losing them.
        self.held.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        let held = std::mem::take(&mut *self.lock());
        for mut h in held {
            h.record
                .detail
                .insert("result".into(), "undelivered".into());
            // Never panic in drop: a failure is alerted and counted inside `append`.
            let _ = h.guardrail.append(&h.policy, h.record);
        }
    }
}

/// Outcome events held back until [`HeldOutcomes::release`] (see the module docs).
///
/// Cheap to clone; every clone refers to the same held events.
///
/// ```
/// # use guardrail_core::prelude::*;
/// # use guardrail_core::HeldOutcomes;
/// #[phi_action(kind = "read", role = "provider", name = "doc_held.read")]
/// fn read(ctx: &Context) -> Result<u32, GuardError> {
///     Ok(7)
/// }
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let policy = Policy::from_toml_str(r#"
/// # version = "1"
/// # [[rule]]
/// # id = "r"
/// # effect = "allow"
/// # actions = ["doc_held.*"]
/// # roles = ["provider"]
/// # "#)?;
/// let sink = MemorySink::new();
/// # let g = Guardrail::builder()
/// #     .policy(policy)
/// #     .audit(sink.clone())
/// #     .audit_key(AuditKey::from_bytes(b"0123456789abcdef0123")?)
/// #     .build()?;
/// let held = HeldOutcomes::new();
/// let ctx = g.context(Principal::new("dr-grey").role("provider")).hold_outcomes(&held);
/// let value = read(&ctx)?;
/// assert_eq!(sink.events().len(), 1); // the decision; the outcome is held
/// held.release(&[("result_digest", format!("digest of {value}"))])?;
/// let events = sink.events();
/// assert_eq!(events[1].record.detail["result_digest"], "digest of 7");
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Default)]
pub struct HeldOutcomes {
    inner: Arc<Inner>,
}

impl fmt::Debug for HeldOutcomes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HeldOutcomes")
            .field("held", &self.inner.lock().len())
            .finish()
    }
}

impl HeldOutcomes {
    /// An empty holder.
    pub fn new() -> HeldOutcomes {
        HeldOutcomes::default()
    }

    /// The number of outcome events held now.
    pub fn len(&self) -> usize {
        self.inner.lock().len()
    }

    /// True if no outcome event is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub(crate) fn hold(
        &self,
        guardrail: Guardrail,
        policy: Arc<Policy>,
        action: &'static str,
        record: Record,
    ) {
        self.inner.lock().push(Held {
            guardrail,
            policy,
            action,
            record,
        });
    }

    /// [`HeldOutcomes::release`] without holding a thread for durability (how an async tool
    /// server delivers): every held outcome event is queued in the sinks
    /// (`AuditSink::submit`) with `detail` added, and the returned future waits until each
    /// is durable, as an `async fn` action's outcome is awaited
    /// ([`Call::finish_async`](crate::runtime::Call::finish_async)). Everything is queued
    /// before the future first runs: it holds no borrow of `detail`, and dropped early it
    /// still leaves every event in the trail.
    ///
    /// # Errors
    ///
    /// `AuditUnavailable` for the first event a required sink refused or could not make
    /// durable: the result must not be delivered. An event after one a sink refused at once
    /// is still queued (marked `undelivered`).
    pub fn release_async(
        &self,
        detail: &[(&str, String)],
    ) -> impl std::future::Future<Output = Result<(), GuardError>> + Send + use<> {
        let mut queued = Vec::new();
        let mut first_failure = self.append_held(detail, |h| {
            let mut defer = Deferred::default();
            h.guardrail
                .append_with(&h.policy, h.record, Some(&mut defer))
                .map_err(|f| f.into_guard_error(h.action, "outcome"))?;
            queued.push((h.guardrail, h.action, defer));
            Ok(())
        });
        async move {
            for (guardrail, action, defer) in queued {
                if let Err(f) = defer.settle(&guardrail).await {
                    first_failure.get_or_insert(f.into_guard_error(action, "outcome"));
                }
            }
            first_failure.map_or(Ok(()), Err)
        }
    }

    /// Appends every held outcome event, in the order held, each with `detail` added.
    ///
    /// # Errors
    ///
    /// `AuditUnavailable` for the first event a required sink refused: the result must not
    /// be delivered. The events after it are still appended (marked `undelivered`).
    pub fn release(&self, detail: &[(&str, String)]) -> Result<(), GuardError> {
        self.append_held(detail, |h| {
            h.guardrail
                .append(&h.policy, h.record)
                .map(drop)
                .map_err(|f| f.into_guard_error(h.action, "outcome"))
        })
        .map_or(Ok(()), Err)
    }

    /// Takes every held event and hands each to `append` in the order held, with `detail`
    /// added, or once an append has failed marked `undelivered`; the first failure.
    fn append_held(
        &self,
        detail: &[(&str, String)],
        mut append: impl FnMut(Held) -> Result<(), GuardError>,
    ) -> Option<GuardError> {
        let held = std::mem::take(&mut *self.inner.lock());
        let mut first_failure = None;
        for mut h in held {
            if first_failure.is_some() {
                h.record
                    .detail
                    .insert("result".into(), "undelivered".into());
            } else {
                for (k, v) in detail {
                    h.record.detail.insert((*k).to_owned(), v.clone());
                }
            }
            if let Err(e) = append(h) {
                first_failure.get_or_insert(e);
            }
        }
        first_failure
    }
}
