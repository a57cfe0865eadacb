//! Who treats whom, and which consents are on file: the clinic's answers to guardrail's
//! relationship and consent questions, read from its own tables (`care_team`, `consents`).
//!
//! The decision is synchronous, so each handler loads the answers for its patient before
//! the guarded call ([`Context::preload`](guardrail_core::Context::preload), see
//! [`crate::routes`]); a request asks at most once per patient, whatever it calls.
//!
//! Two implementations read the same tables with the same statements:
//!
//! * [`ClinicDirectory`] through the server's sqlx pool, asynchronously (PostgreSQL: a
//!   network round trip must not hold a worker thread);
//! * [`LocalDirectory`] on SQLite: read-only rusqlite connections of its own, in the
//!   calling thread. A point read of a primary key in a local WAL database takes
//!   microseconds, while sqlx's SQLite driver runs every statement on a worker thread of
//!   its connection and hands the rows back (two thread switches per statement, most of a
//!   request's cost under load, `docs/benchmarks.md`). WAL readers do not wait for the
//!   writer, and each read sees every transaction committed before it began, so a care-team
//!   row committed by anyone counts from the next request on.

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Mutex;
use std::time::Duration;

use guardrail_core::Principal;
use guardrail_core::relation::{
    AsyncConsents, AsyncRelationships, Consent, ConsentSet, Consents, LookupError, LookupFuture,
    Relations, Relationships,
};
use rusqlite::{Connection, OpenFlags};

use crate::db::{Db, on_either};

/// The care team and consent tables of the clinic's database, read through its sqlx pool.
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
            sqlx::query_scalar(CARE_TEAM_SQL)
                .bind(clinician)
                .bind(patient)
                .fetch_all(pool)
                .await
        })
        .map_err(|_| LookupError::new(CARE_TEAM_UNREADABLE))?;
        Ok(names.iter().fold(Relations::new(), |r, name| r.with(name)))
    }

    async fn consents_of(
        &self,
        principal: &Principal,
        patient: &str,
    ) -> Result<ConsentSet, LookupError> {
        let rows: Vec<(String, String)> = on_either!(&self.db, |pool| {
            sqlx::query_as(CONSENTS_SQL)
                .bind(patient)
                .fetch_all(pool)
                .await
        })
        .map_err(|_| LookupError::new(CONSENTS_UNREADABLE))?;
        consent_set(principal, rows)
    }
}

const CARE_TEAM_SQL: &str =
    "SELECT relation FROM care_team WHERE clinician = $1 AND patient_id = $2";
const CONSENTS_SQL: &str = "SELECT consent, recipient FROM consents WHERE patient_id = $1";
const CARE_TEAM_UNREADABLE: &str = "the care_team table could not be read";
const CONSENTS_UNREADABLE: &str = "the consents table could not be read";

/// The consents of `rows` (`consent`, `recipient`) that cover `principal`.
fn consent_set(
    principal: &Principal,
    rows: impl IntoIterator<Item = (String, String)>,
) -> Result<ConsentSet, LookupError> {
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

/// The care team and consent tables of the clinic's SQLite database, read through
/// read-only rusqlite connections in the calling thread (see the module docs). Connections
/// are opened on demand and kept for the next lookup: at most as many as lookups ever ran
/// at once (one per thread that asks).
#[derive(Debug)]
pub struct LocalDirectory {
    path: PathBuf,
    idle: Mutex<Vec<Connection>>,
}

impl LocalDirectory {
    /// The directory of the SQLite database at `path` (which must exist: the server
    /// creates and migrates it first).
    pub fn new(path: &Path) -> LocalDirectory {
        LocalDirectory {
            path: path.to_owned(),
            idle: Mutex::new(Vec::new()),
        }
    }

    /// Runs `read` on an idle connection (or a new one) and keeps the connection.
    fn with_connection<T>(
        &self,
        unreadable: &'static str,
        read: impl FnOnce(&Connection) -> rusqlite::Result<T>,
    ) -> Result<T, LookupError> {
        let idle = self.idle.lock().ok().and_then(|mut idle| idle.pop());
        let conn = match idle {
            Some(conn) => conn,
            None => self.open().map_err(|_| LookupError::new(unreadable))?,
        };
        let result = read(&conn).map_err(|_| LookupError::new(unreadable));
        if let Ok(mut idle) = self.idle.lock() {
            idle.push(conn);
        }
        result
    }

    fn open(&self) -> rusqlite::Result<Connection> {
        let conn = Connection::open_with_flags(
            &self.path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        conn.busy_timeout(Duration::from_secs(10))?;
        Ok(conn)
    }
}

impl Relationships for LocalDirectory {
    fn relations(&self, principal: &Principal, subject: &str) -> Result<Relations, LookupError> {
        let names: Vec<String> = self.with_connection(CARE_TEAM_UNREADABLE, |conn| {
            let mut stmt = conn.prepare_cached(CARE_TEAM_SQL)?;
            let rows = stmt.query_map((principal.id(), subject), |r| r.get(0))?;
            rows.collect()
        })?;
        Ok(names.iter().fold(Relations::new(), |r, name| r.with(name)))
    }
}

impl Consents for LocalDirectory {
    fn consents(&self, principal: &Principal, subject: &str) -> Result<ConsentSet, LookupError> {
        let rows: Vec<(String, String)> = self.with_connection(CONSENTS_UNREADABLE, |conn| {
            let mut stmt = conn.prepare_cached(CONSENTS_SQL)?;
            let rows = stmt.query_map([subject], |r| Ok((r.get(0)?, r.get(1)?)))?;
            rows.collect()
        })?;
        consent_set(principal, rows)
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
