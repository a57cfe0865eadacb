//! An example clinic service guarded by guardrail, on the embedded defaults: a durable file
//! audit trail and SQLite.
//!
//! `cargo run -p clinic` walks through allowed calls, denials, a masked billing view, an
//! approval, a break-glass emergency, then summarizes and verifies the audit trail and prints
//! the metrics in Prometheus text format.

pub mod actions;
pub mod demo;
pub mod metrics;
pub mod trail;

use guardrail_core::GuardError;

/// The service's error type: what a handler returns.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// The guardrail refused the call.
    #[error(transparent)]
    Guard(#[from] GuardError),
    /// The database failed.
    #[error("database error: {0}")]
    Db(#[from] rusqlite::Error),
    /// No such record.
    #[error("record not found")]
    NotFound,
}

/// Creates the clinic's tables.
pub fn create_schema(db: &rusqlite::Connection) -> rusqlite::Result<()> {
    db.execute_batch(
        "CREATE TABLE IF NOT EXISTS patients (
            id TEXT PRIMARY KEY, mrn TEXT NOT NULL, name TEXT NOT NULL, ssn TEXT NOT NULL,
            birth_date TEXT NOT NULL, diagnosis TEXT NOT NULL, note TEXT NOT NULL);
         CREATE TABLE IF NOT EXISTS visits (
            id INTEGER PRIMARY KEY, patient_id TEXT NOT NULL, icd10 TEXT NOT NULL,
            amount_cents INTEGER NOT NULL, note TEXT NOT NULL);",
    )
}

/// A patient row for seeding.
#[derive(Debug, Clone)]
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
}

/// Inserts a patient and one visit (on the seeding connection of [`seed_database`]: the
/// service's enforced connection refuses these inserts outside a guarded call).
#[guardrail_core::phi_exempt(
    reason = "seeds the demo's synthetic patients; no real PHI, no user request"
)]
pub fn seed_patient(db: &rusqlite::Connection, p: &PatientSeed<'_>) -> rusqlite::Result<()> {
    db.execute(
        "INSERT INTO patients (id, mrn, name, ssn, birth_date, diagnosis, note)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        rusqlite::params![
            p.id,
            p.mrn,
            p.name,
            p.ssn,
            p.birth_date,
            p.diagnosis,
            p.note
        ],
    )?;
    db.execute(
        "INSERT INTO visits (patient_id, icd10, amount_cents, note) VALUES (?1, ?2, 18500, ?3)",
        rusqlite::params![p.id, p.icd10, p.note],
    )?;
    Ok(())
}

/// Creates the clinic's schema and seeds `patients` through a connection of its own, the
/// way a host runs migrations and fixtures: as a deployment step on an administrative
/// connection, before the service opens the connection its handlers use. That connection
/// has no authorizer; nothing a request reaches ever runs on it.
pub fn seed_database(path: &std::path::Path, patients: &[PatientSeed<'_>]) -> rusqlite::Result<()> {
    let admin = rusqlite::Connection::open(path)?;
    create_schema(&admin)?;
    for p in patients {
        seed_patient(&admin, p)?;
    }
    admin.close().map_err(|(_, e)| e)
}

/// Opens the service's connection to the clinic database at `path`, with
/// [`guardrail_core::sqlite::enforce`] installed for the policy's `[schema]`: a PHI column
/// is read or written only inside a guarded call that declared its category, and a refused
/// statement fails with an error naming the column (`access to patients.ssn is
/// prohibited`), recorded as an `unguarded_access` event.
pub fn open_service_db(
    path: &std::path::Path,
    policy: &guardrail_core::Policy,
) -> rusqlite::Result<rusqlite::Connection> {
    let db = rusqlite::Connection::open(path)?;
    guardrail_core::sqlite::enforce(&db, policy.schema());
    Ok(db)
}

/// The clinic's policy, as shipped next to the example.
pub const POLICY: &str = include_str!("../policy.toml");

/// The audit key of the demo. A real service loads its key from a secret store; here it can
/// be given as 64 hex characters in `GUARDRAIL_AUDIT_KEY`, else a fixed demo key is used so
/// `guardrail audit disclosures --key-hex env:GUARDRAIL_AUDIT_KEY` (or `--key-file` of a file
/// holding the demo key's bytes) can be tried on the demo's trail.
pub fn demo_key() -> guardrail_core::AuditKey {
    let from_env = std::env::var("GUARDRAIL_AUDIT_KEY")
        .ok()
        .and_then(|h| hex_decode(&h))
        .and_then(|b| guardrail_core::AuditKey::from_bytes(&b).ok());
    from_env.unwrap_or_else(|| {
        // 32 fixed bytes: demo only.
        match guardrail_core::AuditKey::from_bytes(DEMO_KEY) {
            Ok(k) => k,
            Err(_) => unreachable!("the demo key is 32 bytes"),
        }
    })
}

/// The demo's fixed key bytes (never use a fixed key in production).
pub const DEMO_KEY: &[u8; 32] = b"clinic-demo-key-not-for-prod!!!!";

fn hex_decode(s: &str) -> Option<Vec<u8>> {
    if s.len() % 2 != 0 {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}
