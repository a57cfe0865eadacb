//! The clinic example: the guided tour of the clinic server, and the SQLite authorizer for
//! synchronous hosts.
//!
//! `cargo run -p clinic` starts `clinic-server` (axum + sqlx, SQLite, a durable file trail)
//! on a loopback port and drives it as a real HTTP client: allowed calls, denials, a masked
//! billing view, care teams and a Part 2 note withheld without consent, a rolled-back change, an approval, a break-glass emergency; then it
//! summarizes and verifies both audit trails and prints the server's `/metrics`.
//!
//! The clinic's actions live in `clinic-server` (`clinic_server::actions`). What stays here
//! for synchronous hosts is the rusqlite side: the schema and seed of a plain SQLite file,
//! and [`open_service_db`], a connection with guardrail's SQLite authorizer, which refuses
//! PHI columns outside guarded calls (the tour shows it refusing a report script).

pub mod demo;

/// The demo's patients and their seed rows.
pub use clinic_server::seed::{PATIENTS, PatientSeed};
/// The clinic's durable trail (the server's: a file sink with signed checkpoints).
pub use clinic_server::trail;
/// The demo's audit key.
pub use clinic_server::trail::{DEMO_KEY, demo_key};

/// Creates the clinic's tables.
pub fn create_schema(db: &rusqlite::Connection) -> rusqlite::Result<()> {
    db.execute_batch(
        "CREATE TABLE IF NOT EXISTS patients (
            id TEXT PRIMARY KEY, mrn TEXT NOT NULL, name TEXT NOT NULL, ssn TEXT NOT NULL,
            birth_date TEXT NOT NULL, diagnosis TEXT NOT NULL, note TEXT NOT NULL);
         CREATE TABLE IF NOT EXISTS visits (
            id INTEGER PRIMARY KEY, patient_id TEXT NOT NULL, icd10 TEXT NOT NULL,
            amount_cents INTEGER NOT NULL, note TEXT NOT NULL,
            program_note TEXT NOT NULL DEFAULT '');",
    )
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
        "INSERT INTO visits (patient_id, icd10, amount_cents, note, program_note)
         VALUES (?1, ?2, 18500, ?3, ?4)",
        rusqlite::params![p.id, p.icd10, p.note, p.program_note],
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
