//! The in-memory approval store (one process; use the PostgreSQL store across replicas).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use guardrail_audit::Timestamp;

use crate::approval::{
    ApprovalBinding, ApprovalError, ApprovalId, ApprovalRequest, ApprovalState, ApprovalStore,
};

/// Approval requests in a map behind a mutex. Clones share the map.
#[derive(Debug, Clone, Default)]
pub struct MemoryApprovalStore {
    requests: Arc<Mutex<HashMap<ApprovalId, ApprovalRequest>>>,
}

impl MemoryApprovalStore {
    /// An empty store.
    pub fn new() -> MemoryApprovalStore {
        MemoryApprovalStore::default()
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<ApprovalId, ApprovalRequest>> {
        // Every mutation below is a single assignment, so a poisoned map is still consistent.
        self.requests.lock().unwrap_or_else(|p| p.into_inner())
    }
}

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

impl ApprovalStore for MemoryApprovalStore {
    fn insert(&self, request: &ApprovalRequest) -> Result<(), ApprovalError> {
        let mut map = self.lock();
        if map.contains_key(&request.id) {
            return Err(ApprovalError::Store(format!(
                "approval `{}` already exists",
                request.id
            )));
        }
        map.insert(request.id.clone(), request.clone());
        Ok(())
    }

    fn get(&self, id: &ApprovalId) -> Result<Option<ApprovalRequest>, ApprovalError> {
        Ok(self.lock().get(id).cloned())
    }

    fn decide(
        &self,
        id: &ApprovalId,
        approver: &str,
        grant: bool,
        now: Timestamp,
    ) -> Result<ApprovalRequest, ApprovalError> {
        let mut map = self.lock();
        let req = map
            .get_mut(id)
            .ok_or_else(|| ApprovalError::NotFound(id.to_string()))?;
        check_decidable(req, now)?;
        let approver: Arc<str> = Arc::from(approver);
        req.state = if grant {
            ApprovalState::Granted { approver, at: now }
        } else {
            ApprovalState::Rejected { approver, at: now }
        };
        Ok(req.clone())
    }

    fn consume(
        &self,
        id: &ApprovalId,
        binding: &ApprovalBinding,
        now: Timestamp,
    ) -> Result<ApprovalRequest, ApprovalError> {
        let mut map = self.lock();
        let req = map
            .get_mut(id)
            .ok_or_else(|| ApprovalError::NotFound(id.to_string()))?;
        check_consumable(req, binding, now)?;
        req.state = ApprovalState::Consumed { at: now };
        Ok(req.clone())
    }

    fn pending(&self) -> Result<u64, ApprovalError> {
        Ok(self
            .lock()
            .values()
            .filter(|r| r.state == ApprovalState::Pending)
            .count() as u64)
    }
}
