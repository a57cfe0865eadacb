//! One hash chain per writer in one PostgreSQL events table.
//!
//! Every event row carries its `chain` (a [`ChainId`]; `default` for writers that name
//! none, so tables written before chains existed keep their meaning) and the primary key is
//! `(chain, seq)`. Each chain has its own head row: the default chain keeps `t_head`
//! (`id = 0`), every other chain a row of `t_chains` (`chain`, `next_seq`, `head`), created
//! by its first append. An append locks only its own chain's head row, so writers on
//! different chains never wait on each other; writers on one chain serialize exactly as the
//! single chain always did (the second waits for the first to commit or roll back).
//!
//! A [`ChainWriter`] also remembers the head it last wrote: its next append is then one
//! statement that advances the head *only if* it is still the remembered one and inserts
//! the event, and falls back to reading the head `FOR UPDATE` when it is not (a rolled-back
//! transaction, another writer on the chain). The condition is checked under the head row's
//! lock, so a stale memory can cost a round trip, never a broken chain.

use std::sync::{Arc, Mutex};

use sqlx::{Connection as _, PgConnection, Row as _};

use super::{AppendFuture, AsyncTxAppend, AuditTable, CallSettings, Columns, SettingsFuture};
use crate::chain::{Chain, Digest};
use crate::error::AuditError;
use crate::event::Record;
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

/// Reads `chain`'s head row with `FOR UPDATE` (creating a named chain's row on first use):
/// appends and checkpoints of other transactions on this chain wait until this one ends.
pub(crate) async fn lock_head(
    conn: &mut PgConnection,
    table: &AuditTable,
    chain: &ChainId,
) -> Result<Chain, AuditError> {
    let row = if chain.is_default() {
        sqlx::query(&format!(
            "SELECT next_seq, head FROM {} WHERE id = 0 FOR UPDATE",
            table.head()
        ))
        .fetch_optional(&mut *conn)
        .await
        .map_err(db)?
    } else {
        let c = chains_table(table);
        // Creating the row first and locking it after: a concurrent first append waits for
        // this insert's transaction, then finds the row.
        sqlx::query(&format!(
            "INSERT INTO {c} (chain, next_seq, head) VALUES ($1, 0, $2)
             ON CONFLICT (chain) DO NOTHING"
        ))
        .bind(chain.as_str())
        .bind(crate::GENESIS.to_hex())
        .execute(&mut *conn)
        .await
        .map_err(db)?;
        sqlx::query(&format!(
            "SELECT next_seq, head FROM {c} WHERE chain = $1 FOR UPDATE"
        ))
        .bind(chain.as_str())
        .fetch_optional(&mut *conn)
        .await
        .map_err(db)?
    };
    let row = row.ok_or_else(|| {
        AuditError::Database(format!(
            "audit head of chain `{chain}` in `{}` has no row: call `ensure_schema` first",
            table.events()
        ))
    })?;
    let next_seq: i64 = row.try_get(0).map_err(db)?;
    let head: String = row.try_get(1).map_err(db)?;
    head_of(next_seq, &head, table)
}

/// Links `record` after `chain` and runs the one statement that advances the head row
/// (only if it still holds `chain`) and inserts the event. `Ok(None)` when the head row
/// held something else (nothing was written).
async fn try_insert(
    conn: &mut PgConnection,
    table: &AuditTable,
    id: &ChainId,
    mut chain: Chain,
    record: Record,
) -> Result<Option<(Receipt, Chain)>, AuditError> {
    let event = chain.link(record)?;
    let cols = Columns::of(&event);
    let seq = i64::try_from(event.seq)
        .map_err(|_| AuditError::Database("sequence number out of range".into()))?;
    let next = i64::try_from(chain.next_seq)
        .map_err(|_| AuditError::Database("sequence number out of range".into()))?;
    let advance = if id.is_default() {
        format!(
            "UPDATE {} SET next_seq = $11, head = $3
             WHERE id = 0 AND next_seq = $1 AND head = $2",
            table.head()
        )
    } else {
        format!(
            "UPDATE {} SET next_seq = $11, head = $3
             WHERE chain = $12 AND next_seq = $1 AND head = $2",
            chains_table(table)
        )
    };
    // One statement advances the head and inserts the event: both or neither, so a future
    // dropped between two statements can never leave an event without its head (or the
    // reverse) in a transaction the caller still commits.
    let insert = format!(
        "WITH advanced AS ({advance} RETURNING 1)
         INSERT INTO {events} (chain, seq, prev, hash, time_ns, kind, action, action_kind,
                               subject, request_id, line)
         SELECT $12, $1, $2, $3, $4, $5, $6, $7, $8, $9, $10 FROM advanced",
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
        .bind(id.as_str())
        .execute(&mut *conn)
        .await
        .map_err(db)?
        .rows_affected();
    Ok((inserted == 1).then_some((Receipt { seq: event.seq }, chain)))
}

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
    if let Some(head) = remembered {
        if let Some((receipt, after)) = try_insert(conn, table, chain, head, record.clone()).await?
        {
            remember(cache, after);
            return Ok(receipt);
        }
    }
    let head = lock_head(conn, table, chain).await?;
    match try_insert(conn, table, chain, head, record).await? {
        Some((receipt, after)) => {
            remember(cache, after);
            Ok(receipt)
        }
        // The head row is locked by this transaction, so only an edit outside the chain's
        // rules can get here.
        None => Err(AuditError::Database(format!(
            "audit head of chain `{chain}` in `{}` changed under its lock",
            table.events()
        ))),
    }
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

    fn swap_call_settings(&mut self, settings: CallSettings) -> SettingsFuture<'_> {
        Box::pin(super::settings::swap(self.conn, settings))
    }
}
