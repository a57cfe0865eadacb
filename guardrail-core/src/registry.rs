//! The registry of guarded actions: every `#[phi_action]` submits one [`ActionDescriptor`].
//!
//! Registration goes through `inventory`, so the list is complete at startup without any
//! call from `main`. The linker can drop registrations of code that nothing references; the
//! coverage test of a host therefore links the modules it checks (see `coverage`).

use std::collections::BTreeMap;
use std::sync::LazyLock;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::model::ActionKind;

/// What the code itself declares about a guarded action.
#[derive(Debug)]
pub struct ActionDescriptor {
    /// Unique name (default: `module::path::function`).
    pub name: &'static str,
    /// What the action does.
    pub kind: ActionKind,
    /// The resource type touched, if declared.
    pub resource: Option<&'static str>,
    /// Roles the code allows; the policy can only narrow them.
    pub roles: &'static [&'static str],
    /// PHI categories the action touches (see `Category`).
    pub phi: &'static [&'static str],
    /// `module_path!()` of the function.
    pub module_path: &'static str,
    /// `file!()` of the function.
    pub file: &'static str,
    /// `line!()` of the function.
    pub line: u32,
    /// The function's own name.
    pub function: &'static str,
    /// Per-policy-generation cache of this action's compiled plan (see `policy`).
    slot: AtomicU64,
}

impl ActionDescriptor {
    /// Built by `#[phi_action]`; not meant to be called by hand.
    #[doc(hidden)]
    #[allow(clippy::too_many_arguments)]
    pub const fn __new(
        name: &'static str,
        kind: ActionKind,
        resource: Option<&'static str>,
        roles: &'static [&'static str],
        phi: &'static [&'static str],
        module_path: &'static str,
        file: &'static str,
        line: u32,
        function: &'static str,
    ) -> ActionDescriptor {
        ActionDescriptor {
            name,
            kind,
            resource,
            roles,
            phi,
            module_path,
            file,
            line,
            function,
            slot: AtomicU64::new(0),
        }
    }

    /// True if the code allows `role` for this action.
    pub fn allows_role(&self, role: &str) -> bool {
        self.roles.contains(&role)
    }

    /// The cached plan slot: `(generation << 32) | (index + 1)`, 0 when empty.
    pub(crate) fn slot(&self) -> u64 {
        self.slot.load(Ordering::Acquire)
    }

    pub(crate) fn set_slot(&self, value: u64) {
        self.slot.store(value, Ordering::Release);
    }
}

/// The inventory item `#[phi_action]` submits.
#[doc(hidden)]
#[derive(Debug)]
pub struct ActionRegistration(pub &'static ActionDescriptor);

inventory::collect!(ActionRegistration);

/// Two actions registered under one name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "action `{name}` is registered twice: at {first} and at {second}; give one a distinct `name = \"..\"`"
)]
pub struct DuplicateAction {
    /// The shared name.
    pub name: &'static str,
    /// `file:line` of one.
    pub first: String,
    /// `file:line` of the other.
    pub second: String,
}

struct Index {
    sorted: Vec<&'static ActionDescriptor>,
    duplicates: Vec<DuplicateAction>,
}

static INDEX: LazyLock<Index> = LazyLock::new(|| {
    let mut by_name: BTreeMap<&'static str, &'static ActionDescriptor> = BTreeMap::new();
    let mut duplicates = Vec::new();
    for ActionRegistration(d) in inventory::iter::<ActionRegistration> {
        if let Some(prev) = by_name.get(d.name) {
            if !std::ptr::eq(*prev, *d) {
                duplicates.push(DuplicateAction {
                    name: d.name,
                    first: format!("{}:{}", prev.file, prev.line),
                    second: format!("{}:{}", d.file, d.line),
                });
            }
            continue;
        }
        by_name.insert(d.name, d);
    }
    Index {
        sorted: by_name.into_values().collect(),
        duplicates,
    }
});

/// Every registered action, sorted by name (one per name; see [`duplicates`]).
pub fn actions() -> &'static [&'static ActionDescriptor] {
    &INDEX.sorted
}

/// The registered action called `name`.
pub fn find(name: &str) -> Option<&'static ActionDescriptor> {
    let sorted = &INDEX.sorted;
    sorted
        .binary_search_by(|d| d.name.cmp(name))
        .ok()
        .and_then(|i| sorted.get(i).copied())
}

/// Names registered more than once (a configuration error the coverage check reports).
pub fn duplicates() -> &'static [DuplicateAction] {
    &INDEX.duplicates
}
