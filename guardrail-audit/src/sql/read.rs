//! Reading an audit table back as typed events, verifying every row on the way: the SQL
//! counterpart of [`crate::FileTrail::events`], with the same filters.
//!
//! A reader first reads the head row (where the chain ends now), then the rows below it in
//! `seq` order, a page at a time. Every row is checked before its event is yielded, including
//! the rows a filter skips: its hash and its link to the row before ([`crate::Verifier`]), its
//! `seq` column, and its indexed copies (`time_ns`, `kind`, `action`, `action_kind`,
//! `subject`, `request_id`) against its line, so a query by request or patient cannot be
//! fooled by an edited column. After the last row the chain must end exactly at the head row
//! read first (a deleted tail, or an edited head row, is an error). The first problem ends the
//! stream with a [`TableVerifyError`] naming the table and the row position or seq; no event
//! past it is ever yielded.
//!
//! Rows appended while the reader runs are beyond the head it read first and are not
//! yielded: a read shows the table as of its start. Each page is its own statement, so a
//! long read holds no transaction open; a row changed between pages breaks the chain there
//! and is reported, not yielded.
//!
//! What a read cannot tell on its own (as for files): a history rewritten with a recomputed
//! chain and a moved head row. Signed checkpoints prove those
//! (`sqlite::verify_sqlite_signed`, `postgres::verify_postgres_signed`).
//!
//! Three front ends share one cursor: [`SqliteEvents`] (rusqlite, an [`Iterator`]),
//! [`SqlxSqliteEvents`] and [`PgEvents`] (sqlx, an `async fn next`).

use std::collections::VecDeque;

use super::{AuditTable, Columns, TableVerifyError, check_row};
use crate::chain::{Chain, Digest};
use crate::event::{AuditEvent, Timestamp};
use crate::file::Filter;
use crate::verify::Verifier;

/// Rows fetched per statement.
const PAGE: i64 = 512;

/// One stored row, as read.
struct RawRow {
    seq: i64,
    line: String,
    stored: Columns,
}

/// What the cursor needs next.
enum Want {
    /// The head row.
    Head,
    /// Up to [`PAGE`] rows with `after < seq < below`, in `seq` order.
    Page { after: i64, below: i64 },
    /// Nothing: the stream is over.
    Nothing,
}

/// The driver-independent part of a table reader: verification, filtering, the end check.
struct Cursor {
    table: AuditTable,
    verifier: Verifier,
    position: usize,
    after: i64,
    /// The head row read at the start: where the chain must end.
    end: Option<Chain>,
    filter: Filter,
    ready: VecDeque<AuditEvent>,
    /// An error to yield once the events before it are yielded.
    failed: Option<TableVerifyError>,
    done: bool,
}

impl Cursor {
    fn new(table: &AuditTable) -> Cursor {
        Cursor {
            table: table.clone(),
            verifier: Verifier::new(Chain::new()),
            position: 0,
            after: -1,
            end: None,
            filter: Filter::default(),
            ready: VecDeque::new(),
            failed: None,
            done: false,
        }
    }

    fn database(&self, detail: String) -> TableVerifyError {
        TableVerifyError::Database {
            table: self.table.events().to_owned(),
            detail,
        }
    }

    fn want(&self) -> Want {
        if self.done || self.failed.is_some() {
            return Want::Nothing;
        }
        match self.end {
            None => Want::Head,
            Some(end) => Want::Page {
                after: self.after,
                below: i64::try_from(end.next_seq).unwrap_or(i64::MAX),
            },
        }
    }

    /// The next thing to yield, if the cursor has one without reading more.
    fn take(&mut self) -> Option<Result<AuditEvent, TableVerifyError>> {
        if let Some(e) = self.ready.pop_front() {
            return Some(Ok(e));
        }
        if let Some(e) = self.failed.take() {
            self.done = true;
            return Some(Err(e));
        }
        None
    }

    fn fail(&mut self, e: TableVerifyError) {
        self.failed = Some(e);
    }

    /// The head row (`None`: there is none) or the error reading it.
    fn put_head(&mut self, head: Result<Option<(i64, String)>, String>) {
        let missing = || TableVerifyError::HeadMissing {
            table: self.table.events().to_owned(),
        };
        let chain = match head {
            Err(detail) => Err(self.database(detail)),
            Ok(None) => Err(missing()),
            Ok(Some((next_seq, head))) => {
                match (u64::try_from(next_seq), Digest::from_hex(&head)) {
                    (Ok(next_seq), Some(head)) => Ok(Chain { next_seq, head }),
                    _ => Err(missing()),
                }
            }
        };
        match chain {
            Ok(chain) => {
                self.end = Some(chain);
                if chain.next_seq == 0 {
                    self.finish();
                }
            }
            Err(e) => self.fail(e),
        }
    }

    /// A page of rows (or the error reading it).
    fn put_page(&mut self, rows: Result<Vec<RawRow>, String>) {
        let rows = match rows {
            Ok(rows) => rows,
            Err(detail) => {
                let e = self.database(detail);
                return self.fail(e);
            }
        };
        let short = i64::try_from(rows.len()).unwrap_or(i64::MAX) < PAGE;
        for row in rows {
            self.position += 1;
            match check_row(
                &self.table,
                &mut self.verifier,
                self.position,
                row.seq,
                &row.line,
                &row.stored,
            ) {
                Ok(event) => {
                    self.after = row.seq;
                    if self.filter.accepts(&event) {
                        self.ready.push_back(event);
                    }
                }
                Err(e) => return self.fail(e),
            }
        }
        let reached = self
            .end
            .is_some_and(|end| self.verifier.report().head.next_seq >= end.next_seq);
        if short || reached {
            self.finish();
        }
    }

    /// The rows are read: the chain must end exactly at the head row.
    fn finish(&mut self) {
        let verified = self.verifier.report().head;
        match self.end {
            Some(end) if end == verified => self.done = true,
            Some(end) => self.fail(TableVerifyError::Head {
                table: self.table.events().to_owned(),
                head_next_seq: end.next_seq,
                events_next_seq: verified.next_seq,
            }),
            None => self.done = true,
        }
    }
}

fn head_sql(table: &AuditTable) -> String {
    format!("SELECT next_seq, head FROM {} WHERE id = 0", table.head())
}

/// `only`: a further condition on the rows, e.g. the PostgreSQL table's `default` chain
/// (the chain its head row describes; other writers' chains have heads of their own).
fn page_sql(table: &AuditTable, placeholders: [&str; 3], only: &str) -> String {
    let [after, below, limit] = placeholders;
    format!(
        "SELECT seq, line, time_ns, kind, action, action_kind, subject, request_id FROM {} \
         WHERE seq > {after} AND seq < {below}{only} ORDER BY seq LIMIT {limit}",
        table.events()
    )
}

/// The filter methods every table reader has (the same as [`crate::TrailEvents`]'s).
macro_rules! filters {
    ($ty:ident) => {
        impl $ty<'_> {
            /// Yields only the events with this request id (its decision and outcome).
            pub fn request_id(mut self, id: &str) -> Self {
                self.cursor.filter.request_id = Some(id.to_owned());
                self
            }

            /// Yields only the events whose `subject`, or one of whose `subjects`, is this
            /// keyed token (never the raw identifier, which the table does not hold).
            pub fn subject(mut self, token: &str) -> Self {
                self.cursor.filter.subject = Some(token.to_owned());
                self
            }

            /// Yields only the events at or after `time`.
            pub fn since(mut self, time: Timestamp) -> Self {
                self.cursor.filter.since = Some(time);
                self
            }

            /// Yields only the events before `time`.
            pub fn until(mut self, time: Timestamp) -> Self {
                self.cursor.filter.until = Some(time);
                self
            }

            /// The chain after the last verified row: how far the stream has proven the
            /// table.
            pub fn verified(&self) -> Chain {
                self.cursor.verifier.report().head
            }
        }
    };
}

/// The events of a SQLite audit table read through rusqlite (feature `sqlite`), in `seq`
/// order, each verified before it is yielded: an iterator of `Result<AuditEvent,
/// TableVerifyError>`, fused after the first error. Every row (hash, link, `seq` column,
/// indexed copies against the line) is checked before its event is yielded, the skipped
/// ones too, and at the end the chain must reach the head row read first.
///
/// ```
/// use guardrail_audit::sql::{AuditTable, SqliteEvents, TxAppend, sqlite};
/// use guardrail_audit::{EventKind, Record};
///
/// let mut conn = sqlite::rusqlite::Connection::open_in_memory().unwrap();
/// let table = AuditTable::default();
/// sqlite::ensure_schema(&conn, &table).unwrap();
/// let mut tx = conn.transaction().unwrap();
/// for id in ["req-1", "req-2", "req-1"] {
///     let mut r = Record::new(EventKind::Outcome);
///     r.request_id = Some(id.into());
///     tx.append_in_tx(r).unwrap();
/// }
/// tx.commit().unwrap();
///
/// let seqs: Vec<u64> = SqliteEvents::new(&conn, &table)
///     .request_id("req-1")
///     .map(|e| e.map(|e| e.seq))
///     .collect::<Result<_, _>>()
///     .unwrap();
/// assert_eq!(seqs, [0, 2]);
/// ```
#[cfg(feature = "sqlite")]
pub struct SqliteEvents<'c> {
    conn: &'c rusqlite::Connection,
    cursor: Cursor,
}

#[cfg(feature = "sqlite")]
filters!(SqliteEvents);

#[cfg(feature = "sqlite")]
impl std::fmt::Debug for SqliteEvents<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteEvents")
            .field("table", &self.cursor.table.events())
            .field("verified", &self.cursor.verifier.report().events)
            .field("filter", &self.cursor.filter)
            .finish_non_exhaustive()
    }
}

#[cfg(feature = "sqlite")]
impl<'c> SqliteEvents<'c> {
    /// Reads `table` through `conn` (which may be read-only).
    pub fn new(conn: &'c rusqlite::Connection, table: &AuditTable) -> SqliteEvents<'c> {
        SqliteEvents {
            conn,
            cursor: Cursor::new(table),
        }
    }

    fn head(&self) -> Result<Option<(i64, String)>, String> {
        use rusqlite::OptionalExtension as _;
        self.conn
            .query_row(&head_sql(&self.cursor.table), [], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .optional()
            .map_err(|e| e.to_string())
    }

    fn page(&self, after: i64, below: i64) -> Result<Vec<RawRow>, rusqlite::Error> {
        let mut stmt =
            self.conn
                .prepare_cached(&page_sql(&self.cursor.table, ["?1", "?2", "?3"], ""))?;
        let rows = stmt.query_map([after, below, PAGE], |r| {
            Ok(RawRow {
                seq: r.get(0)?,
                line: r.get(1)?,
                stored: Columns {
                    time_ns: r.get(2)?,
                    kind: r.get(3)?,
                    action: r.get(4)?,
                    action_kind: r.get(5)?,
                    subject: r.get(6)?,
                    request_id: r.get(7)?,
                },
            })
        })?;
        rows.collect()
    }
}

#[cfg(feature = "sqlite")]
impl Iterator for SqliteEvents<'_> {
    type Item = Result<AuditEvent, TableVerifyError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(item) = self.cursor.take() {
                return Some(item);
            }
            match self.cursor.want() {
                Want::Nothing => return None,
                Want::Head => {
                    let head = self.head();
                    self.cursor.put_head(head);
                }
                Want::Page { after, below } => {
                    let rows = self.page(after, below).map_err(|e| e.to_string());
                    self.cursor.put_page(rows);
                }
            }
        }
    }
}

#[cfg(feature = "sqlite")]
impl std::iter::FusedIterator for SqliteEvents<'_> {}

/// Reads a sqlx row of the page query.
#[cfg(any(feature = "postgres", feature = "sqlx-sqlite"))]
fn sqlx_row<R>(r: &R) -> Result<RawRow, sqlx::Error>
where
    R: sqlx::Row,
    usize: sqlx::ColumnIndex<R>,
    for<'r> i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    Ok(RawRow {
        seq: r.try_get(0)?,
        line: r.try_get(1)?,
        stored: Columns {
            time_ns: r.try_get(2)?,
            kind: r.try_get(3)?,
            action: r.try_get(4)?,
            action_kind: r.try_get(5)?,
            subject: r.try_get(6)?,
            request_id: r.try_get(7)?,
        },
    })
}

/// Defines an async table reader over a sqlx pool.
macro_rules! sqlx_reader {
    ($(#[$doc:meta])* $ty:ident, $pool:ty, [$a:literal, $b:literal, $c:literal], $only:literal) => {
        $(#[$doc])*
        pub struct $ty<'p> {
            pool: &'p $pool,
            cursor: Cursor,
        }

        filters!($ty);

        impl std::fmt::Debug for $ty<'_> {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.debug_struct(stringify!($ty))
                    .field("table", &self.cursor.table.events())
                    .field("verified", &self.cursor.verifier.report().events)
                    .field("filter", &self.cursor.filter)
                    .finish_non_exhaustive()
            }
        }

        impl<'p> $ty<'p> {
            /// Reads `table` through `pool`.
            pub fn new(pool: &'p $pool, table: &AuditTable) -> $ty<'p> {
                $ty {
                    pool,
                    cursor: Cursor::new(table),
                }
            }

            /// The next verified event that passes the filters; `None` at the end of the
            /// table (as of the start of the read) or after an error.
            pub async fn next(&mut self) -> Option<Result<AuditEvent, TableVerifyError>> {
                use sqlx::Row as _;
                loop {
                    if let Some(item) = self.cursor.take() {
                        return Some(item);
                    }
                    match self.cursor.want() {
                        Want::Nothing => return None,
                        Want::Head => {
                            let head = sqlx::query(&head_sql(&self.cursor.table))
                                .fetch_optional(self.pool)
                                .await
                                .and_then(|row| {
                                    row.map(|r| Ok((r.try_get(0)?, r.try_get(1)?))).transpose()
                                })
                                .map_err(|e| e.to_string());
                            self.cursor.put_head(head);
                        }
                        Want::Page { after, below } => {
                            let rows = sqlx::query(&page_sql(&self.cursor.table, [$a, $b, $c], $only))
                                .bind(after)
                                .bind(below)
                                .bind(PAGE)
                                .fetch_all(self.pool)
                                .await
                                .and_then(|rows| rows.iter().map(sqlx_row).collect())
                                .map_err(|e| e.to_string());
                            self.cursor.put_page(rows);
                        }
                    }
                }
            }

            /// Every remaining event that passes the filters, or the first error.
            pub async fn collect(mut self) -> Result<Vec<AuditEvent>, TableVerifyError> {
                let mut out = Vec::new();
                while let Some(e) = self.next().await {
                    out.push(e?);
                }
                Ok(out)
            }
        }
    };
}

#[cfg(feature = "postgres")]
sqlx_reader!(
    /// The events of a PostgreSQL audit table (feature `postgres`, sqlx), in `seq` order,
    /// each verified before it is yielded; call [`PgEvents::next`] until `None`. The checks
    /// are those of `SqliteEvents`.
    ///
    /// ```no_run
    /// # async fn f(pool: &guardrail_audit::sql::postgres::sqlx::PgPool) {
    /// use guardrail_audit::sql::{AuditTable, PgEvents};
    /// let mut events = PgEvents::new(pool, &AuditTable::default()).request_id("req-1");
    /// while let Some(event) = events.next().await {
    ///     let event = event.expect("the table verifies");
    ///     println!("{} {:?}", event.seq, event.record.outcome);
    /// }
    /// # }
    /// ```
    PgEvents,
    sqlx::PgPool,
    ["$1", "$2", "$3"],
    " AND chain = 'default'"
);

#[cfg(feature = "sqlx-sqlite")]
sqlx_reader!(
    /// The events of a SQLite audit table read through sqlx (feature `sqlx-sqlite`), in
    /// `seq` order, each verified before it is yielded; call [`SqlxSqliteEvents::next`] until
    /// `None`. The checks are those of `SqliteEvents`.
    SqlxSqliteEvents,
    sqlx::SqlitePool,
    ["?1", "?2", "?3"],
    ""
);
