//! The SQL of the PostgreSQL approval store: the statements, and the jobs the store's own
//! runtime executes with them (insert, get, list, decide, consume), each one atomic statement.

use std::sync::Arc;

use guardrail_audit::Timestamp;
use sqlx::Row;
use sqlx::postgres::{PgPool, PgRow};

use super::{COLUMNS, Job, store_err};
use crate::approval::checks::{check_consumable, check_decidable};
use crate::approval::{
    ApprovalBinding, ApprovalError, ApprovalId, ApprovalRequest, ApprovalState, CallScope,
};

pub(super) struct Sql {
    table: Arc<str>,
    create: String,
    index: String,
    migrate: String,
    insert: String,
    get: String,
    settle: String,
    consume: String,
    pending: String,
    list_pending: String,
}

impl Sql {
    pub(super) fn new(table: &str) -> Sql {
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
            settle: format!(
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
            list_pending: format!(
                "SELECT {COLUMNS} FROM {table} WHERE state = 'pending' AND expires_at > $1 \
                 ORDER BY requested_at, id LIMIT $2"
            ),
        }
    }
}

pub(super) async fn run(pool: &PgPool, sql: &Sql, job: Job) {
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
        Job::Settle {
            id,
            approver,
            grant,
            now,
            reply,
        } => {
            let _ = reply.send(settle(pool, sql, &id, &approver, grant, now).await);
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
        Job::ListPending { now, limit, reply } => {
            let _ = reply.send(list_pending(pool, sql, now, limit).await);
        }
    }
}

async fn list_pending(
    pool: &PgPool,
    sql: &Sql,
    now: Timestamp,
    limit: usize,
) -> Result<Vec<ApprovalRequest>, ApprovalError> {
    // A limit beyond `i64::MAX` is no limit at all.
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let rows = sqlx::query(&sql.list_pending)
        .bind(to_db_i64(now.0, "time")?)
        .bind(limit)
        .fetch_all(pool)
        .await
        .map_err(store_err)?;
    rows.iter().map(row_to_request).collect()
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

async fn settle(
    pool: &PgPool,
    sql: &Sql,
    id: &ApprovalId,
    approver: &str,
    grant: bool,
    now: Timestamp,
) -> Result<ApprovalRequest, ApprovalError> {
    let row = sqlx::query(&sql.settle)
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
