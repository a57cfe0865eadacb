//! Shared helpers of the integration tests.

/// The repository README's examples, compiled and run as doctests (with every feature the
/// tests enable), so a newcomer's first copy-paste works.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
pub struct ReadmeDoctests;

pub mod pg;

/// The PostgreSQL URL for tests, from `GUARDRAIL_TEST_DATABASE_URL`.
///
/// In CI (`CI` set) a missing URL is an error, so the PostgreSQL tests fail loudly; elsewhere
/// they print a notice and skip.
pub fn postgres_url() -> Option<String> {
    match std::env::var("GUARDRAIL_TEST_DATABASE_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            if std::env::var_os("CI").is_some() {
                panic!(
                    "GUARDRAIL_TEST_DATABASE_URL is not set in CI: the PostgreSQL tests must run"
                );
            }
            eprintln!(
                "notice: GUARDRAIL_TEST_DATABASE_URL is not set; skipping PostgreSQL tests \
                 (set it, e.g. to postgres://postgres@127.0.0.1:5432/test, to run them)"
            );
            None
        }
    }
}
