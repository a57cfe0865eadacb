//! Metrics through the `metrics` facade: the host installs any recorder (Prometheus, StatsD…).
//!
//! Names: `guardrail_decisions_total{action,result}`, `guardrail_decision_seconds`,
//! `guardrail_audit_append_seconds{sink}`, `guardrail_audit_failures_total{sink}`,
//! `guardrail_approvals_pending`, `guardrail_alerts_total{kind}`,
//! `guardrail_alerts_dropped_total`. Label values are static strings (action names come from
//! the macro), so recording allocates nothing on the hot path.

use std::time::Duration;

/// One decision: `result` is `allow`, `deny`, `approval_required` or `break_glass`.
pub(crate) fn decision(action: &'static str, result: &'static str, latency: Duration) {
    metrics::counter!("guardrail_decisions_total", "action" => action, "result" => result)
        .increment(1);
    metrics::histogram!("guardrail_decision_seconds").record(latency.as_secs_f64());
}

/// One append to a sink.
pub(crate) fn audit_append(latency: Duration) {
    metrics::histogram!("guardrail_audit_append_seconds").record(latency.as_secs_f64());
}

/// An append that failed.
pub(crate) fn audit_failure(sink: &str) {
    metrics::counter!("guardrail_audit_failures_total", "sink" => sink.to_owned()).increment(1);
}

/// An alert raised.
pub(crate) fn alert(kind: &'static str) {
    metrics::counter!("guardrail_alerts_total", "kind" => kind).increment(1);
}

/// An alert dropped on a full queue.
pub(crate) fn alert_dropped() {
    metrics::counter!("guardrail_alerts_dropped_total").increment(1);
}

/// Pending approval requests.
pub(crate) fn approvals_pending(n: u64) {
    metrics::gauge!("guardrail_approvals_pending").set(n as f64);
}
