//! FHIR R4 `AuditEvent` export: each event of the trail as one AuditEvent resource, a whole
//! trail as a `collection` Bundle or as NDJSON (one resource per line, the FHIR bulk format).
//!
//! # Mapping
//!
//! | AuditEvent element | from the event |
//! |---|---|
//! | `id` | the event hash (64 hex characters: unique, content-addressed) |
//! | `type` | create/read/update/delete: `rest` ([`AUDIT_EVENT_TYPE_SYSTEM`]) with the `subtype` of the same name from [`RESTFUL_INTERACTION_SYSTEM`]; export and disclose: DICOM `110106` Export ([`DICOM_SYSTEM`]) with a `subtype` `export` / `disclose` from [`ACTION_KIND_SYSTEM`]; alerts: DICOM `110113` Security Alert; every other event (policy reload, recovery, rotation, approvals): DICOM `110100` Application Activity; non-call events carry their kind as a `subtype` from [`EVENT_KIND_SYSTEM`] |
//! | `action` | create `C`, read `R`, update `U`, delete `D`; export and disclose `R` (DICOM PS3.15 A.5.3.6 audits an export as a read of the data that leaves; `E` "execute" is for running functions); every non-call event `E` |
//! | `recorded` | the event time (an `instant`, UTC, nanoseconds) |
//! | `outcome` | see below |
//! | `outcomeDesc` | what was decided or how the call ended, with the denial reason (never PHI) |
//! | `purposeOfEvent` | the purpose of use as an [`ACT_REASON_SYSTEM`] coding ([`PURPOSE_CODES`]) |
//! | `agent` | the principal: `who.identifier` = principal id ([`PRINCIPAL_SYSTEM`]), `role` = one coding per role ([`ROLE_SYSTEM`]), `requestor` = true; events no person caused (reload, recovery, rotation) name the observer itself with `requestor` = false |
//! | `source` | `observer.identifier` = [`FhirOptions::observer`] ([`OBSERVER_SYSTEM`]), `type` = `4` Application Server ([`SOURCE_TYPE_SYSTEM`]) |
//! | `entity[patient]` | the subject token: `what.identifier` = the full token ([`SUBJECT_TOKEN_SYSTEM`]), `what.reference` = `Patient/<the 64 hex digits of the token>`, type `1` Person, role `1` Patient; never the raw id |
//! | `entity[action]` | the guarded action: `name` = action, `description` = resource type, type `2` System Object, role `4` Domain Resource, and `detail` entries for the request id, rule, policy version, count, decision, sequence number, … |
//!
//! ## Outcome codes ([`OUTCOME_SYSTEM`] values, R4 `AuditEvent.outcome`)
//!
//! | event | code |
//! |---|---|
//! | decision `allow`, `break_glass`; outcome `ok`; every other event | `0` success |
//! | decision `deny`, `approval_required` (the action was refused, like an HTTP 4xx); outcome `cancelled` (the caller dropped the call) | `4` minor failure |
//! | outcome `error`, `panic` (the action failed unexpectedly, like an HTTP 5xx) | `8` serious failure |
//! | `recovered` (the service had crashed mid-write: the system died) | `12` major failure |
//!
//! A decision word the exporter does not know is exported as `4` (fail safe: never reported as
//! a success).
//!
//! ## Break-glass
//!
//! An event with `break_glass` set carries, besides its declared purpose, the purposes
//! `ETREAT` (emergency treatment) and `BTG` (break the glass) from [`ACT_REASON_SYSTEM`], so a
//! FHIR server can search emergency accesses with `AuditEvent?purpose=BTG`.
//!
//! ```
//! use guardrail_audit::{Chain, EventKind, Record};
//! use guardrail_audit::fhir::{FhirOptions, audit_event};
//!
//! let mut r = Record::new(EventKind::Decision);
//! r.action = Some("clinic::read_chart".into());
//! r.action_kind = Some("read".into());
//! r.principal = Some("dr-grey".into());
//! r.decision = Some("allow".into());
//! let event = Chain::new().link(r).unwrap();
//! let fhir = audit_event(&event, &FhirOptions::default());
//! assert_eq!(fhir["resourceType"], "AuditEvent");
//! assert_eq!(fhir["action"], "R");
//! assert_eq!(fhir["subtype"][0]["code"], "read");
//! assert_eq!(fhir["agent"][0]["requestor"], true);
//! ```

use std::borrow::Borrow;
use std::io::{self, Write};

use serde_json::{Map, Value, json};

use crate::event::{AuditEvent, EventKind, Outcome, Record};
use crate::key::AuditKey;

/// `AuditEvent.type` code system of HL7 (`rest`).
pub const AUDIT_EVENT_TYPE_SYSTEM: &str = "http://terminology.hl7.org/CodeSystem/audit-event-type";
/// RESTful interactions (`read`, `create`, `update`, `delete`): the `subtype` of `rest`.
pub const RESTFUL_INTERACTION_SYSTEM: &str = "http://hl7.org/fhir/restful-interaction";
/// DICOM controlled terminology (audit event ids `110100`, `110106`, `110113`).
pub const DICOM_SYSTEM: &str = "http://dicom.nema.org/resources/ontology/DCM";
/// `AuditEvent.outcome` codes (`0`, `4`, `8`, `12`).
pub const OUTCOME_SYSTEM: &str = "http://terminology.hl7.org/CodeSystem/audit-event-outcome";
/// Purpose of use (`TREAT`, `ETREAT`, `BTG`, …).
pub const ACT_REASON_SYSTEM: &str = "http://terminology.hl7.org/CodeSystem/v3-ActReason";
/// `AuditEvent.source.type` (`4` Application Server).
pub const SOURCE_TYPE_SYSTEM: &str = "http://terminology.hl7.org/CodeSystem/security-source-type";
/// `AuditEvent.entity.type` (`1` Person, `2` System Object).
pub const ENTITY_TYPE_SYSTEM: &str = "http://terminology.hl7.org/CodeSystem/audit-entity-type";
/// `AuditEvent.entity.role` (`1` Patient, `4` Domain Resource).
pub const OBJECT_ROLE_SYSTEM: &str = "http://terminology.hl7.org/CodeSystem/object-role";
/// guardrail's action kinds as a `subtype` of export events (`export`, `disclose`).
pub const ACTION_KIND_SYSTEM: &str = "urn:guardrail:action-kind";
/// guardrail's event kinds as a `subtype` of non-call events (`policy_reload`, …).
pub const EVENT_KIND_SYSTEM: &str = "urn:guardrail:event-kind";
/// The roles of a principal, as named in the policy.
pub const ROLE_SYSTEM: &str = "urn:guardrail:role";
/// Principal ids.
pub const PRINCIPAL_SYSTEM: &str = "urn:guardrail:principal";
/// Keyed subject tokens ([`AuditKey`] `hmac-sha256:` tokens).
pub const SUBJECT_TOKEN_SYSTEM: &str = "urn:guardrail:subject-token";
/// Names of the service that observed the events.
pub const OBSERVER_SYSTEM: &str = "urn:guardrail:observer";

/// Purpose-of-use names of guardrail (`Purpose::as_str` in guardrail-core) and their HL7
/// v3 ActReason code and display. guardrail-core's `Purpose::hl7_code` must agree; the
/// workspace test `tests/fhir.rs` checks every purpose against this table.
pub const PURPOSE_CODES: &[(&str, &str, &str)] = &[
    ("treatment", "TREAT", "treatment"),
    ("emergency_treatment", "ETREAT", "Emergency Treatment"),
    ("payment", "HPAYMT", "healthcare payment"),
    ("operations", "HOPERAT", "healthcare operations"),
    ("research", "HRESCH", "healthcare research"),
    ("public_health", "PUBHLTH", "public health"),
    ("patient_request", "PATRQT", "patient requested"),
];

/// The HL7 v3 ActReason code of a guardrail purpose name (`treatment` → `TREAT`).
pub fn purpose_code(purpose: &str) -> Option<&'static str> {
    PURPOSE_CODES
        .iter()
        .find(|(name, _, _)| *name == purpose)
        .map(|(_, code, _)| *code)
}

/// What the exporter says about the system that recorded the trail.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FhirOptions {
    /// Name of the observing service (`AuditEvent.source.observer`); default `guardrail`.
    pub observer: String,
    /// Enterprise or site the service runs at (`AuditEvent.source.site`), if any.
    pub site: Option<String>,
}

impl Default for FhirOptions {
    fn default() -> Self {
        FhirOptions {
            observer: "guardrail".into(),
            site: None,
        }
    }
}

fn coding(system: &str, code: &str, display: &str) -> Value {
    json!({ "system": system, "code": code, "display": display })
}

/// `type`, `subtype` codings and `action` code of an event.
fn type_of(r: &Record) -> (Value, Vec<Value>, &'static str) {
    let call = matches!(r.kind, EventKind::Decision | EventKind::Outcome);
    if call {
        match r.action_kind.as_deref() {
            Some(k @ ("create" | "read" | "update" | "delete")) => {
                let action = match k {
                    "create" => "C",
                    "read" => "R",
                    "update" => "U",
                    _ => "D",
                };
                return (
                    coding(AUDIT_EVENT_TYPE_SYSTEM, "rest", "Restful Operation"),
                    vec![coding(RESTFUL_INTERACTION_SYSTEM, k, k)],
                    action,
                );
            }
            Some(k @ ("export" | "disclose")) => {
                return (
                    coding(DICOM_SYSTEM, "110106", "Export"),
                    vec![coding(ACTION_KIND_SYSTEM, k, k)],
                    "R",
                );
            }
            _ => {}
        }
    }
    let kind = event_kind_name(r.kind);
    let ty = match r.kind {
        EventKind::Alert => coding(DICOM_SYSTEM, "110113", "Security Alert"),
        _ => coding(DICOM_SYSTEM, "110100", "Application Activity"),
    };
    (ty, vec![coding(EVENT_KIND_SYSTEM, kind, kind)], "E")
}

fn event_kind_name(kind: EventKind) -> &'static str {
    match kind {
        EventKind::Decision => "decision",
        EventKind::Outcome => "outcome",
        EventKind::Recovered => "recovered",
        EventKind::PolicyReload => "policy_reload",
        EventKind::ApprovalRequested => "approval_requested",
        EventKind::ApprovalGranted => "approval_granted",
        EventKind::ApprovalRejected => "approval_rejected",
        EventKind::ApprovalConsumed => "approval_consumed",
        EventKind::Alert => "alert",
        EventKind::Rotated => "rotated",
        EventKind::UnguardedAccess => "unguarded_access",
    }
}

/// The R4 outcome code and a description.
fn outcome_of(r: &Record) -> (&'static str, String) {
    match r.kind {
        EventKind::Decision => {
            let why = r
                .reason
                .as_deref()
                .map(|w| format!(": {w}"))
                .unwrap_or_default();
            match r.decision.as_deref() {
                Some("allow") => ("0", "allowed".into()),
                Some("break_glass") => ("0", "allowed by break-glass (emergency access)".into()),
                Some("deny") => ("4", format!("denied{why}")),
                Some("approval_required") => ("4", "refused until a second person approves".into()),
                Some(other) => ("4", format!("unknown decision `{other}`{why}")),
                None => ("4", "decision missing".into()),
            }
        }
        EventKind::Outcome => match r.outcome {
            Some(Outcome::Ok) => ("0", "the action completed".into()),
            Some(Outcome::Error) => ("8", "the action returned an error".into()),
            Some(Outcome::Panic) => ("8", "the action panicked".into()),
            Some(Outcome::Cancelled) => {
                ("4", "the action was cancelled before it completed".into())
            }
            None => ("8", "outcome missing".into()),
        },
        EventKind::Recovered => (
            "12",
            "the audit writer recovered from a crash (a torn tail was cut)".into(),
        ),
        other => ("0", event_kind_name(other).replace('_', " ")),
    }
}

fn purposes_of(r: &Record) -> Vec<Value> {
    let mut out = Vec::new();
    let mut codes: Vec<&str> = Vec::new();
    if let Some(p) = r.purpose.as_deref() {
        match PURPOSE_CODES.iter().find(|(name, _, _)| *name == p) {
            Some((_, code, display)) => {
                codes.push(code);
                out.push(json!({ "coding": [coding(ACT_REASON_SYSTEM, code, display)] }));
            }
            // An unknown name is kept as text rather than guessed into a code.
            None => out.push(json!({ "text": p })),
        }
    }
    if r.break_glass {
        if !codes.contains(&"ETREAT") {
            out.push(
                json!({ "coding": [coding(ACT_REASON_SYSTEM, "ETREAT", "Emergency Treatment")] }),
            );
        }
        out.push(json!({ "coding": [coding(ACT_REASON_SYSTEM, "BTG", "break the glass")] }));
    }
    out
}

fn agents_of(r: &Record, opts: &FhirOptions) -> Vec<Value> {
    match r.principal.as_deref() {
        Some(p) => {
            let roles: Vec<Value> = r
                .roles
                .iter()
                .map(|role| json!({ "coding": [coding(ROLE_SYSTEM, role, role)] }))
                .collect();
            let mut agent = Map::new();
            if !roles.is_empty() {
                agent.insert("role".into(), Value::Array(roles));
            }
            agent.insert(
                "who".into(),
                json!({ "identifier": { "system": PRINCIPAL_SYSTEM, "value": p }, "display": p }),
            );
            agent.insert("requestor".into(), Value::Bool(true));
            vec![Value::Object(agent)]
        }
        // No person caused it: the observing service is the agent (R4 requires one).
        None => vec![json!({
            "who": {
                "identifier": { "system": OBSERVER_SYSTEM, "value": opts.observer },
                "display": opts.observer,
            },
            "requestor": false,
        })],
    }
}

fn source_of(opts: &FhirOptions) -> Value {
    let mut source = Map::new();
    if let Some(site) = &opts.site {
        source.insert("site".into(), Value::String(site.clone()));
    }
    source.insert(
        "observer".into(),
        json!({
            "identifier": { "system": OBSERVER_SYSTEM, "value": opts.observer },
            "display": opts.observer,
        }),
    );
    source.insert(
        "type".into(),
        json!([coding(SOURCE_TYPE_SYSTEM, "4", "Application Server")]),
    );
    Value::Object(source)
}

fn detail(ty: &str, value: &str) -> Value {
    json!({ "type": ty, "valueString": value })
}

fn entities_of(event: &AuditEvent) -> Vec<Value> {
    let r = &event.record;
    let mut out = Vec::new();
    // One entity per patient: the single subject, or every subject of a bulk call.
    for token in r.subject.iter().chain(r.subjects.iter()).map(|t| &**t) {
        let mut what = Map::new();
        // A FHIR id is at most 64 characters of [A-Za-z0-9.-]: the hex part of the token fits.
        if let Some(hex) = token.strip_prefix(AuditKey::TOKEN_PREFIX) {
            what.insert("reference".into(), Value::String(format!("Patient/{hex}")));
        }
        what.insert("type".into(), Value::String("Patient".into()));
        what.insert(
            "identifier".into(),
            json!({ "system": SUBJECT_TOKEN_SYSTEM, "value": token }),
        );
        out.push(json!({
            "what": Value::Object(what),
            "type": coding(ENTITY_TYPE_SYSTEM, "1", "Person"),
            "role": coding(OBJECT_ROLE_SYSTEM, "1", "Patient"),
        }));
    }
    let mut details = vec![detail("seq", &event.seq.to_string())];
    let mut add = |name: &str, v: Option<&str>| {
        if let Some(v) = v {
            details.push(detail(name, v));
        }
    };
    add("event_kind", Some(event_kind_name(r.kind)));
    add("request_id", r.request_id.as_deref());
    add("action_kind", r.action_kind.as_deref());
    add("endpoint", r.endpoint.as_deref());
    add("jurisdiction", r.jurisdiction.as_deref());
    add("decision", r.decision.as_deref());
    add("rule", r.rule.as_deref());
    add("outcome", r.outcome.map(Outcome::as_str));
    add("approval", r.approval.as_deref());
    add("policy_version", r.policy_version.as_deref());
    add("policy_hash", r.policy_hash.as_deref());
    let count = r.count.map(|c| c.to_string());
    add("count", count.as_deref());
    if r.break_glass {
        add("break_glass", Some("true"));
    }
    for (k, v) in &r.detail {
        // Values placed in `detail` are already tokens or scrubbed text (see `Record`).
        details.push(detail(&format!("detail.{k}"), v));
    }
    let mut entity = Map::new();
    entity.insert(
        "type".into(),
        coding(ENTITY_TYPE_SYSTEM, "2", "System Object"),
    );
    entity.insert(
        "role".into(),
        coding(OBJECT_ROLE_SYSTEM, "4", "Domain Resource"),
    );
    let name = r
        .action
        .as_deref()
        .map_or_else(|| event_kind_name(r.kind).to_owned(), str::to_owned);
    entity.insert("name".into(), Value::String(name));
    if let Some(res) = r.resource.as_deref() {
        entity.insert("description".into(), Value::String(res.to_owned()));
    }
    entity.insert("detail".into(), Value::Array(details));
    out.push(Value::Object(entity));
    out
}

/// One event as a FHIR R4 `AuditEvent` resource.
pub fn audit_event(event: &AuditEvent, opts: &FhirOptions) -> Value {
    let r = &event.record;
    let (ty, subtype, action) = type_of(r);
    let (outcome, outcome_desc) = outcome_of(r);
    let mut res = Map::new();
    res.insert("resourceType".into(), Value::String("AuditEvent".into()));
    res.insert("id".into(), Value::String(event.hash.to_hex()));
    res.insert("type".into(), ty);
    res.insert("subtype".into(), Value::Array(subtype));
    res.insert("action".into(), Value::String(action.into()));
    res.insert("recorded".into(), Value::String(r.time.to_string()));
    res.insert("outcome".into(), Value::String(outcome.into()));
    res.insert("outcomeDesc".into(), Value::String(outcome_desc));
    let purposes = purposes_of(r);
    if !purposes.is_empty() {
        res.insert("purposeOfEvent".into(), Value::Array(purposes));
    }
    res.insert("agent".into(), Value::Array(agents_of(r, opts)));
    res.insert("source".into(), source_of(opts));
    res.insert("entity".into(), Value::Array(entities_of(event)));
    Value::Object(res)
}

/// A trail as a FHIR `Bundle` of type `collection`, one entry per event, in trail order.
pub fn bundle<I>(events: I, opts: &FhirOptions) -> Value
where
    I: IntoIterator,
    I::Item: Borrow<AuditEvent>,
{
    let entries: Vec<Value> = events
        .into_iter()
        .map(|e| json!({ "resource": audit_event(e.borrow(), opts) }))
        .collect();
    json!({
        "resourceType": "Bundle",
        "type": "collection",
        "entry": entries,
    })
}

/// Writes a trail as NDJSON: one `AuditEvent` per line, in trail order.
pub fn write_ndjson<I, W>(events: I, opts: &FhirOptions, mut out: W) -> io::Result<()>
where
    I: IntoIterator,
    I::Item: Borrow<AuditEvent>,
    W: Write,
{
    for e in events {
        serde_json::to_writer(&mut out, &audit_event(e.borrow(), opts))?;
        out.write_all(b"\n")?;
    }
    Ok(())
}
