//! The `/metrics` route.

use axum::Router;
use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use axum::routing::get;
use metrics_exporter_prometheus::PrometheusHandle;

/// Content type of the Prometheus text exposition format.
pub const PROMETHEUS_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// A router serving `GET /metrics` as Prometheus text from `handle` (the handle of the
/// recorder the host installed, e.g. `PrometheusBuilder::new().install_recorder()`).
///
/// Merge it into the host's router, typically on an internal listener or behind the host's
/// own access control: metric labels carry action names and sink names, never PHI.
pub fn metrics_router<S>(handle: PrometheusHandle) -> Router<S>
where
    S: Clone + Send + Sync + 'static,
{
    Router::new().route(
        "/metrics",
        get(move || {
            let handle = handle.clone();
            async move { ([(CONTENT_TYPE, PROMETHEUS_CONTENT_TYPE)], handle.render()).into_response() }
        }),
    )
}
