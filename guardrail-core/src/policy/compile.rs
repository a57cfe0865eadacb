//! The compiled form of a policy: role names as bits, and per action a [`Plan`] of the rules
//! that can apply to it, so that a decision touches only those rules and compares no strings
//! except the jurisdiction.

use std::collections::HashMap;
use std::sync::Arc;

use super::Rule;
use super::parse::BreakGlassDef;
use crate::model::Principal;
use crate::policy::Effect;
use crate::registry::ActionDescriptor;

/// Role names as bit positions: first the roles the policy names (at most 64, checked when
/// parsing), then the roles the registered actions declare, as long as bits remain.
#[derive(Debug)]
pub(crate) struct RoleTable {
    bits: HashMap<Arc<str>, u32>,
}

/// A role mask fits the per-context cache (32 bits next to a 32-bit generation) when the
/// table has at most this many roles; larger tables compute the mask per call.
pub(crate) const CACHEABLE_ROLES: usize = 32;

impl RoleTable {
    pub(crate) fn build(
        rules: &[Rule],
        break_glass: Option<&BreakGlassDef>,
        actions: &[&'static ActionDescriptor],
    ) -> RoleTable {
        let mut bits: HashMap<Arc<str>, u32> = HashMap::new();
        let add = |bits: &mut HashMap<Arc<str>, u32>, name: &str, limit: usize| {
            if bits.len() < limit && !bits.contains_key(name) {
                let bit = bits.len() as u32;
                bits.insert(Arc::from(name), bit);
            }
        };
        for rule in rules {
            for role in rule.roles.iter().flatten() {
                add(&mut bits, role, 64);
            }
        }
        for role in break_glass.map(|b| b.roles.as_slice()).unwrap_or_default() {
            add(&mut bits, role, 64);
        }
        // The code's roles only get spare bits, and never push a table that fits the
        // per-context cache out of it: a code role without a bit is checked by name.
        let limit = if bits.len() <= CACHEABLE_ROLES {
            CACHEABLE_ROLES
        } else {
            64
        };
        for action in actions {
            for role in action.roles {
                add(&mut bits, role, limit);
            }
        }
        RoleTable { bits }
    }

    pub(crate) fn len(&self) -> usize {
        self.bits.len()
    }

    pub(crate) fn bit(&self, name: &str) -> Option<u32> {
        self.bits.get(name).copied()
    }

    /// The mask of `names`, ignoring names outside the table.
    pub(crate) fn mask<'n>(&self, names: impl IntoIterator<Item = &'n str>) -> u64 {
        names
            .into_iter()
            .filter_map(|n| self.bit(n))
            .fold(0, |m, b| m | (1 << b))
    }

    /// The mask of the roles `principal` holds.
    pub(crate) fn principal_mask(&self, principal: &Principal) -> u64 {
        self.mask(principal.get_roles().iter().map(|r| &**r))
    }
}

/// An allow rule that can apply to an action, with its role condition already intersected
/// with the roles the code allows.
#[derive(Debug, Clone, Copy)]
pub(crate) struct AllowCandidate {
    /// Index into the policy's rules.
    pub(crate) rule: u32,
    /// Roles that satisfy the rule (rule roles ∩ code roles); unused when `any_code_role`.
    pub(crate) roles: u64,
    /// The rule lists no roles: any role the code allows satisfies it.
    pub(crate) any_code_role: bool,
}

/// The action's names as shared strings, so that events can carry them without allocating.
#[derive(Debug, Clone)]
pub(crate) struct ActionLabels {
    pub(crate) name: Arc<str>,
    pub(crate) kind: Arc<str>,
    pub(crate) resource: Option<Arc<str>>,
}

impl ActionLabels {
    /// The labels of `action`, freshly allocated (the compiled plans share theirs).
    pub(crate) fn of(action: &ActionDescriptor) -> ActionLabels {
        ActionLabels {
            name: Arc::from(action.name),
            kind: action.kind.label(),
            resource: action.resource.map(Arc::from),
        }
    }
}

/// What a policy needs to decide calls of one action.
#[derive(Debug)]
pub(crate) struct Plan {
    pub(crate) labels: ActionLabels,
    /// Deny rules whose action, kind and resource conditions hold for the action.
    pub(crate) deny: Box<[u32]>,
    /// Allow rules whose action, kind and resource conditions hold, in file order.
    pub(crate) allow: Box<[AllowCandidate]>,
    /// The code's roles that are in the role table.
    pub(crate) code_mask: u64,
    /// The code names a role outside the table (checked by name, rarely).
    pub(crate) code_untabled: bool,
}

/// True if `rule`'s action, kind and resource conditions hold for `action`. A deny rule's
/// resource condition holds for an action that declares no resource (fail safe).
pub(crate) fn statically_applies(rule: &Rule, action: &ActionDescriptor) -> bool {
    if !rule.actions.iter().any(|g| g.matches(action.name)) {
        return false;
    }
    if let Some(kinds) = rule.kinds {
        if kinds & (1 << action.kind.index()) == 0 {
            return false;
        }
    }
    if let Some(resources) = &rule.resources {
        match action.resource {
            Some(r) => {
                if !resources.iter().any(|x| &**x == r) {
                    return false;
                }
            }
            None => return rule.effect == Effect::Deny,
        }
    }
    true
}

pub(crate) fn plan_for(rules: &[Rule], table: &RoleTable, action: &ActionDescriptor) -> Plan {
    let code_mask = table.mask(action.roles.iter().copied());
    let code_untabled = action.roles.iter().any(|r| table.bit(r).is_none());
    let mut deny = Vec::new();
    let mut allow = Vec::new();
    for (i, rule) in rules.iter().enumerate() {
        if !statically_applies(rule, action) {
            continue;
        }
        let Ok(index) = u32::try_from(i) else { break };
        match rule.effect {
            Effect::Deny => deny.push(index),
            Effect::Allow => allow.push(AllowCandidate {
                rule: index,
                roles: rule.role_mask & code_mask,
                any_code_role: rule.roles.is_none(),
            }),
        }
    }
    Plan {
        labels: ActionLabels::of(action),
        deny: deny.into_boxed_slice(),
        allow: allow.into_boxed_slice(),
        code_mask,
        code_untabled,
    }
}
