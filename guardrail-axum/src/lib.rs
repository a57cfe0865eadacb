#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]

mod approvals;
mod context;
mod metrics;
mod response;
mod webhook;

pub use approvals::{ApprovalsPage, ApprovalsPageError, CSRF_COOKIE, DEFAULT_LIMIT};
pub use context::{
    APPROVAL_HEADER, ContextRejection, GuardedContext, MAX_ID_LEN, PURPOSE_HEADER,
    REQUEST_ID_HEADER, RequestId, RouterEndpoint, endpoint, guardrail, is_safe_id, parse_purpose,
    request_id,
};
pub use metrics::{PROMETHEUS_CONTENT_TYPE, metrics_router};
pub use response::GuardRejection;
pub use webhook::{
    WEBHOOK_DELIVERED_TOTAL, WEBHOOK_DROPPED_TOTAL, WEBHOOK_FAILED_TOTAL, WebhookAlertSink,
    WebhookError, WebhookOptions, describe,
};
