//! One compiled `[[rule]]`, read-only for hosts (coverage reports, tooling).

use std::sync::Arc;

use super::compile;
use super::glob::Glob;
use crate::model::{ActionKind, CategorySet};
use crate::policy::Effect;
use crate::registry::ActionDescriptor;
use crate::relation::ConsentSet;

/// When an allow rule needs a just-in-time approval.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RuleApproval {
    Never,
    Always,
    /// When the call's count (1 when absent) is greater than this.
    Over(u64),
}

/// One `[[rule]]` of a policy, as compiled. Read-only; see [`Policy::rules`](super::Policy::rules).
#[derive(Debug, Clone)]
pub struct Rule {
    pub(crate) id: Arc<str>,
    pub(crate) effect: Effect,
    pub(crate) actions: Box<[Glob]>,
    /// Bitmask over [`ActionKind::index`].
    pub(crate) kinds: Option<u8>,
    pub(crate) resources: Option<Vec<Arc<str>>>,
    pub(crate) roles: Option<Vec<Arc<str>>>,
    /// `roles` as bits of the policy's role table (filled when compiling).
    pub(crate) role_mask: u64,
    /// Bitmask over [`Endpoint::index`].
    pub(crate) endpoints: Option<u8>,
    pub(crate) jurisdictions: Option<Box<[Glob]>>,
    /// Bitmask over [`Purpose::index`].
    pub(crate) purposes: Option<u8>,
    pub(crate) self_only: bool,
    /// `agents = [..]`: only calls through one of these agents.
    pub(crate) agents: Option<Vec<Arc<str>>>,
    /// `direct_only = true`: only calls through no agent.
    pub(crate) direct_only: bool,
    pub(crate) max_count: Option<u64>,
    /// `relations = [..]`: the principal has one of these relations to the subject.
    pub(crate) relations: Option<Box<[Arc<str>]>>,
    /// `consent = [..]`: on an allow rule, what each missing consent's categories are
    /// withheld for; on a deny rule, the consents whose absence denies.
    pub(crate) consent: ConsentSet,
    /// `vip = true` (deny rules): the subject is a VIP.
    pub(crate) vip: bool,
    /// `restricted = true` (deny rules): the subject's record is restricted from the
    /// principal or one of its roles.
    pub(crate) restricted: bool,
    pub(crate) reveal: CategorySet,
    pub(crate) approval: RuleApproval,
    pub(crate) line: usize,
}

impl Rule {
    /// The rule's `id`.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// `allow` or `deny`.
    pub fn effect(&self) -> Effect {
        self.effect
    }

    /// The line of the text where the rule starts.
    pub fn line(&self) -> usize {
        self.line
    }

    /// The `actions` patterns as written.
    pub fn action_patterns(&self) -> impl Iterator<Item = &str> {
        self.actions.iter().map(Glob::as_str)
    }

    /// True if one of the `actions` patterns matches `name`.
    pub fn matches_action_name(&self, name: &str) -> bool {
        self.actions.iter().any(|g| g.matches(name))
    }

    /// The `kinds` listed (`None`: any kind).
    pub fn kinds(&self) -> Option<Vec<ActionKind>> {
        self.kinds.map(|mask| {
            ActionKind::ALL
                .iter()
                .copied()
                .filter(|k| mask & (1 << k.index()) != 0)
                .collect()
        })
    }

    /// The `resources` listed (`None`: any resource).
    pub fn resources(&self) -> Option<&[Arc<str>]> {
        self.resources.as_deref()
    }

    /// The `roles` listed (`None`: any role the code allows).
    pub fn roles(&self) -> Option<&[Arc<str>]> {
        self.roles.as_deref()
    }

    /// True if the rule's action, kind and resource conditions hold for `action`, i.e. the
    /// rule is considered for every call of it.
    pub fn applies_to(&self, action: &ActionDescriptor) -> bool {
        compile::statically_applies(self, action)
    }

    /// True if a principal holding `role` satisfies the rule's role condition for an action
    /// whose code allows `role`.
    pub fn allows_role(&self, role: &str) -> bool {
        match &self.roles {
            None => true,
            Some(roles) => roles.iter().any(|r| &**r == role),
        }
    }

    /// The `agents` listed (`None`: any agent, or none).
    pub fn agents(&self) -> Option<&[Arc<str>]> {
        self.agents.as_deref()
    }

    /// True if the rule holds only for calls made directly, through no agent.
    pub fn direct_only(&self) -> bool {
        self.direct_only
    }

    /// True if the rule's agent conditions hold for a call through `agent` (`None`: direct).
    pub fn allows_agent(&self, agent: Option<&str>) -> bool {
        if self.direct_only && agent.is_some() {
            return false;
        }
        match (&self.agents, agent) {
            (None, _) => true,
            (Some(list), Some(a)) => list.iter().any(|x| &**x == a),
            (Some(_), None) => false,
        }
    }

    /// The `relations` listed (`None`: no relationship needed).
    pub fn relations(&self) -> Option<&[Arc<str>]> {
        self.relations.as_deref()
    }

    /// The consents listed in `consent` (empty: none).
    pub fn consents(&self) -> ConsentSet {
        self.consent
    }

    /// True if the (deny) rule singles out VIP patients.
    pub fn vip(&self) -> bool {
        self.vip
    }

    /// True if the (deny) rule singles out records restricted from the principal.
    pub fn restricted(&self) -> bool {
        self.restricted
    }

    /// True if deciding the rule needs a relationship or consent lookup.
    pub(crate) fn needs_lookup(&self) -> bool {
        self.relations.is_some() || !self.consent.is_empty() || self.vip || self.restricted
    }

    /// The categories an allow rule reveals unmasked.
    pub fn reveal(&self) -> CategorySet {
        self.reveal
    }
}
