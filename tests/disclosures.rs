//! Accounting of disclosures (HIPAA §164.528) over a trail written by real guarded calls:
//! reads, updates, exports and disclosures for several patients by several people over
//! several days; the accounting of one patient and one time range lists exactly the reads,
//! exports and disclosures of that patient in that range, with who, role, purpose, action,
//! decision and outcome, and nothing else. The trail, the accounting and its renderings hold
//! no raw patient id.
#![allow(
    clippy::useless_conversion,
    reason = "#[phi_action] converts a denial with `From::from`, a no-op when the error type is `GuardError` itself"
)]

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::Duration;

use guardrail_audit::disclosure::{TimeRange, account_disclosures};
use guardrail_audit::{AuditEvent, EventKind, Outcome, Timestamp};
use guardrail_core::prelude::*;
use guardrail_core::{Clock as _, DenyReason, ManualClock};

const PATIENTS: [&str; 3] = ["mrn-4471-alice", "mrn-9034-bob", "mrn-2210-carol"];
const KEY: &[u8] = b"disclosure test key, 32 bytes!!";
/// 2026-11-01T00:00:00Z
const T0: u64 = 1_793_491_200;

const POLICY: &str = r#"
version = "disclosures-1"

[[rule]]
id = "providers-treat"
effect = "allow"
actions = ["*"]
roles = ["provider"]
purposes = ["treatment"]

[[rule]]
id = "billing-pays"
effect = "allow"
actions = ["*"]
kinds = ["read", "disclose"]
roles = ["billing"]
purposes = ["payment"]

[[rule]]
id = "no-exports-for-billing"
effect = "deny"
actions = ["*"]
kinds = ["export"]
roles = ["billing"]
"#;

#[phi_action(kind = "read", roles = ["provider", "billing"], resource = "patient_record", subject = patient)]
fn read_chart(ctx: &Context, patient: &str) -> Result<String, GuardError> {
    Ok("chart".to_owned())
}

#[phi_action(kind = "update", role = "provider", resource = "patient_record", subject = patient)]
fn update_chart(ctx: &Context, patient: &str) -> Result<(), GuardError> {
    Ok(())
}

#[phi_action(kind = "export", roles = ["provider", "billing"], resource = "patient_record", subject = patient, count = n)]
fn export_chart(ctx: &Context, patient: &str, n: u32, fail: bool) -> Result<u32, GuardError> {
    if fail {
        return Err(GuardError::Denied {
            action: "export_chart body",
            reason: DenyReason::PolicyFault {
                why: "the export target was unreachable".into(),
            },
        });
    }
    Ok(n)
}

#[phi_action(kind = "disclose", roles = ["provider", "billing"], resource = "patient_record", subject = patient)]
fn disclose_to_payer(ctx: &Context, patient: &str, crash: bool) -> Result<(), GuardError> {
    assert!(!crash, "the payer gateway crashed");
    Ok(())
}

/// What the test did, to compute the expected accounting independently of the trail.
#[derive(Clone, Debug)]
struct Call {
    time: Timestamp,
    patient: usize,
    principal: &'static str,
    role: &'static str,
    purpose: &'static str,
    kind: &'static str,
    action: &'static str,
    decision: &'static str,
    outcome: Option<Outcome>,
}

fn run() -> (Vec<AuditEvent>, Vec<Call>, String) {
    let sink = MemorySink::new();
    let clock = ManualClock::at_unix_secs(T0);
    let guardrail = Guardrail::builder()
        .policy(Policy::from_toml_str(POLICY).unwrap())
        .audit(sink.clone())
        .audit_key(AuditKey::from_bytes(KEY).unwrap())
        .clock(clock.clone())
        .build()
        .unwrap();
    let dr = guardrail
        .context(Principal::new("dr-grey").role("provider"))
        .purpose(Purpose::Treatment);
    let billing = guardrail
        .context(Principal::new("bill-7").role("billing"))
        .purpose(Purpose::Payment);
    let mut calls = Vec::new();
    let now = |clock: &ManualClock| clock.now();
    for step in 0..36usize {
        // Every patient meets every kind of call over the 36 steps.
        let p = (step + step / 6) % 3;
        let patient = PATIENTS[p];
        let time = now(&clock);
        // Billing reads and discloses in every other round of six steps; the provider does
        // the rest (billing may not update, and its exports are denied below).
        let by_billing = matches!(step % 6, 3 | 4) && (step / 6) % 2 == 1;
        let (who, principal, role, purpose) = if by_billing {
            (&billing, "bill-7", "billing", "payment")
        } else {
            (&dr, "dr-grey", "provider", "treatment")
        };
        let (kind, decision, outcome) = match step % 6 {
            0 | 3 => {
                read_chart(who, patient).unwrap();
                ("read", "allow", Some(Outcome::Ok))
            }
            1 => {
                update_chart(who, patient).unwrap();
                ("update", "allow", Some(Outcome::Ok))
            }
            2 => {
                let fail = step % 12 == 2;
                let r = export_chart(who, patient, 10, fail);
                assert_eq!(r.is_err(), fail);
                (
                    "export",
                    "allow",
                    Some(if fail { Outcome::Error } else { Outcome::Ok }),
                )
            }
            4 => {
                let crash = step % 12 == 4;
                let r = catch_unwind(AssertUnwindSafe(|| disclose_to_payer(who, patient, crash)));
                assert_eq!(r.is_err(), crash);
                (
                    "disclose",
                    "allow",
                    Some(if crash { Outcome::Panic } else { Outcome::Ok }),
                )
            }
            _ => {
                // Billing tries an export: denied by the deny rule, the body never runs.
                let r = export_chart(&billing, patient, 5, false);
                assert!(matches!(r, Err(GuardError::Denied { .. })), "{r:?}");
                calls.push(Call {
                    time,
                    patient: p,
                    principal: "bill-7",
                    role: "billing",
                    purpose: "payment",
                    kind: "export",
                    action: "export_chart",
                    decision: "deny",
                    outcome: None,
                });
                clock.advance(Duration::from_secs(3600));
                continue;
            }
        };
        let action = match kind {
            "read" => "read_chart",
            "update" => "update_chart",
            "export" => "export_chart",
            _ => "disclose_to_payer",
        };
        calls.push(Call {
            time,
            patient: p,
            principal,
            role,
            purpose,
            kind,
            action,
            decision,
            outcome,
        });
        clock.advance(Duration::from_secs(3600));
    }
    let events = sink.events();
    guardrail_audit::verify_events(&events).unwrap();
    (events, calls, sink.to_lines())
}

fn expected(calls: &[Call], patient: usize, range: TimeRange) -> Vec<Call> {
    calls
        .iter()
        .filter(|c| {
            c.patient == patient
                && ["read", "export", "disclose"].contains(&c.kind)
                && range.contains(c.time)
        })
        .cloned()
        .collect()
}

#[test]
fn the_accounting_lists_exactly_one_patients_reads_exports_and_disclosures_in_range() {
    let (events, calls, _) = run();
    let key = AuditKey::from_bytes(KEY).unwrap();
    let hour = 3_600_000_000_000u64;
    let ranges = [
        TimeRange::all(),
        TimeRange::between(
            Timestamp(T0 * 1_000_000_000 + 5 * hour),
            Timestamp(T0 * 1_000_000_000 + 29 * hour),
        ),
        TimeRange {
            since: Some(Timestamp(T0 * 1_000_000_000 + 20 * hour)),
            until: None,
        },
        TimeRange {
            since: None,
            until: Some(Timestamp(T0 * 1_000_000_000 + 7 * hour)),
        },
    ];
    let mut rows_seen = 0;
    for (p, patient) in PATIENTS.iter().enumerate() {
        for range in ranges {
            let report = account_disclosures(&events, &key, patient, range);
            let want = expected(&calls, p, range);
            assert_eq!(report.rows.len(), want.len(), "patient {p} range {range:?}");
            for (row, call) in report.rows.iter().zip(&want) {
                assert_eq!(row.time, call.time);
                assert_eq!(row.principal.as_deref(), Some(call.principal));
                assert_eq!(
                    row.roles.iter().map(|r| &**r).collect::<Vec<_>>(),
                    vec![call.role]
                );
                assert_eq!(row.purpose.as_deref(), Some(call.purpose));
                assert_eq!(&*row.action_kind, call.kind);
                assert!(
                    row.action.as_deref().unwrap().ends_with(call.action),
                    "{:?} vs {}",
                    row.action,
                    call.action
                );
                assert_eq!(row.decision.as_deref(), Some(call.decision));
                assert_eq!(row.outcome, call.outcome, "{call:?}");
                assert_eq!(row.resource.as_deref(), Some("patient_record"));
            }
            if range == TimeRange::all() {
                for kind in ["read", "export", "disclose"] {
                    assert!(
                        report.rows.iter().any(|r| &*r.action_kind == kind),
                        "{p} {kind}"
                    );
                }
                assert!(
                    report
                        .rows
                        .iter()
                        .any(|r| r.decision.as_deref() == Some("deny"))
                );
            }
            // Rows come in trail order.
            assert!(report.rows.windows(2).all(|w| w[0].seq < w[1].seq));
            rows_seen += report.rows.len();
        }
    }
    assert!(
        rows_seen > 30,
        "the scenario must produce a real accounting"
    );
    // The scenario contains every decision and outcome the accounting must carry.
    let all: Vec<&Call> = calls.iter().collect();
    for (d, o) in [
        ("deny", None),
        ("allow", Some(Outcome::Ok)),
        ("allow", Some(Outcome::Error)),
        ("allow", Some(Outcome::Panic)),
    ] {
        assert!(
            all.iter()
                .any(|c| c.decision == d && c.outcome == o && c.kind != "update")
        );
    }
}

#[test]
fn no_raw_patient_id_in_the_trail_or_the_accounting() {
    let (events, _, lines) = run();
    let key = AuditKey::from_bytes(KEY).unwrap();
    for patient in PATIENTS {
        assert!(!lines.contains(patient), "raw id in the trail");
        // Not even the name part (its letters cannot occur in hex tokens or hashes).
        let name = &patient[9..];
        assert!(!lines.contains(name), "part of an id in the trail");
        let report = account_disclosures(&events, &key, patient, TimeRange::all());
        assert!(!report.rows.is_empty());
        let json = report.to_json().unwrap();
        let table = report.to_table();
        assert!(!json.contains(patient) && !table.contains(patient));
        assert_eq!(report.subject, key.token("subject", patient));
        assert!(table.contains(&report.subject));
        assert!(table.contains(&format!("Accesses: {}", report.rows.len())));
        // Each row appears as a line of the table.
        assert_eq!(
            table
                .lines()
                .filter(|l| l.contains("dr-grey") || l.contains("bill-7"))
                .count(),
            report.rows.len()
        );
        let parsed: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(parsed["rows"].as_array().unwrap().len(), report.rows.len());
    }
}

#[test]
fn another_key_or_another_patient_finds_nothing() {
    let (events, _, _) = run();
    let other = AuditKey::from_bytes(b"some other audit key of 32 bytes").unwrap();
    for patient in PATIENTS {
        assert!(
            account_disclosures(&events, &other, patient, TimeRange::all())
                .rows
                .is_empty()
        );
    }
    let key = AuditKey::from_bytes(KEY).unwrap();
    assert!(
        account_disclosures(&events, &key, "mrn-0000-nobody", TimeRange::all())
            .rows
            .is_empty()
    );
    // An empty range.
    let t = Timestamp(T0 * 1_000_000_000);
    assert!(
        account_disclosures(&events, &key, PATIENTS[0], TimeRange::between(t, t))
            .rows
            .is_empty()
    );
}

#[phi_action(kind = "read", role = "provider", resource = "patient_record", subject = mrn)]
fn read_by_number(ctx: &Context, mrn: u64) -> Result<(), GuardError> {
    Ok(())
}

#[test]
fn a_numeric_patient_id_is_tokenized_like_a_string_and_found_by_its_digits() {
    let sink = MemorySink::new();
    let guardrail = Guardrail::builder()
        .policy(Policy::from_toml_str(POLICY).unwrap())
        .audit(sink.clone())
        .audit_key(AuditKey::from_bytes(KEY).unwrap())
        .build()
        .unwrap();
    let dr = guardrail
        .context(Principal::new("dr-grey").role("provider"))
        .purpose(Purpose::Treatment);
    read_by_number(&dr, 90_210_337).unwrap();
    read_by_number(&dr, 11_223_344).unwrap();
    let events = sink.events();
    for e in &events {
        let subject = e.record.subject.as_deref().unwrap();
        assert!(subject.starts_with(AuditKey::TOKEN_PREFIX), "{subject}");
        assert!(!e.line().contains("90210337") && !e.line().contains("11223344"));
    }
    let key = AuditKey::from_bytes(KEY).unwrap();
    let report = account_disclosures(&events, &key, "90210337", TimeRange::all());
    assert_eq!(report.rows.len(), 1);
    assert_eq!(report.rows[0].outcome, Some(Outcome::Ok));
}

#[test]
fn every_event_with_tokens_names_the_key_that_made_them() {
    let (events, _, _) = run();
    let fingerprint = AuditKey::from_bytes(KEY).unwrap().fingerprint().to_owned();
    let other = AuditKey::from_bytes(b"another key, at least 16 bytes").unwrap();
    assert_ne!(other.fingerprint(), fingerprint);
    let mut with_tokens = 0;
    for e in &events {
        let r = &e.record;
        let tokens = r.subject.is_some() || !r.subjects.is_empty();
        if tokens && matches!(r.kind, EventKind::Decision | EventKind::Outcome) {
            assert_eq!(
                r.key_fingerprint.as_deref(),
                Some(fingerprint.as_str()),
                "seq {}",
                e.seq
            );
            with_tokens += 1;
        }
    }
    assert!(with_tokens > 30, "{with_tokens}");
}
