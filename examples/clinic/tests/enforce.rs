//! A synchronous host's connection with `guardrail_core::sqlite::enforce` (the clinic's
//! `open_service_db`): a query on a PHI column outside any guarded call is refused by
//! SQLite with an error naming the column, and recorded; guarded reads still work on the
//! same connection.

use clinic::{PatientSeed, open_service_db, seed_database};
use guardrail_core::audit::EventKind;
use guardrail_core::prelude::*;
use rusqlite::{Connection, params};

/// A report's error: the guardrail's refusal or the database's.
#[derive(Debug, thiserror::Error)]
enum ReportError {
    #[error(transparent)]
    Guard(#[from] GuardError),
    #[error("database: {0}")]
    Db(#[from] rusqlite::Error),
}

/// A synchronous report reading a chart's diagnosis (allowed by the clinic's
/// `providers-treat` rule, which covers `chart.*` reads).
#[phi_action(name = "chart.read_report", kind = "read", role = "provider",
             resource = "patient_record", subject = patient_id, phi = ["diagnosis"])]
fn read_diagnosis(ctx: &Context, db: &Connection, patient_id: &str) -> Result<String, ReportError> {
    Ok(db.query_row(
        "SELECT diagnosis FROM patients WHERE id = ?1",
        params![patient_id],
        |r| r.get(0),
    )?)
}

/// A synchronous billing report (allowed by `billing-visits`, which covers `billing.*`).
#[phi_action(name = "billing.read_visit_report", kind = "read", role = "billing",
             resource = "visit", subject = patient_id, phi = ["note"])]
fn read_visit(
    ctx: &Context,
    db: &Connection,
    patient_id: &str,
) -> Result<(String, i64), ReportError> {
    // Reads the note too (declared above): the authorizer lets the guarded call touch it.
    let (icd10, amount, _note): (String, i64, String) = db.query_row(
        "SELECT icd10, amount_cents, note FROM visits WHERE patient_id = ?1",
        params![patient_id],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
    )?;
    Ok((icd10, amount))
}

/// The synchronous host's care team: dr-grey treats p-7 (`providers-treat` asks).
struct CareTeam;

impl guardrail_core::relation::Relationships for CareTeam {
    fn relations(
        &self,
        principal: &Principal,
        subject: &str,
    ) -> Result<guardrail_core::relation::Relations, guardrail_core::relation::LookupError> {
        let relations = guardrail_core::relation::Relations::new();
        Ok(if (principal.id(), subject) == ("dr-grey", "p-7") {
            relations.with("care_team")
        } else {
            relations
        })
    }
}

const PATIENT: PatientSeed<'static> = PatientSeed {
    id: "p-7",
    mrn: "MRN 7777777",
    name: "Zed Quill",
    ssn: "777-12-3456",
    birth_date: "1970-05-05",
    diagnosis: "Asthma",
    note: "Inhaler twice daily.",
    icd10: "J45.909",
    program_note: "",
};

#[test]
fn an_unguarded_query_on_the_service_connection_is_refused_naming_the_column() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("clinic.sqlite");
    seed_database(&path, &[PATIENT]).unwrap();
    let policy = Policy::from_toml_str(clinic::POLICY).unwrap();
    let db = open_service_db(&path, &policy).unwrap();
    let trail = MemorySink::named("file");
    let guardrail = Guardrail::builder()
        .policy(policy)
        .audit(trail.clone())
        .audit_key(clinic::demo_key())
        .relationships(CareTeam)
        .build()
        .unwrap();
    guardrail.install_tripwire();

    // Outside any guarded call: refused, naming the column, for reads and writes.
    let err = db
        .query_row("SELECT ssn FROM patients WHERE id = ?1", ["p-7"], |r| {
            r.get::<_, String>(0)
        })
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("access to patients.ssn is prohibited"),
        "{err}"
    );
    assert!(!err.to_string().contains("777-12-3456"), "{err}");
    let err = db
        .prepare("SELECT v.note FROM visits v")
        .unwrap_err()
        .to_string();
    assert!(err.contains("visits.note"), "{err}");
    let err = db
        .execute("UPDATE patients SET diagnosis = 'x' WHERE id = 'p-7'", [])
        .unwrap_err()
        .to_string();
    // SQLite names the column only for reads; a refused write is "not authorized" (the
    // event below names its category).
    assert!(err.contains("not authorized"), "{err}");
    // Columns the schema does not map stay readable.
    let visits: i64 = db
        .query_row("SELECT count(id) FROM visits", [], |r| r.get(0))
        .unwrap();
    assert_eq!(visits, 1);

    // Each refusal is an `unguarded_access` event naming the category, never the value.
    let refusals: Vec<String> = trail
        .events()
        .iter()
        .filter(|e| e.record.kind == EventKind::UnguardedAccess)
        .map(|e| e.record.detail.get("category").cloned().unwrap_or_default())
        .collect();
    assert_eq!(refusals, ["ssn", "note", "diagnosis"]);

    // Guarded reads work on the same connection.
    let grey = guardrail
        .context(
            Principal::new("dr-grey")
                .role("provider")
                .jurisdiction("US-CA"),
        )
        .endpoint(Endpoint::Provider)
        .purpose(Purpose::Treatment);
    assert_eq!(read_diagnosis(&grey, &db, "p-7").unwrap(), "Asthma");
    let clerk = guardrail
        .context(
            Principal::new("clerk-ito")
                .role("billing")
                .jurisdiction("US-CA"),
        )
        .endpoint(Endpoint::Admin)
        .purpose(Purpose::Payment);
    let (icd10, amount) = read_visit(&clerk, &db, "p-7").unwrap();
    assert_eq!((icd10.as_str(), amount), ("J45.909", 18500));
}
