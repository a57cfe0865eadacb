//! The clinic's guarded actions. Each one touches PHI, so each one carries `#[phi_action]`.

use guardrail_core::prelude::*;
use rusqlite::{Connection, OptionalExtension, Transaction, params};
use serde::Serialize;

use crate::AppError;

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
    pub fn read_chart(ctx: &Context, db: &Connection, patient_id: &str) -> Result<Chart, AppError> {
        let chart = db
            .query_row(
                "SELECT mrn, name, ssn, birth_date, diagnosis, note FROM patients WHERE id = ?1",
                params![patient_id],
                |r| {
                    Ok(Chart {
                        mrn: r.get(0)?,
                        name: r.get(1)?,
                        ssn: r.get(2)?,
                        birth_date: r.get(3)?,
                        diagnosis: r.get(4)?,
                        note: r.get(5)?,
                    })
                },
            )
            .optional()?
            .ok_or(AppError::NotFound)?;
        // A careless log line, as real services have them: the scrubbing writer the service
        // installs masks the record number in it before it reaches the log. (Pattern scanning
        // catches identifiers, not names or diagnoses: never log free text.)
        tracing::info!("chart {} loaded", chart.mrn);
        Ok(chart)
    }

    /// Changes a diagnosis inside the caller's transaction; the outcome event is written
    /// through the same transaction, so the change and its record commit together.
    #[phi_action(
        name = "chart.update_diagnosis",
        kind = "update",
        role = "provider",
        resource = "patient_record",
        subject = patient_id,
        phi = ["diagnosis"],
        tx = tx
    )]
    pub fn update_diagnosis(
        ctx: &Context,
        tx: &mut Transaction<'_>,
        patient_id: &str,
        diagnosis: &str,
    ) -> Result<(), AppError> {
        let changed = tx.execute(
            "UPDATE patients SET diagnosis = ?1 WHERE id = ?2",
            params![diagnosis, patient_id],
        )?;
        if changed == 0 {
            return Err(AppError::NotFound);
        }
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

    /// A visit of the clinic's substance-use disorder program as billing needs it: the note
    /// is a 42 CFR Part 2 record.
    #[derive(Debug, Clone, PartialEq, Serialize, guardrail_core::Phi)]
    pub struct ProgramVisit {
        /// ICD-10 code billed.
        pub icd10: String,
        /// Amount in cents.
        pub amount_cents: i64,
        /// The program's note (Part 2: only with the patient's consent).
        #[phi(substance_use)]
        pub note: String,
    }

    /// Reads a visit billed through the substance-use disorder program (in this demo every
    /// visit is, so its note is a Part 2 record).
    #[phi_action(
        name = "billing.read_program_visit",
        kind = "read",
        role = "billing",
        resource = "visit",
        subject = patient_id,
        phi = ["note", "substance_use"]
    )]
    pub fn read_program_visit(
        ctx: &Context,
        db: &Connection,
        patient_id: &str,
    ) -> Result<ProgramVisit, AppError> {
        db.query_row(
            "SELECT icd10, amount_cents, note FROM visits WHERE patient_id = ?1",
            params![patient_id],
            |r| {
                Ok(ProgramVisit {
                    icd10: r.get(0)?,
                    amount_cents: r.get(1)?,
                    note: r.get(2)?,
                })
            },
        )
        .optional()?
        .ok_or(AppError::NotFound)
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
    pub fn read_visit(ctx: &Context, db: &Connection, patient_id: &str) -> Result<Visit, AppError> {
        let visit = db
            .query_row(
                "SELECT v.icd10, v.amount_cents, p.diagnosis, v.note, p.name
             FROM visits v JOIN patients p ON p.id = v.patient_id WHERE v.patient_id = ?1",
                params![patient_id],
                |r| {
                    Ok(Visit {
                        icd10: r.get(0)?,
                        amount_cents: r.get(1)?,
                        diagnosis: r.get(2)?,
                        note: r.get(3)?,
                        patient_name: r.get(4)?,
                    })
                },
            )
            .optional()?
            .ok_or(AppError::NotFound)?;
        tracing::info!(icd10 = %visit.icd10, "visit loaded for a claim");
        Ok(visit)
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
    pub fn disclose_to_payer(
        ctx: &Context,
        db: &Connection,
        patient_id: &str,
    ) -> Result<Claim, AppError> {
        db.query_row(
            "SELECT v.icd10, v.amount_cents, p.mrn, p.name
             FROM visits v JOIN patients p ON p.id = v.patient_id WHERE v.patient_id = ?1",
            params![patient_id],
            |r| {
                Ok(Claim {
                    icd10: r.get(0)?,
                    amount_cents: r.get(1)?,
                    mrn: r.get(2)?,
                    patient_name: r.get(3)?,
                })
            },
        )
        .optional()?
        .ok_or(AppError::NotFound)
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

    /// Exports a cohort of `patient_ids`.
    #[phi_action(
        name = "research.export_cohort",
        kind = "export",
        role = "researcher",
        resource = "cohort",
        subjects = patient_ids,
        phi = ["mrn", "birth_date", "diagnosis"]
    )]
    pub fn export_cohort(
        ctx: &Context,
        db: &Connection,
        patient_ids: &[String],
    ) -> Result<Vec<CohortRow>, AppError> {
        let mut stmt =
            db.prepare("SELECT mrn, birth_date, diagnosis FROM patients WHERE id = ?1")?;
        let mut rows = Vec::with_capacity(patient_ids.len());
        for id in patient_ids {
            let row = stmt
                .query_row(params![id], |r| {
                    Ok(CohortRow {
                        mrn: r.get(0)?,
                        birth_date: r.get(1)?,
                        diagnosis: r.get(2)?,
                    })
                })
                .optional()?;
            rows.extend(row);
        }
        Ok(rows)
    }
}

/// Administration.
pub mod admin {
    use super::*;

    /// Deletes a patient's record.
    #[phi_action(
        name = "admin.delete_record",
        kind = "delete",
        role = "admin",
        resource = "patient_record",
        subject = patient_id
    )]
    pub fn delete_record(ctx: &Context, db: &Connection, patient_id: &str) -> Result<(), AppError> {
        db.execute(
            "DELETE FROM visits WHERE patient_id = ?1",
            params![patient_id],
        )?;
        let n = db.execute("DELETE FROM patients WHERE id = ?1", params![patient_id])?;
        if n == 0 {
            return Err(AppError::NotFound);
        }
        Ok(())
    }
}

/// The clinic's directory: who treats whom, and the consents on file. A real service reads
/// its care-team assignments and consent forms from its database; the demo's are fixed.
pub mod directory {
    use guardrail_core::Principal;
    use guardrail_core::relation::{
        Consent, ConsentSet, Consents, LookupError, Relations, Relationships,
    };

    /// (clinician, patient, relation).
    const CARE: &[(&str, &str, &str)] = &[
        ("dr-grey", "p-100", Relations::CARE_TEAM),
        ("dr-grey", "p-200", Relations::ATTENDING),
    ];

    /// Patients whose 42 CFR Part 2 consent (to the clinic's billing) is on file.
    const PART2_CONSENTS: &[&str] = &["p-200"];

    /// Answers the policy's `relations` and `consent` conditions.
    #[derive(Debug, Clone, Copy, Default)]
    pub struct ClinicDirectory;

    impl Relationships for ClinicDirectory {
        fn relations(
            &self,
            principal: &Principal,
            subject: &str,
        ) -> Result<Relations, LookupError> {
            Ok(CARE
                .iter()
                .filter(|(who, whom, _)| *who == principal.id() && *whom == subject)
                .map(|(_, _, relation)| *relation)
                .collect())
        }
    }

    impl Consents for ClinicDirectory {
        fn consents(
            &self,
            _principal: &Principal,
            subject: &str,
        ) -> Result<ConsentSet, LookupError> {
            let mut given = ConsentSet::EMPTY;
            if PART2_CONSENTS.contains(&subject) {
                given = given.with(Consent::Part2);
            }
            Ok(given)
        }
    }
}
