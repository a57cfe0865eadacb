//! Opening, deciding and consuming approval requests, and the audit events of each step.
//!
//! The life of a request, as the trail shows it:
//!
//! 1. the guarded call whose rule needs approval is refused with
//!    [`GuardError::ApprovalRequired`](crate::GuardError::ApprovalRequired); its `decision`
//!    event carries `decision = "approval_required"` and `approval = <id>` (the *request*
//!    event), and an [`AlertKind::ApprovalRequested`](crate::AlertKind) alert is raised;
//! 2. an approver calls [`Guardrail::approve`] or [`Guardrail::reject`]: an
//!    `approval_granted` / `approval_rejected` event (`principal` = the approver,
//!    `detail.requester` = the requester) is written **before** the store changes state, so
//!    no grant exists that the trail does not name its approver for; a refused attempt
//!    (not an approver, the requester themself, no longer pending) is recorded as the same
//!    kind with `decision = "refused"` and the reason;
//! 3. the retried call (`ctx.approval(id)`) consumes the grant atomically in the store and
//!    writes an `approval_consumed` event, then its own `decision` event with `approval = <id>`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use guardrail_audit::{EventKind, Record, Timestamp};
use sha2::{Digest, Sha256};

use crate::approval::{ApprovalBinding, ApprovalError, ApprovalId, ApprovalRequest, ApprovalState};
use crate::guardrail::Context;
use crate::guardrail::{AppendFailure, Guardrail};
use crate::model::Principal;
use crate::policy::Policy;

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// A new pending request for `binding`, expiring `ttl_secs` after `now`.
pub(crate) fn new_request(
    binding: ApprovalBinding,
    now: Timestamp,
    ttl_secs: u64,
) -> ApprovalRequest {
    // Ids need to be unique across replicas, not secret (a grant is bound to its requester).
    let mut h = Sha256::new();
    h.update(now.0.to_le_bytes());
    h.update(COUNTER.fetch_add(1, Ordering::Relaxed).to_le_bytes());
    h.update(std::process::id().to_le_bytes());
    h.update(binding.action.as_bytes());
    h.update(binding.principal.as_bytes());
    let digest = h.finalize();
    let id = ApprovalId::new(format!("apr-{}", hex::encode(&digest[..12])));
    let expires_at = Timestamp(now.0.saturating_add(ttl_secs.saturating_mul(1_000_000_000)));
    ApprovalRequest {
        id,
        action: binding.action.clone(),
        binding,
        requested_at: now,
        expires_at,
        state: ApprovalState::Pending,
    }
}

/// What every approval step's event holds: its kind and time, the request's id, the
/// decision word, the policy, and the actor (id and roles) if there is one.
fn step_stamp(
    g: &Guardrail,
    policy: &Policy,
    kind: EventKind,
    id: &ApprovalId,
    actor: Option<&Principal>,
    decision: &str,
) -> Record {
    let mut r = Record::at(kind, g.clock().now());
    if let Some(p) = actor {
        r.principal = Some(p.id_arc().clone());
        r.roles = p.roles_arc().clone();
    }
    r.approval = Some(Arc::from(id.as_str()));
    r.decision = Some(Arc::from(decision));
    r.policy_version = Some(policy.version_arc());
    r.policy_hash = Some(policy.hash_arc());
    r
}

/// The event of one approval step about `request`, acted by `actor`.
fn step_record(
    g: &Guardrail,
    policy: &Policy,
    kind: EventKind,
    request: &ApprovalRequest,
    actor: Option<&Principal>,
    decision: &str,
) -> Record {
    let mut r = step_stamp(g, policy, kind, &request.id, actor, decision);
    r.action = Some(request.action.clone());
    if actor.is_none() {
        r.principal = Some(request.binding.principal.clone());
    }
    r.subject = request.binding.subject.clone();
    // The session the call was asked for in: its replay shows every approval step.
    r.session = request.binding.scope.session.clone();
    r.count = request.binding.count;
    r.detail
        .insert("requester".into(), request.binding.principal.to_string());
    r.detail
        .insert("expires_at".into(), request.expires_at.0.to_string());
    // What the grant is bound to, as the approver sees it (labels and tokens only).
    let scope = &request.binding.scope;
    let bound = [
        ("bound.purpose", scope.purpose.as_deref()),
        ("bound.endpoint", scope.endpoint.as_deref()),
        ("bound.agent", scope.agent.as_deref()),
        ("bound.session", scope.session.as_deref()),
        ("bound.rule", scope.rule.as_deref()),
        ("bound.reveal", Some(&*scope.reveal)),
        ("bound.arguments", scope.arguments.as_deref()),
        ("bound.policy_sha256", Some(&*scope.policy_hash)),
    ];
    for (name, value) in bound {
        if let Some(value) = value {
            r.detail.insert(name.into(), value.to_owned());
        }
    }
    r
}

fn audit_failed(f: AppendFailure) -> ApprovalError {
    ApprovalError::Store(format!(
        "the audit trail could not record the approval step (sink `{}`): {}",
        f.sink, f.error
    ))
}

/// `approver` holds one of the policy's approver `roles`: needed to decide a request, and to
/// see the queue of pending ones ([`Guardrail::pending_approvals`]).
pub(crate) fn check_approver_role(
    roles: &[Arc<str>],
    approver: &Principal,
) -> Result<(), ApprovalError> {
    if !roles.iter().any(|r| approver.has_role(r)) {
        let roles = if roles.is_empty() {
            "the policy names none".to_owned()
        } else {
            roles
                .iter()
                .map(|r| format!("`{r}`"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        return Err(ApprovalError::NotApprover {
            principal: approver.id().to_owned(),
            roles,
        });
    }
    Ok(())
}

/// The checks [`Guardrail::approve`] and [`Guardrail::reject`] make before the store.
fn check_approver(
    roles: &[Arc<str>],
    approver: &Principal,
    request: &ApprovalRequest,
    now: Timestamp,
) -> Result<(), ApprovalError> {
    check_approver_role(roles, approver)?;
    if approver.id() == &*request.binding.principal {
        return Err(ApprovalError::SelfApproval(request.id.to_string()));
    }
    crate::approval::checks::check_decidable(request, now)
}

/// Grants (`grant`) or rejects request `id` as `approver`: checks, records, then changes
/// the store (see [`Guardrail::approve`]).
pub(crate) fn settle(
    g: &Guardrail,
    approver: &Principal,
    id: &ApprovalId,
    grant: bool,
) -> Result<ApprovalRequest, ApprovalError> {
    let policy = g.policy();
    let kind = if grant {
        EventKind::ApprovalGranted
    } else {
        EventKind::ApprovalRejected
    };
    let now = g.clock().now();
    let store = g.approval_store();
    let request = store
        .get(id)?
        .ok_or_else(|| ApprovalError::NotFound(id.to_string()))?;
    if let Err(e) = check_approver(policy.approver_roles(), approver, &request, now) {
        let mut r = step_record(g, &policy, kind, &request, Some(approver), "refused");
        r.reason = Some(Arc::from(e.to_string()));
        // The refusal stands whether or not it could be recorded.
        let _ = g.append(&policy, r);
        return Err(e);
    }
    // No audit, no grant: the step is recorded before it takes effect.
    let word = if grant { "granted" } else { "rejected" };
    g.append(
        &policy,
        step_record(g, &policy, kind, &request, Some(approver), word),
    )
    .map_err(audit_failed)?;
    let decided = match store.settle(id, approver.id(), grant, now) {
        Ok(decided) => decided,
        Err(e) => {
            // Lost a race with another approver, or the store failed: the step recorded above
            // did not take effect, and the trail says so.
            let mut r = step_record(g, &policy, kind, &request, Some(approver), "refused");
            r.reason = Some(Arc::from(e.to_string()));
            let _ = g.append(&policy, r);
            return Err(e);
        }
    };
    if let Ok(n) = store.pending() {
        crate::telemetry::approvals_pending(n);
    }
    Ok(decided)
}

/// Records that `approver`'s attempt to grant (`grant`) or reject request `id` was refused
/// before the flow saw it (see [`Guardrail::record_refused_attempt`]): a `refused` step
/// with `reason`, bound like the flow's own refusals when the store knows the request, else
/// naming the id alone.
pub(crate) fn record_refused_attempt(
    g: &Guardrail,
    approver: &Principal,
    id: &ApprovalId,
    grant: bool,
    reason: &'static str,
) -> Result<(), ApprovalError> {
    let policy = g.policy();
    let kind = if grant {
        EventKind::ApprovalGranted
    } else {
        EventKind::ApprovalRejected
    };
    let mut r = match g.approval_store().get(id) {
        Ok(Some(request)) => step_record(g, &policy, kind, &request, Some(approver), "refused"),
        // An id the store does not know (or cannot read now): the attempt is recorded all
        // the same, with what the request said.
        _ => step_stamp(g, &policy, kind, id, Some(approver), "refused"),
    };
    r.reason = Some(Arc::from(reason));
    g.append(&policy, r).map(drop).map_err(audit_failed)
}

/// Records that the retried call of `ctx` consumed grant `request` (called by the runtime
/// right after the store's atomic consume, before the call's decision event).
pub(crate) fn record_consumed(
    g: &Guardrail,
    policy: &Policy,
    ctx: &Context,
    request: &ApprovalRequest,
    defer: Option<&mut crate::guardrail::Deferred>,
) -> Result<(), AppendFailure> {
    let mut r = step_record(
        g,
        policy,
        EventKind::ApprovalConsumed,
        request,
        Some(ctx.principal()),
        "consumed",
    );
    r.request_id = Some(ctx.request_arc().clone());
    // The requester consumes, through the agent that retried (if any).
    r.via = ctx.get_agent().map(|a| a.label_arc().clone());
    g.append_with(policy, r, defer).map(|_| ())
}
