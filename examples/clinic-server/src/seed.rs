//! The demo's synthetic patients, inserted on first run (an empty `patients` table).

use crate::db::{ClinicTx, Db};

/// A patient row for seeding.
#[derive(Debug, Clone, Copy)]
pub struct PatientSeed<'a> {
    /// Patient id (the subject of guarded calls).
    pub id: &'a str,
    /// Medical record number.
    pub mrn: &'a str,
    /// Name.
    pub name: &'a str,
    /// SSN.
    pub ssn: &'a str,
    /// Date of birth (ISO).
    pub birth_date: &'a str,
    /// Diagnosis.
    pub diagnosis: &'a str,
    /// Clinical note.
    pub note: &'a str,
    /// ICD-10 code of the patient's visit.
    pub icd10: &'a str,
    /// The visit's note of the substance use disorder program (42 CFR Part 2).
    pub program_note: &'a str,
}

/// The demo's patients. Synthetic: no real person's data.
pub const PATIENTS: &[PatientSeed<'static>] = &[
    PatientSeed {
        id: "p-100",
        mrn: "MRN 0048213",
        name: "Alice Moreno",
        ssn: "512-44-8231",
        birth_date: "1961-07-14",
        diagnosis: "Type 2 diabetes mellitus",
        note: "Seen 2026-11-20. Call back at (415) 555-0142 re: A1c 7.9%. Metformin 500 mg BID.",
        icd10: "E11.9",
        program_note: "Alcohol use disorder, in early remission. Weekly program counseling.",
    },
    PatientSeed {
        id: "p-200",
        mrn: "MRN 0051977",
        name: "Bruno Okafor",
        ssn: "623-10-4417",
        birth_date: "1934-02-02",
        diagnosis: "Hypertension",
        note: "BP 152/94. Email bruno.okafor@example.org the home-monitoring sheet.",
        icd10: "I10",
        program_note: "Opioid treatment program: buprenorphine 8 mg daily, week 12.",
    },
];

/// Inserts `patients` (one visit each) if the `patients` table is empty, in one transaction;
/// returns how many were inserted.
#[guardrail_core::phi_exempt(
    reason = "seeds the demo's synthetic patients at start-up; no real PHI, no user request"
)]
pub async fn seed_if_empty(db: &Db, patients: &[PatientSeed<'_>]) -> Result<usize, sqlx::Error> {
    let mut tx = db.begin().await?;
    if count(&mut tx, "SELECT count(*) FROM patients").await? > 0 {
        tx.rollback().await?;
        return Ok(0);
    }
    for p in patients {
        tx.execute(
            "INSERT INTO patients (id, mrn, name, ssn, birth_date, diagnosis, note)
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
            &[
                p.id,
                p.mrn,
                p.name,
                p.ssn,
                p.birth_date,
                p.diagnosis,
                p.note,
            ],
        )
        .await?;
        tx.execute(
            "INSERT INTO visits (patient_id, icd10, amount_cents, note, program_note)
             VALUES ($1, $2, 18500, $3, $4)",
            &[p.id, p.icd10, p.note, p.program_note],
        )
        .await?;
    }
    tx.commit().await?;
    Ok(patients.len())
}

/// Who treats whom: (clinician, patient, relation). dr-grey is on p-100's care team and
/// attends p-200; dr-hale, licensed in the same state, treats neither.
pub const CARE_TEAM: &[(&str, &str, &str)] = &[
    ("dr-grey", "p-100", "care_team"),
    ("dr-grey", "p-200", "attending"),
];

/// Consents on file: (patient, consent, recipient: a principal id or a role). p-200 gave
/// billing a Part 2 consent; p-100 gave none.
pub const CONSENTS: &[(&str, &str, &str)] = &[("p-200", "part2", "billing")];

/// Inserts the care team and the consents if `care_team` is empty, in one transaction;
/// returns how many rows were inserted.
pub async fn seed_relations_if_empty(
    db: &Db,
    care_team: &[(&str, &str, &str)],
    consents: &[(&str, &str, &str)],
) -> Result<usize, sqlx::Error> {
    let mut tx = db.begin().await?;
    if count(&mut tx, "SELECT count(*) FROM care_team").await? > 0 {
        tx.rollback().await?;
        return Ok(0);
    }
    for (clinician, patient, relation) in care_team {
        tx.execute(
            "INSERT INTO care_team (clinician, patient_id, relation) VALUES ($1, $2, $3)",
            &[clinician, patient, relation],
        )
        .await?;
    }
    for (patient, consent, recipient) in consents {
        tx.execute(
            "INSERT INTO consents (patient_id, consent, recipient) VALUES ($1, $2, $3)",
            &[patient, consent, recipient],
        )
        .await?;
    }
    tx.commit().await?;
    Ok(care_team.len() + consents.len())
}

/// The count a `SELECT count(*) …` statement returns, inside `tx`.
async fn count(tx: &mut ClinicTx, sql: &'static str) -> Result<i64, sqlx::Error> {
    match tx {
        ClinicTx::Sqlite(t) => {
            sqlx::query_scalar(sql)
                .fetch_one(&mut **t.begun().await?)
                .await
        }
        ClinicTx::Postgres(t, _) => sqlx::query_scalar(sql).fetch_one(&mut **t).await,
    }
}
