//! Coverage: does every guarded action have a rule, and every rule an action?
//!
//! Owns the registry-against-policy check and the scan of a host's sources.
//! May use: policy, registry, model. Nothing uses it but hosts' tests and the CLI.
//!
//! A host's test calls [`assert_complete`] with its policy; the test fails with a table of
//! findings when an annotated action has no allow rule, when a role the code declares can
//! never be admitted, when a rule matches nothing, when two actions share a name, or when the
//! registry is empty (the linker can drop `inventory` registrations of modules nothing
//! references: an empty registry means the check would vouch for nothing).
//!
//! The check is static: it considers each rule's action patterns, kinds, resources and roles,
//! not the per-call conditions (endpoint, jurisdiction, purpose, subject, count).
//!
//! ```
//! use guardrail_core::{coverage, Policy};
//! use guardrail_core::registry::ActionDescriptor;
//! use guardrail_core::ActionKind;
//!
//! static READ: ActionDescriptor = ActionDescriptor::__new(
//!     "clinic::read_chart", ActionKind::Read, Some("chart"), &["provider", "billing"], &[],
//!     "clinic", "clinic.rs", 10, "read_chart",
//! );
//! let policy = Policy::from_toml_str(r#"
//!     version = "1"
//!     [[rule]]
//!     id = "providers"
//!     effect = "allow"
//!     actions = ["clinic::*"]
//!     roles = ["provider"]
//! "#).unwrap();
//! let report = coverage::check_actions(&policy, &[&READ]);
//! assert!(!report.is_complete()); // `billing` is declared by the code but never allowed
//! println!("{report}");
//! ```

#[cfg(feature = "scan")]
mod scan;
#[cfg(feature = "scan")]
pub use scan::{Exemption, ScanError, ScanReport, SourceFinding, Why, scan_sources};
#[cfg(feature = "scan")]
mod complete;
#[cfg(feature = "scan")]
pub use complete::{CompleteReport, assert_complete_with_sources, check_with_sources};

use std::collections::BTreeMap;
use std::fmt;

use crate::policy::Effect;
use crate::policy::{Policy, Rule};
use crate::registry::{self, ActionDescriptor, DuplicateAction};

/// One problem the coverage check found.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Finding {
    /// No action is registered at all.
    EmptyRegistry,
    /// Two actions are registered under one name.
    DuplicateAction(DuplicateAction),
    /// No allow rule can match this action for any of the roles its code declares.
    UncoveredAction {
        /// The action's name.
        action: &'static str,
        /// `file:line` of its definition.
        location: String,
    },
    /// A deny rule without per-call conditions matches this action: every call is denied.
    AlwaysDenied {
        /// The action's name.
        action: &'static str,
        /// The deny rule.
        rule: String,
    },
    /// The code declares `role` for the action, but no allow rule admits it.
    RoleNeverAllowed {
        /// The action's name.
        action: &'static str,
        /// The role.
        role: &'static str,
    },
    /// A rule applies to no registered action.
    UnusedRule {
        /// The rule's id.
        rule: String,
        /// The line where it starts.
        line: usize,
        /// True if some action names match but kinds or resources exclude them all.
        names_match: bool,
    },
}

impl Finding {
    fn columns(&self) -> (&'static str, String, String) {
        match self {
            Finding::EmptyRegistry => (
                "empty registry",
                "-".into(),
                "no guarded action is registered; the linker may have dropped the registrations: \
                 reference the modules that define the actions from this test"
                    .into(),
            ),
            Finding::DuplicateAction(d) => (
                "duplicate action",
                d.name.into(),
                format!(
                    "registered at {} and at {}; give one a distinct `name = \"..\"`",
                    d.first, d.second
                ),
            ),
            Finding::UncoveredAction { action, location } => (
                "uncovered action",
                (*action).into(),
                format!("no allow rule matches it for any role its code declares ({location})"),
            ),
            Finding::AlwaysDenied { action, rule } => (
                "always denied",
                (*action).into(),
                format!("deny rule `{rule}` has no per-call condition and denies every call"),
            ),
            Finding::RoleNeverAllowed { action, role } => (
                "role never allowed",
                (*action).into(),
                format!("the code declares role `{role}` but no allow rule admits it"),
            ),
            Finding::UnusedRule {
                rule,
                line,
                names_match,
            } => (
                "unused rule",
                format!("rule `{rule}`"),
                if *names_match {
                    format!(
                        "line {line}: its actions match registered names but its kinds or resources exclude them all"
                    )
                } else {
                    format!("line {line}: its action patterns match no registered action")
                },
            ),
        }
    }
}

/// The result of a coverage check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CoverageReport {
    policy_version: String,
    actions: usize,
    rules: usize,
    findings: Vec<Finding>,
}

impl CoverageReport {
    /// True if there is nothing to report.
    pub fn is_complete(&self) -> bool {
        self.findings.is_empty()
    }

    /// The findings, grouped by kind.
    pub fn findings(&self) -> &[Finding] {
        &self.findings
    }

    /// How many actions were checked.
    pub fn action_count(&self) -> usize {
        self.actions
    }
}

impl fmt::Display for CoverageReport {
    /// A table, one finding per row, columns aligned.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "coverage of policy `{}`: {} action(s), {} rule(s), {} finding(s)",
            self.policy_version,
            self.actions,
            self.rules,
            self.findings.len()
        )?;
        if self.findings.is_empty() {
            return Ok(());
        }
        let rows: Vec<(&str, String, String)> =
            self.findings.iter().map(Finding::columns).collect();
        let w0 = rows
            .iter()
            .map(|r| r.0.len())
            .max()
            .unwrap_or(0)
            .max("FINDING".len());
        let w1 = rows
            .iter()
            .map(|r| r.1.chars().count())
            .max()
            .unwrap_or(0)
            .max("SUBJECT".len());
        writeln!(f, "{:<w0$}  {:<w1$}  DETAIL", "FINDING", "SUBJECT")?;
        writeln!(f, "{:-<w0$}  {:-<w1$}  {:-<6}", "", "", "")?;
        for (kind, subject, detail) in rows {
            writeln!(f, "{kind:<w0$}  {subject:<w1$}  {detail}")?;
        }
        Ok(())
    }
}

/// Checks every registered action (see [`registry::actions`]) against `policy`, including
/// duplicate registrations and an empty registry.
pub fn check(policy: &Policy) -> CoverageReport {
    let mut report = check_list(policy, registry::actions());
    report.findings.extend(
        registry::duplicates()
            .iter()
            .cloned()
            .map(Finding::DuplicateAction),
    );
    sort(&mut report.findings);
    report
}

/// Checks the given actions against `policy` (duplicates are names given twice with
/// different descriptors).
pub fn check_actions(policy: &Policy, actions: &[&'static ActionDescriptor]) -> CoverageReport {
    let mut unique: BTreeMap<&'static str, &'static ActionDescriptor> = BTreeMap::new();
    let mut duplicates = Vec::new();
    for action in actions {
        match unique.get(action.name) {
            Some(first) if !std::ptr::eq(*first, *action) => {
                duplicates.push(Finding::DuplicateAction(DuplicateAction {
                    name: action.name,
                    first: format!("{}:{}", first.file, first.line),
                    second: format!("{}:{}", action.file, action.line),
                }));
            }
            Some(_) => {}
            None => {
                unique.insert(action.name, action);
            }
        }
    }
    let list: Vec<&'static ActionDescriptor> = unique.into_values().collect();
    let mut report = check_list(policy, &list);
    report.findings.extend(duplicates);
    sort(&mut report.findings);
    report
}

/// Panics with the coverage report of `policy` unless it is complete. Meant for a test:
///
/// ```no_run
/// #[test]
/// fn every_action_has_a_rule() {
///     let policy = guardrail_core::Policy::from_path("policy.toml").unwrap();
///     guardrail_core::coverage::assert_complete(&policy);
/// }
/// ```
#[track_caller]
#[expect(
    clippy::panic,
    reason = "a test helper: failing the calling test with the report is its purpose"
)]
pub fn assert_complete(policy: &Policy) {
    let report = check(policy);
    if !report.is_complete() {
        panic!("the policy does not cover the guarded actions\n{report}");
    }
}

fn check_list(policy: &Policy, actions: &[&'static ActionDescriptor]) -> CoverageReport {
    let rules = policy.rules();
    let mut findings = Vec::new();
    if actions.is_empty() {
        findings.push(Finding::EmptyRegistry);
    }
    for action in actions {
        let applying: Vec<&Rule> = rules.iter().filter(|r| r.applies_to(action)).collect();
        if let Some(rule) = applying
            .iter()
            .find(|r| r.effect() == Effect::Deny && unconditional(r))
        {
            findings.push(Finding::AlwaysDenied {
                action: action.name,
                rule: rule.id().to_owned(),
            });
            continue;
        }
        let allows: Vec<&&Rule> = applying
            .iter()
            .filter(|r| r.effect() == Effect::Allow)
            .collect();
        let admitted: Vec<&'static str> = action
            .roles
            .iter()
            .copied()
            .filter(|role| allows.iter().any(|r| r.allows_role(role)))
            .collect();
        if admitted.is_empty() {
            findings.push(Finding::UncoveredAction {
                action: action.name,
                location: format!("{}:{}", action.file, action.line),
            });
            continue;
        }
        for role in action.roles {
            if !admitted.contains(role) {
                findings.push(Finding::RoleNeverAllowed {
                    action: action.name,
                    role,
                });
            }
        }
    }
    if !actions.is_empty() {
        for rule in rules {
            if !actions.iter().any(|a| rule.applies_to(a)) {
                findings.push(Finding::UnusedRule {
                    rule: rule.id().to_owned(),
                    line: rule.line(),
                    names_match: actions.iter().any(|a| rule.matches_action_name(a.name)),
                });
            }
        }
    }
    CoverageReport {
        policy_version: policy.version().to_owned(),
        actions: actions.len(),
        rules: rules.len(),
        findings,
    }
}

/// A deny rule with no per-call condition denies every call of the actions it applies to.
fn unconditional(rule: &Rule) -> bool {
    rule.roles().is_none()
        && rule.endpoints.is_none()
        && rule.jurisdictions.is_none()
        && rule.purposes.is_none()
        && rule.max_count.is_none()
}

fn sort(findings: &mut [Finding]) {
    fn rank(f: &Finding) -> u8 {
        match f {
            Finding::EmptyRegistry => 0,
            Finding::DuplicateAction(_) => 1,
            Finding::UncoveredAction { .. } => 2,
            Finding::AlwaysDenied { .. } => 3,
            Finding::RoleNeverAllowed { .. } => 4,
            Finding::UnusedRule { .. } => 5,
        }
    }
    // Stable: within a kind, actions stay sorted by name and rules in file order.
    findings.sort_by_key(rank);
}
