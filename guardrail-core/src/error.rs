//! The errors a guarded call returns instead of running its body.

use std::sync::Arc;

use guardrail_audit::AuditError;

use crate::approval::ApprovalRequest;
use crate::policy::DenyReason;

/// Why a guarded call did not run (or did not complete its audit).
///
/// The host's error type implements `From<GuardError>`; messages are lowercase, name the
/// action, rule or field involved, and never contain PHI.
///
/// The policy refuses a call in two variants: [`GuardError::Denied`] (a rule, or the lack of
/// one, said no) and [`GuardError::MissingContext`] (no rule could hold because the context
/// lacks a purpose, endpoint, jurisdiction or subject; in the trail its decision event is a
/// `deny` with reason `missing_context`). They stay apart because a host answers them
/// differently (HTTP 403 against 400: the caller forgot to say something); a host that
/// only wants "refused by policy" asks [`GuardError::is_policy_refusal`], which covers both,
/// so a missing purpose is never mistaken for a server error.
///
/// ```
/// use guardrail_core::GuardError;
/// let missing = GuardError::MissingContext { action: "clinic::read_chart", field: "purpose" };
/// assert!(missing.is_policy_refusal());
/// assert!(missing.deny_reason().is_none()); // not a `Denied`: match both, or ask the method
/// ```
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

    /// True when the policy refused the call: [`GuardError::Denied`] and
    /// [`GuardError::MissingContext`] (whose decision event is a denial too). Map this, not
    /// `Denied` alone, to "forbidden".
    pub fn is_policy_refusal(&self) -> bool {
        matches!(
            self,
            GuardError::Denied { .. } | GuardError::MissingContext { .. }
        )
    }

    /// The deny reason, for [`GuardError::Denied`] (a [`GuardError::MissingContext`] carries
    /// its `field` instead; see [`GuardError::is_policy_refusal`]).
    pub fn deny_reason(&self) -> Option<&DenyReason> {
        match self {
            GuardError::Denied { reason, .. } => Some(reason),
            _ => None,
        }
    }
}
