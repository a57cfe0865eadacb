//! One hash chain per writer in one PostgreSQL events table.
//!
//! Every event row carries its `chain` (a [`ChainId`]; `default` for writers that name
//! none, so tables written before chains existed keep their meaning) and the primary key is
//! `(chain, seq)`.
//!
//! # The default chain
//!
//! The default chain keeps its head row `t_head` (`id = 0`), advanced by every append in
//! the same statement that inserts the event, under the row's lock: writers on it serialize
//! exactly as the single chain always did (the second waits for the first to commit or roll
//! back), and its head row is always the chain's exact end.
//!
//! # Named chains
//!
//! Every other chain has a row of `t_chains` (`chain`, `next_seq`, `head`), created by its
//! first append: it registers the chain (a verifier treats events of an unregistered chain
//! as an error) and holds a *mark* the chain's events must reach (genesis for chains
//! created by this version; tables written before kept their exact end there). Appends do
//! not touch it: an append is one `INSERT` of the event whose predecessor is checked in the
//! same statement, by the primary key:
//!
//! * the row is inserted only if event `seq - 1` of the chain is visible to the transaction
//!   (committed, or written earlier in it) with hash `prev` (seq 0 needs none), so the
//!   committed events of a chain always form a linked prefix: a rolled-back append leaves
//!   no gap, since nothing can link after an event that does not exist;
//! * `(chain, seq)` is unique: of two transactions appending the same seq, the second waits
//!   at the key until the first ends (`ON CONFLICT DO NOTHING`); if the first committed,
//!   nothing is inserted and the append re-reads the chain's last event and links after
//!   it. Two writers never both commit one seq. Under `REPEATABLE READ` or `SERIALIZABLE`
//!   the second fails with a serialization error instead (it cannot see the first's row).
//!
//! A [`ChainWriter`] remembers the head it last wrote, so its next append is that one
//! statement; without a memory (its first append) or when the memory is stale (a
//! rolled-back transaction, another writer on the chain), it registers the chain if needed
//! and reads the chain's last event, then links after it. Writers on different chains never
//! wait on each other, and a stale memory costs round trips, never a broken chain.

use std::sync::{Arc, Mutex};

use sqlx::postgres::{PgArguments, PgTypeInfo};
use sqlx::query::Query;
use sqlx::{Connection as _, PgConnection, Postgres, Row as _, Type};

use super::{
    AppendFuture, AsyncTxAppend, AuditTable, CallSettings, Columns, ReadyFuture, SettingsFuture,
};
use crate::chain::{Chain, Digest};
use crate::error::AuditError;
use crate::event::{AuditEvent, Record};
use crate::merkle::ChainId;
use crate::sink::Receipt;

fn db(e: sqlx::Error) -> AuditError {
    AuditError::Database(e.to_string())
}

/// The table of non-default chain heads.
pub(crate) fn chains_table(table: &AuditTable) -> String {
    format!("{}_chains", table.events())
}

/// The table of signed tree heads.
pub(crate) fn tree_table(table: &AuditTable) -> String {
    format!("{}_tree", table.events())
}

/// The PostgreSQL-only part of the schema, run after the shared definition: the `chain`
/// column and the `(chain, seq)` key (migrating a table keyed by `seq` alone in place: its
/// rows are the default chain's), the chain heads and the tree heads.
pub(crate) fn schema_ddl(table: &AuditTable) -> String {
    let t = table.events();
    let c = chains_table(table);
    let tree = tree_table(table);
    format!(
        "ALTER TABLE {t} ADD COLUMN IF NOT EXISTS chain TEXT NOT NULL DEFAULT '{default}';
         DO $migrate$ BEGIN
             IF NOT EXISTS (SELECT 1 FROM pg_constraint
                            WHERE conrelid = '{t}'::regclass AND conname = '{t}_chain_seq') THEN
                 ALTER TABLE {t} DROP CONSTRAINT IF EXISTS {t}_pkey;
                 ALTER TABLE {t} ADD CONSTRAINT {t}_chain_seq PRIMARY KEY (chain, seq);
             END IF;
         END $migrate$;
         CREATE TABLE IF NOT EXISTS {c} (
             chain TEXT PRIMARY KEY,
             next_seq BIGINT NOT NULL,
             head TEXT NOT NULL
         );
         CREATE TABLE IF NOT EXISTS {tree} (
             size BIGINT PRIMARY KEY,
             line TEXT NOT NULL,
             peaks TEXT NOT NULL
         );",
        default = ChainId::DEFAULT,
    )
}

pub(crate) fn head_of(next_seq: i64, head: &str, table: &AuditTable) -> Result<Chain, AuditError> {
    let next_seq = u64::try_from(next_seq)
        .map_err(|_| AuditError::Database(format!("`{}.next_seq` is negative", table.head())))?;
    let head = Digest::from_hex(head)
        .ok_or_else(|| AuditError::Database(format!("`{}.head` is not a hash", table.head())))?;
    Ok(Chain { next_seq, head })
}

/// Reads the default chain's head row with `FOR UPDATE`: appends and checkpoints of other
/// transactions on the default chain wait until this one ends.
pub(crate) async fn lock_head(
    conn: &mut PgConnection,
    table: &AuditTable,
) -> Result<Chain, AuditError> {
    let row = sqlx::query(&format!(
        "SELECT next_seq, head FROM {} WHERE id = 0 FOR UPDATE",
        table.head()
    ))
    .fetch_optional(&mut *conn)
    .await
    .map_err(db)?
    .ok_or_else(|| {
        AuditError::Database(format!(
            "audit head of chain `{}` in `{}` has no row: call `ensure_schema` first",
            ChainId::DEFAULT,
            table.events()
        ))
    })?;
    let next_seq: i64 = row.try_get(0).map_err(db)?;
    let head: String = row.try_get(1).map_err(db)?;
    head_of(next_seq, &head, table)
}

/// Whether a chain whose events, as read, end at `end` agrees with its head row `row`. The
/// default chain's row is its exact end. A named chain's row is a mark its events must
/// reach (see the module docs): at least `row.next_seq` events, the one at
/// `row.next_seq - 1` hashing to `row.head` (`at_mark`: that event's hash as read, `None`
/// if it was not read).
pub(crate) fn agrees_with_head_row(
    chain: &ChainId,
    end: Chain,
    row: Chain,
    at_mark: Option<Digest>,
) -> bool {
    if chain.is_default() {
        return end == row;
    }
    if row.next_seq == 0 {
        return row.head == crate::GENESIS;
    }
    row.next_seq <= end.next_seq && at_mark == Some(row.head)
}

/// Registers the named chain `chain` (its row of `t_chains`, created by the first append
/// and committed with it) and reads its last event visible to the transaction: the head
/// the next append links after. One statement.
async fn chain_end(
    conn: &mut PgConnection,
    table: &AuditTable,
    chain: &ChainId,
) -> Result<Chain, AuditError> {
    // A data-modifying CTE runs whether or not it is referenced; a concurrent first
    // append's insert of the same row makes this one wait for that transaction.
    let row = sqlx::query(&chain_end_sql(table))
        .bind(chain.as_str())
        .bind(crate::GENESIS.to_hex())
        .fetch_optional(&mut *conn)
        .await
        .map_err(db)?;
    let Some(row) = row else {
        return Ok(Chain::new());
    };
    let seq: i64 = row.try_get(0).map_err(db)?;
    let hash: String = row.try_get(1).map_err(db)?;
    let next_seq = seq
        .checked_add(1)
        .and_then(|n| u64::try_from(n).ok())
        .ok_or_else(|| AuditError::Database(format!("`{}.seq` is out of range", table.events())))?;
    let head = Digest::from_hex(&hash)
        .ok_or_else(|| AuditError::Database(format!("`{}.hash` is not a hash", table.events())))?;
    Ok(Chain { next_seq, head })
}

/// The statement that registers a named chain and reads its last event ([`chain_end`]):
/// `$1` the chain, `$2` the genesis hash.
fn chain_end_sql(table: &AuditTable) -> String {
    format!(
        "WITH registered AS (
             INSERT INTO {c} (chain, next_seq, head) VALUES ($1, 0, $2)
             ON CONFLICT (chain) DO NOTHING
         )
         SELECT seq, hash FROM {events} WHERE chain = $1 ORDER BY seq DESC LIMIT 1",
        c = chains_table(table),
        events = table.events()
    )
}

/// The default chain's append ([`try_insert_default`]): the event's ten columns
/// ([`bind_event`]) and `$11`, the head's next seq after it. One statement advances the
/// head and inserts the event: both or neither, so a future dropped between two statements
/// can never leave an event without its head (or the reverse) in a transaction the caller
/// still commits.
fn insert_default_sql(table: &AuditTable) -> String {
    format!(
        "WITH advanced AS (
             UPDATE {head} SET next_seq = $11, head = $3
             WHERE id = 0 AND next_seq = $1 AND head = $2
             RETURNING 1
         )
         INSERT INTO {events} (chain, seq, prev, hash, time_ns, kind, action, action_kind,
                               subject, request_id, line)
         SELECT '{default}', $1, $2, $3, $4, $5, $6, $7, $8, $9, $10 FROM advanced",
        head = table.head(),
        events = table.events(),
        default = ChainId::DEFAULT,
    )
}

/// A named chain's append ([`try_insert_named`]): the event's ten columns
/// ([`bind_event`]) and `$11`, the chain.
fn insert_named_sql(table: &AuditTable) -> String {
    format!(
        "INSERT INTO {events} (chain, seq, prev, hash, time_ns, kind, action, action_kind,
                               subject, request_id, line)
         SELECT $11, $1, $2, $3, $4, $5, $6, $7, $8, $9, $10
         WHERE ($1 = 0 AND $2 = '{genesis}')
            OR EXISTS (SELECT 1 FROM {events} WHERE chain = $11 AND seq = $1 - 1 AND hash = $2)
         ON CONFLICT (chain, seq) DO NOTHING",
        events = table.events(),
        genesis = crate::GENESIS.to_hex(),
    )
}

/// The parameter types of an append statement, as [`bind_event`] and the append bind
/// them (`$11`: the next seq on the default chain, the chain id on a named one), so a
/// statement prepared by [`check_ready`] is the one sqlx's cache hands the append.
fn append_param_types(chain: &ChainId) -> [PgTypeInfo; 11] {
    let int8 = <i64 as Type<Postgres>>::type_info;
    let text = <String as Type<Postgres>>::type_info;
    [
        int8(),
        text(),
        text(),
        int8(),
        text(),
        text(),
        text(),
        text(),
        text(),
        text(),
        if chain.is_default() { int8() } else { text() },
    ]
}

/// What would make an append to `chain` through `conn` fail for sure, found before the
/// guarded body runs: no transaction, or no audit tables (`ensure_schema` forgotten). The
/// append's statements are prepared, not run (sqlx keeps them in the connection's
/// statement cache, so the append that follows sends no second `Parse`): no row is read
/// or locked. As any failed statement does in PostgreSQL, a failed prepare aborts the
/// caller's transaction; the call fails closed and the transaction can only roll back.
pub(crate) async fn check_ready(
    conn: &mut PgConnection,
    table: &AuditTable,
    chain: &ChainId,
) -> Result<(), AuditError> {
    use sqlx::Executor as _;
    if !conn.is_in_transaction() {
        return Err(AuditError::Database(
            "the connection is not inside a transaction: begin one (`pool.begin()`) before \
             the guarded call"
                .into(),
        ));
    }
    let text = <String as Type<Postgres>>::type_info;
    let statements = if chain.is_default() {
        vec![(
            insert_default_sql(table),
            append_param_types(chain).to_vec(),
        )]
    } else {
        vec![
            (chain_end_sql(table), vec![text(), text()]),
            (insert_named_sql(table), append_param_types(chain).to_vec()),
        ]
    };
    for (sql, types) in &statements {
        (&mut *conn)
            .prepare_with(sql.as_str(), types)
            .await
            .map_err(|e| {
                AuditError::Database(format!(
                    "the audit table `{}` cannot be used ({e}): create it with \
                     `guardrail_audit::sql::postgres::ensure_schema` at startup",
                    table.events()
                ))
            })?;
    }
    Ok(())
}

/// What an insert attempt did: the receipt and the head after the event, or the record
/// back when nothing was inserted (so a retry need not clone it).
type Inserted = Result<(Receipt, Chain), Record>;

/// Links `record` after `chain` and runs the one statement that advances the default
/// chain's head row (only if it still holds `chain`) and inserts the event. The record
/// back when the head row held something else (nothing was written).
async fn try_insert_default(
    conn: &mut PgConnection,
    table: &AuditTable,
    mut chain: Chain,
    record: Record,
) -> Result<Inserted, AuditError> {
    let event = chain.link(record)?;
    let next = to_i64(chain.next_seq)?;
    let insert = insert_default_sql(table);
    let inserted = bind_event(&insert, &event)?
        .bind(next)
        .execute(&mut *conn)
        .await
        .map_err(db)?
        .rows_affected();
    Ok(inserted_or_back(inserted, event, chain))
}

/// Links `record` after `chain` on the named chain `id` and inserts it in one statement,
/// only if its predecessor (seq − 1 with hash `prev`) is visible to the transaction and
/// no committed event holds its seq (see the module docs). The record back when nothing
/// was inserted.
async fn try_insert_named(
    conn: &mut PgConnection,
    table: &AuditTable,
    id: &ChainId,
    mut chain: Chain,
    record: Record,
) -> Result<Inserted, AuditError> {
    let event = chain.link(record)?;
    let insert = insert_named_sql(table);
    let inserted = bind_event(&insert, &event)?
        .bind(id.as_str())
        .execute(&mut *conn)
        .await
        .map_err(db)?
        .rows_affected();
    Ok(inserted_or_back(inserted, event, chain))
}

/// `sql` with `event`'s ten columns bound as `$1`..`$10`: seq, prev, hash, time, kind,
/// action, action kind, subject, request id, line.
fn bind_event<'q>(
    sql: &'q str,
    event: &'q AuditEvent,
) -> Result<Query<'q, Postgres, PgArguments>, AuditError> {
    let cols = Columns::of(event);
    Ok(sqlx::query(sql)
        .bind(to_i64(event.seq)?)
        .bind(event.prev.to_hex())
        .bind(event.hash.to_hex())
        .bind(cols.time_ns)
        .bind(cols.kind)
        .bind(cols.action)
        .bind(cols.action_kind)
        .bind(cols.subject)
        .bind(cols.request_id)
        .bind(event.line()))
}

/// The receipt and the head after `event` when one row was inserted, else the record back.
#[expect(
    clippy::result_large_err,
    reason = "the record goes back by value so that a retry links it again without a clone"
)]
fn inserted_or_back(rows: u64, event: AuditEvent, chain: Chain) -> Inserted {
    if rows == 1 {
        Ok((Receipt { seq: event.seq }, chain))
    } else {
        Err(event.record)
    }
}

fn to_i64(n: u64) -> Result<i64, AuditError> {
    i64::try_from(n).map_err(|_| AuditError::Database("sequence number out of range".into()))
}

/// How many times an append on a named chain links again after the seq it linked to was
/// taken by another writer's committed event, before it fails closed.
const RELINK_ATTEMPTS: usize = 16;

/// Appends `record` to `chain` through `conn`, which must be inside a transaction. With
/// `cache` (a [`ChainWriter`]'s memory of its head) it tries the remembered head first.
pub(crate) async fn append(
    conn: &mut PgConnection,
    table: &AuditTable,
    chain: &ChainId,
    record: Record,
    cache: Option<&Mutex<Option<Chain>>>,
) -> Result<Receipt, AuditError> {
    if !conn.is_in_transaction() {
        // Outside a transaction the head lock would be released after the SELECT and the
        // statements would commit one by one.
        return Err(AuditError::Database(
            "the connection is not inside a transaction: begin one (`conn.begin()`) before appending"
                .into(),
        ));
    }
    let remembered = cache.and_then(|c| c.lock().ok().and_then(|g| *g));
    if !chain.is_default() {
        return append_named(conn, table, chain, record, remembered, cache).await;
    }
    let mut record = record;
    if let Some(head) = remembered {
        match try_insert_default(conn, table, head, record).await? {
            Ok((receipt, after)) => {
                remember(cache, after);
                return Ok(receipt);
            }
            Err(back) => record = back,
        }
    }
    let head = lock_head(conn, table).await?;
    match try_insert_default(conn, table, head, record).await? {
        Ok((receipt, after)) => {
            remember(cache, after);
            Ok(receipt)
        }
        // The head row is locked by this transaction, so only an edit outside the chain's
        // rules can get here.
        Err(_) => Err(AuditError::Database(format!(
            "audit head of chain `{chain}` in `{}` changed under its lock",
            table.events()
        ))),
    }
}

/// [`append`] on a named chain: the remembered head first, else (or when it is stale) the
/// chain's last event, relinking while other writers' events take the seq.
async fn append_named(
    conn: &mut PgConnection,
    table: &AuditTable,
    chain: &ChainId,
    mut record: Record,
    remembered: Option<Chain>,
    cache: Option<&Mutex<Option<Chain>>>,
) -> Result<Receipt, AuditError> {
    // Seq 0 is never taken from memory: the first append of a chain also registers it.
    let mut head = match remembered {
        Some(head) if head.next_seq > 0 => head,
        _ => chain_end(conn, table, chain).await?,
    };
    for _ in 0..RELINK_ATTEMPTS {
        match try_insert_named(conn, table, chain, head, record).await? {
            Ok((receipt, after)) => {
                remember(cache, after);
                return Ok(receipt);
            }
            Err(back) => record = back,
        }
        head = chain_end(conn, table, chain).await?;
    }
    Err(AuditError::Database(format!(
        "audit chain `{chain}` in `{}`: other writers kept taking the next seq \
         ({RELINK_ATTEMPTS} attempts): give each concurrent writer its own chain",
        table.events()
    )))
}

fn remember(cache: Option<&Mutex<Option<Chain>>>, head: Chain) {
    if let Some(c) = cache {
        if let Ok(mut g) = c.lock() {
            *g = Some(head);
        }
    }
}

/// One writer's chain in an audit table: binds a transaction to it for
/// `#[phi_action(tx = ..)]` appends, and remembers the head it last wrote (see the module
/// docs). Clones share the memory. Give each concurrent writer (a replica, a connection
/// slot, a worker task) its own chain id.
///
/// ```no_run
/// # async fn f(pool: sqlx::PgPool) -> Result<(), Box<dyn std::error::Error>> {
/// use guardrail_audit::merkle::ChainId;
/// use guardrail_audit::sql::{AsyncTxAppend, AuditTable};
/// use guardrail_audit::sql::postgres::ChainWriter;
/// use guardrail_audit::{EventKind, Record};
/// let writer = ChainWriter::new(AuditTable::default(), ChainId::new("replica-1")?);
/// let mut tx = pool.begin().await?;
/// writer.on(&mut *tx).append_in_tx(Record::new(EventKind::Decision)).await?;
/// tx.commit().await?;
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct ChainWriter {
    table: AuditTable,
    chain: ChainId,
    head: Arc<Mutex<Option<Chain>>>,
}

impl ChainWriter {
    /// A writer of `chain` in `table`.
    pub fn new(table: AuditTable, chain: ChainId) -> ChainWriter {
        ChainWriter {
            table,
            chain,
            head: Arc::new(Mutex::new(None)),
        }
    }

    /// The chain written.
    pub fn chain(&self) -> &ChainId {
        &self.chain
    }

    /// The tables written.
    pub fn table(&self) -> &AuditTable {
        &self.table
    }

    /// Binds `conn` (a connection inside a transaction) for one or more appends.
    pub fn on<'a>(&'a self, conn: &'a mut PgConnection) -> OnChain<'a> {
        OnChain { writer: self, conn }
    }
}

/// A transaction bound to a [`ChainWriter`]: what `tx = ..` of `#[phi_action]` appends
/// through.
#[derive(Debug)]
pub struct OnChain<'a> {
    writer: &'a ChainWriter,
    conn: &'a mut PgConnection,
}

impl AsyncTxAppend for OnChain<'_> {
    fn append_in_tx(&mut self, record: Record) -> AppendFuture<'_> {
        let w = self.writer;
        Box::pin(append(self.conn, &w.table, &w.chain, record, Some(&w.head)))
    }

    fn check_ready(&mut self) -> ReadyFuture<'_> {
        let w = self.writer;
        Box::pin(check_ready(self.conn, &w.table, &w.chain))
    }

    fn swap_call_settings(&mut self, settings: CallSettings) -> SettingsFuture<'_> {
        Box::pin(super::settings::swap(self.conn, settings))
    }
}
