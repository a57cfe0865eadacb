//! The clinic example as a real service: axum 0.8 over sqlx, guarded by guardrail.
//!
//! * **Database**: SQLite by default (`DATA/clinic.sqlite`, created with its migrations and
//!   the demo's synthetic patients on first run), PostgreSQL when a URL is given
//!   (`DATABASE_URL` for the binary). [`db::Db`] is the pool, [`db::ClinicTx`] a transaction
//!   on either; the clinic's changes and their `ok` outcome events commit together in it
//!   (`#[phi_action(tx = tx)]`).
//! * **Audit**: a durable [`FileSink`](guardrail_core::audit::FileSink) in `DATA/audit`
//!   (fsync per append, signed checkpoints; see [`trail`]) holds every decision and every
//!   outcome that is not part of a transaction; the database's `guardrail_audit` table holds
//!   the outcomes of committed changes.
//! * **Authentication**: demo bearer tokens from a TOML file ([`config::TokenTable`]), each
//!   mapped to a principal with roles, jurisdiction and (for patients) their own record.
//! * **Relationships**: who treats whom and which consents are on file come from the
//!   clinic's `care_team` and `consents` tables ([`directory::ClinicDirectory`] on
//!   PostgreSQL, [`directory::LocalDirectory`] on SQLite), loaded before each guarded call
//!   on a patient.
//! * **Routes**: every clinic action under each endpoint's prefix (`/provider`, `/patient`,
//!   `/admin`, `/system`, see [`routes`]): the policy, not the router, decides which
//!   combination is allowed. `/metrics` serves Prometheus text.
//!
//! ```no_run
//! # async fn run() -> Result<(), clinic_server::ServerError> {
//! use clinic_server::{Clinic, ServerConfig};
//! let config = ServerConfig::sqlite("/tmp/clinic-data");
//! let server = Clinic::open(config).await?.serve("127.0.0.1:0".parse().unwrap()).await?;
//! println!("listening on http://{}", server.addr());
//! server.stop().await?;
//! # Ok(()) }
//! ```
#![forbid(unsafe_code)]

pub mod actions;
pub mod config;
pub mod db;
pub mod directory;
pub mod replica;
pub mod routes;
pub mod seed;
mod server;
pub mod trail;
pub mod unguarded;

pub use config::{DatabaseConfig, ServerConfig, TokenTable};
pub use server::{Clinic, RunningServer, ServerError};

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use guardrail_core::GuardError;

/// The clinic's policy (the same file the guided tour prints and the tests use).
pub const POLICY: &str = include_str!("../../clinic/policy.toml");

/// What a handler's guarded action returns as its error.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// The guardrail refused the call (or could not record it).
    #[error(transparent)]
    Guard(#[from] GuardError),
    /// The database failed.
    #[error("database error: {0}")]
    Db(#[from] sqlx::Error),
    /// No such record.
    #[error("record not found")]
    NotFound,
    /// The task committing a change ended without reporting (the runtime shut down): whether
    /// the change and its outcome committed is in the database, not known here.
    #[error("the commit's task ended without a result")]
    CommitLost,
}

impl IntoResponse for AppError {
    /// Statuses: a guard error as [`guardrail_axum::GuardRejection`]'s table; a record that
    /// does not exist 404; a value the database's constraints refuse 422; any other
    /// database error 500. Bodies name a code only: a database error's text can quote the
    /// data, so it goes nowhere.
    fn into_response(self) -> Response {
        match self {
            AppError::Guard(e) => guardrail_axum::GuardRejection(e).into_response(),
            AppError::NotFound => error_body(StatusCode::NOT_FOUND, "not_found"),
            AppError::Db(sqlx::Error::Database(e))
                if matches!(e.kind(), sqlx::error::ErrorKind::CheckViolation) =>
            {
                error_body(StatusCode::UNPROCESSABLE_ENTITY, "constraint")
            }
            AppError::CommitLost => error_body(StatusCode::INTERNAL_SERVER_ERROR, "commit_lost"),
            AppError::Db(e) => {
                tracing::error!(kind = db_error_kind(&e), "database error");
                error_body(StatusCode::INTERNAL_SERVER_ERROR, "database")
            }
        }
    }
}

/// A PHI-free name for a database error, for logs.
fn db_error_kind(e: &sqlx::Error) -> &'static str {
    match e {
        sqlx::Error::Database(_) => "database",
        sqlx::Error::Io(_) => "io",
        sqlx::Error::PoolTimedOut => "pool_timed_out",
        sqlx::Error::PoolClosed => "pool_closed",
        sqlx::Error::RowNotFound => "row_not_found",
        sqlx::Error::ColumnDecode { .. } | sqlx::Error::Decode(_) => "decode",
        _ => "other",
    }
}

/// A JSON error body `{"error": code}` with `status`.
pub(crate) fn error_body(status: StatusCode, code: &'static str) -> Response {
    (status, axum::Json(serde_json::json!({ "error": code }))).into_response()
}
