//! The HTTP surface: every clinic action as a route, mounted under each endpoint's prefix.
//!
//! | method and path (under `/provider`, `/patient`, `/admin`, `/system`) | action |
//! |---|---|
//! | `GET /patients/{id}/chart` | `chart.read` |
//! | `PUT /patients/{id}/diagnosis` (`{"diagnosis": ".."}`) | `chart.update_diagnosis` (transaction) |
//! | `GET /patients/{id}/visit` | `billing.read_visit` |
//! | `GET /patients/{id}/program-visit` | `billing.read_program_visit` (Part 2) |
//! | `POST /patients/{id}/claim` | `claims.disclose_to_payer` |
//! | `DELETE /patients/{id}` | `admin.delete_record` (transaction) |
//! | `POST /cohorts/export` (`{"patient_ids": [..]}`) | `research.export_cohort` |
//!
//! The prefix sets the request's endpoint (`guardrail_axum::endpoint`); the bearer token
//! sets the principal ([`authenticate`]); `x-purpose-of-use`, `x-request-id` and
//! `x-approval-id` are read by [`GuardedContext`]; `x-break-glass: <reason>` declares an
//! emergency ([`BreakGlass`]). The same route exists under every prefix on purpose: the
//! policy decides, and a route reached through the wrong endpoint is refused with the
//! policy's reason code rather than a 404 that would hide the attempt from the trail.
//!
//! Responses are JSON: the action's value, masked for the caller's rule; or an error body
//! naming codes only (see [`crate::AppError`] and [`guardrail_axum::GuardRejection`]).

use std::sync::Arc;

use axum::extract::{FromRequestParts, Path, Request, State};
use axum::http::StatusCode;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post, put};
use axum::{Json, Router};
use guardrail_axum::GuardedContext;
use guardrail_core::{Context, Endpoint};
use serde::Deserialize;

use crate::actions::{admin, billing, chart, claims, program, research};
use crate::config::TokenTable;
use crate::db::{ClinicTx, Db};
use crate::{AppError, error_body};

/// What the handlers share.
#[derive(Clone, Debug)]
pub struct AppState {
    /// The clinic's database.
    pub db: Db,
    /// The accepted bearer tokens.
    pub tokens: Arc<TokenTable>,
}

/// Header declaring a break-glass emergency; its value is the reason (1 to
/// [`MAX_REASON_LEN`] characters), recorded scrubbed in the decision event.
pub const BREAK_GLASS_HEADER: &str = "x-break-glass";
/// Longest break-glass reason accepted.
pub const MAX_REASON_LEN: usize = 200;

/// Middleware: `Authorization: Bearer <token>` → the token's `Principal` in request
/// extensions. A request without the header passes through unauthenticated (a guarded route
/// then answers 401); a header that is malformed or names an unknown token is answered 401
/// here.
pub async fn authenticate(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    if let Some(value) = req.headers().get(AUTHORIZATION) {
        let principal = value
            .to_str()
            .ok()
            .and_then(|v| v.strip_prefix("Bearer "))
            .and_then(|token| state.tokens.principal(token.trim()))
            .cloned();
        match principal {
            Some(p) => {
                req.extensions_mut().insert(p);
            }
            None => return error_body(StatusCode::UNAUTHORIZED, "unauthenticated"),
        }
    }
    next.run(req).await
}

/// The `x-break-glass` header, if the request declares an emergency.
#[derive(Clone, Debug)]
pub struct BreakGlass(pub Option<String>);

impl<S: Send + Sync> FromRequestParts<S> for BreakGlass {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let Some(value) = parts.headers.get(BREAK_GLASS_HEADER) else {
            return Ok(BreakGlass(None));
        };
        match value.to_str() {
            Ok(reason) if !reason.trim().is_empty() && reason.len() <= MAX_REASON_LEN => {
                Ok(BreakGlass(Some(reason.trim().to_owned())))
            }
            _ => Err((
                StatusCode::BAD_REQUEST,
                Json(serde_json::json!({
                    "error": "invalid_header",
                    "header": BREAK_GLASS_HEADER,
                })),
            )
                .into_response()),
        }
    }
}

/// The request's guardrail context, with the emergency declared when the header says so,
/// and what the clinic's directory knows about the patient the call is about (care team,
/// consents) loaded into it: the decision reads it from there, synchronously. A guarded
/// call on one patient needs it (its rules may ask for a relation or a consent, and the
/// patient's flags are read for every such call); a cohort export on many does not.
async fn context(ctx: GuardedContext, emergency: BreakGlass, patient: Option<&str>) -> Context {
    let ctx = match emergency.0 {
        Some(reason) => ctx.0.break_glass(reason),
        None => ctx.0,
    };
    if let Some(patient) = patient {
        // A failed lookup is remembered in the context: the guarded call then denies
        // (`lookup`) and records the denial, so it is not answered here.
        if ctx.preload(patient).await.is_err() {
            tracing::warn!("a directory lookup failed; the guarded call will deny");
        }
    }
    ctx
}

/// The body of `PUT /patients/{id}/diagnosis`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DiagnosisChange {
    /// The new diagnosis.
    pub diagnosis: String,
}

/// The body of `POST /cohorts/export`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CohortRequest {
    /// The patients to export.
    pub patient_ids: Vec<String>,
}

#[guardrail_core::phi_exempt(
    reason = "HTTP handler: returns the guarded action's value, already masked for the caller"
)]
async fn read_chart(
    State(state): State<AppState>,
    ctx: GuardedContext,
    emergency: BreakGlass,
    Path(id): Path<String>,
) -> Result<Json<chart::Chart>, AppError> {
    let ctx = context(ctx, emergency, Some(&id)).await;
    Ok(Json(chart::read_chart(&ctx, &state.db, &id).await?))
}

async fn update_diagnosis(
    State(state): State<AppState>,
    ctx: GuardedContext,
    emergency: BreakGlass,
    Path(id): Path<String>,
    Json(change): Json<DiagnosisChange>,
) -> Result<StatusCode, AppError> {
    let ctx = context(ctx, emergency, Some(&id)).await;
    let mut tx = state.db.begin().await?;
    // On an error `tx` is dropped here: sqlx rolls it back, and the change goes with it.
    chart::update_diagnosis(&ctx, &mut tx, &id, &change.diagnosis).await?;
    commit(tx).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Commits `tx` on a task of its own. Up to here a cancelled request (client gone,
/// deadline) drops the guarded call, which records `cancelled`, and the transaction, which
/// rolls back. Once the call has returned, its `ok` outcome is in `tx` and the call is
/// over: a cancellation now would roll back a finished change and its record with nothing
/// left to say what happened, so the commit runs to its end whatever happens to the request.
async fn commit(tx: ClinicTx) -> Result<(), AppError> {
    tokio::spawn(tx.commit())
        .await
        .map_err(|_| AppError::CommitLost)?
        .map_err(AppError::Db)
}

#[guardrail_core::phi_exempt(
    reason = "HTTP handler: returns the guarded action's value, already masked for the caller"
)]
async fn read_visit(
    State(state): State<AppState>,
    ctx: GuardedContext,
    emergency: BreakGlass,
    Path(id): Path<String>,
) -> Result<Json<billing::Visit>, AppError> {
    let ctx = context(ctx, emergency, Some(&id)).await;
    Ok(Json(billing::read_visit(&ctx, &state.db, &id).await?))
}

#[guardrail_core::phi_exempt(
    reason = "HTTP handler: returns the guarded action's value, already masked for the caller"
)]
async fn disclose_claim(
    State(state): State<AppState>,
    ctx: GuardedContext,
    emergency: BreakGlass,
    Path(id): Path<String>,
) -> Result<Json<claims::Claim>, AppError> {
    let ctx = context(ctx, emergency, Some(&id)).await;
    Ok(Json(claims::disclose_to_payer(&ctx, &state.db, &id).await?))
}

async fn delete_record(
    State(state): State<AppState>,
    ctx: GuardedContext,
    emergency: BreakGlass,
    Path(id): Path<String>,
) -> Result<StatusCode, AppError> {
    let ctx = context(ctx, emergency, Some(&id)).await;
    let mut tx = state.db.begin().await?;
    admin::delete_record(&ctx, &mut tx, &id).await?;
    commit(tx).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[guardrail_core::phi_exempt(
    reason = "HTTP handler: returns the guarded action's value, already masked for the caller"
)]
async fn export_cohort(
    State(state): State<AppState>,
    ctx: GuardedContext,
    emergency: BreakGlass,
    Json(request): Json<CohortRequest>,
) -> Result<Json<Vec<research::CohortRow>>, AppError> {
    let ctx = context(ctx, emergency, single(&request.patient_ids)).await;
    Ok(Json(
        research::export_cohort(&ctx, &state.db, &request.patient_ids).await?,
    ))
}

#[guardrail_core::phi_exempt(
    reason = "HTTP handler: returns the guarded action's value, already masked for the caller"
)]
async fn read_program_visit(
    State(state): State<AppState>,
    ctx: GuardedContext,
    emergency: BreakGlass,
    Path(id): Path<String>,
) -> Result<Json<program::ProgramVisit>, AppError> {
    let ctx = context(ctx, emergency, Some(&id)).await;
    Ok(Json(
        program::read_program_visit(&ctx, &state.db, &id).await?,
    ))
}

/// The one patient of a list of one.
fn single(ids: &[String]) -> Option<&str> {
    match ids {
        [one] => Some(one),
        _ => None,
    }
}

/// The clinic's action routes, for one endpoint.
pub fn actions_router(endpoint: Endpoint) -> Router<AppState> {
    Router::new()
        .route("/patients/{id}/chart", get(read_chart))
        .route("/patients/{id}/diagnosis", put(update_diagnosis))
        .route("/patients/{id}/visit", get(read_visit))
        .route("/patients/{id}/program-visit", get(read_program_visit))
        .route("/patients/{id}/claim", post(disclose_claim))
        .route("/patients/{id}", delete(delete_record))
        .route("/cohorts/export", post(export_cohort))
        .layer(guardrail_axum::endpoint(endpoint))
}

/// The URL prefix of each endpoint's routes.
pub const ENDPOINT_PREFIXES: [(&str, Endpoint); 4] = [
    ("/provider", Endpoint::Provider),
    ("/patient", Endpoint::Patient),
    ("/admin", Endpoint::Admin),
    ("/system", Endpoint::System),
];

/// Every endpoint's action routes under its prefix.
pub fn clinic_router() -> Router<AppState> {
    ENDPOINT_PREFIXES
        .iter()
        .fold(Router::new(), |router, (prefix, endpoint)| {
            router.nest(prefix, actions_router(*endpoint))
        })
}
