//! The one place that builds the audit records of a guarded call: its decision event and
//! its outcome event share the call's identity ([`CallIdentity`]), so the two always agree
//! on who, what and whom.

use std::fmt;
use std::sync::{Arc, LazyLock};

use guardrail_audit::{AuditKey, EventKind, Outcome, Record, Text};

use crate::approval::ApprovalId;
use crate::guardrail::{Context, Guardrail};
use crate::policy::{ActionLabels, ApprovalNeed, DenyReason, Effect, Verdict};

/// Who acts on whom through which action: the fields every event of one call repeats.
#[derive(Debug, Clone)]
pub(super) struct CallIdentity {
    pub(super) labels: ActionLabels,
    pub(super) request_id: Arc<str>,
    pub(super) principal: Arc<str>,
    /// The agent the principal acted through, as recorded (`via`).
    pub(super) via: Option<Arc<str>>,
    /// The session the call belongs to.
    pub(super) session: Option<Arc<str>>,
    /// The single subject's token (not set for a bulk call).
    pub(super) subject: Option<Text>,
    /// A bulk call's subject tokens (empty otherwise).
    pub(super) subjects: Arc<[Text]>,
}

/// A shared empty token list: a call without `subjects` allocates nothing for it.
fn no_subjects() -> Arc<[Text]> {
    static EMPTY: LazyLock<Arc<[Text]>> = LazyLock::new(|| Arc::from(Vec::new()));
    EMPTY.clone()
}

impl CallIdentity {
    /// The identity of a call by `ctx`'s principal, tokenizing the subject(s) under `key`.
    pub(super) fn new(
        labels: ActionLabels,
        ctx: &Context,
        key: &AuditKey,
        subject: Option<&dyn fmt::Display>,
        many: Option<&[String]>,
    ) -> CallIdentity {
        let (subject, subjects) = match many {
            None => (
                subject.map(|s| key.token_display_arc(AuditKey::SUBJECT_DOMAIN, s)),
                no_subjects(),
            ),
            Some(ids) => (
                None,
                ids.iter()
                    .map(|s| key.token_display_arc(AuditKey::SUBJECT_DOMAIN, s))
                    .collect(),
            ),
        };
        CallIdentity {
            labels,
            request_id: ctx.request_arc().clone(),
            principal: ctx.principal().id_arc().clone(),
            via: ctx.get_agent().map(|a| a.label_arc().clone()),
            session: ctx.session_arc().cloned(),
            subject,
            subjects,
        }
    }

    /// What an approval grant names as the patient(s): the subject's token, or one keyed
    /// digest of exactly the bulk call's set.
    pub(super) fn binding_subject(&self, key: &AuditKey) -> Option<Text> {
        if self.subjects.is_empty() {
            self.subject.clone()
        } else {
            Some(Arc::from(key.token("subjects", &self.subjects.join(","))))
        }
    }

    fn record(&self, kind: EventKind, g: &Guardrail) -> Record {
        let mut r = Record::at(kind, g.clock().now());
        r.request_id = Some(self.request_id.clone());
        r.action = Some(self.labels.name.clone());
        r.action_kind = Some(self.labels.kind.clone());
        r.resource = self.labels.resource.clone();
        r.principal = Some(self.principal.clone());
        r.via = self.via.clone();
        r.session = self.session.clone();
        r.subject = self.subject.clone();
        r.subjects = self.subjects.clone();
        if r.subject.is_some() || !r.subjects.is_empty() {
            // Tokens are only searchable with the key that made them: say which one.
            r.key_fingerprint = Some(g.audit_key().fingerprint_text());
        }
        r
    }
}

/// The decision word of an event: `deny`, `approval_required`, `break_glass` or `allow`.
pub(super) fn decision_word(
    effect: Effect,
    approval: ApprovalNeed,
    break_glass: bool,
) -> &'static str {
    match (effect, approval, break_glass) {
        (Effect::Deny, _, _) => "deny",
        (Effect::Allow, ApprovalNeed::Required { .. }, _) => "approval_required",
        (Effect::Allow, _, true) => "break_glass",
        (Effect::Allow, _, false) => "allow",
    }
}

/// The decision words as shared text (events clone them instead of allocating).
fn word_label(word: &'static str) -> Arc<str> {
    static WORDS: LazyLock<[Arc<str>; 4]> =
        LazyLock::new(|| ["deny", "approval_required", "break_glass", "allow"].map(Arc::from));
    WORDS
        .iter()
        .find(|w| &***w == word)
        .cloned()
        .unwrap_or_else(|| Arc::from(word))
}

/// The decision event's common part: identity plus where the call came from and why.
fn decision_base(id: &CallIdentity, g: &Guardrail, ctx: &Context, count: Option<u64>) -> Record {
    let p = ctx.principal();
    let mut r = id.record(EventKind::Decision, g);
    r.roles = p.roles_arc().clone();
    r.endpoint = ctx.get_endpoint().map(|e| e.label());
    r.jurisdiction = p.jurisdiction_arc().cloned();
    r.purpose = ctx.get_purpose().map(|e| e.label());
    r.count = count;
    r
}

/// The decision event of a call the policy decided (`verdict`, after the approval step).
pub(super) fn decision(
    id: &CallIdentity,
    g: &Guardrail,
    ctx: &Context,
    verdict: &Verdict<'_>,
    count: Option<u64>,
    approval: Option<&ApprovalId>,
    recorded: &[(&'static str, &dyn fmt::Display)],
) -> Record {
    let mut r = decision_base(id, g, ctx, count);
    let word = decision_word(verdict.effect, verdict.approval, verdict.break_glass);
    r.decision = Some(word_label(word));
    r.rule = verdict.rule.cloned();
    r.reason = verdict.reason.as_ref().map(|r| Arc::from(r.to_string()));
    r.break_glass = verdict.break_glass;
    r.approval = approval.map(|a| Arc::from(a.as_str()));
    r.policy_version = Some(verdict.policy_version().clone());
    r.policy_hash = Some(verdict.policy_hash().clone());
    for (name, value) in recorded {
        // Opted-in arguments are recorded only as keyed tokens, never raw.
        r.detail.insert(
            format!("arg.{name}"),
            g.audit_key().token_display(name, *value),
        );
    }
    if !recorded.is_empty() {
        r.key_fingerprint = Some(g.audit_key().fingerprint_text());
    }
    grounds(&mut r, &verdict.grounds);
    if verdict.break_glass {
        if let Some(reason) = ctx.get_break_glass() {
            // The declared reason is free text and may carry PHI: it is scanned first.
            r.detail
                .insert("break_glass_reason".into(), crate::mask::scrub_text(reason));
        }
    }
    r
}

/// What the decision rested on beyond the request (names and categories, never PHI):
/// `relation`, `representative`, `consent_missing`, `withheld`, `vip`.
fn grounds(r: &mut Record, grounds: &crate::policy::Grounds) {
    if let Some(relation) = &grounds.relation {
        r.detail.insert("relation".into(), relation.to_string());
    }
    if grounds.representative {
        r.detail.insert(
            "representative".into(),
            crate::relation::Relations::PERSONAL_REPRESENTATIVE.into(),
        );
    }
    if !grounds.consent_missing.is_empty() {
        r.detail
            .insert("consent_missing".into(), grounds.consent_missing.names());
    }
    if !grounds.withheld.is_empty() {
        r.detail.insert("withheld".into(), grounds.withheld.names());
    }
    if grounds.vip {
        r.detail.insert("vip".into(), "true".into());
    }
}

/// The decision event of a call refused before the policy was asked (an unusable count).
pub(super) fn early_denial(
    id: &CallIdentity,
    g: &Guardrail,
    ctx: &Context,
    policy_version: Arc<str>,
    policy_hash: Arc<str>,
    reason: &DenyReason,
) -> Record {
    let mut r = decision_base(id, g, ctx, None);
    r.decision = Some(word_label("deny"));
    r.reason = Some(Arc::from(reason.to_string()));
    r.policy_version = Some(policy_version);
    r.policy_hash = Some(policy_hash);
    r
}

/// The outcome event of an allowed call whose decision is event `decision_seq`.
pub(super) fn outcome(
    id: &CallIdentity,
    g: &Guardrail,
    outcome: Outcome,
    break_glass: bool,
    policy_version: Arc<str>,
    decision_seq: u64,
) -> Record {
    let mut r = id.record(EventKind::Outcome, g);
    r.break_glass = break_glass;
    r.outcome = Some(outcome);
    r.policy_version = Some(policy_version);
    r.decision_seq = Some(decision_seq);
    r
}
