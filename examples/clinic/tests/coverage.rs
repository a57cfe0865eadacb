//! Coverage of the clinic: the policy covers every guarded action, and the source scan finds
//! no PHI-touching function without `#[phi_action]` or `#[phi_exempt]`.
#![allow(
    clippy::panic,
    reason = "test helpers fail the calling test loudly on an unexpected error"
)]

use std::path::Path;

use guardrail_core::Policy;
use guardrail_core::coverage;

/// The clinic's policy, with the `[schema]` the scan's SQL check reads.
fn policy() -> Policy {
    Policy::from_toml_str(clinic::POLICY).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn the_clinic_is_completely_guarded() {
    // Links the server's action registrations into this test binary.
    let _ = clinic_server::actions::chart::read_chart;
    guardrail_core::assert_complete!(&policy());
    // The tour's sources, and the server's, where the clinic's actions live.
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    for (dir, guarded, exempt) in [
        (here.to_owned(), 0, &["forgotten_guard", "seed_patient"][..]),
        (
            here.join("../clinic-server"),
            7,
            &[
                "read_chart",
                "read_visit",
                "disclose_claim",
                "export_cohort",
                "read_program_visit",
                "seed_if_empty",
                "read_chart",
                "update_diagnosis",
            ][..],
        ),
    ] {
        let report = coverage::scan_sources(&dir, &policy()).unwrap_or_else(|e| panic!("{e}"));
        assert!(report.is_clean(), "{}: {report}", dir.display());
        assert_eq!(report.guarded_count(), guarded, "{report}");
        let found: Vec<&str> = report
            .exemptions()
            .iter()
            .map(|e| e.function.as_str())
            .collect();
        assert_eq!(found, exempt);
    }
}

#[test]
fn an_unguarded_function_in_a_test_module_is_caught() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/unguarded");
    let report = coverage::check_with_sources(&dir, &policy()).unwrap_or_else(|e| panic!("{e}"));
    let lines: Vec<String> = report
        .sources
        .findings()
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(
        lines,
        ["src/lib.rs:5:8: ssn_for_billing: SQL `select` on PHI table `patients` (ssn)"]
    );
    assert!(!report.is_complete());
    let caught = std::panic::catch_unwind(|| {
        coverage::assert_complete_with_sources(&dir, &policy());
    });
    assert!(
        caught.is_err(),
        "assert_complete_with_sources must fail on an unguarded fn"
    );
}
