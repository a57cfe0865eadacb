//! The clinic's database on SQLite or PostgreSQL, through sqlx: the pool ([`Db`]), a
//! transaction on either ([`ClinicTx`], which records guarded outcomes in the database's
//! audit table), and the migrations run at start-up.
//!
//! Statements are written once for both databases: positional parameters `$1`, `$2`, …
//! (which sqlx's SQLite driver also binds by number) and SQL both dialects share.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use guardrail_core::audit::merkle::ChainId;
use guardrail_core::audit::sql::postgres::ChainWriter;
use guardrail_core::audit::sql::{
    AppendFuture, AsyncTxAppend, AuditTable, CallSettings, ReadyFuture, SettingsFuture,
};
use guardrail_core::audit::{AuditError, Record};
use sqlx::{Postgres, Sqlite, Transaction};

/// The clinic's connection pool.
#[derive(Clone, Debug)]
pub enum Db {
    /// SQLite (WAL journal, writes in `BEGIN IMMEDIATE` transactions).
    Sqlite(sqlx::SqlitePool),
    /// PostgreSQL; in replica mode with the chains its transactions append their outcomes
    /// to ([`TxChains`]), otherwise on the audit table's default chain.
    Postgres(sqlx::PgPool, Option<Arc<TxChains>>),
}

/// The hash chains a replica's transactions append their outcomes to, one per transaction
/// in flight: `NAME.tx0`, `NAME.tx1`, … of the database's audit table. A transaction takes
/// a free chain when it begins and gives it back when it ends, so no two transactions of
/// the replicas ever append to one chain at once and none waits on another's head (the
/// default chain's single head row would make every replica's every change queue on it).
/// There are at most as many chains as transactions were ever in flight at once: the
/// pool's size.
#[derive(Debug)]
pub struct TxChains {
    prefix: String,
    free: Mutex<Vec<ChainWriter>>,
    made: AtomicUsize,
}

/// The longest replica name whose transaction chains are valid chain ids (`NAME.txN`).
pub const MAX_REPLICA_NAME: usize = 50;

impl TxChains {
    /// The chains of replica `name` (at most [`MAX_REPLICA_NAME`] bytes, a valid chain
    /// id).
    pub fn new(name: &str) -> Result<TxChains, String> {
        if name.len() > MAX_REPLICA_NAME {
            return Err(format!(
                "a replica name may have at most {MAX_REPLICA_NAME} bytes"
            ));
        }
        ChainId::new(&format!("{name}.tx0")).map_err(|e| e.to_string())?;
        Ok(TxChains {
            prefix: name.to_owned(),
            free: Mutex::new(Vec::new()),
            made: AtomicUsize::new(0),
        })
    }

    /// A chain no transaction in flight holds: a free one, or a new one.
    fn take(self: &Arc<Self>) -> Result<TxChain, sqlx::Error> {
        let free = self.free.lock().map(|mut f| f.pop()).ok().flatten();
        let writer = match free {
            Some(w) => w,
            None => {
                let n = self.made.fetch_add(1, Ordering::Relaxed);
                let id = ChainId::new(&format!("{}.tx{n}", self.prefix))
                    .map_err(|e| sqlx::Error::Protocol(e.to_string()))?;
                ChainWriter::new(AuditTable::default(), id)
            }
        };
        Ok(TxChain {
            writer,
            home: self.clone(),
        })
    }
}

/// A chain of [`TxChains`] held by one transaction; given back when dropped.
#[derive(Debug)]
pub struct TxChain {
    writer: ChainWriter,
    home: Arc<TxChains>,
}

impl Drop for TxChain {
    fn drop(&mut self) {
        // A clone shares the writer's memory of its head: the next holder links after it.
        if let Ok(mut free) = self.home.free.lock() {
            free.push(self.writer.clone());
        }
    }
}

/// A transaction of the clinic's database. `#[phi_action(tx = tx)]` appends the outcome of
/// an allowed call through it ([`AsyncTxAppend`], delegated to guardrail's sqlx
/// implementations), so a change and its record commit or roll back together. Dropped
/// without [`ClinicTx::commit`], it rolls back.
#[derive(Debug)]
pub enum ClinicTx {
    /// A SQLite transaction, begun on first use.
    Sqlite(SqliteTx),
    /// A PostgreSQL transaction, and in replica mode the chain it appends to (the default
    /// chain without one).
    Postgres(Transaction<'static, Postgres>, Option<TxChain>),
}

/// A SQLite write transaction that runs its `BEGIN IMMEDIATE` when first used, not when
/// made: SQLite has one writer at a time, and a guarded change first waits for its
/// decision to be durable in the trail (an fsync), then asks its transaction whether the
/// outcome can be recorded (`check_ready`, the first use). Begun eagerly, the transaction
/// would hold the database's write lock through that wait and every other change would
/// queue behind the fsync; begun lazily, it holds the lock from the check through the
/// body, the outcome and the commit only. (PostgreSQL locks rows, so its transactions begin
/// at once.)
#[derive(Debug)]
pub struct SqliteTx {
    pool: sqlx::SqlitePool,
    tx: Option<Transaction<'static, Sqlite>>,
}

impl SqliteTx {
    /// The transaction, begun now if it was not yet.
    ///
    /// The begin runs on a task of its own. sqlx's `begin` is not cancel-safe: dropped after
    /// the database ran `BEGIN` but before sqlx counted it, the connection goes back to the
    /// pool inside a transaction nobody will end (the cancel test found this at one await
    /// point). On its own task the begin always completes, and if the request is gone by
    /// then, the transaction it yields is dropped there, which sqlx rolls back.
    pub async fn begun(&mut self) -> Result<&mut Transaction<'static, Sqlite>, sqlx::Error> {
        if self.tx.is_none() {
            let pool = self.pool.clone();
            let begun = tokio::spawn(async move { pool.begin_with("BEGIN IMMEDIATE").await });
            self.tx = Some(begun.await.map_err(|_| sqlx::Error::PoolClosed)??);
        }
        self.tx.as_mut().ok_or(sqlx::Error::PoolClosed)
    }
}

/// Runs `query` (a `sqlx::query_as` builder expression over `$e`, the executor) on the
/// pool or connection of either database.
macro_rules! on_either {
    ($db:expr, |$e:ident| $body:expr) => {
        match $db {
            $crate::db::Db::Sqlite($e) => $body,
            $crate::db::Db::Postgres($e, _) => $body,
        }
    };
}
pub(crate) use on_either;

impl Db {
    /// Begins a write transaction: on SQLite a `BEGIN IMMEDIATE` (so it never has to
    /// upgrade a read lock, which could fail with `SQLITE_BUSY` mid-way) run when the
    /// transaction is first used ([`SqliteTx`]); on PostgreSQL at once.
    ///
    /// A begin runs on a task of its own. sqlx's `begin` is not cancel-safe: dropped after
    /// the database ran `BEGIN` but before sqlx counted it, the connection goes back to the
    /// pool inside a transaction nobody will end (the cancel test found this at one await
    /// point). On its own task the begin always completes, and if the request is gone by
    /// then, the transaction it yields is dropped there, which sqlx rolls back.
    pub async fn begin(&self) -> Result<ClinicTx, sqlx::Error> {
        match self {
            Db::Sqlite(pool) => Ok(ClinicTx::Sqlite(SqliteTx {
                pool: pool.clone(),
                tx: None,
            })),
            Db::Postgres(pool, chains) => {
                let (pool, chains) = (pool.clone(), chains.clone());
                let begun = tokio::spawn(async move {
                    let chain = chains.as_ref().map(TxChains::take).transpose()?;
                    Ok::<_, sqlx::Error>(ClinicTx::Postgres(pool.begin().await?, chain))
                });
                begun.await.map_err(|_| sqlx::Error::PoolClosed)?
            }
        }
    }

    /// This database, its PostgreSQL transactions appending their outcomes to `chains`
    /// (replica mode); SQLite unchanged.
    pub fn with_tx_chains(self, chains: Arc<TxChains>) -> Db {
        match self {
            Db::Postgres(pool, _) => Db::Postgres(pool, Some(chains)),
            other => other,
        }
    }

    /// Which database this is: `sqlite` or `postgres`.
    pub fn kind(&self) -> &'static str {
        match self {
            Db::Sqlite(_) => "sqlite",
            Db::Postgres(..) => "postgres",
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
            ClinicTx::Sqlite(lazy) => {
                let tx = lazy.begun().await?;
                let mut q = sqlx::query(sql);
                for p in params {
                    q = q.bind(*p);
                }
                Ok(q.execute(&mut **tx).await?.rows_affected())
            }
            ClinicTx::Postgres(tx, _) => {
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
            // Never used, never begun: nothing to commit.
            ClinicTx::Sqlite(SqliteTx { tx, .. }) => match tx {
                Some(tx) => tx.commit().await,
                None => Ok(()),
            },
            ClinicTx::Postgres(tx, _) => tx.commit().await,
        }
    }

    /// Rolls the transaction back.
    pub async fn rollback(self) -> Result<(), sqlx::Error> {
        match self {
            ClinicTx::Sqlite(SqliteTx { tx, .. }) => match tx {
                Some(tx) => tx.rollback().await,
                None => Ok(()),
            },
            ClinicTx::Postgres(tx, _) => tx.rollback().await,
        }
    }
}

/// A transaction that could not begin, as the audit append's error.
fn not_begun(e: sqlx::Error) -> AuditError {
    AuditError::Database(format!("the transaction could not begin: {e}"))
}

impl AsyncTxAppend for ClinicTx {
    fn append_in_tx(&mut self, record: Record) -> AppendFuture<'_> {
        match self {
            ClinicTx::Sqlite(lazy) => Box::pin(async move {
                lazy.begun()
                    .await
                    .map_err(not_begun)?
                    .append_in_tx(record)
                    .await
            }),
            ClinicTx::Postgres(tx, None) => tx.append_in_tx(record),
            ClinicTx::Postgres(tx, Some(chain)) => {
                let writer = &chain.writer;
                Box::pin(async move { writer.on(tx).append_in_tx(record).await })
            }
        }
    }

    fn check_ready(&mut self) -> ReadyFuture<'_> {
        match self {
            ClinicTx::Sqlite(lazy) => {
                Box::pin(async move { lazy.begun().await.map_err(not_begun)?.check_ready().await })
            }
            ClinicTx::Postgres(tx, None) => tx.check_ready(),
            ClinicTx::Postgres(tx, Some(chain)) => {
                let writer = &chain.writer;
                Box::pin(async move { writer.on(tx).check_ready().await })
            }
        }
    }

    fn swap_call_settings(&mut self, settings: CallSettings) -> SettingsFuture<'_> {
        match self {
            ClinicTx::Sqlite(lazy) => Box::pin(async move {
                lazy.begun()
                    .await
                    .map_err(not_begun)?
                    .swap_call_settings(settings)
                    .await
            }),
            ClinicTx::Postgres(tx, _) => tx.swap_call_settings(settings),
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
            ClinicTx::Sqlite(t) => match t.begun().await {
                Ok(t) => sqlx::raw_sql(m.sqlite).execute(&mut **t).await.map(drop),
                Err(e) => Err(e),
            },
            ClinicTx::Postgres(t, _) => sqlx::raw_sql(m.postgres).execute(&mut **t).await.map(drop),
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
