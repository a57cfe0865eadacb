//! The result of evaluating a policy for one call.

use std::fmt;
use std::sync::Arc;

use crate::model::CategorySet;

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
    /// A `self_only` rule matched, but the subject is not the principal's own patient id.
    NotOwnSubject,
    /// More records than the rule's `max_count`.
    CountOverLimit {
        /// Records requested.
        count: u64,
        /// The highest limit any matching rule allows.
        limit: u64,
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
    /// `jurisdiction`, `subject`, `count`).
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
            DenyReason::NotOwnSubject => f.write_str("a patient may only access their own records"),
            DenyReason::CountOverLimit { count, limit } => {
                write!(f, "{count} records requested, the limit is {limit}")
            }
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
            DenyReason::NotOwnSubject => "not_own_subject",
            DenyReason::CountOverLimit { .. } => "count",
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
            policy_version,
            policy_hash,
        }
    }
}
