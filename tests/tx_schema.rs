//! A `tx = ..` call on a database whose audit tables were never created (`ensure_schema`
//! forgotten) is refused *before* its body runs, with an error naming `ensure_schema`, for
//! the rusqlite, the sqlx SQLite and the sqlx PostgreSQL paths alike (PostgreSQL: the
//! default chain and a named one); the decision and an `error` outcome stay in the
//! guardrail's sinks, and nothing of the body reaches the database.

use std::sync::atomic::{AtomicUsize, Ordering};

use guardrail_tests::AppError;

use guardrail_audit::sql::sqlite::rusqlite::{self, Connection, params};
use guardrail_audit::sql::sqlx_sqlite::sqlx;
use guardrail_audit::{EventKind, Outcome};
use guardrail_core::prelude::*;

const POLICY: &str = r#"
version = "tx-schema-1"

[[rule]]
id = "providers-treat"
effect = "allow"
actions = ["*"]
roles = ["provider"]
purposes = ["treatment"]
"#;

#[phi_action(kind = "update", role = "provider", resource = "patient_record", subject = patient, tx = tx)]
fn set_dx(
    ctx: &Context,
    tx: &mut rusqlite::Transaction<'_>,
    patient: &str,
) -> Result<usize, AppError> {
    Ok(tx.execute(
        "UPDATE charts SET dx = 'flu' WHERE patient = ?1",
        params![patient],
    )?)
}

#[phi_action(kind = "update", role = "provider", resource = "patient_record", subject = patient, tx = tx)]
async fn set_dx_sqlx(
    ctx: &Context,
    tx: &mut sqlx::Transaction<'_, sqlx::Sqlite>,
    patient: &str,
) -> Result<u64, AppError> {
    let done = sqlx::query("UPDATE charts SET dx = 'flu' WHERE patient = ?1")
        .bind(patient)
        .execute(&mut **tx)
        .await
        .map_err(|e| AppError::Db(e.to_string()))?;
    Ok(done.rows_affected())
}

/// How many times the PostgreSQL body ran (the refused call must leave it unchanged: its
/// transaction is aborted afterwards, so the database alone cannot tell).
static PG_BODY_RUNS: AtomicUsize = AtomicUsize::new(0);

#[phi_action(kind = "update", role = "provider", resource = "patient_record", subject = patient, tx = tx)]
async fn set_dx_pg(
    ctx: &Context,
    tx: &mut (dyn guardrail_audit::sql::AsyncTxAppend + '_),
    patient: &str,
) -> Result<u64, AppError> {
    let _ = patient;
    PG_BODY_RUNS.fetch_add(1, Ordering::SeqCst);
    Ok(1)
}

fn guardrail(sink: &MemorySink) -> Guardrail {
    Guardrail::builder()
        .policy(Policy::from_toml_str(POLICY).unwrap())
        .audit(sink.clone())
        .audit_key(AuditKey::from_bytes(b"tx schema test key, 32 bytes!!!!").unwrap())
        .build()
        .unwrap()
}

/// dr-grey, a provider, for treatment.
fn provider(g: &Guardrail) -> Context {
    g.context(Principal::new("dr-grey").role("provider"))
        .purpose(Purpose::Treatment)
}

/// The refusal names `ensure_schema` and happened before the body; the sink holds the
/// decision (allow) and the `error` outcome.
fn assert_refused_before_body(result: Result<impl std::fmt::Debug, AppError>, sink: &MemorySink) {
    let err = match result {
        Err(AppError::Guard(e @ GuardError::AuditUnavailable { .. })) => e,
        other => panic!("expected AuditUnavailable, got {other:?}"),
    };
    let text = err.to_string();
    assert!(text.contains("ensure_schema"), "{text}");
    assert!(text.contains("guardrail_audit"), "{text}");
    let events = sink.events();
    assert_eq!(events.len(), 2, "{events:?}");
    assert_eq!(events[0].record.kind, EventKind::Decision);
    assert_eq!(events[1].record.outcome, Some(Outcome::Error));
}

#[test]
fn rusqlite_without_ensure_schema_is_refused_before_the_body() {
    let dir = tempfile::tempdir().unwrap();
    let mut conn = Connection::open(dir.path().join("clinic.db")).unwrap();
    conn.execute_batch(
        "CREATE TABLE charts (patient TEXT PRIMARY KEY, dx TEXT NOT NULL);
         INSERT INTO charts VALUES ('p-1', 'none');",
    )
    .unwrap();
    let sink = MemorySink::new();
    let g = guardrail(&sink);
    let ctx = provider(&g);
    let mut tx = conn.transaction().unwrap();
    let result = set_dx(&ctx, &mut tx, "p-1");
    // Before the body: the update never ran, even inside the transaction.
    let dx: String = tx
        .query_row("SELECT dx FROM charts WHERE patient = 'p-1'", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(dx, "none", "the body must not run");
    assert_refused_before_body(result, &sink);
}

#[tokio::test]
async fn sqlx_sqlite_without_ensure_schema_is_refused_before_the_body() {
    use sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions};
    let dir = tempfile::tempdir().unwrap();
    let pool = SqlitePoolOptions::new()
        .max_connections(1)
        .connect_with(
            SqliteConnectOptions::new()
                .filename(dir.path().join("clinic.db"))
                .create_if_missing(true),
        )
        .await
        .unwrap();
    sqlx::raw_sql(
        "CREATE TABLE charts (patient TEXT PRIMARY KEY, dx TEXT NOT NULL);
         INSERT INTO charts VALUES ('p-1', 'none');",
    )
    .execute(&pool)
    .await
    .unwrap();
    let sink = MemorySink::new();
    let g = guardrail(&sink);
    let ctx = provider(&g);
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await.unwrap();
    let result = set_dx_sqlx(&ctx, &mut tx, "p-1").await;
    let dx: String = sqlx::query_scalar("SELECT dx FROM charts WHERE patient = 'p-1'")
        .fetch_one(&mut *tx)
        .await
        .unwrap();
    assert_eq!(dx, "none", "the body must not run");
    tx.rollback().await.unwrap();
    assert_refused_before_body(result, &sink);
    pool.close().await;
}

#[tokio::test]
async fn sqlx_postgres_without_ensure_schema_is_refused_before_the_body() {
    use guardrail_audit::merkle::ChainId;
    use guardrail_audit::sql::postgres::{ChainWriter, sqlx as pgx};
    use guardrail_audit::sql::{AuditTable, InTable};
    let Some(url) = guardrail_tests::pg::database_url("tx_schema_postgres") else {
        return;
    };
    let schema = format!("gr_tx_schema_{}", std::process::id());
    let admin = pgx::PgPool::connect(&url).await.unwrap();
    pgx::raw_sql(&format!(
        "DROP SCHEMA IF EXISTS {schema} CASCADE; CREATE SCHEMA {schema}"
    ))
    .execute(&admin)
    .await
    .unwrap();
    let options: pgx::postgres::PgConnectOptions = url.parse().unwrap();
    let pool = pgx::postgres::PgPoolOptions::new()
        .max_connections(1)
        .connect_with(options.options([("search_path", schema.as_str())]))
        .await
        .unwrap();
    let writer = ChainWriter::new(AuditTable::default(), ChainId::new("replica-1").unwrap());
    for chain in ["default", "named"] {
        let sink = MemorySink::new();
        let g = guardrail(&sink);
        let ctx = provider(&g);
        let runs = PG_BODY_RUNS.load(Ordering::SeqCst);
        let mut tx = pool.begin().await.unwrap();
        let result = if chain == "default" {
            set_dx_pg(&ctx, &mut *tx, "p-1").await
        } else {
            set_dx_pg(&ctx, &mut writer.on(&mut tx), "p-1").await
        };
        assert_eq!(
            PG_BODY_RUNS.load(Ordering::SeqCst),
            runs,
            "{chain} chain: the body must not run"
        );
        tx.rollback().await.unwrap();
        assert_refused_before_body(result, &sink);
    }
    // With the schema the same calls run their bodies (the check refuses only what would fail).
    guardrail_audit::sql::postgres::ensure_schema(&pool, &AuditTable::default())
        .await
        .unwrap();
    let sink = MemorySink::new();
    let g = guardrail(&sink);
    let ctx = provider(&g);
    let runs = PG_BODY_RUNS.load(Ordering::SeqCst);
    let mut tx = pool.begin().await.unwrap();
    set_dx_pg(
        &ctx,
        &mut InTable::new(&AuditTable::default(), &mut *tx),
        "p-1",
    )
    .await
    .unwrap();
    set_dx_pg(&ctx, &mut writer.on(&mut tx), "p-1")
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(PG_BODY_RUNS.load(Ordering::SeqCst), runs + 2);
    pool.close().await;
    pgx::raw_sql(&format!("DROP SCHEMA {schema} CASCADE"))
        .execute(&admin)
        .await
        .unwrap();
    admin.close().await;
}
