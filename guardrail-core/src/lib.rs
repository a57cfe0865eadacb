#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod alert;
pub mod approval;
mod clock;
pub mod coverage;
mod error;
pub mod guard;
mod guardrail;
pub mod mask;
mod model;
pub mod policy;
#[cfg(feature = "postgres")]
#[cfg_attr(docsrs, doc(cfg(feature = "postgres")))]
pub mod policy_store;
#[cfg(feature = "postgres")]
#[cfg_attr(docsrs, doc(cfg(feature = "postgres")))]
pub mod postgres;
pub mod registry;
pub mod relation;
mod runtime;
#[cfg(feature = "sqlite")]
#[cfg_attr(docsrs, doc(cfg(feature = "sqlite")))]
pub mod sqlite;
pub mod telemetry;

pub use alert::{Alert, AlertKind, AlertSink, MemoryAlertSink};
pub use approval::{
    ApprovalError, ApprovalId, ApprovalRequest, ApprovalState, ApprovalStore, CallScope,
    MemoryApprovalStore,
};
#[cfg(feature = "postgres")]
#[cfg_attr(docsrs, doc(cfg(feature = "postgres")))]
pub use approval::{PgApprovalStore, PgApprovalStoreOptions};
pub use clock::{Clock, ManualClock, SystemClock};
pub use error::GuardError;
pub use guard::require_guarded;
#[cfg(feature = "watch")]
#[cfg_attr(docsrs, doc(cfg(feature = "watch")))]
pub use guardrail::PolicyWatcher;
pub use guardrail::{BuildError, Context, Guardrail, GuardrailBuilder, ReloadError, ReloadReport};
pub use mask::{Masker, Phi, PhiValue, Redact};
pub use model::{
    ActionKind, AgentId, Category, CategorySet, Endpoint, Principal, Purpose, UnknownName,
};
pub use policy::{ApprovalNeed, Decision, DenyReason, Effect, Policy, PolicyError};
pub use registry::ActionDescriptor;
/// Appending through the caller's transaction (`#[phi_action(tx = ..)]`).
pub use runtime::{AsyncTxAppend, HeldOutcomes, TxAppend};

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
    pub use crate::error::GuardError;
    pub use crate::guardrail::Context;
    pub use crate::mask::{Masker, PhiValue, Redact};
    pub use crate::model::Category;
    pub use crate::registry::{ActionDescriptor, ActionRegistration};
    pub use crate::runtime::{
        AsyncTxAppend, Entered, TxAppend, enter_tx, enter_tx_async, finish_tx, finish_tx_async,
    };
    pub use crate::runtime::{
        Call, CountArg, IntoCount, SubjectList, begin, begin_async, begin_many, begin_many_async,
        count, subjects,
    };
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
