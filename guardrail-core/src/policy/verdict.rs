//! The result of evaluating a policy for one call.

use std::fmt;
use std::sync::Arc;

use super::Policy;
use super::compile::{ActionLabels, Plan};
use crate::model::CategorySet;
use crate::relation::{Consent, ConsentSet};

/// Allow or deny.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Effect {
    /// The call may proceed (possibly after approval).
    Allow,
    /// The call is refused.
    Deny,
}

/// Why a call was denied. Messages name rules, roles and fields, never PHI.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum DenyReason {
    /// No allow rule matches the action at all (default deny).
    NoMatchingRule,
    /// The principal holds none of the roles the matching rules (or the code) allow.
    RoleNotAllowed,
    /// The call came through an endpoint no matching rule allows.
    EndpointNotAllowed,
    /// The principal's jurisdiction is missing or not listed by the matching rules.
    JurisdictionNotAllowed,
    /// The declared purpose of use is not listed by the matching rules.
    PurposeNotAllowed,
    /// The call came through an agent the matching rules do not allow (or any agent, where
    /// they are `direct_only`), or directly where they require an agent.
    AgentNotAllowed,
    /// A `self_only` rule matched, but the subject is not the principal's own patient id.
    NotOwnSubject,
    /// More records than the rule's `max_count`.
    CountOverLimit {
        /// Records requested.
        count: u64,
        /// The highest limit any matching rule allows.
        limit: u64,
    },
    /// The matching rules require a relation (`relations = [..]`) the principal does not
    /// have to the patient. The one denial besides the default that break-glass can open.
    NoRelationship,
    /// A host provider gave no answer a rule needed; failing closed (break-glass cannot
    /// open it).
    LookupFailed {
        /// `relationships`, `patient_flags` or `consents`.
        provider: &'static str,
        /// `failed` (the host returned an error), `not_configured` (no provider), or
        /// `not_preloaded` (an async provider's answer was not loaded before the call).
        why: &'static str,
    },
    /// A deny rule with `consent = [..]` matched: the patient's consent is not on file.
    ConsentMissing {
        /// The rule's id.
        rule: Arc<str>,
        /// The first consent missing.
        consent: Consent,
    },
    /// A `deny` rule matched (deny overrides allow).
    DeniedByRule {
        /// The rule's id.
        rule: Arc<str>,
    },
    /// Break-glass was declared but the policy does not permit it here.
    BreakGlassNotPermitted {
        /// What the policy closes (role, kind, resource or missing reason).
        why: String,
    },
    /// An approval grant was presented but cannot be used.
    ApprovalInvalid {
        /// What is wrong with it (expired, used, rejected, bound to another call).
        why: String,
    },
    /// The context lacks a value a matching rule needs (`endpoint`, `purpose`,
    /// `jurisdiction`, `subject`, `count`). A guarded call refused for it returns
    /// `GuardError::MissingContext`, not `Denied` (see `GuardError::is_policy_refusal`).
    MissingContext {
        /// What is missing.
        field: &'static str,
    },
    /// Evaluating the policy failed; failing closed.
    PolicyFault {
        /// What failed.
        why: String,
    },
}

impl fmt::Display for DenyReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DenyReason::NoMatchingRule => f.write_str("no policy rule allows this action"),
            DenyReason::RoleNotAllowed => f.write_str("none of the principal's roles is allowed"),
            DenyReason::EndpointNotAllowed => {
                f.write_str("the endpoint is not allowed for this action")
            }
            DenyReason::JurisdictionNotAllowed => {
                f.write_str("the principal's jurisdiction is not allowed")
            }
            DenyReason::PurposeNotAllowed => f.write_str("the purpose of use is not allowed"),
            DenyReason::AgentNotAllowed => {
                f.write_str("the call is not allowed through this agent (or without one)")
            }
            DenyReason::NotOwnSubject => f.write_str("a patient may only access their own records"),
            DenyReason::CountOverLimit { count, limit } => {
                write!(f, "{count} records requested, the limit is {limit}")
            }
            DenyReason::NoRelationship => f.write_str(
                "the principal has none of the relations to the patient the matching rules require",
            ),
            DenyReason::LookupFailed { provider, why } => write!(
                f,
                "the `{provider}` lookup gave no answer ({why}); failing closed"
            ),
            DenyReason::ConsentMissing { rule, consent } => write!(
                f,
                "rule `{rule}` requires the patient's `{consent}` consent, which is not on file"
            ),
            DenyReason::DeniedByRule { rule } => write!(f, "denied by rule `{rule}`"),
            DenyReason::BreakGlassNotPermitted { why } => {
                write!(f, "break-glass is not permitted: {why}")
            }
            DenyReason::ApprovalInvalid { why } => write!(f, "approval cannot be used: {why}"),
            DenyReason::MissingContext { field } => write!(f, "the context has no {field}"),
            DenyReason::PolicyFault { why } => write!(f, "policy evaluation failed: {why}"),
        }
    }
}

impl DenyReason {
    /// A stable short code for metrics and events (`no_rule`, `role`, …).
    pub fn code(&self) -> &'static str {
        match self {
            DenyReason::NoMatchingRule => "no_rule",
            DenyReason::RoleNotAllowed => "role",
            DenyReason::EndpointNotAllowed => "endpoint",
            DenyReason::JurisdictionNotAllowed => "jurisdiction",
            DenyReason::PurposeNotAllowed => "purpose",
            DenyReason::AgentNotAllowed => "agent",
            DenyReason::NotOwnSubject => "not_own_subject",
            DenyReason::CountOverLimit { .. } => "count",
            DenyReason::NoRelationship => "no_relationship",
            DenyReason::LookupFailed { .. } => "lookup",
            DenyReason::ConsentMissing { .. } => "consent",
            DenyReason::DeniedByRule { .. } => "deny_rule",
            DenyReason::BreakGlassNotPermitted { .. } => "break_glass",
            DenyReason::ApprovalInvalid { .. } => "approval",
            DenyReason::MissingContext { .. } => "missing_context",
            DenyReason::PolicyFault { .. } => "policy_fault",
        }
    }
}

/// When an allowed call needs a second person's approval first.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ApprovalNeed {
    /// No approval needed.
    None,
    /// Approval needed; grants expire after `ttl_secs`.
    Required {
        /// Lifetime of a grant, from the policy's `[approval] ttl_secs`.
        ttl_secs: u64,
    },
}

/// What an allow rested on beyond roles and context, as recorded in the decision event: the
/// relation that satisfied `relations = [..]`, a personal representative acting for the
/// patient, categories withheld for a missing consent, a VIP record. Names and categories
/// only, never PHI.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Grounds {
    /// The relation (of the deciding rule's `relations`) the principal has to the patient.
    pub relation: Option<Arc<str>>,
    /// A `self_only` rule held because the principal is the patient's personal
    /// representative, not the patient.
    pub representative: bool,
    /// The consents the deciding rule names that are not on file.
    pub consent_missing: ConsentSet,
    /// The categories the rule would reveal that stay masked for want of a consent.
    pub withheld: CategorySet,
    /// The patient's record is flagged VIP (set by the guarded call, which alerts).
    pub vip: bool,
}

/// The outcome of evaluating the policy for one call.
#[derive(Clone, Debug, PartialEq)]
pub struct Decision {
    /// Allow or deny.
    pub effect: Effect,
    /// Id of the rule that decided (`None` for the default deny).
    pub rule: Option<Arc<str>>,
    /// Why it was denied (`None` when allowed).
    pub reason: Option<DenyReason>,
    /// PHI categories the caller may see unmasked (minimum necessary).
    pub reveal: CategorySet,
    /// Whether a just-in-time approval is needed before the body runs.
    pub approval: ApprovalNeed,
    /// The allow came from a break-glass override.
    pub break_glass: bool,
    /// What the allow rested on (relation, representative, consent).
    pub grounds: Grounds,
    /// Version string of the policy that decided.
    pub policy_version: Arc<str>,
    /// SHA-256 (hex) of the policy text that decided.
    pub policy_hash: Arc<str>,
}

impl Decision {
    /// True if the call may proceed (possibly after approval).
    pub fn is_allowed(&self) -> bool {
        self.effect == Effect::Allow
    }

    /// A denial decided outside the policy (missing context, fault).
    pub fn deny(reason: DenyReason, policy_version: Arc<str>, policy_hash: Arc<str>) -> Decision {
        Decision {
            effect: Effect::Deny,
            rule: None,
            reason: Some(reason),
            reveal: CategorySet::EMPTY,
            approval: ApprovalNeed::None,
            break_glass: false,
            grounds: Grounds::default(),
            policy_version,
            policy_hash,
        }
    }
}

/// A decision that borrows from its policy (see [`Policy::evaluate`]); the fields mean what
/// the same fields of [`Decision`] mean.
#[derive(Debug)]
pub struct Verdict<'p> {
    /// Allow or deny.
    pub effect: Effect,
    /// Id of the rule that decided (`None` for the default deny and for break-glass).
    pub rule: Option<&'p Arc<str>>,
    /// Why it was denied (`None` when allowed).
    pub reason: Option<DenyReason>,
    /// PHI categories the caller may see unmasked.
    pub reveal: CategorySet,
    /// Whether a just-in-time approval is needed before the body runs.
    pub approval: ApprovalNeed,
    /// The allow came from a break-glass override.
    pub break_glass: bool,
    /// What the allow rested on (relation, representative, consent).
    pub grounds: Grounds,
    pub(super) policy: &'p Policy,
    pub(super) plan: PlanRef<'p>,
}

impl<'p> Verdict<'p> {
    /// True if the call may proceed (possibly after approval).
    pub fn is_allowed(&self) -> bool {
        self.effect == Effect::Allow
    }

    /// The deciding policy's `version`.
    pub fn policy_version(&self) -> &'p Arc<str> {
        &self.policy.inner.version
    }

    /// SHA-256 (hex) of the deciding policy's text.
    pub fn policy_hash(&self) -> &'p Arc<str> {
        &self.policy.inner.hash
    }

    /// The action's name, shared (cloning it does not allocate).
    pub fn action_name(&self) -> &Arc<str> {
        &self.plan.labels.name
    }

    /// The action's kind as text (`read`), shared.
    pub fn action_kind(&self) -> &Arc<str> {
        &self.plan.labels.kind
    }

    /// The action's resource, shared.
    pub fn action_resource(&self) -> Option<&Arc<str>> {
        self.plan.labels.resource.as_ref()
    }

    /// The owned decision.
    pub fn to_decision(&self) -> Decision {
        Decision {
            effect: self.effect,
            rule: self.rule.cloned(),
            reason: self.reason.clone(),
            reveal: self.reveal,
            approval: self.approval,
            break_glass: self.break_glass,
            grounds: self.grounds.clone(),
            policy_version: self.policy_version().clone(),
            policy_hash: self.policy_hash().clone(),
        }
    }
}

/// How a decision was reached; [`Verdict::from_ruling`] turns it into the verdict's fields.
#[derive(Debug)]
pub(super) enum Ruling<'p> {
    /// An allow rule held.
    Allow {
        rule: &'p super::Rule,
        approval: ApprovalNeed,
        grounds: Grounds,
    },
    /// Break-glass opened a call the rules denied by default.
    BreakGlass { reveal: CategorySet },
    /// A deny rule held (`rule`), or nothing allowed the call.
    Deny {
        rule: Option<&'p super::Rule>,
        reason: DenyReason,
    },
}

impl<'p> Verdict<'p> {
    pub(super) fn from_ruling(policy: &'p Policy, plan: PlanRef<'p>, ruling: Ruling<'p>) -> Self {
        let (effect, rule, reason, reveal, approval, break_glass, grounds) = match ruling {
            Ruling::Allow {
                rule,
                approval,
                grounds,
            } => (
                Effect::Allow,
                Some(&rule.id),
                None,
                // A missing consent withholds what the rule would otherwise reveal.
                rule.reveal.without(grounds.withheld),
                approval,
                false,
                grounds,
            ),
            Ruling::BreakGlass { reveal } => (
                Effect::Allow,
                None,
                None,
                reveal,
                ApprovalNeed::None,
                true,
                Grounds::default(),
            ),
            Ruling::Deny { rule, reason } => (
                Effect::Deny,
                rule.map(|r| &r.id),
                Some(reason),
                CategorySet::EMPTY,
                ApprovalNeed::None,
                false,
                Grounds::default(),
            ),
        };
        Verdict {
            effect,
            rule,
            reason,
            reveal,
            approval,
            break_glass,
            grounds,
            policy,
            plan,
        }
    }

    /// Turns the verdict into a denial for `reason` (an approval that cannot be used).
    pub(crate) fn deny(&mut self, reason: DenyReason) {
        self.effect = Effect::Deny;
        self.reason = Some(reason);
    }

    /// The action's names as shared text (for the audit events).
    pub(crate) fn labels(&self) -> &ActionLabels {
        &self.plan.labels
    }
}

/// A plan borrowed from the policy or shared with its ad-hoc table.
#[derive(Debug)]
pub(super) enum PlanRef<'p> {
    Shared(&'p Plan),
    Owned(Arc<Plan>),
}

impl std::ops::Deref for PlanRef<'_> {
    type Target = Plan;
    fn deref(&self) -> &Plan {
        match self {
            PlanRef::Shared(p) => p,
            PlanRef::Owned(p) => p,
        }
    }
}
