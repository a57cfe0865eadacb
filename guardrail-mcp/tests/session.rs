//! A session offers only the tools its person could ever use, decides on the session alone
//! (never on arguments), scrubs results, maps refusals to PHI-free errors, and records the
//! session id and the agent on every event.

#![allow(clippy::unwrap_used, missing_docs)]

use guardrail_core::audit::EventKind;
use guardrail_core::prelude::*;
use guardrail_core::{AgentId, AuditKey, Endpoint, Purpose};
use guardrail_mcp::{Catalogue, Session, SessionConfig, Tool, ToolError};
use serde_json::{Map, Value, json};

const POLICY: &str = r#"
version = "mcp-test-1"

[approval]
approver_roles = ["privacy_officer"]

[[rule]]
id = "read-via-assistant"
effect = "allow"
actions = ["mcp_test.read_chart"]
roles = ["provider"]
endpoints = ["provider"]
purposes = ["treatment"]
agents = ["clinic-assistant"]

[[rule]]
id = "export-approved"
effect = "allow"
actions = ["mcp_test.export"]
roles = ["provider"]
approval = "always"

[[rule]]
id = "research-only"
effect = "allow"
actions = ["mcp_test.research"]
roles = ["researcher"]
"#;

#[phi_action(kind = "read", role = "provider", name = "mcp_test.read_chart", subject = id)]
fn read_chart(ctx: &Context, id: &str) -> Result<String, GuardError> {
    Ok(format!("chart of {id}: SSN 123-45-6789"))
}

#[phi_action(kind = "export", role = "provider", name = "mcp_test.export")]
fn export(ctx: &Context) -> Result<u64, GuardError> {
    Ok(3)
}

#[phi_action(kind = "read", roles = ["provider", "researcher"], name = "mcp_test.research")]
fn research(ctx: &Context) -> Result<u64, GuardError> {
    Ok(1)
}

fn catalogue() -> Catalogue {
    Catalogue::new()
        .tool(Tool::new(
            "read_chart",
            "mcp_test.read_chart",
            "read a chart",
            |ctx, args| {
                let id = args
                    .get("patient_id")
                    .and_then(Value::as_str)
                    .ok_or_else(|| ToolError::InvalidArguments("patient_id".into()))?;
                Ok(json!(read_chart(ctx, id)?))
            },
        ))
        .tool(Tool::new(
            "export_cohort",
            "mcp_test.export",
            "export",
            |ctx, _| Ok(json!(export(ctx)?)),
        ))
        .tool(Tool::new(
            "research",
            "mcp_test.research",
            "research",
            |ctx, _| Ok(json!(research(ctx)?)),
        ))
        .tool(Tool::new(
            "unregistered",
            "mcp_test.nowhere",
            "none",
            |_, _| Ok(json!(0)),
        ))
}

fn setup() -> (Guardrail, MemorySink) {
    let sink = MemorySink::new();
    let g = Guardrail::builder()
        .policy(Policy::from_toml_str(POLICY).unwrap())
        .audit(sink.clone())
        .audit_key(AuditKey::from_bytes(b"mcp-test-key-0123456789abcdef").unwrap())
        .build()
        .unwrap();
    (g, sink)
}

fn provider(g: &Guardrail, agent: &str) -> Session {
    let config = SessionConfig {
        principal: Principal::new("dr-grey").role("provider"),
        endpoint: Some(Endpoint::Provider),
        purpose: Some(Purpose::Treatment),
        agent: None,
        break_glass: None,
    };
    Session::open(g, &catalogue(), config, AgentId::new(agent).version("1.0"))
}

fn args(v: Value) -> Map<String, Value> {
    v.as_object().cloned().unwrap()
}

#[test]
fn only_tools_the_person_could_ever_use_are_offered() {
    let (g, _) = setup();
    let s = provider(&g, "clinic-assistant");
    let names: Vec<&str> = s.tools().iter().map(Tool::name).collect();
    assert_eq!(names, ["read_chart", "export_cohort"]);
    let err = s.call("research", &Map::new(), None).unwrap_err();
    assert!(matches!(err, ToolError::NotOffered(_)));
}

#[test]
fn results_are_scrubbed_and_every_event_names_session_and_agent() {
    let (g, sink) = setup();
    let s = provider(&g, "clinic-assistant");
    let out = s
        .call("read_chart", &args(json!({"patient_id": "p-100"})), None)
        .unwrap();
    let text = out.text().to_owned();
    assert!(!text.contains("123-45-6789"), "{text}");
    let events = sink.events();
    assert_eq!(events.len(), 2);
    for e in &events {
        assert_eq!(e.record.principal.as_deref(), Some("dr-grey"));
        assert_eq!(e.record.via.as_deref(), Some("clinic-assistant/1.0"));
        assert_eq!(e.record.session.as_deref(), Some(s.id()));
    }
}

#[test]
fn arguments_cannot_change_the_decision() {
    let (g, sink) = setup();
    // The session is for research; the rule allows treatment only.
    let config = SessionConfig::new(Principal::new("dr-grey").role("provider"))
        .endpoint(Endpoint::Provider)
        .purpose(Purpose::Research);
    let s = Session::open(
        &g,
        &catalogue(),
        config,
        AgentId::new("clinic-assistant").version("1.0"),
    );
    let injected = args(json!({
        "patient_id": "p-100",
        "purpose": "treatment",
        "role": "provider",
        "principal": "admin",
        "break_glass": "emergency",
        "agent": "other-bot",
        "endpoint": "provider",
    }));
    let err = s.call("read_chart", &injected, None).unwrap_err();
    assert!(matches!(err, ToolError::Denied(_)), "{err:?}");
    assert!(!err.to_string().contains("p-100"));
    let events = sink.events();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].record.kind, EventKind::Decision);
    assert_eq!(events[0].record.decision.as_deref(), Some("deny"));
    assert_eq!(events[0].record.principal.as_deref(), Some("dr-grey"));
    assert!(!events[0].record.break_glass);
}

#[test]
fn export_waits_for_a_second_person_then_succeeds_once() {
    let (g, _) = setup();
    let s = provider(&g, "clinic-assistant");
    let id = match s.call("export_cohort", &Map::new(), None).unwrap_err() {
        ToolError::ApprovalRequired { id } => id,
        other => panic!("expected approval, got {other:?}"),
    };
    let officer = Principal::new("po-1").role("privacy_officer");
    g.approve(&officer, &guardrail_core::approval::ApprovalId::new(&id))
        .unwrap();
    assert_eq!(
        s.call("export_cohort", &Map::new(), Some(&id))
            .unwrap()
            .value(),
        &json!(3)
    );
    assert!(s.call("export_cohort", &Map::new(), Some(&id)).is_err());
}

#[test]
fn approval_steps_carry_the_session_and_a_grant_is_spent_only_in_its_session() {
    let (g, sink) = setup();
    let s = provider(&g, "clinic-assistant");
    let id = match s.call("export_cohort", &Map::new(), None).unwrap_err() {
        ToolError::ApprovalRequired { id } => id,
        other => panic!("expected approval, got {other:?}"),
    };
    let officer = Principal::new("po-1").role("privacy_officer");
    g.approve(&officer, &guardrail_core::approval::ApprovalId::new(&id))
        .unwrap();
    // Another session of the same person, through the same agent, cannot spend it.
    let other = provider(&g, "clinic-assistant");
    assert_ne!(other.id(), s.id());
    match other.call("export_cohort", &Map::new(), Some(&id)) {
        Err(ToolError::Denied(why)) => assert!(why.contains("session"), "{why}"),
        r => panic!("expected a denial, got {r:?}"),
    }
    // The session that asked for it can.
    assert_eq!(
        s.call("export_cohort", &Map::new(), Some(&id))
            .unwrap()
            .value(),
        &json!(3)
    );
    let events = sink.events();
    let step = |kind: EventKind| {
        events
            .iter()
            .find(|e| e.record.kind == kind)
            .map(|e| &e.record)
            .unwrap()
    };
    let granted = step(EventKind::ApprovalGranted);
    assert_eq!(granted.session.as_deref(), Some(s.id()));
    assert_eq!(granted.principal.as_deref(), Some("po-1"));
    assert_eq!(
        granted.detail.get("bound.session").map(String::as_str),
        Some(s.id())
    );
    let consumed = step(EventKind::ApprovalConsumed);
    assert_eq!(consumed.session.as_deref(), Some(s.id()));
    assert_eq!(consumed.principal.as_deref(), Some("dr-grey"));
    assert_eq!(consumed.via.as_deref(), Some("clinic-assistant/1.0"));
    assert_eq!(consumed.approval.as_deref(), Some(id.as_str()));
}
