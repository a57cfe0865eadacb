//! The policy engine: parse errors placed exactly, every condition and deny reason,
//! deny-overrides-allow, globs, approvals, break-glass, reveal sets, version and hash.

use guardrail_core::policy::{ContextCache, Policy, PolicyError, Request};
use guardrail_core::registry::ActionDescriptor;
use guardrail_core::{
    ActionKind, ApprovalNeed, Category, CategorySet, Decision, DenyReason, Effect, Endpoint,
    Principal, Purpose,
};
use proptest::prelude::*;

// ---------------------------------------------------------------------------------------
// Parse errors
// ---------------------------------------------------------------------------------------

fn parse_err(text: &str) -> PolicyError {
    match Policy::from_toml_str(text) {
        Ok(p) => panic!("expected an error, the policy loaded: {p:?}\n{text}"),
        Err(e) => e,
    }
}

/// A rule head (lines 2..=5) to which a case appends line 6.
const HEAD: &str = "version = \"1\"\n[[rule]]\nid = \"r\"\neffect = \"allow\"\nactions = [\"a\"]\n";
const DENY_HEAD: &str =
    "version = \"1\"\n[[rule]]\nid = \"r\"\neffect = \"deny\"\nactions = [\"a\"]\n";

#[test]
fn parse_errors_name_line_column_and_field() {
    let with = |head: &str, line6: &str| format!("{head}{line6}\n");
    #[rustfmt::skip]
    let cases: Vec<(&str, String, usize, usize, &str, &str)> = vec![
        ("unknown top-level field", "version = \"1\"\nversoin = \"2\"\n".into(),
            2, 1, "versoin", "unknown field `versoin`, expected one of: version audit masking approval break_glass alerts schema rule"),
        ("unknown section", "version = \"1\"\n[approvals]\nttl_secs = 5\n".into(),
            2, 2, "approvals", "unknown field `approvals`"),
        ("missing version", "[[rule]]\nid = \"r\"\neffect = \"allow\"\nactions = [\"a\"]\n".into(),
            1, 1, "version", "the policy has no `version`"),
        ("version of the wrong type", "version = 3\n".into(),
            1, 11, "version", "expected a string, found an integer"),
        ("empty version", "version = \" \"\n".into(),
            1, 11, "version", "must not be empty"),
        ("unknown rule field", with(HEAD, "role = [\"x\"]"),
            6, 1, "rule \"r\".role", "unknown field `role`"),
        ("unknown kind", with(HEAD, "kinds = [\"read\", \"wipe\"]"),
            6, 18, "rule \"r\".kinds", "unknown action kind `wipe`, expected one of: create read update delete export disclose"),
        ("unknown endpoint", with(HEAD, "endpoints = [\"web\"]"),
            6, 14, "rule \"r\".endpoints", "unknown endpoint `web`, expected one of: admin provider patient system"),
        ("unknown purpose", with(HEAD, "purposes = [\"fun\"]"),
            6, 13, "rule \"r\".purposes", "unknown purpose `fun`, expected one of: treatment emergency_treatment"),
        ("unknown reveal category", with(HEAD, "reveal = [\"name\", \"shoe_size\"]"),
            6, 19, "rule \"r\".reveal", "unknown PHI category `shoe_size`, expected `*` or one of: name address"),
        ("bad glob", "version = \"1\"\n[[rule]]\nid = \"r\"\neffect = \"allow\"\nactions = [\"clinic::**\"]\n".into(),
            5, 12, "rule \"r\".actions", "invalid pattern: pattern `clinic::**` has `**`"),
        ("reserved glob character", with(HEAD, "jurisdictions = [\"US-??\"]"),
            6, 18, "rule \"r\".jurisdictions", "uses `?`, which is reserved; only `*` is a wildcard"),
        ("empty actions", "version = \"1\"\n[[rule]]\nid = \"r\"\neffect = \"allow\"\nactions = []\n".into(),
            5, 11, "rule \"r\".actions", "the list is empty"),
        ("duplicate rule id", "version = \"1\"\n[[rule]]\nid = \"r\"\neffect = \"allow\"\nactions = [\"a\"]\n[[rule]]\nid = \"r\"\neffect = \"deny\"\nactions = [\"b\"]\n".into(),
            7, 6, "rule \"r\".id", "duplicate rule id `r`; it is first used at line 3"),
        ("rule id of the wrong type", "version = \"1\"\n[[rule]]\nid = 5\neffect = \"allow\"\nactions = [\"a\"]\n".into(),
            3, 6, "rule[1].id", "expected a string, found an integer"),
        ("unknown effect", "version = \"1\"\n[[rule]]\nid = \"r\"\neffect = \"permit\"\nactions = [\"a\"]\n".into(),
            4, 10, "rule \"r\".effect", "unknown effect `permit`, expected one of: allow deny"),
        ("max_count of the wrong type", with(HEAD, "max_count = \"10\""),
            6, 13, "rule \"r\".max_count", "expected an integer, found a string"),
        ("negative max_count", with(HEAD, "max_count = -5"),
            6, 13, "rule \"r\".max_count", "must not be negative"),
        ("self_only of the wrong type", with(HEAD, "self_only = \"yes\""),
            6, 13, "rule \"r\".self_only", "expected a boolean"),
        ("roles of the wrong type", with(HEAD, "roles = \"provider\""),
            6, 9, "rule \"r\".roles", "expected an array of strings, found a string"),
        ("role wildcard", with(HEAD, "roles = [\"*\"]"),
            6, 10, "rule \"r\".roles", "`*` is not a wildcard here"),
        ("reveal on a deny rule", with(DENY_HEAD, "reveal = [\"name\"]"),
            6, 10, "rule \"r\".reveal", "`reveal` applies to allow rules only"),
        ("approval on a deny rule", with(DENY_HEAD, "approval = \"always\""),
            6, 12, "rule \"r\".approval", "`approval` applies to allow rules only"),
        ("approval_over on a deny rule", with(DENY_HEAD, "approval_over = 3"),
            6, 17, "rule \"r\".approval_over", "applies to allow rules only"),
        ("self_only on a deny rule", with(DENY_HEAD, "self_only = true"),
            6, 13, "rule \"r\".self_only", "applies to allow rules only"),
        ("approval without an [approval] section", with(HEAD, "approval = \"always\""),
            6, 12, "rule \"r\".approval", "the policy has no `[approval]` section"),
        ("approval_over without an [approval] section", with(HEAD, "approval_over = 10"),
            6, 17, "rule \"r\".approval_over", "the policy has no `[approval]` section"),
        ("unknown approval mode", "version = \"1\"\n[approval]\napprover_roles = [\"po\"]\n[[rule]]\nid = \"r\"\neffect = \"allow\"\nactions = [\"a\"]\napproval = \"sometimes\"\n".into(),
            8, 12, "rule \"r\".approval", "unknown approval mode `sometimes`"),
        ("zero approval ttl", "version = \"1\"\n[approval]\napprover_roles = [\"po\"]\nttl_secs = 0\n".into(),
            4, 12, "approval.ttl_secs", "must be greater than 0"),
        ("empty approver roles", "version = \"1\"\n[approval]\napprover_roles = []\n".into(),
            3, 18, "approval.approver_roles", "the list is empty"),
        ("unknown masking strategy", "version = \"1\"\n[masking]\nssn = \"blur\"\n".into(),
            3, 7, "masking.ssn", "unknown masking strategy `blur`, expected one of: redact partial tokenize generalize scan"),
        ("unknown masking category", "version = \"1\"\n[masking]\nshoe = \"redact\"\n".into(),
            3, 1, "masking.shoe", "unknown PHI category `shoe`, expected one of: name"),
        ("alert threshold without window", "version = \"1\"\n[alerts]\ndenial_burst = { count = 5 }\n".into(),
            3, 16, "alerts.denial_burst.window_secs", "missing field"),
        ("unknown alert", "version = \"1\"\n[alerts]\nspike = { count = 5, window_secs = 1 }\n".into(),
            3, 1, "alerts.spike", "unknown field `spike`, expected one of: denial_burst export_spike"),
        ("unknown break-glass kind", "version = \"1\"\n[break_glass]\nroles = [\"provider\"]\nkinds = [\"read\", \"explode\"]\n".into(),
            4, 18, "break_glass.kinds", "unknown action kind `explode`"),
        ("unknown break-glass field", "version = \"1\"\n[break_glass]\nroles = [\"provider\"]\nkinds = [\"read\"]\nreason = \"x\"\n".into(),
            5, 1, "break_glass.reason", "unknown field `reason`"),
        ("audit required of the wrong type", "version = \"1\"\n[audit]\nrequired = \"file\"\n".into(),
            3, 12, "audit.required", "expected an array of strings, found a string"),
    ];
    let mut failures = Vec::new();
    for (what, text, line, column, field, message) in &cases {
        let e = parse_err(text);
        let ok = e.line == Some(*line)
            && e.column == Some(*column)
            && e.field.as_deref() == Some(*field)
            && e.message.contains(message);
        if !ok {
            failures.push(format!(
                "{what}: expected {line}:{column} `{field}` containing {message:?}, got {:?}:{:?} {:?} {:?}",
                e.line, e.column, e.field, e.message
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn invalid_toml_is_placed_too() {
    let e = parse_err("version = \"1\"\n[[rule]\nid = \"r\"\n");
    assert_eq!(e.line, Some(2), "{e}");
    assert!(e.column.is_some_and(|c| (1..=8).contains(&c)), "{e}");
    assert!(e.message.starts_with("invalid TOML: "), "{e}");

    let e = parse_err("version = \"1\"\nversion = \"2\"\n");
    assert_eq!(e.line, Some(2), "{e}");

    let e = parse_err("version = \"1\"\n[rule]\nid = \"r\"\n");
    assert_eq!(e.field.as_deref(), Some("rule"), "{e}");
    assert_eq!(e.line, Some(2), "{e}");
    assert!(
        e.message
            .contains("expected an array of tables (`[[rule]]`)"),
        "{e}"
    );
}

#[test]
fn missing_rule_fields_point_at_the_rule() {
    let e = parse_err("version = \"1\"\n[[rule]]\nid = \"r\"\nactions = [\"a\"]\n");
    assert_eq!(e.field.as_deref(), Some("rule \"r\".effect"), "{e}");
    assert_eq!(e.line, Some(2), "{e}");
    let e = parse_err("version = \"1\"\n[[rule]]\neffect = \"allow\"\nactions = [\"a\"]\n");
    assert_eq!(e.field.as_deref(), Some("rule[1].id"), "{e}");
    assert_eq!(e.line, Some(2), "{e}");
    let e = parse_err("version = \"1\"\n[[rule]]\nid = \"r\"\neffect = \"allow\"\n");
    assert_eq!(e.field.as_deref(), Some("rule \"r\".actions"), "{e}");
}

#[test]
fn errors_display_place_and_field_and_never_panic_on_garbage() {
    let e = parse_err(&format!("{HEAD}kinds = [\"wipe\"]\n"));
    assert_eq!(
        e.to_string(),
        "6:10: `rule \"r\".kinds`: unknown action kind `wipe`, expected one of: create read update delete export disclose"
    );
    for garbage in [
        "",
        "\u{0}",
        "[[[",
        "version = \"1\"\n[[rule]]\n[[rule]]\n",
        "version = [1, \"a\"]",
        "a.b.c = 1",
    ] {
        assert!(Policy::from_toml_str(garbage).is_err(), "{garbage:?}");
    }
}

#[test]
fn from_path_names_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("policy.toml");
    std::fs::write(&path, "version = \"1\"\nbogus = 1\n").unwrap();
    let e = Policy::from_path(&path).unwrap_err();
    assert_eq!(e.path.as_deref(), Some(path.as_path()));
    assert!(
        e.to_string()
            .starts_with(&format!("{}:2:1: `bogus`", path.display())),
        "{e}"
    );
    let missing = Policy::from_path(dir.path().join("absent.toml")).unwrap_err();
    assert!(
        missing.message.starts_with("cannot read the policy file"),
        "{missing}"
    );
}

#[test]
fn sections_fill_the_accessors() {
    let p = Policy::from_toml_str(
        r#"
version = "acc"
[audit]
required = ["file"]
[masking]
ssn = "redact"
name = "tokenize"
[approval]
approver_roles = ["privacy_officer", "ciso"]
ttl_secs = 120
[alerts]
denial_burst = { count = 5, window_secs = 60 }
"#,
    )
    .unwrap();
    assert_eq!(p.required_sinks().len(), 1);
    assert!(p.sink_required("file"));
    assert!(!p.sink_required("memory"));
    let roles: Vec<&str> = p.approver_roles().iter().map(|r| &**r).collect();
    assert_eq!(roles, ["privacy_officer", "ciso"]);
    assert_eq!(p.approval_ttl_secs(), 120);
    let t = p.alert_thresholds();
    assert_eq!(
        t.denial_burst.map(|t| (t.count, t.window_secs)),
        Some((5, 60))
    );
    assert_eq!(t.export_spike, None);
    use guardrail_core::mask::Strategy;
    assert_eq!(p.masking().strategy(Category::Ssn), Strategy::Redact);
    assert_eq!(p.masking().strategy(Category::Name), Strategy::Tokenize);
    // Untouched categories keep their defaults.
    assert_eq!(p.masking().strategy(Category::Zip), Strategy::Generalize);
    assert!(!p.break_glass_enabled());

    let bare = Policy::from_toml_str("version = \"bare\"\n").unwrap();
    assert!(bare.approver_roles().is_empty());
    assert_eq!(bare.approval_ttl_secs(), 900);
    assert!(bare.sink_required("anything"));
    assert!(bare.rules().is_empty());
}

// ---------------------------------------------------------------------------------------
// Decisions
// ---------------------------------------------------------------------------------------

macro_rules! action {
    ($ident:ident, $name:literal, $kind:ident, $resource:expr, [$($role:literal),*]) => {
        static $ident: ActionDescriptor = { let d = ActionDescriptor::new($name, ActionKind::$kind)
            .roles(&[$($role),*])
            .located(module_path!(), file!(), line!())
            .function(stringify!($ident)); match $resource { Some(r) => d.resource(r), None => d } };
    };
}

action!(
    READ,
    "clinic::chart::read",
    Read,
    Some("chart"),
    ["provider", "patient"]
);
action!(
    UPDATE,
    "clinic::chart::update",
    Update,
    Some("chart"),
    ["provider"]
);
action!(
    DELETE,
    "clinic::chart::delete",
    Delete,
    Some("chart"),
    ["admin", "provider"]
);
action!(PEEK, "clinic::chart::peek", Read, Some("chart"), ["nurse"]);
action!(
    NOTES,
    "clinic::chart::notes",
    Read,
    Some("notes"),
    ["provider"]
);
action!(
    OTHER,
    "other::chart::read",
    Read,
    Some("chart"),
    ["provider"]
);
action!(
    EXPORT,
    "clinic::research::export",
    Export,
    Some("cohort"),
    ["researcher"]
);
action!(
    AUDIT_LOG,
    "clinic::audit::read_log",
    Read,
    None,
    ["auditor"]
);
action!(
    INVOICE,
    "billing::invoice",
    Read,
    Some("invoice"),
    ["billing"]
);

const CLINIC: &str = r#"
version = "test-1"

[approval]
approver_roles = ["privacy_officer"]
ttl_secs = 600

[break_glass]
roles = ["provider"]
kinds = ["read", "update"]
resources = ["chart"]
actions = ["clinic::*"]
max_count = 5
reveal = ["name", "diagnosis"]

[[rule]]
id = "providers-treat"
effect = "allow"
actions = ["clinic::chart::*"]
kinds = ["read", "update"]
resources = ["chart"]
roles = ["provider"]
endpoints = ["provider"]
jurisdictions = ["US-*"]
purposes = ["treatment"]
reveal = ["*"]

[[rule]]
id = "patients-own"
effect = "allow"
actions = ["clinic::chart::read"]
roles = ["patient"]
endpoints = ["patient"]
purposes = ["patient_request"]
self_only = true
reveal = ["name"]

[[rule]]
id = "research-export"
effect = "allow"
actions = ["clinic::research::export"]
kinds = ["export"]
roles = ["researcher"]
purposes = ["research"]
max_count = 1000
approval_over = 100

[[rule]]
id = "audit-log"
effect = "allow"
actions = ["clinic::audit::*"]
roles = ["auditor"]
approval = "always"

[[rule]]
id = "no-portal-deletes"
effect = "deny"
actions = ["*"]
kinds = ["delete"]
endpoints = ["patient"]

[[rule]]
id = "admin-delete"
effect = "allow"
actions = ["clinic::chart::delete"]
roles = ["admin"]
"#;

fn clinic() -> Policy {
    Policy::from_toml_str(CLINIC).unwrap()
}

/// A request with nothing but the action and the principal.
fn bare<'a>(
    action: &'static ActionDescriptor,
    principal: &'a Principal,
    cache: &'a ContextCache,
) -> Request<'a> {
    Request {
        action,
        principal,
        endpoint: None,
        purpose: None,
        subject: None,
        count: None,
        break_glass: None,
        agent: None,
        cache,
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Expect {
    Allow { rule: &'static str },
    Deny(DenyReason),
}

fn check(decision: &Decision, expect: &Expect) -> Result<(), String> {
    let ok = match expect {
        Expect::Allow { rule } => {
            decision.effect == Effect::Allow
                && decision.rule.as_deref() == Some(*rule)
                && decision.reason.is_none()
        }
        Expect::Deny(reason) => {
            decision.effect == Effect::Deny && decision.reason.as_ref() == Some(reason)
        }
    };
    if ok {
        Ok(())
    } else {
        Err(format!("expected {expect:?}, got {decision:?}"))
    }
}

#[test]
fn every_condition_and_every_deny_reason() {
    let policy = clinic();
    let cache = ContextCache::default();
    let dr = Principal::new("dr-grey")
        .role("provider")
        .jurisdiction("US-CA");
    let dr_abroad = Principal::new("dr-house")
        .role("provider")
        .jurisdiction("CA-ON");
    let dr_nowhere = Principal::new("dr-who").role("provider");
    let clerk = Principal::new("clerk")
        .role("billing")
        .jurisdiction("US-CA");
    let pat = Principal::new("u-17").role("patient").patient("p-100");
    let pat_no_id = Principal::new("u-18").role("patient");
    let researcher = Principal::new("r-1").role("researcher");
    let auditor = Principal::new("a-1").role("auditor");
    let admin = Principal::new("adm").role("admin");
    let own = "p-100";
    let other = "p-200";
    let own_number = 100u32; // formats as "100", not "p-100"

    // A provider treating from the provider endpoint (a fresh cache per principal).
    let treat = |p: &'static ActionDescriptor, who: &Principal| -> Decision {
        let cache = ContextCache::default();
        policy.decide(&Request {
            endpoint: Some(Endpoint::Provider),
            purpose: Some(Purpose::Treatment),
            ..bare(p, who, &cache)
        })
    };
    let _ = &cache;
    use DenyReason::*;
    let d = |r: DenyReason| Expect::Deny(r);
    let cases: Vec<(&str, Decision, Expect)> = vec![
        (
            "provider reads a chart",
            treat(&READ, &dr),
            Expect::Allow {
                rule: "providers-treat",
            },
        ),
        (
            "provider updates a chart",
            treat(&UPDATE, &dr),
            Expect::Allow {
                rule: "providers-treat",
            },
        ),
        ("wrong role", treat(&READ, &clerk), d(RoleNotAllowed)),
        (
            "the code does not allow the provider role",
            treat(&PEEK, &dr),
            d(RoleNotAllowed),
        ),
        (
            "no rule for the action",
            treat(&INVOICE, &clerk),
            d(NoMatchingRule),
        ),
        (
            "wrong resource: no rule applies",
            treat(&NOTES, &dr),
            d(NoMatchingRule),
        ),
        (
            "wrong endpoint",
            {
                let c = ContextCache::default();
                policy.decide(&Request {
                    endpoint: Some(Endpoint::Admin),
                    purpose: Some(Purpose::Treatment),
                    ..bare(&READ, &dr, &c)
                })
            },
            d(EndpointNotAllowed),
        ),
        (
            "missing endpoint",
            {
                let c = ContextCache::default();
                policy.decide(&Request {
                    purpose: Some(Purpose::Treatment),
                    ..bare(&READ, &dr, &c)
                })
            },
            d(MissingContext { field: "endpoint" }),
        ),
        (
            "wrong jurisdiction",
            treat(&READ, &dr_abroad),
            d(JurisdictionNotAllowed),
        ),
        (
            "no jurisdiction",
            treat(&READ, &dr_nowhere),
            d(JurisdictionNotAllowed),
        ),
        (
            "wrong purpose",
            {
                let c = ContextCache::default();
                policy.decide(&Request {
                    endpoint: Some(Endpoint::Provider),
                    purpose: Some(Purpose::Payment),
                    ..bare(&READ, &dr, &c)
                })
            },
            d(PurposeNotAllowed),
        ),
        (
            "missing purpose",
            {
                let c = ContextCache::default();
                policy.decide(&Request {
                    endpoint: Some(Endpoint::Provider),
                    ..bare(&READ, &dr, &c)
                })
            },
            d(MissingContext { field: "purpose" }),
        ),
        (
            "patient reads own chart",
            {
                let c = ContextCache::default();
                policy.decide(&Request {
                    endpoint: Some(Endpoint::Patient),
                    purpose: Some(Purpose::PatientRequest),
                    subject: Some(&own),
                    ..bare(&READ, &pat, &c)
                })
            },
            Expect::Allow {
                rule: "patients-own",
            },
        ),
        (
            "patient reads another patient's chart",
            {
                let c = ContextCache::default();
                policy.decide(&Request {
                    endpoint: Some(Endpoint::Patient),
                    purpose: Some(Purpose::PatientRequest),
                    subject: Some(&other),
                    ..bare(&READ, &pat, &c)
                })
            },
            d(NotOwnSubject),
        ),
        (
            "subject that only looks alike",
            {
                let c = ContextCache::default();
                policy.decide(&Request {
                    endpoint: Some(Endpoint::Patient),
                    purpose: Some(Purpose::PatientRequest),
                    subject: Some(&own_number),
                    ..bare(&READ, &pat, &c)
                })
            },
            d(NotOwnSubject),
        ),
        (
            "patient without a patient id",
            {
                let c = ContextCache::default();
                policy.decide(&Request {
                    endpoint: Some(Endpoint::Patient),
                    purpose: Some(Purpose::PatientRequest),
                    subject: Some(&own),
                    ..bare(&READ, &pat_no_id, &c)
                })
            },
            d(NotOwnSubject),
        ),
        (
            "self-only without a subject",
            {
                let c = ContextCache::default();
                policy.decide(&Request {
                    endpoint: Some(Endpoint::Patient),
                    purpose: Some(Purpose::PatientRequest),
                    ..bare(&READ, &pat, &c)
                })
            },
            d(MissingContext { field: "subject" }),
        ),
        (
            "export under the limit",
            {
                let c = ContextCache::default();
                policy.decide(&Request {
                    purpose: Some(Purpose::Research),
                    count: Some(1000),
                    ..bare(&EXPORT, &researcher, &c)
                })
            },
            Expect::Allow {
                rule: "research-export",
            },
        ),
        (
            "export over the limit",
            {
                let c = ContextCache::default();
                policy.decide(&Request {
                    purpose: Some(Purpose::Research),
                    count: Some(1001),
                    ..bare(&EXPORT, &researcher, &c)
                })
            },
            d(CountOverLimit {
                count: 1001,
                limit: 1000,
            }),
        ),
        (
            "deny rule overrides the allow rule",
            {
                let c = ContextCache::default();
                policy.decide(&Request {
                    endpoint: Some(Endpoint::Patient),
                    ..bare(&DELETE, &admin, &c)
                })
            },
            d(DeniedByRule {
                rule: "no-portal-deletes".into(),
            }),
        ),
        (
            "deny rule condition on a missing endpoint holds (fail safe)",
            {
                let c = ContextCache::default();
                policy.decide(&bare(&DELETE, &admin, &c))
            },
            d(DeniedByRule {
                rule: "no-portal-deletes".into(),
            }),
        ),
        (
            "deny rule does not hold for another endpoint",
            {
                let c = ContextCache::default();
                policy.decide(&Request {
                    endpoint: Some(Endpoint::Admin),
                    ..bare(&DELETE, &admin, &c)
                })
            },
            Expect::Allow {
                rule: "admin-delete",
            },
        ),
        (
            "auditor",
            {
                let c = ContextCache::default();
                policy.decide(&bare(&AUDIT_LOG, &auditor, &c))
            },
            Expect::Allow { rule: "audit-log" },
        ),
    ];
    let failures: Vec<String> = cases
        .iter()
        .filter_map(|(what, decision, expect)| {
            check(decision, expect)
                .err()
                .map(|e| format!("{what}: {e}"))
        })
        .collect();
    assert!(failures.is_empty(), "{}", failures.join("\n"));

    // Every denial carries no reveal, no rule but the deny rule's, and the policy identity.
    for (_, decision, _) in &cases {
        assert_eq!(&*decision.policy_version, "test-1");
        assert_eq!(&*decision.policy_hash, policy.sha256());
        if decision.effect == Effect::Deny {
            assert_eq!(decision.reveal, CategorySet::EMPTY);
            assert!(!decision.break_glass);
        }
    }
}

/// Each condition a deny rule lists narrows it: a call that fails the condition is not denied
/// by it (and the allow-everything rule decides), a call that meets it is, and a call lacking
/// the value is denied too (fail safe).
#[test]
fn each_deny_condition_narrows_its_rule() {
    let policy_with = |condition: &str| {
        Policy::from_toml_str(&format!(
            r#"
version = "narrow"
[[rule]]
id = "narrow-deny"
effect = "deny"
actions = ["*"]
{condition}
[[rule]]
id = "open"
effect = "allow"
actions = ["*"]
"#
        ))
        .unwrap()
    };
    let decide = |policy: &Policy, principal: &Principal, tweak: &dyn Fn(&mut Request<'_>)| {
        let cache = ContextCache::default();
        let mut request = bare(&READ, principal, &cache);
        tweak(&mut request);
        let d = policy.decide(&request);
        (d.effect, d.rule.as_deref().map(str::to_owned))
    };
    let allowed = (Effect::Allow, Some("open".to_owned()));
    let denied = (Effect::Deny, Some("narrow-deny".to_owned()));
    let none = |_: &mut Request<'_>| {};

    // roles
    let p = policy_with(r#"roles = ["patient"]"#);
    let provider = Principal::new("dr").role("provider");
    let patient = Principal::new("u").role("patient");
    assert_eq!(decide(&p, &provider, &none), allowed, "roles: not held");
    assert_eq!(decide(&p, &patient, &none), denied, "roles: held");

    // jurisdictions
    let p = policy_with(r#"jurisdictions = ["US-*"]"#);
    let ca = Principal::new("dr").role("provider").jurisdiction("US-CA");
    let on = Principal::new("dr").role("provider").jurisdiction("CA-ON");
    assert_eq!(decide(&p, &on, &none), allowed, "jurisdictions: unmatched");
    assert_eq!(decide(&p, &ca, &none), denied, "jurisdictions: matched");
    assert_eq!(decide(&p, &provider, &none), denied, "jurisdictions: none");

    // purposes
    let p = policy_with(r#"purposes = ["research"]"#);
    let treat = |r: &mut Request<'_>| r.purpose = Some(Purpose::Treatment);
    let research = |r: &mut Request<'_>| r.purpose = Some(Purpose::Research);
    assert_eq!(decide(&p, &provider, &treat), allowed, "purposes: unlisted");
    assert_eq!(decide(&p, &provider, &research), denied, "purposes: listed");
    assert_eq!(decide(&p, &provider, &none), denied, "purposes: none");

    // max_count: the rule singles out calls over N records
    let p = policy_with("max_count = 10");
    let ten = |r: &mut Request<'_>| r.count = Some(10);
    let eleven = |r: &mut Request<'_>| r.count = Some(11);
    assert_eq!(
        decide(&p, &provider, &ten),
        allowed,
        "max_count: at the limit"
    );
    assert_eq!(
        decide(&p, &provider, &none),
        allowed,
        "max_count: no count is 1"
    );
    assert_eq!(decide(&p, &provider, &eleven), denied, "max_count: over");

    // endpoints
    let p = policy_with(r#"endpoints = ["patient"]"#);
    let at = |e: Endpoint| move |r: &mut Request<'_>| r.endpoint = Some(e);
    assert_eq!(decide(&p, &provider, &at(Endpoint::Provider)), allowed);
    assert_eq!(decide(&p, &provider, &at(Endpoint::Patient)), denied);
    assert_eq!(decide(&p, &provider, &none), denied, "endpoints: none");
}

/// A deny rule's `resources` hold for an action that declares no resource (fail safe), while
/// an allow rule's do not match it.
#[test]
fn deny_resources_hold_for_an_action_without_resource() {
    let policy = Policy::from_toml_str(
        r#"
version = "resources"
[[rule]]
id = "no-charts"
effect = "deny"
actions = ["*"]
resources = ["chart"]
[[rule]]
id = "open"
effect = "allow"
actions = ["*"]
"#,
    )
    .unwrap();
    let auditor = Principal::new("a").role("auditor");
    let billing = Principal::new("b").role("billing");
    let cache = ContextCache::default();
    let d = policy.decide(&bare(&AUDIT_LOG, &auditor, &cache));
    assert_eq!(d.effect, Effect::Deny, "{d:?}");
    assert_eq!(
        d.reason,
        Some(DenyReason::DeniedByRule {
            rule: "no-charts".into()
        })
    );
    // Another resource is not covered by the deny rule.
    let d = policy.decide(&bare(&INVOICE, &billing, &ContextCache::default()));
    assert_eq!(d.rule.as_deref(), Some("open"), "{d:?}");

    let allow_only = Policy::from_toml_str(
        r#"
version = "resources"
[[rule]]
id = "charts"
effect = "allow"
actions = ["*"]
resources = ["chart"]
"#,
    )
    .unwrap();
    let d = allow_only.decide(&bare(&AUDIT_LOG, &auditor, &ContextCache::default()));
    assert_eq!(d.reason, Some(DenyReason::NoMatchingRule), "{d:?}");
}

#[test]
fn the_furthest_rule_names_the_reason() {
    // Two allow rules: one fails on the role, the other on the count: the count is reported,
    // with the highest limit among the rules that got that far.
    let policy = Policy::from_toml_str(
        r#"
version = "far"
[[rule]]
id = "admins"
effect = "allow"
actions = ["*"]
roles = ["admin"]
[[rule]]
id = "small"
effect = "allow"
actions = ["*"]
max_count = 10
[[rule]]
id = "medium"
effect = "allow"
actions = ["*"]
max_count = 50
[[rule]]
id = "endpoint-bound"
effect = "allow"
actions = ["*"]
endpoints = ["system"]
"#,
    )
    .unwrap();
    let researcher = Principal::new("r").role("researcher");
    let cache = ContextCache::default();
    let decision = policy.decide(&Request {
        endpoint: Some(Endpoint::Admin),
        count: Some(60),
        ..bare(&EXPORT, &researcher, &cache)
    });
    assert_eq!(
        decision.reason,
        Some(DenyReason::CountOverLimit {
            count: 60,
            limit: 50
        })
    );
    let decision = policy.decide(&Request {
        endpoint: Some(Endpoint::Admin),
        count: Some(50),
        ..bare(&EXPORT, &researcher, &cache)
    });
    assert_eq!(decision.rule.as_deref(), Some("medium"), "{decision:?}");
}

#[test]
fn approval_need_follows_the_rule() {
    let policy = clinic();
    let researcher = Principal::new("r-1").role("researcher");
    let auditor = Principal::new("a-1").role("auditor");
    let cache = ContextCache::default();
    let export = |count: Option<u64>| {
        policy.decide(&Request {
            purpose: Some(Purpose::Research),
            count,
            ..bare(&EXPORT, &researcher, &cache)
        })
    };
    assert_eq!(export(Some(100)).approval, ApprovalNeed::None);
    assert_eq!(export(None).approval, ApprovalNeed::None);
    let over = export(Some(101));
    assert!(over.is_allowed());
    assert_eq!(over.approval, ApprovalNeed::Required { ttl_secs: 600 });
    let always = policy.decide(&bare(&AUDIT_LOG, &auditor, &ContextCache::default()));
    assert_eq!(always.approval, ApprovalNeed::Required { ttl_secs: 600 });
    // Break-glass does not lift an approval requirement: that is not a denial.
    let declared = policy.decide(&Request {
        break_glass: Some("patient crashing"),
        ..bare(&AUDIT_LOG, &auditor, &ContextCache::default())
    });
    assert_eq!(declared.approval, ApprovalNeed::Required { ttl_secs: 600 });
    assert!(!declared.break_glass);
}

#[test]
fn reveal_sets_come_from_the_deciding_rule() {
    let policy = clinic();
    let dr = Principal::new("dr").role("provider").jurisdiction("US-WA");
    let pat = Principal::new("u").role("patient").patient("p-1");
    let all = policy.decide(&Request {
        endpoint: Some(Endpoint::Provider),
        purpose: Some(Purpose::Treatment),
        ..bare(&READ, &dr, &ContextCache::default())
    });
    assert_eq!(all.reveal, CategorySet::ALL);
    let subject = "p-1";
    let own = policy.decide(&Request {
        endpoint: Some(Endpoint::Patient),
        purpose: Some(Purpose::PatientRequest),
        subject: Some(&subject),
        ..bare(&READ, &pat, &ContextCache::default())
    });
    assert!(own.is_allowed(), "{own:?}");
    assert!(own.reveal.contains(Category::Name));
    assert!(!own.reveal.contains(Category::Ssn));
    assert!(!own.reveal.contains(Category::Diagnosis));
    let researcher = Principal::new("r").role("researcher");
    let export = policy.decide(&Request {
        purpose: Some(Purpose::Research),
        ..bare(&EXPORT, &researcher, &ContextCache::default())
    });
    assert!(export.is_allowed());
    assert_eq!(
        export.reveal,
        CategorySet::EMPTY,
        "no `reveal` means nothing unmasked"
    );
}

#[test]
fn break_glass_permitted_and_refused() {
    let policy = clinic();
    let dr = Principal::new("dr").role("provider").jurisdiction("US-CA");
    let clerk = Principal::new("clerk")
        .role("billing")
        .jurisdiction("US-CA");
    let emergency = |action: &'static ActionDescriptor,
                     who: &Principal,
                     reason: &str,
                     endpoint: Endpoint,
                     count: Option<u64>| {
        let cache = ContextCache::default();
        policy.decide(&Request {
            endpoint: Some(endpoint),
            purpose: Some(Purpose::EmergencyTreatment),
            break_glass: Some(reason),
            count,
            ..bare(action, who, &cache)
        })
    };
    let why = |d: &Decision| match &d.reason {
        Some(DenyReason::BreakGlassNotPermitted { why }) => why.clone(),
        other => panic!("expected a break-glass refusal, got {other:?} in {d:?}"),
    };

    // Permitted: the purpose (emergency) is not listed, but break-glass opens a chart read.
    let ok = emergency(&READ, &dr, "unconscious patient", Endpoint::Provider, None);
    assert!(ok.is_allowed(), "{ok:?}");
    assert!(ok.break_glass);
    assert_eq!(ok.rule, None);
    assert_eq!(
        ok.reveal,
        CategorySet::EMPTY
            .with(Category::Name)
            .with(Category::Diagnosis)
    );
    assert_eq!(ok.approval, ApprovalNeed::None);
    let ok = emergency(
        &UPDATE,
        &dr,
        "unconscious patient",
        Endpoint::Admin,
        Some(5),
    );
    assert!(ok.is_allowed() && ok.break_glass, "{ok:?}");

    // Refused: each closing condition names itself.
    let role = emergency(&READ, &clerk, "x", Endpoint::Provider, None);
    assert!(!role.is_allowed());
    assert!(
        why(&role).contains("none of the principal's roles"),
        "{role:?}"
    );
    let kind = emergency(&DELETE, &dr, "x", Endpoint::Admin, None);
    assert!(
        why(&kind).contains("cannot open `delete` actions"),
        "{kind:?}"
    );
    let resource = emergency(&NOTES, &dr, "x", Endpoint::Provider, None);
    assert!(
        why(&resource).contains("cannot open resource `notes`"),
        "{resource:?}"
    );
    let action = emergency(&OTHER, &dr, "x", Endpoint::Provider, None);
    assert!(
        why(&action).contains("cannot open action `other::chart::read`"),
        "{action:?}"
    );
    let count = emergency(&READ, &dr, "x", Endpoint::Provider, Some(6));
    assert!(why(&count).contains("limited to 5 records"), "{count:?}");
    let no_reason = emergency(&READ, &dr, "  ", Endpoint::Provider, None);
    assert!(why(&no_reason).contains("no reason"), "{no_reason:?}");
    // An explicit deny rule cannot be overridden (the admin may otherwise delete).
    let admin = Principal::new("adm").role("admin").role("provider");
    let explicit = emergency(&DELETE, &admin, "x", Endpoint::Patient, None);
    assert!(!explicit.is_allowed());
    assert_eq!(explicit.rule.as_deref(), Some("no-portal-deletes"));
    assert!(
        why(&explicit).contains("cannot override a deny rule"),
        "{explicit:?}"
    );

    // A call the rules allow anyway is a plain allow, not a break-glass one.
    let plain = {
        let cache = ContextCache::default();
        policy.decide(&Request {
            endpoint: Some(Endpoint::Provider),
            purpose: Some(Purpose::Treatment),
            break_glass: Some("just in case"),
            ..bare(&READ, &dr, &cache)
        })
    };
    assert!(plain.is_allowed() && !plain.break_glass, "{plain:?}");

    // Without a [break_glass] section, never.
    let strict = Policy::from_toml_str("version = \"strict\"\n").unwrap();
    let none = strict.decide(&Request {
        break_glass: Some("emergency"),
        ..bare(&READ, &dr, &ContextCache::default())
    });
    assert!(
        why(&none).contains("no `[break_glass]` section"),
        "{none:?}"
    );
}

#[test]
fn break_glass_defaults_reveal_everything_and_any_resource() {
    let policy = Policy::from_toml_str(
        "version = \"bg\"\n[break_glass]\nroles = [\"provider\"]\nkinds = [\"read\"]\n",
    )
    .unwrap();
    let dr = Principal::new("dr").role("provider");
    let d = policy.decide(&Request {
        break_glass: Some("code blue"),
        ..bare(&NOTES, &dr, &ContextCache::default())
    });
    assert!(d.is_allowed() && d.break_glass, "{d:?}");
    assert_eq!(d.reveal, CategorySet::ALL);
    // Bounded by the code's roles: PEEK allows only `nurse`.
    let d = policy.decide(&Request {
        break_glass: Some("code blue"),
        ..bare(&PEEK, &dr, &ContextCache::default())
    });
    assert!(!d.is_allowed(), "{d:?}");
}

#[test]
fn action_and_jurisdiction_globs() {
    let policy = Policy::from_toml_str(
        r#"
version = "globs"
[[rule]]
id = "west"
effect = "allow"
actions = ["*::chart::read", "clinic::research::*"]
jurisdictions = ["US-CA", "US-O*", "*-BC"]
"#,
    )
    .unwrap();
    let decide = |action: &'static ActionDescriptor, j: Option<&str>| {
        let mut p = Principal::new("x").roles(["provider", "researcher"]);
        if let Some(j) = j {
            p = p.jurisdiction(j);
        }
        policy
            .decide(&bare(action, &p, &ContextCache::default()))
            .is_allowed()
    };
    assert!(decide(&READ, Some("US-CA")));
    assert!(decide(&OTHER, Some("US-OR")), "`*` spans `::`");
    assert!(decide(&READ, Some("US-OH")));
    assert!(decide(&READ, Some("CA-BC")));
    assert!(!decide(&READ, Some("US-CAX")), "exact patterns are exact");
    assert!(!decide(&READ, Some("US-WA")));
    assert!(!decide(&READ, Some("us-ca")), "matching is case-sensitive");
    assert!(!decide(&READ, None));
    assert!(decide(&EXPORT, Some("US-CA")));
    assert!(
        !decide(&UPDATE, Some("US-CA")),
        "`*::chart::read` does not match `update`"
    );
    // The rule names no roles: any role the code allows, and only those.
    let clerk = Principal::new("c").role("billing").jurisdiction("US-CA");
    let d = policy.decide(&bare(&READ, &clerk, &ContextCache::default()));
    assert_eq!(d.reason, Some(DenyReason::RoleNotAllowed), "{d:?}");
}

#[test]
fn decisions_carry_version_and_hash_of_the_exact_text() {
    let one = Policy::from_toml_str("version = \"kat-1\"\n").unwrap();
    assert_eq!(
        one.sha256(),
        "fad380d97866832cc6ffdd8dbdc39c1ba8201d32288c0f9ddd23f6376a99eee6"
    );
    let two = Policy::from_toml_str("version = \"kat-2\"\n").unwrap();
    assert_eq!(
        two.sha256(),
        "e0643ef57bf80f72150047ecba9d0c5b8ca61bdb4f6e750956ad92837135b04a"
    );
    let p = Principal::new("x").role("provider");
    let d = one.decide(&bare(&READ, &p, &ContextCache::default()));
    assert_eq!(&*d.policy_version, "kat-1");
    assert_eq!(&*d.policy_hash, one.sha256());
    // The borrowed verdict says the same and carries the action's labels for the events.
    let v = one.evaluate(&bare(&READ, &p, &ContextCache::default()));
    assert_eq!(v.to_decision(), d);
    assert_eq!(&**v.policy_version(), "kat-1");
    assert_eq!(&**v.policy_hash(), one.sha256());
    assert_eq!(&**v.action_name(), "clinic::chart::read");
    assert_eq!(&**v.action_kind(), "read");
    assert_eq!(v.action_resource().map(|r| &**r), Some("chart"));
    // The same text compiled twice: the same hash, distinct generations.
    let again = Policy::from_toml_str("version = \"kat-1\"\n").unwrap();
    assert_eq!(again.sha256(), one.sha256());
    assert_ne!(again.generation(), one.generation());
    assert_eq!(one.clone().generation(), one.generation());
}

#[test]
fn caches_follow_the_policy_generation() {
    // Two policies with different role tables decide alternately with one shared context
    // cache and one shared descriptor slot: each must see its own plan and role mask.
    let a = Policy::from_toml_str(
        "version = \"a\"\n[[rule]]\nid = \"a\"\neffect = \"allow\"\nactions = [\"clinic::*\"]\nroles = [\"nurse\", \"provider\"]\n",
    )
    .unwrap();
    let b = Policy::from_toml_str(
        "version = \"b\"\n[[rule]]\nid = \"b\"\neffect = \"allow\"\nactions = [\"clinic::*\"]\nroles = [\"patient\"]\n",
    )
    .unwrap();
    let cache = ContextCache::default();
    let dr = Principal::new("dr").role("provider");
    for _ in 0..50 {
        let da = a.decide(&bare(&READ, &dr, &cache));
        assert_eq!(da.rule.as_deref(), Some("a"), "{da:?}");
        let db = b.decide(&bare(&READ, &dr, &cache));
        assert_eq!(db.reason, Some(DenyReason::RoleNotAllowed), "{db:?}");
        // A clone of the cache keeps working.
        let copy = cache.clone();
        assert!(a.decide(&bare(&READ, &dr, &copy)).is_allowed());
    }
    // From several threads at once.
    std::thread::scope(|s| {
        for t in 0..4 {
            let (a, b, cache, dr) = (&a, &b, &cache, &dr);
            s.spawn(move || {
                for i in 0..500 {
                    if (i + t) % 2 == 0 {
                        assert!(a.decide(&bare(&READ, dr, cache)).is_allowed());
                    } else {
                        assert!(!b.decide(&bare(&READ, dr, cache)).is_allowed());
                    }
                }
            });
        }
    });
}

#[test]
fn many_roles_still_decide_correctly() {
    // More roles than the per-context cache holds (32): masks are computed per call.
    let mut text = String::from("version = \"roles\"\n");
    for i in 0..40 {
        text.push_str(&format!(
            "[[rule]]\nid = \"r{i}\"\neffect = \"allow\"\nactions = [\"clinic::chart::read\"]\nroles = [\"role{i}\"]\n"
        ));
    }
    text.push_str("[[rule]]\nid = \"provider\"\neffect = \"allow\"\nactions = [\"clinic::*\"]\nroles = [\"provider\"]\n");
    let policy = Policy::from_toml_str(&text).unwrap();
    let cache = ContextCache::default();
    let dr = Principal::new("dr").role("provider");
    let d = policy.decide(&bare(&READ, &dr, &cache));
    assert_eq!(d.rule.as_deref(), Some("provider"), "{d:?}");
    let d = policy.decide(&bare(&READ, &dr, &cache));
    assert_eq!(d.rule.as_deref(), Some("provider"), "{d:?}");
    let r39 = Principal::new("x").role("role39");
    // The code of READ does not allow `role39`.
    assert_eq!(
        policy.decide(&bare(&READ, &r39, &cache)).reason,
        Some(DenyReason::RoleNotAllowed)
    );

    let mut too_many = String::from("version = \"roles\"\n");
    for i in 0..65 {
        too_many.push_str(&format!(
            "[[rule]]\nid = \"r{i}\"\neffect = \"allow\"\nactions = [\"a\"]\nroles = [\"role{i}\"]\n"
        ));
    }
    let e = parse_err(&too_many);
    assert!(e.message.contains("at most 64 distinct roles"), "{e}");
    assert_eq!(e.field.as_deref(), Some("rule \"r64\".roles"));
}

// ---------------------------------------------------------------------------------------
// Properties
// ---------------------------------------------------------------------------------------

static ACTIONS: [&ActionDescriptor; 9] = [
    &READ, &UPDATE, &DELETE, &PEEK, &NOTES, &OTHER, &EXPORT, &AUDIT_LOG, &INVOICE,
];
const ROLES: [&str; 6] = [
    "provider",
    "patient",
    "admin",
    "nurse",
    "researcher",
    "billing",
];

/// One generated rule, kept structured so that the reference evaluator below can decide
/// with it directly; [`RuleSpec::toml`] renders it for the engine.
#[derive(Debug, Clone)]
struct RuleSpec {
    id: String,
    deny: bool,
    actions: Vec<&'static str>,
    kinds: Option<Vec<ActionKind>>,
    resources: Option<Vec<&'static str>>,
    roles: Option<Vec<&'static str>>,
    endpoints: Option<Vec<Endpoint>>,
    jurisdictions: Option<Vec<&'static str>>,
    purposes: Option<Vec<Purpose>>,
    self_only: bool,
    max_count: Option<u64>,
}

const PATTERNS: [&str; 6] = [
    "*",
    "clinic::*",
    "clinic::chart::read",
    "*::read",
    "billing::*",
    "*export",
];
const RESOURCES: [&str; 5] = ["chart", "notes", "cohort", "invoice", "elsewhere"];
const JURISDICTION_PATTERNS: [&str; 5] = ["US-*", "US-CA", "*", "CA-*", "*-OR"];
const JURISDICTIONS: [&str; 5] = ["US-CA", "US-OR", "CA-ON", "MX-BC", "US-WA"];
const BREAK_GLASS: &str =
    "[break_glass]\nroles = [\"provider\"]\nkinds = [\"read\"]\nmax_count = 5\n";

fn quoted<T: AsRef<str>>(items: impl IntoIterator<Item = T>) -> String {
    let items: Vec<String> = items
        .into_iter()
        .map(|i| format!("{:?}", i.as_ref()))
        .collect();
    format!("[{}]", items.join(", "))
}

impl RuleSpec {
    fn toml(&self) -> String {
        let mut s = format!(
            "[[rule]]\nid = \"{}\"\neffect = \"{}\"\nactions = {}\n",
            self.id,
            if self.deny { "deny" } else { "allow" },
            quoted(&self.actions)
        );
        if let Some(k) = &self.kinds {
            s += &format!("kinds = {}\n", quoted(k.iter().map(|k| k.as_str())));
        }
        if let Some(r) = &self.resources {
            s += &format!("resources = {}\n", quoted(r));
        }
        if let Some(r) = &self.roles {
            s += &format!("roles = {}\n", quoted(r));
        }
        if let Some(e) = &self.endpoints {
            s += &format!("endpoints = {}\n", quoted(e.iter().map(|e| e.as_str())));
        }
        if let Some(j) = &self.jurisdictions {
            s += &format!("jurisdictions = {}\n", quoted(j));
        }
        if let Some(p) = &self.purposes {
            s += &format!("purposes = {}\n", quoted(p.iter().map(|p| p.as_str())));
        }
        if self.self_only {
            s += "self_only = true\n";
        }
        if let Some(m) = self.max_count {
            s += &format!("max_count = {m}\n");
        }
        s
    }
}

fn pick<T: Copy>(all: &[T], picks: &[usize]) -> Vec<T> {
    picks.iter().map(|i| all[i % all.len()]).collect()
}

prop_compose! {
    fn rule_spec(id: usize)(
        deny in any::<bool>(),
        actions in prop::collection::vec(0usize..6, 1..3),
        kinds in prop::option::of(prop::collection::vec(0usize..6, 1..3)),
        resources in prop::option::of(prop::collection::vec(0usize..5, 1..3)),
        roles in prop::option::of(prop::collection::vec(0usize..6, 1..3)),
        endpoints in prop::option::of(prop::collection::vec(0usize..4, 1..3)),
        jurisdictions in prop::option::of(prop::collection::vec(0usize..5, 1..3)),
        purposes in prop::option::of(prop::collection::vec(0usize..7, 1..3)),
        self_only in any::<bool>(),
        max_count in prop::option::of(0u64..20),
    ) -> RuleSpec {
        RuleSpec {
            id: format!("r{id}"),
            deny,
            actions: pick(&PATTERNS, &actions),
            kinds: kinds.map(|k| pick(ActionKind::ALL, &k)),
            resources: resources.map(|r| pick(&RESOURCES, &r)),
            roles: roles.map(|r| pick(&ROLES, &r)),
            endpoints: endpoints.map(|e| pick(Endpoint::ALL, &e)),
            jurisdictions: jurisdictions.map(|j| pick(&JURISDICTION_PATTERNS, &j)),
            purposes: purposes.map(|p| pick(Purpose::ALL, &p)),
            // `self_only` is refused on deny rules.
            self_only: self_only && !deny,
            max_count,
        }
    }
}

fn mixed_policy() -> impl Strategy<Value = (Vec<RuleSpec>, bool)> {
    (0usize..6, any::<bool>()).prop_flat_map(|(n, break_glass)| {
        let rules: Vec<_> = (0..n).map(rule_spec).collect();
        (rules, Just(break_glass))
    })
}

/// `*` matches any run of characters; everything else matches itself.
fn glob(pattern: &str, text: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern == text,
        Some((head, tail)) => {
            let Some(rest) = text.strip_prefix(head) else {
                return false;
            };
            (0..=rest.len())
                .filter(|i| rest.is_char_boundary(*i))
                .any(|i| glob(tail, &rest[i..]))
        }
    }
}

/// The call a generated request stands for, in plain values.
struct Call<'a> {
    action: &'static ActionDescriptor,
    roles: &'a [&'static str],
    jurisdiction: Option<&'a str>,
    patient: Option<&'a str>,
    endpoint: Option<Endpoint>,
    purpose: Option<Purpose>,
    subject: Option<&'a str>,
    count: Option<u64>,
    break_glass: Option<&'a str>,
}

/// What the reference evaluator expects.
#[derive(Debug, PartialEq)]
enum Reference {
    Allow { rule: String },
    DeniedByRule { rule: String, break_glass: bool },
    Default(DenyReason),
    BreakGlass,
    BreakGlassRefused,
}

/// docs/policy.md, "How a call is decided", written out as plainly as possible.
fn reference(rules: &[RuleSpec], break_glass_section: bool, call: &Call<'_>) -> Reference {
    let a = call.action;
    let statically = |r: &RuleSpec| {
        r.actions.iter().any(|p| glob(p, a.name))
            && r.kinds.as_ref().is_none_or(|k| k.contains(&a.kind))
            && r.resources.as_ref().is_none_or(|rs| match a.resource {
                Some(res) => rs.contains(&res),
                // A deny rule's resources hold for an action declaring none (fail safe).
                None => r.deny,
            })
    };
    let holds = |r: &&str| call.roles.contains(r);
    for r in rules.iter().filter(|r| r.deny && statically(r)) {
        let role = r.roles.as_ref().is_none_or(|rs| rs.iter().any(holds));
        let endpoint = match (&r.endpoints, call.endpoint) {
            (Some(es), Some(e)) => es.contains(&e),
            _ => true,
        };
        let jurisdiction = match (&r.jurisdictions, call.jurisdiction) {
            (Some(js), Some(j)) => js.iter().any(|p| glob(p, j)),
            _ => true,
        };
        let purpose = match (&r.purposes, call.purpose) {
            (Some(ps), Some(p)) => ps.contains(&p),
            _ => true,
        };
        let count = r.max_count.is_none_or(|m| call.count.unwrap_or(1) > m);
        if role && endpoint && jurisdiction && purpose && count {
            return Reference::DeniedByRule {
                rule: r.id.clone(),
                break_glass: call.break_glass.is_some(),
            };
        }
    }
    // (stage, reason) of the allow rule that got furthest.
    let mut furthest: Option<(u8, DenyReason)> = None;
    for r in rules.iter().filter(|r| !r.deny && statically(r)) {
        let failure = (|| {
            let code_role = |role: &&str| a.roles.contains(role) && holds(role);
            let role = match &r.roles {
                None => a.roles.iter().any(code_role),
                Some(rs) => rs.iter().any(code_role),
            };
            if !role {
                return Some((1, DenyReason::RoleNotAllowed));
            }
            if let Some(es) = &r.endpoints {
                match call.endpoint {
                    None => return Some((2, DenyReason::MissingContext { field: "endpoint" })),
                    Some(e) if !es.contains(&e) => {
                        return Some((2, DenyReason::EndpointNotAllowed));
                    }
                    Some(_) => {}
                }
            }
            if let Some(js) = &r.jurisdictions {
                if !call
                    .jurisdiction
                    .is_some_and(|j| js.iter().any(|p| glob(p, j)))
                {
                    return Some((3, DenyReason::JurisdictionNotAllowed));
                }
            }
            if let Some(ps) = &r.purposes {
                match call.purpose {
                    None => return Some((4, DenyReason::MissingContext { field: "purpose" })),
                    Some(p) if !ps.contains(&p) => return Some((4, DenyReason::PurposeNotAllowed)),
                    Some(_) => {}
                }
            }
            if r.self_only {
                match call.subject {
                    None => return Some((5, DenyReason::MissingContext { field: "subject" })),
                    Some(s) if call.patient != Some(s) => {
                        return Some((5, DenyReason::NotOwnSubject));
                    }
                    Some(_) => {}
                }
            }
            if let Some(limit) = r.max_count {
                let count = call.count.unwrap_or(1);
                if count > limit {
                    return Some((6, DenyReason::CountOverLimit { count, limit }));
                }
            }
            None
        })();
        let Some(failure) = failure else {
            return Reference::Allow { rule: r.id.clone() };
        };
        furthest = Some(match furthest {
            None => failure,
            Some((6, DenyReason::CountOverLimit { count, limit: a })) if failure.0 == 6 => {
                let DenyReason::CountOverLimit { limit: b, .. } = failure.1 else {
                    unreachable!()
                };
                (
                    6,
                    DenyReason::CountOverLimit {
                        count,
                        limit: a.max(b),
                    },
                )
            }
            Some(best) if failure.0 > best.0 => failure,
            Some(best) => best,
        });
    }
    let Some(why) = call.break_glass else {
        return Reference::Default(furthest.map_or(DenyReason::NoMatchingRule, |f| f.1));
    };
    let permitted = break_glass_section
        && !why.trim().is_empty()
        && call.roles.contains(&"provider")
        && a.roles.contains(&"provider")
        && a.kind == ActionKind::Read
        && call.count.unwrap_or(1) <= 5;
    if permitted {
        Reference::BreakGlass
    } else {
        Reference::BreakGlassRefused
    }
}

fn observed(decision: &Decision) -> Reference {
    match (&decision.effect, &decision.reason) {
        (Effect::Allow, None) if decision.break_glass => Reference::BreakGlass,
        (Effect::Allow, None) => Reference::Allow {
            rule: decision.rule.as_deref().unwrap_or("<none>").to_owned(),
        },
        (Effect::Deny, Some(DenyReason::DeniedByRule { rule })) => Reference::DeniedByRule {
            rule: rule.to_string(),
            break_glass: false,
        },
        (Effect::Deny, Some(DenyReason::BreakGlassNotPermitted { why })) => match &decision.rule {
            Some(rule) => {
                assert!(why.contains(&format!("`{rule}`")), "{decision:?}");
                Reference::DeniedByRule {
                    rule: rule.to_string(),
                    break_glass: true,
                }
            }
            None => Reference::BreakGlassRefused,
        },
        (Effect::Deny, Some(reason)) if decision.rule.is_none() => {
            Reference::Default(reason.clone())
        }
        _ => panic!("inconsistent decision {decision:?}"),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2048))]

    /// Mixed allow and deny policies, with every condition (jurisdictions too), decide exactly
    /// as the plain reference evaluator above: the deciding rule, the effect, the reason.
    #[test]
    fn decisions_match_a_reference_evaluator(
        (rules, break_glass_section) in mixed_policy(),
        action in 0usize..9,
        roles in prop::collection::vec(0usize..6, 0..3),
        endpoint in prop::option::of(0usize..4),
        purpose in prop::option::of(0usize..7),
        jurisdiction in prop::option::of(0usize..5),
        subject in prop::option::of(0usize..3),
        patient in prop::option::of(0usize..3),
        count in prop::option::of(prop_oneof![0u64..25, any::<u64>()]),
        break_glass in prop::option::of(prop_oneof![Just(" "), Just("patient crashing")]),
    ) {
        let patients = ["p-1", "p-2", "p-10"];
        let text = format!(
            "version = \"mixed\"\n{}{}",
            if break_glass_section { BREAK_GLASS } else { "" },
            rules.iter().map(RuleSpec::toml).collect::<String>()
        );
        let policy = Policy::from_toml_str(&text).unwrap();
        let roles = pick(&ROLES, &roles);
        let jurisdiction = jurisdiction.map(|i| JURISDICTIONS[i]);
        let patient = patient.map(|i| patients[i]);
        let subject = subject.map(|i| patients[i]);
        let mut principal = Principal::new("p").roles(roles.iter().copied());
        if let Some(j) = jurisdiction { principal = principal.jurisdiction(j); }
        if let Some(id) = patient { principal = principal.patient(id); }
        let cache = ContextCache::default();
        let request = Request {
            action: ACTIONS[action],
            principal: &principal,
            endpoint: endpoint.map(|i| Endpoint::ALL[i]),
            purpose: purpose.map(|i| Purpose::ALL[i]),
            subject: subject.as_ref().map(|s| s as &dyn std::fmt::Display),
            count,
            break_glass,
            agent: None,
            cache: &cache,
        };
        let call = Call {
            action: ACTIONS[action],
            roles: &roles,
            jurisdiction,
            patient,
            endpoint: request.endpoint,
            purpose: request.purpose,
            subject,
            count,
            break_glass,
        };
        let expected = reference(&rules, break_glass_section, &call);
        let decision = policy.decide(&request);
        prop_assert_eq!(observed(&decision), expected, "{}\n{:?}", text, decision);
        if rules.iter().all(|r| r.deny) && !decision.break_glass {
            // Without an allow rule nothing is allowed, except by break-glass.
            prop_assert_eq!(decision.effect, Effect::Deny, "{:?}", decision);
        }
        // Deciding again with the now warm caches gives the same answer.
        prop_assert_eq!(policy.decide(&request), decision);
    }

    #[test]
    fn loading_mangled_policies_never_panics(cut in 0usize..2000, insert in "[\\[\\]=\"a-z0-9 \n#*.,{}-]{0,6}") {
        let mut text = CLINIC.to_owned();
        let at = cut % text.len();
        let at = (0..=at).rev().find(|i| text.is_char_boundary(*i)).unwrap_or(0);
        text.insert_str(at, &insert);
        if let Err(e) = Policy::from_toml_str(&text) {
            let lines = text.lines().count() + 1;
            prop_assert!(e.line.is_some_and(|l| (1..=lines).contains(&l)), "{}", e);
            prop_assert!(e.column.is_some_and(|c| c >= 1), "{}", e);
        }
    }
}

#[test]
fn an_unknown_field_suggests_the_nearest_one() {
    let err = Policy::from_toml_str(
        "version = \"1\"\n[[rule]]\nid = \"x\"\nefect = \"allow\"\nactions = [\"*\"]\n",
    )
    .unwrap_err();
    assert_eq!((err.line, err.column), (Some(4), Some(1)));
    assert!(
        err.to_string().ends_with("; did you mean `effect`?"),
        "{err}"
    );
    // Nothing near: no guess.
    let err = Policy::from_toml_str("version = \"1\"\nzzzzzz = 1\n").unwrap_err();
    assert!(!err.to_string().contains("did you mean"), "{err}");
}
