//! A call through an agent: the policy sees the agent, every event records the person
//! (`principal`) and the agent (`via`) and the session.

#![allow(clippy::unwrap_used)]

use guardrail_core::audit::EventKind;
use guardrail_core::prelude::*;
use guardrail_core::{AgentId, AuditKey, DenyReason};

const POLICY: &str = r#"
version = "agent-test-1"

[[rule]]
id = "read-via-assistant"
effect = "allow"
actions = ["agent_test.read"]
roles = ["provider"]
agents = ["clinic-assistant"]
"#;

#[phi_action(kind = "read", role = "provider", name = "agent_test.read", subject = id)]
fn read(ctx: &Context, id: &str) -> Result<String, GuardError> {
    Ok(id.to_owned())
}

fn fixture() -> (Guardrail, MemorySink) {
    let sink = MemorySink::new();
    let guardrail = Guardrail::builder()
        .policy(Policy::from_toml_str(POLICY).unwrap())
        .audit(sink.clone())
        .audit_key(AuditKey::from_bytes(b"agent-test-key-0123456789abcdef").unwrap())
        .build()
        .unwrap();
    (guardrail, sink)
}

#[test]
fn every_event_of_an_agent_call_records_principal_via_and_session() {
    let (g, sink) = fixture();
    let ctx = g
        .context(Principal::new("dr-grey").role("provider"))
        .agent(AgentId::new("clinic-assistant").version("1.0"))
        .session("sess-1");
    read(&ctx, "p-100").unwrap();
    let events = sink.events();
    assert_eq!(events.len(), 2);
    for e in &events {
        assert_eq!(e.record.principal.as_deref(), Some("dr-grey"));
        assert_eq!(e.record.via.as_deref(), Some("clinic-assistant/1.0"));
        assert_eq!(e.record.session.as_deref(), Some("sess-1"));
    }
    assert_eq!(events[1].record.kind, EventKind::Outcome);
}

#[test]
fn the_agent_rule_refuses_a_direct_call_and_another_agent() {
    let (g, sink) = fixture();
    let direct = g.context(Principal::new("dr-grey").role("provider"));
    assert!(read(&direct, "p-100").is_err());
    let other = direct.clone().agent(AgentId::new("other-bot"));
    assert!(read(&other, "p-100").is_err());
    let events = sink.events();
    assert_eq!(events.len(), 2);
    assert_eq!(events[0].record.via, None);
    assert_eq!(events[1].record.via.as_deref(), Some("other-bot"));
}

const APPROVAL_POLICY: &str = r#"
version = "agent-approval-1"

[approval]
approver_roles = ["privacy_officer"]

[[rule]]
id = "exports-need-approval"
effect = "allow"
actions = ["agent_test.export"]
roles = ["researcher"]
approval = "always"
"#;

#[phi_action(kind = "export", role = "researcher", name = "agent_test.export", subject = id)]
fn export(ctx: &Context, id: &str) -> Result<String, GuardError> {
    Ok(id.to_owned())
}

#[test]
fn a_grant_the_person_asked_for_cannot_be_spent_by_their_agent() {
    let g = Guardrail::builder()
        .policy(Policy::from_toml_str(APPROVAL_POLICY).unwrap())
        .audit(MemorySink::new())
        .audit_key(AuditKey::from_bytes(b"agent-test-key-0123456789abcdef").unwrap())
        .build()
        .unwrap();
    let person = g.context(Principal::new("r-lee").role("researcher"));
    let id = match export(&person, "p-100") {
        Err(GuardError::ApprovalRequired { request }) => request.id.clone(),
        other => panic!("expected an approval request: {other:?}"),
    };
    g.approve(&Principal::new("po-kim").role("privacy_officer"), &id)
        .unwrap();
    let via_agent = person
        .clone()
        .agent(AgentId::new("clinic-assistant"))
        .approval(id.clone());
    match export(&via_agent, "p-100") {
        Err(GuardError::Denied {
            reason: DenyReason::ApprovalInvalid { why },
            ..
        }) => assert!(why.contains("agent"), "{why}"),
        other => panic!("the agent spent the person's grant: {other:?}"),
    }
    // Refused without being consumed: the person's own retry still runs, once.
    assert_eq!(
        export(&person.clone().approval(id.clone()), "p-100").unwrap(),
        "p-100"
    );
    assert!(export(&person.approval(id), "p-100").is_err());
}
