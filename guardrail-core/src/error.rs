//! The errors a guarded call returns instead of running its body.

use std::sync::Arc;

use guardrail_audit::AuditError;

use crate::approval::ApprovalRequest;
use crate::policy::DenyReason;

/// Why a guarded call did not run (or did not complete its audit).
///
/// The host's error type implements `From<GuardError>`; messages are lowercase, name the
/// action, rule or field involved, and never contain PHI.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GuardError {
    /// The policy denied the call.
    #[error("access to `{action}` denied: {reason}")]
    Denied {
        /// The action's name.
        action: &'static str,
        /// Why.
        reason: DenyReason,
    },
    /// The call needs a second person's approval; retry with `ctx.approval(request.id)`.
    #[error("`{action}` needs approval: request `{id}` is pending", action = request.action, id = request.id)]
    ApprovalRequired {
        /// The request to approve.
        request: Box<ApprovalRequest>,
    },
    /// The audit trail could not record the call, so it was refused (no audit, no access).
    #[error(
        "`{action}` refused because the audit trail could not record its {detail} event (sink `{sink}`): {source}"
    )]
    AuditUnavailable {
        /// The action's name.
        action: &'static str,
        /// The sink that failed (`transaction` for an outcome appended through the
        /// caller's transaction).
        sink: String,
        /// Which event could not be recorded (`decision`, `outcome`, `approval_consumed`,
        /// or `session_settings` when a transaction's session settings could not be set).
        detail: String,
        /// The sink's error.
        source: Arc<AuditError>,
    },
    /// The context lacks something the decision needs.
    #[error(
        "`{action}` refused: the context has no {field}; set it on the Context before the call"
    )]
    MissingContext {
        /// The action's name.
        action: &'static str,
        /// What is missing (`purpose`, `endpoint`, `jurisdiction`, `subject`, …).
        field: &'static str,
    },
    /// PHI was reached outside a guarded call, or beyond the categories the running action
    /// declared (`guard::require_guarded`, the SQLite authorizer). Recorded and alerted.
    #[error("{}", unguarded_message(*action, *category))]
    Unguarded {
        /// The running action, when inside a guarded call.
        action: Option<&'static str>,
        /// The category reached (`None`: any PHI, outside every call).
        category: Option<crate::model::Category>,
    },
    /// An argument the guard reads (such as `count`) is unusable.
    #[error("`{action}` refused: {what}")]
    InvalidInput {
        /// The action's name.
        action: &'static str,
        /// What is wrong.
        what: String,
    },
}

fn unguarded_message(action: Option<&str>, category: Option<crate::model::Category>) -> String {
    let what = category.map_or_else(|| "PHI".to_owned(), |c| format!("PHI category `{c}`"));
    match action {
        Some(a) => format!("{what} refused: `{a}` did not declare it in `phi = [..]`"),
        None => format!("{what} refused: reached outside any guarded call"),
    }
}

impl GuardError {
    /// The action involved (empty for an access outside any guarded call).
    pub fn action(&self) -> &str {
        match self {
            GuardError::Unguarded { action, .. } => action.unwrap_or(""),
            GuardError::Denied { action, .. }
            | GuardError::AuditUnavailable { action, .. }
            | GuardError::MissingContext { action, .. }
            | GuardError::InvalidInput { action, .. } => action,
            GuardError::ApprovalRequired { request } => &request.action,
        }
    }

    /// The deny reason, for denials.
    pub fn deny_reason(&self) -> Option<&DenyReason> {
        match self {
            GuardError::Denied { reason, .. } => Some(reason),
            _ => None,
        }
    }
}
