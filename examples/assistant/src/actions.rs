//! The guarded actions the assistant's tools call. Each touches PHI, so each carries
//! `#[phi_action]`; what leaves is masked by the rule that allowed it.

use guardrail_core::prelude::*;
use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;

use crate::AppError;

/// A search hit: enough for the model to pick the patient and name them.
#[derive(Debug, Clone, PartialEq, Serialize, guardrail_core::Phi)]
pub struct PatientHit {
    /// The service's internal patient id (opaque, what the other tools take).
    pub id: String,
    /// The patient's name.
    #[phi(name)]
    pub name: String,
    /// Date of birth.
    #[phi(birth_date)]
    pub birth_date: String,
}

/// A chart as a tool returns it.
#[derive(Debug, Clone, PartialEq, Serialize, guardrail_core::Phi)]
pub struct Chart {
    /// The internal patient id.
    pub id: String,
    /// The record number.
    #[phi(mrn)]
    pub mrn: String,
    /// The patient's name.
    #[phi(name)]
    pub name: String,
    /// Social Security number.
    #[phi(ssn)]
    pub ssn: String,
    /// Date of birth.
    #[phi(birth_date)]
    pub birth_date: String,
    /// Current diagnosis.
    #[phi(diagnosis)]
    pub diagnosis: String,
    /// Free-text notes, newest last.
    #[phi(note)]
    pub notes: Vec<String>,
}

/// One row of an exported cohort.
#[derive(Debug, Clone, PartialEq, Serialize, guardrail_core::Phi)]
pub struct CohortRow {
    /// Tokenized record number (joinable, not reversible).
    #[phi(mrn)]
    pub mrn: String,
    /// Year of birth only.
    #[phi(birth_date)]
    pub birth_date: String,
    /// Diagnosis.
    #[phi(diagnosis)]
    pub diagnosis: String,
}

/// Patients whose name contains `query` (case-insensitive), at most 20.
#[phi_action(
    name = "assistant.search_patients",
    kind = "read",
    role = "provider",
    resource = "patient_record",
    phi = ["name", "birth_date"]
)]
pub fn search_patients(
    ctx: &Context,
    db: &Connection,
    query: &str,
) -> Result<Vec<PatientHit>, AppError> {
    let pattern = format!("%{}%", query.replace(['%', '_'], ""));
    let mut stmt = db.prepare(
        "SELECT id, name, birth_date FROM patients WHERE name LIKE ?1 ORDER BY id LIMIT 20",
    )?;
    let rows = stmt.query_map(params![pattern], |r| {
        Ok(PatientHit {
            id: r.get(0)?,
            name: r.get(1)?,
            birth_date: r.get(2)?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Reads one patient's chart.
#[phi_action(
    name = "assistant.read_chart",
    kind = "read",
    role = "provider",
    resource = "patient_record",
    subject = patient_id,
    phi = ["mrn", "name", "ssn", "birth_date", "diagnosis", "note"]
)]
pub fn read_chart(ctx: &Context, db: &Connection, patient_id: &str) -> Result<Chart, AppError> {
    let chart = db
        .query_row(
            "SELECT id, mrn, name, ssn, birth_date, diagnosis FROM patients WHERE id = ?1",
            params![patient_id],
            |r| {
                Ok(Chart {
                    id: r.get(0)?,
                    mrn: r.get(1)?,
                    name: r.get(2)?,
                    ssn: r.get(3)?,
                    birth_date: r.get(4)?,
                    diagnosis: r.get(5)?,
                    notes: Vec::new(),
                })
            },
        )
        .optional()?
        .ok_or(AppError::NotFound)?;
    let mut stmt = db.prepare("SELECT text FROM notes WHERE patient_id = ?1 ORDER BY id")?;
    let notes = stmt
        .query_map(params![patient_id], |r| r.get::<_, String>(0))?
        .collect::<Result<_, _>>()?;
    Ok(Chart { notes, ..chart })
}

/// Appends a note to a chart; returns the note's number.
#[phi_action(
    name = "assistant.add_note",
    kind = "update",
    role = "provider",
    resource = "patient_record",
    subject = patient_id,
    phi = ["note"]
)]
pub fn add_note(
    ctx: &Context,
    db: &Connection,
    patient_id: &str,
    text: &str,
) -> Result<i64, AppError> {
    let exists: Option<String> = db
        .query_row(
            "SELECT id FROM patients WHERE id = ?1",
            params![patient_id],
            |r| r.get(0),
        )
        .optional()?;
    if exists.is_none() {
        return Err(AppError::NotFound);
    }
    db.execute(
        "INSERT INTO notes (patient_id, author, text) VALUES (?1, ?2, ?3)",
        params![patient_id, ctx.principal().id(), text],
    )?;
    Ok(db.last_insert_rowid())
}

/// The ids of the patients with `diagnosis`: whom an export of that cohort would touch,
/// looked up first so that the guarded export names every one of them in its events.
#[phi_exempt(
    reason = "reads patient ids only, to name the subjects of the guarded export; nothing leaves"
)]
pub fn cohort_members(db: &Connection, diagnosis: &str) -> Result<Vec<String>, AppError> {
    let mut stmt = db.prepare("SELECT id FROM patients WHERE diagnosis = ?1 ORDER BY id")?;
    let ids = stmt.query_map(params![diagnosis], |r| r.get::<_, String>(0))?;
    Ok(ids.collect::<Result<_, _>>()?)
}

/// Exports the patients `patient_ids` of the cohort with `diagnosis` (see
/// [`cohort_members`]): each is recorded as a keyed token in the call's events, so every
/// patient's accounting of disclosures lists the export, and an approval grant is bound to
/// exactly this set and to the diagnosis asked for (`record`), so an approved export cannot
/// be spent on another. A row outside `patient_ids` is never returned, even if the cohort
/// changed in between: the export holds no one it did not record.
#[phi_action(
    name = "assistant.export_cohort",
    kind = "export",
    role = "provider",
    resource = "cohort",
    subjects = patient_ids,
    record = [diagnosis],
    phi = ["mrn", "birth_date", "diagnosis"]
)]
pub fn export_cohort(
    ctx: &Context,
    db: &Connection,
    diagnosis: &str,
    patient_ids: &[String],
) -> Result<Vec<CohortRow>, AppError> {
    let mut stmt = db.prepare(
        "SELECT id, mrn, birth_date, diagnosis FROM patients WHERE diagnosis = ?1 ORDER BY id",
    )?;
    let rows = stmt.query_map(params![diagnosis], |r| {
        Ok((
            r.get::<_, String>(0)?,
            CohortRow {
                mrn: r.get(1)?,
                birth_date: r.get(2)?,
                diagnosis: r.get(3)?,
            },
        ))
    })?;
    let mut out = Vec::new();
    for row in rows {
        let (id, row) = row?;
        if patient_ids.contains(&id) {
            out.push(row);
        }
    }
    Ok(out)
}

/// Deletes a record: a rule allows it only to a person acting directly, so no agent session
/// is ever offered the tool that calls it.
#[phi_action(
    name = "assistant.delete_record",
    kind = "delete",
    role = "provider",
    resource = "patient_record",
    subject = patient_id
)]
pub fn delete_record(ctx: &Context, db: &Connection, patient_id: &str) -> Result<(), AppError> {
    db.execute(
        "DELETE FROM notes WHERE patient_id = ?1",
        params![patient_id],
    )?;
    if db.execute("DELETE FROM patients WHERE id = ?1", params![patient_id])? == 0 {
        return Err(AppError::NotFound);
    }
    Ok(())
}
