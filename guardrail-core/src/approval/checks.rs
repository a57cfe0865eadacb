//! The checks every approval store makes, whatever it keeps requests in: a grant is used
//! only when granted, unexpired and bound to exactly the call presented; a request is
//! decided only while pending and unexpired.

use guardrail_audit::Timestamp;

use crate::approval::{ApprovalBinding, ApprovalError, ApprovalRequest, ApprovalState};

/// The checks shared by every store before a grant is consumed.
pub(crate) fn check_consumable(
    req: &ApprovalRequest,
    binding: &ApprovalBinding,
    now: Timestamp,
) -> Result<(), ApprovalError> {
    let id = req.id.to_string();
    match &req.state {
        ApprovalState::Pending => return Err(ApprovalError::NotGranted(id)),
        ApprovalState::Rejected { .. } => return Err(ApprovalError::Rejected(id)),
        ApprovalState::Consumed { .. } => return Err(ApprovalError::AlreadyUsed(id)),
        ApprovalState::Granted { .. } => {}
    }
    if now >= req.expires_at {
        return Err(ApprovalError::Expired(id));
    }
    let b = &req.binding;
    let what = if b.action != binding.action {
        Some("action")
    } else if b.principal != binding.principal {
        Some("principal")
    } else if b.subject != binding.subject {
        Some("subject")
    } else if b.count != binding.count {
        Some("count")
    } else {
        b.scope.difference(&binding.scope)
    };
    match what {
        Some(what) => Err(ApprovalError::Mismatch { id, what }),
        None => Ok(()),
    }
}

/// The checks shared by every store before a request is decided.
pub(crate) fn check_decidable(req: &ApprovalRequest, now: Timestamp) -> Result<(), ApprovalError> {
    if req.state != ApprovalState::Pending {
        return Err(ApprovalError::NotPending {
            id: req.id.to_string(),
            state: req.state.as_str(),
        });
    }
    if now >= req.expires_at {
        return Err(ApprovalError::Expired(req.id.to_string()));
    }
    Ok(())
}
