//! The clinic's guarded actions over sqlx: the same names, rules and masked views as the
//! synchronous `clinic` example's, on SQLite or PostgreSQL. Reads run on the pool; changes
//! run in the caller's [`ClinicTx`] with `tx = tx`, so each change commits with its `ok`
//! outcome event or not at all.

use guardrail_core::prelude::*;
use serde::Serialize;

use crate::AppError;
use crate::db::{ClinicTx, Db, on_either};

/// Charts: what providers and patients read and change.
pub mod chart {
    use super::*;

    /// A patient's chart as it leaves the service (masked per role and purpose).
    #[derive(Debug, Clone, PartialEq, Serialize, guardrail_core::Phi)]
    pub struct Chart {
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
        /// Free-text clinical note.
        #[phi(note)]
        pub note: String,
    }

    /// Reads a chart: providers for treatment, patients their own.
    #[phi_action(
        name = "chart.read",
        kind = "read",
        roles = ["provider", "patient"],
        resource = "patient_record",
        subject = patient_id,
        phi = ["name", "ssn", "birth_date", "mrn", "diagnosis", "note"]
    )]
    pub async fn read_chart(ctx: &Context, db: &Db, patient_id: &str) -> Result<Chart, AppError> {
        type Row = (String, String, String, String, String, String);
        let row: Option<Row> = on_either!(db, |pool| {
            sqlx::query_as(
                "SELECT mrn, name, ssn, birth_date, diagnosis, note FROM patients WHERE id = $1",
            )
            .bind(patient_id)
            .fetch_optional(pool)
            .await
        })?;
        let (mrn, name, ssn, birth_date, diagnosis, note) = row.ok_or(AppError::NotFound)?;
        // A careless log line, as real services have them: the scrubbing writer the server
        // installs masks the record number in it before it reaches the log. (Pattern
        // scanning catches identifiers, not names or diagnoses: never log free text.)
        tracing::info!("chart {mrn} loaded");
        Ok(Chart {
            mrn,
            name,
            ssn,
            birth_date,
            diagnosis,
            note,
        })
    }

    /// Changes a diagnosis inside the caller's transaction and logs the change
    /// (`change_log`, with the request's id); the outcome event is written through the same
    /// transaction. The log refuses a detail over 200 characters *after* the patient row
    /// changed: the caller rolls back, and neither the change nor an `ok` outcome remains.
    #[phi_action(
        name = "chart.update_diagnosis",
        kind = "update",
        role = "provider",
        resource = "patient_record",
        subject = patient_id,
        phi = ["diagnosis"],
        tx = tx
    )]
    pub async fn update_diagnosis(
        ctx: &Context,
        tx: &mut ClinicTx,
        patient_id: &str,
        diagnosis: &str,
    ) -> Result<(), AppError> {
        let changed = tx
            .execute(
                "UPDATE patients SET diagnosis = $1 WHERE id = $2",
                &[diagnosis, patient_id],
            )
            .await?;
        if changed == 0 {
            return Err(AppError::NotFound);
        }
        tx.execute(
            "INSERT INTO change_log (request_id, action, patient_id, detail)
             VALUES ($1, 'chart.update_diagnosis', $2, $3)",
            &[ctx.get_request_id(), patient_id, diagnosis],
        )
        .await?;
        Ok(())
    }
}

/// Billing: codes and amounts, not clinical content.
pub mod billing {
    use super::*;

    /// A visit as billing needs it.
    #[derive(Debug, Clone, PartialEq, Serialize, guardrail_core::Phi)]
    pub struct Visit {
        /// ICD-10 code billed.
        pub icd10: String,
        /// Amount in cents.
        pub amount_cents: i64,
        /// Diagnosis text (billing may see it).
        #[phi(diagnosis)]
        pub diagnosis: String,
        /// The clinician's note (billing may not).
        #[phi(note)]
        pub note: String,
        /// The patient's name (billing may not).
        #[phi(name)]
        pub patient_name: String,
    }

    /// Reads a visit for a claim.
    #[phi_action(
        name = "billing.read_visit",
        kind = "read",
        role = "billing",
        resource = "visit",
        subject = patient_id,
        phi = ["diagnosis", "note", "name"]
    )]
    pub async fn read_visit(ctx: &Context, db: &Db, patient_id: &str) -> Result<Visit, AppError> {
        type Row = (String, i64, String, String, String);
        let row: Option<Row> = on_either!(db, |pool| {
            sqlx::query_as(
                "SELECT v.icd10, v.amount_cents, p.diagnosis, v.note, p.name
                 FROM visits v JOIN patients p ON p.id = v.patient_id
                 WHERE v.patient_id = $1 ORDER BY v.id LIMIT 1",
            )
            .bind(patient_id)
            .fetch_optional(pool)
            .await
        })?;
        let (icd10, amount_cents, diagnosis, note, patient_name) = row.ok_or(AppError::NotFound)?;
        Ok(Visit {
            icd10,
            amount_cents,
            diagnosis,
            note,
            patient_name,
        })
    }
}

/// The substance use disorder program's billing: a Part 2 record.
pub mod program {
    use super::*;

    /// A program visit as billing needs it: the program note is a 42 CFR Part 2 segment,
    /// shown only with the patient's consent naming the reader.
    #[derive(Debug, Clone, PartialEq, Serialize, guardrail_core::Phi)]
    pub struct ProgramVisit {
        /// ICD-10 code billed.
        pub icd10: String,
        /// Amount in cents.
        pub amount_cents: i64,
        /// Diagnosis text.
        #[phi(diagnosis)]
        pub diagnosis: String,
        /// The program's note (substance use disorder treatment).
        #[phi(substance_use)]
        pub program_note: String,
    }

    /// Reads a patient's program visit for a claim.
    #[phi_action(
        name = "billing.read_program_visit",
        kind = "read",
        role = "billing",
        resource = "visit",
        subject = patient_id,
        phi = ["diagnosis", "substance_use"]
    )]
    pub async fn read_program_visit(
        ctx: &Context,
        db: &Db,
        patient_id: &str,
    ) -> Result<ProgramVisit, AppError> {
        type Row = (String, i64, String, String);
        let row: Option<Row> = on_either!(db, |pool| {
            sqlx::query_as(
                "SELECT v.icd10, v.amount_cents, p.diagnosis, v.program_note
                 FROM visits v JOIN patients p ON p.id = v.patient_id
                 WHERE v.patient_id = $1 ORDER BY v.id LIMIT 1",
            )
            .bind(patient_id)
            .fetch_optional(pool)
            .await
        })?;
        let (icd10, amount_cents, diagnosis, program_note) = row.ok_or(AppError::NotFound)?;
        Ok(ProgramVisit {
            icd10,
            amount_cents,
            diagnosis,
            program_note,
        })
    }
}

/// Claims: what is disclosed to a health plan for payment.
pub mod claims {
    use super::*;

    /// A claim as the payer receives it.
    #[derive(Debug, Clone, PartialEq, Serialize, guardrail_core::Phi)]
    pub struct Claim {
        /// ICD-10 code billed.
        pub icd10: String,
        /// Amount in cents.
        pub amount_cents: i64,
        /// The member, as the plan knows them (tokenized unless the rule reveals it).
        #[phi(mrn)]
        pub mrn: String,
        /// Name on the claim.
        #[phi(name)]
        pub patient_name: String,
    }

    /// Discloses a visit's claim to the patient's health plan.
    #[phi_action(
        name = "claims.disclose_to_payer",
        kind = "disclose",
        role = "billing",
        resource = "claim",
        subject = patient_id,
        phi = ["mrn", "name"]
    )]
    pub async fn disclose_to_payer(
        ctx: &Context,
        db: &Db,
        patient_id: &str,
    ) -> Result<Claim, AppError> {
        type Row = (String, i64, String, String);
        let row: Option<Row> = on_either!(db, |pool| {
            sqlx::query_as(
                "SELECT v.icd10, v.amount_cents, p.mrn, p.name
                 FROM visits v JOIN patients p ON p.id = v.patient_id
                 WHERE v.patient_id = $1 ORDER BY v.id LIMIT 1",
            )
            .bind(patient_id)
            .fetch_optional(pool)
            .await
        })?;
        let (icd10, amount_cents, mrn, patient_name) = row.ok_or(AppError::NotFound)?;
        Ok(Claim {
            icd10,
            amount_cents,
            mrn,
            patient_name,
        })
    }
}

/// Research: bulk, de-identified exports.
pub mod research {
    use super::*;

    /// One exported row: only generalized or tokenized identifiers leave.
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

    /// Exports a cohort of `patient_ids` (one row per id that exists, in the given order).
    #[phi_action(
        name = "research.export_cohort",
        kind = "export",
        role = "researcher",
        resource = "cohort",
        subjects = patient_ids,
        phi = ["mrn", "birth_date", "diagnosis"]
    )]
    pub async fn export_cohort(
        ctx: &Context,
        db: &Db,
        patient_ids: &[String],
    ) -> Result<Vec<CohortRow>, AppError> {
        let mut rows = Vec::with_capacity(patient_ids.len());
        for id in patient_ids {
            let row: Option<(String, String, String)> = on_either!(db, |pool| {
                sqlx::query_as("SELECT mrn, birth_date, diagnosis FROM patients WHERE id = $1")
                    .bind(id)
                    .fetch_optional(pool)
                    .await
            })?;
            rows.extend(row.map(|(mrn, birth_date, diagnosis)| CohortRow {
                mrn,
                birth_date,
                diagnosis,
            }));
        }
        Ok(rows)
    }
}

/// Administration.
pub mod admin {
    use super::*;

    /// Deletes a patient's record (visits first) inside the caller's transaction, and logs
    /// the deletion; the outcome event commits with it.
    #[phi_action(
        name = "admin.delete_record",
        kind = "delete",
        role = "admin",
        resource = "patient_record",
        subject = patient_id,
        tx = tx
    )]
    pub async fn delete_record(
        ctx: &Context,
        tx: &mut ClinicTx,
        patient_id: &str,
    ) -> Result<(), AppError> {
        tx.execute("DELETE FROM visits WHERE patient_id = $1", &[patient_id])
            .await?;
        let n = tx
            .execute("DELETE FROM patients WHERE id = $1", &[patient_id])
            .await?;
        if n == 0 {
            return Err(AppError::NotFound);
        }
        tx.execute(
            "INSERT INTO change_log (request_id, action, patient_id, detail)
             VALUES ($1, 'admin.delete_record', $2, 'deleted')",
            &[ctx.get_request_id(), patient_id],
        )
        .await?;
        Ok(())
    }
}
