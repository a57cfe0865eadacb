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
    let mut record = |r: Result<String, AppError>| match r {
        Ok(_) => {}
        Err(e) => {
            errors.push_str(&format!("{e}\n{e:?}\n"));
        }
    };
    let ids = vec![PATIENT_ID.to_owned()];
    tracing::subscriber::with_default(subscriber, || {
        for ctx in [
            &provider,
            &wrong_state,
            &billing_ctx,
            &patient,
            &other_patient,
        ] {
            record(chart::read_chart(ctx, &db, PATIENT_ID).map(|c| format!("{c:?}")));
            record(billing::read_visit(ctx, &db, PATIENT_ID).map(|v| format!("{v:?}")));
        }
        record(billing::read_visit(&billing_ctx, &db, PATIENT_ID).map(|v| format!("{v:?}")));
        for ctx in [&billing_ctx, &provider, &patient] {
            record(claims::disclose_to_payer(ctx, &db, PATIENT_ID).map(|c| format!("{c:?}")));
        }
        for ctx in [&provider, &wrong_state, &patient] {
            let mut tx = db.transaction().unwrap();
            record(
                chart::update_diagnosis(ctx, &mut tx, PATIENT_ID, DIAGNOSIS)
                    .map(|()| String::new()),
            );
            tx.commit().unwrap();
        }
        for ctx in [&researcher, &provider] {
            record(research::export_cohort(ctx, &db, &ids).map(|r| format!("{r:?}")));
        }
        for ctx in [&patient, &provider, &admin_ctx] {
            record(admin::delete_record(ctx, &db, PATIENT_ID).map(|()| String::new()));
        }
    });
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
