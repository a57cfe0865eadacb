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
use sqlx::postgres::PgPoolOptions;
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender, unbounded_channel};

mod queries;

use queries::{Sql, run};

use crate::approval::{ApprovalBinding, ApprovalError, ApprovalId, ApprovalRequest, ApprovalStore};

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
    Settle {
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
    ListPending {
        now: Timestamp,
        limit: usize,
        reply: Reply<Vec<ApprovalRequest>>,
    },
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
impl ApprovalStore for PgApprovalStore {
    fn insert(&self, request: &ApprovalRequest) -> Result<(), ApprovalError> {
        let request = Box::new(request.clone());
        self.call(|reply| Job::Insert(request, reply))
    }

    fn get(&self, id: &ApprovalId) -> Result<Option<ApprovalRequest>, ApprovalError> {
        let id = id.clone();
        self.call(|reply| Job::Get(id, reply))
    }

    fn settle(
        &self,
        id: &ApprovalId,
        approver: &str,
        grant: bool,
        now: Timestamp,
    ) -> Result<ApprovalRequest, ApprovalError> {
        let id = id.clone();
        let approver = Arc::from(approver);
        self.call(|reply| Job::Settle {
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

    fn list_pending(
        &self,
        now: Timestamp,
        limit: usize,
    ) -> Result<Vec<ApprovalRequest>, ApprovalError> {
        self.call(|reply| Job::ListPending { now, limit, reply })
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
