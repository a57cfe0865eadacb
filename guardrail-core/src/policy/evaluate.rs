//! Deciding one call against a compiled policy.
//!
//! Order: deny rules (any full match denies), then allow rules in file order (the first full
//! match allows), then the default deny with the reason of the allow rule that got furthest,
//! then break-glass, which may turn that default deny into a flagged allow. A host lookup
//! that gives no answer (`relations`, `vip`, `restricted`, `consent`, a representative's
//! `self_only`) denies with `LookupFailed`, which break-glass never opens.
//!
//! The result is the [`Verdict`] itself, borrowing from the policy: an allow touches no
//! reference count and allocates nothing. Each step names *how* it decided ([`Ruling`]);
//! [`Verdict::from_ruling`] is the one place that turns that into the verdict's fields.

use std::fmt;
use std::sync::atomic::Ordering;

use super::compile::{AllowCandidate, CACHEABLE_ROLES, Plan};
use super::verdict::{Grounds, PlanRef, Ruling, Verdict};
use super::{Inner, Policy, Request, Rule, RuleApproval};
use crate::policy::{ApprovalNeed, DenyReason};
pub(crate) use crate::relation::display_equals;
use crate::relation::{Consent, ConsentSet, LookupFailure, Relations};

/// Decides `req` with `plan`, the plan of its action under `policy`.
pub(super) fn evaluate<'p>(
    policy: &'p Policy,
    plan: PlanRef<'p>,
    req: &Request<'_>,
) -> Verdict<'p> {
    let ruling = rule(&policy.inner, &plan, req);
    Verdict::from_ruling(policy, plan, ruling)
}

fn rule<'p>(inner: &'p Inner, plan: &Plan, req: &Request<'_>) -> Ruling<'p> {
    let principal = principal_mask(inner, req);

    for &index in plan.deny.iter() {
        let Some(rule) = inner.rules.get(index as usize) else {
            continue;
        };
        match deny_rule_holds(rule, req, principal) {
            Ok(DenyMatch::Miss) => {}
            Ok(DenyMatch::Hit) => return denied_by_rule(rule, req, None),
            Ok(DenyMatch::MissingConsent(c)) => return denied_by_rule(rule, req, Some(c)),
            Err(failure) => return lookup_failed(failure),
        }
    }

    let mut furthest: Option<Failure> = None;
    for candidate in plan.allow.iter() {
        let Some(rule) = inner.rules.get(candidate.rule as usize) else {
            continue;
        };
        match allow_rule_holds(rule, candidate, plan, req, principal) {
            Ok(grounds) => return allowed(inner, rule, req, grounds),
            Err(failure) => {
                furthest = Some(match furthest {
                    None => failure,
                    Some(best) => best.further(failure),
                });
            }
        }
    }
    match (furthest, req.break_glass) {
        // A lookup without an answer is no default denial: break-glass cannot open it.
        (Some(Failure::Lookup(failure)), _) => lookup_failed(failure),
        (furthest, None) => Ruling::Deny {
            rule: None,
            reason: furthest.map_or(DenyReason::NoMatchingRule, Failure::reason),
        },
        (_, Some(why)) => break_glass(inner, plan, req, principal, why),
    }
}

fn lookup_failed<'p>(failure: LookupFailure) -> Ruling<'p> {
    Ruling::Deny {
        rule: None,
        reason: Failure::Lookup(failure).reason(),
    }
}

/// Whether a deny rule holds, and why.
enum DenyMatch {
    Miss,
    Hit,
    /// The rule's `consent` names a consent that is not on file.
    MissingConsent(Consent),
}

/// The principal's role mask under this policy, memoized in the context's cache.
#[inline]
fn principal_mask(inner: &Inner, req: &Request<'_>) -> u64 {
    if inner.roles.len() > CACHEABLE_ROLES {
        return inner.roles.principal_mask(req.principal);
    }
    let generation = u64::from(inner.generation);
    let cached = req.cache.roles.load(Ordering::Relaxed);
    if cached >> 32 == generation {
        return cached & 0xffff_ffff;
    }
    let mask = inner.roles.principal_mask(req.principal);
    req.cache
        .roles
        .store((generation << 32) | mask, Ordering::Relaxed);
    mask
}

/// A deny rule holds when every condition it lists holds; a condition on a value the
/// request lacks counts as holding (fail safe). The conditions that ask the host come last,
/// so a rule that misses on the request alone asks nothing.
fn deny_rule_holds(
    rule: &Rule,
    req: &Request<'_>,
    principal: u64,
) -> Result<DenyMatch, LookupFailure> {
    if !deny_rule_holds_on_request(rule, req, principal) {
        return Ok(DenyMatch::Miss);
    }
    if !rule.needs_lookup() {
        return Ok(DenyMatch::Hit);
    }
    // Without a single subject there is no patient to ask about: the conditions hold.
    let Some(subject) = req.subject else {
        return Ok(match rule.consent.first() {
            Some(c) => DenyMatch::MissingConsent(c),
            None => DenyMatch::Hit,
        });
    };
    let lookups = &req.cache.lookups;
    if let Some(relations) = &rule.relations {
        // On a deny rule, `relations = [..]` singles out principals with one of them.
        if lookups
            .relation_in(req.principal, subject, relations)?
            .is_none()
        {
            return Ok(DenyMatch::Miss);
        }
    }
    if rule.vip || rule.restricted {
        let (vip, restricted) = lookups.flags(req.principal, subject)?;
        if (rule.vip && !vip) || (rule.restricted && !restricted) {
            return Ok(DenyMatch::Miss);
        }
    }
    if !rule.consent.is_empty() {
        let given = lookups.consents_of(req.principal, subject)?;
        return Ok(match rule.consent.without(given).first() {
            Some(c) => DenyMatch::MissingConsent(c),
            None => DenyMatch::Miss,
        });
    }
    Ok(DenyMatch::Hit)
}

/// The deny rule's conditions on the request itself (no lookup).
fn deny_rule_holds_on_request(rule: &Rule, req: &Request<'_>, principal: u64) -> bool {
    if rule.roles.is_some() && principal & rule.role_mask == 0 {
        return false;
    }
    if let (Some(mask), Some(e)) = (rule.endpoints, req.endpoint) {
        if mask & (1 << e.index()) == 0 {
            return false;
        }
    }
    if let (Some(globs), Some(j)) = (&rule.jurisdictions, req.principal.get_jurisdiction()) {
        if !globs.iter().any(|g| g.matches(j)) {
            return false;
        }
    }
    if let (Some(mask), Some(p)) = (rule.purposes, req.purpose) {
        if mask & (1 << p.index()) == 0 {
            return false;
        }
    }
    if let Some(agents) = &rule.agents {
        // On a deny rule, `agents = [..]` singles out calls through those agents; a direct
        // call is not one of them.
        match req.agent {
            Some(a) if agents.iter().any(|x| &**x == a) => {}
            _ => return false,
        }
    }
    if let Some(max) = rule.max_count {
        // On a deny rule, `max_count = N` singles out calls over N records.
        if req.count.unwrap_or(1) <= max {
            return false;
        }
    }
    true
}

/// How far an allow rule got before a condition failed; later stages are more informative.
#[derive(Debug, Clone, Copy)]
enum Failure {
    Role,
    Agent,
    Endpoint { missing: bool },
    Jurisdiction,
    Purpose { missing: bool },
    Subject { missing: bool },
    Count { count: u64, limit: u64 },
    Relation,
    Lookup(LookupFailure),
}

impl Failure {
    fn stage(self) -> u8 {
        match self {
            Failure::Role => 1,
            Failure::Agent => 2,
            Failure::Endpoint { .. } => 3,
            Failure::Jurisdiction => 4,
            Failure::Purpose { .. } => 5,
            Failure::Subject { .. } => 6,
            Failure::Count { .. } => 7,
            Failure::Relation => 8,
            Failure::Lookup(_) => 9,
        }
    }

    /// The more informative of two failures: the later stage; the first rule on a tie, except
    /// that among count failures the highest limit is reported.
    fn further(self, other: Failure) -> Failure {
        match (self, other) {
            (Failure::Count { count, limit: a }, Failure::Count { limit: b, .. }) => {
                Failure::Count {
                    count,
                    limit: a.max(b),
                }
            }
            _ if other.stage() > self.stage() => other,
            _ => self,
        }
    }

    fn reason(self) -> DenyReason {
        match self {
            Failure::Role => DenyReason::RoleNotAllowed,
            Failure::Agent => DenyReason::AgentNotAllowed,
            Failure::Endpoint { missing: true } => DenyReason::MissingContext { field: "endpoint" },
            Failure::Endpoint { missing: false } => DenyReason::EndpointNotAllowed,
            Failure::Jurisdiction => DenyReason::JurisdictionNotAllowed,
            Failure::Purpose { missing: true } => DenyReason::MissingContext { field: "purpose" },
            Failure::Purpose { missing: false } => DenyReason::PurposeNotAllowed,
            Failure::Subject { missing: true } => DenyReason::MissingContext { field: "subject" },
            Failure::Subject { missing: false } => DenyReason::NotOwnSubject,
            Failure::Count { count, limit } => DenyReason::CountOverLimit { count, limit },
            Failure::Relation => DenyReason::NoRelationship,
            Failure::Lookup(f) => DenyReason::LookupFailed {
                provider: f.provider.name(),
                why: f.why,
            },
        }
    }
}

/// An allow rule applies when every condition it lists holds for the request; what it rested
/// on beyond the request (a relation, a representative) is returned.
#[inline]
fn allow_rule_holds(
    rule: &Rule,
    candidate: &AllowCandidate,
    plan: &Plan,
    req: &Request<'_>,
    principal: u64,
) -> Result<Grounds, Failure> {
    let role_ok = if candidate.any_code_role {
        principal & plan.code_mask != 0 || (plan.code_untabled && holds_untabled_code_role(req))
    } else {
        principal & candidate.roles != 0
    };
    if !role_ok {
        return Err(Failure::Role);
    }
    if (rule.direct_only || rule.agents.is_some()) && !rule.allows_agent(req.agent) {
        return Err(Failure::Agent);
    }
    if let Some(mask) = rule.endpoints {
        match req.endpoint {
            None => return Err(Failure::Endpoint { missing: true }),
            Some(e) if mask & (1 << e.index()) == 0 => {
                return Err(Failure::Endpoint { missing: false });
            }
            Some(_) => {}
        }
    }
    if let Some(globs) = &rule.jurisdictions {
        // A principal without a jurisdiction does not match a rule that lists some.
        match req.principal.get_jurisdiction() {
            Some(j) if globs.iter().any(|g| g.matches(j)) => {}
            _ => return Err(Failure::Jurisdiction),
        }
    }
    if let Some(mask) = rule.purposes {
        match req.purpose {
            None => return Err(Failure::Purpose { missing: true }),
            Some(p) if mask & (1 << p.index()) == 0 => {
                return Err(Failure::Purpose { missing: false });
            }
            Some(_) => {}
        }
    }
    let mut grounds = Grounds::default();
    if rule.self_only {
        let Some(subject) = req.subject else {
            return Err(Failure::Subject { missing: true });
        };
        match req.principal.get_patient() {
            Some(own) if display_equals(subject, own) => {}
            _ => {
                grounds.representative = represents(req, subject)?;
            }
        }
    }
    if let Some(limit) = rule.max_count {
        let count = req.count.unwrap_or(1);
        if count > limit {
            return Err(Failure::Count { count, limit });
        }
    }
    if let Some(relations) = &rule.relations {
        let Some(subject) = req.subject else {
            return Err(Failure::Subject { missing: true });
        };
        match req
            .cache
            .lookups
            .relation_in(req.principal, subject, relations)
        {
            Ok(Some(i)) => grounds.relation = relations.get(i).cloned(),
            Ok(None) => return Err(Failure::Relation),
            Err(f) => return Err(Failure::Lookup(f)),
        }
    }
    Ok(grounds)
}

/// `self_only` for someone else's record: true if the principal is the subject's personal
/// representative (asked only when a relationship provider is configured).
#[cold]
fn represents(req: &Request<'_>, subject: &dyn fmt::Display) -> Result<bool, Failure> {
    let lookups = &req.cache.lookups;
    if !lookups.has_relationships() {
        return Err(Failure::Subject { missing: false });
    }
    match lookups.relation_in(
        req.principal,
        subject,
        &[Relations::PERSONAL_REPRESENTATIVE],
    ) {
        Ok(Some(_)) => Ok(true),
        Ok(None) => Err(Failure::Subject { missing: false }),
        Err(f) => Err(Failure::Lookup(f)),
    }
}

/// The code allows a role outside the policy's role table that the principal holds (only
/// for actions declaring more roles than the table has bits for).
#[cold]
fn holds_untabled_code_role(req: &Request<'_>) -> bool {
    req.action.roles.iter().any(|r| req.principal.has_role(r))
}

fn allowed<'p>(
    inner: &Inner,
    rule: &'p Rule,
    req: &Request<'_>,
    mut grounds: Grounds,
) -> Ruling<'p> {
    if !rule.consent.is_empty() {
        // Without a single subject no consent can be on file: the segments stay masked.
        let given = match req.subject {
            None => ConsentSet::EMPTY,
            Some(subject) => match req.cache.lookups.consents_of(req.principal, subject) {
                Ok(given) => given,
                Err(failure) => return lookup_failed(failure),
            },
        };
        let missing = rule.consent.without(given);
        grounds.consent_missing = missing;
        grounds.withheld = missing.categories().intersection(rule.reveal);
    }
    let approval = match rule.approval {
        RuleApproval::Never => ApprovalNeed::None,
        RuleApproval::Always => approval_required(inner),
        RuleApproval::Over(over) if req.count.unwrap_or(1) > over => approval_required(inner),
        RuleApproval::Over(_) => ApprovalNeed::None,
    };
    Ruling::Allow {
        rule,
        approval,
        grounds,
    }
}

fn approval_required(inner: &Inner) -> ApprovalNeed {
    ApprovalNeed::Required {
        ttl_secs: inner
            .approval
            .as_ref()
            .map_or(super::parse::DEFAULT_APPROVAL_TTL_SECS, |a| a.ttl_secs),
    }
}

fn denied_by_rule<'p>(rule: &'p Rule, req: &Request<'_>, consent: Option<Consent>) -> Ruling<'p> {
    let reason = match (req.break_glass, consent) {
        (None, Some(consent)) => DenyReason::ConsentMissing {
            rule: rule.id.clone(),
            consent,
        },
        (None, None) => DenyReason::DeniedByRule {
            rule: rule.id.clone(),
        },
        (Some(_), _) => DenyReason::BreakGlassNotPermitted {
            why: format!(
                "rule `{}` denies this call and break-glass cannot override a deny rule",
                rule.id
            ),
        },
    };
    Ruling::Deny {
        rule: Some(rule),
        reason,
    }
}

/// Break-glass on a call the rules denied by default: allowed and flagged when the
/// `[break_glass]` section permits it, otherwise refused with what closes it.
fn break_glass<'p>(
    inner: &'p Inner,
    plan: &Plan,
    req: &Request<'_>,
    principal: u64,
    reason: &str,
) -> Ruling<'p> {
    let refuse = |why: String| Ruling::Deny {
        rule: None,
        reason: DenyReason::BreakGlassNotPermitted { why },
    };
    let Some(bg) = &inner.break_glass else {
        return refuse("the policy has no `[break_glass]` section".into());
    };
    // Whitespace or invisible characters only (zero-width spaces…) is no reason either.
    if crate::mask::is_blank_text(reason) {
        return refuse("no reason was given; declare the emergency with a reason".into());
    }
    if principal & bg.role_mask & plan.code_mask == 0 {
        return refuse(format!(
            "none of the principal's roles may declare break-glass for `{}`",
            req.action.name
        ));
    }
    let action = req.action;
    if bg.def.kinds & (1 << action.kind.index()) == 0 {
        return refuse(format!("break-glass cannot open `{}` actions", action.kind));
    }
    if let Some(resources) = &bg.def.resources {
        match action.resource {
            Some(r) if resources.iter().any(|x| &**x == r) => {}
            Some(r) => return refuse(format!("break-glass cannot open resource `{r}`")),
            None => {
                return refuse(format!(
                    "break-glass is limited to listed resources and `{}` declares none",
                    action.name
                ));
            }
        }
    }
    if let Some(globs) = &bg.def.actions {
        if !globs.iter().any(|g| g.matches(action.name)) {
            return refuse(format!("break-glass cannot open action `{}`", action.name));
        }
    }
    if let Some(max) = bg.def.max_count {
        let count = req.count.unwrap_or(1);
        if count > max {
            return refuse(format!(
                "break-glass is limited to {max} records and {count} were requested"
            ));
        }
    }
    Ruling::BreakGlass {
        reveal: bg.def.reveal,
    }
}

#[cfg(test)]
mod tests {
    use super::display_equals;
    use crate::model::{ActionKind, Principal};
    use crate::policy::{ContextCache, DenyReason, Effect, Policy, Request};
    use crate::registry::ActionDescriptor;

    static READ: ActionDescriptor =
        ActionDescriptor::new("t::chart::read", ActionKind::Read).roles(&["provider"]);
    static NOTE: ActionDescriptor =
        ActionDescriptor::new("t::note::add", ActionKind::Create).roles(&["provider"]);

    const AGENTS: &str = r#"
version = "t"

[[rule]]
id = "read-via-assistant"
effect = "allow"
actions = ["t::chart::read"]
roles = ["provider"]
agents = ["clinic-assistant"]

[[rule]]
id = "note-direct"
effect = "allow"
actions = ["t::note::add"]
roles = ["provider"]
direct_only = true
"#;

    fn decide(policy: &Policy, action: &'static ActionDescriptor, agent: Option<&str>) -> Effect {
        let principal = Principal::new("dr-grey").role("provider");
        let cache = ContextCache::default();
        let req = Request {
            action,
            principal: &principal,
            endpoint: None,
            purpose: None,
            subject: None,
            count: None,
            break_glass: None,
            agent,
            cache: &cache,
        };
        policy.evaluate(&req).effect
    }

    #[test]
    fn an_agents_rule_allows_only_through_a_listed_agent() {
        let policy = Policy::from_toml_str(AGENTS).unwrap();
        assert_eq!(
            decide(&policy, &READ, Some("clinic-assistant")),
            Effect::Allow
        );
        assert_eq!(decide(&policy, &READ, Some("other-bot")), Effect::Deny);
        assert_eq!(decide(&policy, &READ, None), Effect::Deny);
        let principal = Principal::new("dr-grey").role("provider");
        let cache = ContextCache::default();
        let req = Request {
            action: &READ,
            principal: &principal,
            endpoint: None,
            purpose: None,
            subject: None,
            count: None,
            break_glass: None,
            agent: Some("other-bot"),
            cache: &cache,
        };
        assert_eq!(
            policy.decide(&req).reason,
            Some(DenyReason::AgentNotAllowed)
        );
    }

    #[test]
    fn direct_only_refuses_every_agent() {
        let policy = Policy::from_toml_str(AGENTS).unwrap();
        assert_eq!(decide(&policy, &NOTE, None), Effect::Allow);
        assert_eq!(
            decide(&policy, &NOTE, Some("clinic-assistant")),
            Effect::Deny
        );
        assert_eq!(decide(&policy, &NOTE, Some("other-bot")), Effect::Deny);
    }

    #[test]
    fn a_deny_rule_with_agents_singles_out_those_agents() {
        let text = r#"
version = "t"

[[rule]]
id = "no-bots"
effect = "deny"
actions = ["t::chart::read"]
agents = ["other-bot"]

[[rule]]
id = "read"
effect = "allow"
actions = ["t::chart::read"]
roles = ["provider"]
"#;
        let policy = Policy::from_toml_str(text).unwrap();
        assert_eq!(decide(&policy, &READ, Some("other-bot")), Effect::Deny);
        assert_eq!(
            decide(&policy, &READ, Some("clinic-assistant")),
            Effect::Allow
        );
        assert_eq!(decide(&policy, &READ, None), Effect::Allow);
    }

    #[test]
    fn direct_only_is_refused_on_deny_rules_and_beside_agents() {
        let deny = "version = \"t\"\n[[rule]]\nid = \"d\"\neffect = \"deny\"\nactions = [\"*\"]\ndirect_only = true\n";
        let err = Policy::from_toml_str(deny).unwrap_err().to_string();
        assert!(err.contains("direct_only"), "{err}");
        let both = "version = \"t\"\n[[rule]]\nid = \"a\"\neffect = \"allow\"\nactions = [\"*\"]\nagents = [\"x\"]\ndirect_only = true\n";
        let err = Policy::from_toml_str(both).unwrap_err().to_string();
        assert!(err.contains("direct_only"), "{err}");
    }

    #[test]
    fn display_comparison_is_exact() {
        assert!(display_equals(&"p-100", "p-100"));
        assert!(display_equals(&100u32, "100"));
        assert!(!display_equals(&"p-100", "p-1000"));
        assert!(!display_equals(&"p-1000", "p-100"));
        assert!(!display_equals(&"", "p"));
        assert!(display_equals(&"", ""));
        assert!(display_equals(&format_args!("p-{}", 7), "p-7"));
    }
}
