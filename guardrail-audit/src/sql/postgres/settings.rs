//! The session settings of a guarded call on PostgreSQL: `guardrail.action`,
//! `guardrail.principal` and `guardrail.categories`, set transaction-locally
//! (`set_config(.., true)`) so they vanish at commit or rollback, for row-level security
//! policies to read (`guardrail-core/sql/postgres-rls.sql`).

use sqlx::{PgConnection, Row as _};

use crate::error::AuditError;
use crate::sql::CallSettings;

/// Reads the current values and sets the new ones in one round trip. The materialized CTE
/// is evaluated before the outer row (and so before any `set_config` in it) exists, so the
/// values returned are the ones in force before the statement. Values are bound, never
/// spliced into the text.
const SWAP: &str = "WITH previous AS MATERIALIZED (
     SELECT coalesce(current_setting('guardrail.action', true), '') AS action,
            coalesce(current_setting('guardrail.principal', true), '') AS principal,
            coalesce(current_setting('guardrail.categories', true), '') AS categories
 )
 SELECT previous.action, previous.principal, previous.categories,
        set_config('guardrail.action', $1, true),
        set_config('guardrail.principal', $2, true),
        set_config('guardrail.categories', $3, true)
 FROM previous";

fn failed(e: sqlx::Error) -> AuditError {
    AuditError::Database(format!(
        "setting the guardrail session settings failed: {e}"
    ))
}

/// Sets `settings` for the rest of `conn`'s transaction and returns the ones replaced.
pub(super) async fn swap(
    conn: &mut PgConnection,
    settings: CallSettings,
) -> Result<CallSettings, AuditError> {
    let row = sqlx::query(SWAP)
        .bind(settings.action)
        .bind(settings.principal)
        .bind(settings.categories)
        .fetch_one(conn)
        .await
        .map_err(failed)?;
    Ok(CallSettings {
        action: row.try_get(0).map_err(failed)?,
        principal: row.try_get(1).map_err(failed)?,
        categories: row.try_get(2).map_err(failed)?,
    })
}
