//! The PostgreSQL database of the integration tests.
//!
//! Tests that need PostgreSQL call [`database_url`] with their own name. Without
//! `GUARDRAIL_TEST_DATABASE_URL` they cannot run: under CI (`CI` set, and not `false` or `0`)
//! that is a failure, so a misconfigured pipeline never passes by skipping; elsewhere the test
//! skips, and says so on the terminal (written to stderr directly, which libtest does not
//! capture, so the notice shows even when the test passes).

use std::io::Write;

/// The variable holding the URL, e.g. `postgres://postgres@127.0.0.1:5432/test`.
pub const DATABASE_URL_VAR: &str = "GUARDRAIL_TEST_DATABASE_URL";

/// True when running under CI (`CI` set to anything but empty, `false` or `0`).
pub fn in_ci() -> bool {
    matches!(std::env::var("CI").as_deref(), Ok(v) if !v.is_empty() && v != "false" && v != "0")
}

/// The PostgreSQL URL for `test`, or `None` (after a visible notice) when it must skip.
///
/// # Panics
///
/// Under CI when the URL is missing: the PostgreSQL tests must run there.
pub fn database_url(test: &str) -> Option<String> {
    match std::env::var(DATABASE_URL_VAR) {
        Ok(url) if !url.trim().is_empty() => Some(url),
        _ => {
            assert!(
                !in_ci(),
                "{test}: {DATABASE_URL_VAR} is not set under CI; the PostgreSQL tests must run \
                 (e.g. {DATABASE_URL_VAR}=postgres://postgres@127.0.0.1:5432/test)"
            );
            let _ = writeln!(
                std::io::stderr(),
                "NOTICE: {test} SKIPPED: {DATABASE_URL_VAR} is not set, so this PostgreSQL test \
                 did not run (set it, e.g. to postgres://postgres@127.0.0.1:5432/test)"
            );
            None
        }
    }
}
