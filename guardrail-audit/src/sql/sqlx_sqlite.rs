//! The SQLite audit table over sqlx (feature `sqlx-sqlite`, sqlx 0.8): appends inside the
//! caller's async transaction ([`AsyncTxAppend`] for `sqlx::Transaction<'_, Sqlite>` and
//! `SqliteConnection`), a standalone [`SqlitePoolSink`], schema creation and verification.
//!
//! The tables are the ones the rusqlite module (feature `sqlite`) creates, from the same
//! definition, and the rows are written the same way: a table written here verifies with
//! `sqlite::verify_sqlite` and one written there verifies with [`verify_sqlite_pool`].
//!
//! ```
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! use guardrail_audit::sql::sqlx_sqlite::{self, sqlx};
//! use guardrail_audit::sql::{AsyncTxAppend, AuditTable};
//! use guardrail_audit::{EventKind, Record};
//!
//! let dir = tempfile::tempdir().unwrap();
//! let options = sqlx::sqlite::SqliteConnectOptions::new()
//!     .filename(dir.path().join("clinic.db"))
//!     .create_if_missing(true);
//! let pool = sqlx::SqlitePool::connect_with(options).await.unwrap();
//! let table = AuditTable::default();
//! sqlx_sqlite::ensure_schema(&pool, &table).await.unwrap();
//!
//! let mut tx = pool.begin_with("BEGIN IMMEDIATE").await.unwrap();
//! tx.append_in_tx(Record::new(EventKind::Outcome)).await.unwrap();
//! tx.commit().await.unwrap();
//!
//! let report = sqlx_sqlite::verify_sqlite_pool(&pool, &table).await.unwrap();
//! assert_eq!(report.events, 1);
//! # });
//! ```
//!
//! # Transactions and locking
//!
//! SQLite lets one write transaction run at a time, so appends from concurrent transactions
//! serialize without a row lock. An append takes the write lock with its first statement
//! (an update of the head row that also reads it), so it never reads the head and then tries
//! to upgrade to a write. A transaction that has already *read* before appending can still
//! fail to take the write lock if another connection committed in between (SQLite's
//! `SQLITE_BUSY_SNAPSHOT` in WAL mode): the append then fails closed and the caller retries
//! the transaction. Begin write transactions with `BEGIN IMMEDIATE`
//! (`pool.begin_with("BEGIN IMMEDIATE")`) to take the lock at the start instead.
//!
//! Each append runs inside a savepoint of the caller's transaction. If it fails, or its
//! future is dropped half way, sqlx rolls the savepoint back before the connection runs
//! anything else, so the caller can never commit half an append.
//!
//! # Why `SqlitePoolSink` owns a thread
//!
//! For the same reason as `postgres::PgSink`: [`AuditSink::append`] is synchronous and is
//! called from async code too, where blocking on a sqlx future would stall or panic the
//! runtime. The sink runs a current-thread tokio runtime and a one-connection pool on its
//! own thread; an append waits for one `BEGIN IMMEDIATE … COMMIT` there.

use std::path::Path;
use std::sync::mpsc;
use std::sync::{Arc, LazyLock};
use std::thread::JoinHandle;
use std::time::Duration;

use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{Connection as _, Row as _, Sqlite, SqliteConnection, Transaction};

use super::{
    AppendFuture, AsyncTxAppend, AuditTable, Columns, InTable, ReadyFuture, TableVerifyError,
    check_row,
};
use crate::chain::{Chain, Digest};
use crate::error::AuditError;
use crate::event::Record;
use crate::sink::{AuditSink, Receipt};
use crate::verify::{Verifier, VerifyReport};

/// The sqlx version these impls are for: name its types through this path to be sure they
/// match.
pub use sqlx;

static DEFAULT_TABLE: LazyLock<AuditTable> = LazyLock::new(AuditTable::default);

fn db(e: sqlx::Error) -> AuditError {
    AuditError::Database(e.to_string())
}

/// Creates the events table, its indexes and the head row if they do not exist (the same
/// definition as `sqlite::ensure_schema`), in one `BEGIN IMMEDIATE` transaction.
pub async fn ensure_schema(pool: &SqlitePool, table: &AuditTable) -> Result<(), AuditError> {
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await.map_err(db)?;
    sqlx::raw_sql(&super::schema_ddl(table, super::Dialect::Sqlite))
        .execute(&mut *tx)
        .await
        .map_err(db)?;
    tx.commit().await.map_err(db)
}

fn head_of(next_seq: i64, head: &str, table: &AuditTable) -> Result<Chain, AuditError> {
    let next_seq = u64::try_from(next_seq)
        .map_err(|_| AuditError::Database(format!("`{}.next_seq` is negative", table.head())))?;
    let head = Digest::from_hex(head)
        .ok_or_else(|| AuditError::Database(format!("`{}.head` is not a hash", table.head())))?;
    Ok(Chain { next_seq, head })
}

/// What would make an append through `conn` fail for sure, found before the guarded body
/// runs: no transaction, or no audit tables. One statement naming every table and column the
/// append uses is prepared, not run, so the caller's transaction takes no lock here; and it
/// is one round trip to the connection's worker thread, where one per append statement would
/// each be another while the caller's transaction holds SQLite's write lock.
async fn check_ready(conn: &mut SqliteConnection, table: &AuditTable) -> Result<(), AuditError> {
    use sqlx::Executor as _;
    if !conn.is_in_transaction() {
        return Err(AuditError::Database(
            "the connection is not inside a transaction: begin one (`pool.begin_with(\"BEGIN \
             IMMEDIATE\")`) before the guarded call"
                .into(),
        ));
    }
    let sql = format!(
        "SELECT h.next_seq, h.head, e.seq, e.prev, e.hash, e.time_ns, e.kind, e.action, \
         e.action_kind, e.subject, e.request_id, e.line FROM {} AS h, {} AS e \
         WHERE h.id = 0 AND 0",
        table.head(),
        table.events()
    );
    (&mut *conn).prepare(sql.as_str()).await.map_err(|e| {
        AuditError::Database(format!(
            "the audit table `{}` cannot be used ({e}): create it with \
             `guardrail_audit::sql::sqlx_sqlite::ensure_schema` at startup",
            table.events()
        ))
    })?;
    Ok(())
}

/// Appends `record` through `conn`, which must be inside a transaction begun with sqlx.
async fn append(
    conn: &mut SqliteConnection,
    table: &AuditTable,
    record: Record,
) -> Result<Receipt, AuditError> {
    if !conn.is_in_transaction() {
        // Outside a transaction each statement would commit on its own: a crash between
        // the insert and the head update would fork the chain.
        return Err(AuditError::Database(
            "the connection is not inside a transaction: begin one (`pool.begin_with(\"BEGIN \
             IMMEDIATE\")`) before appending"
                .into(),
        ));
    }
    // A savepoint: dropped (on an error or a cancelled future) before `commit`, sqlx rolls it
    // back before the connection runs anything else, so no half append can be committed.
    let mut sp = conn.begin().await.map_err(db)?;
    // The first statement writes (a no-op update), so the write lock is taken before the head
    // is read: no read-then-upgrade inside the append.
    let select = format!(
        "UPDATE {} SET next_seq = next_seq WHERE id = 0 RETURNING next_seq, head",
        table.head()
    );
    let row = sqlx::query(&select)
        .fetch_optional(&mut *sp)
        .await
        .map_err(db)?
        .ok_or_else(|| {
            AuditError::Database(format!(
                "audit head table `{}` has no row: call `ensure_schema` first",
                table.head()
            ))
        })?;
    let next_seq: i64 = row.try_get(0).map_err(db)?;
    let head: String = row.try_get(1).map_err(db)?;
    let mut chain = head_of(next_seq, &head, table)?;
    let event = chain.link(record)?;
    let cols = Columns::of(&event);
    let seq = i64::try_from(event.seq)
        .map_err(|_| AuditError::Database("sequence number out of range".into()))?;
    let next = i64::try_from(chain.next_seq)
        .map_err(|_| AuditError::Database("sequence number out of range".into()))?;
    let insert = format!(
        "INSERT INTO {} (seq, prev, hash, time_ns, kind, action, action_kind, subject, \
         request_id, line) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
        table.events()
    );
    sqlx::query(&insert)
        .bind(seq)
        .bind(event.prev.to_hex())
        .bind(event.hash.to_hex())
        .bind(cols.time_ns)
        .bind(cols.kind)
        .bind(cols.action)
        .bind(cols.action_kind)
        .bind(cols.subject)
        .bind(cols.request_id)
        .bind(event.line())
        .execute(&mut *sp)
        .await
        .map_err(db)?;
    let advance = format!(
        "UPDATE {} SET next_seq = ?1, head = ?2 WHERE id = 0 AND next_seq = ?3 AND head = ?4",
        table.head()
    );
    let updated = sqlx::query(&advance)
        .bind(next)
        .bind(chain.head.to_hex())
        .bind(seq)
        .bind(event.prev.to_hex())
        .execute(&mut *sp)
        .await
        .map_err(db)?
        .rows_affected();
    if updated != 1 {
        // This transaction holds SQLite's write lock, so only an edit outside the chain's
        // rules (a trigger, say) can get here.
        return Err(AuditError::Database(format!(
            "audit head table `{}` changed during the append",
            table.head()
        )));
    }
    sp.commit().await.map_err(db)?;
    Ok(Receipt { seq: event.seq })
}

impl AsyncTxAppend for Transaction<'_, Sqlite> {
    fn append_in_tx(&mut self, record: Record) -> AppendFuture<'_> {
        Box::pin(append(self, &DEFAULT_TABLE, record))
    }
    fn check_ready(&mut self) -> ReadyFuture<'_> {
        Box::pin(check_ready(self, &DEFAULT_TABLE))
    }
}

/// A connection inside a transaction begun with sqlx (`conn.begin()`); an append on a
/// connection outside one is refused.
impl AsyncTxAppend for SqliteConnection {
    fn append_in_tx(&mut self, record: Record) -> AppendFuture<'_> {
        Box::pin(append(self, &DEFAULT_TABLE, record))
    }
    fn check_ready(&mut self) -> ReadyFuture<'_> {
        Box::pin(check_ready(self, &DEFAULT_TABLE))
    }
}

impl AsyncTxAppend for InTable<'_, Transaction<'_, Sqlite>> {
    fn append_in_tx(&mut self, record: Record) -> AppendFuture<'_> {
        Box::pin(append(self.conn, self.table, record))
    }
    fn check_ready(&mut self) -> ReadyFuture<'_> {
        Box::pin(check_ready(self.conn, self.table))
    }
}

impl AsyncTxAppend for InTable<'_, SqliteConnection> {
    fn append_in_tx(&mut self, record: Record) -> AppendFuture<'_> {
        Box::pin(append(self.conn, self.table, record))
    }
    fn check_ready(&mut self) -> ReadyFuture<'_> {
        Box::pin(check_ready(self.conn, self.table))
    }
}

/// Rows read per query while verifying.
const VERIFY_PAGE: i64 = 1000;

/// Verifies the audit table from genesis: the chain, the indexed columns and the head row,
/// all read in one read transaction (one snapshot in WAL mode), so concurrent appends do not
/// disturb it.
pub async fn verify_sqlite_pool(
    pool: &SqlitePool,
    table: &AuditTable,
) -> Result<VerifyReport, TableVerifyError> {
    let dberr = |e: sqlx::Error| TableVerifyError::Database {
        table: table.events().to_owned(),
        detail: e.to_string(),
    };
    let mut tx = pool.begin().await.map_err(dberr)?;
    let page = format!(
        "SELECT seq, line, time_ns, kind, action, action_kind, subject, request_id \
         FROM {} WHERE seq > ?1 ORDER BY seq LIMIT ?2",
        table.events()
    );
    let mut verifier = Verifier::new(Chain::new());
    let mut position = 0usize;
    let mut after: i64 = -1;
    loop {
        let rows = sqlx::query(&page)
            .bind(after)
            .bind(VERIFY_PAGE)
            .fetch_all(&mut *tx)
            .await
            .map_err(dberr)?;
        let n = rows.len();
        for row in rows {
            position += 1;
            let seq: i64 = row.try_get(0).map_err(dberr)?;
            let line: String = row.try_get(1).map_err(dberr)?;
            let stored = Columns {
                time_ns: row.try_get(2).map_err(dberr)?,
                kind: row.try_get(3).map_err(dberr)?,
                action: row.try_get(4).map_err(dberr)?,
                action_kind: row.try_get(5).map_err(dberr)?,
                subject: row.try_get(6).map_err(dberr)?,
                request_id: row.try_get(7).map_err(dberr)?,
            };
            check_row(table, &mut verifier, position, seq, &line, &stored)?;
            after = seq;
        }
        if i64::try_from(n).unwrap_or(i64::MAX) < VERIFY_PAGE {
            break;
        }
    }
    let head_missing = || TableVerifyError::HeadMissing {
        table: table.events().to_owned(),
    };
    let row = sqlx::query(&format!(
        "SELECT next_seq, head FROM {} WHERE id = 0",
        table.head()
    ))
    .fetch_optional(&mut *tx)
    .await
    .map_err(dberr)?
    .ok_or_else(head_missing)?;
    let next_seq: i64 = row.try_get(0).map_err(|_| head_missing())?;
    let head: String = row.try_get(1).map_err(|_| head_missing())?;
    let head = head_of(next_seq, &head, table).map_err(|_| head_missing())?;
    tx.rollback().await.map_err(dberr)?;
    let report = verifier.report();
    if head != report.head {
        return Err(TableVerifyError::Head {
            table: table.events().to_owned(),
            head_next_seq: head.next_seq,
            events_next_seq: report.head.next_seq,
        });
    }
    Ok(report)
}

enum Job {
    Append(Box<Record>, mpsc::SyncSender<Result<Receipt, AuditError>>),
    Verify(mpsc::SyncSender<Result<VerifyReport, TableVerifyError>>),
}

/// A standalone sink over its own sqlx SQLite pool (one connection), usable from sync and
/// async code: each append is its own `BEGIN IMMEDIATE … COMMIT`, committed when `append`
/// returns. See the module docs for why it owns a thread.
///
/// ```
/// use guardrail_audit::sql::{AuditTable, sqlx_sqlite::SqlitePoolSink};
/// use guardrail_audit::{AuditSink, EventKind, Record};
/// let dir = tempfile::tempdir().unwrap();
/// let sink = SqlitePoolSink::open(dir.path().join("audit.db"), AuditTable::default()).unwrap();
/// sink.append(Record::new(EventKind::Decision)).unwrap();
/// assert_eq!(sink.verify().unwrap().events, 1);
/// ```
#[derive(Debug)]
pub struct SqlitePoolSink {
    name: Arc<str>,
    table: AuditTable,
    jobs: Option<mpsc::Sender<Job>>,
    worker: Option<JoinHandle<()>>,
}

impl SqlitePoolSink {
    /// How long an append waits for SQLite's write lock before failing closed.
    pub const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

    /// Opens (or creates) the database file at `path` (WAL, `synchronous = FULL`, so an
    /// event is durable when `append` returns), creates the audit tables if needed and starts
    /// the sink's thread.
    pub fn open(path: impl AsRef<Path>, table: AuditTable) -> Result<SqlitePoolSink, AuditError> {
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(Self::BUSY_TIMEOUT);
        SqlitePoolSink::connect_with(options, table)
    }

    /// Connects with `options` as they are (pragmas, busy timeout), creates the audit tables
    /// if needed and starts the sink's thread.
    pub fn connect_with(
        options: SqliteConnectOptions,
        table: AuditTable,
    ) -> Result<SqlitePoolSink, AuditError> {
        let (ready_tx, ready_rx) = mpsc::sync_channel(1);
        let (jobs_tx, jobs_rx) = mpsc::channel();
        let worker_table = table.clone();
        let worker = std::thread::Builder::new()
            .name("guardrail-sqlite-sink".into())
            .spawn(move || run_worker(options, &worker_table, &jobs_rx, &ready_tx))?;
        match ready_rx.recv() {
            Ok(Ok(())) => Ok(SqlitePoolSink {
                name: Arc::from("sqlite"),
                table,
                jobs: Some(jobs_tx),
                worker: Some(worker),
            }),
            Ok(Err(e)) => {
                let _ = worker.join();
                Err(e)
            }
            Err(_) => {
                let _ = worker.join();
                Err(AuditError::Database(
                    "the SQLite sink thread stopped while connecting".into(),
                ))
            }
        }
    }

    /// Renames the sink (default `sqlite`), as named in `[audit] required`.
    pub fn named(mut self, name: &str) -> SqlitePoolSink {
        self.name = Arc::from(name);
        self
    }

    /// The tables this sink writes.
    pub fn table(&self) -> &AuditTable {
        &self.table
    }

    fn send(&self, job: Job) -> Result<(), AuditError> {
        let jobs = self
            .jobs
            .as_ref()
            .ok_or_else(|| AuditError::Closed(self.name.to_string()))?;
        jobs.send(job)
            .map_err(|_| AuditError::Closed(self.name.to_string()))
    }

    /// Verifies the sink's table (see [`verify_sqlite_pool`]).
    pub fn verify(&self) -> Result<VerifyReport, TableVerifyError> {
        let closed = || TableVerifyError::Database {
            table: self.table.events().to_owned(),
            detail: "the sink is closed".into(),
        };
        let (tx, rx) = mpsc::sync_channel(1);
        self.send(Job::Verify(tx)).map_err(|_| closed())?;
        rx.recv().map_err(|_| closed())?
    }
}

fn run_worker(
    options: SqliteConnectOptions,
    table: &AuditTable,
    jobs: &mpsc::Receiver<Job>,
    ready: &mpsc::SyncSender<Result<(), AuditError>>,
) {
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            let _ = ready.send(Err(AuditError::Io(e)));
            return;
        }
    };
    let pool = rt.block_on(async {
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(options)
            .await
            .map_err(db)?;
        ensure_schema(&pool, table).await?;
        Ok::<_, AuditError>(pool)
    });
    let pool = match pool {
        Ok(pool) => {
            let _ = ready.send(Ok(()));
            pool
        }
        Err(e) => {
            let _ = ready.send(Err(e));
            return;
        }
    };
    while let Ok(job) = jobs.recv() {
        match job {
            Job::Append(record, reply) => {
                let result = rt.block_on(async {
                    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await.map_err(db)?;
                    let receipt = append(&mut tx, table, *record).await?;
                    tx.commit().await.map_err(db)?;
                    Ok(receipt)
                });
                let _ = reply.send(result);
            }
            Job::Verify(reply) => {
                let _ = reply.send(rt.block_on(verify_sqlite_pool(&pool, table)));
            }
        }
    }
    rt.block_on(pool.close());
}

impl AuditSink for SqlitePoolSink {
    fn name(&self) -> &str {
        &self.name
    }

    fn append(&self, record: Record) -> Result<Receipt, AuditError> {
        let (tx, rx) = mpsc::sync_channel(1);
        self.send(Job::Append(Box::new(record), tx))?;
        rx.recv()
            .map_err(|_| AuditError::Closed(self.name.to_string()))?
    }
}

impl Drop for SqlitePoolSink {
    fn drop(&mut self) {
        // Closing the channel ends the worker's loop; it closes the pool and exits.
        self.jobs.take();
        if let Some(worker) = self.worker.take() {
            let _ = worker.join();
        }
    }
}
