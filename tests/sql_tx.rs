//! `#[phi_action(tx = tx)]`: the outcome event of an allowed call is appended through the
//! caller's database transaction, so it commits with the change and disappears with a
//! rollback, leaving no gap; a failed append turns the `Ok` into an error the caller rolls
//! back on; decisions (and error outcomes) stay in the guardrail's sinks. PostgreSQL: many
//! concurrent transactions appending keep one valid chain.

use guardrail_tests::AppError;
use std::sync::Arc;

use guardrail_audit::sql::postgres::sqlx::{self, Postgres, Transaction};
use guardrail_audit::sql::postgres::{self as pg, verify_postgres};
use guardrail_audit::sql::sqlite::rusqlite::{self, Connection, params};
use guardrail_audit::sql::sqlite::{self as lite, verify_sqlite};
use guardrail_audit::sql::{AsyncTxAppend, AuditTable, InTable};
use guardrail_audit::{AuditEvent, EventKind, Outcome, Record};
use guardrail_core::prelude::*;

const POLICY: &str = r#"
version = "tx-1"

[[rule]]
id = "providers-treat"
effect = "allow"
actions = ["*"]
roles = ["provider"]
purposes = ["treatment"]
"#;

/// Changes a diagnosis inside the caller's SQLite transaction.
#[phi_action(kind = "update", role = "provider", resource = "patient_record", subject = patient, tx = tx)]
fn set_diagnosis(
    ctx: &Context,
    tx: &mut rusqlite::Transaction<'_>,
    patient: &str,
    dx: &str,
) -> Result<usize, AppError> {
    let n = tx.execute(
        "UPDATE charts SET dx = ?1 WHERE patient = ?2",
        params![dx, patient],
    )?;
    if n == 0 {
        return Err(AppError::Db("no such chart".into()));
    }
    Ok(n)
}

/// Changes a diagnosis inside the caller's PostgreSQL transaction.
#[phi_action(kind = "update", role = "provider", resource = "patient_record", subject = patient, tx = tx)]
async fn set_diagnosis_pg(
    ctx: &Context,
    tx: &mut Transaction<'static, Postgres>,
    patient: &str,
    dx: &str,
) -> Result<u64, AppError> {
    let done = sqlx::query("UPDATE charts SET dx = $1 WHERE patient = $2")
        .bind(dx)
        .bind(patient)
        .execute(&mut **tx)
        .await?;
    Ok(done.rows_affected())
}

fn guardrail(sink: &MemorySink) -> Guardrail {
    Guardrail::builder()
        .policy(Policy::from_toml_str(POLICY).unwrap())
        .audit(sink.clone())
        .audit_key(AuditKey::from_bytes(b"transaction test key, 32 bytes!").unwrap())
        .build()
        .unwrap()
}

fn sqlite_db(dir: &std::path::Path) -> Connection {
    let conn = Connection::open(dir.join("clinic.db")).unwrap();
    conn.execute_batch(
        "CREATE TABLE charts (patient TEXT PRIMARY KEY, dx TEXT NOT NULL);
         INSERT INTO charts VALUES ('p-1', 'none'), ('p-2', 'none');",
    )
    .unwrap();
    lite::ensure_schema(&conn, &AuditTable::default()).unwrap();
    conn
}

fn dx(conn: &Connection, patient: &str) -> String {
    conn.query_row("SELECT dx FROM charts WHERE patient = ?1", [patient], |r| {
        r.get(0)
    })
    .unwrap()
}

fn table_events(conn: &Connection) -> Vec<AuditEvent> {
    let mut st = conn
        .prepare("SELECT line FROM guardrail_audit ORDER BY seq")
        .unwrap();
    st.query_map([], |r| r.get::<_, String>(0))
        .unwrap()
        .map(|l| AuditEvent::parse(&l.unwrap()).unwrap())
        .collect()
}

#[test]
fn the_outcome_commits_with_the_change_and_vanishes_with_a_rollback() {
    let dir = tempfile::tempdir().unwrap();
    let mut conn = sqlite_db(dir.path());
    let sink = MemorySink::new();
    let g = guardrail(&sink);
    let ctx = g
        .context(Principal::new("dr-grey").role("provider"))
        .purpose(Purpose::Treatment);

    // Committed: change and outcome are both there.
    let mut tx = conn.transaction().unwrap();
    assert_eq!(set_diagnosis(&ctx, &mut tx, "p-1", "flu").unwrap(), 1);
    tx.commit().unwrap();
    assert_eq!(dx(&conn, "p-1"), "flu");
    let events = table_events(&conn);
    assert_eq!(events.len(), 1);
    let outcome = &events[0].record;
    assert_eq!(outcome.kind, EventKind::Outcome);
    assert_eq!(outcome.outcome, Some(Outcome::Ok));
    assert_eq!(outcome.subject.as_deref(), Some(&*g.subject_token(&"p-1")));
    // The decision went to the guardrail's sink, with the same request id; the outcome did not.
    let decisions = sink.events();
    assert_eq!(decisions.len(), 1);
    assert_eq!(decisions[0].record.kind, EventKind::Decision);
    assert_eq!(decisions[0].record.request_id, outcome.request_id);

    // Rolled back: neither the change nor its outcome remain.
    let mut tx = conn.transaction().unwrap();
    set_diagnosis(&ctx, &mut tx, "p-2", "measles").unwrap();
    assert_eq!(
        table_events_in(&tx).len(),
        2,
        "visible inside the transaction"
    );
    tx.rollback().unwrap();
    assert_eq!(dx(&conn, "p-2"), "none");
    assert_eq!(table_events(&conn).len(), 1);

    // The next committed call continues the chain without a gap.
    let mut tx = conn.transaction().unwrap();
    set_diagnosis(&ctx, &mut tx, "p-2", "mumps").unwrap();
    tx.commit().unwrap();
    let events = table_events(&conn);
    assert_eq!(events.iter().map(|e| e.seq).collect::<Vec<_>>(), vec![0, 1]);
    assert_eq!(
        verify_sqlite(&conn, &AuditTable::default()).unwrap().events,
        2
    );
    assert_eq!(sink.len(), 3, "three decisions, one per call");
    // No raw patient id in either trail.
    for lines in [
        sink.to_lines(),
        events.iter().map(|e| e.line().to_owned()).collect(),
    ] {
        assert!(!lines.contains("\"p-1\"") && !lines.contains("\"p-2\""));
    }
}

fn table_events_in(tx: &rusqlite::Transaction<'_>) -> Vec<AuditEvent> {
    table_events(tx)
}

#[test]
fn an_error_outcome_goes_to_the_guardrail_sinks_and_a_denial_runs_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut conn = sqlite_db(dir.path());
    let sink = MemorySink::new();
    let g = guardrail(&sink);
    let dr = g
        .context(Principal::new("dr-grey").role("provider"))
        .purpose(Purpose::Treatment);

    // The body fails: the caller rolls back, and the error outcome survives in the sink.
    let mut tx = conn.transaction().unwrap();
    assert!(matches!(
        set_diagnosis(&dr, &mut tx, "p-404", "flu"),
        Err(AppError::Db(m)) if m == "no such chart"
    ));
    tx.rollback().unwrap();
    let events = sink.events();
    assert_eq!(events.len(), 2);
    assert_eq!(events[1].record.outcome, Some(Outcome::Error));
    assert!(table_events(&conn).is_empty());

    // Denied (wrong purpose): the body never ran, nothing in the table.
    let nosy = g
        .context(Principal::new("dr-grey").role("provider"))
        .purpose(Purpose::Research);
    let mut tx = conn.transaction().unwrap();
    assert!(matches!(
        set_diagnosis(&nosy, &mut tx, "p-1", "gossip"),
        Err(AppError::Guard(GuardError::Denied { .. }))
    ));
    tx.commit().unwrap();
    assert_eq!(dx(&conn, "p-1"), "none");
    assert!(table_events(&conn).is_empty());
    assert_eq!(sink.events()[2].record.decision.as_deref(), Some("deny"));
}

#[test]
fn a_failed_outcome_append_fails_the_call_closed() {
    let dir = tempfile::tempdir().unwrap();
    let mut conn = sqlite_db(dir.path());
    // The audit tables are gone: the outcome cannot be recorded in the transaction.
    conn.execute_batch("DROP TABLE guardrail_audit; DROP TABLE guardrail_audit_head;")
        .unwrap();
    let sink = MemorySink::new();
    let g = guardrail(&sink);
    let dr = g
        .context(Principal::new("dr-grey").role("provider"))
        .purpose(Purpose::Treatment);
    let mut tx = conn.transaction().unwrap();
    let r = set_diagnosis(&dr, &mut tx, "p-1", "flu");
    assert!(
        matches!(r, Err(AppError::Guard(GuardError::AuditUnavailable { .. }))),
        "{r:?}"
    );
    // The caller has an error in hand and rolls back: no change without its record.
    tx.rollback().unwrap();
    assert_eq!(dx(&conn, "p-1"), "none");
}

#[test]
fn a_half_done_append_is_undone_even_if_the_caller_commits_anyway() {
    let dir = tempfile::tempdir().unwrap();
    let mut conn = sqlite_db(dir.path());
    // The event insert succeeds, the head update fails: the append must not leave the
    // inserted event behind for a careless caller to commit.
    conn.execute_batch(
        "CREATE TRIGGER head_frozen BEFORE UPDATE ON guardrail_audit_head
         BEGIN SELECT RAISE(ABORT, 'head is frozen'); END;",
    )
    .unwrap();
    let sink = MemorySink::new();
    let g = guardrail(&sink);
    let dr = g
        .context(Principal::new("dr-grey").role("provider"))
        .purpose(Purpose::Treatment);
    let mut tx = conn.transaction().unwrap();
    let r = set_diagnosis(&dr, &mut tx, "p-1", "flu");
    assert!(
        matches!(r, Err(AppError::Guard(GuardError::AuditUnavailable { .. }))),
        "{r:?}"
    );
    tx.commit().unwrap();
    assert!(table_events(&conn).is_empty(), "no half-appended event");
    assert_eq!(
        verify_sqlite(&conn, &AuditTable::default()).unwrap().events,
        0
    );
}

// ---------------------------------------------------------------------------------------
// PostgreSQL
// ---------------------------------------------------------------------------------------

fn unique(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!("{prefix}_{}_{nanos}", std::process::id())
}

/// A pool whose connections use their own schema, so the default table name is private to
/// this test.
async fn pool_in_schema(url: &str, schema: &str) -> sqlx::PgPool {
    let admin = sqlx::PgPool::connect(url).await.unwrap();
    sqlx::raw_sql(&format!("CREATE SCHEMA {schema}"))
        .execute(&admin)
        .await
        .unwrap();
    admin.close().await;
    let options: sqlx::postgres::PgConnectOptions = url.parse().unwrap();
    sqlx::postgres::PgPoolOptions::new()
        .max_connections(8)
        .connect_with(options.options([("search_path", schema)]))
        .await
        .unwrap()
}

async fn drop_schema(url: &str, schema: &str) {
    let admin = sqlx::PgPool::connect(url).await.unwrap();
    let _ = sqlx::raw_sql(&format!("DROP SCHEMA {schema} CASCADE"))
        .execute(&admin)
        .await;
}

#[tokio::test]
async fn postgres_outcome_commits_with_the_change_and_vanishes_with_a_rollback() {
    let Some(url) = guardrail_tests::pg::database_url(
        "postgres_outcome_commits_with_the_change_and_vanishes_with_a_rollback",
    ) else {
        return;
    };
    let schema = unique("gr_tx");
    let pool = pool_in_schema(&url, &schema).await;
    sqlx::raw_sql(
        "CREATE TABLE charts (patient TEXT PRIMARY KEY, dx TEXT NOT NULL);
         INSERT INTO charts VALUES ('p-1', 'none'), ('p-2', 'none');",
    )
    .execute(&pool)
    .await
    .unwrap();
    let table = AuditTable::default();
    pg::ensure_schema(&pool, &table).await.unwrap();
    let sink = MemorySink::new();
    let g = guardrail(&sink);
    let ctx = g
        .context(Principal::new("dr-grey").role("provider"))
        .purpose(Purpose::Treatment);

    let mut tx = pool.begin().await.unwrap();
    assert_eq!(
        set_diagnosis_pg(&ctx, &mut tx, "p-1", "flu").await.unwrap(),
        1
    );
    tx.commit().await.unwrap();

    let mut tx = pool.begin().await.unwrap();
    set_diagnosis_pg(&ctx, &mut tx, "p-2", "measles")
        .await
        .unwrap();
    tx.rollback().await.unwrap();

    let mut tx = pool.begin().await.unwrap();
    set_diagnosis_pg(&ctx, &mut tx, "p-2", "mumps")
        .await
        .unwrap();
    tx.commit().await.unwrap();

    let rows: Vec<(String, String)> =
        sqlx::query_as("SELECT patient, dx FROM charts ORDER BY patient")
            .fetch_all(&pool)
            .await
            .unwrap();
    assert_eq!(
        rows,
        vec![("p-1".into(), "flu".into()), ("p-2".into(), "mumps".into())]
    );
    let report = verify_postgres(&pool, &table).await.unwrap();
    assert_eq!(
        report.events, 2,
        "the rolled-back outcome left no event and no gap"
    );
    let lines: Vec<String> = sqlx::query_scalar("SELECT line FROM guardrail_audit ORDER BY seq")
        .fetch_all(&pool)
        .await
        .unwrap();
    for line in &lines {
        let e = AuditEvent::parse(line).unwrap();
        assert_eq!(e.record.outcome, Some(Outcome::Ok));
        assert!(!line.contains("\"p-1\"") && !line.contains("\"p-2\""));
    }
    assert_eq!(sink.len(), 3);
    pool.close().await;
    drop_schema(&url, &schema).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_concurrent_transactions_keep_one_valid_chain() {
    let Some(url) =
        guardrail_tests::pg::database_url("postgres_concurrent_transactions_keep_one_valid_chain")
    else {
        return;
    };
    let schema = unique("gr_txc");
    let pool = pool_in_schema(&url, &schema).await;
    let table = Arc::new(AuditTable::new("chained").unwrap());
    pg::ensure_schema(&pool, &table).await.unwrap();

    // Two transactions hold appends at once: the second waits for the first's head lock.
    let mut a = pool.begin().await.unwrap();
    InTable::new(&table, &mut a)
        .append_in_tx(Record::new(EventKind::Outcome))
        .await
        .unwrap();
    let second = {
        let (pool, table) = (pool.clone(), table.clone());
        tokio::spawn(async move {
            let mut b = pool.begin().await.unwrap();
            let receipt = InTable::new(&table, &mut b)
                .append_in_tx(Record::new(EventKind::Outcome))
                .await
                .unwrap();
            b.commit().await.unwrap();
            receipt.seq
        })
    };
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    assert!(
        !second.is_finished(),
        "the second append must wait for the first transaction"
    );
    a.commit().await.unwrap();
    assert_eq!(second.await.unwrap(), 1);

    // Many tasks, each committing or rolling back: one contiguous chain of the commits.
    let tasks: Vec<_> = (0..8u64)
        .map(|t| {
            let (pool, table) = (pool.clone(), table.clone());
            tokio::spawn(async move {
                let mut committed = Vec::new();
                for i in 0..15u64 {
                    let mut tx = pool.begin().await.unwrap();
                    let mut r = Record::new(EventKind::Outcome);
                    r.request_id = Some(format!("t{t}-{i}").into());
                    let receipt = InTable::new(&table, &mut tx).append_in_tx(r).await.unwrap();
                    if (t + i) % 4 == 0 {
                        tx.rollback().await.unwrap();
                    } else {
                        tx.commit().await.unwrap();
                        committed.push(receipt.seq);
                    }
                }
                committed
            })
        })
        .collect();
    let mut seqs = Vec::new();
    for t in tasks {
        seqs.extend(t.await.unwrap());
    }
    seqs.sort_unstable();
    let n = seqs.len() as u64;
    assert_eq!(
        seqs,
        (2..2 + n).collect::<Vec<u64>>(),
        "committed seqs are contiguous"
    );
    let report = verify_postgres(&pool, &table).await.unwrap();
    assert_eq!(report.events, 2 + n);
    pool.close().await;
    drop_schema(&url, &schema).await;
}
