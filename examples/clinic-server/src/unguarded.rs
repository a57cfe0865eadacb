//! **Benchmarking only**: two of the clinic's routes served *without* guardrail, so a load
//! test can measure what the guardrail costs a real service.
//!
//! [`router`] serves `GET /provider/patients/{id}/chart` and
//! `PUT /provider/patients/{id}/diagnosis` with the same bearer authentication, the same
//! sqlx statements and the same transaction as the guarded handlers (`crate::actions`,
//! `crate::routes`), and nothing of guardrail: no decision, no audit event, no masking, no
//! request-id or endpoint layer. It serves PHI to anyone holding a token, so it is never
//! reachable by accident:
//!
//! * the binary's `--unguarded` flag exists only when built with the `bench-unguarded`
//!   feature;
//! * [`router`] needs a [`BenchmarkOnly`], which only [`BenchmarkOnly::from_env`] makes, and
//!   only when [`BENCHMARK_ENV`] is set to [`BENCHMARK_VALUE`];
//! * the server refuses any listen address but loopback ([`BenchmarkOnly::check_listen`]).
//!
//! The statements are copies of the guarded actions' (a guarded action's body is part of its
//! `#[phi_action]` function); the tests check that both modes answer the same chart and
//! write the same rows.
//!
//! [`Baseline::DurableFloor`] (`--unguarded-floor`) serves the same routes with one thing of
//! guardrail's: before its statements, each request appends one decision-shaped event (the
//! principal, the action, the patient's keyed token, `allow`) to the clinic's own file trail
//! (`Fsync` mode, signed checkpoints, as the guarded server writes it) and waits for it to
//! be durable. No policy, lookup, masking or outcome: the least any guard that records its
//! decision durably before the body runs must do. The load test's `FLOOR=1` measures it
//! beside the two other servers, which says how much of the guarded server's cost that
//! requirement alone sets on a given machine.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::extract::{Path, Request, State};
use axum::http::StatusCode;
use axum::middleware::{Next, from_fn, from_fn_with_state};
use axum::response::Response;
use axum::routing::{get, put};
use axum::{Extension, Json, Router};
use guardrail_core::audit::{
    AuditError, AuditKey, AuditSink as _, EventKind, FileSink, Record, Timestamp,
};
use guardrail_core::{GuardError, Principal};

use crate::actions::chart::Chart;
use crate::db::on_either;
use crate::routes::{AppState, DiagnosisChange, authenticate};
use crate::{AppError, Clinic, error_body};

/// The environment variable that must say [`BENCHMARK_VALUE`] before an unguarded server
/// starts.
pub const BENCHMARK_ENV: &str = "CLINIC_SERVER_UNGUARDED_BENCHMARK";
/// The value [`BENCHMARK_ENV`] must hold.
pub const BENCHMARK_VALUE: &str = "i-am-benchmarking-synthetic-data";

/// Proof that the process was told it is a benchmark (see the module documentation).
#[derive(Debug, Clone, Copy)]
pub struct BenchmarkOnly(());

/// Why an unguarded server refuses to start.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum UnguardedRefused {
    /// [`BENCHMARK_ENV`] is not set to [`BENCHMARK_VALUE`].
    #[error(
        "refusing to serve without guardrail: this mode is for load benchmarks on synthetic \
         data only; set {BENCHMARK_ENV}={BENCHMARK_VALUE} to confirm"
    )]
    NotABenchmark,
    /// The listen address is not a loopback address.
    #[error("refusing to serve without guardrail on `{0}`: only loopback addresses are allowed")]
    NotLoopback(SocketAddr),
}

impl BenchmarkOnly {
    /// `Ok` only when [`BENCHMARK_ENV`] is set to [`BENCHMARK_VALUE`].
    pub fn from_env() -> Result<BenchmarkOnly, UnguardedRefused> {
        BenchmarkOnly::from_value(std::env::var(BENCHMARK_ENV).ok().as_deref())
    }

    /// [`BenchmarkOnly::from_env`] with the variable's value given.
    pub fn from_value(value: Option<&str>) -> Result<BenchmarkOnly, UnguardedRefused> {
        match value {
            Some(v) if v == BENCHMARK_VALUE => Ok(BenchmarkOnly(())),
            _ => Err(UnguardedRefused::NotABenchmark),
        }
    }

    /// `Ok` when `addr` is a loopback address.
    pub fn check_listen(self, addr: SocketAddr) -> Result<(), UnguardedRefused> {
        if addr.ip().is_loopback() {
            Ok(())
        } else {
            Err(UnguardedRefused::NotLoopback(addr))
        }
    }
}

/// What an unguarded server adds to its statements (see the module documentation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Baseline {
    /// Nothing: the statements alone.
    Bare,
    /// One durable decision-shaped event in the clinic's file trail before the statements.
    DurableFloor,
}

/// What a [`Baseline::DurableFloor`] request appends, and where (`None`: [`Baseline::Bare`]).
#[derive(Debug, Clone)]
struct Floor(Option<Arc<FloorTrail>>);

/// The clinic's file trail, the key of its subject tokens, and the decision's constant
/// fields, built once (as the guarded server shares its labels) so a request does only
/// what a guard must: stamp, tokenize, append, wait.
#[derive(Debug)]
struct FloorTrail {
    sink: Arc<FileSink>,
    key: AuditKey,
    template: Record,
}

impl Floor {
    fn of(baseline: Baseline, clinic: &Clinic) -> Floor {
        Floor(match baseline {
            Baseline::Bare => None,
            Baseline::DurableFloor => {
                let key = clinic.guardrail().audit_key().clone();
                let mut template = Record::new(EventKind::Decision);
                template.resource = Some(Arc::from("patient_record"));
                template.endpoint = Some(Arc::from("provider"));
                template.purpose = Some(Arc::from("treatment"));
                template.decision = Some(Arc::from("allow"));
                template.rule = Some(Arc::from("floor"));
                template.key_fingerprint = Some(key.fingerprint_text());
                Some(Arc::new(FloorTrail {
                    sink: clinic.file_sink().clone(),
                    key,
                    template,
                }))
            }
        })
    }

    /// Appends the decision-shaped event of `principal` calling `action` on `patient`, and
    /// waits until it is durable.
    async fn record(
        &self,
        principal: &Principal,
        action: &'static str,
        kind: &'static str,
        patient: &str,
    ) -> Result<(), AppError> {
        let Some(trail) = &self.0 else {
            return Ok(());
        };
        let failed = |e: AuditError| {
            AppError::Guard(GuardError::AuditUnavailable {
                action,
                sink: "file".into(),
                detail: "decision".into(),
                source: Arc::new(e),
            })
        };
        let mut record = trail.template.clone();
        record.time = Timestamp::now();
        record.request_id = Some(Arc::from(request_id()));
        record.action = Some(Arc::from(action));
        record.action_kind = Some(Arc::from(kind));
        record.principal = Some(Arc::from(principal.id()));
        record.subject = Some(Arc::from(
            trail.key.token(AuditKey::SUBJECT_DOMAIN, patient),
        ));
        let submitted = trail.sink.submit(record).map_err(failed)?;
        if let Some(pending) = submitted.pending {
            pending.await.map_err(failed)?;
        }
        Ok(())
    }
}

/// The unguarded routes (see the module documentation) over `clinic`'s database and tokens, with bearer
/// authentication; a request without a known token is answered 401. `baseline` says what
/// each request adds to its statements.
pub fn router(_proof: BenchmarkOnly, clinic: &Clinic, baseline: Baseline) -> Router {
    let floor = Floor::of(baseline, clinic);
    let state = clinic.state.clone();
    let provider = Router::new()
        .route("/patients/{id}/chart", get(read_chart))
        .route("/patients/{id}/diagnosis", put(update_diagnosis));
    Router::new()
        .nest("/provider", provider)
        .layer(Extension(floor))
        .layer(from_fn(require_principal))
        .layer(from_fn_with_state(state.clone(), authenticate))
        .with_state(state)
}

/// 401 unless [`authenticate`] put a principal in the request (as `GuardedContext` does).
async fn require_principal(req: Request, next: Next) -> Response {
    if req.extensions().get::<Principal>().is_none() {
        return error_body(StatusCode::UNAUTHORIZED, "unauthenticated");
    }
    next.run(req).await
}

/// `chart.read`'s statement, unguarded and unmasked.
#[guardrail_core::phi_exempt(
    reason = "load-benchmark baseline without guardrail: compiled only with the bench-unguarded feature, served only on loopback when CLINIC_SERVER_UNGUARDED_BENCHMARK is set"
)]
async fn read_chart(
    State(state): State<AppState>,
    Extension(floor): Extension<Floor>,
    Extension(principal): Extension<Principal>,
    Path(id): Path<String>,
) -> Result<Json<Chart>, AppError> {
    floor.record(&principal, "chart.read", "read", &id).await?;
    type Row = (String, String, String, String, String, String);
    let row: Option<Row> = on_either!(&state.db, |pool| {
        sqlx::query_as(
            "SELECT mrn, name, ssn, birth_date, diagnosis, note FROM patients WHERE id = $1",
        )
        .bind(&id)
        .fetch_optional(pool)
        .await
    })?;
    let (mrn, name, ssn, birth_date, diagnosis, note) = row.ok_or(AppError::NotFound)?;
    // The guarded action's log line, so both modes log the same.
    tracing::info!("chart {mrn} loaded");
    Ok(Json(Chart {
        mrn,
        name,
        ssn,
        birth_date,
        diagnosis,
        note,
    }))
}

/// A request id for the change log (the guarded mode's comes from `x-request-id`).
fn request_id() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!("unguarded-{}", NEXT.fetch_add(1, Ordering::Relaxed))
}

/// `chart.update_diagnosis`'s statements in one transaction, unguarded; committed on a task
/// of its own as the guarded handler does.
#[guardrail_core::phi_exempt(
    reason = "load-benchmark baseline without guardrail: compiled only with the bench-unguarded feature, served only on loopback when CLINIC_SERVER_UNGUARDED_BENCHMARK is set"
)]
async fn update_diagnosis(
    State(state): State<AppState>,
    Extension(floor): Extension<Floor>,
    Extension(principal): Extension<Principal>,
    Path(id): Path<String>,
    Json(change): Json<DiagnosisChange>,
) -> Result<StatusCode, AppError> {
    floor
        .record(&principal, "chart.update_diagnosis", "update", &id)
        .await?;
    let mut tx = state.db.begin().await?;
    let changed = tx
        .execute(
            "UPDATE patients SET diagnosis = $1 WHERE id = $2",
            &[&change.diagnosis, &id],
        )
        .await?;
    if changed == 0 {
        return Err(AppError::NotFound);
    }
    tx.execute(
        "INSERT INTO change_log (request_id, action, patient_id, detail)
         VALUES ($1, 'chart.update_diagnosis', $2, $3)",
        &[&request_id(), &id, &change.diagnosis],
    )
    .await?;
    tokio::spawn(tx.commit())
        .await
        .map_err(|_| AppError::CommitLost)?
        .map_err(AppError::Db)?;
    Ok(StatusCode::NO_CONTENT)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, reason = "tests fail loudly")]
mod tests {
    use super::*;

    #[test]
    fn refuses_unless_the_benchmark_value_is_set() {
        assert_eq!(
            BenchmarkOnly::from_value(None).unwrap_err(),
            UnguardedRefused::NotABenchmark
        );
        for wrong in ["", "1", "true", "yes", " i-am-benchmarking-synthetic-data"] {
            assert_eq!(
                BenchmarkOnly::from_value(Some(wrong)).unwrap_err(),
                UnguardedRefused::NotABenchmark,
                "{wrong:?}"
            );
        }
        assert!(BenchmarkOnly::from_value(Some(BENCHMARK_VALUE)).is_ok());
    }

    #[test]
    fn refuses_a_listen_address_off_loopback() {
        let proof = BenchmarkOnly::from_value(Some(BENCHMARK_VALUE)).unwrap();
        for ok in ["127.0.0.1:0", "[::1]:8080"] {
            assert!(proof.check_listen(ok.parse().unwrap()).is_ok(), "{ok}");
        }
        for refused in ["0.0.0.0:8080", "192.168.1.4:80", "[::]:80"] {
            let addr: SocketAddr = refused.parse().unwrap();
            assert_eq!(
                proof.check_listen(addr).unwrap_err(),
                UnguardedRefused::NotLoopback(addr)
            );
        }
    }
}
