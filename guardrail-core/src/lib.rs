#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]

pub mod alert;
pub mod approval;
mod approval_flow;
mod approval_memory;
#[cfg(feature = "postgres")]
mod approval_pg;
pub mod category;
mod clock;
mod context;
pub mod coverage;
mod decision;
mod detect;
mod error;
mod guardrail;
pub mod mask;
mod model;
mod phi;
pub mod policy;
mod redact;
pub mod registry;
mod reload;
mod runtime;
mod runtime_tx;
pub mod telemetry;

pub use alert::{Alert, AlertKind, AlertSink, MemoryAlertSink};
pub use approval::{ApprovalError, ApprovalId, ApprovalRequest, ApprovalState, ApprovalStore};
pub use approval_memory::MemoryApprovalStore;
#[cfg(feature = "postgres")]
pub use approval_pg::{PgApprovalStore, PgApprovalStoreOptions};
pub use category::{Category, CategorySet};
pub use clock::{Clock, ManualClock, SystemClock};
pub use context::Context;
pub use decision::{ApprovalNeed, Decision, DenyReason, Effect};
pub use error::GuardError;
pub use guardrail::{BuildError, Guardrail, GuardrailBuilder};
pub use model::{ActionKind, Endpoint, Principal, Purpose, UnknownName};
pub use phi::Phi;
pub use policy::{Policy, PolicyError};
pub use redact::{Masker, PhiValue, Redact};
pub use registry::ActionDescriptor;
#[cfg(feature = "watch")]
pub use reload::PolicyWatcher;
pub use reload::{ReloadError, ReloadReport};
/// Appending through the caller's transaction (`#[phi_action(tx = ..)]`).
pub use runtime_tx::{AsyncTxAppend, TxAppend};

/// The audit crate, re-exported: sinks, events, verification.
pub use guardrail_audit as audit;
pub use guardrail_audit::{AuditKey, AuditSink, MemorySink};

/// `#[derive(Phi)]`: implement [`Redact`] from `#[phi(<category>)]` field attributes.
pub use guardrail_macros::Phi;
/// `#[phi_action]`: guard a function that touches PHI.
pub use guardrail_macros::phi_action;
/// `#[phi_exempt(reason = "..")]`: a PHI-touching function deliberately left unguarded.
pub use guardrail_macros::phi_exempt;
/// `#[phi_source]`: a data-access helper whose callers must be guarded.
pub use guardrail_macros::phi_source;

/// Everything a guarded service imports.
pub mod prelude {
    pub use crate::{
        ActionKind, AlertSink, ApprovalId, AuditKey, AuditSink, Category, Context, Endpoint,
        GuardError, Guardrail, MemorySink, Phi, Policy, Principal, Purpose, Redact, phi_action,
        phi_exempt, phi_source,
    };
}

/// Paths the macros expand to. Not a public API: may change in any release.
#[doc(hidden)]
pub mod __private {
    pub use crate::ActionKind;
    pub use crate::category::Category;
    pub use crate::context::Context;
    pub use crate::error::GuardError;
    pub use crate::redact::{Masker, PhiValue, Redact};
    pub use crate::registry::{ActionDescriptor, ActionRegistration};
    pub use crate::runtime::{
        Call, CountArg, IntoCount, SubjectList, begin, begin_many, count, subjects,
    };
    pub use crate::runtime_tx::{AsyncTxAppend, TxAppend, finish_tx, finish_tx_async};
    pub use ::core;
    pub use ::guardrail_macros::{__action_kinds, __category_names};
    pub use ::inventory;
    pub use ::std;

    /// Lets the macro find a `&Context` whatever the parameter's reference depth.
    pub trait AsContext {
        /// The context.
        fn as_context(&self) -> &Context;
    }

    impl AsContext for Context {
        fn as_context(&self) -> &Context {
            self
        }
    }

    impl<T: AsContext + ?Sized> AsContext for &T {
        fn as_context(&self) -> &Context {
            (**self).as_context()
        }
    }

    impl<T: AsContext + ?Sized> AsContext for &mut T {
        fn as_context(&self) -> &Context {
            (**self).as_context()
        }
    }

    impl<T: AsContext + ?Sized> AsContext for std::sync::Arc<T> {
        fn as_context(&self) -> &Context {
            (**self).as_context()
        }
    }
}
