//! A missing purpose is a policy refusal like a denial: `GuardError::is_policy_refusal` is
//! true for `Denied` and `MissingContext` (and only them), and the trail records both as a
//! `deny` decision, so a host mapping refusals to "forbidden" misses neither.

use guardrail_core::prelude::*;

const POLICY: &str = r#"
version = "refusals-1"

[[rule]]
id = "providers-treat"
effect = "allow"
actions = ["*"]
roles = ["provider"]
purposes = ["treatment"]
"#;

#[phi_action(kind = "read", role = "provider", resource = "patient_record", subject = patient)]
fn read_chart(ctx: &Context, patient: &str) -> Result<String, GuardError> {
    Ok(String::from("chart"))
}

/// What a host that maps only policy refusals to 403 answers.
fn status(e: &GuardError) -> u16 {
    if e.is_policy_refusal() { 403 } else { 500 }
}

#[test]
fn a_missing_purpose_and_a_denial_are_both_policy_refusals() {
    let sink = MemorySink::new();
    let g = Guardrail::builder()
        .policy(Policy::from_toml_str(POLICY).unwrap())
        .audit(sink.clone())
        .audit_key(AuditKey::from_bytes(b"refusals test key, 32 bytes!!!!!").unwrap())
        .build()
        .unwrap();

    let no_purpose = g.context(Principal::new("dr-grey").role("provider"));
    let missing = read_chart(&no_purpose, "p-1").unwrap_err();
    assert!(
        matches!(
            missing,
            GuardError::MissingContext {
                field: "purpose",
                ..
            }
        ),
        "{missing:?}"
    );
    assert_eq!(status(&missing), 403);

    let nurse = g
        .context(Principal::new("rn-1").role("nurse"))
        .purpose(Purpose::Treatment);
    let denied = read_chart(&nurse, "p-1").unwrap_err();
    assert!(matches!(denied, GuardError::Denied { .. }), "{denied:?}");
    assert_eq!(status(&denied), 403);

    let invalid = GuardError::InvalidInput {
        action: "x",
        what: "count".into(),
    };
    assert_eq!(status(&invalid), 500, "not every error is a refusal");

    // The trail records both as denials.
    let events = sink.events();
    assert_eq!(events.len(), 2);
    assert!(
        events
            .iter()
            .all(|e| e.record.decision.as_deref() == Some("deny"))
    );
    assert_eq!(
        events[0].record.reason.as_deref(),
        Some("the context has no purpose")
    );
}
