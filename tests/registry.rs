//! The action registry as a test binary sees it: every `#[phi_action]` of the binary is
//! registered (with its declared kind, roles, resource and PHI categories), and nothing else.
//!
//! `inventory` registrations can be dropped by the linker; comparing against the list of
//! actions this file declares makes a dropped one fail the test by name.

use guardrail_core::audit::{AuditEvent, EventKind, Outcome};
use guardrail_core::prelude::*;
use guardrail_core::registry;
use guardrail_core::{ActionDescriptor, Category, DenyReason};

#[phi_action(kind = "read", role = "provider", resource = "patient_record")]
fn read_chart(ctx: &Context, patient_id: &str) -> Result<String, GuardError> {
    Ok(patient_id.to_owned())
}

#[phi_action(kind = "update", roles = ["provider", "nurse"], resource = "vitals",
             name = "registry.vitals.update")]
async fn update_vitals(ctx: &Context, pulse: u32) -> Result<u32, GuardError> {
    Ok(pulse)
}

#[phi_action(kind = "export", role = "billing", name = "registry.claims.export", count = n)]
fn export_claims<T>(ctx: &Context, n: usize, template: T) -> Result<Vec<T>, GuardError>
where
    T: Clone + Redact,
{
    Ok(vec![template; n])
}

#[phi_action(kind = "disclose", role = "privacy_officer", resource = "patient_record",
             name = "registry.all_categories",
             phi = ["name", "address", "zip", "date", "birth_date", "age", "phone", "fax",
                    "email", "ssn", "mrn", "health_plan", "account", "license", "vehicle",
                    "device", "url", "ip", "biometric", "photo", "other_id", "diagnosis",
                    "medication", "lab_result", "note", "substance_use", "psychotherapy_note",
                    "hiv_status", "reproductive_health"])]
fn disclose_everything(ctx: &Context) -> Result<(), GuardError> {
    Ok(())
}

mod admin {
    use guardrail_core::prelude::*;

    pub struct Console;

    impl Console {
        #[phi_action(kind = "delete", role = "admin")]
        pub fn purge(&self, ctx: &Context) -> Result<(), GuardError> {
            Ok(())
        }

        #[phi_action(kind = "create", role = "admin", name = "registry.admin.enroll",
                     phi = ["name", "ssn"])]
        pub fn enroll(&mut self, ctx: &Context) -> Result<(), GuardError> {
            Ok(())
        }
    }
}

/// What an action above declares.
struct Declared {
    name: &'static str,
    kind: ActionKind,
    roles: &'static [&'static str],
    resource: Option<&'static str>,
    phi: &'static [&'static str],
}

const fn declared(
    name: &'static str,
    kind: ActionKind,
    roles: &'static [&'static str],
    resource: Option<&'static str>,
    phi: &'static [&'static str],
) -> Declared {
    Declared {
        name,
        kind,
        roles,
        resource,
        phi,
    }
}

/// Every action of this binary, sorted by name.
const EXPECTED: &[Declared] = &[
    declared(
        "registry.admin.enroll",
        ActionKind::Create,
        &["admin"],
        None,
        &["name", "ssn"],
    ),
    declared(
        "registry.all_categories",
        ActionKind::Disclose,
        &["privacy_officer"],
        Some("patient_record"),
        Category::NAMES,
    ),
    declared(
        "registry.claims.export",
        ActionKind::Export,
        &["billing"],
        None,
        &[],
    ),
    declared(
        "registry.vitals.update",
        ActionKind::Update,
        &["provider", "nurse"],
        Some("vitals"),
        &[],
    ),
    declared(
        "registry::admin::purge",
        ActionKind::Delete,
        &["admin"],
        None,
        &[],
    ),
    declared(
        "registry::read_chart",
        ActionKind::Read,
        &["provider"],
        Some("patient_record"),
        &[],
    ),
];

fn find(name: &str) -> &'static ActionDescriptor {
    registry::find(name).unwrap_or_else(|| {
        let registered: Vec<&str> = registry::actions().iter().map(|d| d.name).collect();
        panic!(
            "action `{name}` is not registered (the linker may have dropped its inventory \
             item); registered: {registered:?}"
        )
    })
}

#[test]
fn registry_is_not_empty() {
    assert!(
        !registry::actions().is_empty(),
        "no action registered in the test binary: inventory items were dropped"
    );
}

#[test]
fn every_annotated_action_is_registered_with_its_declaration() {
    for e in EXPECTED {
        let (name, kind, roles, resource, phi) = (e.name, e.kind, e.roles, e.resource, e.phi);
        let d = find(name);
        assert_eq!(d.kind, kind, "{name}: kind");
        assert_eq!(d.roles, roles, "{name}: roles");
        assert_eq!(d.resource, resource, "{name}: resource");
        assert_eq!(d.phi, phi, "{name}: phi");
        assert!(d.file.ends_with("registry.rs"), "{name}: file {}", d.file);
        assert!(d.line > 0, "{name}: line");
    }
}

#[test]
fn the_registry_lists_exactly_the_actions_of_this_binary() {
    let registered: Vec<&str> = registry::actions().iter().map(|d| d.name).collect();
    let expected: Vec<&str> = EXPECTED.iter().map(|e| e.name).collect();
    assert_eq!(registered, expected, "registered (sorted) vs declared");
    assert!(
        registry::duplicates().is_empty(),
        "{:?}",
        registry::duplicates()
    );
}

#[test]
fn default_names_are_module_path_and_function() {
    let d = find("registry::admin::purge");
    assert_eq!(d.module_path, "registry::admin");
    assert_eq!(d.function, "purge");
    let d = find("registry.vitals.update");
    assert_eq!(d.module_path, "registry");
    assert_eq!(d.function, "update_vitals");
}

#[test]
fn the_descriptor_line_is_the_functions_line() {
    let source = include_str!("registry.rs");
    let d = find("registry::read_chart");
    let line = source
        .lines()
        .nth(d.line as usize - 1)
        .expect("the recorded line exists");
    assert!(line.contains("fn read_chart"), "line {}: {line}", d.line);
}

#[test]
fn the_macro_accepts_exactly_the_core_category_names() {
    // `registry.all_categories` lists every core category name. The macro accepts a name only
    // if its own table holds it (anything else is a compile error whose message lists that
    // table: `ui/fail/action_bad_phi.stderr`) and expands it to `Category::<Variant>.as_str()`,
    // which compiles only if the core has that variant.
    assert_eq!(find("registry.all_categories").phi, Category::NAMES);
    for name in Category::NAMES {
        assert!(name.parse::<Category>().is_ok());
    }
}

const POLICY: &str = r#"
version = "registry-calls"

[[rule]]
id = "everything-the-code-allows"
effect = "allow"
actions = ["registry*"]
"#;

/// The registrations above belong to real functions, guarded as declared: each runs for a
/// role its code allows (with its result returned and its decision and outcome recorded under
/// its registered name) and is refused, unrun, for a role it does not.
#[tokio::test]
async fn actions_stay_callable() {
    let sink = MemorySink::new();
    let guardrail = Guardrail::builder()
        .policy(Policy::from_toml_str(POLICY).unwrap())
        .audit(sink.clone())
        .audit_key(AuditKey::from_bytes(b"registry-test-key-0123456789").unwrap())
        .build()
        .unwrap();
    let as_role = |role: &str| guardrail.context(Principal::new(format!("u-{role}")).role(role));

    assert_eq!(read_chart(&as_role("provider"), "p-7").unwrap(), "p-7");
    assert_eq!(update_vitals(&as_role("nurse"), 72).await.unwrap(), 72);
    assert_eq!(
        export_claims(&as_role("billing"), 3, 9u32).unwrap(),
        [9, 9, 9]
    );
    disclose_everything(&as_role("privacy_officer")).unwrap();
    let mut console = admin::Console;
    console.purge(&as_role("admin")).unwrap();
    console.enroll(&as_role("admin")).unwrap();

    let trail = |events: &[AuditEvent]| -> Vec<(String, String)> {
        events
            .iter()
            .filter_map(|e| {
                let r = &e.record;
                let what = match r.kind {
                    EventKind::Decision => format!(
                        "{} by {}",
                        r.decision.as_deref().unwrap_or("?"),
                        r.rule.as_deref().unwrap_or("no rule")
                    ),
                    EventKind::Outcome => format!("outcome {:?}", r.outcome),
                    _ => return None,
                };
                Some((r.action.as_deref().unwrap_or("?").to_owned(), what))
            })
            .collect()
    };
    let names = [
        "registry::read_chart",
        "registry.vitals.update",
        "registry.claims.export",
        "registry.all_categories",
        "registry::admin::purge",
        "registry.admin.enroll",
    ];
    let expected: Vec<(String, String)> = names
        .iter()
        .flat_map(|name| {
            [
                (
                    name.to_string(),
                    "allow by everything-the-code-allows".to_owned(),
                ),
                (name.to_string(), format!("outcome {:?}", Some(Outcome::Ok))),
            ]
        })
        .collect();
    let events = sink.events();
    assert_eq!(trail(&events), expected);

    // The code's roles bound the policy: the same calls by a role the code does not allow
    // are denied, and recorded as denials.
    let err = read_chart(&as_role("admin"), "p-7").unwrap_err();
    assert_eq!(
        err.deny_reason(),
        Some(&DenyReason::RoleNotAllowed),
        "{err:?}"
    );
    let err = console.purge(&as_role("provider")).unwrap_err();
    assert_eq!(
        err.deny_reason(),
        Some(&DenyReason::RoleNotAllowed),
        "{err:?}"
    );
    let err = update_vitals(&as_role("billing"), 72).await.unwrap_err();
    assert_eq!(
        err.deny_reason(),
        Some(&DenyReason::RoleNotAllowed),
        "{err:?}"
    );
    let all = sink.events();
    let denials: Vec<(String, String)> = [
        "registry::read_chart",
        "registry::admin::purge",
        "registry.vitals.update",
    ]
    .iter()
    .map(|n| (n.to_string(), "deny by no rule".to_owned()))
    .collect();
    assert_eq!(trail(&all[events.len()..]), denials);
}
