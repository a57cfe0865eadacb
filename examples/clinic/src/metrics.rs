//! Prometheus text exposition of guardrail's metrics.

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

/// Installs a Prometheus recorder for this process; `None` if a recorder is already installed
/// (e.g. the tour runs twice in one test process).
pub fn install() -> Option<PrometheusHandle> {
    let handle = PrometheusBuilder::new().install_recorder().ok()?;
    guardrail_core::telemetry::describe();
    Some(handle)
}
