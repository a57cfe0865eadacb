//! What a session is offered for its agent, the digest of the delivered result in the
//! outcome event, and break-glass configured by the server for a session.

#![allow(clippy::unwrap_used, clippy::panic, missing_docs)]

use guardrail_core::audit::EventKind;
use guardrail_core::prelude::*;
use guardrail_core::{AgentId, AlertKind, AuditKey, MemoryAlertSink};
use guardrail_mcp::{Catalogue, RESULT_DIGEST, Session, SessionConfig, Tool, ToolError};
use serde_json::{Map, Value, json};
use sha2::Digest as _;

const POLICY: &str = r#"
version = "mcp-offer-1"

[break_glass]
roles = ["provider"]
kinds = ["read"]

[[rule]]
id = "assistant-reads"
effect = "allow"
actions = ["mcp_offer.read"]
roles = ["provider"]
agents = ["clinic-assistant"]

[[rule]]
id = "notes-in-person"
effect = "allow"
actions = ["mcp_offer.note"]
roles = ["provider"]
direct_only = true

[[rule]]
id = "lookup-anyone"
effect = "allow"
actions = ["mcp_offer.lookup"]
roles = ["provider"]
"#;

#[phi_action(kind = "read", role = "provider", name = "mcp_offer.read", subject = id)]
fn read(ctx: &Context, id: &str) -> Result<String, GuardError> {
    Ok(format!("{id}: SSN 123-45-6789, stable"))
}

#[phi_action(kind = "update", role = "provider", name = "mcp_offer.note", subject = id)]
fn note(ctx: &Context, id: &str) -> Result<(), GuardError> {
    Ok(())
}

#[phi_action(kind = "read", role = "provider", name = "mcp_offer.lookup")]
fn lookup(ctx: &Context) -> Result<u64, GuardError> {
    Ok(4)
}

/// A read no rule allows: only break-glass opens it.
#[phi_action(kind = "read", role = "provider", name = "mcp_offer.emergency", subject = id)]
fn emergency(ctx: &Context, id: &str) -> Result<String, GuardError> {
    Ok(format!("allergies of {id}: penicillin"))
}

fn id_arg(a: &Map<String, Value>) -> Result<&str, ToolError> {
    a.get("patient_id")
        .and_then(Value::as_str)
        .ok_or_else(|| ToolError::InvalidArguments("patient_id".into()))
}

fn catalogue() -> Catalogue {
    Catalogue::new()
        .tool(Tool::new("read", "mcp_offer.read", "read", |ctx, a| {
            Ok(json!(read(ctx, id_arg(a)?)?))
        }))
        .tool(Tool::new("note", "mcp_offer.note", "note", |ctx, a| {
            Ok(json!(note(ctx, id_arg(a)?)?))
        }))
        .tool(Tool::new(
            "lookup",
            "mcp_offer.lookup",
            "lookup",
            |ctx, _| Ok(json!(lookup(ctx)?)),
        ))
        .tool(Tool::new(
            "lookup_then_fail",
            "mcp_offer.lookup",
            "a tool whose guarded call succeeds but which fails before delivering",
            |ctx, _| {
                lookup(ctx)?;
                Err(ToolError::Failed("rendering failed".into()))
            },
        ))
        .tool(Tool::new(
            "emergency",
            "mcp_offer.emergency",
            "emergency read",
            |ctx, a| Ok(json!(emergency(ctx, id_arg(a)?)?)),
        ))
}

struct Setup {
    g: Guardrail,
    trail: MemorySink,
    alerts: MemoryAlertSink,
}

fn setup() -> Setup {
    let trail = MemorySink::new();
    let alerts = MemoryAlertSink::new();
    let g = Guardrail::builder()
        .policy(Policy::from_toml_str(POLICY).unwrap())
        .audit(trail.clone())
        .alerts(alerts.clone())
        .audit_key(AuditKey::from_bytes(b"mcp-offer-key-0123456789abcdefg").unwrap())
        .build()
        .unwrap();
    Setup { g, trail, alerts }
}

fn provider() -> Principal {
    Principal::new("dr-grey").role("provider")
}

fn names(tools: &[Tool]) -> Vec<&str> {
    tools.iter().map(Tool::name).collect()
}

fn args(v: Value) -> Map<String, Value> {
    v.as_object().cloned().unwrap()
}

#[test]
fn rules_the_agent_can_never_satisfy_offer_nothing() {
    let s = setup();
    let policy = s.g.policy();
    let c = catalogue();
    // `read` only through clinic-assistant; `note` only directly; `lookup` for anyone.
    assert_eq!(
        names(&c.offered(&policy, &provider(), Some("clinic-assistant"))),
        ["read", "lookup", "lookup_then_fail"]
    );
    assert_eq!(
        names(&c.offered(&policy, &provider(), Some("other-bot"))),
        ["lookup", "lookup_then_fail"]
    );
    assert_eq!(
        names(&c.offered(&policy, &provider(), None)),
        ["note", "lookup", "lookup_then_fail"]
    );
    // A session opened for another agent is not offered the assistant-only tool, nor the
    // in-person one, and calling them is refused as not offered.
    let session = Session::open(
        &s.g,
        &c,
        SessionConfig::new(provider()),
        AgentId::new("other-bot"),
    );
    assert_eq!(names(session.tools()), ["lookup", "lookup_then_fail"]);
    for tool in ["read", "note", "emergency"] {
        let err = session
            .call(tool, &args(json!({"patient_id": "p-1"})), None)
            .unwrap_err();
        assert!(matches!(err, ToolError::NotOffered(_)), "{tool}: {err:?}");
    }
    assert!(s.trail.events().is_empty(), "a tool not offered ran");
}

#[test]
fn the_outcome_event_carries_the_digest_of_exactly_what_the_model_received() {
    let s = setup();
    let session = Session::open(
        &s.g,
        &catalogue(),
        SessionConfig::new(provider()),
        AgentId::new("clinic-assistant"),
    );
    let out = session
        .call("read", &args(json!({"patient_id": "p-7"})), None)
        .unwrap();
    assert!(!out.text().contains("123-45-6789"), "{}", out.text());
    let expected = hex::encode(sha2::Sha256::digest(out.text().as_bytes()));
    assert_eq!(out.digest(), expected);
    let events = s.trail.events();
    assert_eq!(events.len(), 2);
    assert_eq!(events[0].record.kind, EventKind::Decision);
    assert!(!events[0].record.detail.contains_key(RESULT_DIGEST));
    assert_eq!(events[1].record.kind, EventKind::Outcome);
    assert_eq!(
        events[1]
            .record
            .detail
            .get(RESULT_DIGEST)
            .map(String::as_str),
        Some(expected.as_str())
    );
    assert_eq!(events[1].record.session.as_deref(), Some(session.id()));
}

#[test]
fn a_result_never_delivered_is_recorded_as_undelivered_without_a_digest() {
    let s = setup();
    let session = Session::open(
        &s.g,
        &catalogue(),
        SessionConfig::new(provider()),
        AgentId::new("clinic-assistant"),
    );
    let err = session
        .call("lookup_then_fail", &Map::new(), None)
        .unwrap_err();
    assert_eq!(err, ToolError::Failed("rendering failed".into()));
    let events = s.trail.events();
    assert_eq!(
        events.len(),
        2,
        "the body ran, so its outcome must be recorded"
    );
    let outcome = &events[1].record;
    assert_eq!(outcome.kind, EventKind::Outcome);
    assert_eq!(
        outcome.detail.get("result").map(String::as_str),
        Some("undelivered")
    );
    assert!(!outcome.detail.contains_key(RESULT_DIGEST));
}

#[test]
fn break_glass_comes_from_the_session_configuration_is_flagged_and_alerted() {
    let s = setup();
    let c = catalogue();
    // Without a declared emergency, the emergency tool is not offered, and a `break_glass`
    // argument to a tool that is offered changes nothing.
    let plain = Session::open(
        &s.g,
        &c,
        SessionConfig::new(provider()),
        AgentId::new("clinic-assistant"),
    );
    assert!(!names(plain.tools()).contains(&"emergency"));
    let injected = args(json!({"patient_id": "p-9", "break_glass": "cardiac arrest"}));
    assert!(matches!(
        plain.call("emergency", &injected, None),
        Err(ToolError::NotOffered(_))
    ));
    plain.call("read", &injected, None).unwrap();
    s.g.flush_alerts();
    assert!(s.trail.events().iter().all(|e| !e.record.break_glass));
    assert!(
        s.alerts
            .alerts()
            .iter()
            .all(|a| a.kind != AlertKind::BreakGlass)
    );

    // The server declares the emergency for the session.
    let config = SessionConfig::new(provider()).break_glass("cardiac arrest in bay 3, patient p-9");
    let emergency = Session::open(&s.g, &c, config, AgentId::new("clinic-assistant"));
    assert!(names(emergency.tools()).contains(&"emergency"));
    let before = s.trail.events().len();
    let out = emergency
        .call("emergency", &args(json!({"patient_id": "p-9"})), None)
        .unwrap();
    assert_eq!(out.value(), &json!("allergies of p-9: penicillin"));
    let events: Vec<_> = s.trail.events().into_iter().skip(before).collect();
    assert_eq!(events.len(), 2);
    assert_eq!(events[0].record.decision.as_deref(), Some("break_glass"));
    assert!(events[0].record.break_glass && events[1].record.break_glass);
    assert_eq!(
        events[0].record.purpose.as_deref(),
        Some("emergency_treatment")
    );
    assert_eq!(events[0].record.session.as_deref(), Some(emergency.id()));
    let reason = &events[0].record.detail["break_glass_reason"];
    assert!(reason.starts_with("cardiac arrest in bay 3"), "{reason}");
    s.g.flush_alerts();
    let alerts: Vec<_> = s
        .alerts
        .alerts()
        .into_iter()
        .filter(|a| a.kind == AlertKind::BreakGlass)
        .collect();
    assert_eq!(alerts.len(), 1);
    assert_eq!(alerts[0].principal.as_deref(), Some("dr-grey"));
}
