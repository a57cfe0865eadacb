//! The clinic's database on SQLite or PostgreSQL, through sqlx: the pool ([`Db`]), a
//! transaction on either ([`ClinicTx`], which records guarded outcomes in the database's
//! audit table), and the migrations run at start-up.
//!
//! Statements are written once for both databases: positional parameters `$1`, `$2`, …
//! (which sqlx's SQLite driver also binds by number) and SQL both dialects share.

use guardrail_core::audit::Record;
use guardrail_core::audit::sql::{AppendFuture, AsyncTxAppend, CallSettings, SettingsFuture};
use sqlx::{Postgres, Sqlite, Transaction};

/// The clinic's connection pool.
#[derive(Clone, Debug)]
pub enum Db {
    /// SQLite (WAL journal, writes in `BEGIN IMMEDIATE` transactions).
    Sqlite(sqlx::SqlitePool),
    /// PostgreSQL.
    Postgres(sqlx::PgPool),
}

/// A transaction of the clinic's database. `#[phi_action(tx = tx)]` appends the outcome of
/// an allowed call through it ([`AsyncTxAppend`], delegated to guardrail's sqlx
/// implementations), so a change and its record commit or roll back together. Dropped
/// without [`ClinicTx::commit`], it rolls back.
#[derive(Debug)]
pub enum ClinicTx {
    /// A SQLite transaction.
    Sqlite(Transaction<'static, Sqlite>),
    /// A PostgreSQL transaction.
    Postgres(Transaction<'static, Postgres>),
}

/// Runs `query` (a `sqlx::query_as` builder expression over `$e`, the executor) on the
/// pool or connection of either database.
macro_rules! on_either {
    ($db:expr, |$e:ident| $body:expr) => {
        match $db {
            $crate::db::Db::Sqlite($e) => $body,
            $crate::db::Db::Postgres($e) => $body,
        }
    };
}
pub(crate) use on_either;

impl Db {
    /// Begins a write transaction (`BEGIN IMMEDIATE` on SQLite, so it never has to upgrade a
    /// read lock, which could fail with `SQLITE_BUSY` mid-way).
    ///
    /// The begin runs on a task of its own. sqlx's `begin` is not cancel-safe: dropped after
    /// the database ran `BEGIN` but before sqlx counted it, the connection goes back to the
    /// pool inside a transaction nobody will end (the cancel test found this at one await
    /// point). On its own task the begin always completes, and if the request is gone by
    /// then, the transaction it yields is dropped there, which sqlx rolls back.
    pub async fn begin(&self) -> Result<ClinicTx, sqlx::Error> {
        let db = self.clone();
        let begun = tokio::spawn(async move {
            Ok::<_, sqlx::Error>(match db {
                Db::Sqlite(pool) => ClinicTx::Sqlite(pool.begin_with("BEGIN IMMEDIATE").await?),
                Db::Postgres(pool) => ClinicTx::Postgres(pool.begin().await?),
            })
        });
        begun.await.map_err(|_| sqlx::Error::PoolClosed)?
    }

    /// Which database this is: `sqlite` or `postgres`.
    pub fn kind(&self) -> &'static str {
        match self {
            Db::Sqlite(_) => "sqlite",
            Db::Postgres(_) => "postgres",
        }
    }

    /// Closes the pool, waiting for connections in use to come back.
    pub async fn close(&self) {
        on_either!(self, |pool| pool.close().await)
    }
}

impl ClinicTx {
    /// Runs a statement whose parameters are all text, returning the rows it changed.
    pub async fn execute(&mut self, sql: &str, params: &[&str]) -> Result<u64, sqlx::Error> {
        match self {
            ClinicTx::Sqlite(tx) => {
                let mut q = sqlx::query(sql);
                for p in params {
                    q = q.bind(*p);
                }
                Ok(q.execute(&mut **tx).await?.rows_affected())
            }
            ClinicTx::Postgres(tx) => {
                let mut q = sqlx::query(sql);
                for p in params {
                    q = q.bind(*p);
                }
                Ok(q.execute(&mut **tx).await?.rows_affected())
            }
        }
    }

    /// Commits the transaction.
    pub async fn commit(self) -> Result<(), sqlx::Error> {
        match self {
            ClinicTx::Sqlite(tx) => tx.commit().await,
            ClinicTx::Postgres(tx) => tx.commit().await,
        }
    }

    /// Rolls the transaction back.
    pub async fn rollback(self) -> Result<(), sqlx::Error> {
        match self {
            ClinicTx::Sqlite(tx) => tx.rollback().await,
            ClinicTx::Postgres(tx) => tx.rollback().await,
        }
    }
}

impl AsyncTxAppend for ClinicTx {
    fn append_in_tx(&mut self, record: Record) -> AppendFuture<'_> {
        match self {
            ClinicTx::Sqlite(tx) => tx.append_in_tx(record),
            ClinicTx::Postgres(tx) => tx.append_in_tx(record),
        }
    }

    fn swap_call_settings(&mut self, settings: CallSettings) -> SettingsFuture<'_> {
        match self {
            ClinicTx::Sqlite(tx) => tx.swap_call_settings(settings),
            ClinicTx::Postgres(tx) => tx.swap_call_settings(settings),
        }
    }
}

/// The lines of the database's audit table (`guardrail_audit`: the outcomes of committed
/// changes), in sequence order, for readers and checks.
pub async fn audit_lines(db: &Db) -> Result<Vec<String>, sqlx::Error> {
    let sql = "SELECT line FROM guardrail_audit ORDER BY seq";
    on_either!(db, |pool| sqlx::query_scalar(sql).fetch_all(pool).await)
}

/// One migration: its version, a name, and its statements for SQLite and for PostgreSQL.
struct Migration {
    version: i64,
    name: &'static str,
    sqlite: &'static str,
    postgres: &'static str,
}

/// The clinic's schema, in order. A migration runs once, in a transaction that also records
/// it in `clinic_migrations`; a database holding a version this list lacks is refused.
const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "patients and visits",
        sqlite: "CREATE TABLE patients (
                id TEXT PRIMARY KEY, mrn TEXT NOT NULL, name TEXT NOT NULL, ssn TEXT NOT NULL,
                birth_date TEXT NOT NULL, diagnosis TEXT NOT NULL, note TEXT NOT NULL);
             CREATE TABLE visits (
                id INTEGER PRIMARY KEY, patient_id TEXT NOT NULL, icd10 TEXT NOT NULL,
                amount_cents INTEGER NOT NULL, note TEXT NOT NULL);
             CREATE INDEX visits_patient ON visits (patient_id);",
        postgres: "CREATE TABLE patients (
                id TEXT PRIMARY KEY, mrn TEXT NOT NULL, name TEXT NOT NULL, ssn TEXT NOT NULL,
                birth_date TEXT NOT NULL, diagnosis TEXT NOT NULL, note TEXT NOT NULL);
             CREATE TABLE visits (
                id BIGSERIAL PRIMARY KEY, patient_id TEXT NOT NULL, icd10 TEXT NOT NULL,
                amount_cents BIGINT NOT NULL, note TEXT NOT NULL);
             CREATE INDEX visits_patient ON visits (patient_id);",
    },
    Migration {
        version: 2,
        name: "change log",
        // Every committed change names the request that made it, so the audit table's `ok`
        // outcomes can be checked against the changes. `detail` is bounded: a diagnosis
        // longer than 200 characters is refused after the patient row was already updated,
        // and the whole transaction rolls back.
        sqlite: "CREATE TABLE change_log (
                id INTEGER PRIMARY KEY, request_id TEXT NOT NULL, action TEXT NOT NULL,
                patient_id TEXT NOT NULL,
                detail TEXT NOT NULL CHECK (length(detail) <= 200));",
        postgres: "CREATE TABLE change_log (
                id BIGSERIAL PRIMARY KEY, request_id TEXT NOT NULL, action TEXT NOT NULL,
                patient_id TEXT NOT NULL,
                detail TEXT NOT NULL CHECK (length(detail) <= 200));",
    },
    Migration {
        version: 3,
        name: "care teams, consents and program notes",
        // Who treats whom (`relations = [..]` rules ask it through `ClinicDirectory`), the
        // consents patients gave (`consent = ["part2"]`: `recipient` is a principal id or a
        // role), and each visit's note of the substance use disorder program (Part 2).
        sqlite: "CREATE TABLE care_team (
                clinician TEXT NOT NULL, patient_id TEXT NOT NULL, relation TEXT NOT NULL,
                PRIMARY KEY (clinician, patient_id, relation));
             CREATE TABLE consents (
                patient_id TEXT NOT NULL, consent TEXT NOT NULL, recipient TEXT NOT NULL,
                PRIMARY KEY (patient_id, consent, recipient));
             ALTER TABLE visits ADD COLUMN program_note TEXT NOT NULL DEFAULT '';",
        postgres: "CREATE TABLE care_team (
                clinician TEXT NOT NULL, patient_id TEXT NOT NULL, relation TEXT NOT NULL,
                PRIMARY KEY (clinician, patient_id, relation));
             CREATE TABLE consents (
                patient_id TEXT NOT NULL, consent TEXT NOT NULL, recipient TEXT NOT NULL,
                PRIMARY KEY (patient_id, consent, recipient));
             ALTER TABLE visits ADD COLUMN program_note TEXT NOT NULL DEFAULT '';",
    },
];

/// Why the database could not be prepared.
#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    /// A statement failed.
    #[error("migration {version} (`{name}`) failed: {source}")]
    Failed {
        /// The migration's version.
        version: i64,
        /// The migration's name.
        name: &'static str,
        /// The database's error.
        #[source]
        source: sqlx::Error,
    },
    /// The bookkeeping table could not be read or created.
    #[error("reading `clinic_migrations` failed: {0}")]
    Bookkeeping(#[source] sqlx::Error),
    /// The database was migrated by a newer version of the server.
    #[error("the database is at migration {0}, newer than this server knows ({1})")]
    TooNew(i64, i64),
}

/// Brings the schema up to date: creates `clinic_migrations` and runs the migrations it does
/// not list, each in its own transaction. Returns the versions applied now.
pub async fn migrate(db: &Db) -> Result<Vec<i64>, MigrateError> {
    let create = "CREATE TABLE IF NOT EXISTS clinic_migrations (
                      version BIGINT PRIMARY KEY, name TEXT NOT NULL)";
    on_either!(db, |pool| sqlx::query(create).execute(pool).await.map(drop))
        .map_err(MigrateError::Bookkeeping)?;
    let newest: Option<i64> = on_either!(db, |pool| {
        sqlx::query_scalar("SELECT max(version) FROM clinic_migrations")
            .fetch_one(pool)
            .await
    })
    .map_err(MigrateError::Bookkeeping)?;
    let newest = newest.unwrap_or(0);
    let known = MIGRATIONS.last().map_or(0, |m| m.version);
    if newest > known {
        return Err(MigrateError::TooNew(newest, known));
    }
    let mut applied = Vec::new();
    for m in MIGRATIONS.iter().filter(|m| m.version > newest) {
        let failed = |source| MigrateError::Failed {
            version: m.version,
            name: m.name,
            source,
        };
        let mut tx = db.begin().await.map_err(failed)?;
        match &mut tx {
            ClinicTx::Sqlite(t) => sqlx::raw_sql(m.sqlite).execute(&mut **t).await.map(drop),
            ClinicTx::Postgres(t) => sqlx::raw_sql(m.postgres).execute(&mut **t).await.map(drop),
        }
        .map_err(failed)?;
        let version = m.version.to_string();
        tx.execute(
            "INSERT INTO clinic_migrations (version, name) VALUES (CAST($1 AS BIGINT), $2)",
            &[&version, m.name],
        )
        .await
        .map_err(failed)?;
        tx.commit().await.map_err(failed)?;
        applied.push(m.version);
    }
    Ok(applied)
}
