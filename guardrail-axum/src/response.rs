//! HTTP responses for [`GuardError`].

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use guardrail_core::GuardError;
use serde_json::{Value, json};

/// A [`GuardError`] as an HTTP response (the orphan rule forbids implementing
/// [`IntoResponse`] for it directly). Handlers return `Result<_, GuardRejection>` and use
/// `?` on guarded calls; see the crate docs for the status table.
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub struct GuardRejection(pub GuardError);

impl From<GuardError> for GuardRejection {
    fn from(e: GuardError) -> Self {
        GuardRejection(e)
    }
}

impl GuardRejection {
    /// The status and PHI-free JSON body this error answers with. Bodies carry codes and
    /// names only: never the `Display` of an inner error, which could carry data.
    pub fn status_and_body(&self) -> (StatusCode, Value) {
        match &self.0 {
            GuardError::Denied { action, reason } => (
                StatusCode::FORBIDDEN,
                json!({ "error": "denied", "reason": reason.code(), "action": action }),
            ),
            GuardError::ApprovalRequired { request } => (
                StatusCode::FORBIDDEN,
                json!({
                    "error": "approval_required",
                    "action": &*request.action,
                    "approval_id": request.id.as_str(),
                    "expires_at": request.expires_at.to_string(),
                }),
            ),
            GuardError::AuditUnavailable { action, sink, .. } => (
                StatusCode::SERVICE_UNAVAILABLE,
                json!({ "error": "audit_unavailable", "action": action, "sink": sink }),
            ),
            GuardError::MissingContext { action, field } => (
                StatusCode::BAD_REQUEST,
                json!({ "error": "missing_context", "action": action, "field": field }),
            ),
            GuardError::InvalidInput { action, .. } => (
                StatusCode::BAD_REQUEST,
                json!({ "error": "invalid_input", "action": action }),
            ),
            // PHI reached outside a guard: the service's fault, not the client's.
            GuardError::Unguarded { action, category } => (
                StatusCode::INTERNAL_SERVER_ERROR,
                json!({
                    "error": "unguarded",
                    "action": action,
                    "category": category.map(|c| c.as_str()),
                }),
            ),
            // Any variant added later: a server-side fault, no detail.
            other => (
                StatusCode::INTERNAL_SERVER_ERROR,
                json!({ "error": "internal", "action": other.action() }),
            ),
        }
    }
}

impl IntoResponse for GuardRejection {
    fn into_response(self) -> Response {
        let (status, body) = self.status_and_body();
        (status, axum::Json(body)).into_response()
    }
}
