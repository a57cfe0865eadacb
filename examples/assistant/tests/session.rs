//! The scripted agent against the assistant's server over streamable HTTP on loopback: what
//! is allowed, what the model sees (masked), what is denied, that arguments cannot widen the
//! session, and that the recorded session replays from a verified trail.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    missing_docs,
    unreachable_pub
)]

mod support;

use assistant::agent::{self, Observation};
use assistant::clinician_session;
use guardrail_core::audit::{EventKind, Record};
use guardrail_core::{Principal, Purpose};
use serde_json::{Value, json};
use support::{Harness, SSNS, cli, sha256};

fn in_process_approver(
    g: guardrail_core::Guardrail,
) -> impl FnMut(&str) -> Result<(), String> + Send {
    move |id| {
        g.approve(
            &Principal::new("po-1").role("privacy_officer"),
            &guardrail_core::approval::ApprovalId::new(id),
        )
        .map(|_| ())
        .map_err(|e| e.to_string())
    }
}

fn assert_phi_free(o: &Observation) {
    for ssn in SSNS {
        assert!(!o.text.contains(ssn), "raw SSN in {:?}", o.text);
    }
    assert!(
        !o.text.contains("MRN-000"),
        "raw record number in {:?}",
        o.text
    );
    assert!(
        !o.text.contains("555-867-5309"),
        "raw phone in {:?}",
        o.text
    );
    assert!(
        !o.text.contains("1961-04-12"),
        "raw birth date in {:?}",
        o.text
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_plan_is_allowed_and_every_result_is_masked() {
    let mut h = Harness::start(clinician_session(), None).await;
    let mut approve = in_process_approver(h.g.clone());
    let t = agent::run(h.peer(), "Hale", &mut approve).await.unwrap();
    // A person-only tool (`delete_record`, `direct_only`) is not offered to the agent.
    assert_eq!(
        t.tools,
        ["search_patients", "read_chart", "add_note", "export_cohort"]
    );
    let steps: Vec<(&str, bool)> = t
        .turns
        .iter()
        .map(|t| (t.tool.as_str(), t.observation.is_error))
        .collect();
    assert_eq!(
        steps,
        [
            ("search_patients", false),
            ("read_chart", false),
            ("add_note", false),
            ("export_cohort", true),
            ("export_cohort", false),
        ]
    );
    for turn in &t.turns {
        assert_phi_free(&turn.observation);
    }
    // What the rule reveals arrives; what it does not is masked.
    let chart: Value = serde_json::from_str(&t.turns[1].observation.text).unwrap();
    assert_eq!(chart["name"], "Ada Hale");
    assert_eq!(chart["diagnosis"], "hypertension");
    let ssn = chart["ssn"].as_str().unwrap();
    assert!(ssn.ends_with("6789") && ssn != "123-45-6789", "{ssn}");
    let note = chart["notes"][0].as_str().unwrap();
    assert!(note.contains("lisinopril"), "{note}");
    let rows: Value = serde_json::from_str(&t.turns[4].observation.text).unwrap();
    assert_eq!(rows["rows"].as_array().unwrap().len(), 3);
    assert!(t.answer.contains("3 patients"), "{}", t.answer);
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_export_records_every_patient_of_the_cohort_as_a_keyed_token() {
    let mut h = Harness::start(clinician_session(), None).await;
    let mut approve = in_process_approver(h.g.clone());
    agent::run(h.peer(), "Hale", &mut approve).await.unwrap();
    h.stop().await;
    // The hypertension cohort of the demo database, as the keys of the trail name them.
    let cohort = ["p-1", "p-3", "p-4"];
    let mut tokens: Vec<String> = cohort.iter().map(|id| h.g.subject_token(id)).collect();
    tokens.sort();
    let events = h.events();
    let exports: Vec<_> = events
        .iter()
        .filter(|e| e.record.action.as_deref() == Some("assistant.export_cohort"))
        .filter(|e| matches!(e.record.kind, EventKind::Decision | EventKind::Outcome))
        .collect();
    // The request for approval, the allowed retry and its outcome.
    assert_eq!(exports.len(), 3, "{exports:?}");
    for e in exports {
        let mut seen: Vec<String> = e.record.subjects.iter().map(|t| t.to_string()).collect();
        seen.sort();
        assert_eq!(seen, tokens, "{:?} of seq {}", e.record.kind, e.seq);
        let line = serde_json::to_string(&e.record).unwrap();
        for id in cohort {
            assert!(!line.contains(&format!("\"{id}\"")), "raw id in {line}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_denied_call_is_a_phi_free_tool_error_and_recorded_as_denied() {
    // The same person, but the session is for research: the rules allow treatment only.
    let config = clinician_session().purpose(Purpose::Research);
    let mut h = Harness::start(config, None).await;
    let o = agent::call(h.peer(), "read_chart", json!({"patient_id": "p-1"}))
        .await
        .unwrap();
    assert!(o.is_error);
    assert!(o.text.starts_with("refused by policy:"), "{}", o.text);
    assert!(
        !o.text.contains("p-1") && !o.text.contains("Ada"),
        "{}",
        o.text
    );
    assert_phi_free(&o);
    h.stop().await;
    let events = h.events();
    let decisions: Vec<&Record> = events
        .iter()
        .map(|e| &e.record)
        .filter(|r| r.kind == EventKind::Decision)
        .collect();
    assert_eq!(decisions.len(), 1);
    assert_eq!(decisions[0].decision.as_deref(), Some("deny"));
    assert!(events.iter().all(|e| e.record.kind != EventKind::Outcome));
}

/// The fields of a decision that say what was decided and on what.
fn decided(r: &Record) -> Value {
    json!({
        "decision": r.decision.as_deref(),
        "rule": r.rule.as_deref(),
        "principal": r.principal.as_deref(),
        "roles": r.roles.iter().map(|x| x.to_string()).collect::<Vec<_>>(),
        "via": r.via.as_deref(),
        "purpose": r.purpose.as_deref(),
        "endpoint": r.endpoint.as_deref(),
        "break_glass": r.break_glass,
        "subject": r.subject.as_deref(),
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn arguments_named_like_the_session_change_no_decision() {
    let injected = |base: Value| {
        let mut v = base;
        let m = v.as_object_mut().unwrap();
        m.insert("purpose".into(), json!("treatment"));
        m.insert("role".into(), json!("privacy_officer"));
        m.insert("roles".into(), json!(["admin", "privacy_officer"]));
        m.insert("principal".into(), json!("po-1"));
        m.insert("break_glass".into(), json!("patient unconscious"));
        m.insert("agent".into(), json!("other-bot"));
        m.insert("endpoint".into(), json!("admin"));
        v
    };
    // 1. An allowed session: the injected call is decided exactly like the plain one.
    let mut h = Harness::start(clinician_session(), None).await;
    let plain = agent::call(h.peer(), "read_chart", json!({"patient_id": "p-2"}))
        .await
        .unwrap();
    let forged = agent::call(
        h.peer(),
        "read_chart",
        injected(json!({"patient_id": "p-2"})),
    )
    .await
    .unwrap();
    assert!(!plain.is_error && !forged.is_error);
    assert_eq!(plain.text, forged.text);
    // The export still needs approval, whoever the arguments claim to be.
    let export = agent::call(
        h.peer(),
        "export_cohort",
        injected(json!({"diagnosis": "asthma"})),
    )
    .await
    .unwrap();
    assert!(agent::approval_id(&export).is_some(), "{}", export.text);
    h.stop().await;
    let decisions: Vec<Value> = h
        .events()
        .iter()
        .filter(|e| e.record.kind == EventKind::Decision)
        .map(|e| decided(&e.record))
        .collect();
    assert_eq!(decisions.len(), 3);
    assert_eq!(decisions[0], decisions[1]);
    assert_eq!(decisions[0]["principal"], "dr-grey");
    assert_eq!(decisions[0]["via"], "clinic-assistant");
    assert_eq!(decisions[0]["break_glass"], false);
    assert_eq!(decisions[2]["decision"], "approval_required");

    // 2. A research session stays denied whatever purpose or role the arguments name.
    let mut h = Harness::start(clinician_session().purpose(Purpose::Research), None).await;
    let forged = agent::call(
        h.peer(),
        "read_chart",
        injected(json!({"patient_id": "p-2"})),
    )
    .await
    .unwrap();
    assert!(forged.is_error, "{}", forged.text);
    h.stop().await;
    let events = h.events();
    assert!(events.iter().all(|e| !e.record.break_glass));
    let d: Vec<Value> = events
        .iter()
        .filter(|e| e.record.kind == EventKind::Decision)
        .map(|e| decided(&e.record))
        .collect();
    assert_eq!(d.len(), 1);
    assert_eq!(d[0]["decision"], "deny");
    assert_eq!(d[0]["purpose"], "research");
    assert_eq!(d[0]["principal"], "dr-grey");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_session_replays_in_order_from_a_verified_trail_with_result_digests() {
    let mut h = Harness::start(clinician_session(), None).await;
    let mut approve = in_process_approver(h.g.clone());
    let t = agent::run(h.peer(), "Hale", &mut approve).await.unwrap();
    let session = h.session_id();
    h.stop().await;
    let trail = h.trail();
    let trail = trail.to_str().unwrap();

    let out = cli(&["audit", "session", &session, "--format", "json", trail]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let replay: Value = serde_json::from_slice(&out.stdout).unwrap();
    let steps = replay["steps"].as_array().unwrap();
    let seen: Vec<(String, String)> = steps
        .iter()
        .map(|s| {
            (
                s["action"]
                    .as_str()
                    .unwrap()
                    .trim_start_matches("assistant.")
                    .to_owned(),
                s["event"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let expect = [
        ("search_patients", "allow"),
        ("search_patients", "outcome:ok"),
        ("read_chart", "allow"),
        ("read_chart", "outcome:ok"),
        ("add_note", "allow"),
        ("add_note", "outcome:ok"),
        ("export_cohort", "approval_required"),
        // The approval steps carry the session too: the grant by the privacy officer, then
        // its consumption by the retried call.
        ("export_cohort", "approval_granted"),
        ("export_cohort", "approval_consumed"),
        ("export_cohort", "allow"),
        ("export_cohort", "outcome:ok"),
    ]
    .map(|(a, e)| (a.to_owned(), e.to_owned()));
    assert_eq!(seen, expect);
    for s in steps {
        if s["event"] == "approval_granted" {
            // The approver acts in person.
            assert_eq!(s["principal"], "po-1");
            assert_eq!(s["via"], Value::Null);
        } else {
            assert_eq!(s["principal"], "dr-grey");
            assert_eq!(s["via"], "clinic-assistant");
        }
    }
    let approvals: Vec<&str> = steps
        .iter()
        .filter_map(|s| s["approval"].as_str())
        .collect();
    assert_eq!(approvals.len(), 4, "request, grant, consumption, retry");
    assert!(approvals.iter().all(|a| *a == approvals[0]));

    // The accounting of disclosures names the person and the agent they acted through.
    let out = cli(&[
        "audit",
        "disclosures",
        "--patient",
        "p-1",
        "--key-hex",
        assistant::DEMO_AUDIT_KEY_HEX,
        "--format",
        "json",
        trail,
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let accounting: Value = serde_json::from_slice(&out.stdout).unwrap();
    let rows = accounting["rows"].as_array().unwrap();
    // The agent read p-1's chart once, and p-1 is in the exported cohort: the export's
    // request (approval required) and the approved export name p-1 too.
    let actions: Vec<(&str, &str)> = rows
        .iter()
        .map(|r| {
            (
                r["action"].as_str().unwrap_or_default(),
                r["decision"].as_str().unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(
        actions,
        [
            ("assistant.read_chart", "allow"),
            ("assistant.export_cohort", "approval_required"),
            ("assistant.export_cohort", "allow"),
        ],
        "{rows:?}"
    );
    for row in rows {
        assert_eq!(row["principal"], "dr-grey");
        assert_eq!(row["via"], "clinic-assistant");
    }
    let out = cli(&[
        "audit",
        "disclosures",
        "--patient",
        "p-1",
        "--key-hex",
        assistant::DEMO_AUDIT_KEY_HEX,
        trail,
    ]);
    let table = String::from_utf8(out.stdout).unwrap();
    assert!(table.contains("dr-grey via clinic-assistant"), "{table}");
    // Each outcome names the digest of exactly the text the model received.
    let digests: Vec<&str> = steps
        .iter()
        .filter_map(|s| s["result_digest"].as_str())
        .collect();
    let delivered: Vec<String> = t
        .turns
        .iter()
        .filter(|t| !t.observation.is_error)
        .map(|t| sha256(&t.observation.text))
        .collect();
    assert_eq!(digests, delivered);

    // The table names the same, and a changed trail is refused before anything is shown.
    let out = cli(&["audit", "session", &session, trail]);
    let table = String::from_utf8(out.stdout).unwrap();
    assert!(table.contains("dr-grey via clinic-assistant"), "{table}");
    assert!(
        table.contains(&format!("result_sha256={}", delivered[1])),
        "{table}"
    );
    let out = cli(&["audit", "session", "mcp-nope", trail]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "an unknown session is a usage error"
    );
    let mut files: Vec<_> = std::fs::read_dir(trail)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().contains("audit-"))
        .collect();
    files.sort();
    let file = &files[0];
    let text = std::fs::read_to_string(file).unwrap();
    std::fs::write(file, text.replacen("\"allow\"", "\"deny\"", 1)).unwrap();
    let out = cli(&["audit", "session", &session, trail]);
    assert_eq!(out.status.code(), Some(1), "tampering must be found");
    assert!(out.stdout.is_empty());
}
