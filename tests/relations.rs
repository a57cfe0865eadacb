//! Who may see this patient: care-team relations (`relations = [..]`, `NoRelationship`,
//! break-glass over it), patient restrictions and VIPs (`restricted`, `vip`, the VIP alert),
//! sensitive segments behind a consent (`consent = [..]`, masked or denied), personal
//! representatives (`self_only`), the per-request memo of the host's answers, and failed
//! lookups failing closed. Every event records the grounds without raw PHI.

use std::collections::{HashMap, HashSet};
use std::fmt::Display;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use guardrail_core::__private::{CountArg, begin};
use guardrail_core::audit::{AuditEvent, EventKind};
use guardrail_core::policy::{ContextCache, Request};
use guardrail_core::relation::{
    AsyncRelationships, Consent, ConsentSet, Consents, LookupError, LookupFuture, Lookups,
    PatientFlags, Relations, Relationships,
};
use guardrail_core::{
    ActionDescriptor, ActionKind, AlertKind, AuditKey, Context, DenyReason, Effect, GuardError,
    Guardrail, MemoryAlertSink, MemorySink, Phi, Policy, Principal, Purpose, Redact,
};

const HEAD: &str = r#"
version = "relations-1"

[break_glass]
roles = ["provider"]
kinds = ["read"]
"#;

/// The deny rules that read the patients' flags.
const FLAG_RULES: &str = r#"
[[rule]]
id = "restricted-records"
effect = "deny"
actions = ["clinic::*"]
restricted = true

[[rule]]
id = "no-vip-billing"
effect = "deny"
actions = ["clinic::*"]
roles = ["billing"]
vip = true
"#;

const RULES: &str = r#"
[[rule]]
id = "no-psychotherapy-for-representatives"
effect = "deny"
actions = ["clinic::read_psychotherapy_note"]
relations = ["personal_representative"]

[[rule]]
id = "part2-disclosure-needs-consent"
effect = "deny"
actions = ["clinic::disclose_sud_record"]
consent = ["part2"]

[[rule]]
id = "care-team-reads"
effect = "allow"
actions = ["clinic::read_chart", "clinic::read_psychotherapy_note"]
roles = ["provider"]
purposes = ["treatment"]
relations = ["care_team", "attending"]
reveal = ["*"]

[[rule]]
id = "billing-reads"
effect = "allow"
actions = ["clinic::read_chart"]
roles = ["billing"]
relations = ["assigned_case"]
reveal = ["name", "substance_use"]
consent = ["part2"]

[[rule]]
id = "patients-and-representatives"
effect = "allow"
actions = ["clinic::read_chart", "clinic::read_psychotherapy_note"]
roles = ["patient"]
self_only = true
reveal = ["*"]

[[rule]]
id = "disclose"
effect = "allow"
actions = ["clinic::disclose_sud_record"]
roles = ["provider"]
"#;

/// The test policy, with or without the deny rules on the patients' flags.
fn policy_text(flag_rules: bool) -> String {
    let flags = if flag_rules { FLAG_RULES } else { "" };
    format!("{HEAD}{flags}{RULES}")
}

static READ_CHART: ActionDescriptor = ActionDescriptor::new("clinic::read_chart", ActionKind::Read)
    .roles(&["provider", "billing", "patient"])
    .resource("patient_record");
static READ_NOTE: ActionDescriptor =
    ActionDescriptor::new("clinic::read_psychotherapy_note", ActionKind::Read)
        .roles(&["provider", "patient"])
        .resource("patient_record");
static DISCLOSE: ActionDescriptor =
    ActionDescriptor::new("clinic::disclose_sud_record", ActionKind::Disclose)
        .roles(&["provider"])
        .resource("patient_record");

/// The clinic's tables: relations, flags and consents, counting every question.
#[derive(Default)]
struct Clinic {
    relations: HashMap<(&'static str, &'static str), Vec<&'static str>>,
    flags: HashMap<&'static str, PatientFlags>,
    consents: HashSet<(&'static str, &'static str)>,
    /// Subjects whose lookups fail (the host's database is down for them).
    broken: HashSet<&'static str>,
    relation_calls: AtomicUsize,
    flag_calls: AtomicUsize,
    consent_calls: AtomicUsize,
}

const HOST_ERROR: &str = "connection refused while reading care_team for p-500";

impl Relationships for Clinic {
    fn relations(&self, principal: &Principal, subject: &str) -> Result<Relations, LookupError> {
        self.relation_calls.fetch_add(1, Ordering::SeqCst);
        if self.broken.contains(subject) {
            return Err(LookupError::new(HOST_ERROR));
        }
        Ok(self
            .relations
            .iter()
            .filter(|((p, s), _)| *p == principal.id() && *s == subject)
            .flat_map(|(_, names)| names.iter().copied())
            .collect())
    }

    fn patient(&self, subject: &str) -> Result<PatientFlags, LookupError> {
        self.flag_calls.fetch_add(1, Ordering::SeqCst);
        if self.broken.contains(subject) {
            return Err(LookupError::new(HOST_ERROR));
        }
        Ok(self.flags.get(subject).cloned().unwrap_or_default())
    }
}

impl Consents for Clinic {
    fn consents(&self, principal: &Principal, subject: &str) -> Result<ConsentSet, LookupError> {
        self.consent_calls.fetch_add(1, Ordering::SeqCst);
        let _ = principal;
        if self.broken.contains(subject) {
            return Err(LookupError::new(HOST_ERROR));
        }
        Ok(Consent::ALL
            .iter()
            .copied()
            .filter(|c| self.consents.contains(&(subject, c.as_str())))
            .collect())
    }
}

fn clinic() -> Arc<Clinic> {
    let mut c = Clinic::default();
    c.relations
        .insert(("dr-grey", "p-100"), vec![Relations::CARE_TEAM]);
    c.relations
        .insert(("dr-grey", "p-300"), vec![Relations::CARE_TEAM]);
    c.relations
        .insert(("dr-grey", "p-900"), vec![Relations::ATTENDING]);
    c.relations
        .insert(("bo-billing", "p-100"), vec![Relations::ASSIGNED_CASE]);
    c.relations
        .insert(("bo-billing", "p-900"), vec![Relations::ASSIGNED_CASE]);
    c.relations.insert(
        ("gus-guardian", "p-200"),
        vec![Relations::PERSONAL_REPRESENTATIVE],
    );
    c.flags
        .insert("p-300", PatientFlags::new().restrict_principal("dr-grey"));
    c.flags
        .insert("p-400", PatientFlags::new().restrict_role("billing"));
    c.flags.insert("p-900", PatientFlags::new().vip());
    c.consents.insert(("p-900", "part2"));
    c.broken.insert("p-500");
    Arc::new(c)
}

struct Setup {
    guardrail: Guardrail,
    trail: MemorySink,
    alerts: MemoryAlertSink,
    clinic: Arc<Clinic>,
}

fn setup() -> Setup {
    setup_with(&policy_text(true))
}

fn setup_with(policy: &str) -> Setup {
    let clinic = clinic();
    let trail = MemorySink::new();
    let alerts = MemoryAlertSink::new();
    let guardrail = Guardrail::builder()
        .policy(Policy::from_toml_str(policy).unwrap())
        .audit(trail.clone())
        .audit_key(AuditKey::from_bytes(b"relations-test-key-0123456789").unwrap())
        .alerts(alerts.clone())
        .relationships(clinic.clone())
        .consents(clinic.clone())
        .build()
        .unwrap();
    Setup {
        guardrail,
        trail,
        alerts,
        clinic,
    }
}

fn grey() -> Principal {
    Principal::new("dr-grey").role("provider")
}

fn hale() -> Principal {
    Principal::new("dr-hale").role("provider")
}

fn billing() -> Principal {
    Principal::new("bo-billing").role("billing")
}

#[derive(Debug, Clone, PartialEq, Phi)]
struct Chart {
    #[phi(name)]
    name: String,
    #[phi(substance_use)]
    sud_treatment: String,
}

fn chart() -> Chart {
    Chart {
        name: "Ada Lovelace".into(),
        sud_treatment: "methadone maintenance".into(),
    }
}

/// Runs `action` on `subject` under `ctx`; the body returns a chart, masked on the way out.
fn read(
    action: &'static ActionDescriptor,
    ctx: &Context,
    subject: &str,
    ran: &AtomicUsize,
) -> Result<Chart, GuardError> {
    let subject: &dyn Display = &subject;
    let call = begin(action, ctx, Some(subject), CountArg::Absent, &[])?;
    ran.fetch_add(1, Ordering::SeqCst);
    call.finish::<Chart, GuardError>(Ok(chart()))
}

fn last_decision(trail: &MemorySink) -> AuditEvent {
    trail
        .events()
        .into_iter()
        .rev()
        .find(|e| e.record.kind == EventKind::Decision)
        .expect("a decision event")
}

fn treating(s: &Setup, who: Principal) -> Context {
    s.guardrail.context(who).purpose(Purpose::Treatment)
}

#[test]
fn a_care_team_member_reads_and_the_event_names_the_relation() {
    let s = setup();
    let ran = AtomicUsize::new(0);
    let chart = read(&READ_CHART, &treating(&s, grey()), "p-100", &ran).unwrap();
    assert_eq!(chart.name, "Ada Lovelace");
    let e = last_decision(&s.trail);
    assert_eq!(e.record.decision.as_deref(), Some("allow"));
    assert_eq!(e.record.rule.as_deref(), Some("care-team-reads"));
    assert_eq!(
        e.record.detail.get("relation").map(String::as_str),
        Some("care_team")
    );
    // The attending relation is the rule's second name.
    read(&READ_CHART, &treating(&s, grey()), "p-900", &ran).unwrap();
    assert_eq!(
        last_decision(&s.trail)
            .record
            .detail
            .get("relation")
            .map(String::as_str),
        Some("attending")
    );
    assert_eq!(ran.load(Ordering::SeqCst), 2);
}

#[test]
fn a_provider_off_the_care_team_is_denied_with_no_relationship() {
    let s = setup();
    let ran = AtomicUsize::new(0);
    let err = read(&READ_CHART, &treating(&s, hale()), "p-100", &ran).unwrap_err();
    assert_eq!(err.deny_reason(), Some(&DenyReason::NoRelationship));
    assert_eq!(ran.load(Ordering::SeqCst), 0, "the body ran");
    let e = last_decision(&s.trail);
    assert_eq!(e.record.decision.as_deref(), Some("deny"));
    assert_eq!(
        e.record.reason.as_deref(),
        Some(DenyReason::NoRelationship.to_string().as_str())
    );
    assert_eq!(DenyReason::NoRelationship.code(), "no_relationship");
}

#[test]
fn break_glass_opens_no_relationship_flagged_and_alerted() {
    let s = setup();
    let ran = AtomicUsize::new(0);
    let ctx = s
        .guardrail
        .context(hale())
        .break_glass("unresponsive patient in the ED");
    read(&READ_CHART, &ctx, "p-100", &ran).unwrap();
    assert_eq!(ran.load(Ordering::SeqCst), 1);
    let e = last_decision(&s.trail);
    assert_eq!(e.record.decision.as_deref(), Some("break_glass"));
    assert!(e.record.break_glass);
    s.guardrail.flush_alerts();
    assert!(
        s.alerts
            .alerts()
            .iter()
            .any(|a| a.kind == AlertKind::BreakGlass && a.principal.as_deref() == Some("dr-hale"))
    );
}

#[test]
fn break_glass_does_not_open_a_failed_lookup_a_restriction_or_a_missing_consent() {
    let s = setup();
    let ran = AtomicUsize::new(0);
    let emergency = |who: Principal| s.guardrail.context(who).break_glass("code blue");

    // The relationship lookup fails: fail closed, break-glass or not.
    let err = read(&READ_CHART, &emergency(hale()), "p-500", &ran).unwrap_err();
    assert!(
        matches!(
            err.deny_reason(),
            Some(DenyReason::LookupFailed {
                provider: "patient_flags" | "relationships",
                why: "failed"
            })
        ),
        "{err}"
    );
    // A patient's restriction is a deny rule: break-glass never overrides it.
    let err = read(&READ_CHART, &emergency(grey()), "p-300", &ran).unwrap_err();
    match err.deny_reason() {
        Some(DenyReason::BreakGlassNotPermitted { why }) => {
            assert!(why.contains("restricted-records"), "{why}")
        }
        other => panic!("expected the restriction to hold, got {other:?}"),
    }
    // Nor a deny rule that wants a consent.
    let err = read(&DISCLOSE, &emergency(grey()), "p-100", &ran).unwrap_err();
    match err.deny_reason() {
        Some(DenyReason::BreakGlassNotPermitted { why }) => {
            assert!(why.contains("part2-disclosure-needs-consent"), "{why}")
        }
        other => panic!("expected the consent rule to hold, got {other:?}"),
    }
    assert_eq!(ran.load(Ordering::SeqCst), 0, "a body ran");
}

#[test]
fn a_failed_lookup_denies_and_is_recorded_without_phi() {
    let s = setup();
    let ran = AtomicUsize::new(0);
    // A relationships-only policy: the relation lookup is the one that fails.
    let err = read(&READ_CHART, &treating(&s, grey()), "p-500", &ran).unwrap_err();
    let Some(DenyReason::LookupFailed { provider, why }) = err.deny_reason() else {
        panic!("expected LookupFailed, got {err}");
    };
    assert_eq!(*why, "failed");
    let e = last_decision(&s.trail);
    assert_eq!(e.record.decision.as_deref(), Some("deny"));
    let reason = e.record.reason.as_deref().unwrap();
    assert!(reason.contains(&format!("`{provider}`")), "{reason}");
    let lines = s.trail.to_lines();
    assert!(
        !lines.contains("p-500"),
        "the raw subject reached the trail"
    );
    assert!(
        !lines.contains("connection refused"),
        "the host's error reached the trail"
    );
    assert!(!err.to_string().contains("p-500"));
    assert_eq!(ran.load(Ordering::SeqCst), 0);
}

#[test]
fn the_relation_lookup_failing_alone_names_the_relationships_provider() {
    // Without a subject flag lookup (no provider-wide VIP check can fail first), the
    // relationships provider's own failure is named.
    let policy = Policy::from_toml_str(&policy_text(true)).unwrap();
    let clinic = clinic();
    let cache = ContextCache::with_lookups(Lookups::new().relationships(clinic.clone()));
    let principal = grey();
    let subject: &dyn Display = &"p-500";
    let decision = policy.decide(&request(&READ_CHART, &principal, subject, &cache));
    assert_eq!(
        decision.reason,
        Some(DenyReason::LookupFailed {
            provider: "patient_flags",
            why: "failed"
        }),
        "the restriction rule asks for the flags first"
    );
    let policy = Policy::from_toml_str(&policy_text(false)).unwrap();
    let cache = ContextCache::with_lookups(Lookups::new().relationships(clinic));
    let decision = policy.decide(&request(&READ_CHART, &principal, subject, &cache));
    assert_eq!(
        decision.reason,
        Some(DenyReason::LookupFailed {
            provider: "relationships",
            why: "failed"
        })
    );
    // Declaring an emergency does not turn the failed lookup into a default denial that
    // break-glass could open.
    let mut emergency = request(&READ_CHART, &principal, subject, &cache);
    emergency.break_glass = Some("code blue");
    let decision = policy.decide(&emergency);
    assert!(!decision.break_glass);
    assert_eq!(
        decision.reason,
        Some(DenyReason::LookupFailed {
            provider: "relationships",
            why: "failed"
        })
    );
    // While a patient the principal has no relation with is exactly what it opens.
    let other: &dyn Display = &"p-100";
    let hale = hale();
    let mut emergency = request(&READ_CHART, &hale, other, &cache);
    emergency.break_glass = Some("code blue");
    let decision = policy.decide(&emergency);
    assert!(
        decision.break_glass && decision.is_allowed(),
        "{decision:?}"
    );
}

fn request<'a>(
    action: &'static ActionDescriptor,
    principal: &'a Principal,
    subject: &'a dyn Display,
    cache: &'a ContextCache,
) -> Request<'a> {
    Request {
        action,
        principal,
        endpoint: None,
        purpose: Some(Purpose::Treatment),
        subject: Some(subject),
        count: None,
        break_glass: None,
        agent: None,
        cache,
    }
}

#[test]
fn without_a_provider_a_relations_rule_fails_closed() {
    let trail = MemorySink::new();
    let guardrail = Guardrail::builder()
        .policy(Policy::from_toml_str(&policy_text(true)).unwrap())
        .audit(trail.clone())
        .audit_key(AuditKey::from_bytes(b"relations-test-key-0123456789").unwrap())
        .build()
        .unwrap();
    let ran = AtomicUsize::new(0);
    let ctx = guardrail.context(grey()).purpose(Purpose::Treatment);
    let err = read(&READ_CHART, &ctx, "p-100", &ran).unwrap_err();
    assert_eq!(
        err.deny_reason(),
        Some(&DenyReason::LookupFailed {
            provider: "patient_flags",
            why: "not_configured"
        })
    );
    assert_eq!(ran.load(Ordering::SeqCst), 0);
}

#[test]
fn one_lookup_per_request_per_subject() {
    let s = setup();
    let ran = AtomicUsize::new(0);
    let ctx = treating(&s, grey());
    for _ in 0..5 {
        read(&READ_CHART, &ctx, "p-100", &ran).unwrap();
        read(&READ_NOTE, &ctx, "p-100", &ran).unwrap();
    }
    assert_eq!(s.clinic.relation_calls.load(Ordering::SeqCst), 1);
    assert_eq!(s.clinic.flag_calls.load(Ordering::SeqCst), 1);
    // Another subject is another question; a clone of the request keeps the answers.
    read(&READ_CHART, &ctx, "p-900", &ran).unwrap();
    read(&READ_CHART, &ctx.clone(), "p-100", &ran).unwrap();
    assert_eq!(s.clinic.relation_calls.load(Ordering::SeqCst), 2);
    assert_eq!(s.clinic.flag_calls.load(Ordering::SeqCst), 2);
    // A new request asks again.
    read(&READ_CHART, &treating(&s, grey()), "p-100", &ran).unwrap();
    assert_eq!(s.clinic.relation_calls.load(Ordering::SeqCst), 3);
    // A failure is remembered too: the request decides alike on every call.
    let ctx = treating(&s, grey());
    let before = s.clinic.flag_calls.load(Ordering::SeqCst);
    for _ in 0..3 {
        read(&READ_CHART, &ctx, "p-500", &ran).unwrap_err();
    }
    assert_eq!(s.clinic.flag_calls.load(Ordering::SeqCst), before + 1);
}

#[test]
fn a_deny_rule_with_relations_singles_out_that_relation() {
    let s = setup();
    let ran = AtomicUsize::new(0);
    let guardian = Principal::new("gus-guardian")
        .role("patient")
        .patient("p-201");
    let ctx = s.guardrail.context(guardian);
    // The guardian reads the represented patient's chart…
    read(&READ_CHART, &ctx, "p-200", &ran).unwrap();
    // …but not the psychotherapy notes: the deny rule names the representative relation.
    let err = read(&READ_NOTE, &ctx, "p-200", &ran).unwrap_err();
    assert_eq!(
        err.deny_reason(),
        Some(&DenyReason::DeniedByRule {
            rule: "no-psychotherapy-for-representatives".into()
        })
    );
    // The patient themself is no representative of anyone: the rule does not hold.
    let own = s
        .guardrail
        .context(Principal::new("pat").role("patient").patient("p-200"));
    read(&READ_NOTE, &own, "p-200", &ran).unwrap();
    assert_eq!(ran.load(Ordering::SeqCst), 2);
}

#[test]
fn a_personal_representative_passes_self_only_recorded_as_such() {
    let s = setup();
    let ran = AtomicUsize::new(0);
    let guardian = Principal::new("gus-guardian")
        .role("patient")
        .patient("p-201");
    let ctx = s.guardrail.context(guardian.clone());
    read(&READ_CHART, &ctx, "p-200", &ran).unwrap();
    let e = last_decision(&s.trail);
    assert_eq!(
        e.record.rule.as_deref(),
        Some("patients-and-representatives")
    );
    assert_eq!(
        e.record.detail.get("representative").map(String::as_str),
        Some("personal_representative")
    );
    // Their own record needs no representation and says so.
    read(&READ_CHART, &ctx, "p-201", &ran).unwrap();
    assert!(
        !last_decision(&s.trail)
            .record
            .detail
            .contains_key("representative")
    );
    // A patient they do not represent stays closed.
    let err = read(&READ_CHART, &ctx, "p-100", &ran).unwrap_err();
    assert_eq!(err.deny_reason(), Some(&DenyReason::NotOwnSubject));
    assert_eq!(ran.load(Ordering::SeqCst), 2);
}

#[test]
fn a_restricted_record_is_denied_to_the_named_principal_and_role() {
    let s = setup();
    let ran = AtomicUsize::new(0);
    let restricted = DenyReason::DeniedByRule {
        rule: "restricted-records".into(),
    };
    // dr-grey is on p-300's care team, but p-300 restricted their record from dr-grey.
    let err = read(&READ_CHART, &treating(&s, grey()), "p-300", &ran).unwrap_err();
    assert_eq!(err.deny_reason(), Some(&restricted));
    // p-400 restricts billing as a role.
    let err = read(&READ_CHART, &s.guardrail.context(billing()), "p-400", &ran).unwrap_err();
    assert_eq!(err.deny_reason(), Some(&restricted));
    // An unrestricted patient of the same principal is readable.
    read(&READ_CHART, &treating(&s, grey()), "p-100", &ran).unwrap();
    assert_eq!(ran.load(Ordering::SeqCst), 1);
}

#[test]
fn every_access_to_a_vip_record_alerts_allowed_or_not() {
    let s = setup();
    let ran = AtomicUsize::new(0);
    read(&READ_CHART, &treating(&s, grey()), "p-900", &ran).unwrap();
    assert_eq!(
        last_decision(&s.trail)
            .record
            .detail
            .get("vip")
            .map(String::as_str),
        Some("true")
    );
    // Billing has an assigned case on p-900, but the VIP deny rule singles out billing.
    let err = read(&READ_CHART, &s.guardrail.context(billing()), "p-900", &ran).unwrap_err();
    assert_eq!(
        err.deny_reason(),
        Some(&DenyReason::DeniedByRule {
            rule: "no-vip-billing".into()
        })
    );
    // dr-hale is denied by default (no relation): still a VIP access.
    read(&READ_CHART, &treating(&s, hale()), "p-900", &ran).unwrap_err();
    // A patient who is no VIP raises nothing.
    read(&READ_CHART, &treating(&s, grey()), "p-100", &ran).unwrap();
    s.guardrail.flush_alerts();
    let vip: Vec<_> = s
        .alerts
        .alerts()
        .into_iter()
        .filter(|a| a.kind == AlertKind::VipAccess)
        .collect();
    let who: Vec<_> = vip.iter().map(|a| a.principal.as_deref()).collect();
    assert_eq!(
        who,
        vec![Some("dr-grey"), Some("bo-billing"), Some("dr-hale")]
    );
    assert!(vip.iter().all(|a| !a.message.contains("p-900")));
    assert!(!s.trail.to_lines().contains("p-900"));
}

#[test]
fn a_part2_segment_is_masked_without_consent_and_the_event_says_why() {
    let s = setup();
    let ran = AtomicUsize::new(0);
    let billing_ctx = s.guardrail.context(billing());
    // p-100 gave no Part 2 consent: the rule reveals `substance_use`, the consent withholds it.
    let chart = read(&READ_CHART, &billing_ctx, "p-100", &ran).unwrap();
    assert_eq!(chart.name, "Ada Lovelace", "the rule still reveals names");
    assert_eq!(chart.sud_treatment, "[REDACTED]");
    let e = last_decision(&s.trail);
    assert_eq!(e.record.decision.as_deref(), Some("allow"));
    assert_eq!(
        e.record.detail.get("consent_missing").map(String::as_str),
        Some("part2")
    );
    assert_eq!(
        e.record.detail.get("withheld").map(String::as_str),
        Some("substance_use")
    );
    // p-900 consented: revealed, nothing withheld (under a policy that lets billing read
    // VIP records).
    let s = setup_with(&policy_text(false));
    let chart = read(&READ_CHART, &s.guardrail.context(billing()), "p-900", &ran).unwrap();
    assert_eq!(chart.sud_treatment, "methadone maintenance");
    let e = last_decision(&s.trail);
    assert!(!e.record.detail.contains_key("consent_missing"));
    assert!(!e.record.detail.contains_key("withheld"));
    assert!(!s.trail.to_lines().contains("methadone"));
}

#[test]
fn a_deny_rule_with_consent_denies_until_the_consent_is_on_file() {
    let s = setup();
    let ran = AtomicUsize::new(0);
    let err = read(&DISCLOSE, &treating(&s, grey()), "p-100", &ran).unwrap_err();
    assert_eq!(
        err.deny_reason(),
        Some(&DenyReason::ConsentMissing {
            rule: "part2-disclosure-needs-consent".into(),
            consent: Consent::Part2,
        })
    );
    let reason = last_decision(&s.trail).record.reason.unwrap();
    assert!(reason.contains("`part2`"), "{reason}");
    // p-900 consented to Part 2 disclosures.
    read(&DISCLOSE, &treating(&s, grey()), "p-900", &ran).unwrap();
    assert_eq!(ran.load(Ordering::SeqCst), 1);
}

/// The clinic's tables reached asynchronously, as an sqlx host would.
struct AsyncClinic(Arc<Clinic>);

impl AsyncRelationships for AsyncClinic {
    fn relations<'a>(
        &'a self,
        principal: &'a Principal,
        subject: &'a str,
    ) -> LookupFuture<'a, Relations> {
        Box::pin(async move {
            tokio::task::yield_now().await;
            Relationships::relations(&self.0, principal, subject)
        })
    }

    fn patient<'a>(&'a self, subject: &'a str) -> LookupFuture<'a, PatientFlags> {
        Box::pin(async move {
            tokio::task::yield_now().await;
            Relationships::patient(&self.0, subject)
        })
    }
}

#[tokio::test]
async fn an_async_provider_decides_after_preload_and_denies_without_it() {
    let clinic = clinic();
    let trail = MemorySink::new();
    let guardrail = Guardrail::builder()
        .policy(Policy::from_toml_str(&policy_text(true)).unwrap())
        .audit(trail.clone())
        .audit_key(AuditKey::from_bytes(b"relations-test-key-0123456789").unwrap())
        .async_relationships(AsyncClinic(clinic.clone()))
        .build()
        .unwrap();
    let ran = AtomicUsize::new(0);
    let ctx = guardrail.context(grey()).purpose(Purpose::Treatment);
    let err = read(&READ_CHART, &ctx, "p-100", &ran).unwrap_err();
    assert_eq!(
        err.deny_reason(),
        Some(&DenyReason::LookupFailed {
            provider: "patient_flags",
            why: "not_preloaded"
        })
    );
    let ctx = guardrail.context(grey()).purpose(Purpose::Treatment);
    ctx.preload("p-100").await.unwrap();
    read(&READ_CHART, &ctx, "p-100", &ran).unwrap();
    assert_eq!(clinic.relation_calls.load(Ordering::SeqCst), 1);
    // A failing host is reported to the caller of preload and denies the call.
    let err = ctx.preload("p-500").await.unwrap_err();
    assert_eq!(err.to_string(), HOST_ERROR);
    let denied = read(&READ_CHART, &ctx, "p-500", &ran).unwrap_err();
    assert!(matches!(
        denied.deny_reason(),
        Some(DenyReason::LookupFailed { why: "failed", .. })
    ));
    assert_eq!(ran.load(Ordering::SeqCst), 1);
}

#[test]
fn policy_decide_reports_the_grounds() {
    let policy = Policy::from_toml_str(&policy_text(true)).unwrap();
    let clinic = clinic();
    let cache = ContextCache::with_lookups(
        Lookups::new()
            .relationships(clinic.clone())
            .consents(clinic),
    );
    let principal = billing();
    let subject: &dyn Display = &"p-100";
    let mut req = request(&READ_CHART, &principal, subject, &cache);
    req.purpose = None;
    let d = policy.decide(&req);
    assert_eq!(d.effect, Effect::Allow);
    assert_eq!(d.grounds.relation.as_deref(), Some("assigned_case"));
    assert_eq!(
        d.grounds.consent_missing,
        ConsentSet::EMPTY.with(Consent::Part2)
    );
    assert!(!d.reveal.contains(guardrail_core::Category::SubstanceUse));
    assert!(d.reveal.contains(guardrail_core::Category::Name));
}

#[test]
fn the_new_conditions_are_checked_when_parsing() {
    let err = |text: &str| Policy::from_toml_str(text).unwrap_err().to_string();
    let base = "version = \"t\"\n[[rule]]\nid = \"r\"\nactions = [\"*\"]\n";
    let e = err(&format!("{base}effect = \"allow\"\nvip = true\n"));
    assert!(e.contains("`vip` applies to deny rules only"), "{e}");
    let e = err(&format!("{base}effect = \"allow\"\nrestricted = true\n"));
    assert!(e.contains("`restricted` applies to deny rules only"), "{e}");
    let e = err(&format!(
        "{base}effect = \"allow\"\nconsent = [\"part3\"]\n"
    ));
    assert!(
        e.contains("unknown consent `part3`") && e.contains("part2 psychotherapy hiv reproductive"),
        "{e}"
    );
    let e = err(&format!("{base}effect = \"allow\"\nrelations = []\n"));
    assert!(e.contains("empty"), "{e}");
    let e = err(&format!(
        "{base}effect = \"allow\"\nrelations = [\"care team\"]\n"
    ));
    assert!(e.contains("rule \"r\".relations"), "{e}");
    let ok = Policy::from_toml_str(&format!(
        "{base}effect = \"allow\"\nrelations = [\"care_team\", \"on_call\"]\nconsent = [\"part2\", \"hiv\"]\n"
    ))
    .unwrap();
    let rule = &ok.rules()[0];
    let names: Vec<&str> = rule.relations().unwrap().iter().map(|r| &**r).collect();
    assert_eq!(names, ["care_team", "on_call"]);
    assert_eq!(rule.consents().names(), "part2,hiv");
}

#[test]
fn consents_guard_the_sensitive_segments() {
    use guardrail_core::Category;
    assert!(Consent::Part2.categories().contains(Category::SubstanceUse));
    assert!(
        Consent::Psychotherapy
            .categories()
            .contains(Category::PsychotherapyNote)
    );
    assert!(Consent::Hiv.categories().contains(Category::HivStatus));
    assert!(
        Consent::Reproductive
            .categories()
            .contains(Category::ReproductiveHealth)
    );
    // Masked by default like every clinical category.
    let config = guardrail_core::mask::MaskingConfig::default();
    let key = AuditKey::from_bytes(b"relations-test-key-0123456789").unwrap();
    let masked = guardrail_core::Masker::new(guardrail_core::CategorySet::EMPTY, &config, &key);
    let mut c = chart();
    c.redact(&masked);
    assert_eq!(c.sud_treatment, "[REDACTED]");
}
