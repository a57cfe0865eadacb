//! The PostgreSQL audit table (feature `postgres`, sqlx 0.8): appends inside the caller's
//! transaction ([`AsyncTxAppend`]), a standalone [`PgSink`], schema creation and verification.
//!
//! # Why `PgSink` owns a thread
//!
//! [`AuditSink::append`] is synchronous: the guardrail calls it from sync and async code
//! alike. Blocking on a sqlx future inside a tokio runtime panics (or stalls the runtime), so
//! `PgSink` runs its own thread with a current-thread tokio runtime and a one-connection pool,
//! and an append hands the record over a std channel and waits for the reply. The caller's
//! thread is blocked for one database round trip, as it would be for a file fsync; async
//! services that want no blocking at all append the outcome through their own transaction
//! ([`AsyncTxAppend`]) and keep decisions in a file or memory sink.
//!
//! Do not point a `PgSink` and a transaction-bound append at the same table from the same
//! task: the sink would wait for the head-row lock the caller's open transaction holds. The
//! sink sets `lock_timeout` so such a wait fails closed after [`PgSink::LOCK_TIMEOUT_MS`]
//! instead of hanging.

use std::sync::mpsc;
use std::sync::{Arc, LazyLock};
use std::thread::JoinHandle;

use sqlx::postgres::{PgPool, PgPoolOptions};
use sqlx::{Connection as _, PgConnection, Postgres, Row as _, Transaction};

use super::{
    AppendFuture, AsyncTxAppend, AuditTable, Columns, InTable, TableVerifyError, check_row,
};
use super::{CallSettings, SettingsFuture};
use crate::chain::{Chain, Digest};
use crate::error::AuditError;
use crate::event::Record;
use crate::sink::{AuditSink, Receipt};
use crate::verify::{Verifier, VerifyReport};

/// The sqlx version these impls are for: name its types through this path to be sure they
/// match.
pub use sqlx;

mod settings;

static DEFAULT_TABLE: LazyLock<AuditTable> = LazyLock::new(AuditTable::default);

fn db(e: sqlx::Error) -> AuditError {
    AuditError::Database(e.to_string())
}

/// Creates the events table, its indexes and the head row if they do not exist. Safe to run
/// concurrently (it takes a transaction-scoped advisory lock).
pub async fn ensure_schema(pool: &PgPool, table: &AuditTable) -> Result<(), AuditError> {
    let sql = format!(
        "BEGIN;
         SELECT pg_advisory_xact_lock(hashtext('guardrail_audit_schema'));
         {}
         COMMIT;",
        super::schema_ddl(table, super::Dialect::Postgres)
    );
    sqlx::raw_sql(&sql).execute(pool).await.map_err(db)?;
    Ok(())
}

fn head_of(next_seq: i64, head: &str, table: &AuditTable) -> Result<Chain, AuditError> {
    let next_seq = u64::try_from(next_seq)
        .map_err(|_| AuditError::Database(format!("`{}.next_seq` is negative", table.head())))?;
    let head = Digest::from_hex(head)
        .ok_or_else(|| AuditError::Database(format!("`{}.head` is not a hash", table.head())))?;
    Ok(Chain { next_seq, head })
}

/// Appends `record` through `conn`, which must be inside a transaction begun with sqlx.
async fn append(
    conn: &mut PgConnection,
    table: &AuditTable,
    record: Record,
) -> Result<Receipt, AuditError> {
    if !conn.is_in_transaction() {
        // Outside a transaction the head lock would be released after the SELECT and the
        // three statements would commit one by one.
        return Err(AuditError::Database(
            "the connection is not inside a transaction: begin one (`conn.begin()`) before appending"
                .into(),
        ));
    }
    let select = format!(
        "SELECT next_seq, head FROM {} WHERE id = 0 FOR UPDATE",
        table.head()
    );
    let row = sqlx::query(&select)
        .fetch_optional(&mut *conn)
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
    // One statement advances the head and inserts the event: both or neither, so a future
    // dropped between two statements can never leave an event without its head (or the
    // reverse) in a transaction the caller still commits.
    let insert = format!(
        "WITH advanced AS (
             UPDATE {head} SET next_seq = $11, head = $3
             WHERE id = 0 AND next_seq = $1 AND head = $2
             RETURNING id
         )
         INSERT INTO {events} (seq, prev, hash, time_ns, kind, action, action_kind, subject,
                               request_id, line)
         SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10 FROM advanced",
        head = table.head(),
        events = table.events()
    );
    let inserted = sqlx::query(&insert)
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
        .bind(next)
        .execute(&mut *conn)
        .await
        .map_err(db)?
        .rows_affected();
    if inserted != 1 {
        // The head row is locked by this transaction, so only an edit outside the chain's
        // rules can get here.
        return Err(AuditError::Database(format!(
            "audit head table `{}` changed under its lock",
            table.head()
        )));
    }
    Ok(Receipt { seq: event.seq })
}

impl AsyncTxAppend for Transaction<'_, Postgres> {
    fn append_in_tx(&mut self, record: Record) -> AppendFuture<'_> {
        Box::pin(append(self, &DEFAULT_TABLE, record))
    }

    fn swap_call_settings(&mut self, settings: CallSettings) -> SettingsFuture<'_> {
        Box::pin(settings::swap(self, settings))
    }
}

impl AsyncTxAppend for PgConnection {
    fn append_in_tx(&mut self, record: Record) -> AppendFuture<'_> {
        Box::pin(append(self, &DEFAULT_TABLE, record))
    }

    fn swap_call_settings(&mut self, settings: CallSettings) -> SettingsFuture<'_> {
        Box::pin(settings::swap(self, settings))
    }
}

impl AsyncTxAppend for InTable<'_, Transaction<'_, Postgres>> {
    fn append_in_tx(&mut self, record: Record) -> AppendFuture<'_> {
        Box::pin(append(self.conn, self.table, record))
    }

    fn swap_call_settings(&mut self, settings: CallSettings) -> SettingsFuture<'_> {
        Box::pin(settings::swap(self.conn, settings))
    }
}

impl AsyncTxAppend for InTable<'_, PgConnection> {
    fn append_in_tx(&mut self, record: Record) -> AppendFuture<'_> {
        Box::pin(append(self.conn, self.table, record))
    }

    fn swap_call_settings(&mut self, settings: CallSettings) -> SettingsFuture<'_> {
        Box::pin(settings::swap(self.conn, settings))
    }
}

/// Rows read per query while verifying.
const VERIFY_PAGE: i64 = 1000;

/// Verifies the audit table from genesis: the chain, the indexed columns and the head row,
/// all read in one `REPEATABLE READ` snapshot so concurrent appends do not disturb it.
pub async fn verify_postgres(
    pool: &PgPool,
    table: &AuditTable,
) -> Result<VerifyReport, TableVerifyError> {
    let dberr = |e: sqlx::Error| TableVerifyError::Database {
        table: table.events().to_owned(),
        detail: e.to_string(),
    };
    let mut tx = pool.begin().await.map_err(dberr)?;
    sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
        .execute(&mut *tx)
        .await
        .map_err(dberr)?;
    let page = format!(
        "SELECT seq, line, time_ns, kind, action, action_kind, subject, request_id \
         FROM {} WHERE seq > $1 ORDER BY seq LIMIT $2",
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

/// A standalone sink over its own PostgreSQL connection, usable from sync and async code:
/// each append is its own transaction, committed when `append` returns. See the module docs
/// for why it owns a thread.
#[derive(Debug)]
pub struct PgSink {
    name: Arc<str>,
    table: AuditTable,
    jobs: Option<mpsc::Sender<Job>>,
    worker: Option<JoinHandle<()>>,
}

impl PgSink {
    /// How long an append waits for the head-row lock before failing closed.
    pub const LOCK_TIMEOUT_MS: u64 = 10_000;
    /// How long connecting (and later reconnecting) may take before an append fails closed.
    pub const CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

    /// Connects to `url`, creates the audit tables if needed and starts the sink's thread.
    pub fn connect(url: &str, table: AuditTable) -> Result<PgSink, AuditError> {
        let (ready_tx, ready_rx) = mpsc::sync_channel(1);
        let (jobs_tx, jobs_rx) = mpsc::channel();
        let url = url.to_owned();
        let worker_table = table.clone();
        let worker = std::thread::Builder::new()
            .name("guardrail-pg-sink".into())
            .spawn(move || run_worker(&url, &worker_table, &jobs_rx, &ready_tx))?;
        match ready_rx.recv() {
            Ok(Ok(())) => Ok(PgSink {
                name: Arc::from("postgres"),
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
                    "the PostgreSQL sink thread stopped while connecting".into(),
                ))
            }
        }
    }

    /// Renames the sink (default `postgres`), as named in `[audit] required`.
    pub fn named(mut self, name: &str) -> PgSink {
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

    /// Verifies the sink's table (see [`verify_postgres`]).
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
    url: &str,
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
        let pool = PgPoolOptions::new()
            .max_connections(1)
            .acquire_timeout(PgSink::CONNECT_TIMEOUT)
            .connect(url)
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
    let lock_timeout = format!("SET LOCAL lock_timeout = {}", PgSink::LOCK_TIMEOUT_MS);
    while let Ok(job) = jobs.recv() {
        match job {
            Job::Append(record, reply) => {
                let result = rt.block_on(async {
                    let mut tx = pool.begin().await.map_err(db)?;
                    sqlx::query(&lock_timeout)
                        .execute(&mut *tx)
                        .await
                        .map_err(db)?;
                    let receipt = append(&mut tx, table, *record).await?;
                    tx.commit().await.map_err(db)?;
                    Ok(receipt)
                });
                let _ = reply.send(result);
            }
            Job::Verify(reply) => {
                let _ = reply.send(rt.block_on(verify_postgres(&pool, table)));
            }
        }
    }
    rt.block_on(pool.close());
}

impl AuditSink for PgSink {
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

impl Drop for PgSink {
    fn drop(&mut self) {
        // Closing the channel ends the worker's loop; it closes the pool and exits.
        self.jobs.take();
        if let Some(worker) = self.worker.take() {
            let _ = worker.join();
        }
    }
}
