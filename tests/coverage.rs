//! Coverage: registered actions against a policy; findings and the readable report.
//!
//! This binary registers its own actions through `inventory` exactly as `#[phi_action]`
//! does, so `registry::actions()` holds these and nothing else.

use guardrail_core::__private::inventory;
use guardrail_core::coverage::{self, Finding};
use guardrail_core::registry::{self, ActionDescriptor, ActionRegistration};
use guardrail_core::{ActionKind, Policy};

macro_rules! register {
    ($ident:ident, $name:literal, $kind:ident, $resource:expr, [$($role:literal),*]) => {
        static $ident: ActionDescriptor = { let d = ActionDescriptor::new($name, ActionKind::$kind)
            .roles(&[$($role),*])
            .located(module_path!(), file!(), line!())
            .function(stringify!($ident)); match $resource { Some(r) => d.resource(r), None => d } };
        inventory::submit! { ActionRegistration(&$ident) }
    };
}

register!(
    CHART_READ,
    "cov::chart::read",
    Read,
    Some("chart"),
    ["provider", "billing"]
);
register!(
    CHART_UPDATE,
    "cov::chart::update",
    Update,
    Some("chart"),
    ["provider"]
);
register!(
    EXPORT,
    "cov::research::export",
    Export,
    Some("cohort"),
    ["researcher"]
);
register!(PURGE, "cov::admin::purge", Delete, Some("chart"), ["admin"]);
register!(DUP_A, "cov::dup", Read, None, ["provider"]);
register!(DUP_B, "cov::dup", Read, None, ["provider"]);

const POLICY: &str = r#"
version = "cov-1"

[[rule]]
id = "providers"
effect = "allow"
actions = ["cov::chart::*", "cov::dup"]
roles = ["provider"]
endpoints = ["provider"]

[[rule]]
id = "admins"
effect = "allow"
actions = ["cov::admin::*"]
roles = ["admin"]

[[rule]]
id = "never-purge"
effect = "deny"
actions = ["cov::admin::purge"]

[[rule]]
id = "legacy"
effect = "allow"
actions = ["legacy::*"]

[[rule]]
id = "chart-exports"
effect = "allow"
actions = ["cov::chart::*"]
kinds = ["export"]
"#;

fn policy() -> Policy {
    Policy::from_toml_str(POLICY).unwrap()
}

#[test]
fn the_registry_lists_every_registered_action() {
    let names: Vec<&str> = registry::actions().iter().map(|a| a.name).collect();
    assert_eq!(
        names,
        [
            "cov::admin::purge",
            "cov::chart::read",
            "cov::chart::update",
            "cov::dup",
            "cov::research::export"
        ]
    );
    assert!(registry::find("cov::chart::read").is_some_and(|a| std::ptr::eq(a, &CHART_READ)));
    assert_eq!(registry::duplicates().len(), 1);
}

#[test]
fn check_reports_every_kind_of_finding() {
    let report = coverage::check(&policy());
    assert!(!report.is_complete());
    assert_eq!(report.action_count(), 5);
    let findings = report.findings();
    let dup = registry::duplicates()[0].clone();
    assert_eq!(
        findings,
        &[
            Finding::DuplicateAction(dup),
            Finding::UncoveredAction {
                action: "cov::research::export",
                location: format!("{}:{}", EXPORT.file, EXPORT.line),
            },
            Finding::AlwaysDenied {
                action: "cov::admin::purge",
                rule: "never-purge".into(),
            },
            Finding::RoleNeverAllowed {
                action: "cov::chart::read",
                role: "billing",
            },
            Finding::UnusedRule {
                rule: "legacy".into(),
                line: 22,
                names_match: false,
            },
            Finding::UnusedRule {
                rule: "chart-exports".into(),
                line: 27,
                names_match: true,
            },
        ]
    );
}

#[test]
fn a_complete_policy_has_no_findings() {
    let policy = Policy::from_toml_str(
        r#"
version = "complete"
[[rule]]
id = "charts"
effect = "allow"
actions = ["cov::chart::*"]
roles = ["provider", "billing"]
[[rule]]
id = "research"
effect = "allow"
actions = ["cov::research::*"]
kinds = ["export"]
"#,
    )
    .unwrap();
    let report = coverage::check_actions(&policy, &[&CHART_READ, &CHART_UPDATE, &EXPORT]);
    assert!(report.is_complete(), "{report}");
    assert_eq!(
        report.to_string(),
        "coverage of policy `complete`: 3 action(s), 2 rule(s), 0 finding(s)\n"
    );
    // The same policy checked against the whole registry is not complete.
    assert!(!coverage::check(&policy).is_complete());
}

#[test]
fn roles_the_rule_does_not_share_with_the_code_do_not_cover() {
    // The rule admits `nurse`, which the code never allows: the action stays uncovered.
    let policy = Policy::from_toml_str(
        "version = \"n\"\n[[rule]]\nid = \"nurses\"\neffect = \"allow\"\nactions = [\"cov::*\"]\nroles = [\"nurse\"]\n",
    )
    .unwrap();
    let report = coverage::check_actions(&policy, &[&CHART_UPDATE]);
    assert_eq!(
        report.findings(),
        &[Finding::UncoveredAction {
            action: "cov::chart::update",
            location: format!("{}:{}", CHART_UPDATE.file, CHART_UPDATE.line),
        }]
    );
}

#[test]
fn an_empty_action_list_is_a_finding() {
    let report = coverage::check_actions(&policy(), &[]);
    assert_eq!(report.findings(), &[Finding::EmptyRegistry]);
    assert!(report.to_string().contains("the linker may have dropped"));
}

#[test]
fn duplicates_given_directly_are_found() {
    let report = coverage::check_actions(&policy(), &[&DUP_A, &DUP_B]);
    assert!(
        report
            .findings()
            .iter()
            .any(|f| matches!(f, Finding::DuplicateAction(d) if d.name == "cov::dup")),
        "{report}"
    );
}

#[test]
fn assert_complete_fails_with_an_aligned_table() {
    let policy = policy();
    let panic = std::panic::catch_unwind(|| coverage::assert_complete(&policy))
        .expect_err("the policy is incomplete");
    let message = panic.downcast_ref::<String>().cloned().unwrap_or_default();
    assert!(
        message.starts_with("the policy does not cover the guarded actions\n"),
        "{message}"
    );
    let lines: Vec<&str> = message.lines().collect();
    assert_eq!(
        lines[1],
        "coverage of policy `cov-1`: 5 action(s), 5 rule(s), 6 finding(s)"
    );
    let header = lines[2];
    assert!(header.starts_with("FINDING"), "{message}");
    let subject_at = header.find("SUBJECT").unwrap();
    let detail_at = header.find("DETAIL").unwrap();
    let rows = &lines[4..];
    assert_eq!(rows.len(), 6, "{message}");
    for row in rows {
        // Every column starts where its header does.
        assert_eq!(row.as_bytes()[subject_at - 1], b' ', "{row}");
        assert_ne!(row.as_bytes()[subject_at], b' ', "{row}");
        assert_eq!(row.as_bytes()[detail_at - 1], b' ', "{row}");
        assert_ne!(row.as_bytes()[detail_at], b' ', "{row}");
    }
    assert!(
        message.contains("role never allowed  cov::chart::read"),
        "{message}"
    );
    assert!(message.contains("the code declares role `billing` but no allow rule admits it"));
    assert!(message.contains("rule `legacy`"));
}
