//! Who treats whom, and which consents are on file: the clinic's answers to guardrail's
//! relationship and consent questions, read from its own tables (`care_team`, `consents`).
//!
//! The decision is synchronous, so each handler loads the answers for its patient before
//! the guarded call ([`Context::preload`](guardrail_core::Context::preload), see
//! [`crate::routes`]); a request asks at most once per patient, whatever it calls.

use std::str::FromStr;

use guardrail_core::Principal;
use guardrail_core::relation::{
    AsyncConsents, AsyncRelationships, Consent, ConsentSet, LookupError, LookupFuture, Relations,
};

use crate::db::{Db, on_either};

/// The care team and consent tables of the clinic's database.
#[derive(Clone, Debug)]
pub struct ClinicDirectory {
    db: Db,
}

impl ClinicDirectory {
    /// The directory over `db`.
    pub fn new(db: Db) -> ClinicDirectory {
        ClinicDirectory { db }
    }

    async fn relations_of(&self, clinician: &str, patient: &str) -> Result<Relations, LookupError> {
        let names: Vec<String> = on_either!(&self.db, |pool| {
            sqlx::query_scalar(
                "SELECT relation FROM care_team WHERE clinician = $1 AND patient_id = $2",
            )
            .bind(clinician)
            .bind(patient)
            .fetch_all(pool)
            .await
        })
        .map_err(|_| LookupError::new("the care_team table could not be read"))?;
        Ok(names.iter().fold(Relations::new(), |r, name| r.with(name)))
    }

    async fn consents_of(
        &self,
        principal: &Principal,
        patient: &str,
    ) -> Result<ConsentSet, LookupError> {
        let rows: Vec<(String, String)> = on_either!(&self.db, |pool| {
            sqlx::query_as("SELECT consent, recipient FROM consents WHERE patient_id = $1")
                .bind(patient)
                .fetch_all(pool)
                .await
        })
        .map_err(|_| LookupError::new("the consents table could not be read"))?;
        let mut set = ConsentSet::EMPTY;
        for (consent, recipient) in rows {
            // A consent names its recipient: this principal, or a role it holds.
            if recipient != principal.id() && !principal.has_role(&recipient) {
                continue;
            }
            // An unknown name in the table is the table's error, not a missing consent.
            let consent = Consent::from_str(&consent)
                .map_err(|_| LookupError::new("the consents table names an unknown consent"))?;
            set = set.with(consent);
        }
        Ok(set)
    }
}

impl AsyncRelationships for ClinicDirectory {
    fn relations<'a>(
        &'a self,
        principal: &'a Principal,
        subject: &'a str,
    ) -> LookupFuture<'a, Relations> {
        Box::pin(self.relations_of(principal.id(), subject))
    }
}

impl AsyncConsents for ClinicDirectory {
    fn consents<'a>(
        &'a self,
        principal: &'a Principal,
        subject: &'a str,
    ) -> LookupFuture<'a, ConsentSet> {
        Box::pin(self.consents_of(principal, subject))
    }
}
