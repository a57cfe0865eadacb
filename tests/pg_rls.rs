//! PostgreSQL row-level security: inside `#[phi_action(tx = ..)]` calls guardrail sets
//! `guardrail.action`, `guardrail.principal` and `guardrail.categories` in the caller's
//! transaction; with the shipped SQL (`guardrail_core::postgres::RLS_FUNCTIONS` and
//! `RLS_EXAMPLE`) applied, a session outside a guarded call reads no PHI rows, a guarded
//! call reads them, and a call that did not declare the table's category is refused.
//!
//! The first tests need no database: they drive the session-settings seam through an
//! in-memory transaction (what is published, what is restored, failures fail closed).

use guardrail_tests::AppError;
use std::sync::{Arc, Mutex};

use guardrail_audit::sql::postgres::sqlx::{
    self, Connection as _, PgConnection, Postgres, Transaction,
};
use guardrail_audit::sql::postgres::{self as pg};
use guardrail_audit::sql::{AppendFuture, AsyncTxAppend, AuditTable, CallSettings, SettingsFuture};
use guardrail_audit::{AuditError, EventKind, Outcome, Receipt, Record};
use guardrail_core::prelude::*;

const POLICY: &str = r#"
version = "rls-1"

[[rule]]
id = "providers-treat"
effect = "allow"
actions = ["*"]
roles = ["provider"]
purposes = ["treatment"]
"#;

fn guardrail(sink: &MemorySink) -> Guardrail {
    Guardrail::builder()
        .policy(Policy::from_toml_str(POLICY).unwrap())
        .audit(sink.clone())
        .audit_key(AuditKey::from_bytes(b"row level security key, 32 byte").unwrap())
        .build()
        .unwrap()
}

fn provider(g: &Guardrail) -> Context {
    g.context(Principal::new("dr-grey").role("provider"))
        .purpose(Purpose::Treatment)
}

// ---------------------------------------------------------------------------------------
// The seam, without a database
// ---------------------------------------------------------------------------------------

/// A transaction that records the settings it is given and can be made to fail.
#[derive(Default)]
struct FakeTx {
    current: CallSettings,
    swaps: Arc<Mutex<Vec<CallSettings>>>,
    /// Fail the n-th swap (0 = the first).
    fail_at: Option<usize>,
    appended: usize,
}

impl AsyncTxAppend for FakeTx {
    fn append_in_tx(&mut self, _record: Record) -> AppendFuture<'_> {
        self.appended += 1;
        let seq = self.appended as u64;
        Box::pin(async move { Ok(Receipt { seq }) })
    }

    fn swap_call_settings(&mut self, settings: CallSettings) -> SettingsFuture<'_> {
        let mut swaps = self.swaps.lock().unwrap();
        let n = swaps.len();
        swaps.push(settings.clone());
        drop(swaps);
        if self.fail_at == Some(n) {
            return Box::pin(async { Err(AuditError::Database("connection lost".into())) });
        }
        let previous = std::mem::replace(&mut self.current, settings);
        Box::pin(async move { Ok(previous) })
    }
}

#[phi_action(name = "rls.fake_read", kind = "read", role = "provider", phi = ["name", "diagnosis"], tx = tx)]
async fn fake_read(ctx: &Context, tx: &mut FakeTx, ran: &Mutex<bool>) -> Result<String, AppError> {
    *ran.lock().unwrap() = true;
    Ok(tx.current.categories.clone())
}

#[tokio::test]
async fn the_call_is_published_before_the_body_and_the_previous_settings_restored_after() {
    let sink = MemorySink::new();
    let g = guardrail(&sink);
    let ctx = provider(&g);
    let mut tx = FakeTx {
        current: CallSettings {
            action: "outer".into(),
            principal: "p".into(),
            categories: "note".into(),
        },
        ..FakeTx::default()
    };
    let ran = Mutex::new(false);
    // The body sees the call's own settings.
    let seen = fake_read(&ctx, &mut tx, &ran).await.unwrap();
    assert_eq!(seen, "name,diagnosis");
    let swaps = tx.swaps.lock().unwrap().clone();
    assert_eq!(
        swaps,
        [
            CallSettings {
                action: "rls.fake_read".into(),
                principal: "dr-grey".into(),
                categories: "name,diagnosis".into(),
            },
            CallSettings {
                action: "outer".into(),
                principal: "p".into(),
                categories: "note".into(),
            },
        ]
    );
    assert_eq!(tx.current.action, "outer", "the caller's settings are back");
    assert_eq!(tx.appended, 1, "the outcome went through the transaction");
}

#[tokio::test]
async fn a_failure_to_publish_the_call_fails_it_closed_without_running_the_body() {
    let sink = MemorySink::new();
    let g = guardrail(&sink);
    let ctx = provider(&g);
    let mut tx = FakeTx {
        fail_at: Some(0),
        ..FakeTx::default()
    };
    let ran = Mutex::new(false);
    let err = fake_read(&ctx, &mut tx, &ran).await.unwrap_err();
    let AppError::Guard(GuardError::AuditUnavailable {
        sink: s, detail, ..
    }) = &err
    else {
        panic!("expected AuditUnavailable, got {err:?}");
    };
    assert_eq!(
        (s.as_str(), detail.as_str()),
        ("transaction", "session_settings")
    );
    assert!(!*ran.lock().unwrap(), "the body must not run");
    assert_eq!(tx.appended, 0);
    // The decision and an `error` outcome are in the guardrail's sinks.
    let events = sink.events();
    assert_eq!(events.len(), 2);
    assert_eq!(events[1].record.kind, EventKind::Outcome);
    assert_eq!(events[1].record.outcome, Some(Outcome::Error));
}

#[tokio::test]
async fn a_failure_to_restore_the_settings_turns_an_ok_into_an_error() {
    let sink = MemorySink::new();
    let g = guardrail(&sink);
    let ctx = provider(&g);
    let mut tx = FakeTx {
        fail_at: Some(1),
        ..FakeTx::default()
    };
    let ran = Mutex::new(false);
    let err = fake_read(&ctx, &mut tx, &ran).await.unwrap_err();
    assert!(
        matches!(&err, AppError::Guard(GuardError::AuditUnavailable { detail, .. }) if detail == "session_settings"),
        "{err:?}"
    );
    assert!(*ran.lock().unwrap());
    assert_eq!(tx.appended, 0, "no `ok` outcome for a call that failed");
    let events = sink.events();
    assert_eq!(events.last().unwrap().record.outcome, Some(Outcome::Error));
}

// ---------------------------------------------------------------------------------------
// Against the real server
// ---------------------------------------------------------------------------------------

/// Reads every chart: declared `diagnosis`, the category of `clinic_charts`.
#[phi_action(name = "rls.read_charts", kind = "read", role = "provider", phi = ["diagnosis"], tx = tx)]
async fn read_charts(
    ctx: &Context,
    tx: &mut Transaction<'_, Postgres>,
) -> Result<Vec<(String, String)>, AppError> {
    Ok(
        sqlx::query_as("SELECT patient, diagnosis FROM clinic_charts ORDER BY patient")
            .fetch_all(&mut **tx)
            .await?,
    )
}

/// Reads patients' names: declared `name` only.
#[phi_action(name = "rls.read_names", kind = "read", role = "provider", phi = ["name"], tx = tx)]
async fn read_names(
    ctx: &Context,
    tx: &mut Transaction<'_, Postgres>,
) -> Result<Vec<String>, AppError> {
    Ok(
        sqlx::query_scalar("SELECT name FROM clinic_patients ORDER BY id")
            .fetch_all(&mut **tx)
            .await?,
    )
}

/// Declared `name` only, but reads `clinic_charts`: the policy function refuses it.
#[phi_action(name = "rls.names_reads_charts", kind = "read", role = "provider", phi = ["name"], tx = tx)]
async fn names_reads_charts(
    ctx: &Context,
    tx: &mut Transaction<'_, Postgres>,
) -> Result<i64, AppError> {
    Ok(sqlx::query_scalar("SELECT count(*) FROM clinic_charts")
        .fetch_one(&mut **tx)
        .await?)
}

/// Reads charts, calls `read_names` on the same transaction, reads charts again: the inner
/// call hands the outer call's settings back.
#[phi_action(name = "rls.nested", kind = "read", role = "provider", phi = ["diagnosis"], tx = tx)]
async fn nested(
    ctx: &Context,
    tx: &mut Transaction<'_, Postgres>,
) -> Result<(i64, usize, i64), AppError> {
    let before = count(tx, "clinic_charts").await;
    let names = read_names(ctx, &mut *tx).await?;
    let after = count(tx, "clinic_charts").await;
    Ok((before, names.len(), after))
}

/// What the body sees of the three settings.
#[phi_action(name = "rls.settings", kind = "read", role = "provider", phi = ["name", "diagnosis"], tx = tx)]
async fn settings_seen(
    ctx: &Context,
    tx: &mut Transaction<'_, Postgres>,
) -> Result<(String, String, String), AppError> {
    Ok(sqlx::query_as(
        "SELECT current_setting('guardrail.action'), current_setting('guardrail.principal'),
                current_setting('guardrail.categories')",
    )
    .fetch_one(&mut **tx)
    .await?)
}

async fn count(conn: &mut PgConnection, table: &str) -> i64 {
    sqlx::query_scalar(&format!("SELECT count(*) FROM {table}"))
        .fetch_one(conn)
        .await
        .unwrap()
}

fn unique(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!("{prefix}_{}_{nanos}", std::process::id())
}

/// A schema holding the shipped functions, the example tables with two patients, and the
/// audit tables; a role that is neither superuser nor BYPASSRLS may use them. Returns the
/// administrative pool (a superuser: row-level security does not bind it) and the
/// application's connection, already `SET ROLE` to that role.
async fn setup(url: &str, schema: &str, role: &str) -> (sqlx::PgPool, PgConnection) {
    let mut first = PgConnection::connect(url).await.unwrap();
    sqlx::raw_sql(&format!(
        "CREATE SCHEMA {schema}; CREATE ROLE {role} NOLOGIN NOSUPERUSER NOBYPASSRLS;"
    ))
    .execute(&mut first)
    .await
    .unwrap();
    first.close().await.unwrap();
    let options: sqlx::postgres::PgConnectOptions = url.parse().unwrap();
    let options = options.options([("search_path", schema)]);
    let admin = sqlx::postgres::PgPoolOptions::new()
        .max_connections(2)
        .connect_with(options.clone())
        .await
        .unwrap();
    sqlx::raw_sql(guardrail_core::postgres::RLS_FUNCTIONS)
        .execute(&admin)
        .await
        .unwrap();
    sqlx::raw_sql(guardrail_core::postgres::RLS_EXAMPLE)
        .execute(&admin)
        .await
        .unwrap();
    pg::ensure_schema(&admin, &AuditTable::default())
        .await
        .unwrap();
    sqlx::raw_sql(&format!(
        "INSERT INTO clinic_patients VALUES ('p-1', 'Ann Lee', '1980-01-01'), ('p-2', 'Bo Ray', NULL);
         INSERT INTO clinic_charts VALUES ('p-1', 'flu'), ('p-2', 'measles');
         GRANT USAGE ON SCHEMA {schema} TO {role};
         GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA {schema} TO {role};"
    ))
    .execute(&admin)
    .await
    .unwrap();
    let mut app = PgConnection::connect_with(&options).await.unwrap();
    sqlx::raw_sql(&format!("SET ROLE {role}"))
        .execute(&mut app)
        .await
        .unwrap();
    (admin, app)
}

async fn teardown(url: &str, schema: &str, role: &str) {
    let mut conn = PgConnection::connect(url).await.unwrap();
    let _ = sqlx::raw_sql(&format!(
        "DROP SCHEMA {schema} CASCADE; DROP OWNED BY {role}; DROP ROLE {role};"
    ))
    .execute(&mut conn)
    .await;
}

#[tokio::test]
async fn postgres_rls_shows_phi_rows_only_inside_a_guarded_call() {
    let Some(url) =
        guardrail_tests::pg::database_url("postgres_rls_shows_phi_rows_only_inside_a_guarded_call")
    else {
        return;
    };
    let schema = unique("gr_rls");
    let role = format!("{schema}_app");
    let (admin, mut app) = setup(&url, &schema, &role).await;
    let sink = MemorySink::new();
    let g = guardrail(&sink);
    let ctx = provider(&g);

    // The owner-superuser is not bound (this is why the application needs its own role).
    assert_eq!(
        sqlx::query_scalar::<_, i64>("SELECT count(*) FROM clinic_charts")
            .fetch_one(&admin)
            .await
            .unwrap(),
        2
    );
    // Unguarded, outside and inside a transaction: nothing.
    assert_eq!(count(&mut app, "clinic_charts").await, 0);
    assert_eq!(count(&mut app, "clinic_patients").await, 0);
    let mut tx = app.begin().await.unwrap();
    assert_eq!(count(&mut tx, "clinic_charts").await, 0);

    // Guarded: the rows.
    let rows = read_charts(&ctx, &mut tx).await.unwrap();
    assert_eq!(
        rows,
        [
            ("p-1".into(), "flu".into()),
            ("p-2".into(), "measles".into())
        ]
    );
    // Right after the call, still in the same transaction: nothing again.
    assert_eq!(count(&mut tx, "clinic_charts").await, 0);
    tx.commit().await.unwrap();
    // After commit, on the same connection: nothing, and no setting left behind.
    assert_eq!(count(&mut app, "clinic_charts").await, 0);
    let left: Option<String> =
        sqlx::query_scalar("SELECT nullif(current_setting('guardrail.action', true), '')")
            .fetch_one(&mut app)
            .await
            .unwrap();
    assert_eq!(left, None);

    // What the body saw.
    let mut tx = app.begin().await.unwrap();
    let seen = settings_seen(&ctx, &mut tx).await.unwrap();
    assert_eq!(
        seen,
        (
            "rls.settings".to_owned(),
            "dr-grey".to_owned(),
            "name,diagnosis".to_owned()
        )
    );
    // A nested guarded call on the same transaction hands the outer settings back.
    assert_eq!(nested(&ctx, &mut tx).await.unwrap(), (2, 2, 2));
    tx.commit().await.unwrap();

    // Unguarded writes: an update touches no row, an insert is refused by WITH CHECK.
    let updated = sqlx::query("UPDATE clinic_charts SET diagnosis = 'x'")
        .execute(&mut app)
        .await
        .unwrap();
    assert_eq!(updated.rows_affected(), 0);
    let err = sqlx::query("INSERT INTO clinic_patients VALUES ('p-3', 'Cy', NULL)")
        .execute(&mut app)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("row-level security"), "{err}");

    // A guarded call that did not declare the table's category is refused, by name.
    let mut tx = app.begin().await.unwrap();
    let err = names_reads_charts(&ctx, &mut tx).await.unwrap_err();
    let AppError::Db(message) = &err else {
        panic!("expected the database's refusal, got {err:?}");
    };
    assert!(
        message.contains(
            r#"action "rls.names_reads_charts" did not declare PHI category "diagnosis" (reading clinic_charts)"#
        ),
        "{message}"
    );
    tx.rollback().await.unwrap();
    // The refused call's outcome is `error`, in the guardrail's sinks.
    assert_eq!(
        sink.events().last().unwrap().record.outcome,
        Some(Outcome::Error)
    );

    // The settings are a tripwire, not authentication: a session that sets them itself
    // reads the rows (docs/threat-model.md says so).
    let mut tx = app.begin().await.unwrap();
    sqlx::raw_sql(
        "SET LOCAL guardrail.action = 'forged'; SET LOCAL guardrail.categories = 'diagnosis'",
    )
    .execute(&mut *tx)
    .await
    .unwrap();
    assert_eq!(count(&mut tx, "clinic_charts").await, 2);
    tx.rollback().await.unwrap();

    app.close().await.unwrap();
    admin.close().await;
    teardown(&url, &schema, &role).await;
}
