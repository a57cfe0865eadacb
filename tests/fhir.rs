//! FHIR R4 AuditEvent export: every element R4 marks required, the code systems used, the
//! outcome and action mappings, for every kind of event a guarded call produces (allow, deny,
//! approval required, break-glass, outcome ok/error/panic/cancelled) and for the trail's own
//! events; Bundle and NDJSON forms; no raw PHI.
#![allow(
    clippy::useless_conversion,
    reason = "#[phi_action] converts a denial with `From::from`, a no-op when the error type is `GuardError` itself"
)]

use std::panic::{AssertUnwindSafe, catch_unwind};

use guardrail_audit::fhir::{
    self, ACT_REASON_SYSTEM, AUDIT_EVENT_TYPE_SYSTEM, DICOM_SYSTEM, ENTITY_TYPE_SYSTEM,
    FhirOptions, OBJECT_ROLE_SYSTEM, PURPOSE_CODES, RESTFUL_INTERACTION_SYSTEM, SOURCE_TYPE_SYSTEM,
};
use guardrail_audit::{AuditEvent, Chain, EventKind, Outcome, Record, Timestamp};
use guardrail_core::prelude::*;
use serde_json::Value;

const PATIENT: &str = "patient-8812-secret";
const OTHER_PATIENT: &str = "patient-0417-secret";

const POLICY: &str = r#"
version = "fhir-test-1"

[approval]
approver_roles = ["privacy_officer"]

[break_glass]
roles = ["provider"]
kinds = ["read"]

[[rule]]
id = "providers-treat"
effect = "allow"
actions = ["*"]
roles = ["provider"]
purposes = ["treatment"]

[[rule]]
id = "exports-need-approval"
effect = "allow"
actions = ["*"]
kinds = ["export"]
roles = ["analyst"]
approval = "always"
"#;

#[phi_action(kind = "read", role = "provider", resource = "patient_record", subject = patient_id)]
fn read_chart(ctx: &Context, patient_id: &str) -> Result<String, GuardError> {
    Ok(format!("chart of {}", patient_id.len()))
}

#[phi_action(kind = "update", role = "provider", resource = "patient_record", subject = patient_id)]
fn update_chart(ctx: &Context, patient_id: &str, fail: bool) -> Result<(), GuardError> {
    if fail {
        return Err(GuardError::Denied {
            action: "body",
            reason: guardrail_core::DenyReason::PolicyFault {
                why: "simulated storage error".into(),
            },
        });
    }
    Ok(())
}

#[phi_action(kind = "delete", role = "provider", resource = "patient_record", subject = patient_id)]
fn delete_chart(ctx: &Context, patient_id: &str) -> Result<(), GuardError> {
    panic!("the delete handler crashed");
}

#[phi_action(kind = "create", role = "provider", resource = "patient_record", subject = patient_id)]
async fn create_chart(ctx: &Context, patient_id: &str) -> Result<(), GuardError> {
    std::future::pending::<()>().await;
    Ok(())
}

#[phi_action(kind = "export", roles = ["provider", "analyst"], resource = "patient_record", subject = patient_id, count = n)]
fn export_records(ctx: &Context, patient_id: &str, n: u64) -> Result<u64, GuardError> {
    Ok(n)
}

#[phi_action(kind = "disclose", role = "provider", resource = "patient_record", subject = patient_id)]
fn disclose_to_insurer(ctx: &Context, patient_id: &str) -> Result<(), GuardError> {
    Ok(())
}

/// Runs one guarded call of every kind and returns the trail.
fn trail() -> (Vec<AuditEvent>, MemorySink) {
    let sink = MemorySink::new();
    let guardrail = Guardrail::builder()
        .policy(Policy::from_toml_str(POLICY).unwrap())
        .audit(sink.clone())
        .audit_key(AuditKey::from_bytes(b"fhir test key, 32 bytes long!!!").unwrap())
        .build()
        .unwrap();
    let dr = guardrail
        .context(Principal::new("dr-grey").role("provider"))
        .purpose(Purpose::Treatment);

    // allow + ok (read)
    read_chart(&dr, PATIENT).unwrap();
    // deny (a clerk holds no role the code allows)
    let clerk = guardrail
        .context(Principal::new("clerk-1").role("clerk"))
        .purpose(Purpose::Treatment);
    assert!(read_chart(&clerk, PATIENT).is_err());
    // allow + error
    assert!(update_chart(&dr, PATIENT, true).is_err());
    // allow + ok (update)
    update_chart(&dr, OTHER_PATIENT, false).unwrap();
    // allow + panic
    let panicked = catch_unwind(AssertUnwindSafe(|| delete_chart(&dr, PATIENT)));
    assert!(panicked.is_err());
    // allow + cancelled: the future is polled once, then dropped.
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    rt.block_on(async {
        tokio::select! {
            biased;
            _ = create_chart(&dr, PATIENT) => panic!("the pending body completed"),
            _ = tokio::task::yield_now() => {}
        }
    });
    // break-glass: emergency treatment is not in the treating rule; [break_glass] opens reads.
    let er = guardrail
        .context(Principal::new("dr-er").role("provider"))
        .break_glass("unconscious patient in the ER");
    read_chart(&er, PATIENT).unwrap();
    // approval required (export by an analyst)
    let analyst = guardrail
        .context(Principal::new("ana-1").role("analyst"))
        .purpose(Purpose::Operations);
    assert!(matches!(
        export_records(&analyst, PATIENT, 500),
        Err(GuardError::ApprovalRequired { .. })
    ));
    // export and disclose by a provider
    export_records(&dr, PATIENT, 3).unwrap();
    disclose_to_insurer(&dr, PATIENT).unwrap();

    let events = sink.events();
    guardrail_audit::verify_events(&events).unwrap();
    (events, sink)
}

/// `[A-Za-z0-9\-\.]{1,64}` (FHIR `id`).
fn is_fhir_id(s: &str) -> bool {
    (1..=64).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
}

/// FHIR `instant`: `YYYY-MM-DDThh:mm:ss(.f+)?(Z|±hh:mm)`, a full date-time with a zone.
fn is_fhir_instant(s: &str) -> bool {
    let b = s.as_bytes();
    let digits =
        |r: std::ops::Range<usize>| b.get(r).is_some_and(|d| d.iter().all(u8::is_ascii_digit));
    if b.len() < 20
        || !digits(0..4)
        || b[4] != b'-'
        || !digits(5..7)
        || b[7] != b'-'
        || !digits(8..10)
        || b[10] != b'T'
        || !digits(11..13)
        || b[13] != b':'
        || !digits(14..16)
        || b[16] != b':'
        || !digits(17..19)
    {
        return false;
    }
    let mut rest = &s[19..];
    if let Some(frac) = rest.strip_prefix('.') {
        let n = frac.bytes().take_while(u8::is_ascii_digit).count();
        if n == 0 {
            return false;
        }
        rest = &frac[n..];
    }
    rest == "Z"
        || (rest.len() == 6
            && (rest.starts_with('+') || rest.starts_with('-'))
            && rest.as_bytes()[3] == b':')
}

fn coding_ok<'a>(c: &'a Value, system: &str) -> &'a str {
    assert_eq!(c["system"], system, "coding {c}");
    let code = c["code"]
        .as_str()
        .unwrap_or_else(|| panic!("coding without code: {c}"));
    assert!(!code.is_empty());
    code
}

/// Every element FHIR R4 marks required on AuditEvent, with the code systems used, and the
/// invariants of the optional elements we fill.
fn assert_r4_valid(ae: &Value) {
    assert_eq!(ae["resourceType"], "AuditEvent");
    assert!(is_fhir_id(ae["id"].as_str().unwrap()), "id {}", ae["id"]);

    // type 1..1 Coding (extensible binding to audit-event-type: HL7 rest + DICOM event ids).
    let ty = &ae["type"];
    let system = ty["system"].as_str().expect("type.system");
    assert!(
        system == AUDIT_EVENT_TYPE_SYSTEM || system == DICOM_SYSTEM,
        "type system {system}"
    );
    let code = ty["code"].as_str().expect("type.code");
    if system == AUDIT_EVENT_TYPE_SYSTEM {
        assert_eq!(code, "rest");
        let sub = coding_ok(&ae["subtype"][0], RESTFUL_INTERACTION_SYSTEM);
        assert!(["create", "read", "update", "delete"].contains(&sub));
    } else {
        assert!(
            ["110100", "110106", "110113"].contains(&code),
            "DICOM code {code}"
        );
    }

    // action 0..1 code from audit-event-action.
    let action = ae["action"].as_str().expect("action");
    assert!(
        ["C", "R", "U", "D", "E"].contains(&action),
        "action {action}"
    );

    // recorded 1..1 instant.
    assert!(
        is_fhir_instant(ae["recorded"].as_str().expect("recorded")),
        "recorded {}",
        ae["recorded"]
    );

    // outcome 0..1 code from audit-event-outcome; outcomeDesc a string.
    let outcome = ae["outcome"].as_str().expect("outcome");
    assert!(
        ["0", "4", "8", "12"].contains(&outcome),
        "outcome {outcome}"
    );
    assert!(ae["outcomeDesc"].is_string());

    // purposeOfEvent 0..* CodeableConcept: v3-ActReason codings.
    if let Some(purposes) = ae.get("purposeOfEvent") {
        for p in purposes.as_array().unwrap() {
            for c in p["coding"].as_array().unwrap() {
                let code = coding_ok(c, ACT_REASON_SYSTEM);
                let known = PURPOSE_CODES.iter().any(|(_, k, _)| *k == code) || code == "BTG";
                assert!(known, "purpose code {code}");
            }
        }
    }

    // agent 1..*, each with requestor 1..1 boolean and who.
    let agents = ae["agent"].as_array().expect("agent");
    assert!(!agents.is_empty());
    for a in agents {
        assert!(a["requestor"].is_boolean(), "agent without requestor: {a}");
        let who = &a["who"];
        assert!(who["identifier"]["system"].is_string() && who["identifier"]["value"].is_string());
        if let Some(roles) = a.get("role") {
            for r in roles.as_array().unwrap() {
                coding_ok(&r["coding"][0], fhir::ROLE_SYSTEM);
            }
        }
    }

    // source 1..1 with observer 1..1 (R4: a Reference), type codings from security-source-type.
    let source = &ae["source"];
    assert!(source.is_object(), "source missing");
    let observer = &source["observer"];
    assert!(observer["identifier"]["value"].is_string() || observer["display"].is_string());
    for t in source["type"].as_array().expect("source.type") {
        coding_ok(t, SOURCE_TYPE_SYSTEM);
    }

    // entity 0..*: type, role codings; sev-1: not both name and query.
    for e in ae["entity"].as_array().expect("entity") {
        coding_ok(&e["type"], ENTITY_TYPE_SYSTEM);
        coding_ok(&e["role"], OBJECT_ROLE_SYSTEM);
        assert!(e.get("name").is_none() || e.get("query").is_none());
        if let Some(reference) = e["what"]["reference"].as_str() {
            let id = reference
                .strip_prefix("Patient/")
                .expect("patient reference");
            assert!(is_fhir_id(id), "reference id {id}");
        }
        for d in e
            .get("detail")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            assert!(
                d["type"].is_string() && d["valueString"].is_string(),
                "detail {d}"
            );
        }
    }
}

fn kind_of(e: &AuditEvent) -> (EventKind, Option<&str>, Option<Outcome>, bool) {
    let r = &e.record;
    (r.kind, r.decision.as_deref(), r.outcome, r.break_glass)
}

#[test]
fn every_event_of_every_kind_is_a_valid_r4_audit_event() {
    let (events, _) = trail();
    let opts = FhirOptions::default();
    let mut seen = std::collections::BTreeSet::new();
    for e in &events {
        let ae = fhir::audit_event(e, &opts);
        assert_r4_valid(&ae);
        let (kind, decision, outcome, break_glass) = kind_of(e);
        let expected_outcome = match (kind, decision, outcome) {
            (EventKind::Decision, Some("allow" | "break_glass"), _) => "0",
            (EventKind::Decision, Some("deny" | "approval_required"), _) => "4",
            (EventKind::Outcome, _, Some(Outcome::Ok)) => "0",
            (EventKind::Outcome, _, Some(Outcome::Error | Outcome::Panic)) => "8",
            (EventKind::Outcome, _, Some(Outcome::Cancelled)) => "4",
            // approval requests and other trail events
            _ => "0",
        };
        assert_eq!(ae["outcome"], expected_outcome, "event {e:?}");
        if break_glass {
            let codes: Vec<&str> = ae["purposeOfEvent"]
                .as_array()
                .unwrap()
                .iter()
                .flat_map(|p| p["coding"].as_array().unwrap())
                .map(|c| c["code"].as_str().unwrap())
                .collect();
            assert!(
                codes.contains(&"ETREAT") && codes.contains(&"BTG"),
                "{codes:?}"
            );
        }
        if kind == EventKind::Decision || kind == EventKind::Outcome {
            // The acting person is the requestor, with their roles.
            assert_eq!(ae["agent"][0]["requestor"], true);
            assert_eq!(
                ae["agent"][0]["who"]["identifier"]["value"],
                **e.record.principal.as_ref().unwrap()
            );
            // The patient entity carries the token, never the raw id.
            let patient = &ae["entity"][0];
            assert_eq!(patient["role"]["code"], "1");
            assert_eq!(
                patient["what"]["identifier"]["value"],
                **e.record.subject.as_ref().unwrap()
            );
            let action_kind = e.record.action_kind.as_deref().unwrap();
            let (code, action) = match action_kind {
                "create" => ("rest", "C"),
                "read" => ("rest", "R"),
                "update" => ("rest", "U"),
                "delete" => ("rest", "D"),
                "export" | "disclose" => ("110106", "R"),
                other => panic!("unexpected kind {other}"),
            };
            assert_eq!(ae["type"]["code"], code);
            assert_eq!(ae["action"], action);
        }
        seen.insert(format!("{kind:?}/{decision:?}/{outcome:?}/{break_glass}"));
    }
    // The trail really contains every kind the test claims to cover.
    for must in [
        "Decision/Some(\"allow\")/None/false",
        "Decision/Some(\"deny\")/None/false",
        "Decision/Some(\"break_glass\")/None/true",
        "Decision/Some(\"approval_required\")/None/false",
        "Outcome/None/Some(Ok)/false",
        "Outcome/None/Some(Error)/false",
        "Outcome/None/Some(Panic)/false",
        "Outcome/None/Some(Cancelled)/false",
        "Outcome/None/Some(Ok)/true",
    ] {
        assert!(seen.contains(must), "trail lacks {must}: {seen:?}");
    }
}

#[test]
fn purposes_map_to_v3_act_reason_as_in_core() {
    assert_eq!(PURPOSE_CODES.len(), Purpose::ALL.len());
    for p in Purpose::ALL {
        assert_eq!(fhir::purpose_code(p.as_str()), Some(p.hl7_code()), "{p}");
    }
    let mut r = Record::at(EventKind::Decision, Timestamp(1));
    r.principal = Some("u".into());
    for p in Purpose::ALL {
        r.purpose = Some(p.as_str().into());
        let ae = fhir::audit_event(
            &Chain::new().link(r.clone()).unwrap(),
            &FhirOptions::default(),
        );
        assert_eq!(ae["purposeOfEvent"][0]["coding"][0]["code"], p.hl7_code());
        assert_eq!(
            ae["purposeOfEvent"][0]["coding"][0]["system"],
            ACT_REASON_SYSTEM
        );
    }
    // An unknown purpose is kept as text, never guessed into a code.
    r.purpose = Some("curiosity".into());
    let ae = fhir::audit_event(&Chain::new().link(r).unwrap(), &FhirOptions::default());
    assert_eq!(ae["purposeOfEvent"][0]["text"], "curiosity");
    assert!(ae["purposeOfEvent"][0].get("coding").is_none());
}

#[test]
fn trail_events_without_a_person_have_the_observer_as_agent() {
    let mut chain = Chain::new();
    let recovered = chain
        .link(Record::at(EventKind::Recovered, Timestamp(5)).with_detail("cut_bytes", "17"))
        .unwrap();
    let reload = chain
        .link(Record::at(EventKind::PolicyReload, Timestamp(6)).with_detail("new_version", "2"))
        .unwrap();
    let alert = chain
        .link(Record::at(EventKind::Alert, Timestamp(7)).with_detail("alert", "denial_burst"))
        .unwrap();
    let opts = FhirOptions {
        observer: "clinic-api".into(),
        site: Some("east".into()),
    };
    for e in [&recovered, &reload, &alert] {
        let ae = fhir::audit_event(e, &opts);
        assert_r4_valid(&ae);
        assert_eq!(ae["action"], "E");
        assert_eq!(ae["agent"][0]["requestor"], false);
        assert_eq!(ae["agent"][0]["who"]["identifier"]["value"], "clinic-api");
        assert_eq!(
            ae["source"]["observer"]["identifier"]["value"],
            "clinic-api"
        );
        assert_eq!(ae["source"]["site"], "east");
    }
    assert_eq!(fhir::audit_event(&recovered, &opts)["outcome"], "12");
    assert_eq!(fhir::audit_event(&alert, &opts)["type"]["code"], "110113");
    assert_eq!(fhir::audit_event(&reload, &opts)["type"]["code"], "110100");
    // An unknown decision word is never exported as a success.
    let mut odd = Record::at(EventKind::Decision, Timestamp(8));
    odd.decision = Some("maybe".into());
    let ae = fhir::audit_event(&Chain::new().link(odd).unwrap(), &opts);
    assert_eq!(ae["outcome"], "4");
}

#[test]
fn bundle_and_ndjson_hold_every_event_in_order_without_raw_phi() {
    let (events, sink) = trail();
    let opts = FhirOptions::default();
    let bundle = fhir::bundle(&events, &opts);
    assert_eq!(bundle["resourceType"], "Bundle");
    assert_eq!(bundle["type"], "collection");
    let entries = bundle["entry"].as_array().unwrap();
    assert_eq!(entries.len(), events.len());
    for (entry, e) in entries.iter().zip(&events) {
        assert_eq!(entry["resource"]["id"], e.hash.to_hex());
        assert_r4_valid(&entry["resource"]);
    }

    let mut out = Vec::new();
    fhir::write_ndjson(&events, &opts, &mut out).unwrap();
    let text = String::from_utf8(out).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), events.len());
    for (line, e) in lines.iter().zip(&events) {
        let ae: Value = serde_json::from_str(line).unwrap();
        assert_eq!(ae["id"], e.hash.to_hex());
    }

    let bundle_text = bundle.to_string();
    for raw in [PATIENT, OTHER_PATIENT, "secret"] {
        assert!(!bundle_text.contains(raw), "raw PHI `{raw}` in the bundle");
        assert!(!text.contains(raw), "raw PHI `{raw}` in the NDJSON");
        assert!(
            !sink.to_lines().contains(raw),
            "raw PHI `{raw}` in the trail"
        );
    }
    // The break-glass reason is free text and scrubbed, never exported verbatim if it were PHI;
    // the patient entity is found by the token a key holder computes.
    let key = AuditKey::from_bytes(b"fhir test key, 32 bytes long!!!").unwrap();
    let token = key.token("subject", PATIENT);
    assert!(bundle_text.contains(&token));
    assert!(bundle_text.contains(&format!(
        "Patient/{}",
        &token[AuditKey::TOKEN_PREFIX.len()..]
    )));
}
