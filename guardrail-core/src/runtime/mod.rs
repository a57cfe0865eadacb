//! What `#[phi_action]` expands to calls: decide, record, run, record the outcome, mask.
//!
//! Owns `begin` (the steps of every guarded call, in order), the argument helpers
//! (`args`), the one place that builds every audit record of a call (`record`), the `Call`
//! handle (`call`) and the transaction-bound ending (`tx`).
//! May use every room but coverage: it is where they meet.
//!
//! The generated code is
//!
//! ```text
//! let call = begin(&ACTION, ctx, subject, count, recorded)?; // decide + decision event
//! let result = <the original body>;                  // only if allowed
//! call.finish(result)                                // outcome event + masking
//! ```
//!
//! and [`Call`]'s `Drop` records `panic` or `cancelled` when `finish` was never reached.
//! Transaction-bound sinks use the seam [`Call::outcome_record`] + [`Call::complete`].

use std::fmt;
use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;

use crate::alert::{Alert, AlertKind};
use crate::approval::{ApprovalBinding, ApprovalId, ApprovalRequest, CallScope};
use crate::error::GuardError;
use crate::guardrail::{Context, Deferred, Guardrail};
use crate::policy::{ActionLabels, ApprovalNeed, DenyReason, Effect, Policy, Request, Verdict};
use crate::registry::ActionDescriptor;
use crate::telemetry::Stopwatch;

mod args;
mod call;
mod deferred;
mod record;
mod tx;

pub use args::{CountArg, IntoCount, SubjectList, count, subjects};
pub use call::Call;
pub use deferred::HeldOutcomes;
pub use tx::{
    AsyncTxAppend, Entered, TxAppend, enter_tx, enter_tx_async, finish_tx, finish_tx_async,
};

use record::CallIdentity;

/// Decides, records the decision, and returns the call handle if the body may run.
pub fn begin(
    action: &'static ActionDescriptor,
    ctx: &Context,
    subject: Option<&dyn fmt::Display>,
    count: CountArg,
    recorded: &[(&'static str, &dyn fmt::Display)],
) -> Result<Call, GuardError> {
    begin_inner(action, ctx, subject, None, count, recorded, None)
}

/// [`begin`] for an `async fn`: the same steps, but the events are only queued while the
/// call is decided, and their durability is awaited, not waited for on the thread; the
/// body may run only once every one of them is durable (a failure is `AuditUnavailable`).
/// The arguments are used before the returned future first runs, so it holds none of them.
pub fn begin_async(
    action: &'static ActionDescriptor,
    ctx: &Context,
    subject: Option<&dyn fmt::Display>,
    count: CountArg,
    recorded: &[(&'static str, &dyn fmt::Display)],
) -> impl Future<Output = Result<Call, GuardError>> + Send + use<> {
    let mut defer = Deferred::default();
    let begun = begin_inner(
        action,
        ctx,
        subject,
        None,
        count,
        recorded,
        Some(&mut defer),
    );
    settled(action, ctx.guardrail().clone(), begun, defer)
}

/// [`begin_many`] for an `async fn` (see [`begin_async`]).
pub fn begin_many_async(
    action: &'static ActionDescriptor,
    ctx: &Context,
    subjects: &SubjectList,
    count: CountArg,
    recorded: &[(&'static str, &dyn fmt::Display)],
) -> impl Future<Output = Result<Call, GuardError>> + Send + use<> {
    let mut defer = Deferred::default();
    let begun = begin_many_inner(action, ctx, subjects, count, recorded, Some(&mut defer));
    settled(action, ctx.guardrail().clone(), begun, defer)
}

/// `begun` once everything it queued is durable. A call whose decision did not become
/// durable never runs: its [`Call`] is dropped (recording `cancelled`, if a sink still
/// can) and the answer is `AuditUnavailable`, whatever the decision was.
async fn settled(
    action: &'static ActionDescriptor,
    g: Guardrail,
    begun: Result<Call, GuardError>,
    defer: Deferred,
) -> Result<Call, GuardError> {
    match (defer.settle(&g).await, begun) {
        (Ok(()), begun) => begun,
        // The decision itself could not be queued: that is the error already.
        (Err(_), Err(e @ GuardError::AuditUnavailable { .. })) => Err(e),
        (Err(f), _) => Err(f.into_guard_error(action.name, "decision")),
    }
}

/// [`begin`] for a bulk call over several patients (`subjects = ..`): every subject is
/// recorded as a token (so each patient's accounting of disclosures lists the call), the
/// count is at least the number of subjects, and an approval grant is bound to exactly this
/// set. The policy sees a single subject only when all of them are the same patient, so a
/// `self_only` rule never lets a patient's bulk call reach someone else.
pub fn begin_many(
    action: &'static ActionDescriptor,
    ctx: &Context,
    subjects: &SubjectList,
    count: CountArg,
    recorded: &[(&'static str, &dyn fmt::Display)],
) -> Result<Call, GuardError> {
    begin_many_inner(action, ctx, subjects, count, recorded, None)
}

fn begin_many_inner(
    action: &'static ActionDescriptor,
    ctx: &Context,
    subjects: &SubjectList,
    count: CountArg,
    recorded: &[(&'static str, &dyn fmt::Display)],
    defer: Option<&mut Deferred>,
) -> Result<Call, GuardError> {
    let ids = &subjects.0;
    // The count covers at least every patient touched: a smaller declared count would let
    // a bulk call slip under a record limit or an approval threshold.
    let touched = u64::try_from(ids.len()).ok();
    let count = match (count, touched) {
        (_, None) | (CountArg::Invalid, _) => CountArg::Invalid,
        (CountArg::Absent, Some(n)) => CountArg::Value(n),
        (CountArg::Value(declared), Some(n)) => CountArg::Value(declared.max(n)),
    };
    let single = ids.first().filter(|first| ids.iter().all(|s| s == *first));
    let single: Option<&dyn fmt::Display> = single.map(|s| s as &dyn fmt::Display);
    begin_inner(action, ctx, single, Some(ids), count, recorded, defer)
}

/// The steps of every guarded call, in order. Each step that can refuse returns the
/// `GuardError`; the decision event is recorded before any `Ok` (with `defer`: queued, and
/// its durability left in `defer` for the caller to await before the body runs).
fn begin_inner(
    action: &'static ActionDescriptor,
    ctx: &Context,
    subject: Option<&dyn fmt::Display>,
    many: Option<&[String]>,
    count: CountArg,
    recorded: &[(&'static str, &dyn fmt::Display)],
    mut defer: Option<&mut Deferred>,
) -> Result<Call, GuardError> {
    let started = Stopwatch::start();
    let g = ctx.guardrail();
    let policy = g.policy();
    // 1. The count must be usable before anything is decided.
    let count = checked_count(
        g,
        &policy,
        action,
        ctx,
        count,
        started,
        defer.as_deref_mut(),
    )?;
    // 2. The policy decides (a panic inside it denies).
    let mut verdict = evaluate(&policy, action, ctx, subject, count);
    //    A VIP's record is known before anything is recorded (a failed lookup denies).
    patient_flags(ctx, subject, &mut verdict);
    // 3. Who the call is about, as tokens.
    let identity = CallIdentity::new(verdict.labels().clone(), ctx, g.audit_key(), subject, many);
    // 4. Just-in-time approval: consume a presented grant, or open a request.
    let approval = approval_step(
        g,
        &policy,
        action,
        ctx,
        &mut verdict,
        &identity,
        count,
        recorded,
        defer.as_deref_mut(),
    )?;
    // 5. The decision event, before the body can run.
    let record = record::decision(&identity, g, ctx, &verdict, count, approval.id(), recorded);
    let word = record::decision_word(verdict.effect, verdict.approval, verdict.break_glass);
    let receipt = g
        .append_with(&policy, record, defer)
        .map_err(|f| f.into_guard_error(action.name, "decision"))
        .inspect_err(|_| {
            crate::telemetry::decision(action.name, "audit_unavailable", started.elapsed())
        })?;
    crate::telemetry::decision(action.name, word, started.elapsed());
    // 6. Detectors and alerts; then refuse, or hand out the call.
    observe(g, &policy, action, &identity, &verdict, count);
    if verdict.grounds.vip {
        g.raise(
            Alert::new(
                AlertKind::VipAccess,
                g.clock().now(),
                format!(
                    "`{}` by `{}` on a VIP record ({}): review the access",
                    action.name,
                    ctx.principal().id(),
                    word
                ),
            )
            .action(identity.labels.name.clone())
            .principal(identity.principal.clone())
            .request(ctx.request_arc().clone())
            .count(count),
        );
    }
    conclude(
        g,
        action,
        ctx,
        verdict,
        identity,
        approval,
        count,
        policy.clone(),
        receipt.seq,
    )
}

/// Step 1: a negative or out-of-range count is denied (and recorded) before the policy runs.
fn checked_count(
    g: &Guardrail,
    policy: &Policy,
    action: &'static ActionDescriptor,
    ctx: &Context,
    count: CountArg,
    started: Stopwatch,
    defer: Option<&mut Deferred>,
) -> Result<Option<u64>, GuardError> {
    match count {
        CountArg::Absent => Ok(None),
        CountArg::Value(n) => Ok(Some(n)),
        CountArg::Invalid => {
            let reason = DenyReason::PolicyFault {
                why: "the record count is negative or out of range".into(),
            };
            let id = CallIdentity::new(ActionLabels::of(action), ctx, g.audit_key(), None, None);
            let record = record::early_denial(
                &id,
                g,
                ctx,
                policy.version_arc(),
                policy.hash_arc(),
                &reason,
            );
            g.append_with(policy, record, defer)
                .map_err(|f| f.into_guard_error(action.name, "decision"))?;
            crate::telemetry::decision(action.name, "deny", started.elapsed());
            Err(to_guard_error(action, reason))
        }
    }
}

/// Step 2: the policy's verdict; a panic inside evaluation denies instead of escaping.
fn evaluate<'p>(
    policy: &'p Policy,
    action: &'static ActionDescriptor,
    ctx: &Context,
    subject: Option<&dyn fmt::Display>,
    count: Option<u64>,
) -> Verdict<'p> {
    let request = Request {
        action,
        principal: ctx.principal(),
        endpoint: ctx.get_endpoint(),
        purpose: ctx.get_purpose(),
        subject,
        count,
        break_glass: ctx.get_break_glass(),
        agent: ctx.get_agent().map(crate::model::AgentId::name),
        cache: &ctx.cache,
    };
    catch_unwind(AssertUnwindSafe(|| policy.evaluate(&request))).unwrap_or_else(|_| {
        policy.fault(
            action,
            DenyReason::PolicyFault {
                why: "the policy evaluation panicked".into(),
            },
        )
    })
}

/// Step 2b: with a relationship provider, the patient's flags are looked up for every call
/// on a single subject (memoized per request): a VIP record is marked for the event and the
/// alert; a lookup without an answer turns an allow into a denial (fails closed).
fn patient_flags(ctx: &Context, subject: Option<&dyn fmt::Display>, verdict: &mut Verdict<'_>) {
    let lookups = ctx.cache.lookups();
    let Some(subject) = subject.filter(|_| lookups.has_relationships()) else {
        return;
    };
    match lookups.flags(ctx.principal(), subject) {
        Ok((vip, _)) => verdict.grounds.vip = vip,
        Err(failure) if verdict.is_allowed() => verdict.deny(DenyReason::LookupFailed {
            provider: failure.provider.name(),
            why: failure.why,
        }),
        Err(_) => {}
    }
}

/// What the approval step did.
enum ApprovalStep {
    /// The rule needs no approval.
    NotNeeded,
    /// A presented grant was consumed, or refused (the verdict now denies).
    Presented(ApprovalId),
    /// A new request was opened; the call is refused with it.
    Opened(Box<ApprovalRequest>),
}

impl ApprovalStep {
    fn id(&self) -> Option<&ApprovalId> {
        match self {
            ApprovalStep::NotNeeded => None,
            ApprovalStep::Presented(id) => Some(id),
            ApprovalStep::Opened(req) => Some(&req.id),
        }
    }
}

/// Step 4: a grant opens exactly the call it was bound to, once; without one, a request is
/// opened. A store failure or an unusable grant turns the verdict into a denial.
#[allow(clippy::too_many_arguments)]
fn approval_step(
    g: &Guardrail,
    policy: &Policy,
    action: &'static ActionDescriptor,
    ctx: &Context,
    verdict: &mut Verdict<'_>,
    identity: &CallIdentity,
    count: Option<u64>,
    recorded: &[(&'static str, &dyn fmt::Display)],
    defer: Option<&mut Deferred>,
) -> Result<ApprovalStep, GuardError> {
    let (Effect::Allow, ApprovalNeed::Required { ttl_secs }) = (verdict.effect, verdict.approval)
    else {
        return Ok(ApprovalStep::NotNeeded);
    };
    let binding = binding_for(g, ctx, verdict, identity, count, recorded);
    let now = g.clock().now();
    let store = g.approval_store();
    let Some(id) = ctx.get_approval() else {
        let req = crate::approval::flow::new_request(binding, now, ttl_secs);
        return Ok(match store.insert(&req) {
            Ok(()) => ApprovalStep::Opened(Box::new(req)),
            Err(e) => {
                verdict.deny(DenyReason::ApprovalInvalid {
                    why: format!("the request could not be stored: {e}"),
                });
                ApprovalStep::NotNeeded
            }
        });
    };
    match store.consume(id, &binding, now) {
        Ok(consumed) => {
            // The consumption is its own audit event, before the call's decision event.
            crate::approval::flow::record_consumed(g, policy, ctx, &consumed, defer)
                .map_err(|f| f.into_guard_error(action.name, "approval_consumed"))?;
            verdict.approval = ApprovalNeed::None;
        }
        Err(e) => verdict.deny(DenyReason::ApprovalInvalid { why: e.to_string() }),
    }
    Ok(ApprovalStep::Presented(id.clone()))
}

/// Everything a grant for this call is bound to (`docs/policy.md`, "Approvals").
fn binding_for(
    g: &Guardrail,
    ctx: &Context,
    verdict: &Verdict<'_>,
    identity: &CallIdentity,
    count: Option<u64>,
    recorded: &[(&'static str, &dyn fmt::Display)],
) -> ApprovalBinding {
    let key = g.audit_key();
    let arguments = (!recorded.is_empty()).then(|| {
        let tokens: Vec<String> = recorded
            .iter()
            .map(|(name, value)| format!("{name}={}", key.token_display(name, *value)))
            .collect();
        Arc::from(key.token("approval_arguments", &tokens.join(";")))
    });
    ApprovalBinding {
        action: identity.labels.name.clone(),
        principal: identity.principal.clone(),
        subject: identity.binding_subject(key),
        count,
        scope: CallScope {
            purpose: ctx.get_purpose().map(|p| p.label()),
            endpoint: ctx.get_endpoint().map(|e| e.label()),
            agent: ctx.get_agent().map(|a| a.label_arc().clone()),
            session: ctx.session_arc().cloned(),
            rule: verdict.rule.cloned(),
            reveal: Arc::from(verdict.reveal.names()),
            arguments,
            policy_hash: verdict.policy_hash().clone(),
        },
    }
}

/// Step 6a: the detectors see every recorded decision; what they raise is alerted.
fn observe(
    g: &Guardrail,
    policy: &Policy,
    action: &'static ActionDescriptor,
    identity: &CallIdentity,
    verdict: &Verdict<'_>,
    count: Option<u64>,
) {
    let seen = crate::alert::detect::Observed {
        action,
        principal: &identity.principal,
        effect: verdict.effect,
        approval: verdict.approval,
        count,
    };
    if let Some(alert) = g.detectors().observe(policy, g.clock().now(), &seen) {
        g.raise(alert);
    }
}

/// Step 6b: a denial or an opened request refuses; an allow (flagged for break-glass)
/// becomes the [`Call`] the body runs under.
#[allow(clippy::too_many_arguments)]
fn conclude(
    g: &Guardrail,
    action: &'static ActionDescriptor,
    ctx: &Context,
    verdict: Verdict<'_>,
    identity: CallIdentity,
    approval: ApprovalStep,
    count: Option<u64>,
    policy: Arc<Policy>,
    decision_seq: u64,
) -> Result<Call, GuardError> {
    if verdict.effect == Effect::Deny {
        let reason = verdict.reason.unwrap_or(DenyReason::NoMatchingRule);
        return Err(to_guard_error(action, reason));
    }
    if let ApprovalStep::Opened(request) = approval {
        g.raise(
            Alert::new(
                AlertKind::ApprovalRequested,
                g.clock().now(),
                format!("`{}` is waiting for approval `{}`", action.name, request.id),
            )
            .action(identity.labels.name.clone())
            .principal(identity.principal.clone())
            .request(ctx.request_arc().clone())
            .count(count),
        );
        if let Ok(n) = g.approval_store().pending() {
            crate::telemetry::approvals_pending(n);
        }
        return Err(GuardError::ApprovalRequired { request });
    }
    if verdict.break_glass {
        g.raise(
            Alert::new(
                AlertKind::BreakGlass,
                g.clock().now(),
                format!(
                    "break-glass access to `{}` by `{}`: review the emergency",
                    action.name,
                    ctx.principal().id()
                ),
            )
            .action(identity.labels.name.clone())
            .principal(identity.principal.clone())
            .request(ctx.request_arc().clone())
            .count(count),
        );
    }
    Ok(Call {
        guardrail: g.clone(),
        action,
        identity,
        reveal: verdict.reveal,
        break_glass: verdict.break_glass,
        decision_seq,
        done: false,
        policy,
        held: ctx.held_outcomes().cloned(),
    })
}

fn to_guard_error(action: &'static ActionDescriptor, reason: DenyReason) -> GuardError {
    match reason {
        DenyReason::MissingContext { field } => GuardError::MissingContext {
            action: action.name,
            field,
        },
        reason => GuardError::Denied {
            action: action.name,
            reason,
        },
    }
}
