//! Bulk calls (`subjects = ..`): every patient a call touches is in the trail as a token, each
//! patient's accounting of disclosures lists the call, the count defaults to the number of
//! subjects, a grant opens exactly the set it was granted for, and a patient's bulk call can
//! only ever reach their own records.

use std::sync::atomic::{AtomicUsize, Ordering};

use guardrail_core::audit::disclosure::{TimeRange, account_disclosures};
use guardrail_core::audit::{EventKind, Outcome};
use guardrail_core::prelude::*;
use guardrail_core::{DenyReason, Endpoint, Purpose};

const POLICY: &str = r#"
version = "bulk-1"

[approval]
approver_roles = ["privacy_officer"]

[[rule]]
id = "research-export"
effect = "allow"
actions = ["bulk.export", "bulk.export_understated"]
roles = ["researcher"]
purposes = ["research"]
max_count = 50
approval_over = 3

[[rule]]
id = "patients-own-records"
effect = "allow"
actions = ["bulk.own_records"]
roles = ["patient"]
endpoints = ["patient"]
self_only = true
"#;

const KEY: &[u8] = b"bulk-test-key-0123456789abcdef";

#[phi_action(name = "bulk.export", kind = "export", role = "researcher", subjects = ids)]
fn export(ctx: &Context, runs: &AtomicUsize, ids: &[String]) -> Result<usize, GuardError> {
    runs.fetch_add(1, Ordering::SeqCst);
    Ok(ids.len())
}

/// Declares a count smaller than the patients it touches.
#[phi_action(name = "bulk.export_understated", kind = "export", role = "researcher",
             subjects = ids, count = 1)]
fn export_understated(
    ctx: &Context,
    runs: &AtomicUsize,
    ids: &[String],
) -> Result<usize, GuardError> {
    runs.fetch_add(1, Ordering::SeqCst);
    Ok(ids.len())
}

#[phi_action(name = "bulk.own_records", kind = "read", role = "patient", subjects = ids.iter())]
fn own_records(ctx: &Context, runs: &AtomicUsize, ids: &[u64]) -> Result<usize, GuardError> {
    runs.fetch_add(1, Ordering::SeqCst);
    Ok(ids.len())
}

fn setup() -> (Guardrail, MemorySink) {
    let trail = MemorySink::new();
    let g = Guardrail::builder()
        .policy(Policy::from_toml_str(POLICY).unwrap())
        .audit(trail.clone())
        .audit_key(AuditKey::from_bytes(KEY).unwrap())
        .build()
        .unwrap();
    (g, trail)
}

fn ids(range: std::ops::Range<u32>) -> Vec<String> {
    range.map(|i| format!("patient-{i:04}")).collect()
}

fn researcher(g: &Guardrail) -> Context {
    g.context(Principal::new("res-kim").role("researcher"))
        .purpose(Purpose::Research)
}

#[test]
fn every_subject_is_recorded_as_a_token_and_the_count_defaults_to_their_number() {
    let (g, trail) = setup();
    let runs = AtomicUsize::new(0);
    let key = AuditKey::from_bytes(KEY).unwrap();
    let cohort = ids(0..3);
    assert_eq!(export(&researcher(&g), &runs, &cohort).unwrap(), 3);
    assert_eq!(runs.load(Ordering::SeqCst), 1);

    let events = trail.events();
    let decision = events
        .iter()
        .find(|e| e.record.kind == EventKind::Decision)
        .unwrap();
    let outcome = events
        .iter()
        .find(|e| e.record.kind == EventKind::Outcome)
        .unwrap();
    let expected: Vec<String> = cohort.iter().map(|id| key.token("subject", id)).collect();
    let recorded: Vec<String> = decision
        .record
        .subjects
        .iter()
        .map(|t| t.to_string())
        .collect();
    assert_eq!(recorded, expected);
    assert_eq!(decision.record.count, Some(3));
    assert_eq!(decision.record.subject, None);
    assert_eq!(outcome.record.subjects, decision.record.subjects);
    assert_eq!(outcome.record.outcome, Some(Outcome::Ok));
    let lines = trail.to_lines();
    for id in &cohort {
        assert!(!lines.contains(id.as_str()), "raw `{id}` in the trail");
    }
}

#[test]
fn each_patients_accounting_lists_the_bulk_export() {
    let (g, trail) = setup();
    let runs = AtomicUsize::new(0);
    export(&researcher(&g), &runs, &ids(0..2)).unwrap();
    export(&researcher(&g), &runs, &ids(1..3)).unwrap();
    let key = AuditKey::from_bytes(KEY).unwrap();
    let events = trail.events();
    let rows = |id: &str| account_disclosures(&events, &key, id, TimeRange::all()).rows;
    assert_eq!(rows("patient-0000").len(), 1);
    assert_eq!(rows("patient-0001").len(), 2);
    assert_eq!(rows("patient-0002").len(), 1);
    assert_eq!(rows("patient-0003").len(), 0);
    let row = &rows("patient-0001")[0];
    assert_eq!(row.action.as_deref(), Some("bulk.export"));
    assert_eq!(row.count, Some(2));
    assert_eq!(row.outcome, Some(Outcome::Ok));
}

#[test]
fn the_record_limit_applies_to_the_number_of_subjects() {
    let (g, _trail) = setup();
    let runs = AtomicUsize::new(0);
    let err = export(&researcher(&g), &runs, &ids(0..51)).unwrap_err();
    assert!(
        matches!(
            err.deny_reason(),
            Some(DenyReason::CountOverLimit {
                count: 51,
                limit: 50
            })
        ),
        "{err}"
    );
    assert_eq!(runs.load(Ordering::SeqCst), 0);
}

#[test]
fn a_grant_opens_exactly_the_set_it_was_granted_for() {
    let (g, _trail) = setup();
    let runs = AtomicUsize::new(0);
    let granted_set = ids(0..5);
    let Err(GuardError::ApprovalRequired { request }) =
        export(&researcher(&g), &runs, &granted_set)
    else {
        panic!("five subjects are over the approval threshold");
    };
    g.approve(
        &Principal::new("po-lee").role("privacy_officer"),
        &request.id,
    )
    .unwrap();

    // Five other patients: same action, principal and count, another set.
    let other_set = ids(5..10);
    let err = export(
        &researcher(&g).approval(request.id.clone()),
        &runs,
        &other_set,
    )
    .unwrap_err();
    assert!(
        matches!(err.deny_reason(), Some(DenyReason::ApprovalInvalid { why }) if why.contains("subject")),
        "{err}"
    );
    assert_eq!(runs.load(Ordering::SeqCst), 0);

    // The granted set itself, once.
    export(
        &researcher(&g).approval(request.id.clone()),
        &runs,
        &granted_set,
    )
    .unwrap();
    assert_eq!(runs.load(Ordering::SeqCst), 1);
}

#[test]
fn a_patients_bulk_call_reaches_only_their_own_records() {
    let (g, _trail) = setup();
    let runs = AtomicUsize::new(0);
    let me = g
        .context(Principal::new("user-7").role("patient").patient("7"))
        .endpoint(Endpoint::Patient);
    assert_eq!(own_records(&me, &runs, &[7, 7]).unwrap(), 2);
    assert_eq!(runs.load(Ordering::SeqCst), 1);

    let err = own_records(&me, &runs, &[7, 8]).unwrap_err();
    assert!(
        matches!(
            err,
            GuardError::MissingContext {
                field: "subject",
                ..
            }
        ),
        "{err}"
    );
    let err = own_records(&me, &runs, &[8]).unwrap_err();
    assert!(
        matches!(err.deny_reason(), Some(DenyReason::NotOwnSubject)),
        "{err}"
    );
    assert_eq!(runs.load(Ordering::SeqCst), 1, "no denied body ran");
}

#[test]
fn a_declared_count_never_undercounts_the_patients_touched() {
    let (g, trail) = setup();
    let runs = AtomicUsize::new(0);
    // 51 patients with `count = 1`: still over the limit of 50.
    let err = export_understated(&researcher(&g), &runs, &ids(0..51)).unwrap_err();
    assert!(
        matches!(
            err.deny_reason(),
            Some(DenyReason::CountOverLimit {
                count: 51,
                limit: 50
            })
        ),
        "{err}"
    );
    // 5 patients with `count = 1`: still over the approval threshold of 3.
    assert!(matches!(
        export_understated(&researcher(&g), &runs, &ids(0..5)),
        Err(GuardError::ApprovalRequired { .. })
    ));
    assert_eq!(runs.load(Ordering::SeqCst), 0);
    let counts: Vec<Option<u64>> = trail.events().iter().map(|e| e.record.count).collect();
    assert_eq!(counts, vec![Some(51), Some(5)]);
}
