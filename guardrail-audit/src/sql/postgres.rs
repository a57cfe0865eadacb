//! The PostgreSQL audit table (feature `postgres`, sqlx 0.8): appends inside the caller's
//! transaction ([`AsyncTxAppend`]), a standalone [`PgSink`], schema creation and verification.
//!
//! # Many writers
//!
//! The table holds one hash chain per writer (`chains`: a `chain` column, a row per named
//! chain registering it): [`ChainWriter`] appends to a named chain in one `INSERT` that
//! checks the event's predecessor by the key `(chain, seq)`, without a head row to update
//! and without waiting for writers of other chains; everything else here ([`AsyncTxAppend`] on a bare transaction, [`PgSink`],
//! [`verify_postgres`], [`checkpoint`]) works on the chain `default`, the table's only
//! chain before chains existed. [`tree_checkpoint`] signs RFC 6962 tree heads over every
//! chain, [`verify_postgres_trail`] verifies every chain and every tree head, and
//! [`prove_subject`] builds one patient's inclusion bundle (`tree`).
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
use sqlx::{PgConnection, Postgres, Row as _, Transaction};

use super::{
    AppendFuture, AsyncTxAppend, AuditTable, Columns, InTable, SignedCheck, SqlCheckpointOptions,
    TableReport, TableVerifyError, check_row, signed,
};
use super::{CallSettings, ReadyFuture, SettingsFuture};
use crate::chain::Chain;
use crate::checkpoint::{Checkpoint, CheckpointSigner, CheckpointVerifier};
use crate::error::AuditError;
use crate::event::Record;
use crate::merkle::ChainId;
use crate::sink::{AuditSink, Receipt};
use crate::verify::{Verifier, VerifyReport};

/// The sqlx version these impls are for: name its types through this path to be sure they
/// match.
pub use sqlx;

mod chains;
mod settings;
mod tree;

pub use chains::{ChainWriter, OnChain};
pub use tree::{
    ProveError, TrailReport, TrailVerifyError, prove_subject, tree_checkpoint,
    verify_postgres_trail,
};

static DEFAULT_TABLE: LazyLock<AuditTable> = LazyLock::new(AuditTable::default);
static DEFAULT_CHAIN: LazyLock<ChainId> = LazyLock::new(ChainId::default);

fn db(e: sqlx::Error) -> AuditError {
    AuditError::Database(e.to_string())
}

/// Creates the events table (keyed by `(chain, seq)`), the head rows and the tree head
/// table if they do not exist, migrating a table from before chains in place. Safe to run
/// concurrently (it takes a transaction-scoped advisory lock). The indexes for queries by
/// subject, time, action or request are [`ensure_query_indexes`]'s.
pub async fn ensure_schema(pool: &PgPool, table: &AuditTable) -> Result<(), AuditError> {
    let sql = format!(
        "BEGIN;
         SELECT pg_advisory_xact_lock(hashtext('guardrail_audit_schema'));
         {}
         {}
         COMMIT;",
        super::schema_ddl(table, super::Dialect::Postgres),
        chains::schema_ddl(table)
    );
    sqlx::raw_sql(&sql).execute(pool).await.map_err(db)?;
    Ok(())
}

/// Creates the indexes on the event table's queryable copies if they do not exist: by
/// `(subject, time_ns)`, `time_ns`, `action` and `request_id`. [`ensure_schema`] does not
/// create them (tables it created before this version have them, and keeps them): each
/// index is one more write per append, and verification, the readers and
/// [`prove_subject`] do not use them. Call it when you query the table by those columns
/// (on a large table, `CREATE INDEX CONCURRENTLY` by hand avoids blocking appends).
pub async fn ensure_query_indexes(pool: &PgPool, table: &AuditTable) -> Result<(), AuditError> {
    sqlx::raw_sql(&super::query_index_ddl(table))
        .execute(pool)
        .await
        .map_err(db)?;
    Ok(())
}

/// Reads the default chain's head row with `FOR UPDATE`: appends and checkpoints of other
/// transactions wait until this one ends.
async fn lock_head(conn: &mut PgConnection, table: &AuditTable) -> Result<Chain, AuditError> {
    chains::lock_head(conn, table).await
}

/// Appends `record` to the default chain through `conn`, which must be inside a
/// transaction begun with sqlx.
async fn append(
    conn: &mut PgConnection,
    table: &AuditTable,
    record: Record,
) -> Result<Receipt, AuditError> {
    chains::append(conn, table, &DEFAULT_CHAIN, record, None).await
}

impl AsyncTxAppend for Transaction<'_, Postgres> {
    fn append_in_tx(&mut self, record: Record) -> AppendFuture<'_> {
        Box::pin(append(self, &DEFAULT_TABLE, record))
    }

    fn check_ready(&mut self) -> ReadyFuture<'_> {
        Box::pin(chains::check_ready(self, &DEFAULT_TABLE, &DEFAULT_CHAIN))
    }

    fn swap_call_settings(&mut self, settings: CallSettings) -> SettingsFuture<'_> {
        Box::pin(settings::swap(self, settings))
    }
}

impl AsyncTxAppend for PgConnection {
    fn append_in_tx(&mut self, record: Record) -> AppendFuture<'_> {
        Box::pin(append(self, &DEFAULT_TABLE, record))
    }

    fn check_ready(&mut self) -> ReadyFuture<'_> {
        Box::pin(chains::check_ready(self, &DEFAULT_TABLE, &DEFAULT_CHAIN))
    }

    fn swap_call_settings(&mut self, settings: CallSettings) -> SettingsFuture<'_> {
        Box::pin(settings::swap(self, settings))
    }
}

impl AsyncTxAppend for InTable<'_, Transaction<'_, Postgres>> {
    fn append_in_tx(&mut self, record: Record) -> AppendFuture<'_> {
        Box::pin(append(self.conn, self.table, record))
    }

    fn check_ready(&mut self) -> ReadyFuture<'_> {
        Box::pin(chains::check_ready(self.conn, self.table, &DEFAULT_CHAIN))
    }

    fn swap_call_settings(&mut self, settings: CallSettings) -> SettingsFuture<'_> {
        Box::pin(settings::swap(self.conn, settings))
    }
}

impl AsyncTxAppend for InTable<'_, PgConnection> {
    fn append_in_tx(&mut self, record: Record) -> AppendFuture<'_> {
        Box::pin(append(self.conn, self.table, record))
    }

    fn check_ready(&mut self) -> ReadyFuture<'_> {
        Box::pin(chains::check_ready(self.conn, self.table, &DEFAULT_CHAIN))
    }

    fn swap_call_settings(&mut self, settings: CallSettings) -> SettingsFuture<'_> {
        Box::pin(settings::swap(self.conn, settings))
    }
}

/// Rows read per query while verifying.
const VERIFY_PAGE: i64 = 1000;

/// The columns of an events row, in the order [`row_columns`] reads them.
const EVENT_COLUMNS: &str = "seq, line, time_ns, kind, action, action_kind, subject, request_id";

fn row_columns(row: &sqlx::postgres::PgRow) -> Result<(i64, String, Columns), sqlx::Error> {
    Ok((
        row.try_get(0)?,
        row.try_get(1)?,
        Columns {
            time_ns: row.try_get(2)?,
            kind: row.try_get(3)?,
            action: row.try_get(4)?,
            action_kind: row.try_get(5)?,
            subject: row.try_get(6)?,
            request_id: row.try_get(7)?,
        },
    ))
}

/// Verifies the default chain of the audit table from genesis (see
/// [`verify_postgres_trail`] for every chain): the chain, the indexed columns and the head row,
/// all read in one `REPEATABLE READ` snapshot so concurrent appends do not disturb it.
///
/// This proves the rows present form one unbroken chain ending at the head row, but not that
/// nobody with write access deleted rows and relinked the chain, or cut the tail and moved
/// the head back: use [`verify_postgres_signed`] for that.
pub async fn verify_postgres(
    pool: &PgPool,
    table: &AuditTable,
) -> Result<VerifyReport, TableVerifyError> {
    verify_inner(pool, table, None).await.map(|(r, _)| r)
}

/// Verifies the audit table against its signed checkpoints, in one snapshot: everything
/// [`verify_postgres`] checks, plus every checkpoint row's signature (`verifier`: the key
/// outside the database) and that the chain's hash at each checkpoint's seq is the signed
/// head. With `file` (the external checkpoint file) its lines are checked the same way and
/// each must still be in the checkpoint table. The errors are those of
/// `sqlite::verify_sqlite_signed`: `Rewritten`,
/// `Truncated`, `Checkpoint`, `CheckpointMissing`, … each naming the table and seq.
pub async fn verify_postgres_signed(
    pool: &PgPool,
    table: &AuditTable,
    verifier: &CheckpointVerifier,
    file: Option<&std::path::Path>,
) -> Result<TableReport, TableVerifyError> {
    let (_, signed) = verify_inner(pool, table, Some((verifier, file))).await?;
    signed.ok_or_else(|| TableVerifyError::Database {
        table: table.events().to_owned(),
        detail: "no checkpoint report".into(),
    })
}

async fn verify_inner(
    pool: &PgPool,
    table: &AuditTable,
    checkpoints: Option<(&CheckpointVerifier, Option<&std::path::Path>)>,
) -> Result<(VerifyReport, Option<TableReport>), TableVerifyError> {
    let dberr = |e: sqlx::Error| TableVerifyError::Database {
        table: table.events().to_owned(),
        detail: e.to_string(),
    };
    let mut tx = pool.begin().await.map_err(dberr)?;
    sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
        .execute(&mut *tx)
        .await
        .map_err(dberr)?;
    let mut signed = match checkpoints {
        Some((verifier, file)) => {
            let mut check = SignedCheck::new(table, verifier);
            let rows = sqlx::query(&format!(
                "SELECT seq, line FROM {} ORDER BY seq",
                table.checkpoints()
            ))
            .fetch_all(&mut *tx)
            .await
            .map_err(dberr)?;
            for row in rows {
                let seq: i64 = row.try_get(0).map_err(dberr)?;
                let line: String = row.try_get(1).map_err(dberr)?;
                check.push_row(seq, &line)?;
            }
            if let Some(path) = file {
                check.load_file(path)?;
            }
            check.start();
            Some(check)
        }
        None => None,
    };
    let page = format!(
        "SELECT {EVENT_COLUMNS} FROM {} WHERE chain = 'default' AND seq > $1 ORDER BY seq LIMIT $2",
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
            let (seq, line, stored) = row_columns(&row).map_err(dberr)?;
            check_row(table, &mut verifier, position, seq, &line, &stored)?;
            if let Some(check) = &mut signed {
                check.after_event(verifier.report().head)?;
            }
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
    let head = chains::head_of(next_seq, &head, table).map_err(|_| head_missing())?;
    tx.rollback().await.map_err(dberr)?;
    let report = verifier.report();
    let signed = signed.map(|check| check.finish(report)).transpose()?;
    if head != report.head {
        return Err(TableVerifyError::Head {
            table: table.events().to_owned(),
            head_next_seq: head.next_seq,
            events_next_seq: report.head.next_seq,
        });
    }
    Ok((report, signed))
}

/// Signs a checkpoint of the head inside `conn`'s open transaction (which holds the head row
/// locked, or takes the lock here) if at least `min_new` events are not covered yet, after
/// checking that the rows since the newest checkpoint extend it and end at the head row.
async fn checkpoint_in_tx(
    conn: &mut PgConnection,
    table: &AuditTable,
    signer: &CheckpointSigner,
    min_new: u64,
) -> Result<Option<(String, Checkpoint)>, AuditError> {
    let head = lock_head(conn, table).await?;
    let newest: Option<(i64, String)> = sqlx::query_as(&format!(
        "SELECT seq, line FROM {} ORDER BY seq DESC LIMIT 1",
        table.checkpoints()
    ))
    .fetch_optional(&mut *conn)
    .await
    .map_err(db)?;
    let start = signed::start_after(table, signer, newest)?;
    if !signed::due(table, head, start, min_new)? {
        return Ok(None);
    }
    let page = format!(
        "SELECT {EVENT_COLUMNS} FROM {} WHERE chain = 'default' AND seq > $1 ORDER BY seq LIMIT $2",
        table.events()
    );
    let mut after = i64::try_from(start.next_seq)
        .map_err(|_| AuditError::Database("sequence number out of range".into()))?
        - 1;
    let mut verifier = Verifier::new(start);
    let mut position = 0usize;
    loop {
        let rows = sqlx::query(&page)
            .bind(after)
            .bind(VERIFY_PAGE)
            .fetch_all(&mut *conn)
            .await
            .map_err(db)?;
        let n = rows.len();
        for row in rows {
            position += 1;
            let (seq, line, stored) = row_columns(&row).map_err(db)?;
            check_row(table, &mut verifier, position, seq, &line, &stored)
                .map_err(signed::refuse_row)?;
            after = seq;
        }
        if i64::try_from(n).unwrap_or(i64::MAX) < VERIFY_PAGE {
            break;
        }
    }
    signed::check_extension(table, verifier.report(), head)?;
    let (line, cp) = signed::sign(table, signer, head);
    let seq = i64::try_from(cp.seq)
        .map_err(|_| AuditError::Database("sequence number out of range".into()))?;
    sqlx::query(&format!(
        "INSERT INTO {} (seq, line) VALUES ($1, $2)",
        table.checkpoints()
    ))
    .bind(seq)
    .bind(&line)
    .execute(&mut *conn)
    .await
    .map_err(db)?;
    Ok(Some((line, cp)))
}

/// Writes a signed checkpoint of the committed head now, in its own transaction (holding
/// the head row's lock, so appends wait for it), and then appends it to `options.file` if
/// set. `None` when every event is already covered. Use it after appending through
/// [`AsyncTxAppend`] in your own transactions (a [`PgSink`]'s count trigger covers those
/// too, at its next append).
///
/// Refuses (fails closed, signs nothing) when the newest checkpoint row does not verify,
/// or the rows after it do not extend it up to the head row.
pub async fn checkpoint(
    pool: &PgPool,
    table: &AuditTable,
    options: &SqlCheckpointOptions,
) -> Result<Option<Checkpoint>, AuditError> {
    let mut tx = pool.begin().await.map_err(db)?;
    let written = checkpoint_in_tx(&mut tx, table, &options.signer, 1).await?;
    tx.commit().await.map_err(db)?;
    finish_checkpoint(table, options, written)
}

fn finish_checkpoint(
    table: &AuditTable,
    options: &SqlCheckpointOptions,
    written: Option<(String, Checkpoint)>,
) -> Result<Option<Checkpoint>, AuditError> {
    let Some((line, cp)) = written else {
        return Ok(None);
    };
    if let Some(path) = &options.file {
        signed::append_to_file(table, path, &line, cp.seq)?;
    }
    Ok(Some(cp))
}

type CheckpointReply = mpsc::SyncSender<Result<Option<Checkpoint>, AuditError>>;

enum Job {
    Append(
        Box<Record>,
        Option<Arc<SqlCheckpointOptions>>,
        mpsc::SyncSender<Result<Receipt, AuditError>>,
    ),
    Checkpoint(Arc<SqlCheckpointOptions>, CheckpointReply),
    Verify(mpsc::SyncSender<Result<VerifyReport, TableVerifyError>>),
}

/// A standalone sink over its own PostgreSQL connection, usable from sync and async code:
/// each append is its own transaction, committed when `append` returns. See the module docs
/// for why it owns a thread.
#[derive(Debug)]
pub struct PgSink {
    name: Arc<str>,
    table: AuditTable,
    checkpoints: Option<Arc<SqlCheckpointOptions>>,
    jobs: Option<mpsc::Sender<Job>>,
    worker: Option<JoinHandle<()>>,
}

impl PgSink {
    /// How long an append waits for the head-row lock before failing closed.
    pub const LOCK_TIMEOUT_MS: u64 = 10_000;
    /// How long connecting (and later reconnecting) may take before an append fails closed.
    pub const CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

    /// Connects to `url`, creates the audit tables if needed and starts the sink's thread.
    /// Appends go to the default chain.
    pub fn connect(url: &str, table: AuditTable) -> Result<PgSink, AuditError> {
        PgSink::start(url, table, None)
    }

    /// Like [`PgSink::connect`], but appends go to `chain` (through a [`ChainWriter`]), so
    /// several sinks (one per replica) append to one table without waiting on each other.
    /// Such a trail is sealed by [`tree_checkpoint`], not by [`PgSink::with_checkpoints`]
    /// (which covers the default chain only: an append through a sink with both fails
    /// closed).
    pub fn connect_chain(
        url: &str,
        table: AuditTable,
        chain: ChainId,
    ) -> Result<PgSink, AuditError> {
        let writer = ChainWriter::new(table.clone(), chain);
        PgSink::start(url, table, Some(writer))
    }

    fn start(
        url: &str,
        table: AuditTable,
        writer: Option<ChainWriter>,
    ) -> Result<PgSink, AuditError> {
        let (ready_tx, ready_rx) = mpsc::sync_channel(1);
        let (jobs_tx, jobs_rx) = mpsc::channel();
        let url = url.to_owned();
        let worker_table = table.clone();
        let worker = std::thread::Builder::new()
            .name("guardrail-pg-sink".into())
            .spawn(move || run_worker(&url, &worker_table, writer, &jobs_rx, &ready_tx))?;
        match ready_rx.recv() {
            Ok(Ok(())) => Ok(PgSink {
                name: Arc::from("postgres"),
                table,
                checkpoints: None,
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

    /// Writes signed checkpoints: inside an append's transaction once
    /// `options.every_events` events are uncovered, and on [`PgSink::checkpoint`].
    pub fn with_checkpoints(mut self, options: SqlCheckpointOptions) -> PgSink {
        self.checkpoints = Some(Arc::new(options));
        self
    }

    /// Writes a checkpoint of the committed head now (see [`checkpoint`]); `None` when every
    /// event is covered already. An error when the sink has no checkpoint options.
    pub fn checkpoint(&self) -> Result<Option<Checkpoint>, AuditError> {
        let options = self.checkpoints.clone().ok_or_else(|| {
            AuditError::Database(format!(
                "audit table `{}`: the sink has no checkpoint options",
                self.table.events()
            ))
        })?;
        let (tx, rx) = mpsc::sync_channel(1);
        self.send(Job::Checkpoint(options, tx))?;
        rx.recv()
            .map_err(|_| AuditError::Closed(self.name.to_string()))?
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
    writer: Option<ChainWriter>,
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
            Job::Append(record, checkpoints, reply) => {
                let result = rt.block_on(async {
                    let mut tx = pool.begin().await.map_err(db)?;
                    sqlx::query(&lock_timeout)
                        .execute(&mut *tx)
                        .await
                        .map_err(db)?;
                    let receipt = match &writer {
                        None => append(&mut tx, table, *record).await?,
                        Some(_) if checkpoints.is_some() => {
                            return Err(AuditError::Database(format!(
                                "audit table `{}`: a sink on a named chain is sealed by tree \
                                 heads (`tree_checkpoint`), not by checkpoints of the default \
                                 chain",
                                table.events()
                            )));
                        }
                        Some(w) => w.on(&mut tx).append_in_tx(*record).await?,
                    };
                    // The checkpoint commits with the event that made it due, or neither does.
                    let written = match &checkpoints {
                        Some(o) if o.every_events > 0 => {
                            checkpoint_in_tx(&mut tx, table, &o.signer, o.every_events).await?
                        }
                        _ => None,
                    };
                    tx.commit().await.map_err(db)?;
                    if let Some(o) = &checkpoints {
                        finish_checkpoint(table, o, written)?;
                    }
                    Ok(receipt)
                });
                let _ = reply.send(result);
            }
            Job::Checkpoint(options, reply) => {
                let result = rt.block_on(async {
                    let mut tx = pool.begin().await.map_err(db)?;
                    sqlx::query(&lock_timeout)
                        .execute(&mut *tx)
                        .await
                        .map_err(db)?;
                    let written = checkpoint_in_tx(&mut tx, table, &options.signer, 1).await?;
                    tx.commit().await.map_err(db)?;
                    finish_checkpoint(table, &options, written)
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
        self.send(Job::Append(Box::new(record), self.checkpoints.clone(), tx))?;
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
