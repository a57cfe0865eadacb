//! The database refuses too, on PostgreSQL: row-level security policies that show PHI rows
//! only inside a guarded call.
//!
//! Owns the shipped SQL. The runtime side is in `runtime::tx`: inside
//! `#[phi_action(tx = ..)]` calls on an sqlx transaction (or a `PgConnection` inside one),
//! after the decision allowed the call and before its body, guardrail sets
//! `guardrail.action`, `guardrail.principal` and `guardrail.categories` (the action's
//! declared `phi = [..]`, comma-separated) with `set_config(.., true)` and bound parameters,
//! and restores the previous values after the body. The settings are transaction-local, so
//! commit or rollback clears them as well.
//!
//! A host applies [`RLS_FUNCTIONS`] once (functions `guardrail_in_call()`,
//! `guardrail_has_category(text)`, `guardrail_require_category(text, text)`,
//! `guardrail_action()`, `guardrail_principal()`), then enables and forces row-level
//! security on each PHI table with a policy naming the category it holds, as
//! [`RLS_EXAMPLE`] does for a clinic's `clinic_patients` and `clinic_charts`:
//!
//! ```sql
//! ALTER TABLE clinic_charts ENABLE ROW LEVEL SECURITY;
//! ALTER TABLE clinic_charts FORCE ROW LEVEL SECURITY;
//! CREATE POLICY guardrail_guarded ON clinic_charts FOR ALL
//!     USING (guardrail_require_category('diagnosis', 'clinic_charts'))
//!     WITH CHECK (guardrail_require_category('diagnosis', 'clinic_charts'));
//! ```
//!
//! A session outside any guarded call then reads no rows of those tables and can write
//! none; a guarded call that did not declare the table's category gets an error
//! (SQLSTATE `42501`) naming the action, the category and the table.
//!
//! This is a tripwire against a forgotten guard, not authentication: any session can set
//! the three settings itself, and a superuser, a `BYPASSRLS` role, or the table owner
//! without `FORCE ROW LEVEL SECURITY` is not bound by the policies (docs/threat-model.md).
//!
//! ```
//! assert!(guardrail_core::postgres::RLS_FUNCTIONS.contains("guardrail_require_category"));
//! assert!(guardrail_core::postgres::RLS_EXAMPLE.contains("FORCE ROW LEVEL SECURITY"));
//! ```

/// The SQL functions the row-level security policies call (`sql/postgres-rls.sql`).
/// Idempotent; creates them in the first schema of `search_path`.
pub const RLS_FUNCTIONS: &str = include_str!("../sql/postgres-rls.sql");

/// Example tables and policies for a clinic (`sql/postgres-rls-example.sql`); apply after
/// [`RLS_FUNCTIONS`], in the same schema.
pub const RLS_EXAMPLE: &str = include_str!("../sql/postgres-rls-example.sql");
