//! The privacy officer's approvals page: a mountable router listing the pending
//! just-in-time approval requests, with approve and reject forms.
//!
//! Owns the page's HTTP handling (`handlers`), its HTML (`html`, every value escaped) and its
//! CSRF defence (`csrf`). It decides nothing itself: listing goes through
//! [`Guardrail::pending_approvals`] and deciding through [`Guardrail::approve`] /
//! [`Guardrail::reject`], so the approver-role check, separation of duties, the pending and
//! expiry checks and the audit events are the approval flow's own, the same as the CLI's.
//! May use: guardrail-core's public API and this crate's id check ([`crate::is_safe_id`]).

mod csrf;
mod handlers;
mod html;

use std::sync::Arc;

use axum::Router;
use axum::routing::{get, post};
use guardrail_core::Guardrail;

/// Name of the cookie holding a browser's CSRF nonce (`HttpOnly; SameSite=Strict`).
pub const CSRF_COOKIE: &str = "guardrail_approvals_csrf";

/// Most requests one page lists unless [`ApprovalsPage::limit`] says otherwise.
pub const DEFAULT_LIMIT: usize = 200;

/// Why an [`ApprovalsPage`] could not be set up.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ApprovalsPageError {
    /// The operating system's random source failed while drawing the CSRF key.
    #[error("cannot draw the page's csrf key from the operating system: {0}")]
    Random(String),
}

/// What the handlers share.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) guardrail: Guardrail,
    pub(crate) key: csrf::CsrfKey,
    pub(crate) limit: usize,
    pub(crate) secure_cookie: bool,
}

/// The approvals page, built then turned into a [`Router`] to mount where the host's auth
/// middleware runs.
///
/// | route | does |
/// |---|---|
/// | `GET /` | the pending requests the approver may decide, each with every field the grant will be bound to (labels and keyed tokens, never PHI), and approve/reject forms |
/// | `POST /{id}/approve` | [`Guardrail::approve`] as the signed-in approver, then a page showing the request granted |
/// | `POST /{id}/reject` | [`Guardrail::reject`], then a page showing it rejected |
///
/// **The approver** is the [`Principal`](guardrail_core::Principal) the host's auth
/// middleware put into request extensions, as for
/// [`GuardedContext`](crate::GuardedContext); without one every route answers 401. Viewing
/// needs one of the policy's `[approval] approver_roles` (403 otherwise); deciding makes
/// the approval flow's checks (approver role, not the requester, pending, unexpired) and
/// records the same `approval_granted` / `approval_rejected` events as
/// `guardrail approvals approve`, refusals included.
///
/// **CSRF.** `GET /` issues a random nonce in the `guardrail_approvals_csrf` cookie
/// (`HttpOnly; SameSite=Strict`, `Secure` unless [`ApprovalsPage::secure_cookie`] turns it
/// off for plain-HTTP development) and puts in each form a token: the HMAC-SHA256 of the
/// approver's principal id and that nonce under the page's key. A POST whose cookie is
/// missing, or whose token is missing or is not the one of the *authenticated* approver and
/// that cookie, is refused with 403 before anything is changed. The refused attempt is
/// recorded all the same, as a `refused` step of the request the path names (when the id
/// is usable), with a fixed reason: the trail then shows forged requests made in an
/// approver's browser ([`Guardrail::record_refused_attempt`]).
///
/// **Responses** are HTML with `Cache-Control: no-store`, a content security policy that
/// allows no script, frame or foreign form target, and for refusals a fixed message per
/// reason: never an error's inner text, a stack trace or PHI.
///
/// | refusal | status |
/// |---|---|
/// | no principal | 401 |
/// | not an approver; the requester deciding their own request; CSRF check failed | 403 |
/// | no such request | 404 |
/// | unusable request id in the path | 400 |
/// | no longer pending, expired | 409 |
/// | audit trail or approval store unavailable | 503 |
///
/// ```
/// use axum::Router;
/// use guardrail_axum::ApprovalsPage;
/// use guardrail_core::prelude::*;
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let policy = Policy::from_toml_str(r#"
/// version = "doc"
/// [approval]
/// approver_roles = ["privacy_officer"]
/// "#)?;
/// let guardrail = Guardrail::builder()
///     .policy(policy)
///     .audit(MemorySink::new())
///     .audit_key(AuditKey::from_bytes(b"doc-key-0123456789abcdef-0123")?)
///     .build()?;
/// let app: Router = Router::new()
///     .nest("/approvals", ApprovalsPage::new(guardrail)?.router());
///     // .layer(your_auth_middleware) — inserts the signed-in `Principal`
/// # let _ = app;
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct ApprovalsPage {
    shared: Shared,
}

impl ApprovalsPage {
    /// A page deciding through `guardrail` (its policy's approver roles, its approval store,
    /// its audit trail), with a fresh random CSRF key.
    pub fn new(guardrail: Guardrail) -> Result<ApprovalsPage, ApprovalsPageError> {
        let key = csrf::CsrfKey::random().map_err(|e| ApprovalsPageError::Random(e.to_string()))?;
        Ok(ApprovalsPage {
            shared: Shared {
                guardrail,
                key,
                limit: DEFAULT_LIMIT,
                secure_cookie: true,
            },
        })
    }

    /// Uses `key` for the CSRF tokens instead of the random one, so that several replicas
    /// behind one load balancer accept each other's forms. Keep it secret, like the audit key.
    pub fn csrf_key(mut self, key: [u8; 32]) -> ApprovalsPage {
        self.shared.key = csrf::CsrfKey::from_bytes(key);
        self
    }

    /// Lists at most `n` requests (the oldest first; at least 1). Default [`DEFAULT_LIMIT`].
    pub fn limit(mut self, n: usize) -> ApprovalsPage {
        self.shared.limit = n.max(1);
        self
    }

    /// Whether the CSRF cookie carries `Secure` (default `true`: the browser sends it over
    /// HTTPS only). Turn off only for a plain-HTTP development server.
    pub fn secure_cookie(mut self, secure: bool) -> ApprovalsPage {
        self.shared.secure_cookie = secure;
        self
    }

    /// The router: mount it with `Router::nest("/approvals", ..)` (the forms post under the
    /// mount point) or merge it at the root, inside the host's auth middleware.
    pub fn router<S>(self) -> Router<S>
    where
        S: Clone + Send + Sync + 'static,
    {
        Router::new()
            .route("/", get(handlers::list))
            .route("/{id}/approve", post(handlers::approve))
            .route("/{id}/reject", post(handlers::reject))
            .layer(axum::Extension(Arc::new(self.shared)))
    }
}
