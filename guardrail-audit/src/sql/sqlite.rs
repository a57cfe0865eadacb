//! The SQLite audit table (feature `sqlite`, rusqlite): appends inside the caller's
//! transaction ([`TxAppend`]), a standalone [`SqliteSink`], schema creation and verification.
//!
//! ```
//! use guardrail_audit::sql::{AuditTable, TxAppend, sqlite};
//! use guardrail_audit::{EventKind, Record};
//!
//! let mut conn = rusqlite::Connection::open_in_memory().unwrap();
//! let table = AuditTable::default();
//! sqlite::ensure_schema(&conn, &table).unwrap();
//!
//! let mut tx = conn.transaction().unwrap();
//! tx.append_in_tx(Record::new(EventKind::Outcome)).unwrap();
//! tx.commit().unwrap();
//!
//! let report = sqlite::verify_sqlite(&conn, &table).unwrap();
//! assert_eq!(report.events, 1);
//! ```

use std::path::Path;
use std::sync::{Arc, LazyLock, Mutex, MutexGuard};

use rusqlite::{
    Connection, OptionalExtension, Savepoint, Transaction, TransactionBehavior, params,
};

use super::{
    AuditTable, Columns, InTable, SignedCheck, SqlCheckpointOptions, TableReport, TableVerifyError,
    TxAppend, check_row, signed,
};
use crate::chain::{Chain, Digest};
use crate::checkpoint::{Checkpoint, CheckpointSigner, CheckpointVerifier};
use crate::error::AuditError;
use crate::event::Record;
use crate::sink::{AuditSink, Receipt};
use crate::verify::{Verifier, VerifyReport};

/// The rusqlite version these impls are for: name its types through this path to be sure
/// they match.
pub use rusqlite;

static DEFAULT_TABLE: LazyLock<AuditTable> = LazyLock::new(AuditTable::default);

fn db(e: rusqlite::Error) -> AuditError {
    AuditError::Database(e.to_string())
}

/// Creates the events table, its indexes and the head row if they do not exist.
pub fn ensure_schema(conn: &Connection, table: &AuditTable) -> Result<(), AuditError> {
    conn.execute_batch(&super::schema_ddl(table, super::Dialect::Sqlite))
        .map_err(db)
}

fn read_head(conn: &Connection, table: &AuditTable) -> Result<Chain, AuditError> {
    let row: Option<(i64, String)> = conn
        .query_row(
            &format!("SELECT next_seq, head FROM {} WHERE id = 0", table.head()),
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()
        .map_err(db)?;
    let (next_seq, head) = row.ok_or_else(|| {
        AuditError::Database(format!(
            "audit head table `{}` has no row: call `ensure_schema` first",
            table.head()
        ))
    })?;
    let next_seq = u64::try_from(next_seq)
        .map_err(|_| AuditError::Database(format!("`{}.next_seq` is negative", table.head())))?;
    let head = Digest::from_hex(&head)
        .ok_or_else(|| AuditError::Database(format!("`{}.head` is not a hash", table.head())))?;
    Ok(Chain { next_seq, head })
}

/// The error of an append whose audit tables do not exist.
fn no_schema(table: &AuditTable, e: &rusqlite::Error) -> AuditError {
    AuditError::Database(format!(
        "the audit table `{}` cannot be used ({e}): create it with \
         `guardrail_audit::sql::sqlite::ensure_schema` at startup",
        table.events()
    ))
}

/// What would make an append through `conn` fail for sure, found before the guarded body
/// runs: no transaction, or no audit tables. Preparing the append's statements checks the
/// tables without reading them, so the caller's transaction takes no lock here (a read
/// would take a shared lock that a later write must upgrade).
fn check_ready(conn: &Connection, table: &AuditTable) -> Result<(), AuditError> {
    if conn.is_autocommit() {
        return Err(AuditError::Database(
            "the connection is not inside a transaction: begin one before the guarded call".into(),
        ));
    }
    for sql in [
        format!("SELECT next_seq, head FROM {} WHERE id = 0", table.head()),
        insert_sql(table),
    ] {
        conn.prepare_cached(&sql)
            .map_err(|e| no_schema(table, &e))?;
    }
    Ok(())
}

fn insert_sql(table: &AuditTable) -> String {
    format!(
        "INSERT INTO {} (seq, prev, hash, time_ns, kind, action, action_kind, subject, \
         request_id, line) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
        table.events()
    )
}

/// Appends `record` through `conn`, which must be inside a transaction.
fn append(conn: &Connection, table: &AuditTable, record: Record) -> Result<Receipt, AuditError> {
    if conn.is_autocommit() {
        // Outside a transaction the head read, the insert and the head update would commit
        // one by one: a crash between them would fork the chain.
        return Err(AuditError::Database(
            "the connection is not inside a transaction: begin one before appending".into(),
        ));
    }
    // A savepoint makes the append all-or-nothing inside the caller's transaction: an error
    // between the insert and the head update never leaves half an append to be committed.
    conn.execute_batch("SAVEPOINT guardrail_audit_append")
        .map_err(db)?;
    match link_and_insert(conn, table, record) {
        Ok(receipt) => {
            conn.execute_batch("RELEASE guardrail_audit_append")
                .map_err(db)?;
            Ok(receipt)
        }
        Err(e) => {
            // The append failed already; a failing rollback cannot make it worse.
            let _ = conn.execute_batch(
                "ROLLBACK TO guardrail_audit_append; RELEASE guardrail_audit_append",
            );
            Err(e)
        }
    }
}

fn link_and_insert(
    conn: &Connection,
    table: &AuditTable,
    record: Record,
) -> Result<Receipt, AuditError> {
    let mut chain = read_head(conn, table)?;
    let event = chain.link(record)?;
    let cols = Columns::of(&event);
    let seq = i64::try_from(event.seq)
        .map_err(|_| AuditError::Database("sequence number out of range".into()))?;
    let next_seq = i64::try_from(chain.next_seq)
        .map_err(|_| AuditError::Database("sequence number out of range".into()))?;
    conn.execute(
        &insert_sql(table),
        params![
            seq,
            event.prev.to_hex(),
            event.hash.to_hex(),
            cols.time_ns,
            cols.kind,
            cols.action,
            cols.action_kind,
            cols.subject,
            cols.request_id,
            event.line(),
        ],
    )
    .map_err(db)?;
    let updated = conn
        .execute(
            &format!(
                "UPDATE {} SET next_seq = ?1, head = ?2 WHERE id = 0",
                table.head()
            ),
            params![next_seq, chain.head.to_hex()],
        )
        .map_err(db)?;
    if updated != 1 {
        return Err(AuditError::Database(format!(
            "audit head table `{}` lost its row",
            table.head()
        )));
    }
    Ok(Receipt { seq: event.seq })
}

impl TxAppend for Transaction<'_> {
    fn append_in_tx(&mut self, record: Record) -> Result<Receipt, AuditError> {
        append(self, &DEFAULT_TABLE, record)
    }
    fn check_ready(&mut self) -> Result<(), AuditError> {
        check_ready(self, &DEFAULT_TABLE)
    }
}

impl TxAppend for Savepoint<'_> {
    fn append_in_tx(&mut self, record: Record) -> Result<Receipt, AuditError> {
        append(self, &DEFAULT_TABLE, record)
    }
    fn check_ready(&mut self) -> Result<(), AuditError> {
        check_ready(self, &DEFAULT_TABLE)
    }
}

impl TxAppend for InTable<'_, Transaction<'_>> {
    fn append_in_tx(&mut self, record: Record) -> Result<Receipt, AuditError> {
        append(self.conn, self.table, record)
    }
    fn check_ready(&mut self) -> Result<(), AuditError> {
        check_ready(self.conn, self.table)
    }
}

impl TxAppend for InTable<'_, Savepoint<'_>> {
    fn append_in_tx(&mut self, record: Record) -> Result<Receipt, AuditError> {
        append(self.conn, self.table, record)
    }
    fn check_ready(&mut self) -> Result<(), AuditError> {
        check_ready(self.conn, self.table)
    }
}

/// A connection inside a transaction begun with SQL (`BEGIN IMMEDIATE`); an append on a
/// connection in autocommit mode is refused.
impl TxAppend for InTable<'_, Connection> {
    fn append_in_tx(&mut self, record: Record) -> Result<Receipt, AuditError> {
        append(self.conn, self.table, record)
    }
    fn check_ready(&mut self) -> Result<(), AuditError> {
        check_ready(self.conn, self.table)
    }
}

/// Verifies the audit table from genesis: the chain, the indexed columns and the head row.
///
/// This proves the rows present form one unbroken chain ending at the head row, but not that
/// nobody with write access deleted rows and relinked the chain, or cut the tail and moved
/// the head back: use [`verify_sqlite_signed`] for that.
pub fn verify_sqlite(
    conn: &Connection,
    table: &AuditTable,
) -> Result<VerifyReport, TableVerifyError> {
    verify_inner(conn, table, None).map(|(report, _)| report)
}

/// Verifies the audit table against its signed checkpoints: everything [`verify_sqlite`]
/// checks, plus every checkpoint row's signature (`verifier`: the key outside the database)
/// and that the chain's hash at each checkpoint's seq is the signed head. With `file` (the
/// external checkpoint file of [`SqlCheckpointOptions::file`]) its lines are checked the
/// same way and each must still be in the checkpoint table.
///
/// A relinked chain fails with [`TableVerifyError::Rewritten`], a cut tail behind a
/// checkpoint with [`TableVerifyError::Truncated`] (naming the first missing seq), an
/// edited or forged checkpoint row with [`TableVerifyError::Checkpoint`], deleted checkpoint
/// rows (with `file`) with [`TableVerifyError::CheckpointMissing`]. Events after the newest
/// checkpoint are not covered ([`TableReport::unchecked_events`]).
///
/// ```
/// use guardrail_audit::sql::{AuditTable, SqlCheckpointOptions, sqlite};
/// use guardrail_audit::{AuditSink, CheckpointSigner, EventKind, Record};
/// let dir = tempfile::tempdir().unwrap();
/// let signer = CheckpointSigner::ed25519_from_seed(&[9; 32]);
/// let options = SqlCheckpointOptions { every_events: 2, ..SqlCheckpointOptions::new(signer.clone()) };
/// let sink = sqlite::SqliteSink::open(dir.path().join("audit.db"), AuditTable::default())
///     .unwrap()
///     .with_checkpoints(options);
/// for _ in 0..5 {
///     sink.append(Record::new(EventKind::Decision)).unwrap();
/// }
/// let report = sink.with_connection(|c| {
///     sqlite::verify_sqlite_signed(c, &AuditTable::default(), &signer.verifier(), None)
/// });
/// let report = report.unwrap();
/// assert_eq!((report.events, report.last_checkpoint_seq, report.unchecked_events), (5, Some(3), 1));
/// ```
pub fn verify_sqlite_signed(
    conn: &Connection,
    table: &AuditTable,
    verifier: &CheckpointVerifier,
    file: Option<&Path>,
) -> Result<TableReport, TableVerifyError> {
    let (_, signed) = verify_inner(conn, table, Some((verifier, file)))?;
    signed.ok_or_else(|| TableVerifyError::Database {
        table: table.events().to_owned(),
        detail: "no checkpoint report".into(),
    })
}

fn verify_inner(
    conn: &Connection,
    table: &AuditTable,
    checkpoints: Option<(&CheckpointVerifier, Option<&Path>)>,
) -> Result<(VerifyReport, Option<TableReport>), TableVerifyError> {
    let dberr = |e: rusqlite::Error| TableVerifyError::Database {
        table: table.events().to_owned(),
        detail: e.to_string(),
    };
    // One read transaction: the checkpoints, events and head are one snapshot.
    let deferred = conn.is_autocommit();
    if deferred {
        conn.execute_batch("BEGIN DEFERRED").map_err(dberr)?;
    }
    let result = verify_snapshot(conn, table, checkpoints);
    if deferred {
        conn.execute_batch("COMMIT").map_err(dberr)?;
    }
    result
}

fn verify_snapshot(
    conn: &Connection,
    table: &AuditTable,
    checkpoints: Option<(&CheckpointVerifier, Option<&Path>)>,
) -> Result<(VerifyReport, Option<TableReport>), TableVerifyError> {
    let dberr = |e: rusqlite::Error| TableVerifyError::Database {
        table: table.events().to_owned(),
        detail: e.to_string(),
    };
    let mut signed = match checkpoints {
        Some((verifier, file)) => {
            let mut check = SignedCheck::new(table, verifier);
            let mut stmt = conn
                .prepare(&format!(
                    "SELECT seq, line FROM {} ORDER BY seq",
                    table.checkpoints()
                ))
                .map_err(dberr)?;
            let mut rows = stmt.query([]).map_err(dberr)?;
            while let Some(row) = rows.next().map_err(dberr)? {
                let seq: i64 = row.get(0).map_err(dberr)?;
                let line: String = row.get(1).map_err(dberr)?;
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
    let mut stmt = conn
        .prepare(&format!(
            "SELECT seq, line, time_ns, kind, action, action_kind, subject, request_id \
             FROM {} ORDER BY seq",
            table.events()
        ))
        .map_err(dberr)?;
    let mut rows = stmt.query([]).map_err(dberr)?;
    let mut verifier = Verifier::new(Chain::new());
    let mut position = 0usize;
    while let Some(row) = rows.next().map_err(dberr)? {
        position += 1;
        let seq: i64 = row.get(0).map_err(dberr)?;
        let line: String = row.get(1).map_err(dberr)?;
        let stored = Columns {
            time_ns: row.get(2).map_err(dberr)?,
            kind: row.get(3).map_err(dberr)?,
            action: row.get(4).map_err(dberr)?,
            action_kind: row.get(5).map_err(dberr)?,
            subject: row.get(6).map_err(dberr)?,
            request_id: row.get(7).map_err(dberr)?,
        };
        check_row(table, &mut verifier, position, seq, &line, &stored)?;
        if let Some(check) = &mut signed {
            check.after_event(verifier.report().head)?;
        }
    }
    let report = verifier.report();
    let signed = signed.map(|check| check.finish(report)).transpose()?;
    let head = read_head(conn, table).map_err(|_| TableVerifyError::HeadMissing {
        table: table.events().to_owned(),
    })?;
    if head != report.head {
        return Err(TableVerifyError::Head {
            table: table.events().to_owned(),
            head_next_seq: head.next_seq,
            events_next_seq: report.head.next_seq,
        });
    }
    Ok((report, signed))
}

/// Signs a checkpoint of the head inside `conn`'s open transaction if at least `min_new`
/// events are not covered yet, after checking that the rows since the newest checkpoint
/// extend it and end at the head row.
fn checkpoint_in_tx(
    conn: &Connection,
    table: &AuditTable,
    signer: &CheckpointSigner,
    min_new: u64,
) -> Result<Option<(String, Checkpoint)>, AuditError> {
    let head = read_head(conn, table)?;
    let newest: Option<(i64, String)> = conn
        .query_row(
            &format!(
                "SELECT seq, line FROM {} ORDER BY seq DESC LIMIT 1",
                table.checkpoints()
            ),
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()
        .map_err(db)?;
    let start = signed::start_after(table, signer, newest)?;
    if !signed::due(table, head, start, min_new)? {
        return Ok(None);
    }
    let from = i64::try_from(start.next_seq)
        .map_err(|_| AuditError::Database("sequence number out of range".into()))?;
    let mut stmt = conn
        .prepare_cached(&format!(
            "SELECT seq, line, time_ns, kind, action, action_kind, subject, request_id \
             FROM {} WHERE seq >= ?1 ORDER BY seq",
            table.events()
        ))
        .map_err(db)?;
    let mut rows = stmt.query([from]).map_err(db)?;
    let mut verifier = Verifier::new(start);
    let mut position = 0usize;
    while let Some(row) = rows.next().map_err(db)? {
        position += 1;
        let seq: i64 = row.get(0).map_err(db)?;
        let line: String = row.get(1).map_err(db)?;
        let stored = Columns {
            time_ns: row.get(2).map_err(db)?,
            kind: row.get(3).map_err(db)?,
            action: row.get(4).map_err(db)?,
            action_kind: row.get(5).map_err(db)?,
            subject: row.get(6).map_err(db)?,
            request_id: row.get(7).map_err(db)?,
        };
        check_row(table, &mut verifier, position, seq, &line, &stored)
            .map_err(signed::refuse_row)?;
    }
    signed::check_extension(table, verifier.report(), head)?;
    let (line, cp) = signed::sign(table, signer, head);
    let seq = i64::try_from(cp.seq)
        .map_err(|_| AuditError::Database("sequence number out of range".into()))?;
    conn.prepare_cached(&format!(
        "INSERT INTO {} (seq, line) VALUES (?1, ?2)",
        table.checkpoints()
    ))
    .and_then(|mut st| st.execute(params![seq, line]))
    .map_err(db)?;
    Ok(Some((line, cp)))
}

/// Writes a signed checkpoint of the committed head now, in its own `BEGIN IMMEDIATE`
/// transaction, and then appends it to `options.file` if set. `None` when every event is
/// already covered. Use it after appending through [`TxAppend`] in your own transactions
/// (the count trigger of a [`SqliteSink`] covers those too, at its next append).
///
/// Refuses (fails closed, signs nothing) when the newest checkpoint row does not verify,
/// or the rows after it do not extend it up to the head row.
pub fn checkpoint(
    conn: &mut Connection,
    table: &AuditTable,
    options: &SqlCheckpointOptions,
) -> Result<Option<Checkpoint>, AuditError> {
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(db)?;
    let written = checkpoint_in_tx(&tx, table, &options.signer, 1)?;
    tx.commit().map_err(db)?;
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

/// A standalone sink over its own SQLite connection: each append is its own
/// `BEGIN IMMEDIATE … COMMIT`, durable when it returns (WAL, `synchronous = FULL`).
///
/// ```
/// use guardrail_audit::sql::{AuditTable, sqlite::SqliteSink};
/// use guardrail_audit::{AuditSink, EventKind, Record};
/// let dir = tempfile::tempdir().unwrap();
/// let sink = SqliteSink::open(dir.path().join("audit.db"), AuditTable::default()).unwrap();
/// sink.append(Record::new(EventKind::Decision)).unwrap();
/// assert_eq!(sink.verify().unwrap().events, 1);
/// ```
#[derive(Debug)]
pub struct SqliteSink {
    name: Arc<str>,
    table: AuditTable,
    conn: Mutex<Connection>,
    checkpoints: Option<SqlCheckpointOptions>,
}

impl SqliteSink {
    /// Opens (or creates) the database at `path` and the audit tables in it.
    pub fn open(path: impl AsRef<Path>, table: AuditTable) -> Result<SqliteSink, AuditError> {
        let conn = Connection::open(path).map_err(db)?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(db)?;
        conn.pragma_update(None, "synchronous", "FULL")
            .map_err(db)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))
            .map_err(db)?;
        SqliteSink::from_connection(conn, table)
    }

    /// Uses an open connection (its pragmas as they are) and creates the audit tables in it.
    pub fn from_connection(conn: Connection, table: AuditTable) -> Result<SqliteSink, AuditError> {
        ensure_schema(&conn, &table)?;
        Ok(SqliteSink {
            name: Arc::from("sqlite"),
            table,
            conn: Mutex::new(conn),
            checkpoints: None,
        })
    }

    /// Writes signed checkpoints: inside an append's transaction once
    /// `options.every_events` events are uncovered, and on [`SqliteSink::checkpoint`].
    pub fn with_checkpoints(mut self, options: SqlCheckpointOptions) -> SqliteSink {
        self.checkpoints = Some(options);
        self
    }

    /// Writes a checkpoint of the committed head now (see [`checkpoint`]); `None` when every
    /// event is covered already. An error when the sink has no checkpoint options.
    pub fn checkpoint(&self) -> Result<Option<Checkpoint>, AuditError> {
        let options = self.checkpoints.as_ref().ok_or_else(|| {
            AuditError::Database(format!(
                "audit table `{}`: the sink has no checkpoint options",
                self.table.events()
            ))
        })?;
        checkpoint(&mut self.lock(), &self.table, options)
    }

    /// Renames the sink (default `sqlite`), as named in `[audit] required`.
    pub fn named(mut self, name: &str) -> SqliteSink {
        self.name = Arc::from(name);
        self
    }

    fn lock(&self) -> MutexGuard<'_, Connection> {
        // A panic inside an append drops its transaction, which rolls back: the connection
        // is consistent even if the lock is poisoned.
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Verifies the sink's table (see [`verify_sqlite`]).
    pub fn verify(&self) -> Result<VerifyReport, TableVerifyError> {
        verify_sqlite(&self.lock(), &self.table)
    }

    /// Runs `f` with the sink's connection (queries, inspection), holding the append lock.
    pub fn with_connection<R>(&self, f: impl FnOnce(&mut Connection) -> R) -> R {
        f(&mut self.lock())
    }

    /// The tables this sink writes.
    pub fn table(&self) -> &AuditTable {
        &self.table
    }
}

impl AuditSink for SqliteSink {
    fn name(&self) -> &str {
        &self.name
    }

    fn append(&self, record: Record) -> Result<Receipt, AuditError> {
        let mut conn = self.lock();
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(db)?;
        let receipt = append(&tx, &self.table, record)?;
        // The checkpoint commits with the event that made it due, or neither does.
        let written = match &self.checkpoints {
            Some(o) if o.every_events > 0 => {
                checkpoint_in_tx(&tx, &self.table, &o.signer, o.every_events)?
            }
            _ => None,
        };
        tx.commit().map_err(db)?;
        if let Some(o) = &self.checkpoints {
            finish_checkpoint(&self.table, o, written)?;
        }
        Ok(receipt)
    }
}
