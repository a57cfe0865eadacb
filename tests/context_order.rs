//! The order in which a `Context` is refined never changes a decision.
//!
//! `.break_glass(reason).purpose(Purpose::Treatment)` once escaped a deny rule scoped to
//! `purposes = ["emergency_treatment"]`: the later `.purpose(..)` overwrote the emergency.
//! Here every subset of the refinements (endpoint, purpose, break-glass, approval, request
//! id), in every order, is applied to a context and used for guarded calls against a policy
//! with such deny rules; the full decision (effect, rule, reason, break-glass flag, recorded
//! purpose and endpoint, the masked value returned, i.e. the reveal set) must be the same for
//! every order of the same subset.

use std::collections::BTreeMap;

use guardrail_core::audit::EventKind;
use guardrail_core::prelude::*;
use guardrail_core::{ApprovalId, DenyReason, Endpoint, Purpose};

const POLICY: &str = r#"
version = "context-order-1"

[approval]
approver_roles = ["privacy_officer"]

[break_glass]
roles = ["provider"]
kinds = ["read"]
reveal = ["name"]

[[rule]]
id = "no-emergency-notes"
effect = "deny"
actions = ["order.notes.*"]
purposes = ["emergency_treatment"]

[[rule]]
id = "no-emergency-updates-from-the-ward"
effect = "deny"
actions = ["order.chart.update"]
endpoints = ["provider"]
purposes = ["emergency_treatment"]

[[rule]]
id = "providers-treat"
effect = "allow"
actions = ["order.chart.*", "order.notes.*"]
roles = ["provider"]
endpoints = ["provider"]
purposes = ["treatment"]
reveal = ["name", "diagnosis"]

[[rule]]
id = "audit-with-approval"
effect = "allow"
actions = ["order.audit.*"]
roles = ["provider"]
approval = "always"
"#;

#[derive(Phi, Debug, Clone)]
struct Chart {
    #[phi(name)]
    name: String,
    #[phi(diagnosis)]
    diagnosis: String,
    #[phi(ssn)]
    ssn: String,
}

fn chart() -> Chart {
    Chart {
        name: "Ada Order".into(),
        diagnosis: "Sequencitis".into(),
        ssn: "123-45-6789".into(),
    }
}

#[phi_action(kind = "read", role = "provider", resource = "patient_record",
             name = "order.chart.read", subject = patient_id)]
fn read_chart(ctx: &Context, patient_id: &str) -> Result<Chart, GuardError> {
    Ok(chart())
}

#[phi_action(kind = "read", role = "provider", resource = "patient_record",
             name = "order.notes.read", subject = patient_id)]
fn read_notes(ctx: &Context, patient_id: &str) -> Result<Chart, GuardError> {
    Ok(chart())
}

#[phi_action(kind = "update", role = "provider", resource = "patient_record",
             name = "order.chart.update", subject = patient_id)]
fn update_chart(ctx: &Context, patient_id: &str) -> Result<Chart, GuardError> {
    Ok(chart())
}

#[phi_action(kind = "read", role = "provider", name = "order.audit.read")]
fn read_audit(ctx: &Context) -> Result<Chart, GuardError> {
    Ok(chart())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Refinement {
    Endpoint,
    Purpose,
    BreakGlass,
    Approval,
    RequestId,
}

const ALL: [Refinement; 5] = [
    Refinement::Endpoint,
    Refinement::Purpose,
    Refinement::BreakGlass,
    Refinement::Approval,
    Refinement::RequestId,
];

const REQUEST_ID: &str = "req-context-order";

fn refine(ctx: Context, r: Refinement) -> Context {
    match r {
        Refinement::Endpoint => ctx.endpoint(Endpoint::Provider),
        Refinement::Purpose => ctx.purpose(Purpose::Treatment),
        Refinement::BreakGlass => ctx.break_glass("code blue in bed 4"),
        Refinement::Approval => ctx.approval(ApprovalId::new("apr-never-requested")),
        Refinement::RequestId => ctx.request_id(REQUEST_ID),
    }
}

/// Every permutation of `items`.
fn permutations(items: &[Refinement]) -> Vec<Vec<Refinement>> {
    if items.is_empty() {
        return vec![Vec::new()];
    }
    let mut out = Vec::new();
    for (i, first) in items.iter().enumerate() {
        let mut rest = items.to_vec();
        rest.remove(i);
        for mut tail in permutations(&rest) {
            tail.insert(0, *first);
            out.push(tail);
        }
    }
    out
}

/// Everything a guarded call shows of its decision.
#[derive(Debug, Clone, PartialEq)]
struct Seen {
    /// The masked value returned, or the denial / error kind.
    result: String,
    decision: Option<String>,
    rule: Option<String>,
    reason: Option<String>,
    break_glass: bool,
    purpose: Option<String>,
    endpoint: Option<String>,
    /// Every event of the call carries the context's request id (the one set, if set).
    request_id: Option<String>,
}

struct Harness {
    guardrail: Guardrail,
    sink: MemorySink,
}

impl Harness {
    fn new() -> Harness {
        let sink = MemorySink::new();
        let guardrail = Guardrail::builder()
            .policy(Policy::from_toml_str(POLICY).unwrap())
            .audit(sink.clone())
            .audit_key(AuditKey::from_bytes(b"context-order-test-key-012345").unwrap())
            .build()
            .unwrap();
        Harness { guardrail, sink }
    }

    fn context(&self, order: &[Refinement]) -> Context {
        order.iter().fold(
            self.guardrail
                .context(Principal::new("dr-order").role("provider")),
            |ctx, r| refine(ctx, *r),
        )
    }

    /// Calls `action` with a context refined in `order` and returns what the call shows.
    fn call(&self, action: &str, order: &[Refinement]) -> Seen {
        let ctx = self.context(order);
        let before = self.sink.len();
        let result = match action {
            "order.chart.read" => read_chart(&ctx, "p-7"),
            "order.notes.read" => read_notes(&ctx, "p-7"),
            "order.chart.update" => update_chart(&ctx, "p-7"),
            "order.audit.read" => read_audit(&ctx),
            other => unreachable!("{other}"),
        };
        let result = match result {
            Ok(chart) => format!("ok {chart:?}"),
            Err(GuardError::Denied { reason, .. }) => format!("denied {reason:?}"),
            // The request id of a fresh approval request differs per call: keep the kind.
            Err(GuardError::ApprovalRequired { .. }) => "approval required".to_owned(),
            Err(other) => format!("error {other:?}"),
        };
        let events: Vec<_> = self.sink.events().into_iter().skip(before).collect();
        let decisions: Vec<_> = events
            .iter()
            .filter(|e| e.record.kind == EventKind::Decision)
            .collect();
        assert_eq!(decisions.len(), 1, "{action} {order:?}: {events:#?}");
        let d = &decisions[0].record;
        let request_ids: Vec<Option<&str>> = events
            .iter()
            .map(|e| e.record.request_id.as_deref())
            .collect();
        let expected_id = if order.contains(&Refinement::RequestId) {
            REQUEST_ID
        } else {
            ctx.get_request_id()
        };
        assert!(
            request_ids.iter().all(|id| *id == Some(expected_id)),
            "{action} {order:?}: request ids {request_ids:?}, expected {expected_id}"
        );
        Seen {
            result,
            decision: d.decision.as_deref().map(str::to_owned),
            rule: d.rule.as_deref().map(str::to_owned),
            reason: d.reason.as_deref().map(str::to_owned),
            break_glass: d.break_glass,
            purpose: d.purpose.as_deref().map(str::to_owned),
            endpoint: d.endpoint.as_deref().map(str::to_owned),
            request_id: order
                .contains(&Refinement::RequestId)
                .then(|| REQUEST_ID.to_owned()),
        }
    }
}

const ACTIONS: [&str; 4] = [
    "order.chart.read",
    "order.notes.read",
    "order.chart.update",
    "order.audit.read",
];

/// The first order a subset was tried in, and what it decided.
type FirstSeen = (Vec<Refinement>, Seen);

/// Every subset of the refinements, in every order (326 orders), for every action: one
/// decision per subset.
#[test]
fn every_order_of_every_subset_of_refinements_decides_the_same() {
    let h = Harness::new();
    let mut by_subset: BTreeMap<(&str, Vec<Refinement>), FirstSeen> = BTreeMap::new();
    let mut orders = 0;
    for mask in 0u32..(1 << ALL.len()) {
        let subset: Vec<Refinement> = ALL
            .iter()
            .enumerate()
            .filter(|(i, _)| mask & (1 << i) != 0)
            .map(|(_, r)| *r)
            .collect();
        for order in permutations(&subset) {
            orders += 1;
            for action in ACTIONS {
                let seen = h.call(action, &order);
                match by_subset.get(&(action, subset.clone())) {
                    None => {
                        by_subset.insert((action, subset.clone()), (order.clone(), seen));
                    }
                    Some((first, expected)) => assert_eq!(
                        &seen, expected,
                        "{action}: refined as {order:?} decides differently from {first:?}"
                    ),
                }
            }
        }
    }
    assert_eq!(orders, 326);

    // A few of the decisions, spelled out, so the comparison above compares real ones.
    use Refinement::*;
    let of = |action: &str, subset: &[Refinement]| {
        let mut subset = subset.to_vec();
        subset.sort();
        by_subset[&(action, subset)].1.clone()
    };

    let treat = of("order.chart.read", &[Endpoint, Purpose]);
    assert_eq!(treat.decision.as_deref(), Some("allow"));
    assert_eq!(treat.rule.as_deref(), Some("providers-treat"));
    assert!(!treat.break_glass);
    assert!(treat.result.contains("Ada Order") && treat.result.contains("Sequencitis"));
    assert!(!treat.result.contains("123-45-6789"), "{treat:?}");

    // Break-glass makes the purpose emergency treatment, whatever `.purpose(..)` says: the
    // allow rule (treatment only) no longer applies and break-glass opens the read, flagged,
    // revealing only the name.
    let emergency = of("order.chart.read", &[Endpoint, Purpose, BreakGlass]);
    assert_eq!(emergency.decision.as_deref(), Some("break_glass"));
    assert!(emergency.break_glass);
    assert_eq!(emergency.rule, None);
    assert_eq!(emergency.purpose.as_deref(), Some("emergency_treatment"));
    assert!(emergency.result.contains("Ada Order"));
    assert!(!emergency.result.contains("Sequencitis"), "{emergency:?}");

    // The deny rule scoped to emergency treatment holds whichever came last.
    let notes = of("order.notes.read", &[Endpoint, Purpose, BreakGlass]);
    assert_eq!(notes.decision.as_deref(), Some("deny"));
    assert_eq!(notes.rule.as_deref(), Some("no-emergency-notes"));
    assert!(!notes.break_glass);
    assert!(
        notes.result.starts_with("denied BreakGlassNotPermitted")
            && notes.result.contains("no-emergency-notes"),
        "{notes:?}"
    );
    let update = of(
        "order.chart.update",
        &[Endpoint, Purpose, BreakGlass, RequestId],
    );
    assert_eq!(
        update.rule.as_deref(),
        Some("no-emergency-updates-from-the-ward")
    );
    assert_eq!(update.decision.as_deref(), Some("deny"));
    assert_eq!(update.request_id.as_deref(), Some(REQUEST_ID));

    // Without break-glass the notes are read for treatment.
    let notes = of(
        "order.notes.read",
        &[Endpoint, Purpose, Approval, RequestId],
    );
    assert_eq!(notes.rule.as_deref(), Some("providers-treat"), "{notes:?}");
    assert_eq!(notes.decision.as_deref(), Some("allow"));

    // An approval id nobody requested opens nothing.
    let audit = of("order.audit.read", &[Approval, Purpose]);
    assert_eq!(audit.decision.as_deref(), Some("deny"), "{audit:?}");
    assert!(!audit.result.starts_with("ok"), "{audit:?}");
    let audit = of("order.audit.read", &[Purpose]);
    assert_eq!(audit.result, "approval required");
}

/// The two orders of break-glass and purpose, as a caller writes them, against the policy
/// directly: the same full verdict.
#[test]
fn break_glass_then_purpose_is_purpose_then_break_glass() {
    let h = Harness::new();
    let principal = || Principal::new("dr-order").role("provider");
    let a = h
        .guardrail
        .context(principal())
        .endpoint(Endpoint::Provider)
        .break_glass("code blue")
        .purpose(Purpose::Treatment);
    let b = h
        .guardrail
        .context(principal())
        .purpose(Purpose::Treatment)
        .endpoint(Endpoint::Provider)
        .break_glass("code blue");
    assert_eq!(a.get_purpose(), Some(Purpose::EmergencyTreatment));
    assert_eq!(b.get_purpose(), Some(Purpose::EmergencyTreatment));
    for ctx in [&a, &b] {
        let err = read_notes(ctx, "p-7").unwrap_err();
        assert!(
            matches!(
                err.deny_reason(),
                Some(DenyReason::BreakGlassNotPermitted { why }) if why.contains("no-emergency-notes")
            ),
            "{err:?}"
        );
    }
}
