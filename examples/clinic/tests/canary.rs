//! Canary test: every action of the clinic, called with PHI-looking canary values, allowed and
//! denied, leaves zero occurrences of those values in the audit trails (file-format lines and
//! the SQLite table), in `GuardError` messages, and in the logs written during the calls.

use std::io::Write;
use std::sync::{Arc, Mutex};

use clinic::actions::{admin, billing, chart, claims, research};
use clinic::{AppError, PatientSeed};
use guardrail_core::audit::sql::AuditTable;
use guardrail_core::prelude::*;
use rusqlite::Connection;

const PATIENT_ID: &str = "pt-canary-4471";
const NAME: &str = "Zebulon Canarywing";
const SSN: &str = "219-09-9999";
const DIAGNOSIS: &str = "Canaryitis fulminans";
const MRN: &str = "MRN 7734412";
const PHONE: &str = "(503) 555-0199";
// Long enough that no hex token can contain one by chance.
const CANARIES: &[&str] = &[
    PATIENT_ID, NAME, SSN, DIAGNOSIS, MRN, PHONE, "9-9999", "Canary",
];

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn assert_clean(place: &str, text: &str) {
    for canary in CANARIES {
        assert!(
            !text.contains(canary),
            "canary `{canary}` leaked into {place}:\n{text}"
        );
    }
}

/// A returned field shows the canary `raw` exactly when its category is revealed; a hidden
/// field holds neither `raw` nor any canary fragment.
fn shown(what: &str, field: &str, raw: &str, revealed: bool) {
    if revealed {
        assert_eq!(field, raw, "{what} is revealed by the rule");
    } else {
        assert!(
            !field.contains(raw),
            "{what} is hidden, yet shows `{field}`"
        );
        assert_clean(what, field);
    }
}

#[test]
fn canary_values_never_reach_the_trail_errors_or_logs() {
    let logs = Captured::default();
    let writer = {
        let logs = logs.clone();
        guardrail_core::mask::logs::ScrubbingWriter::new(move || logs.clone())
    };
    let subscriber = tracing_subscriber::fmt()
        .with_writer(writer)
        .with_ansi(false)
        .with_max_level(tracing::Level::TRACE)
        .finish();

    let mut db = Connection::open_in_memory().unwrap();
    clinic::create_schema(&db).unwrap();
    guardrail_core::audit::sql::sqlite::ensure_schema(&db, &AuditTable::default()).unwrap();
    let note = format!("{NAME} ({SSN}) seen for {DIAGNOSIS}; call {PHONE}; {MRN}.");
    clinic::seed_patient(
        &db,
        &PatientSeed {
            id: PATIENT_ID,
            mrn: MRN,
            name: NAME,
            ssn: SSN,
            birth_date: "1950-03-03",
            diagnosis: DIAGNOSIS,
            note: &note,
            icd10: "E11.9",
        },
    )
    .unwrap();

    let trail = MemorySink::named("file");
    let guardrail = Guardrail::builder()
        .policy(Policy::from_toml_str(clinic::POLICY).unwrap())
        .audit(trail.clone())
        .audit_key(clinic::demo_key())
        .build()
        .unwrap();
    let provider = guardrail
        .context(
            Principal::new("dr-grey")
                .role("provider")
                .jurisdiction("US-CA"),
        )
        .endpoint(Endpoint::Provider)
        .purpose(Purpose::Treatment);
    let wrong_state = guardrail
        .context(
            Principal::new("dr-hale")
                .role("provider")
                .jurisdiction("US-TX"),
        )
        .endpoint(Endpoint::Provider)
        .purpose(Purpose::Treatment);
    let billing_ctx = guardrail
        .context(Principal::new("clerk-ito").role("billing"))
        .endpoint(Endpoint::Admin)
        .purpose(Purpose::Payment);
    let patient = guardrail
        .context(Principal::new("user-z").role("patient").patient(PATIENT_ID))
        .endpoint(Endpoint::Patient)
        .purpose(Purpose::PatientRequest);
    let other_patient = guardrail
        .context(
            Principal::new("user-y")
                .role("patient")
                .patient("someone-else"),
        )
        .endpoint(Endpoint::Patient)
        .purpose(Purpose::PatientRequest);
    let researcher = guardrail
        .context(Principal::new("res-kim").role("researcher"))
        .endpoint(Endpoint::System)
        .purpose(Purpose::Research);
    let admin_ctx = guardrail
        .context(Principal::new("adm-ray").role("admin"))
        .endpoint(Endpoint::Admin)
        .purpose(Purpose::Operations);

    let mut errors = String::new();
    let ids = vec![PATIENT_ID.to_owned()];
    // Every call with whether it must succeed; the Ok values are kept and checked below.
    let mut charts = Vec::new();
    let mut visits = Vec::new();
    let mut claims_out = Vec::new();
    let mut cohorts = Vec::new();
    let mut unit_oks = Vec::new();
    tracing::subscriber::with_default(subscriber, || {
        let mut keep = |label: &str, must_pass: bool, r: Result<String, AppError>| match r {
            Ok(v) => {
                assert!(must_pass, "{label} must be denied, got {v}");
                true
            }
            Err(e) => {
                assert!(!must_pass, "{label} must be allowed, got {e:?}");
                errors.push_str(&format!("{e}\n{e:?}\n"));
                false
            }
        };
        for (who, ctx, pass) in [
            ("provider", &provider, true),
            ("wrong state", &wrong_state, false),
            ("billing", &billing_ctx, false),
            ("patient", &patient, true),
            ("other patient", &other_patient, false),
        ] {
            let r = chart::read_chart(ctx, &db, PATIENT_ID);
            if let Ok(c) = &r {
                charts.push((who, c.clone()));
            }
            keep(
                &format!("read_chart by {who}"),
                pass,
                r.map(|c| format!("{c:?}")),
            );
            let r = billing::read_visit(ctx, &db, PATIENT_ID);
            if let Ok(v) = &r {
                visits.push((who, v.clone()));
            }
            keep(
                &format!("read_visit by {who}"),
                who == "billing",
                r.map(|v| format!("{v:?}")),
            );
        }
        for (who, ctx, pass) in [
            ("billing", &billing_ctx, true),
            ("provider", &provider, false),
            ("patient", &patient, false),
        ] {
            let r = claims::disclose_to_payer(ctx, &db, PATIENT_ID);
            if let Ok(c) = &r {
                claims_out.push((who, c.clone()));
            }
            keep(
                &format!("disclose_to_payer by {who}"),
                pass,
                r.map(|c| format!("{c:?}")),
            );
        }
        for (who, ctx, pass) in [
            ("provider", &provider, true),
            ("wrong state", &wrong_state, false),
            ("patient", &patient, false),
        ] {
            let mut tx = db.transaction().unwrap();
            let r = chart::update_diagnosis(ctx, &mut tx, PATIENT_ID, DIAGNOSIS);
            if keep(
                &format!("update_diagnosis by {who}"),
                pass,
                r.map(|()| String::new()),
            ) {
                unit_oks.push(who);
            }
            tx.commit().unwrap();
        }
        for (who, ctx, pass) in [
            ("researcher", &researcher, true),
            ("provider", &provider, false),
        ] {
            let r = research::export_cohort(ctx, &db, &ids);
            if let Ok(rows) = &r {
                cohorts.push((who, rows.clone()));
            }
            keep(
                &format!("export_cohort by {who}"),
                pass,
                r.map(|r| format!("{r:?}")),
            );
        }
        for (who, ctx, pass) in [
            ("patient", &patient, false),
            ("provider", &provider, false),
            ("admin", &admin_ctx, true),
        ] {
            let r = admin::delete_record(ctx, &db, PATIENT_ID);
            if keep(
                &format!("delete_record by {who}"),
                pass,
                r.map(|()| String::new()),
            ) {
                unit_oks.push(who);
            }
        }
    });
    assert_eq!(unit_oks, ["provider", "admin"]);

    // The values returned: each canary shows exactly when the deciding rule reveals its
    // category, and otherwise leaves no trace in its field.
    let who: Vec<&str> = charts.iter().map(|(w, _)| *w).collect();
    assert_eq!(who, ["provider", "patient"]);
    for (who, c) in &charts {
        // providers-treat reveals everything; patients-own-chart all but the SSN.
        let provider = *who == "provider";
        shown(&format!("{who}'s chart name"), &c.name, NAME, true);
        shown(&format!("{who}'s chart SSN"), &c.ssn, SSN, provider);
        shown(
            &format!("{who}'s chart diagnosis"),
            &c.diagnosis,
            DIAGNOSIS,
            true,
        );
        shown(&format!("{who}'s chart MRN"), &c.mrn, MRN, true);
    }
    let [("billing", visit)] = visits.as_slice() else {
        panic!("only billing reads a visit: {visits:?}")
    };
    // billing-visits reveals the diagnosis only.
    shown("the visit's diagnosis", &visit.diagnosis, DIAGNOSIS, true);
    shown("the visit's patient name", &visit.patient_name, NAME, false);
    // The note is scanned: the identifiers inside are masked. (A name or a diagnosis in free
    // text is not an identifier the scanner finds, so the note may still carry them.)
    for identifier in [SSN, "9-9999", PHONE, MRN] {
        assert!(
            !visit.note.contains(identifier),
            "`{identifier}` in the scanned note: {}",
            visit.note
        );
    }
    let [("billing", claim)] = claims_out.as_slice() else {
        panic!("only billing discloses a claim: {claims_out:?}")
    };
    // billing-claims reveals the name only.
    shown("the claim's patient name", &claim.patient_name, NAME, true);
    shown("the claim's MRN", &claim.mrn, MRN, false);
    let [("researcher", rows)] = cohorts.as_slice() else {
        panic!("only the researcher exports: {cohorts:?}")
    };
    assert_eq!(rows.len(), 1);
    // research-export reveals the diagnosis only.
    shown(
        "the cohort's diagnosis",
        &rows[0].diagnosis,
        DIAGNOSIS,
        true,
    );
    shown("the cohort's MRN", &rows[0].mrn, MRN, false);
    shown(
        "the cohort's birth date",
        &rows[0].birth_date,
        "1950-03-03",
        false,
    );

    assert!(!errors.is_empty(), "some calls must have been denied");

    let lines = trail.to_lines();
    assert!(
        lines.lines().count() >= 20,
        "the calls were recorded:\n{lines}"
    );
    let table: Vec<String> = {
        let mut stmt = db
            .prepare(&format!(
                "SELECT line FROM {}",
                AuditTable::default().events()
            ))
            .unwrap();
        stmt.query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    };
    assert!(
        !table.is_empty(),
        "the in-transaction outcomes were recorded"
    );
    let log_text = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    assert!(
        log_text.contains("chart MRN [MRN] loaded"),
        "the careless log line was written, scrubbed: {log_text}"
    );

    assert_clean("the audit trail", &lines);
    assert_clean("the SQLite audit table", &table.join("\n"));
    assert_clean("GuardError messages", &errors);
    assert_clean("the logs", &log_text);
}
