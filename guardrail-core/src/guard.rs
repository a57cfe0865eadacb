//! The run-time tripwire: code that reaches PHI asks whether it runs inside a guarded call
//! that declared the category, and is refused (recorded, alerted, counted) when it does not.
//!
//! Owns the per-thread marker of the running guarded call, its hand-over to other futures,
//! and `require_guarded`. May use: model, registry, alert, error, telemetry, guardrail (to
//! record a refusal). The runtime sets the marker; nothing else does.
//!
//! The marker follows the *call*, not the OS thread: a synchronous body runs with it set, and
//! an async body's future sets it for the duration of each of its polls and restores the
//! previous value after, so another task polled on the same worker thread never sees it. A
//! task spawned from inside a guarded call does not inherit it unless handed over with
//! [`GuardHandle::scope`].
//!
//! ```
//! use guardrail_core::{Category, GuardError, guard};
//! // Outside any guarded call:
//! assert!(guard::current().is_none());
//! let refused = guardrail_core::require_guarded(&[Category::Diagnosis]).unwrap_err();
//! assert!(matches!(refused, GuardError::Unguarded { action: None, .. }));
//! ```

use std::cell::Cell;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, RwLock};
use std::task::{Context as TaskContext, Poll};

use guardrail_audit::{EventKind, Record};

use crate::alert::{Alert, AlertKind};
use crate::error::GuardError;
use crate::guardrail::Guardrail;
use crate::model::{Category, CategorySet};
use crate::registry::ActionDescriptor;

thread_local! {
    /// The action whose body (or body future's poll) is running on this thread.
    static CURRENT: Cell<Option<&'static ActionDescriptor>> = const { Cell::new(None) };
}

/// What [`current`] reports about the running guarded call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GuardInfo {
    /// The action's name.
    pub action: &'static str,
    /// The PHI categories the action declared in `phi = [..]`.
    pub categories: CategorySet,
}

/// The guarded call running on this thread (inside its body or a poll of its body), if any.
pub fn current() -> Option<GuardInfo> {
    CURRENT.with(Cell::get).map(|action| GuardInfo {
        action: action.name,
        categories: declared(action),
    })
}

/// The action running on this thread, if any.
#[cfg_attr(not(feature = "sqlite"), allow(dead_code))]
pub(crate) fn running_action() -> Option<&'static ActionDescriptor> {
    CURRENT.with(Cell::get)
}

/// The categories `action` declared in `phi = [..]`.
#[cfg_attr(not(feature = "sqlite"), allow(dead_code))]
pub(crate) fn declared_by(action: &ActionDescriptor) -> CategorySet {
    declared(action)
}

fn declared(action: &ActionDescriptor) -> CategorySet {
    action
        .phi
        .iter()
        .filter_map(|name| name.parse::<Category>().ok())
        .collect()
}

/// Sets the marker for as long as it lives; restores the previous one when dropped, also
/// while unwinding, so a panic never leaves a stale marker behind.
#[derive(Debug)]
#[must_use = "the marker is cleared when the scope is dropped"]
pub(crate) struct Scope {
    previous: Option<&'static ActionDescriptor>,
}

impl Scope {
    #[inline]
    pub(crate) fn enter(action: &'static ActionDescriptor) -> Scope {
        Scope {
            previous: CURRENT.with(|c| c.replace(Some(action))),
        }
    }
}

impl Drop for Scope {
    #[inline]
    fn drop(&mut self) {
        CURRENT.with(|c| c.set(self.previous));
    }
}

/// A future that runs every poll of `inner` inside the marker of `action`.
pub struct Guarded<F> {
    action: &'static ActionDescriptor,
    inner: Pin<Box<F>>,
}

impl<F> std::fmt::Debug for Guarded<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Guarded")
            .field("action", &self.action.name)
            .finish_non_exhaustive()
    }
}

impl<F: Future> Future for Guarded<F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<F::Output> {
        let _scope = Scope::enter(self.action);
        self.inner.as_mut().poll(cx)
    }
}

/// `fut`, run under the marker of `action` (what the macro wraps an async body in).
pub(crate) fn guarded<F: Future>(action: &'static ActionDescriptor, fut: F) -> Guarded<F> {
    Guarded {
        action,
        inner: Box::pin(fut),
    }
}

/// The running call's marker, to hand over to a future that runs elsewhere (a spawned task).
#[derive(Debug, Clone, Copy)]
pub struct GuardHandle {
    action: &'static ActionDescriptor,
}

impl GuardHandle {
    /// The action the handle stands for.
    pub fn action(&self) -> &'static str {
        self.action.name
    }

    /// `fut`, polled under this call's marker: hand it to `tokio::spawn` when a guarded call
    /// deliberately delegates PHI work to another task.
    pub fn scope<F: Future>(self, fut: F) -> Guarded<F> {
        guarded(self.action, fut)
    }

    /// Runs `f` synchronously under this call's marker (a worker thread's closure).
    pub fn run<R>(self, f: impl FnOnce() -> R) -> R {
        let _scope = Scope::enter(self.action);
        f()
    }
}

/// The marker of the running guarded call, to hand over (`None` outside any call).
pub fn current_handle() -> Option<GuardHandle> {
    CURRENT.with(Cell::get).map(|action| GuardHandle { action })
}

/// The guardrail whose trail records refusals: the first one built, unless the host names
/// one with [`Guardrail::install_tripwire`].
static TRIPWIRE: RwLock<Option<Guardrail>> = RwLock::new(None);

/// Makes `guardrail` the one that records refusals: always when `explicit`, otherwise only
/// when none was chosen yet (the first guardrail built).
pub(crate) fn install(guardrail: &Guardrail, explicit: bool) {
    let mut slot = TRIPWIRE.write().unwrap_or_else(|e| e.into_inner());
    if explicit || slot.is_none() {
        *slot = Some(guardrail.clone());
    }
}

fn tripwire() -> Option<Guardrail> {
    TRIPWIRE.read().unwrap_or_else(|e| e.into_inner()).clone()
}

/// Refuses unless the running guarded call declared every one of `categories`.
///
/// Call it where code reaches PHI without going through a guarded action (a data-access
/// layer, a repository method, a cache): a forgotten `#[phi_action]` then fails at run time
/// instead of passing quietly. Each refusal is recorded as an `unguarded_access` event in the
/// tripwire guardrail's trail, raises an [`AlertKind::UnguardedAccess`] alert and counts
/// `guardrail_unguarded_total{category}`. Messages name the category and the action, never
/// data.
pub fn require_guarded(categories: &[Category]) -> Result<(), GuardError> {
    let running = CURRENT.with(Cell::get);
    let missing = match running {
        None => categories.first().copied(),
        Some(action) => {
            let declared = declared(action);
            categories.iter().copied().find(|c| !declared.contains(*c))
        }
    };
    match missing {
        None if running.is_some() => Ok(()),
        // Outside any call even an empty list is refused: nothing vouches for the caller.
        None => Err(refuse(None, None)),
        Some(category) => Err(refuse(running, Some(category))),
    }
}

/// Records, alerts and counts one refusal; returns its error.
pub(crate) fn refuse(
    action: Option<&'static ActionDescriptor>,
    category: Option<Category>,
) -> GuardError {
    let label = category.map_or("none", Category::as_str);
    crate::telemetry::unguarded(label);
    let where_ = action.map_or_else(
        || "outside any guarded call".to_owned(),
        |a| format!("in `{}`, which did not declare it", a.name),
    );
    let message = format!("PHI category `{label}` was reached {where_}");
    if let Some(g) = tripwire() {
        let mut record = Record::at(EventKind::UnguardedAccess, g.clock().now());
        record.action = action.map(|a| Arc::from(a.name));
        record.decision = Some(Arc::from("deny"));
        record.reason = Some(Arc::from(message.as_str()));
        record.detail.insert("category".into(), label.to_owned());
        let policy = g.policy();
        // The refusal stands whether or not it could be recorded (a failing sink alerts).
        let _ = g.append(&policy, record);
        let mut alert = Alert::new(AlertKind::UnguardedAccess, g.clock().now(), message);
        if let Some(a) = action {
            alert = alert.action(a.name);
        }
        g.raise(alert);
    }
    GuardError::Unguarded {
        action: action.map(|a| a.name),
        category,
    }
}
