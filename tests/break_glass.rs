//! Break-glass (emergency access, §164.312(a)(2)(ii)): a role the policy allows overrides a
//! default denial with a declared reason; the body runs, its decision and outcome events are
//! flagged and an alert fires. A role that may not, a kind or resource the policy closes, a
//! deny rule, a missing reason or too many records are refused and the body does not run.

use std::fmt::Display;
use std::sync::atomic::{AtomicUsize, Ordering};

use guardrail_core::__private::{CountArg, begin};
use guardrail_core::audit::{EventKind, Outcome};
use guardrail_core::{
    ActionDescriptor, ActionKind, AlertKind, AuditKey, Context, DenyReason, GuardError, Guardrail,
    MemoryAlertSink, MemorySink, Policy, Principal, Purpose,
};

const POLICY: &str = r#"
version = "bg-1"

[break_glass]
roles = ["provider"]
kinds = ["read", "update"]
resources = ["patient_record"]
max_count = 5

[[rule]]
id = "providers-treat"
effect = "allow"
actions = ["clinic::*"]
roles = ["provider", "nurse"]
purposes = ["treatment"]

[[rule]]
id = "no-psychotherapy-notes"
effect = "deny"
actions = ["clinic::read_psychotherapy_notes"]
"#;

macro_rules! action {
    ($name:ident, $full:literal, $kind:ident, $resource:expr) => {
        static $name: ActionDescriptor = {
            let d = ActionDescriptor::new($full, ActionKind::$kind)
                .roles(&["provider", "nurse"])
                .located(module_path!(), file!(), line!());
            match $resource {
                Some(resource) => d.resource(resource),
                None => d,
            }
        };
    };
}

action!(
    READ_CHART,
    "clinic::read_chart",
    Read,
    Some("patient_record")
);
action!(
    DELETE_CHART,
    "clinic::delete_chart",
    Delete,
    Some("patient_record")
);
action!(READ_BILLING, "clinic::read_invoice", Read, Some("invoice"));
action!(
    READ_NOTES,
    "clinic::read_psychotherapy_notes",
    Read,
    Some("patient_record")
);

struct Setup {
    guardrail: Guardrail,
    trail: MemorySink,
    alerts: MemoryAlertSink,
}

fn setup() -> Setup {
    let trail = MemorySink::new();
    let alerts = MemoryAlertSink::new();
    let guardrail = Guardrail::builder()
        .policy(Policy::from_toml_str(POLICY).unwrap())
        .audit(trail.clone())
        .audit_key(AuditKey::from_bytes(b"break-glass-test-key-0123456789").unwrap())
        .alerts(alerts.clone())
        .build()
        .unwrap();
    Setup {
        guardrail,
        trail,
        alerts,
    }
}

fn run(
    action: &'static ActionDescriptor,
    ctx: &Context,
    count: Option<u64>,
    ran: &AtomicUsize,
) -> Result<(), GuardError> {
    let subject: &dyn Display = &"p-42";
    let count = count.map_or(CountArg::Absent, CountArg::Value);
    let call = begin(action, ctx, Some(subject), count, &[])?;
    ran.fetch_add(1, Ordering::SeqCst);
    call.finish::<(), GuardError>(Ok(()))
}

fn provider() -> Principal {
    Principal::new("dr-grey").role("provider")
}

fn break_glass_alerts(alerts: &MemoryAlertSink) -> usize {
    alerts
        .alerts()
        .iter()
        .filter(|a| a.kind == AlertKind::BreakGlass)
        .count()
}

#[test]
fn break_glass_opens_a_denied_read_flags_its_events_and_alerts() {
    let s = setup();
    let ran = AtomicUsize::new(0);
    // Without break-glass the emergency purpose is not allowed by any rule.
    let plain = s
        .guardrail
        .context(provider())
        .purpose(Purpose::EmergencyTreatment);
    let err = run(&READ_CHART, &plain, None, &ran).unwrap_err();
    assert_eq!(err.deny_reason(), Some(&DenyReason::PurposeNotAllowed));
    assert_eq!(ran.load(Ordering::SeqCst), 0);

    let ctx = s
        .guardrail
        .context(provider())
        .break_glass("unconscious in the ER, SSN 123-45-6789 on the wristband");
    run(&READ_CHART, &ctx, None, &ran).unwrap();
    assert_eq!(ran.load(Ordering::SeqCst), 1, "the body did not run");

    let events = s.trail.events();
    let decision = events
        .iter()
        .find(|e| e.record.kind == EventKind::Decision && e.record.break_glass)
        .expect("a flagged decision event");
    assert_eq!(decision.record.decision.as_deref(), Some("break_glass"));
    assert_eq!(
        decision.record.purpose.as_deref(),
        Some("emergency_treatment")
    );
    let reason = decision.record.detail.get("break_glass_reason").unwrap();
    assert!(reason.contains("unconscious in the ER"), "{reason}");
    let outcome = events
        .iter()
        .find(|e| {
            e.record.kind == EventKind::Outcome && e.record.decision_seq == Some(decision.seq)
        })
        .expect("the outcome event");
    assert!(
        outcome.record.break_glass,
        "the outcome event is not flagged"
    );
    assert_eq!(outcome.record.outcome, Some(Outcome::Ok));
    // The free-text reason is scanned: the SSN never reaches the trail.
    assert!(!s.trail.to_lines().contains("123-45-6789"));

    s.guardrail.flush_alerts();
    let alerts = s.alerts.alerts();
    let alert = alerts
        .iter()
        .find(|a| a.kind == AlertKind::BreakGlass)
        .expect("a break-glass alert");
    assert_eq!(alert.principal.as_deref(), Some("dr-grey"));
    assert_eq!(alert.action.as_deref(), Some("clinic::read_chart"));
    assert_eq!(alert.request_id.as_deref(), Some(ctx.get_request_id()));
    assert!(!alert.message.contains("123-45-6789"));
}

fn assert_refused(
    s: &Setup,
    action: &'static ActionDescriptor,
    who: Principal,
    reason: &str,
    count: Option<u64>,
    why_contains: &str,
) {
    let ran = AtomicUsize::new(0);
    let ctx = s.guardrail.context(who).break_glass(reason);
    let err = run(action, &ctx, count, &ran).unwrap_err();
    match err.deny_reason() {
        Some(DenyReason::BreakGlassNotPermitted { why }) => {
            assert!(why.contains(why_contains), "{why}")
        }
        other => panic!("expected BreakGlassNotPermitted, got {other:?} ({err})"),
    }
    assert_eq!(ran.load(Ordering::SeqCst), 0, "the body ran");
    let last = s.trail.events().pop().unwrap();
    assert_eq!(last.record.kind, EventKind::Decision);
    assert_eq!(last.record.decision.as_deref(), Some("deny"));
    assert!(
        !last.record.break_glass,
        "a refused break-glass is flagged as used"
    );
    s.guardrail.flush_alerts();
    assert_eq!(
        break_glass_alerts(&s.alerts),
        0,
        "a refused break-glass alerted"
    );
}

#[test]
fn a_role_the_policy_does_not_name_is_refused() {
    let s = setup();
    let nurse = Principal::new("nick").role("nurse");
    assert_refused(
        &s,
        &READ_CHART,
        nurse,
        "code blue",
        None,
        "none of the principal's roles may declare break-glass",
    );
}

#[test]
fn a_kind_the_policy_closes_is_refused() {
    let s = setup();
    assert_refused(
        &s,
        &DELETE_CHART,
        provider(),
        "code blue",
        None,
        "cannot open `delete` actions",
    );
}

#[test]
fn a_resource_the_policy_closes_is_refused() {
    let s = setup();
    assert_refused(
        &s,
        &READ_BILLING,
        provider(),
        "code blue",
        None,
        "cannot open resource `invoice`",
    );
}

#[test]
fn an_explicit_deny_rule_is_never_overridden() {
    let s = setup();
    assert_refused(
        &s,
        &READ_NOTES,
        provider(),
        "code blue",
        None,
        "break-glass cannot override a deny rule",
    );
}

#[test]
fn a_blank_reason_is_refused() {
    let s = setup();
    assert_refused(
        &s,
        &READ_CHART,
        provider(),
        "   ",
        None,
        "no reason was given",
    );
}

#[test]
fn a_reason_of_invisible_characters_is_refused() {
    let s = setup();
    // Zero-width space, joiner, word joiner, byte-order mark, no-break space: nothing a
    // reviewer could read.
    for reason in [
        "\u{200B}",
        "\u{200D}\u{2060}",
        " \u{FEFF}\t",
        "\u{00A0}\u{200B}",
    ] {
        assert_refused(
            &s,
            &READ_CHART,
            provider(),
            reason,
            None,
            "no reason was given",
        );
    }
}

#[test]
fn more_records_than_the_break_glass_limit_are_refused() {
    let s = setup();
    assert_refused(
        &s,
        &READ_CHART,
        provider(),
        "mass casualty",
        Some(6),
        "limited to 5 records",
    );
    // At the limit it opens.
    let ran = AtomicUsize::new(0);
    let ctx = s.guardrail.context(provider()).break_glass("mass casualty");
    run(&READ_CHART, &ctx, Some(5), &ran).unwrap();
    assert_eq!(ran.load(Ordering::SeqCst), 1);
}

#[test]
fn a_policy_without_break_glass_refuses_it() {
    let trail = MemorySink::new();
    // The same policy with its `[break_glass]` section cut out.
    let from = POLICY.find("[break_glass]").unwrap();
    let to = POLICY.find("[[rule]]").unwrap();
    let policy = format!("{}{}", &POLICY[..from], &POLICY[to..]);
    let guardrail = Guardrail::builder()
        .policy(Policy::from_toml_str(&policy).unwrap())
        .audit(trail)
        .audit_key(AuditKey::from_bytes(b"break-glass-test-key-0123456789").unwrap())
        .build()
        .unwrap();
    let ran = AtomicUsize::new(0);
    let ctx = guardrail.context(provider()).break_glass("code blue");
    let err = run(&READ_CHART, &ctx, None, &ran).unwrap_err();
    assert!(
        matches!(err.deny_reason(), Some(DenyReason::BreakGlassNotPermitted { why }) if why.contains("no `[break_glass]` section")),
        "{err}"
    );
    assert_eq!(ran.load(Ordering::SeqCst), 0);
}
