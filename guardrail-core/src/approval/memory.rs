//! The in-memory approval store (one process; use the PostgreSQL store across replicas).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use guardrail_audit::Timestamp;

use crate::approval::checks::{check_consumable, check_decidable};
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

    fn settle(
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

    fn list_pending(
        &self,
        now: Timestamp,
        limit: usize,
    ) -> Result<Vec<ApprovalRequest>, ApprovalError> {
        let mut pending: Vec<ApprovalRequest> = self
            .lock()
            .values()
            .filter(|r| r.state == ApprovalState::Pending && r.expires_at > now)
            .cloned()
            .collect();
        pending.sort_by(|a, b| (a.requested_at, &a.id).cmp(&(b.requested_at, &b.id)));
        pending.truncate(limit);
        Ok(pending)
    }
}
