//! Behaviour of `#[phi_action]` end to end: a real policy, a guardrail with a memory sink, and
//! side-effect counters that prove whether a body ran.
//!
//! Every fail-closed path denies, leaves the body unrun and leaves the denial in the trail
//! (except when the sink itself failed); an allowed call leaves a decision and an outcome
//! event under one request id; a dropped future leaves `cancelled`, a panic leaves `panic`.

use std::future::Future;
use std::pin::pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context as TaskContext, Waker};

use guardrail_core::audit::{AuditEvent, EventKind, Outcome};
use guardrail_core::prelude::*;
use guardrail_core::{DenyReason, Endpoint, Purpose};

const POLICY: &str = r#"
version = "guarded-test-1"

[[rule]]
id = "providers-treat"
effect = "allow"
actions = ["guarded.chart.*"]
roles = ["provider"]
endpoints = ["provider"]
jurisdictions = ["US-*"]
purposes = ["treatment"]

[[rule]]
id = "patients-own-chart"
effect = "allow"
actions = ["guarded.portal.read_own"]
roles = ["patient"]
endpoints = ["patient"]
self_only = true

[[rule]]
id = "billing-export"
effect = "allow"
actions = ["guarded.billing.export"]
roles = ["billing"]
max_count = 100
"#;

#[derive(Debug)]
enum AppError {
    Guard(GuardError),
    NotFound,
}

impl From<GuardError> for AppError {
    fn from(e: GuardError) -> Self {
        AppError::Guard(e)
    }
}

impl AppError {
    fn guard(self) -> GuardError {
        match self {
            AppError::Guard(e) => e,
            AppError::NotFound => panic!("expected a guard error, got the body's `NotFound`"),
        }
    }
}

// ---- the guarded actions under test ----

#[phi_action(kind = "read", roles = ["provider", "nurse"], resource = "patient_record",
             name = "guarded.chart.read", subject = patient_id, phi = ["name", "diagnosis"])]
fn read_chart(ctx: &Context, runs: &AtomicUsize, patient_id: &str) -> Result<String, AppError> {
    runs.fetch_add(1, Ordering::SeqCst);
    Ok(format!("chart of {patient_id}"))
}

#[phi_action(kind = "read", role = "provider", name = "guarded.unlisted.read")]
fn unlisted(ctx: &Context, runs: &AtomicUsize) -> Result<(), AppError> {
    runs.fetch_add(1, Ordering::SeqCst);
    Ok(())
}

#[phi_action(kind = "read", role = "patient", name = "guarded.portal.read_own", subject = patient_id)]
fn read_own(ctx: &Context, runs: &AtomicUsize, patient_id: &str) -> Result<String, AppError> {
    runs.fetch_add(1, Ordering::SeqCst);
    Ok(format!("own chart of {patient_id}"))
}

#[phi_action(kind = "export", role = "billing", name = "guarded.billing.export", count = ids.len())]
fn export(ctx: &Context, runs: &AtomicUsize, ids: &[u32]) -> Result<usize, AppError> {
    runs.fetch_add(1, Ordering::SeqCst);
    Ok(ids.len())
}

#[phi_action(kind = "export", role = "billing", name = "guarded.billing.export_signed", count = n)]
fn export_signed(ctx: &Context, runs: &AtomicUsize, n: i64) -> Result<i64, AppError> {
    runs.fetch_add(1, Ordering::SeqCst);
    Ok(n)
}

#[phi_action(kind = "read", role = "provider", name = "guarded.chart.lookup", subject = patient_id)]
fn lookup(ctx: &Context, runs: &AtomicUsize, patient_id: &str) -> Result<String, AppError> {
    runs.fetch_add(1, Ordering::SeqCst);
    if patient_id.is_empty() {
        return Err(AppError::NotFound);
    }
    Ok(patient_id.to_owned())
}

#[phi_action(kind = "update", role = "provider", name = "guarded.chart.crash")]
fn crash(ctx: &Context, runs: &AtomicUsize) -> Result<(), AppError> {
    runs.fetch_add(1, Ordering::SeqCst);
    panic!("body blew up");
}

#[phi_action(kind = "update", role = "provider", name = "guarded.chart.slow_update")]
async fn slow_update(ctx: &Context, runs: &AtomicUsize) -> Result<(), AppError> {
    runs.fetch_add(1, Ordering::SeqCst);
    std::future::pending::<()>().await;
    Ok(())
}

#[phi_action(kind = "read", role = "provider", name = "guarded.chart.read_async",
             subject = patient_id, record = [visit_id])]
async fn read_async(
    ctx: &Context,
    runs: &AtomicUsize,
    patient_id: &str,
    visit_id: u64,
) -> Result<String, AppError> {
    runs.fetch_add(1, Ordering::SeqCst);
    tokio::task::yield_now().await;
    Ok(format!("{patient_id}/{visit_id}"))
}

struct Ward {
    beds: Vec<String>,
}

/// A borrow into the ward handed out through the guard (holds no PHI of its own).
struct Bed<'a>(&'a mut String);

impl Redact for Bed<'_> {
    fn redact(&mut self, _: &guardrail_core::Masker<'_>) {}
}

impl Ward {
    #[phi_action(kind = "update", role = "provider", name = "guarded.chart.assign_bed")]
    fn assign(
        &mut self,
        ctx: &Context,
        runs: &AtomicUsize,
        who: &str,
    ) -> Result<Bed<'_>, AppError> {
        runs.fetch_add(1, Ordering::SeqCst);
        self.beds.push(who.to_owned());
        self.beds.last_mut().map(Bed).ok_or(AppError::NotFound)
    }
}

// ---- fixture ----

fn key() -> AuditKey {
    AuditKey::from_bytes(b"guarded-test-key-0123456789").expect("key")
}

struct Fixture {
    guardrail: Guardrail,
    sink: MemorySink,
}

fn fixture() -> Fixture {
    let policy = Policy::from_toml_str(POLICY).expect("the test policy loads");
    let sink = MemorySink::new();
    let guardrail = Guardrail::builder()
        .policy(policy)
        .audit(sink.clone())
        .audit_key(key())
        .build()
        .expect("guardrail builds");
    Fixture { guardrail, sink }
}

impl Fixture {
    /// A provider in California treating from the provider app: allowed by `providers-treat`.
    fn provider(&self) -> Context {
        self.guardrail
            .context(
                Principal::new("dr-grey")
                    .role("provider")
                    .jurisdiction("US-CA"),
            )
            .endpoint(Endpoint::Provider)
            .purpose(Purpose::Treatment)
    }

    fn events(&self) -> Vec<AuditEvent> {
        self.sink.events()
    }

    /// Asserts the trail holds exactly one event: a denial for `action` with `reason`.
    fn assert_one_denial(&self, action: &str, reason: &str) {
        let events = self.events();
        assert_eq!(events.len(), 1, "exactly the decision event: {events:#?}");
        let r = &events[0].record;
        assert_eq!(r.kind, EventKind::Decision);
        assert_eq!(r.action.as_deref(), Some(action));
        assert_eq!(r.decision.as_deref(), Some("deny"));
        assert_eq!(r.reason.as_deref(), Some(reason));
        assert_eq!(r.outcome, None, "a denied call has no outcome");
    }
}

fn deny_reason(e: AppError) -> DenyReason {
    let e = e.guard();
    e.deny_reason()
        .cloned()
        .unwrap_or_else(|| panic!("expected a denial, got {e:?}"))
}

// ---- fail-closed paths ----

#[test]
fn no_matching_rule_denies_and_records() {
    let f = fixture();
    let runs = AtomicUsize::new(0);
    let err = unlisted(&f.provider(), &runs).unwrap_err();
    let reason = deny_reason(err);
    assert_eq!(reason, DenyReason::NoMatchingRule);
    assert_eq!(runs.load(Ordering::SeqCst), 0, "the body must not run");
    f.assert_one_denial("guarded.unlisted.read", &reason.to_string());
}

#[test]
fn wrong_role_denies_and_records() {
    let f = fixture();
    let runs = AtomicUsize::new(0);
    // The code allows nurses, the policy only providers: the policy narrows.
    let nurse = f
        .guardrail
        .context(Principal::new("rn-kim").role("nurse").jurisdiction("US-CA"))
        .endpoint(Endpoint::Provider)
        .purpose(Purpose::Treatment);
    let reason = deny_reason(read_chart(&nurse, &runs, "p-100").unwrap_err());
    assert_eq!(reason, DenyReason::RoleNotAllowed);
    assert_eq!(runs.load(Ordering::SeqCst), 0);
    f.assert_one_denial("guarded.chart.read", &reason.to_string());
}

#[test]
fn role_the_code_does_not_allow_is_denied_even_if_nothing_else_is_wrong() {
    let f = fixture();
    let runs = AtomicUsize::new(0);
    let billing = f
        .guardrail
        .context(Principal::new("bo-1").role("billing").jurisdiction("US-CA"))
        .endpoint(Endpoint::Provider)
        .purpose(Purpose::Treatment);
    let reason = deny_reason(read_chart(&billing, &runs, "p-100").unwrap_err());
    assert_eq!(reason, DenyReason::RoleNotAllowed);
    assert_eq!(runs.load(Ordering::SeqCst), 0);
    f.assert_one_denial("guarded.chart.read", &reason.to_string());
}

#[test]
fn wrong_endpoint_denies_and_records() {
    let f = fixture();
    let runs = AtomicUsize::new(0);
    let ctx = f.provider().endpoint(Endpoint::Patient);
    let reason = deny_reason(read_chart(&ctx, &runs, "p-100").unwrap_err());
    assert_eq!(reason, DenyReason::EndpointNotAllowed);
    assert_eq!(runs.load(Ordering::SeqCst), 0);
    f.assert_one_denial("guarded.chart.read", &reason.to_string());
}

#[test]
fn wrong_jurisdiction_denies_and_records() {
    let f = fixture();
    let runs = AtomicUsize::new(0);
    let ctx = f
        .guardrail
        .context(
            Principal::new("dr-tao")
                .role("provider")
                .jurisdiction("CA-ON"),
        )
        .endpoint(Endpoint::Provider)
        .purpose(Purpose::Treatment);
    let reason = deny_reason(read_chart(&ctx, &runs, "p-100").unwrap_err());
    assert_eq!(reason, DenyReason::JurisdictionNotAllowed);
    assert_eq!(runs.load(Ordering::SeqCst), 0);
    f.assert_one_denial("guarded.chart.read", &reason.to_string());
}

#[test]
fn wrong_purpose_denies_and_records() {
    let f = fixture();
    let runs = AtomicUsize::new(0);
    let ctx = f.provider().purpose(Purpose::Payment);
    let reason = deny_reason(read_chart(&ctx, &runs, "p-100").unwrap_err());
    assert_eq!(reason, DenyReason::PurposeNotAllowed);
    assert_eq!(runs.load(Ordering::SeqCst), 0);
    f.assert_one_denial("guarded.chart.read", &reason.to_string());
}

#[test]
fn patient_touching_another_patients_subject_is_denied_and_recorded() {
    let f = fixture();
    let runs = AtomicUsize::new(0);
    let patient = f
        .guardrail
        .context(Principal::new("user-17").role("patient").patient("p-100"))
        .endpoint(Endpoint::Patient);
    let reason = deny_reason(read_own(&patient, &runs, "p-200").unwrap_err());
    assert_eq!(reason, DenyReason::NotOwnSubject);
    assert_eq!(runs.load(Ordering::SeqCst), 0);
    f.assert_one_denial("guarded.portal.read_own", &reason.to_string());

    // The same patient reading their own chart is allowed: the denial was about the subject.
    assert_eq!(
        read_own(&patient, &runs, "p-100").unwrap(),
        "own chart of p-100"
    );
    assert_eq!(runs.load(Ordering::SeqCst), 1);
}

#[test]
fn count_over_the_limit_denies_and_records() {
    let f = fixture();
    let runs = AtomicUsize::new(0);
    let billing = f.guardrail.context(Principal::new("bo-1").role("billing"));
    let ids: Vec<u32> = (0..101).collect();
    let reason = deny_reason(export(&billing, &runs, &ids).unwrap_err());
    assert_eq!(
        reason,
        DenyReason::CountOverLimit {
            count: 101,
            limit: 100
        }
    );
    assert_eq!(runs.load(Ordering::SeqCst), 0);
    f.assert_one_denial("guarded.billing.export", &reason.to_string());
    assert_eq!(f.events()[0].record.count, Some(101));

    // At the limit the export runs.
    assert_eq!(export(&billing, &runs, &ids[..100]).unwrap(), 100);
    assert_eq!(runs.load(Ordering::SeqCst), 1);
}

#[test]
fn negative_count_is_refused_and_recorded() {
    let f = fixture();
    let runs = AtomicUsize::new(0);
    let billing = f.guardrail.context(Principal::new("bo-1").role("billing"));
    let err = export_signed(&billing, &runs, -1).unwrap_err().guard();
    assert!(
        matches!(err.deny_reason(), Some(DenyReason::PolicyFault { .. })),
        "{err:?}"
    );
    assert_eq!(runs.load(Ordering::SeqCst), 0);
    assert_eq!(f.events()[0].record.decision.as_deref(), Some("deny"));
}

#[test]
fn missing_context_value_denies_and_records() {
    let f = fixture();
    let runs = AtomicUsize::new(0);
    let no_purpose = f
        .guardrail
        .context(
            Principal::new("dr-grey")
                .role("provider")
                .jurisdiction("US-CA"),
        )
        .endpoint(Endpoint::Provider);
    let err = read_chart(&no_purpose, &runs, "p-100").unwrap_err().guard();
    assert!(
        matches!(
            err,
            GuardError::MissingContext {
                action: "guarded.chart.read",
                field: "purpose"
            }
        ),
        "{err:?}"
    );
    assert_eq!(runs.load(Ordering::SeqCst), 0);
    f.assert_one_denial(
        "guarded.chart.read",
        &DenyReason::MissingContext { field: "purpose" }.to_string(),
    );
}

#[test]
fn a_sink_failing_on_the_decision_event_denies() {
    let f = fixture();
    let runs = AtomicUsize::new(0);
    f.sink.fail_with(Some("disk full"));
    let err = read_chart(&f.provider(), &runs, "p-100")
        .unwrap_err()
        .guard();
    assert!(
        matches!(
            &err,
            GuardError::AuditUnavailable {
                action: "guarded.chart.read",
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(runs.load(Ordering::SeqCst), 0, "no audit, no access");
    f.sink.fail_with(None);
    assert!(f.events().is_empty(), "the failing sink recorded nothing");

    // Healed, the same call runs: it was the sink that denied.
    read_chart(&f.provider(), &runs, "p-100").unwrap();
    assert_eq!(runs.load(Ordering::SeqCst), 1);
}

// ---- allowed paths and outcomes ----

#[test]
fn allowed_call_runs_once_and_records_decision_then_outcome() {
    let f = fixture();
    let runs = AtomicUsize::new(0);
    let ctx = f.provider();
    assert_eq!(read_chart(&ctx, &runs, "p-100").unwrap(), "chart of p-100");
    assert_eq!(runs.load(Ordering::SeqCst), 1);

    let events = f.events();
    assert_eq!(events.len(), 2, "{events:#?}");
    let (decision, outcome) = (&events[0], &events[1]);
    assert_eq!(decision.record.kind, EventKind::Decision);
    assert_eq!(decision.record.decision.as_deref(), Some("allow"));
    assert_eq!(decision.record.rule.as_deref(), Some("providers-treat"));
    assert_eq!(
        decision.record.action.as_deref(),
        Some("guarded.chart.read")
    );
    assert_eq!(decision.record.action_kind.as_deref(), Some("read"));
    assert_eq!(decision.record.resource.as_deref(), Some("patient_record"));
    assert_eq!(outcome.record.kind, EventKind::Outcome);
    assert_eq!(outcome.record.outcome, Some(Outcome::Ok));
    assert_eq!(
        decision.record.request_id.as_deref(),
        Some(ctx.get_request_id())
    );
    assert_eq!(outcome.record.request_id, decision.record.request_id);
    assert_eq!(outcome.record.decision_seq, Some(decision.seq));
    // The subject is the keyed token of the id under the guardrail's key, never the raw id.
    let expected = key().token(AuditKey::SUBJECT_DOMAIN, "p-100");
    assert_eq!(decision.record.subject.as_deref(), Some(expected.as_str()));
    assert_eq!(outcome.record.subject, decision.record.subject);
    assert!(!f.sink.to_lines().contains("p-100"));
}

#[test]
fn body_error_is_returned_and_recorded_as_error() {
    let f = fixture();
    let runs = AtomicUsize::new(0);
    let err = lookup(&f.provider(), &runs, "").unwrap_err();
    assert!(matches!(err, AppError::NotFound), "{err:?}");
    assert_eq!(runs.load(Ordering::SeqCst), 1);
    let events = f.events();
    assert_eq!(events.len(), 2);
    assert_eq!(events[0].record.decision.as_deref(), Some("allow"));
    assert_eq!(events[1].record.outcome, Some(Outcome::Error));
}

#[test]
fn panicking_body_records_panic_and_the_panic_reaches_the_caller() {
    let f = fixture();
    let runs = AtomicUsize::new(0);
    let ctx = f.provider();
    // The closure only borrows the context and the counter, both read again after the
    // panic on purpose.
    let caught =
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| crash(&ctx, &runs))).unwrap_err();
    let message = caught
        .downcast_ref::<&str>()
        .copied()
        .expect("the body's panic payload");
    assert_eq!(message, "body blew up");
    assert_eq!(runs.load(Ordering::SeqCst), 1);
    let events = f.events();
    assert_eq!(events.len(), 2, "{events:#?}");
    assert_eq!(events[1].record.kind, EventKind::Outcome);
    assert_eq!(events[1].record.outcome, Some(Outcome::Panic));
    assert_eq!(
        events[1].record.request_id.as_deref(),
        Some(ctx.get_request_id())
    );
}

#[test]
fn future_dropped_half_way_records_cancelled() {
    let f = fixture();
    let runs = AtomicUsize::new(0);
    let ctx = f.provider();
    {
        let mut fut = pin!(slow_update(&ctx, &runs));
        let mut cx = TaskContext::from_waker(Waker::noop());
        assert!(fut.as_mut().poll(&mut cx).is_pending());
        assert_eq!(runs.load(Ordering::SeqCst), 1, "the body started");
        assert_eq!(f.events().len(), 1, "only the decision so far");
    } // dropped here, half-way through the body
    let events = f.events();
    assert_eq!(events.len(), 2, "{events:#?}");
    assert_eq!(events[0].record.decision.as_deref(), Some("allow"));
    assert_eq!(events[1].record.outcome, Some(Outcome::Cancelled));
}

#[tokio::test]
async fn timed_out_future_records_cancelled() {
    let f = fixture();
    let runs = AtomicUsize::new(0);
    let ctx = f.provider();
    let res = tokio::time::timeout(
        std::time::Duration::from_millis(20),
        slow_update(&ctx, &runs),
    )
    .await;
    assert!(res.is_err(), "the body never completes");
    assert_eq!(runs.load(Ordering::SeqCst), 1);
    let events = f.events();
    assert_eq!(events.len(), 2);
    assert_eq!(events[1].record.outcome, Some(Outcome::Cancelled));
}

#[tokio::test]
async fn async_call_is_allowed_and_records_only_opted_in_arguments_as_tokens() {
    let f = fixture();
    let runs = AtomicUsize::new(0);
    let ctx = f.provider();
    let fut = read_async(&ctx, &runs, "p-100", 987_654_321);
    assert_send(&fut);
    assert_eq!(fut.await.unwrap(), "p-100/987654321");
    assert_eq!(runs.load(Ordering::SeqCst), 1);
    let events = f.events();
    assert_eq!(events.len(), 2);
    assert_eq!(events[1].record.outcome, Some(Outcome::Ok));
    let token = events[0]
        .record
        .detail
        .get("arg.visit_id")
        .expect("the opted-in argument is recorded");
    assert!(!token.contains("987654321"));
    let lines = f.sink.to_lines();
    assert!(!lines.contains("987654321"), "{lines}");
    assert!(!lines.contains("p-100"), "{lines}");
}

#[tokio::test]
async fn async_denial_does_not_run_the_body() {
    let f = fixture();
    let runs = AtomicUsize::new(0);
    let ctx = f.provider().purpose(Purpose::Research);
    let err = read_async(&ctx, &runs, "p-100", 1).await.unwrap_err();
    assert_eq!(deny_reason(err), DenyReason::PurposeNotAllowed);
    assert_eq!(runs.load(Ordering::SeqCst), 0);
    assert_eq!(f.events().len(), 1);
}

#[test]
fn method_returning_a_borrow_of_self_works_through_the_guard() {
    let f = fixture();
    let runs = AtomicUsize::new(0);
    let mut ward = Ward { beds: Vec::new() };
    let bed = ward.assign(&f.provider(), &runs, "p-1").unwrap();
    bed.0.push_str("-moved");
    assert_eq!(ward.beds, ["p-1-moved"]);
    assert_eq!(runs.load(Ordering::SeqCst), 1);
    assert_eq!(f.events()[1].record.outcome, Some(Outcome::Ok));
}

#[test]
fn denial_messages_carry_no_arguments() {
    let f = fixture();
    let runs = AtomicUsize::new(0);
    let ctx = f.provider().purpose(Purpose::Payment);
    let err = read_chart(&ctx, &runs, "123-45-6789").unwrap_err().guard();
    let shown = format!("{err} {err:?}");
    assert!(!shown.contains("123-45-6789"), "{shown}");
    assert!(!f.sink.to_lines().contains("123-45-6789"));
}

fn assert_send<T: Send>(_: &T) {}

// ---- async calls await durability instead of blocking their thread ----

/// A sink whose events become durable only when the test opens its gate. Its blocking
/// `append` refuses: an async guarded call must never use it (it would hold the executor's
/// thread while the sink writes).
#[derive(Debug, Clone, Default)]
struct GatedSink {
    events: MemorySink,
    gate: std::sync::Arc<std::sync::Mutex<Gate>>,
}

#[derive(Debug, Default)]
struct Gate {
    /// Events below this seq are durable.
    durable_next: u64,
    failed: bool,
    wakers: Vec<Waker>,
}

#[derive(Debug)]
struct GatedEvent {
    gate: std::sync::Arc<std::sync::Mutex<Gate>>,
    seq: u64,
}

impl GatedSink {
    /// Makes every event up to and including `seq` durable.
    fn open_through(&self, seq: u64) {
        let mut g = self.gate.lock().unwrap();
        g.durable_next = seq + 1;
        g.wakers.drain(..).for_each(Waker::wake);
    }

    fn fail(&self) {
        let mut g = self.gate.lock().unwrap();
        g.failed = true;
        g.wakers.drain(..).for_each(Waker::wake);
    }
}

impl guardrail_core::audit::Durable for GatedEvent {
    fn poll_durable(
        &self,
        cx: &mut TaskContext<'_>,
    ) -> std::task::Poll<Result<(), guardrail_core::audit::AuditError>> {
        let mut g = self.gate.lock().unwrap();
        if self.seq < g.durable_next {
            std::task::Poll::Ready(Ok(()))
        } else if g.failed {
            std::task::Poll::Ready(Err(guardrail_core::audit::AuditError::Closed(
                "gated: the disk failed".into(),
            )))
        } else {
            g.wakers.push(cx.waker().clone());
            std::task::Poll::Pending
        }
    }

    fn wait(&self) -> Result<(), guardrail_core::audit::AuditError> {
        Err(guardrail_core::audit::AuditError::Closed(
            "gated: a blocking wait was used".into(),
        ))
    }
}

impl AuditSink for GatedSink {
    fn name(&self) -> &str {
        "gated"
    }

    fn append(
        &self,
        _: guardrail_core::audit::Record,
    ) -> Result<guardrail_core::audit::Receipt, guardrail_core::audit::AuditError> {
        Err(guardrail_core::audit::AuditError::Closed(
            "gated: a blocking append was used".into(),
        ))
    }

    fn submit(
        &self,
        record: guardrail_core::audit::Record,
    ) -> Result<guardrail_core::audit::Submitted, guardrail_core::audit::AuditError> {
        let receipt = self.events.append(record)?;
        Ok(guardrail_core::audit::Submitted {
            receipt,
            pending: Some(guardrail_core::audit::Pending::new(GatedEvent {
                gate: self.gate.clone(),
                seq: receipt.seq,
            })),
        })
    }
}

fn gated() -> (Guardrail, GatedSink) {
    let sink = GatedSink::default();
    let guardrail = Guardrail::builder()
        .policy(Policy::from_toml_str(POLICY).expect("the test policy loads"))
        .audit(sink.clone())
        .audit_key(key())
        .build()
        .expect("guardrail builds");
    (guardrail, sink)
}

fn gated_provider(g: &Guardrail) -> Context {
    g.context(
        Principal::new("dr-grey")
            .role("provider")
            .jurisdiction("US-CA"),
    )
    .endpoint(Endpoint::Provider)
    .purpose(Purpose::Treatment)
}

/// Polls `fut` until it is ready or `n` polls have returned `Pending`.
fn poll_n<F: Future + Unpin>(fut: &mut F, n: usize) -> std::task::Poll<F::Output> {
    let mut cx = TaskContext::from_waker(Waker::noop());
    for _ in 0..n {
        if let std::task::Poll::Ready(v) = std::pin::Pin::new(&mut *fut).poll(&mut cx) {
            return std::task::Poll::Ready(v);
        }
    }
    std::task::Poll::Pending
}

#[test]
fn async_call_awaits_its_decision_and_outcome_without_blocking_and_runs_only_after_the_decision_is_durable()
 {
    let (g, sink) = gated();
    let runs = AtomicUsize::new(0);
    let ctx = gated_provider(&g);
    let mut fut = Box::pin(read_async(&ctx, &runs, "p-100", 7));
    // The decision is queued, not durable: the call waits, the body has not run.
    assert!(poll_n(&mut fut, 5).is_pending());
    assert_eq!(
        runs.load(Ordering::SeqCst),
        0,
        "the body ran before its decision was durable"
    );
    assert_eq!(sink.events.events().len(), 1, "the decision is queued");
    // Durable: the body runs, the outcome is queued, and the value waits for it.
    sink.open_through(0);
    assert!(poll_n(&mut fut, 5).is_pending());
    assert_eq!(runs.load(Ordering::SeqCst), 1);
    let events = sink.events.events();
    assert_eq!(events.len(), 2);
    assert_eq!(events[1].record.outcome, Some(Outcome::Ok));
    sink.open_through(1);
    match poll_n(&mut fut, 1) {
        std::task::Poll::Ready(Ok(v)) => assert_eq!(v, "p-100/7"),
        other => panic!("expected the value once the outcome is durable, got {other:?}"),
    }
}

#[test]
fn async_decision_that_never_becomes_durable_leaves_the_body_unrun() {
    let (g, sink) = gated();
    let runs = AtomicUsize::new(0);
    let ctx = gated_provider(&g);
    let mut fut = Box::pin(read_async(&ctx, &runs, "p-100", 7));
    assert!(poll_n(&mut fut, 2).is_pending());
    sink.fail();
    let err = match poll_n(&mut fut, 1) {
        std::task::Poll::Ready(Err(e)) => e.guard(),
        other => panic!("expected a refusal, got {other:?}"),
    };
    assert!(
        matches!(&err, GuardError::AuditUnavailable { sink, detail, .. } if sink == "gated" && detail == "decision"),
        "{err:?}"
    );
    assert_eq!(runs.load(Ordering::SeqCst), 0);
}

#[test]
fn async_outcome_that_never_becomes_durable_turns_the_value_into_a_refusal() {
    let (g, sink) = gated();
    let runs = AtomicUsize::new(0);
    let ctx = gated_provider(&g);
    let mut fut = Box::pin(read_async(&ctx, &runs, "p-100", 7));
    assert!(poll_n(&mut fut, 2).is_pending());
    sink.open_through(0);
    assert!(poll_n(&mut fut, 5).is_pending());
    assert_eq!(runs.load(Ordering::SeqCst), 1);
    sink.fail();
    let err = match poll_n(&mut fut, 1) {
        std::task::Poll::Ready(Err(e)) => e.guard(),
        other => panic!("expected a refusal, got {other:?}"),
    };
    assert!(
        matches!(&err, GuardError::AuditUnavailable { detail, .. } if detail == "outcome"),
        "{err:?}"
    );
}
