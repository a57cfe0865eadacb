//! SQL audit sinks: the same hash chain as the file sink, stored in a database table, and
//! appended inside the caller's transaction so the record of a change commits or rolls back
//! with the change.
//!
//! # Schema
//!
//! For a table name `t` (default [`AuditTable::DEFAULT`] = `guardrail_audit`):
//!
//! * `t`: one row per event. `seq` (primary key), `prev`, `hash` (64 hex characters each),
//!   `line` (the exact event line, the bytes the hash covers), and copies of a few fields
//!   for queries: `time_ns` (nanoseconds since the Unix epoch), `kind`, `action`,
//!   `action_kind`, `subject` (the keyed token), `request_id`. On SQLite `(subject,
//!   time_ns)`, `time_ns`, `action` and `request_id` are indexed; on PostgreSQL those
//!   indexes are opt-in (`postgres::ensure_query_indexes`), since each costs every append
//!   and nothing in this crate reads through them (PostgreSQL's key is `(chain, seq)`, see
//!   `postgres`).
//! * `t_head`: exactly one row (`id = 0`) holding the chain head: `next_seq` and `head`
//!   (the hash of the last event, or 64 zeros).
//! * `t_checkpoint`: signed checkpoints, one row per checkpoint: `seq` (primary key, the
//!   last event covered) and `line` (the signed checkpoint line, the file trail's format,
//!   with `log` = `t`).
//!
//! An append reads the head row, links the record, inserts the event and advances the head,
//! all in the caller's transaction. On PostgreSQL the head row is read with
//! `SELECT … FOR UPDATE`, so concurrent transactions that append serialize on it (the second
//! waits until the first commits or rolls back, then reads the head the first left); on
//! SQLite a write transaction is already exclusive. A rolled-back transaction therefore
//! leaves neither an event nor a gap in the sequence. Under PostgreSQL `REPEATABLE READ` or
//! `SERIALIZABLE`, a concurrent append makes the later transaction fail with a serialization
//! error instead of waiting: the call fails closed and the caller retries the transaction.
//!
//! Verification (`sqlite::verify_sqlite`, `postgres::verify_postgres`) reads the rows in
//! `seq` order through [`crate::Verifier`], checks that the indexed copies agree with the
//! line (so a query by subject cannot be fooled by an edited column) and that the head row
//! points at the last event (so a deleted tail is detected). The typed readers
//! `SqliteEvents` (rusqlite), `SqlxSqliteEvents` and `PgEvents` (sqlx) make the same checks
//! row by row as they yield events, with the file reader's request/subject/time filters.
//!
//! # Signed checkpoints
//!
//! That check alone cannot see a rewrite by someone with write access: delete rows, relink
//! the rest with [`crate::Chain::link`], rewrite the head row, and the chain verifies; cut
//! the tail and move the head back, and it verifies too. The SQL sinks therefore write the
//! file trail's signed checkpoints ([`SqlCheckpointOptions`]; the key stays outside the
//! database): `sqlite::SqliteSink`/`postgres::PgSink` inside an append's transaction every
//! `every_events` uncovered events (events appended through [`TxAppend`]/[`AsyncTxAppend`]
//! count too), and `sqlite::checkpoint`/`postgres::checkpoint` on demand, each in its own
//! transaction. A checkpoint is stored as a row of `t_checkpoint` and, with
//! [`SqlCheckpointOptions::file`], also appended to an external file once the row is
//! committed. The checkpointer signs only a head it verified: the newest checkpoint's
//! signature, and the rows after it linking up to the head row; otherwise it fails closed.
//!
//! `sqlite::verify_sqlite_signed` / `postgres::verify_postgres_signed` check each
//! checkpoint's signature, seq column and table, and the chain's hash at its seq:
//!
//! * a relinked or otherwise rewritten chain: [`TableVerifyError::Rewritten`], naming the
//!   first checkpoint it contradicts and the first event after the last matching one (the
//!   rewrite began in between; with `every_events = 1` both are the first changed seq);
//! * a cut tail behind a checkpoint (head moved back or a replayed older head row):
//!   [`TableVerifyError::Truncated`], naming the first missing seq;
//! * an edited or forged checkpoint row: [`TableVerifyError::Checkpoint`] (bad signature,
//!   other key) or [`TableVerifyError::CheckpointRow`] (a genuine line in another row);
//! * with the external file: deleted checkpoint rows, [`TableVerifyError::CheckpointMissing`].
//!
//! What stays undetectable: events after the newest checkpoint can be cut or rewritten
//! ([`TableReport::unchecked_events`] says how many; the interval bounds it); and without the
//! external file, deleting the newest checkpoint rows together with the events they cover
//! leaves an exact earlier state that verifies. Whoever holds the checkpoint key can sign a
//! rewrite.
//!
//! # Feature flags
//!
//! * `sqlite`: [`TxAppend`] for `rusqlite::Transaction`/`Savepoint`, `sqlite::SqliteSink`.
//! * `postgres`: [`AsyncTxAppend`] for `sqlx::Transaction<Postgres>`/`PgConnection`,
//!   `postgres::PgSink`.
//! * `sqlx-sqlite`: [`AsyncTxAppend`] for `sqlx::Transaction<Sqlite>`/`SqliteConnection`,
//!   `sqlx_sqlite::SqlitePoolSink`, over the same tables as `sqlite` (which it enables: the
//!   two share one schema definition, and each verifies what the other wrote).
//!
//! The traits themselves need no driver: implement them for another database the same way
//! (read and lock the head row, link, insert, advance the head, all in the caller's
//! transaction).

use std::future::Future;
use std::pin::Pin;

use crate::error::AuditError;
use crate::event::Record;
#[cfg(any(feature = "sqlite", feature = "postgres"))]
use crate::event::{AuditEvent, EventKind};
use crate::sink::Receipt;
use crate::verify::VerifyError;

#[cfg(any(feature = "sqlite", feature = "postgres"))]
pub(crate) use signed::SignedCheck;
pub use signed::{SqlCheckpointOptions, TableReport};

#[cfg(feature = "postgres")]
pub use read::PgEvents;
#[cfg(feature = "sqlite")]
pub use read::SqliteEvents;
#[cfg(feature = "sqlx-sqlite")]
pub use read::SqlxSqliteEvents;

#[cfg(feature = "postgres")]
#[cfg_attr(docsrs, doc(cfg(feature = "postgres")))]
pub mod postgres;
#[cfg(any(feature = "sqlite", feature = "postgres"))]
mod read;
mod signed;
#[cfg(feature = "sqlite")]
#[cfg_attr(docsrs, doc(cfg(feature = "sqlite")))]
pub mod sqlite;
#[cfg(feature = "sqlx-sqlite")]
#[cfg_attr(docsrs, doc(cfg(feature = "sqlx-sqlite")))]
pub mod sqlx_sqlite;

/// Appends an event inside a database transaction the caller owns (synchronous drivers).
///
/// Implemented for `rusqlite::Transaction` (feature `sqlite`, table [`AuditTable::DEFAULT`])
/// and for [`InTable`] over it (any table). `#[phi_action(tx = <param>)]` appends the outcome
/// event of an allowed call through this trait.
pub trait TxAppend {
    /// Links `record` to the chain stored in the transaction's database and inserts it.
    /// The event exists only once the caller commits.
    fn append_in_tx(&mut self, record: Record) -> Result<Receipt, AuditError>;

    /// Checks, before the body of a guarded call runs, what would make the outcome's append
    /// fail for sure: the audit tables are missing (`ensure_schema` was never called) or the
    /// connection is not inside a transaction. `#[phi_action(tx = ..)]` calls it once the
    /// decision allowed the call; an error fails the call closed (`AuditUnavailable`, detail
    /// `outcome`), the body does not run. The default checks nothing.
    fn check_ready(&mut self) -> Result<(), AuditError> {
        Ok(())
    }
}

/// The future [`AsyncTxAppend::append_in_tx`] returns.
pub type AppendFuture<'a> = Pin<Box<dyn Future<Output = Result<Receipt, AuditError>> + Send + 'a>>;

/// Appends an event inside a database transaction the caller owns (asynchronous drivers).
///
/// Implemented for `sqlx::Transaction<'_, sqlx::Postgres>` and `sqlx::PgConnection`
/// (feature `postgres`, table [`AuditTable::DEFAULT`]) and for [`InTable`] over them.
/// The future is boxed so the trait stays usable as `dyn AsyncTxAppend`.
pub trait AsyncTxAppend: Send {
    /// Links `record` to the chain stored in the transaction's database and inserts it.
    fn append_in_tx(&mut self, record: Record) -> AppendFuture<'_>;

    /// [`TxAppend::check_ready`] for asynchronous drivers: called before the body (and
    /// before [`AsyncTxAppend::swap_call_settings`]); an error fails the call closed. The
    /// default checks nothing; the sqlx SQLite and PostgreSQL impls prepare the append's statements, so a
    /// missing audit table is named before the body runs.
    fn check_ready(&mut self) -> ReadyFuture<'_> {
        Box::pin(std::future::ready(Ok(())))
    }

    /// Publishes `settings` to the database session for the rest of the transaction and
    /// returns the settings they replace. `#[phi_action(tx = ..)]` calls it after the
    /// decision allowed the call and before the body runs, and again with the returned
    /// value after the body, so database policies can see which guarded call is running
    /// (an error fails the call closed: the body does not run).
    ///
    /// The default publishes nothing and returns [`CallSettings::default`]. The sqlx
    /// PostgreSQL impls set `guardrail.action`, `guardrail.principal` and
    /// `guardrail.categories` with `set_config(.., true)` (transaction-local).
    fn swap_call_settings(&mut self, settings: CallSettings) -> SettingsFuture<'_> {
        let _ = settings;
        Box::pin(std::future::ready(Ok(CallSettings::default())))
    }
}

/// The future [`AsyncTxAppend::check_ready`] returns.
pub type ReadyFuture<'a> = Pin<Box<dyn Future<Output = Result<(), AuditError>> + Send + 'a>>;

/// What a guarded call publishes to the database session it runs in
/// ([`AsyncTxAppend::swap_call_settings`]). Empty strings mean "no guarded call".
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CallSettings {
    /// The action's name.
    pub action: String,
    /// The principal's id.
    pub principal: String,
    /// The PHI categories the action declared, comma-separated (`diagnosis,demographics`).
    pub categories: String,
}

/// The future [`AsyncTxAppend::swap_call_settings`] returns: the settings replaced.
pub type SettingsFuture<'a> =
    Pin<Box<dyn Future<Output = Result<CallSettings, AuditError>> + Send + 'a>>;

impl<T: TxAppend + ?Sized> TxAppend for &mut T {
    fn append_in_tx(&mut self, record: Record) -> Result<Receipt, AuditError> {
        (**self).append_in_tx(record)
    }

    fn check_ready(&mut self) -> Result<(), AuditError> {
        (**self).check_ready()
    }
}

impl<T: AsyncTxAppend + ?Sized> AsyncTxAppend for &mut T {
    fn append_in_tx(&mut self, record: Record) -> AppendFuture<'_> {
        (**self).append_in_tx(record)
    }

    fn check_ready(&mut self) -> ReadyFuture<'_> {
        (**self).check_ready()
    }

    fn swap_call_settings(&mut self, settings: CallSettings) -> SettingsFuture<'_> {
        (**self).swap_call_settings(settings)
    }
}

/// The names of an audit table and its head table, validated once.
///
/// ```
/// use guardrail_audit::sql::AuditTable;
/// let t = AuditTable::new("clinic_audit").unwrap();
/// assert_eq!(t.events(), "clinic_audit");
/// assert_eq!(t.head(), "clinic_audit_head");
/// assert_eq!(t.checkpoints(), "clinic_audit_checkpoint");
/// assert!(AuditTable::new("audit; drop table x").is_err());
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditTable {
    events: String,
    head: String,
    checkpoints: String,
}

/// Why a name cannot be an audit table name.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "audit table name `{0}` is not a plain identifier (ASCII letters, digits and `_`, \
     starting with a letter or `_`, at most 50 characters)"
)]
pub struct BadTableName(pub String);

impl AuditTable {
    /// The default table name.
    pub const DEFAULT: &'static str = "guardrail_audit";

    /// Names the tables `name`, `name_head` and `name_checkpoint`. Only plain identifiers are accepted: they are
    /// spliced into SQL text (identifiers cannot be bound as parameters).
    pub fn new(name: &str) -> Result<AuditTable, BadTableName> {
        let ok = !name.is_empty()
            && name.len() <= 50
            && name
                .bytes()
                .next()
                .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
            && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
        if !ok {
            return Err(BadTableName(name.to_owned()));
        }
        Ok(AuditTable {
            events: name.to_owned(),
            head: format!("{name}_head"),
            checkpoints: format!("{name}_checkpoint"),
        })
    }

    /// The table of events.
    pub fn events(&self) -> &str {
        &self.events
    }

    /// The one-row table of the chain head.
    pub fn head(&self) -> &str {
        &self.head
    }

    /// The table of signed checkpoints (`seq`, `line`).
    pub fn checkpoints(&self) -> &str {
        &self.checkpoints
    }
}

impl Default for AuditTable {
    fn default() -> Self {
        AuditTable {
            events: Self::DEFAULT.to_owned(),
            head: format!("{}_head", Self::DEFAULT),
            checkpoints: format!("{}_checkpoint", Self::DEFAULT),
        }
    }
}

/// A connection or transaction bound to a named audit table: `InTable::new(&table, &mut tx)`
/// appends to `table` instead of [`AuditTable::DEFAULT`].
#[derive(Debug)]
pub struct InTable<'a, C: ?Sized> {
    /// The tables to append to.
    pub table: &'a AuditTable,
    /// The caller's transaction (or connection inside one).
    pub conn: &'a mut C,
}

impl<'a, C: ?Sized> InTable<'a, C> {
    /// Binds `conn` to `table`.
    pub fn new(table: &'a AuditTable, conn: &'a mut C) -> Self {
        InTable { table, conn }
    }
}

/// The SQL dialect a schema statement is written for.
#[cfg(any(feature = "sqlite", feature = "postgres"))]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Dialect {
    /// SQLite (`INTEGER` is 64 bits, `INSERT OR IGNORE`).
    #[cfg(feature = "sqlite")]
    Sqlite,
    /// PostgreSQL (`BIGINT`, `ON CONFLICT DO NOTHING`).
    #[cfg(feature = "postgres")]
    Postgres,
}

/// The one definition of the audit tables (events, indexes, head row), for both databases:
/// only the 64-bit integer type and the insert-if-absent syntax differ by dialect.
#[cfg(any(feature = "sqlite", feature = "postgres"))]
pub(crate) fn schema_ddl(table: &AuditTable, dialect: Dialect) -> String {
    let (int64, insert, on_conflict) = match dialect {
        #[cfg(feature = "sqlite")]
        Dialect::Sqlite => ("INTEGER", "INSERT OR IGNORE INTO", ""),
        #[cfg(feature = "postgres")]
        Dialect::Postgres => ("BIGINT", "INSERT INTO", " ON CONFLICT (id) DO NOTHING"),
    };
    let t = table.events();
    let h = table.head();
    let c = table.checkpoints();
    format!(
        "CREATE TABLE IF NOT EXISTS {t} (
             seq {int64} PRIMARY KEY,
             prev TEXT NOT NULL,
             hash TEXT NOT NULL,
             time_ns {int64} NOT NULL,
             kind TEXT NOT NULL,
             action TEXT,
             action_kind TEXT,
             subject TEXT,
             request_id TEXT,
             line TEXT NOT NULL
         );
         {indexes}
         CREATE TABLE IF NOT EXISTS {h} (
             id INTEGER PRIMARY KEY CHECK (id = 0),
             next_seq {int64} NOT NULL,
             head TEXT NOT NULL
         );
         {insert} {h} (id, next_seq, head) VALUES (0, 0, '{genesis}'){on_conflict};
         CREATE TABLE IF NOT EXISTS {c} (
             seq {int64} PRIMARY KEY,
             line TEXT NOT NULL
         );",
        genesis = crate::GENESIS.to_hex(),
        indexes = match dialect {
            #[cfg(feature = "sqlite")]
            Dialect::Sqlite => query_index_ddl(table),
            // Opt-in on PostgreSQL (`postgres::ensure_query_indexes`): every index costs
            // every append, and the library's own readers scan by `(chain, seq)`.
            #[cfg(feature = "postgres")]
            Dialect::Postgres => String::new(),
        },
    )
}

/// The indexes on the queryable copies (`subject, time_ns`, `time_ns`, `action`,
/// `request_id`), for queries by patient, time, action or request. Verification, the
/// readers and the PostgreSQL prover never use them.
#[cfg(any(feature = "sqlite", feature = "postgres"))]
pub(crate) fn query_index_ddl(table: &AuditTable) -> String {
    let t = table.events();
    format!(
        "CREATE INDEX IF NOT EXISTS {t}_subject_time ON {t} (subject, time_ns);
         CREATE INDEX IF NOT EXISTS {t}_time ON {t} (time_ns);
         CREATE INDEX IF NOT EXISTS {t}_action ON {t} (action);
         CREATE INDEX IF NOT EXISTS {t}_request ON {t} (request_id);"
    )
}

/// The queryable copies of an event's fields, as stored in the indexed columns.
#[cfg(any(feature = "sqlite", feature = "postgres"))]
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Columns {
    pub time_ns: i64,
    pub kind: String,
    pub action: Option<String>,
    pub action_kind: Option<String>,
    pub subject: Option<String>,
    pub request_id: Option<String>,
}

#[cfg(any(feature = "sqlite", feature = "postgres"))]
impl Columns {
    pub(crate) fn of(event: &AuditEvent) -> Columns {
        let r = &event.record;
        Columns {
            time_ns: i64::try_from(r.time.0).unwrap_or(i64::MAX),
            kind: kind_name(r.kind),
            action: r.action.as_deref().map(str::to_owned),
            action_kind: r.action_kind.as_deref().map(str::to_owned),
            subject: r.subject.as_deref().map(str::to_owned),
            request_id: r.request_id.as_deref().map(str::to_owned),
        }
    }

    /// The first column that differs from `expected`.
    pub(crate) fn first_difference(&self, expected: &Columns) -> Option<&'static str> {
        if self.time_ns != expected.time_ns {
            Some("time_ns")
        } else if self.kind != expected.kind {
            Some("kind")
        } else if self.action != expected.action {
            Some("action")
        } else if self.action_kind != expected.action_kind {
            Some("action_kind")
        } else if self.subject != expected.subject {
            Some("subject")
        } else if self.request_id != expected.request_id {
            Some("request_id")
        } else {
            None
        }
    }
}

#[cfg(any(feature = "sqlite", feature = "postgres"))]
fn kind_name(kind: EventKind) -> String {
    serde_json::to_value(kind)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

/// Why an audit table does not verify.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TableVerifyError {
    /// The chain is broken at a row (`line` in the error is the 1-based row position).
    #[error("audit table `{table}`: {source} (line = row position in seq order)")]
    Chain {
        /// The events table.
        table: String,
        /// The first break.
        #[source]
        source: VerifyError,
    },
    /// The `seq` column of a row is not the `seq` in its line.
    #[error(
        "audit table `{table}`: row with seq column {column_seq} holds the event with seq {line_seq}"
    )]
    SeqColumn {
        /// The events table.
        table: String,
        /// The value of the `seq` column.
        column_seq: i64,
        /// The `seq` written in the line.
        line_seq: u64,
    },
    /// An indexed column disagrees with the event line it copies.
    #[error("audit table `{table}`: seq {seq}: column `{column}` does not match the event")]
    Column {
        /// The events table.
        table: String,
        /// The event.
        seq: u64,
        /// The column.
        column: &'static str,
    },
    /// The head row does not point at the last event (tail deleted, or head edited).
    #[error(
        "audit table `{table}`: the head row says next seq {head_next_seq}, but the last event \
         leaves next seq {events_next_seq} (events were removed or the head was edited)"
    )]
    Head {
        /// The events table.
        table: String,
        /// `next_seq` of the head row.
        head_next_seq: u64,
        /// The next seq after the verified events.
        events_next_seq: u64,
    },
    /// The head row is missing or malformed.
    #[error("audit table `{table}`: the head row is missing or malformed")]
    HeadMissing {
        /// The events table.
        table: String,
    },
    /// A checkpoint row does not verify: malformed, signed by another key, or altered or
    /// forged (its signature fails).
    #[error("audit table `{table}`: checkpoint row seq {seq}: {source}")]
    Checkpoint {
        /// The events table.
        table: String,
        /// The `seq` column of the checkpoint row.
        seq: i64,
        /// What is wrong with it.
        #[source]
        source: crate::checkpoint::CheckpointError,
    },
    /// A checkpoint row is validly signed but does not belong where it is (another seq in its
    /// `seq` column, another table's checkpoint).
    #[error("audit table `{table}`: checkpoint row seq {seq}: {reason}")]
    CheckpointRow {
        /// The events table.
        table: String,
        /// The `seq` column of the checkpoint row.
        seq: i64,
        /// What is wrong.
        reason: String,
    },
    /// A line of the external checkpoint file does not verify.
    #[error("audit table `{table}`: checkpoint file `{}` line {line}: {source}", path.display())]
    CheckpointFile {
        /// The events table.
        table: String,
        /// The checkpoint file.
        path: std::path::PathBuf,
        /// 1-based line.
        line: usize,
        /// What is wrong with it (boxed: it is large and rare).
        #[source]
        source: Box<crate::checkpoint::CheckpointError>,
    },
    /// A line of the external checkpoint file is validly signed but out of place (another
    /// table's, or out of order).
    #[error("audit table `{table}`: checkpoint file `{}` line {line}: {reason}", path.display())]
    CheckpointFileMismatch {
        /// The events table.
        table: String,
        /// The checkpoint file.
        path: std::path::PathBuf,
        /// 1-based line.
        line: usize,
        /// What is wrong.
        reason: String,
    },
    /// The external checkpoint file could not be read.
    #[error("audit table `{table}`: checkpoint file `{}` could not be read: {detail}", path.display())]
    CheckpointFileRead {
        /// The events table.
        table: String,
        /// The checkpoint file.
        path: std::path::PathBuf,
        /// What failed.
        detail: String,
    },
    /// The external checkpoint file holds a checkpoint the checkpoint table lacks: rows of
    /// the checkpoint table were deleted (or edited).
    #[error(
        "audit table `{table}`: checkpoint seq {seq} (checkpoint file `{}` line {line}) is missing from the checkpoint table: checkpoint rows were deleted",
        path.display()
    )]
    CheckpointMissing {
        /// The events table.
        table: String,
        /// The first checkpoint (in file order) the table lacks.
        seq: u64,
        /// The checkpoint file.
        path: std::path::PathBuf,
        /// Its 1-based line there.
        line: usize,
    },
    /// The chain verifies but its hash at a signed checkpoint's seq differs from the signed
    /// head: the history was rewritten (rows deleted, edited or inserted and the chain
    /// relinked).
    #[error(
        "audit table `{table}`: seq {seq}: the chain differs from the signed checkpoint of seq {seq}: the history was rewritten at or after seq {since_seq}"
    )]
    Rewritten {
        /// The events table.
        table: String,
        /// The checkpoint's seq: the first event proven to differ from what was signed.
        seq: u64,
        /// The first event after the last matching checkpoint: the rewrite began at or after
        /// it (with a checkpoint after every event, `since_seq == seq`).
        since_seq: u64,
    },
    /// The table holds fewer events than a signed checkpoint covers: its tail was removed.
    #[error(
        "audit table `{table}`: the events end before seq {first_missing_seq}, but a signed checkpoint covers seq {checkpoint_seq}: events were removed from the end"
    )]
    Truncated {
        /// The events table.
        table: String,
        /// The first missing event.
        first_missing_seq: u64,
        /// The first signed checkpoint beyond the end of the events.
        checkpoint_seq: u64,
    },
    /// The database could not be read.
    #[error("audit table `{table}`: database error: {detail}")]
    Database {
        /// The events table.
        table: String,
        /// What failed.
        detail: String,
    },
}

/// Checks one stored row: the verifier link, the seq column, the indexed copies; returns the
/// event the row holds.
#[cfg(any(feature = "sqlite", feature = "postgres"))]
pub(crate) fn check_row(
    table: &AuditTable,
    verifier: &mut crate::verify::Verifier,
    position: usize,
    seq_column: i64,
    line: &str,
    stored: &Columns,
) -> Result<AuditEvent, TableVerifyError> {
    verifier
        .push_line(position, line.as_bytes())
        .map_err(|source| TableVerifyError::Chain {
            table: table.events().to_owned(),
            source,
        })?;
    // The line verified, so it parses as an event with a sound hash.
    let event = AuditEvent::parse(line).map_err(|_| TableVerifyError::Chain {
        table: table.events().to_owned(),
        source: VerifyError {
            line: position,
            seq: None,
            kind: crate::verify::BreakKind::Malformed,
        },
    })?;
    if u64::try_from(seq_column).ok() != Some(event.seq) {
        return Err(TableVerifyError::SeqColumn {
            table: table.events().to_owned(),
            column_seq: seq_column,
            line_seq: event.seq,
        });
    }
    if let Some(column) = stored.first_difference(&Columns::of(&event)) {
        return Err(TableVerifyError::Column {
            table: table.events().to_owned(),
            seq: event.seq,
            column,
        });
    }
    Ok(event)
}
