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
    /// An action called `name` of `kind`, with no resource, roles or PHI categories yet:
    /// add them with the `const` builder methods. For actions the macro does not describe
    /// (a coverage check over a hand-made list, a test harness, a benchmark).
    ///
    /// ```
    /// use guardrail_core::{ActionDescriptor, ActionKind};
    /// static EXPORT: ActionDescriptor = ActionDescriptor::new("reports::export", ActionKind::Export)
    ///     .resource("cohort")
    ///     .roles(&["researcher"])
    ///     .phi(&["diagnosis"])
    ///     .located("reports", "src/reports.rs", 12);
    /// assert_eq!(EXPORT.resource, Some("cohort"));
    /// assert!(EXPORT.allows_role("researcher"));
    /// assert_eq!(EXPORT.function, "reports::export");
    /// ```
    pub const fn new(name: &'static str, kind: ActionKind) -> ActionDescriptor {
        ActionDescriptor {
            name,
            kind,
            resource: None,
            roles: &[],
            phi: &[],
            module_path: "",
            file: "",
            line: 0,
            function: name,
            slot: AtomicU64::new(0),
        }
    }

    /// The resource type the action touches.
    pub const fn resource(mut self, resource: &'static str) -> ActionDescriptor {
        self.resource = Some(resource);
        self
    }

    /// The roles the code allows.
    pub const fn roles(mut self, roles: &'static [&'static str]) -> ActionDescriptor {
        self.roles = roles;
        self
    }

    /// The PHI categories the action touches (names as in `phi = [..]`).
    pub const fn phi(mut self, phi: &'static [&'static str]) -> ActionDescriptor {
        self.phi = phi;
        self
    }

    /// Where the action is defined (reports and coverage findings name it).
    pub const fn located(
        mut self,
        module_path: &'static str,
        file: &'static str,
        line: u32,
    ) -> ActionDescriptor {
        self.module_path = module_path;
        self.file = file;
        self.line = line;
        self
    }

    /// The function's own name (default: the action's name).
    pub const fn function(mut self, function: &'static str) -> ActionDescriptor {
        self.function = function;
        self
    }

    /// Built by `#[phi_action]`; not meant to be called by hand (use [`ActionDescriptor::new`]).
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
