//! The database refuses too: an SQLite authorizer that denies reading or writing a PHI column
//! outside a guarded call, and reading a column whose category the running action did not
//! declare in `phi = [..]` (minimum necessary at the SQL level).
//!
//! Owns [`enforce`]. May use: guard (the marker and the refusal record), policy (the
//! `[schema]`), model.
//!
//! SQLite asks the authorizer while it *prepares* a statement, so the check holds for what
//! is prepared inside the call. A statement prepared (and cached with `prepare_cached`) inside
//! a guarded call and run again outside it is not asked again: prepare PHI queries where they
//! run. A refused statement fails with SQLite's own error, which names the column
//! (`access to patients.ssn is prohibited`), and the refusal is recorded like every other
//! (`guard::require_guarded`): an `unguarded_access` event in the tripwire guardrail's trail,
//! an alert and `guardrail_unguarded_total`. The trail must not be a sink on the same
//! connection (the authorizer runs inside a prepare).
//!
//! ```
//! use guardrail_core::audit::sql::sqlite::rusqlite::Connection;
//! use guardrail_core::{Category, policy::Schema};
//! let conn = Connection::open_in_memory()?;
//! conn.execute_batch("CREATE TABLE patients (id TEXT, ssn TEXT); CREATE TABLE rooms (n INT);")?;
//! let schema = Schema::default().with_column("patients", "ssn", Category::Ssn);
//! guardrail_core::sqlite::enforce(&conn, &schema);
//! // Outside any guarded call: PHI is refused, other tables are not.
//! let err = conn.prepare("SELECT ssn FROM patients").unwrap_err();
//! assert!(err.to_string().contains("patients.ssn"), "{err}");
//! assert!(conn.prepare("SELECT n FROM rooms").is_ok());
//! # Ok::<(), guardrail_core::audit::sql::sqlite::rusqlite::Error>(())
//! ```

use rusqlite::Connection;
use rusqlite::hooks::{AuthAction, AuthContext, Authorization};

use crate::guard;
use crate::model::Category;
use crate::policy::Schema;

/// Installs the authorizer on `conn` (replacing any other): reads and updates of the PHI
/// columns of `schema`, and inserts into or deletes from its tables, are allowed only inside
/// a guarded call, and reads and updates only of the categories the call declared.
pub fn enforce(conn: &Connection, schema: &Schema) {
    let schema = schema.clone();
    conn.authorizer(Some(move |ctx: AuthContext<'_>| {
        decide(&schema, &ctx.action)
    }));
}

/// The authorizer's answer for one action.
fn decide(schema: &Schema, action: &AuthAction<'_>) -> Authorization {
    match *action {
        AuthAction::Read {
            table_name,
            column_name,
        }
        | AuthAction::Update {
            table_name,
            column_name,
        } => match schema.column(table_name, column_name) {
            None => Authorization::Allow,
            Some(category) => column_access(category),
        },
        AuthAction::Insert { table_name } | AuthAction::Delete { table_name }
            if schema.is_phi_table(table_name) =>
        {
            row_access(schema, table_name)
        }
        _ => Authorization::Allow,
    }
}

fn column_access(category: Category) -> Authorization {
    let running = guard::running_action();
    match running {
        Some(action) if guard::declared_by(action).contains(category) => Authorization::Allow,
        _ => {
            let _ = guard::refuse(running, Some(category));
            Authorization::Deny
        }
    }
}

/// Adding or removing a patient's row needs a guarded call that declared at least one of the
/// table's categories.
fn row_access(schema: &Schema, table: &str) -> Authorization {
    let running = guard::running_action();
    let first = schema.columns(table).map(|(_, c)| c).next();
    match running {
        Some(action) => {
            let declared = guard::declared_by(action);
            if schema.columns(table).any(|(_, c)| declared.contains(c)) {
                Authorization::Allow
            } else {
                let _ = guard::refuse(running, first);
                Authorization::Deny
            }
        }
        None => {
            let _ = guard::refuse(None, first);
            Authorization::Deny
        }
    }
}
