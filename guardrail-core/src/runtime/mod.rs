//! What `#[phi_action]` expands to calls: decide, record, run, record the outcome, mask.
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

mod tx;

pub use tx::{AsyncTxAppend, TxAppend, finish_tx, finish_tx_async};

use std::fmt;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;

use guardrail_audit::{AuditError, AuditKey, EventKind, Outcome, Record, Text};

use crate::alert::{Alert, AlertKind};
use crate::approval::{ApprovalBinding, ApprovalId, ApprovalRequest};
use crate::error::GuardError;
use crate::guardrail::Context;
use crate::guardrail::Guardrail;
use crate::mask::{Masker, Redact};
use crate::model::CategorySet;
use crate::policy::{ApprovalNeed, Decision, DenyReason, Effect};
use crate::policy::{Policy, Request};
use crate::registry::ActionDescriptor;

/// The `count = ..` argument of a guarded call, converted without panicking.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CountArg {
    /// The action declares no count.
    Absent,
    /// A valid count.
    Value(u64),
    /// A negative or out-of-range count: the call is refused.
    Invalid,
}

/// Converts the expression given as `count = ..`.
pub trait IntoCount {
    /// The count, or [`CountArg::Invalid`].
    fn into_count(self) -> CountArg;
}

macro_rules! into_count {
    ($($t:ty),*) => {$(
        impl IntoCount for $t {
            #[inline]
            fn into_count(self) -> CountArg {
                u64::try_from(self).map_or(CountArg::Invalid, CountArg::Value)
            }
        }
    )*};
}

into_count!(
    u8, u16, u32, u64, u128, usize, i8, i16, i32, i64, i128, isize
);

impl<T: IntoCount + Copy> IntoCount for &T {
    fn into_count(self) -> CountArg {
        (*self).into_count()
    }
}

/// Converts a `count = ..` expression.
#[inline]
pub fn count<C: IntoCount>(c: C) -> CountArg {
    c.into_count()
}

/// The `subjects = ..` argument of a bulk call: the ids, formatted once. They are only ever
/// compared and tokenized, never stored or printed.
pub struct SubjectList(Vec<String>);

impl fmt::Debug for SubjectList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SubjectList({} subjects)", self.0.len())
    }
}

/// Collects the expression given as `subjects = ..` (any iterable of displayable ids, e.g.
/// `&[String]`, `&Vec<u64>`, `ids.iter()`).
pub fn subjects<I>(items: I) -> SubjectList
where
    I: IntoIterator,
    I::Item: fmt::Display,
{
    SubjectList(items.into_iter().map(|s| s.to_string()).collect())
}

/// An allowed call in progress. Dropping it without [`Call::finish`] records `panic` (when
/// unwinding) or `cancelled`.
pub struct Call {
    guardrail: Guardrail,
    policy: Arc<Policy>,
    action: &'static ActionDescriptor,
    labels: Labels,
    request_id: Arc<str>,
    principal: Arc<str>,
    subject: Option<Text>,
    subjects: Arc<[Text]>,
    reveal: CategorySet,
    break_glass: bool,
    decision_seq: u64,
    done: bool,
}

impl fmt::Debug for Call {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Call")
            .field("action", &self.action.name)
            .field("request_id", &self.request_id)
            .field("decision_seq", &self.decision_seq)
            .finish_non_exhaustive()
    }
}

fn decision_word(d: &Decision) -> &'static str {
    match (d.effect, d.approval, d.break_glass) {
        (Effect::Deny, _, _) => "deny",
        (Effect::Allow, ApprovalNeed::Required { .. }, _) => "approval_required",
        (Effect::Allow, _, true) => "break_glass",
        (Effect::Allow, _, false) => "allow",
    }
}

/// The decision words as shared text (events clone them instead of allocating).
fn word_label(word: &'static str) -> Arc<str> {
    static WORDS: std::sync::LazyLock<[Arc<str>; 4]> = std::sync::LazyLock::new(|| {
        ["deny", "approval_required", "break_glass", "allow"].map(Arc::from)
    });
    WORDS
        .iter()
        .find(|w| &***w == word)
        .cloned()
        .unwrap_or_else(|| Arc::from(word))
}

/// An action's name, kind and resource as shared text, taken from the compiled policy so
/// that recording them costs reference counts, not allocations.
#[derive(Clone, Debug)]
struct Labels {
    name: Arc<str>,
    kind: Arc<str>,
    resource: Option<Arc<str>>,
}

impl Labels {
    fn of(action: &'static ActionDescriptor) -> Labels {
        Labels {
            name: Arc::from(action.name),
            kind: action.kind.label(),
            resource: action.resource.map(Arc::from),
        }
    }
}

fn base_record(
    kind: EventKind,
    g: &Guardrail,
    labels: &Labels,
    ctx: &Context,
    subject: &Option<Text>,
) -> Record {
    let p = ctx.principal();
    let mut r = Record::at(kind, g.inner.clock.now());
    r.request_id = Some(ctx.request_arc().clone());
    r.action = Some(labels.name.clone());
    r.action_kind = Some(labels.kind.clone());
    r.resource = labels.resource.clone();
    r.principal = Some(p.id_arc().clone());
    r.roles = p.roles_arc().clone();
    r.endpoint = ctx.endpoint_kind().map(|e| e.label());
    r.jurisdiction = p.jurisdiction_arc().cloned();
    r.purpose = ctx.purpose_of_use().map(|e| e.label());
    r.subject = subject.clone();
    r
}

/// Decides, records the decision, and returns the call handle if the body may run.
pub fn begin(
    action: &'static ActionDescriptor,
    ctx: &Context,
    subject: Option<&dyn fmt::Display>,
    count: CountArg,
    recorded: &[(&'static str, &dyn fmt::Display)],
) -> Result<Call, GuardError> {
    begin_inner(action, ctx, subject, None, count, recorded)
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
    begin_inner(action, ctx, single, Some(ids), count, recorded)
}

/// A shared empty token list: a call without `subjects` allocates nothing for it.
fn no_subjects() -> Arc<[Text]> {
    static EMPTY: std::sync::LazyLock<Arc<[Text]>> =
        std::sync::LazyLock::new(|| Arc::from(Vec::new()));
    EMPTY.clone()
}

fn begin_inner(
    action: &'static ActionDescriptor,
    ctx: &Context,
    subject: Option<&dyn fmt::Display>,
    many: Option<&[String]>,
    count: CountArg,
    recorded: &[(&'static str, &dyn fmt::Display)],
) -> Result<Call, GuardError> {
    let started = crate::telemetry::Stopwatch::start();
    let g = ctx.guardrail();
    let policy = g.policy();
    let count_value = match count {
        CountArg::Absent => None,
        CountArg::Value(n) => Some(n),
        CountArg::Invalid => {
            return Err(deny_and_record(
                g,
                &policy,
                action,
                ctx,
                None,
                None,
                started,
                DenyReason::PolicyFault {
                    why: "the record count is negative or out of range".into(),
                },
            ));
        }
    };
    let request = Request {
        action,
        principal: ctx.principal(),
        endpoint: ctx.endpoint_kind(),
        purpose: ctx.purpose_of_use(),
        subject,
        count: count_value,
        break_glass: ctx.break_glass_reason(),
        cache: &ctx.cache,
    };
    // A panic inside evaluation must deny, not escape or allow.
    let evaluated = catch_unwind(AssertUnwindSafe(|| {
        let verdict = policy.evaluate(&request);
        let labels = Labels {
            name: verdict.action_name().clone(),
            kind: verdict.action_kind().clone(),
            resource: verdict.action_resource().cloned(),
        };
        (verdict.to_decision(), labels)
    }));
    let (mut decision, labels) = evaluated.unwrap_or_else(|_| {
        let fault = Decision::deny(
            DenyReason::PolicyFault {
                why: "the policy evaluation panicked".into(),
            },
            policy.version_arc(),
            policy.hash_arc(),
        );
        (fault, Labels::of(action))
    });
    let key = g.audit_key();
    let (subject_token, subject_tokens): (Option<Text>, Arc<[Text]>) = match many {
        None => (
            subject.map(|s| key.token_display_arc(AuditKey::SUBJECT_DOMAIN, s)),
            no_subjects(),
        ),
        Some(ids) => (
            None,
            ids.iter()
                .map(|s| key.token_display_arc(AuditKey::SUBJECT_DOMAIN, s))
                .collect(),
        ),
    };

    // Just-in-time approval: a presented grant is consumed; otherwise a request is opened.
    let mut approval: Option<ApprovalId> = None;
    let mut new_request: Option<ApprovalRequest> = None;
    if let (Effect::Allow, ApprovalNeed::Required { ttl_secs }) =
        (decision.effect, decision.approval)
    {
        // A grant opens exactly this patient, or exactly this set of patients.
        let binding_subject: Option<Text> = match many {
            None => subject_token.clone(),
            Some(_) => Some(Arc::from(key.token("subjects", &subject_tokens.join(",")))),
        };
        let binding = ApprovalBinding {
            action: labels.name.clone(),
            principal: ctx.principal().id_arc().clone(),
            subject: binding_subject,
            count: count_value,
        };
        let now = g.inner.clock.now();
        match ctx.approval_id() {
            Some(id) => match g.inner.approvals.consume(id, &binding, now) {
                Ok(consumed) => {
                    // Issue 5 (approval_flow.rs): the consumption is its own audit event.
                    if let Err(f) =
                        crate::approval::flow::record_consumed(g, &policy, ctx, &consumed)
                    {
                        let latency = started.elapsed();
                        crate::telemetry::decision(action.name, "audit_unavailable", latency);
                        return Err(GuardError::AuditUnavailable {
                            action: action.name,
                            sink: f.sink,
                            detail: f.detail,
                        });
                    }
                    approval = Some(id.clone());
                    decision.approval = ApprovalNeed::None;
                }
                Err(e) => {
                    decision.effect = Effect::Deny;
                    decision.reason = Some(DenyReason::ApprovalInvalid { why: e.to_string() });
                    approval = Some(id.clone());
                }
            },
            None => {
                let req = crate::approval::flow::new_request(binding, now, ttl_secs);
                match g.inner.approvals.insert(&req) {
                    Ok(()) => {
                        approval = Some(req.id.clone());
                        new_request = Some(req);
                    }
                    Err(e) => {
                        decision.effect = Effect::Deny;
                        decision.reason = Some(DenyReason::ApprovalInvalid {
                            why: format!("the request could not be stored: {e}"),
                        });
                    }
                }
            }
        }
    }

    let word = decision_word(&decision);
    let mut record = base_record(EventKind::Decision, g, &labels, ctx, &subject_token);
    record.subjects = subject_tokens.clone();
    record.count = count_value;
    record.decision = Some(word_label(word));
    record.rule = decision.rule.clone();
    record.reason = decision.reason.as_ref().map(|r| Arc::from(r.to_string()));
    record.break_glass = decision.break_glass;
    record.approval = approval.as_ref().map(|a| Arc::from(a.as_str()));
    record.policy_version = Some(decision.policy_version.clone());
    record.policy_hash = Some(decision.policy_hash.clone());
    for (name, value) in recorded {
        // Opted-in arguments are recorded only as keyed tokens, never raw.
        record.detail.insert(
            format!("arg.{name}"),
            g.audit_key().token_display(name, *value),
        );
    }
    if decision.break_glass {
        if let Some(reason) = ctx.break_glass_reason() {
            // The declared reason is free text and may carry PHI: it is scanned first.
            record
                .detail
                .insert("break_glass_reason".into(), crate::mask::scrub_text(reason));
        }
    }

    let receipt = match g.append(&policy, record) {
        Ok(r) => r,
        Err(f) => {
            crate::telemetry::decision(action.name, "audit_unavailable", started.elapsed());
            return Err(GuardError::AuditUnavailable {
                action: action.name,
                sink: f.sink,
                detail: f.detail,
            });
        }
    };
    crate::telemetry::decision(action.name, word, started.elapsed());
    let principal_id = ctx.principal().id_arc().clone();
    g.inner
        .detectors
        .observe(g, &policy, action, &principal_id, &decision, count_value);

    if decision.effect == Effect::Deny {
        let reason = decision.reason.unwrap_or(DenyReason::NoMatchingRule);
        return Err(to_guard_error(action, reason));
    }
    if let Some(req) = new_request {
        g.raise(Alert {
            kind: AlertKind::ApprovalRequested,
            time: g.inner.clock.now(),
            action: Some(labels.name.clone()),
            principal: Some(principal_id),
            request_id: Some(ctx.request_arc().clone()),
            count: count_value,
            message: format!("`{}` is waiting for approval `{}`", action.name, req.id),
        });
        if let Ok(n) = g.inner.approvals.pending() {
            crate::telemetry::approvals_pending(n);
        }
        return Err(GuardError::ApprovalRequired {
            request: Box::new(req),
        });
    }
    if decision.break_glass {
        g.raise(Alert {
            kind: AlertKind::BreakGlass,
            time: g.inner.clock.now(),
            action: Some(labels.name.clone()),
            principal: Some(principal_id.clone()),
            request_id: Some(ctx.request_arc().clone()),
            count: count_value,
            message: format!(
                "break-glass access to `{}` by `{}`: review the emergency",
                action.name,
                ctx.principal().id()
            ),
        });
    }
    Ok(Call {
        guardrail: g.clone(),
        policy,
        action,
        labels,
        request_id: ctx.request_arc().clone(),
        principal: principal_id,
        subject: subject_token,
        subjects: subject_tokens,
        reveal: decision.reveal,
        break_glass: decision.break_glass,
        decision_seq: receipt.seq,
        done: false,
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

#[allow(clippy::too_many_arguments)]
fn deny_and_record(
    g: &Guardrail,
    policy: &Policy,
    action: &'static ActionDescriptor,
    ctx: &Context,
    subject: Option<Text>,
    count: Option<u64>,
    started: crate::telemetry::Stopwatch,
    reason: DenyReason,
) -> GuardError {
    let mut record = base_record(EventKind::Decision, g, &Labels::of(action), ctx, &subject);
    record.count = count;
    record.decision = Some(word_label("deny"));
    record.reason = Some(Arc::from(reason.to_string()));
    record.policy_version = Some(policy.version_arc());
    record.policy_hash = Some(policy.hash_arc());
    if let Err(f) = g.append(policy, record) {
        return GuardError::AuditUnavailable {
            action: action.name,
            sink: f.sink,
            detail: f.detail,
        };
    }
    crate::telemetry::decision(action.name, "deny", started.elapsed());
    to_guard_error(action, reason)
}

impl Call {
    /// The outcome event for `result` (the seam for sinks that write through the caller's
    /// transaction: append it there, then call [`Call::complete`]).
    pub fn outcome_record<T, E>(&self, result: &Result<T, E>) -> Record {
        self.record_for(match result {
            Ok(_) => Outcome::Ok,
            Err(_) => Outcome::Error,
        })
    }

    fn record_for(&self, outcome: Outcome) -> Record {
        let g = &self.guardrail;
        let mut r = Record::at(EventKind::Outcome, g.inner.clock.now());
        r.request_id = Some(self.request_id.clone());
        r.action = Some(self.labels.name.clone());
        r.action_kind = Some(self.labels.kind.clone());
        r.resource = self.labels.resource.clone();
        r.principal = Some(self.principal.clone());
        r.subject = self.subject.clone();
        r.subjects = self.subjects.clone();
        r.break_glass = self.break_glass;
        r.outcome = Some(outcome);
        r.policy_version = Some(self.policy.version_arc());
        r.decision_seq = Some(self.decision_seq);
        r
    }

    /// Records the outcome in the guardrail's sinks, masks an `Ok` value and returns it.
    /// If the outcome cannot be recorded, an `Ok` becomes `Err(AuditUnavailable)`.
    pub fn finish<T: Redact, E: From<GuardError>>(self, result: Result<T, E>) -> Result<T, E> {
        let record = self.outcome_record(&result);
        let appended = self
            .guardrail
            .append(&self.policy, record)
            .map(|_| ())
            .map_err(|f| {
                AuditError::Io(std::io::Error::other(format!("{}: {}", f.sink, f.detail)))
            });
        self.complete(result, appended)
    }

    /// Completes the call once its outcome was appended (or failed) elsewhere.
    pub fn complete<T: Redact, E: From<GuardError>>(
        mut self,
        result: Result<T, E>,
        appended: Result<(), AuditError>,
    ) -> Result<T, E> {
        self.done = true;
        match (result, appended) {
            (Ok(mut value), Ok(())) => {
                let masker = Masker::new(
                    self.reveal,
                    self.policy.masking(),
                    self.guardrail.audit_key(),
                );
                value.redact(&masker);
                Ok(value)
            }
            (Ok(_), Err(e)) => Err(E::from(GuardError::AuditUnavailable {
                action: self.action.name,
                sink: "outcome".into(),
                detail: e.to_string(),
            })),
            (Err(e), _) => Err(e),
        }
    }
}

impl Drop for Call {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        let outcome = if std::thread::panicking() {
            Outcome::Panic
        } else {
            Outcome::Cancelled
        };
        let record = self.record_for(outcome);
        // Never panic here (a panic while unwinding aborts): a failure is alerted and counted
        // inside `append`.
        let _ = self.guardrail.append(&self.policy, record);
    }
}
