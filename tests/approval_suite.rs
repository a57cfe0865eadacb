//! The approval test suite, written once and run against every [`ApprovalStore`]: the
//! in-memory store (`tests/approvals.rs`) and the PostgreSQL store (`tests/approvals_pg.rs`).
//!
//! A backend supplies a store and "replicas" of it: further store instances over the same
//! data, as several replicas of a service would have. For the in-memory store a replica is a
//! clone (same process, same map); for PostgreSQL it is a separate connection pool and worker
//! thread on the same table.

#![allow(dead_code)]

use std::fmt::Display;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::time::Duration;

use guardrail_core::__private::{CountArg, begin};
use guardrail_core::approval::{ApprovalBinding, CallScope};
use guardrail_core::audit::{AuditEvent, EventKind, Timestamp};
use guardrail_core::{
    ActionDescriptor, ActionKind, ApprovalError, ApprovalId, ApprovalRequest, ApprovalState,
    ApprovalStore, AuditKey, Context, DenyReason, Endpoint, GuardError, Guardrail, ManualClock,
    MemorySink, Policy, Principal, Purpose,
};

/// Supplies stores for one run of the suite.
pub trait Backend {
    /// The store type.
    type Store: ApprovalStore + Clone + 'static;
    /// A store over fresh, empty data (one per test).
    fn store(&self) -> Self::Store;
    /// Another instance over the same data as the last [`Backend::store`].
    fn replica(&self) -> Self::Store;
}

/// Generates one `#[test]` per suite case; `$backend` is called with the case's name and
/// gives `Option<impl Backend>` (`None` skips, e.g. without a database outside CI).
macro_rules! approval_suite {
    ($backend:expr) => {
        approval_suite!(@cases $backend;
            requester_cannot_approve_own_request,
            non_approver_cannot_approve_or_reject,
            grant_opens_exactly_one_call_and_every_step_is_audited,
            grant_is_bound_to_subject_count_and_principal,
            expired_grant_is_refused,
            rejected_request_cannot_be_approved_later,
            replicas_racing_to_consume_one_grant_exactly_one_wins,
            approvers_racing_to_decide_exactly_one_wins,
            store_transitions_are_checked,
            duplicate_and_unknown_ids_are_errors,
            pending_count_follows_decisions,
            listing_shows_decidable_requests_oldest_first,
            grant_is_bound_to_purpose_endpoint_arguments_rule_and_policy,
            refused_attempts_are_recorded_and_change_nothing,
        );
    };
    (@cases $backend:expr; $($case:ident),* $(,)?) => {
        $(
            #[test]
            fn $case() {
                if let Some(backend) = ($backend)(stringify!($case)) {
                    approval_suite::$case(&backend);
                }
            }
        )*
    };
}

pub const POLICY: &str = r#"
version = "approvals-1"

[approval]
approver_roles = ["privacy_officer"]
ttl_secs = 600

[[rule]]
id = "analysts-export"
effect = "allow"
actions = ["reports::export_cohort"]
roles = ["analyst"]
approval_over = 100
"#;

pub static EXPORT: ActionDescriptor =
    ActionDescriptor::new("reports::export_cohort", ActionKind::Export)
        .resource("patient_record")
        .roles(&["analyst"])
        .located(module_path!(), file!(), line!())
        .function("export_cohort");

pub const TTL_SECS: u64 = 600;

/// One service replica: a guardrail over `store`, its own trail, a shared manual clock.
pub struct Replica {
    pub guardrail: Guardrail,
    pub trail: MemorySink,
}

pub fn replica<S: ApprovalStore + 'static>(store: S, clock: &ManualClock) -> Replica {
    replica_with(store, clock, POLICY)
}

/// A replica deciding with the policy `text`.
pub fn replica_with<S: ApprovalStore + 'static>(
    store: S,
    clock: &ManualClock,
    text: &str,
) -> Replica {
    let trail = MemorySink::new();
    let guardrail = Guardrail::builder()
        .policy(Policy::from_toml_str(text).expect("suite policy"))
        .audit(trail.clone())
        .audit_key(AuditKey::from_bytes(b"approval-suite-key-0123456789").expect("key"))
        .approvals(store)
        .clock(clock.clone())
        .build()
        .expect("guardrail");
    Replica { guardrail, trail }
}

pub fn analyst(id: &str) -> Principal {
    Principal::new(id).role("analyst")
}

pub fn officer(id: &str) -> Principal {
    Principal::new(id).role("privacy_officer")
}

/// Runs the export through the guard; `ran` counts bodies that ran.
pub fn export(
    ctx: &Context,
    subject: &str,
    count: u64,
    ran: &AtomicUsize,
) -> Result<u64, GuardError> {
    let subject: &dyn Display = &subject;
    let call = begin(&EXPORT, ctx, Some(subject), CountArg::Value(count), &[])?;
    ran.fetch_add(1, Ordering::SeqCst);
    call.finish::<u64, GuardError>(Ok(count))
}

/// Makes `requester` ask for an export and returns the pending request.
pub fn request(r: &Replica, requester: &Principal, subject: &str, count: u64) -> ApprovalRequest {
    let ran = AtomicUsize::new(0);
    let ctx = r.guardrail.context(requester.clone());
    match export(&ctx, subject, count, &ran) {
        Err(GuardError::ApprovalRequired { request }) => {
            assert_eq!(
                ran.load(Ordering::SeqCst),
                0,
                "the body ran without approval"
            );
            assert_eq!(request.state, ApprovalState::Pending);
            *request
        }
        other => panic!("expected ApprovalRequired, got {other:?}"),
    }
}

pub fn approval_invalid(result: Result<u64, GuardError>) -> String {
    match result {
        Err(GuardError::Denied {
            reason: DenyReason::ApprovalInvalid { why },
            ..
        }) => why,
        other => panic!("expected an ApprovalInvalid denial, got {other:?}"),
    }
}

pub fn events_of(trail: &MemorySink, id: &ApprovalId) -> Vec<AuditEvent> {
    trail
        .events()
        .into_iter()
        .filter(|e| e.record.approval.as_deref() == Some(id.as_str()))
        .collect()
}

fn clock() -> ManualClock {
    ManualClock::at_unix_secs(1_800_000_000)
}

// -------------------------------------------------------------------------------------------

pub fn requester_cannot_approve_own_request<B: Backend>(b: &B) {
    let clock = clock();
    let r = replica(b.store(), &clock);
    // The requester is also a privacy officer: the role alone must not let them approve.
    let both = Principal::new("ana")
        .role("analyst")
        .role("privacy_officer");
    let req = request(&r, &both, "p-1", 150);
    let err = r.guardrail.approve(&both, &req.id).unwrap_err();
    assert_eq!(err, ApprovalError::SelfApproval(req.id.to_string()));
    let err = r.guardrail.reject(&both, &req.id).unwrap_err();
    assert_eq!(err, ApprovalError::SelfApproval(req.id.to_string()));
    let stored = r.guardrail.approval_request(&req.id).unwrap().unwrap();
    assert_eq!(
        stored.state,
        ApprovalState::Pending,
        "a refused approval changed the state"
    );
    // The retry is still refused: nothing was granted.
    let ran = AtomicUsize::new(0);
    let ctx = r.guardrail.context(both.clone()).approval(req.id.clone());
    let why = approval_invalid(export(&ctx, "p-1", 150, &ran));
    assert!(why.contains("has not been granted"), "{why}");
    assert_eq!(ran.load(Ordering::SeqCst), 0);
    // Both refused attempts are in the trail, naming who tried.
    let refused: Vec<_> = events_of(&r.trail, &req.id)
        .into_iter()
        .filter(|e| e.record.decision.as_deref() == Some("refused"))
        .collect();
    assert_eq!(refused.len(), 2);
    assert_eq!(refused[0].record.kind, EventKind::ApprovalGranted);
    assert_eq!(refused[1].record.kind, EventKind::ApprovalRejected);
    assert!(
        refused
            .iter()
            .all(|e| e.record.principal.as_deref() == Some("ana"))
    );
}

/// An attempt a channel refused before the flow (a page's CSRF check) is recorded as a
/// `refused` step with its fixed reason: bound like the flow's own refusals when the store
/// knows the request, naming the id alone when it does not. The request stays pending and
/// can still be decided.
pub fn refused_attempts_are_recorded_and_change_nothing<B: Backend>(b: &B) {
    const REASON: &str = "the form check failed";
    let clock = clock();
    let r = replica(b.store(), &clock);
    let req = request(&r, &analyst("ana"), "p-1", 150);
    let kim = officer("po-kim");
    r.guardrail
        .record_refused_attempt(&kim, &req.id, true, REASON)
        .unwrap();
    let steps = events_of(&r.trail, &req.id);
    let refused: Vec<_> = steps
        .iter()
        .filter(|e| e.record.kind == EventKind::ApprovalGranted)
        .collect();
    assert_eq!(refused.len(), 1, "{steps:?}");
    let e = &refused[0].record;
    assert_eq!(e.decision.as_deref(), Some("refused"));
    assert_eq!(e.principal.as_deref(), Some("po-kim"));
    assert_eq!(e.reason.as_deref(), Some(REASON));
    assert_eq!(e.action.as_deref(), Some("reports::export_cohort"));
    assert_eq!(e.detail.get("requester").map(String::as_str), Some("ana"));
    assert_eq!(
        r.guardrail
            .approval_request(&req.id)
            .unwrap()
            .unwrap()
            .state,
        ApprovalState::Pending
    );

    let unknown = ApprovalId::new("no-such-request");
    r.guardrail
        .record_refused_attempt(&kim, &unknown, false, REASON)
        .unwrap();
    let steps = events_of(&r.trail, &unknown);
    assert_eq!(steps.len(), 1);
    let e = &steps[0].record;
    assert_eq!(
        (e.kind, e.decision.as_deref(), e.principal.as_deref()),
        (EventKind::ApprovalRejected, Some("refused"), Some("po-kim"))
    );
    assert_eq!(e.reason.as_deref(), Some(REASON));
    assert!(e.action.is_none() && e.detail.is_empty());

    // The request is still there to be decided.
    let granted = r.guardrail.approve(&kim, &req.id).unwrap();
    assert_eq!(granted.state.as_str(), "granted");
}

pub fn non_approver_cannot_approve_or_reject<B: Backend>(b: &B) {
    let clock = clock();
    let r = replica(b.store(), &clock);
    let req = request(&r, &analyst("ana"), "p-1", 150);
    let nurse = Principal::new("nick").role("nurse").role("analyst");
    for result in [
        r.guardrail.approve(&nurse, &req.id),
        r.guardrail.reject(&nurse, &req.id),
    ] {
        match result {
            Err(ApprovalError::NotApprover { principal, roles }) => {
                assert_eq!(principal, "nick");
                assert!(roles.contains("`privacy_officer`"), "{roles}");
            }
            other => panic!("expected NotApprover, got {other:?}"),
        }
    }
    let stored = r.guardrail.approval_request(&req.id).unwrap().unwrap();
    assert_eq!(stored.state, ApprovalState::Pending);
}

pub fn grant_opens_exactly_one_call_and_every_step_is_audited<B: Backend>(b: &B) {
    let clock = clock();
    let r = replica(b.store(), &clock);
    let ana = analyst("ana");
    // At or under the threshold no approval is needed at all.
    let ran = AtomicUsize::new(0);
    assert_eq!(
        export(&r.guardrail.context(ana.clone()), "p-1", 100, &ran).unwrap(),
        100
    );
    assert_eq!(ran.load(Ordering::SeqCst), 1);

    let req = request(&r, &ana, "p-1", 150);
    assert_eq!(
        req.expires_at.0 - req.requested_at.0,
        TTL_SECS * 1_000_000_000
    );
    let granted = r.guardrail.approve(&officer("olga"), &req.id).unwrap();
    match &granted.state {
        ApprovalState::Granted { approver, .. } => assert_eq!(&**approver, "olga"),
        other => panic!("expected granted, got {other:?}"),
    }

    let ran = AtomicUsize::new(0);
    let ctx = r.guardrail.context(ana.clone()).approval(req.id.clone());
    assert_eq!(export(&ctx, "p-1", 150, &ran).unwrap(), 150);
    assert_eq!(ran.load(Ordering::SeqCst), 1);

    // Second use: refused, body does not run.
    let ctx = r.guardrail.context(ana.clone()).approval(req.id.clone());
    let why = approval_invalid(export(&ctx, "p-1", 150, &ran));
    assert!(why.contains("already used"), "{why}");
    assert_eq!(
        ran.load(Ordering::SeqCst),
        1,
        "the body ran on a used grant"
    );

    // The trail: request (decision approval_required), grant, consumption, allowed decision,
    // outcome, and the refused second use.
    let events = events_of(&r.trail, &req.id);
    let steps: Vec<(EventKind, Option<&str>)> = events
        .iter()
        .map(|e| (e.record.kind, e.record.decision.as_deref()))
        .collect();
    assert_eq!(
        steps,
        vec![
            (EventKind::Decision, Some("approval_required")),
            (EventKind::ApprovalGranted, Some("granted")),
            (EventKind::ApprovalConsumed, Some("consumed")),
            (EventKind::Decision, Some("allow")),
            (EventKind::Decision, Some("deny")),
        ]
    );
    let grant = &events[1].record;
    assert_eq!(grant.principal.as_deref(), Some("olga"));
    assert_eq!(
        grant.detail.get("requester").map(String::as_str),
        Some("ana")
    );
    assert_eq!(grant.count, Some(150));
    // Subjects are keyed tokens, never the raw id.
    assert!(
        events
            .iter()
            .all(|e| e.record.subject.as_deref() != Some("p-1"))
    );
    assert!(!r.trail.to_lines().contains("\"p-1\""));
    // The allowed decision is followed by its outcome.
    let allowed_seq = events[3].seq;
    assert!(
        r.trail
            .events()
            .iter()
            .any(|e| e.record.kind == EventKind::Outcome
                && e.record.decision_seq == Some(allowed_seq))
    );
    guardrail_core::audit::verify_events(&r.trail.events()).expect("the trail verifies");
}

pub fn grant_is_bound_to_subject_count_and_principal<B: Backend>(b: &B) {
    let clock = clock();
    let r = replica(b.store(), &clock);
    let ana = analyst("ana");
    let req = request(&r, &ana, "p-1", 150);
    r.guardrail.approve(&officer("olga"), &req.id).unwrap();
    let ran = AtomicUsize::new(0);
    let with_grant = |p: &Principal| r.guardrail.context(p.clone()).approval(req.id.clone());

    let why = approval_invalid(export(&with_grant(&ana), "p-2", 150, &ran));
    assert!(why.contains("different subject"), "{why}");
    let why = approval_invalid(export(&with_grant(&ana), "p-1", 10_000, &ran));
    assert!(why.contains("different count"), "{why}");
    let why = approval_invalid(export(&with_grant(&analyst("bob")), "p-1", 150, &ran));
    assert!(why.contains("different principal"), "{why}");
    assert_eq!(
        ran.load(Ordering::SeqCst),
        0,
        "a body ran on a mismatched grant"
    );

    // The refused attempts did not burn the grant: the exact call still runs, once.
    assert_eq!(export(&with_grant(&ana), "p-1", 150, &ran).unwrap(), 150);
    assert_eq!(ran.load(Ordering::SeqCst), 1);
}

pub fn expired_grant_is_refused<B: Backend>(b: &B) {
    let clock = clock();
    let r = replica(b.store(), &clock);
    let ana = analyst("ana");

    // A grant used after its TTL is refused.
    let req = request(&r, &ana, "p-1", 150);
    r.guardrail.approve(&officer("olga"), &req.id).unwrap();
    clock.advance(Duration::from_secs(TTL_SECS));
    let ran = AtomicUsize::new(0);
    let ctx = r.guardrail.context(ana.clone()).approval(req.id.clone());
    let why = approval_invalid(export(&ctx, "p-1", 150, &ran));
    assert!(why.contains("expired"), "{why}");
    assert_eq!(ran.load(Ordering::SeqCst), 0);

    // A request approved after its TTL is refused too; one second before is fine.
    let late = request(&r, &ana, "p-1", 150);
    let early = request(&r, &ana, "p-2", 150);
    clock.advance(Duration::from_secs(TTL_SECS - 1));
    r.guardrail.approve(&officer("olga"), &early.id).unwrap();
    clock.advance(Duration::from_secs(1));
    let err = r.guardrail.approve(&officer("olga"), &late.id).unwrap_err();
    assert_eq!(err, ApprovalError::Expired(late.id.to_string()));
}

pub fn rejected_request_cannot_be_approved_later<B: Backend>(b: &B) {
    let clock = clock();
    let r = replica(b.store(), &clock);
    let ana = analyst("ana");
    let req = request(&r, &ana, "p-1", 150);
    let rejected = r.guardrail.reject(&officer("olga"), &req.id).unwrap();
    assert!(matches!(rejected.state, ApprovalState::Rejected { .. }));
    let err = r.guardrail.approve(&officer("oscar"), &req.id).unwrap_err();
    assert_eq!(
        err,
        ApprovalError::NotPending {
            id: req.id.to_string(),
            state: "rejected"
        }
    );
    let ran = AtomicUsize::new(0);
    let ctx = r.guardrail.context(ana).approval(req.id.clone());
    let why = approval_invalid(export(&ctx, "p-1", 150, &ran));
    assert!(why.contains("rejected"), "{why}");
    assert_eq!(ran.load(Ordering::SeqCst), 0);
    let kinds: Vec<_> = events_of(&r.trail, &req.id)
        .iter()
        .map(|e| (e.record.kind, e.record.decision.clone()))
        .collect();
    assert!(kinds.contains(&(EventKind::ApprovalRejected, Some(Arc::from("rejected")))));
    assert!(kinds.contains(&(EventKind::ApprovalGranted, Some(Arc::from("refused")))));
}

pub fn replicas_racing_to_consume_one_grant_exactly_one_wins<B: Backend>(b: &B) {
    const ROUNDS: usize = 50;
    const THREADS_PER_REPLICA: usize = 3;
    let clock = clock();
    let one = replica(b.store(), &clock);
    let two = replica(b.replica(), &clock);
    let ana = analyst("ana");
    for round in 0..ROUNDS {
        let subject = format!("p-{round}");
        // Requested on one replica, approved on the other.
        let req = request(&one, &ana, &subject, 150);
        two.guardrail.approve(&officer("olga"), &req.id).unwrap();
        let ran = AtomicUsize::new(0);
        let wins = AtomicUsize::new(0);
        let barrier = Barrier::new(2 * THREADS_PER_REPLICA);
        std::thread::scope(|s| {
            for i in 0..2 * THREADS_PER_REPLICA {
                let r = if i % 2 == 0 { &one } else { &two };
                let (ana, req, subject) = (&ana, &req, &subject);
                let (ran, wins, barrier) = (&ran, &wins, &barrier);
                s.spawn(move || {
                    let ctx = r.guardrail.context(ana.clone()).approval(req.id.clone());
                    barrier.wait();
                    match export(&ctx, subject, 150, ran) {
                        Ok(_) => {
                            wins.fetch_add(1, Ordering::SeqCst);
                        }
                        Err(e) => {
                            let why = approval_invalid(Err(e));
                            assert!(why.contains("already used"), "round {round}: {why}");
                        }
                    }
                });
            }
        });
        assert_eq!(wins.load(Ordering::SeqCst), 1, "round {round}: winners");
        assert_eq!(ran.load(Ordering::SeqCst), 1, "round {round}: bodies run");
    }
    // Exactly one consumption event per round across both replicas' trails.
    let consumed = [&one, &two]
        .iter()
        .flat_map(|r| r.trail.events())
        .filter(|e| e.record.kind == EventKind::ApprovalConsumed)
        .count();
    assert_eq!(consumed, ROUNDS);
}

pub fn approvers_racing_to_decide_exactly_one_wins<B: Backend>(b: &B) {
    let clock = clock();
    let one = replica(b.store(), &clock);
    let two = replica(b.replica(), &clock);
    for round in 0..20 {
        let req = request(&one, &analyst("ana"), &format!("p-{round}"), 150);
        let barrier = Barrier::new(2);
        let (a, b2) = std::thread::scope(|s| {
            let a = s.spawn(|| {
                barrier.wait();
                one.guardrail.approve(&officer("olga"), &req.id)
            });
            let b2 = s.spawn(|| {
                barrier.wait();
                two.guardrail.reject(&officer("oscar"), &req.id)
            });
            (a.join().unwrap(), b2.join().unwrap())
        });
        assert!(a.is_ok() != b2.is_ok(), "round {round}: {a:?} / {b2:?}");
        let loser = a.err().or(b2.err()).unwrap();
        assert!(
            matches!(loser, ApprovalError::NotPending { .. }),
            "round {round}: {loser:?}"
        );
    }
}

fn binding(subject: &str, count: u64) -> ApprovalBinding {
    ApprovalBinding {
        action: Arc::from("reports::export_cohort"),
        principal: Arc::from("ana"),
        subject: Some(Arc::from(subject)),
        count: Some(count),
        scope: CallScope::default(),
    }
}

fn pending(id: &str, at: u64, ttl: u64, b: ApprovalBinding) -> ApprovalRequest {
    ApprovalRequest {
        id: ApprovalId::new(id),
        action: b.action.clone(),
        binding: b,
        requested_at: Timestamp(at),
        expires_at: Timestamp(at + ttl),
        state: ApprovalState::Pending,
    }
}

pub fn store_transitions_are_checked<B: Backend>(b: &B) {
    let store = b.store();
    let t = 1_000_000_000_000u64;
    let req = pending("apr-t1", t, 100, binding("tok-1", 7));
    store.insert(&req).unwrap();
    assert_eq!(
        store.get(&req.id).unwrap().as_ref(),
        Some(&req),
        "round trip"
    );
    // Consuming a pending request fails and changes nothing.
    assert_eq!(
        store.consume(&req.id, &req.binding, Timestamp(t + 1)),
        Err(ApprovalError::NotGranted("apr-t1".into()))
    );
    let granted = store
        .settle(&req.id, "olga", true, Timestamp(t + 2))
        .unwrap();
    assert_eq!(
        granted.state,
        ApprovalState::Granted {
            approver: Arc::from("olga"),
            at: Timestamp(t + 2)
        }
    );
    assert_eq!(store.get(&req.id).unwrap().unwrap().state, granted.state);
    // A second decision is refused.
    assert_eq!(
        store.settle(&req.id, "oscar", false, Timestamp(t + 3)),
        Err(ApprovalError::NotPending {
            id: "apr-t1".into(),
            state: "granted"
        })
    );
    // Mismatched bindings, one field at a time.
    let mut other = req.binding.clone();
    other.action = Arc::from("reports::other");
    assert_eq!(
        store.consume(&req.id, &other, Timestamp(t + 4)),
        Err(ApprovalError::Mismatch {
            id: "apr-t1".into(),
            what: "action"
        })
    );
    let mut none_subject = req.binding.clone();
    none_subject.subject = None;
    assert_eq!(
        store.consume(&req.id, &none_subject, Timestamp(t + 4)),
        Err(ApprovalError::Mismatch {
            id: "apr-t1".into(),
            what: "subject"
        })
    );
    let mut none_count = req.binding.clone();
    none_count.count = None;
    assert_eq!(
        store.consume(&req.id, &none_count, Timestamp(t + 4)),
        Err(ApprovalError::Mismatch {
            id: "apr-t1".into(),
            what: "count"
        })
    );
    // Expiry is exclusive: at `expires_at` the grant is dead.
    assert_eq!(
        store.consume(&req.id, &req.binding, Timestamp(t + 100)),
        Err(ApprovalError::Expired("apr-t1".into()))
    );
    let used = store
        .consume(&req.id, &req.binding, Timestamp(t + 99))
        .unwrap();
    assert_eq!(
        used.state,
        ApprovalState::Consumed {
            at: Timestamp(t + 99)
        }
    );
    assert_eq!(
        store.consume(&req.id, &req.binding, Timestamp(t + 99)),
        Err(ApprovalError::AlreadyUsed("apr-t1".into()))
    );
    // Requests without subject or count round-trip and bind on `None`.
    let mut b2 = binding("x", 1);
    b2.subject = None;
    b2.count = None;
    let bare = pending("apr-t2", t, 100, b2.clone());
    store.insert(&bare).unwrap();
    assert_eq!(store.get(&bare.id).unwrap().as_ref(), Some(&bare));
    store.settle(&bare.id, "olga", true, Timestamp(t)).unwrap();
    let mut with_count = b2.clone();
    with_count.count = Some(1);
    assert!(matches!(
        store.consume(&bare.id, &with_count, Timestamp(t)),
        Err(ApprovalError::Mismatch { what: "count", .. })
    ));
    store.consume(&bare.id, &b2, Timestamp(t)).unwrap();
    // A rejected request cannot be consumed.
    let rej = pending("apr-t3", t, 100, binding("tok-3", 1));
    store.insert(&rej).unwrap();
    store.settle(&rej.id, "olga", false, Timestamp(t)).unwrap();
    assert_eq!(
        store.consume(&rej.id, &rej.binding, Timestamp(t)),
        Err(ApprovalError::Rejected("apr-t3".into()))
    );
}

pub fn duplicate_and_unknown_ids_are_errors<B: Backend>(b: &B) {
    let store = b.store();
    let req = pending("apr-d1", 5, 100, binding("tok", 1));
    store.insert(&req).unwrap();
    assert!(
        matches!(store.insert(&req), Err(ApprovalError::Store(m)) if m.contains("already exists"))
    );
    let missing = ApprovalId::new("apr-missing");
    assert_eq!(store.get(&missing).unwrap(), None);
    assert_eq!(
        store.settle(&missing, "olga", true, Timestamp(6)),
        Err(ApprovalError::NotFound("apr-missing".into()))
    );
    assert_eq!(
        store.consume(&missing, &req.binding, Timestamp(6)),
        Err(ApprovalError::NotFound("apr-missing".into()))
    );
}

pub fn pending_count_follows_decisions<B: Backend>(b: &B) {
    let store = b.store();
    let other = b.replica();
    assert_eq!(store.pending().unwrap(), 0);
    for i in 0..3 {
        store
            .insert(&pending(&format!("apr-p{i}"), 5, 100, binding("tok", 1)))
            .unwrap();
    }
    assert_eq!(
        other.pending().unwrap(),
        3,
        "a replica sees the same requests"
    );
    other
        .settle(&ApprovalId::new("apr-p0"), "olga", true, Timestamp(6))
        .unwrap();
    store
        .settle(&ApprovalId::new("apr-p1"), "olga", false, Timestamp(6))
        .unwrap();
    assert_eq!(store.pending().unwrap(), 1);
}

pub fn listing_shows_decidable_requests_oldest_first<B: Backend>(b: &B) {
    let store = b.store();
    let other = b.replica();
    // Requested at 20, 10, 10 (a tie, ordered by id), one expired at 15, one decided.
    let mut scoped = binding("tok-2", 9);
    scoped.scope = CallScope {
        purpose: Some(Arc::from("research")),
        endpoint: Some(Arc::from("system")),
        agent: Some(Arc::from("clinic-assistant")),
        session: None,
        rule: Some(Arc::from("research-export")),
        reveal: Arc::from("diagnosis"),
        arguments: Some(Arc::from("hmac-sha256:ab12")),
        policy_hash: Arc::from("c0ffee"),
    };
    let late = pending("apr-l2", 20, 100, scoped);
    let early = pending("apr-l3", 10, 100, binding("tok-3", 1));
    let tie = pending("apr-l1", 10, 100, binding("tok-1", 1));
    let expired = pending("apr-l0", 5, 10, binding("tok-0", 1));
    let granted = pending("apr-l4", 1, 100, binding("tok-4", 1));
    for r in [&late, &early, &tie, &expired, &granted] {
        store.insert(r).unwrap();
    }
    store
        .settle(&granted.id, "olga", true, Timestamp(2))
        .unwrap();
    let listed = other.list_pending(Timestamp(16), 10).unwrap();
    assert_eq!(
        listed,
        vec![tie.clone(), early.clone(), late.clone()],
        "pending and unexpired only, oldest first, every field as inserted"
    );
    assert_eq!(
        store.list_pending(Timestamp(16), 2).unwrap(),
        vec![tie, early],
        "the limit keeps the oldest"
    );
    // At the expiry instant a request is no longer decidable, so it is not listed.
    assert_eq!(store.list_pending(Timestamp(110), 10).unwrap(), vec![late]);
    assert!(store.list_pending(Timestamp(120), 10).unwrap().is_empty());

    // Through the guardrail: approvers only, by the guardrail's clock.
    let clock = clock();
    let r = replica(b.store(), &clock);
    let req = request(&r, &analyst("ana"), "p-1", 150);
    assert_eq!(
        r.guardrail.pending_approvals(&officer("olga"), 10).unwrap(),
        vec![req.clone()]
    );
    assert!(matches!(
        r.guardrail.pending_approvals(&analyst("ana"), 10),
        Err(ApprovalError::NotApprover { principal, .. }) if principal == "ana"
    ));
    r.guardrail.approve(&officer("olga"), &req.id).unwrap();
    assert!(
        r.guardrail
            .pending_approvals(&officer("olga"), 10)
            .unwrap()
            .is_empty(),
        "a decided request leaves the queue"
    );
    let again = request(&r, &analyst("ana"), "p-2", 150);
    assert_eq!(
        r.guardrail.pending_approvals(&officer("olga"), 10).unwrap(),
        vec![again]
    );
    clock.advance(Duration::from_secs(TTL_SECS));
    assert!(
        r.guardrail
            .pending_approvals(&officer("olga"), 10)
            .unwrap()
            .is_empty(),
        "an expired request leaves the queue"
    );
}

// -------------------------------------------------------------------------------------------
// A grant is bound to the whole call, not only to who, whom and how many.

/// Research exports need approval every time; one rule admits two purposes and two endpoints,
/// so a call can differ from the approved one in exactly one of them and still be allowed.
pub const SCOPED_POLICY: &str = r#"
version = "approvals-scoped-1"

[approval]
approver_roles = ["privacy_officer"]
ttl_secs = 600

[[rule]]
id = "research-export"
effect = "allow"
actions = ["reports::export_research"]
roles = ["analyst"]
endpoints = ["system", "admin"]
purposes = ["research", "public_health"]
reveal = ["diagnosis"]
approval = "always"
"#;

/// The same call decided by a rule with another id.
const SCOPED_RENAMED_RULE: &str = r#"
version = "approvals-scoped-1"

[approval]
approver_roles = ["privacy_officer"]
ttl_secs = 600

[[rule]]
id = "research-export-v2"
effect = "allow"
actions = ["reports::export_research"]
roles = ["analyst"]
endpoints = ["system", "admin"]
purposes = ["research", "public_health"]
reveal = ["diagnosis"]
approval = "always"
"#;

/// The same rule revealing more.
const SCOPED_WIDER_REVEAL: &str = r#"
version = "approvals-scoped-1"

[approval]
approver_roles = ["privacy_officer"]
ttl_secs = 600

[[rule]]
id = "research-export"
effect = "allow"
actions = ["reports::export_research"]
roles = ["analyst"]
endpoints = ["system", "admin"]
purposes = ["research", "public_health"]
reveal = ["diagnosis", "birth_date"]
approval = "always"
"#;

pub static EXPORT_RESEARCH: ActionDescriptor =
    ActionDescriptor::new("reports::export_research", ActionKind::Export)
        .resource("cohort")
        .roles(&["analyst"])
        .located(module_path!(), file!(), line!())
        .function("export_research");

/// A research export of `cohort` (a recorded argument, `record = [cohort]`) about `subject`.
pub fn export_research(
    ctx: &Context,
    subject: &str,
    cohort: &str,
    ran: &AtomicUsize,
) -> Result<u64, GuardError> {
    let subject: &dyn Display = &subject;
    let cohort: &dyn Display = &cohort;
    let call = begin(
        &EXPORT_RESEARCH,
        ctx,
        Some(subject),
        CountArg::Value(40),
        &[("cohort", cohort)],
    )?;
    ran.fetch_add(1, Ordering::SeqCst);
    call.finish::<u64, GuardError>(Ok(40))
}

pub fn grant_is_bound_to_purpose_endpoint_arguments_rule_and_policy<B: Backend>(b: &B) {
    const SUBJECT: &str = "p-4471";
    const COHORT: &str = "cohort-diabetes-2026";
    let clock = clock();
    let r = replica_with(b.store(), &clock, SCOPED_POLICY);
    let policy_hash = r.guardrail.policy().sha256().to_owned();
    let ana = analyst("ana");
    let ctx = |endpoint: Endpoint, purpose: Purpose| {
        r.guardrail
            .context(ana.clone())
            .endpoint(endpoint)
            .purpose(purpose)
    };
    let ran = AtomicUsize::new(0);

    // The request, for a research export of one cohort from the system endpoint.
    let req = match export_research(
        &ctx(Endpoint::System, Purpose::Research),
        SUBJECT,
        COHORT,
        &ran,
    ) {
        Err(GuardError::ApprovalRequired { request }) => *request,
        other => panic!("expected ApprovalRequired, got {other:?}"),
    };
    let scope = req.binding.scope.clone();
    assert_eq!(scope.purpose.as_deref(), Some("research"));
    assert_eq!(scope.endpoint.as_deref(), Some("system"));
    assert_eq!(scope.rule.as_deref(), Some("research-export"));
    assert_eq!(&*scope.reveal, "diagnosis");
    assert_eq!(&*scope.policy_hash, policy_hash);
    let arguments = scope
        .arguments
        .clone()
        .expect("the recorded argument is bound");
    assert!(!arguments.contains(COHORT), "{arguments}");
    r.guardrail.approve(&officer("olga"), &req.id).unwrap();

    let with_grant = |c: Context| c.approval(req.id.clone());
    let attempt = |c: Context, cohort: &str| export_research(&with_grant(c), SUBJECT, cohort, &ran);
    let refused = |what: &str, result: Result<u64, GuardError>| {
        let why = approval_invalid(result);
        assert!(
            why.contains(&format!("different {what}")),
            "a call differing in its {what}: {why}"
        );
        // Not consumed: the grant is still there to be used.
        let stored = r.guardrail.approval_store().get(&req.id).unwrap().unwrap();
        assert!(
            matches!(stored.state, ApprovalState::Granted { .. }),
            "after a call differing in its {what}: {:?}",
            stored.state
        );
    };

    // Exactly one field differs in each attempt.
    refused(
        "purpose",
        attempt(ctx(Endpoint::System, Purpose::PublicHealth), COHORT),
    );
    refused(
        "endpoint",
        attempt(ctx(Endpoint::Admin, Purpose::Research), COHORT),
    );
    refused(
        "recorded arguments",
        attempt(ctx(Endpoint::System, Purpose::Research), "cohort-everyone"),
    );
    // After a reload, the same call is decided by another rule, or the same rule reveals
    // more, or only the policy text changed.
    let policy_only = SCOPED_POLICY.replace("approvals-scoped-1", "approvals-scoped-2");
    for (text, what) in [
        (SCOPED_RENAMED_RULE, "rule"),
        (SCOPED_WIDER_REVEAL, "reveal"),
        (policy_only.as_str(), "policy"),
    ] {
        r.guardrail
            .reload(Policy::from_toml_str(text).unwrap())
            .unwrap();
        refused(
            what,
            attempt(ctx(Endpoint::System, Purpose::Research), COHORT),
        );
    }
    assert_eq!(
        ran.load(Ordering::SeqCst),
        0,
        "a body ran on a mismatched grant"
    );

    // Back under the approved policy, the approved call runs, once.
    r.guardrail
        .reload(Policy::from_toml_str(SCOPED_POLICY).unwrap())
        .unwrap();
    assert_eq!(
        attempt(ctx(Endpoint::System, Purpose::Research), COHORT).unwrap(),
        40
    );
    assert_eq!(ran.load(Ordering::SeqCst), 1);
    let why = approval_invalid(attempt(ctx(Endpoint::System, Purpose::Research), COHORT));
    assert!(why.contains("already used"), "{why}");
    assert_eq!(ran.load(Ordering::SeqCst), 1);

    // The approver sees what the grant is bound to, in the approval events of the trail.
    let events = events_of(&r.trail, &req.id);
    let approval_steps: Vec<_> = events
        .iter()
        .filter(|e| {
            matches!(
                e.record.kind,
                EventKind::ApprovalGranted | EventKind::ApprovalConsumed
            )
        })
        .collect();
    assert_eq!(approval_steps.len(), 2, "{events:#?}");
    for e in approval_steps {
        let detail = |k: &str| e.record.detail.get(k).map(String::as_str);
        assert_eq!(detail("bound.purpose"), Some("research"), "{e:?}");
        assert_eq!(detail("bound.endpoint"), Some("system"), "{e:?}");
        assert_eq!(detail("bound.rule"), Some("research-export"), "{e:?}");
        assert_eq!(detail("bound.reveal"), Some("diagnosis"), "{e:?}");
        assert_eq!(detail("bound.arguments"), Some(&*arguments), "{e:?}");
        assert_eq!(
            detail("bound.policy_sha256"),
            Some(policy_hash.as_str()),
            "{e:?}"
        );
    }
    // Labels and tokens only: neither the patient nor the cohort appears raw.
    let lines = r.trail.to_lines();
    for raw in [SUBJECT, COHORT] {
        assert!(!lines.contains(raw), "`{raw}` in the trail");
    }
}
