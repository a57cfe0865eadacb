//! Both coverage checks in one report: the registry check ([`super::check`]: every guarded
//! action has a rule) and the source scan ([`super::scan_sources`]: every PHI-touching
//! function is guarded).

use std::fmt;
use std::path::Path;

use super::{CoverageReport, ScanError, ScanReport, check, scan_sources};
use crate::policy::Policy;

/// The registry check and the source scan of one crate.
#[derive(Debug)]
pub struct CompleteReport {
    /// Every registered action against the policy.
    pub registry: CoverageReport,
    /// The crate's sources.
    pub sources: ScanReport,
}

impl CompleteReport {
    /// Whether both checks found nothing.
    pub fn is_complete(&self) -> bool {
        self.registry.is_complete() && self.sources.is_clean()
    }
}

impl fmt::Display for CompleteReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{}", self.registry)?;
        write!(f, "{}", self.sources)
    }
}

/// Runs [`check`] on the registered actions and [`scan_sources`] on the crate in
/// `crate_dir`.
pub fn check_with_sources(crate_dir: &Path, policy: &Policy) -> Result<CompleteReport, ScanError> {
    Ok(CompleteReport {
        registry: check(policy),
        sources: scan_sources(crate_dir, policy)?,
    })
}

/// Panics with both reports unless every registered action is covered by the policy and
/// every PHI-touching function of the crate in `crate_dir` is guarded or exempt. Also panics
/// if the scan fails. [`crate::assert_complete!`] calls it with the calling crate's
/// directory.
#[track_caller]
#[expect(
    clippy::panic,
    reason = "a test helper: failing the calling test with the report is its purpose"
)]
pub fn assert_complete_with_sources(crate_dir: impl AsRef<Path>, policy: &Policy) {
    match check_with_sources(crate_dir.as_ref(), policy) {
        Ok(report) if report.is_complete() => {}
        Ok(report) => panic!("guardrail coverage is incomplete\n{report}"),
        Err(e) => panic!("the source scan failed: {e}"),
    }
}

/// `assert_complete!(&policy)`: in a host crate's test, checks that the policy covers every
/// guarded action *and* that every PHI-touching function of the crate (the one whose
/// `CARGO_MANIFEST_DIR` the test is built in) is guarded or exempt; panics with both reports
/// otherwise. Needs the `scan` feature.
///
/// ```no_run
/// #[test]
/// fn guardrail_coverage_is_complete() {
///     let policy = guardrail_core::Policy::from_path("policy.toml").unwrap();
///     guardrail_core::assert_complete!(&policy);
/// }
/// ```
#[macro_export]
macro_rules! assert_complete {
    ($policy:expr $(,)?) => {
        $crate::coverage::assert_complete_with_sources(::core::env!("CARGO_MANIFEST_DIR"), $policy)
    };
}
