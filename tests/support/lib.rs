//! Shared helpers of the integration tests.

/// The repository README's examples, compiled and run as doctests (with every feature the
/// tests enable), so a newcomer's first copy-paste works.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
pub struct ReadmeDoctests;

pub mod pg;

/// The error type of the tests' guarded functions over a database: the guard's refusal or
/// the driver's error (as text).
#[derive(Debug)]
pub enum AppError {
    /// Refused or failed by guardrail.
    Guard(guardrail_core::GuardError),
    /// The database driver's error, or the test's own failure.
    Db(String),
}

impl From<guardrail_core::GuardError> for AppError {
    fn from(e: guardrail_core::GuardError) -> Self {
        AppError::Guard(e)
    }
}

impl From<guardrail_audit::sql::sqlite::rusqlite::Error> for AppError {
    fn from(e: guardrail_audit::sql::sqlite::rusqlite::Error) -> Self {
        AppError::Db(e.to_string())
    }
}

impl From<guardrail_audit::sql::postgres::sqlx::Error> for AppError {
    fn from(e: guardrail_audit::sql::postgres::sqlx::Error) -> Self {
        AppError::Db(e.to_string())
    }
}
