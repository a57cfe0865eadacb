//! The PostgreSQL approval store: approvals shared by every replica of a service.
//!
//! [`ApprovalStore`] is synchronous and is called from inside guarded calls, which may
//! themselves run on a tokio runtime. Calling `block_on` there would panic (or deadlock a
//! current-thread runtime), so the store owns a dedicated thread with its own
//! current-thread runtime and [`sqlx::PgPool`]; callers send a request over a channel and
//! wait on a plain `std` reply channel. Each request runs as its own task on that thread, so
//! concurrent callers share the pool instead of queueing behind one another.
//!
//! Every state change is one `UPDATE … WHERE state = … AND expires_at > $now AND <binding>
//! RETURNING …`: PostgreSQL row locking makes the guard and the write one step, so two
//! replicas racing to consume one grant see exactly one success. When the `UPDATE` matches
//! nothing, the row is read to say *why* (expired, used, bound to another call…).
//!
//! Times are stored as `BIGINT` nanoseconds since the Unix epoch and always come from the
//! guardrail's [`crate::Clock`], never from the database's `now()`, so expiry is decided by
//! the same clock as the rest of the guardrail (and tests can move it).

use std::fmt;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::time::Duration;

use guardrail_audit::Timestamp;
use sqlx::Row;
use sqlx::postgres::{PgPool, PgPoolOptions, PgRow};
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender, unbounded_channel};

use crate::approval::memory::{check_consumable, check_decidable};
use crate::approval::{
    ApprovalBinding, ApprovalError, ApprovalId, ApprovalRequest, ApprovalState, ApprovalStore,
    CallScope,
};

/// Columns of the approvals table, in the order [`row_to_request`] reads them.
const COLUMNS: &str = "id, action, principal, subject, record_count, requested_at, expires_at, \
                       state, approver, decided_at, consumed_at, scope";

/// Options of [`PgApprovalStore::connect`].
#[derive(Debug, Clone)]
pub struct PgApprovalStoreOptions {
    table: String,
    max_connections: u32,
    timeout: Duration,
}

impl Default for PgApprovalStoreOptions {
    fn default() -> PgApprovalStoreOptions {
        PgApprovalStoreOptions {
            table: "guardrail_approvals".into(),
            max_connections: 4,
            timeout: Duration::from_secs(10),
        }
    }
}

impl PgApprovalStoreOptions {
    /// Defaults: table `guardrail_approvals`, 4 connections, 10 s per operation.
    pub fn new() -> PgApprovalStoreOptions {
        PgApprovalStoreOptions::default()
    }

    /// The table (optionally `schema.table`); letters, digits and `_` only, checked by
    /// [`PgApprovalStore::connect`].
    pub fn table(mut self, table: impl Into<String>) -> PgApprovalStoreOptions {
        self.table = table.into();
        self
    }

    /// Size of the connection pool (at least 1).
    pub fn max_connections(mut self, n: u32) -> PgApprovalStoreOptions {
        self.max_connections = n.max(1);
        self
    }

    /// How long a caller waits for one operation before it fails (closed).
    pub fn timeout(mut self, timeout: Duration) -> PgApprovalStoreOptions {
        self.timeout = timeout;
        self
    }
}

type Reply<T> = SyncSender<Result<T, ApprovalError>>;

enum Job {
    EnsureSchema(Reply<()>),
    Insert(Box<ApprovalRequest>, Reply<()>),
    Get(ApprovalId, Reply<Option<ApprovalRequest>>),
    Decide {
        id: ApprovalId,
        approver: Arc<str>,
        grant: bool,
        now: Timestamp,
        reply: Reply<ApprovalRequest>,
    },
    Consume {
        id: ApprovalId,
        binding: ApprovalBinding,
        now: Timestamp,
        reply: Reply<ApprovalRequest>,
    },
    Pending(Reply<u64>),
}

/// Approval requests in a PostgreSQL table, shared by every replica that points at it.
///
/// Clones share the worker thread and pool. The worker stops when the last clone is dropped.
///
/// ```no_run
/// use guardrail_core::{PgApprovalStore, PgApprovalStoreOptions};
/// let store = PgApprovalStore::connect(
///     "postgres://guardrail@db/clinic",
///     PgApprovalStoreOptions::new().table("guardrail_approvals"),
/// )?;
/// store.ensure_schema()?;
/// // Guardrail::builder().approvals(store)…
/// # Ok::<(), guardrail_core::ApprovalError>(())
/// ```
#[derive(Clone)]
pub struct PgApprovalStore {
    jobs: UnboundedSender<Job>,
    table: Arc<str>,
    timeout: Duration,
}

impl fmt::Debug for PgApprovalStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgApprovalStore")
            .field("table", &self.table)
            .finish_non_exhaustive()
    }
}

/// Accepts `name` or `schema.name`, each an unquoted identifier PostgreSQL keeps as is.
fn valid_table(table: &str) -> bool {
    let part_ok = |p: &str| {
        let mut chars = p.chars();
        matches!(chars.next(), Some(c) if c.is_ascii_lowercase() || c == '_')
            && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
            && p.len() <= 63
    };
    let parts: Vec<&str> = table.split('.').collect();
    (1..=2).contains(&parts.len()) && parts.iter().all(|p| part_ok(p))
}

fn store_err(e: impl fmt::Display) -> ApprovalError {
    ApprovalError::Store(e.to_string())
}

impl PgApprovalStore {
    /// Connects to `url` on a dedicated thread. Does not create the table; call
    /// [`PgApprovalStore::ensure_schema`] (or create it by migration, see its SQL).
    pub fn connect(
        url: &str,
        options: PgApprovalStoreOptions,
    ) -> Result<PgApprovalStore, ApprovalError> {
        if !valid_table(&options.table) {
            return Err(ApprovalError::Store(format!(
                "invalid approval table name `{}`: use lowercase letters, digits and `_`, \
                 optionally `schema.table`",
                options.table
            )));
        }
        let (jobs, rx) = unbounded_channel::<Job>();
        let (ready_tx, ready_rx) = sync_channel::<Result<(), ApprovalError>>(1);
        let url = url.to_owned();
        let table: Arc<str> = Arc::from(options.table.as_str());
        let worker_table = table.clone();
        let max_connections = options.max_connections;
        let timeout = options.timeout;
        std::thread::Builder::new()
            .name("guardrail-approvals-pg".into())
            .spawn(move || worker(url, worker_table, max_connections, timeout, rx, ready_tx))
            .map_err(|e| store_err(format!("cannot start the approval store thread: {e}")))?;
        match ready_rx.recv_timeout(timeout.saturating_add(Duration::from_secs(1))) {
            Ok(Ok(())) => Ok(PgApprovalStore {
                jobs,
                table,
                timeout,
            }),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(store_err("timed out connecting to the approval database")),
        }
    }

    /// The table this store uses.
    pub fn table(&self) -> &str {
        &self.table
    }

    /// Creates the table and its index if they do not exist.
    ///
    /// ```sql
    /// CREATE TABLE IF NOT EXISTS guardrail_approvals (
    ///     id TEXT PRIMARY KEY, action TEXT NOT NULL, principal TEXT NOT NULL,
    ///     subject TEXT, record_count BIGINT,
    ///     requested_at BIGINT NOT NULL, expires_at BIGINT NOT NULL,     -- ns since epoch
    ///     state TEXT NOT NULL CHECK (state IN ('pending','granted','rejected','consumed')),
    ///     approver TEXT, decided_at BIGINT, consumed_at BIGINT,
    ///     scope TEXT);                                                   -- CallScope as JSON
    /// CREATE INDEX IF NOT EXISTS guardrail_approvals_pending
    ///     ON guardrail_approvals (state) WHERE state = 'pending';
    /// ```
    pub fn ensure_schema(&self) -> Result<(), ApprovalError> {
        self.call(Job::EnsureSchema)
    }

    fn call<T>(&self, job: impl FnOnce(Reply<T>) -> Job) -> Result<T, ApprovalError> {
        let (tx, rx): (Reply<T>, Receiver<Result<T, ApprovalError>>) = sync_channel(1);
        self.jobs
            .send(job(tx))
            .map_err(|_| store_err("the approval store thread has stopped"))?;
        match rx.recv_timeout(self.timeout) {
            Ok(result) => result,
            Err(_) => Err(store_err(
                "the approval database did not answer in time; failing closed",
            )),
        }
    }
}

fn worker(
    url: String,
    table: Arc<str>,
    max_connections: u32,
    timeout: Duration,
    mut jobs: UnboundedReceiver<Job>,
    ready: SyncSender<Result<(), ApprovalError>>,
) {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            let _ = ready.send(Err(store_err(format!("cannot start a runtime: {e}"))));
            return;
        }
    };
    runtime.block_on(async move {
        let pool = PgPoolOptions::new()
            .max_connections(max_connections)
            .acquire_timeout(timeout)
            .connect(&url)
            .await;
        let pool = match pool {
            Ok(pool) => {
                let _ = ready.send(Ok(()));
                pool
            }
            Err(e) => {
                let _ = ready.send(Err(store_err(format!(
                    "cannot connect to the approval database: {e}"
                ))));
                return;
            }
        };
        let sql = Arc::new(Sql::new(&table));
        while let Some(job) = jobs.recv().await {
            let pool = pool.clone();
            let sql = sql.clone();
            tokio::spawn(async move { run(&pool, &sql, job).await });
        }
        pool.close().await;
    });
}

/// The statements, built once per store with its table name.
struct Sql {
    table: Arc<str>,
    create: String,
    index: String,
    migrate: String,
    insert: String,
    get: String,
    decide: String,
    consume: String,
    pending: String,
}

impl Sql {
    fn new(table: &str) -> Sql {
        // An index name cannot be schema-qualified; PostgreSQL puts it in the table's schema.
        let index_name = format!("{}_pending", table.replace('.', "_"));
        Sql {
            table: Arc::from(table),
            create: format!(
                "CREATE TABLE IF NOT EXISTS {table} (\
                 id TEXT PRIMARY KEY, action TEXT NOT NULL, principal TEXT NOT NULL, \
                 subject TEXT, record_count BIGINT, \
                 requested_at BIGINT NOT NULL, expires_at BIGINT NOT NULL, \
                 state TEXT NOT NULL CHECK (state IN ('pending','granted','rejected','consumed')), \
                 approver TEXT, decided_at BIGINT, consumed_at BIGINT, scope TEXT)"
            ),
            // Tables made before grants were bound to their scope gain the column; their
            // rows (scope NULL) can never be consumed.
            migrate: format!("ALTER TABLE {table} ADD COLUMN IF NOT EXISTS scope TEXT"),
            index: format!(
                "CREATE INDEX IF NOT EXISTS {index_name} ON {table} (state) WHERE state = 'pending'"
            ),
            insert: format!(
                "INSERT INTO {table} ({COLUMNS}) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12)"
            ),
            get: format!("SELECT {COLUMNS} FROM {table} WHERE id = $1"),
            decide: format!(
                "UPDATE {table} SET state = $2, approver = $3, decided_at = $4 \
                 WHERE id = $1 AND state = 'pending' AND expires_at > $4 RETURNING {COLUMNS}"
            ),
            consume: format!(
                "UPDATE {table} SET state = 'consumed', consumed_at = $2 \
                 WHERE id = $1 AND state = 'granted' AND expires_at > $2 \
                 AND action = $3 AND principal = $4 \
                 AND subject IS NOT DISTINCT FROM $5 AND record_count IS NOT DISTINCT FROM $6 \
                 AND scope = $7 RETURNING {COLUMNS}"
            ),
            pending: format!("SELECT count(*) FROM {table} WHERE state = 'pending'"),
        }
    }
}

async fn run(pool: &PgPool, sql: &Sql, job: Job) {
    match job {
        Job::EnsureSchema(reply) => {
            let r = async {
                sqlx::query(&sql.create)
                    .execute(pool)
                    .await
                    .map_err(store_err)?;
                sqlx::query(&sql.migrate)
                    .execute(pool)
                    .await
                    .map_err(store_err)?;
                sqlx::query(&sql.index)
                    .execute(pool)
                    .await
                    .map_err(store_err)?;
                Ok(())
            }
            .await;
            let _ = reply.send(r);
        }
        Job::Insert(request, reply) => {
            let _ = reply.send(insert(pool, sql, &request).await);
        }
        Job::Get(id, reply) => {
            let _ = reply.send(get(pool, sql, &id).await);
        }
        Job::Decide {
            id,
            approver,
            grant,
            now,
            reply,
        } => {
            let _ = reply.send(decide(pool, sql, &id, &approver, grant, now).await);
        }
        Job::Consume {
            id,
            binding,
            now,
            reply,
        } => {
            let _ = reply.send(consume(pool, sql, &id, &binding, now).await);
        }
        Job::Pending(reply) => {
            let r = sqlx::query_scalar::<_, i64>(&sql.pending)
                .fetch_one(pool)
                .await
                .map_err(store_err)
                .map(|n| u64::try_from(n).unwrap_or(0));
            let _ = reply.send(r);
        }
    }
}

fn to_db_i64(value: u64, what: &str) -> Result<i64, ApprovalError> {
    i64::try_from(value)
        .map_err(|_| store_err(format!("{what} {value} does not fit the approval table")))
}

fn from_db_u64(value: i64, what: &str) -> Result<u64, ApprovalError> {
    u64::try_from(value).map_err(|_| store_err(format!("negative {what} in the approval table")))
}

fn ts(value: Option<i64>, what: &str) -> Result<Timestamp, ApprovalError> {
    match value {
        Some(v) => Ok(Timestamp(from_db_u64(v, what)?)),
        None => Err(store_err(format!("missing {what} in the approval table"))),
    }
}

fn row_to_request(row: &PgRow) -> Result<ApprovalRequest, ApprovalError> {
    let id: String = row.try_get(0).map_err(store_err)?;
    let action: String = row.try_get(1).map_err(store_err)?;
    let principal: String = row.try_get(2).map_err(store_err)?;
    let subject: Option<String> = row.try_get(3).map_err(store_err)?;
    let count: Option<i64> = row.try_get(4).map_err(store_err)?;
    let requested_at: i64 = row.try_get(5).map_err(store_err)?;
    let expires_at: i64 = row.try_get(6).map_err(store_err)?;
    let state: String = row.try_get(7).map_err(store_err)?;
    let approver: Option<String> = row.try_get(8).map_err(store_err)?;
    let decided_at: Option<i64> = row.try_get(9).map_err(store_err)?;
    let consumed_at: Option<i64> = row.try_get(10).map_err(store_err)?;
    let scope: Option<String> = row.try_get(11).map_err(store_err)?;
    let scope = match scope {
        Some(text) => CallScope::from_json(&text)?,
        None => {
            return Err(store_err(format!(
                "approval `{id}` has no scope (made before grants were bound to it)"
            )));
        }
    };
    let approver = || -> Result<Arc<str>, ApprovalError> {
        approver
            .as_deref()
            .map(Arc::from)
            .ok_or_else(|| store_err(format!("approval `{id}` has no approver")))
    };
    let state = match state.as_str() {
        "pending" => ApprovalState::Pending,
        "granted" => ApprovalState::Granted {
            approver: approver()?,
            at: ts(decided_at, "decision time")?,
        },
        "rejected" => ApprovalState::Rejected {
            approver: approver()?,
            at: ts(decided_at, "decision time")?,
        },
        "consumed" => ApprovalState::Consumed {
            at: ts(consumed_at, "consumption time")?,
        },
        other => return Err(store_err(format!("unknown approval state `{other}`"))),
    };
    let action: Arc<str> = Arc::from(action);
    Ok(ApprovalRequest {
        id: ApprovalId::new(&id),
        action: action.clone(),
        binding: ApprovalBinding {
            action,
            principal: Arc::from(principal),
            subject: subject.map(Arc::from),
            count: count.map(|c| from_db_u64(c, "record count")).transpose()?,
            scope,
        },
        requested_at: ts(Some(requested_at), "request time")?,
        expires_at: ts(Some(expires_at), "expiry time")?,
        state,
    })
}

async fn insert(pool: &PgPool, sql: &Sql, r: &ApprovalRequest) -> Result<(), ApprovalError> {
    if r.state != ApprovalState::Pending {
        return Err(store_err(format!(
            "approval `{}` must be inserted as pending, not {}",
            r.id,
            r.state.as_str()
        )));
    }
    let count = r
        .binding
        .count
        .map(|c| to_db_i64(c, "record count"))
        .transpose()?;
    let result = sqlx::query(&sql.insert)
        .bind(r.id.as_str())
        .bind(&*r.binding.action)
        .bind(&*r.binding.principal)
        .bind(r.binding.subject.as_deref())
        .bind(count)
        .bind(to_db_i64(r.requested_at.0, "request time")?)
        .bind(to_db_i64(r.expires_at.0, "expiry time")?)
        .bind("pending")
        .bind(None::<&str>)
        .bind(None::<i64>)
        .bind(None::<i64>)
        .bind(r.binding.scope.to_json())
        .execute(pool)
        .await;
    match result {
        Ok(_) => Ok(()),
        Err(sqlx::Error::Database(db)) if db.is_unique_violation() => Err(ApprovalError::Store(
            format!("approval `{}` already exists", r.id),
        )),
        Err(e) => Err(store_err(format!("insert into `{}`: {e}", sql.table))),
    }
}

async fn get(
    pool: &PgPool,
    sql: &Sql,
    id: &ApprovalId,
) -> Result<Option<ApprovalRequest>, ApprovalError> {
    let row = sqlx::query(&sql.get)
        .bind(id.as_str())
        .fetch_optional(pool)
        .await
        .map_err(store_err)?;
    row.as_ref().map(row_to_request).transpose()
}

async fn decide(
    pool: &PgPool,
    sql: &Sql,
    id: &ApprovalId,
    approver: &str,
    grant: bool,
    now: Timestamp,
) -> Result<ApprovalRequest, ApprovalError> {
    let row = sqlx::query(&sql.decide)
        .bind(id.as_str())
        .bind(if grant { "granted" } else { "rejected" })
        .bind(approver)
        .bind(to_db_i64(now.0, "time")?)
        .fetch_optional(pool)
        .await
        .map_err(store_err)?;
    if let Some(row) = row {
        return row_to_request(&row);
    }
    // Nothing changed: say why from the row as it is now.
    let current = get(pool, sql, id)
        .await?
        .ok_or_else(|| ApprovalError::NotFound(id.to_string()))?;
    check_decidable(&current, now)?;
    Err(store_err(format!(
        "approval `{id}` changed while it was being decided; retry"
    )))
}

async fn consume(
    pool: &PgPool,
    sql: &Sql,
    id: &ApprovalId,
    binding: &ApprovalBinding,
    now: Timestamp,
) -> Result<ApprovalRequest, ApprovalError> {
    let count = binding
        .count
        .map(|c| to_db_i64(c, "record count"))
        .transpose()?;
    let row = sqlx::query(&sql.consume)
        .bind(id.as_str())
        .bind(to_db_i64(now.0, "time")?)
        .bind(&*binding.action)
        .bind(&*binding.principal)
        .bind(binding.subject.as_deref())
        .bind(count)
        .bind(binding.scope.to_json())
        .fetch_optional(pool)
        .await
        .map_err(store_err)?;
    if let Some(row) = row {
        return row_to_request(&row);
    }
    let current = get(pool, sql, id)
        .await?
        .ok_or_else(|| ApprovalError::NotFound(id.to_string()))?;
    check_consumable(&current, binding, now)?;
    // The row was consumable a moment later (granted concurrently): still refuse this use,
    // failing closed; the caller may retry.
    Err(store_err(format!(
        "approval `{id}` changed while it was being used; retry"
    )))
}

impl ApprovalStore for PgApprovalStore {
    fn insert(&self, request: &ApprovalRequest) -> Result<(), ApprovalError> {
        let request = Box::new(request.clone());
        self.call(|reply| Job::Insert(request, reply))
    }

    fn get(&self, id: &ApprovalId) -> Result<Option<ApprovalRequest>, ApprovalError> {
        let id = id.clone();
        self.call(|reply| Job::Get(id, reply))
    }

    fn decide(
        &self,
        id: &ApprovalId,
        approver: &str,
        grant: bool,
        now: Timestamp,
    ) -> Result<ApprovalRequest, ApprovalError> {
        let id = id.clone();
        let approver = Arc::from(approver);
        self.call(|reply| Job::Decide {
            id,
            approver,
            grant,
            now,
            reply,
        })
    }

    fn consume(
        &self,
        id: &ApprovalId,
        binding: &ApprovalBinding,
        now: Timestamp,
    ) -> Result<ApprovalRequest, ApprovalError> {
        let id = id.clone();
        let binding = binding.clone();
        self.call(|reply| Job::Consume {
            id,
            binding,
            now,
            reply,
        })
    }

    fn pending(&self) -> Result<u64, ApprovalError> {
        self.call(Job::Pending)
    }
}

#[cfg(test)]
mod tests {
    use super::valid_table;

    #[test]
    fn table_names_are_checked() {
        assert!(valid_table("guardrail_approvals"));
        assert!(valid_table("ops.approvals_2"));
        assert!(!valid_table("approvals; DROP TABLE x"));
        assert!(!valid_table("Approvals"));
        assert!(!valid_table("a.b.c"));
        assert!(!valid_table(""));
        assert!(!valid_table("1abc"));
    }
}
