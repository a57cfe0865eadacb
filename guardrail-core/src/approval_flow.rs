//! Opening, deciding and consuming approval requests.

use std::sync::atomic::{AtomicU64, Ordering};

use guardrail_audit::Timestamp;
use sha2::{Digest, Sha256};

use crate::approval::{ApprovalBinding, ApprovalId, ApprovalRequest, ApprovalState};

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// A new pending request for `binding`, expiring `ttl_secs` after `now`.
pub(crate) fn new_request(binding: ApprovalBinding, now: Timestamp, ttl_secs: u64) -> ApprovalRequest {
    // Ids need to be unique across replicas, not secret (a grant is bound to its requester).
    let mut h = Sha256::new();
    h.update(now.0.to_le_bytes());
    h.update(COUNTER.fetch_add(1, Ordering::Relaxed).to_le_bytes());
    h.update(std::process::id().to_le_bytes());
    h.update(binding.action.as_bytes());
    h.update(binding.principal.as_bytes());
    let digest = h.finalize();
    let id = ApprovalId::new(format!("apr-{}", hex::encode(&digest[..12])));
    let expires_at = Timestamp(now.0.saturating_add(ttl_secs.saturating_mul(1_000_000_000)));
    ApprovalRequest {
        id,
        action: binding.action.clone(),
        binding,
        requested_at: now,
        expires_at,
        state: ApprovalState::Pending,
    }
}
