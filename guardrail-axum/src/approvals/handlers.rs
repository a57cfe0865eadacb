//! The page's three handlers and the one place that turns an outcome into a response.
//!
//! A POST is checked in this order, and stops at the first failure with nothing changed:
//! the approver is authenticated (401), the CSRF cookie and token agree for that approver
//! (403, recorded as a `refused` step of the request named, if its id is usable), the id in
//! the path is usable (400); then the approval flow decides, making its own checks and
//! recording the step. Store calls are synchronous (the PostgreSQL store waits on
//! its own thread), so they run on tokio's blocking pool, never on a worker thread.

use std::sync::Arc;

use axum::extract::rejection::{FormRejection, PathRejection};
use axum::extract::{FromRequestParts, NestedPath, Path};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Form};
use guardrail_core::Principal;
use guardrail_core::approval::{ApprovalError, ApprovalId, ApprovalRequest};

use super::Shared;
use super::csrf;
use super::html;

/// The content security policy of every page: no script at all, styles only inline, forms
/// only to this origin, never framed.
const CSP: &str = "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; \
                   frame-ancestors 'none'; base-uri 'none'";

/// The reason recorded for a decision whose form failed the CSRF check.
const CSRF_REFUSED: &str =
    "the form did not come from the approvals page in this browser (CSRF check failed)";

/// What every handler reads from the request besides its own inputs.
pub(crate) struct PageParts {
    /// The approver, from the host's auth middleware.
    principal: Option<Principal>,
    /// Where the router is mounted (`""` at the root).
    base: String,
    /// The browser's CSRF nonce, if it sent one of the right shape.
    nonce: Option<String>,
}

impl<S: Send + Sync> FromRequestParts<S> for PageParts {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let base = match NestedPath::from_request_parts(parts, state).await {
            Ok(nested) => nested.as_str().trim_end_matches('/').to_owned(),
            Err(_) => String::new(),
        };
        Ok(PageParts {
            principal: parts.extensions.get::<Principal>().cloned(),
            base,
            nonce: csrf::nonce_from_cookies(&parts.headers),
        })
    }
}

/// The form of a decision: only the CSRF token.
#[derive(Debug, serde::Deserialize)]
pub(crate) struct DecideForm {
    #[serde(default)]
    csrf: String,
}

/// An HTML response with the page's security headers.
fn html(status: StatusCode, body: String) -> Response {
    let mut response = (status, body).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    response
}

fn refusal(base: &str, status: StatusCode, title: &str, message: &str) -> Response {
    html(status, html::refusal_page(base, title, message))
}

fn unauthenticated(base: &str) -> Response {
    refusal(
        base,
        StatusCode::UNAUTHORIZED,
        "Sign-in required",
        "Sign in as an approver to see and decide approval requests.",
    )
}

fn unavailable(base: &str) -> Response {
    refusal(
        base,
        StatusCode::SERVICE_UNAVAILABLE,
        "Temporarily unavailable",
        "The audit trail or the approval store could not be reached, so nothing could be shown \
         or decided. Reload the list before trying again.",
    )
}

/// The page for a refusal of the approval flow: a fixed text per reason, never the error's
/// own text (a store error could carry anything).
fn refused(base: &str, e: &ApprovalError) -> Response {
    let (status, title, message) = match e {
        ApprovalError::NotApprover { .. } => (
            StatusCode::FORBIDDEN,
            "Not an approver",
            "You hold none of the approver roles this service's policy names. Nothing was \
             changed.",
        ),
        ApprovalError::SelfApproval(_) => (
            StatusCode::FORBIDDEN,
            "You cannot decide your own request",
            "You requested this call yourself. Separation of duties: another approver must \
             decide it. Nothing was changed.",
        ),
        ApprovalError::NotFound(_) => (
            StatusCode::NOT_FOUND,
            "No such request",
            "There is no approval request with this id. Nothing was changed.",
        ),
        ApprovalError::NotPending { .. } => (
            StatusCode::CONFLICT,
            "Already decided",
            "This request is no longer pending: it was already granted, rejected or used. \
             Nothing was changed.",
        ),
        ApprovalError::Expired(_) => (
            StatusCode::CONFLICT,
            "Expired",
            "This request has expired; the requester must ask again. Nothing was changed.",
        ),
        _ => return unavailable(base),
    };
    refusal(base, status, title, message)
}

/// Runs `f` (a synchronous store call) on the blocking pool; a panic or a shut-down
/// runtime is a store failure.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ApprovalError> + Send + 'static,
) -> Result<T, ApprovalError> {
    match tokio::task::spawn_blocking(f).await {
        Ok(result) => result,
        Err(_) => Err(ApprovalError::Store(
            "the approval step did not complete".to_owned(),
        )),
    }
}

/// `GET /`: the pending requests the approver may decide.
pub(crate) async fn list(Extension(shared): Extension<Arc<Shared>>, page: PageParts) -> Response {
    let Some(principal) = page.principal else {
        return unauthenticated(&page.base);
    };
    let (nonce, fresh) = match page.nonce {
        Some(nonce) => (nonce, false),
        None => match csrf::new_nonce() {
            Ok(nonce) => (nonce, true),
            Err(_) => return unavailable(&page.base),
        },
    };
    let Some(token) = shared.key.token(principal.id(), &nonce) else {
        return unavailable(&page.base);
    };
    let viewer = principal.clone();
    let lister = shared.clone();
    let requests: Vec<ApprovalRequest> =
        match blocking(move || lister.guardrail.pending_approvals(&viewer, lister.limit)).await {
            Ok(requests) => requests,
            Err(e) => return refused(&page.base, &e),
        };
    let view = html::ListView {
        viewer: principal.id(),
        base: &page.base,
        token: &token,
        limit: shared.limit,
    };
    let mut response = html(StatusCode::OK, html::list_page(&view, &requests));
    if fresh {
        let path = if page.base.is_empty() {
            "/"
        } else {
            &page.base
        };
        if let Ok(value) =
            HeaderValue::from_str(&csrf::set_cookie(&nonce, path, shared.secure_cookie))
        {
            response.headers_mut().insert(header::SET_COOKIE, value);
        }
    }
    response
}

/// `POST /{id}/approve`.
pub(crate) async fn approve(
    shared: Extension<Arc<Shared>>,
    page: PageParts,
    id: Result<Path<String>, PathRejection>,
    form: Result<Form<DecideForm>, FormRejection>,
) -> Response {
    decide(shared, page, id, form, true).await
}

/// `POST /{id}/reject`.
pub(crate) async fn reject(
    shared: Extension<Arc<Shared>>,
    page: PageParts,
    id: Result<Path<String>, PathRejection>,
    form: Result<Form<DecideForm>, FormRejection>,
) -> Response {
    decide(shared, page, id, form, false).await
}

async fn decide(
    Extension(shared): Extension<Arc<Shared>>,
    page: PageParts,
    id: Result<Path<String>, PathRejection>,
    form: Result<Form<DecideForm>, FormRejection>,
    grant: bool,
) -> Response {
    let base = page.base;
    let Some(principal) = page.principal else {
        return unauthenticated(&base);
    };
    let token = form.map(|Form(f)| f.csrf).unwrap_or_default();
    let csrf_ok = page
        .nonce
        .as_deref()
        .is_some_and(|nonce| shared.key.verify(principal.id(), nonce, &token));
    if !csrf_ok {
        // The attempt is recorded (a forged request in this approver's browser is worth
        // knowing of), against the request it names when that id is usable; the refusal
        // stands whether or not the trail took it.
        if let Ok(Path(raw)) = &id {
            if crate::is_safe_id(raw) {
                let (recording, id) = (shared.clone(), ApprovalId::new(raw.clone()));
                let _ = blocking(move || {
                    recording
                        .guardrail
                        .record_refused_attempt(&principal, &id, grant, CSRF_REFUSED)
                })
                .await;
            }
        }
        return refusal(
            &base,
            StatusCode::FORBIDDEN,
            "Form check failed",
            "This form did not come from your approvals page in this browser (its security \
             token is missing or wrong). Reload the page and decide again. Nothing was \
             changed.",
        );
    }
    let id = match id {
        Ok(Path(id)) if crate::is_safe_id(&id) => ApprovalId::new(id),
        _ => {
            return refusal(
                &base,
                StatusCode::BAD_REQUEST,
                "Unusable request id",
                "The address does not name an approval request. Nothing was changed.",
            );
        }
    };
    let deciding = shared.clone();
    let result = blocking(move || {
        if grant {
            deciding.guardrail.approve(&principal, &id)
        } else {
            deciding.guardrail.reject(&principal, &id)
        }
    })
    .await;
    match result {
        Ok(request) => html(StatusCode::OK, html::decided_page(&base, &request)),
        Err(e) => refused(&base, &e),
    }
}
