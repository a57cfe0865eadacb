//! The SQLite audit table over sqlx (feature `sqlx-sqlite`): `#[phi_action(tx = tx)]` on an
//! `async fn` taking `&mut sqlx::Transaction<'_, Sqlite>` records its outcome in the caller's
//! transaction (commit keeps it, an error rolls it back with the change); a rolled-back
//! transaction leaves neither event nor gap; a failed or cancelled append leaves nothing a
//! careless commit could keep; eight concurrent guarded transactions make one contiguous
//! chain; the schema is the rusqlite module's, and each side verifies what the other wrote.

use guardrail_tests::AppError;
use std::future::Future;
use std::path::Path;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context as TaskContext, Waker};

use guardrail_audit::sql::sqlite::rusqlite::{self, Connection};
use guardrail_audit::sql::sqlite::{self as lite, verify_sqlite};
use guardrail_audit::sql::sqlx_sqlite::sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions,
};
use guardrail_audit::sql::sqlx_sqlite::sqlx::{self, Sqlite, Transaction};
use guardrail_audit::sql::sqlx_sqlite::{self as sx, SqlitePoolSink, verify_sqlite_pool};
use guardrail_audit::sql::{AsyncTxAppend, AuditTable, InTable, TableVerifyError, TxAppend};
use guardrail_audit::{AuditEvent, EventKind, Outcome, Record};
use guardrail_core::prelude::*;

const POLICY: &str = r#"
version = "sqlx-sqlite-1"

[[rule]]
id = "providers-treat"
effect = "allow"
actions = ["*"]
roles = ["provider"]
purposes = ["treatment"]
"#;

/// Changes a diagnosis inside the caller's sqlx SQLite transaction.
#[phi_action(kind = "update", role = "provider", resource = "patient_record", subject = patient, tx = tx)]
async fn set_diagnosis(
    ctx: &Context,
    tx: &mut sqlx::Transaction<'_, sqlx::Sqlite>,
    patient: &str,
    dx: &str,
) -> Result<u64, AppError> {
    let done = sqlx::query("UPDATE charts SET dx = ?1 WHERE patient = ?2")
        .bind(dx)
        .bind(patient)
        .execute(&mut **tx)
        .await?;
    if done.rows_affected() == 0 {
        return Err(AppError::Db("no such chart".into()));
    }
    Ok(done.rows_affected())
}

fn guardrail(sink: &MemorySink) -> Guardrail {
    Guardrail::builder()
        .policy(Policy::from_toml_str(POLICY).unwrap())
        .audit(sink.clone())
        .audit_key(AuditKey::from_bytes(b"sqlx sqlite test key, 32 bytes!!").unwrap())
        .build()
        .unwrap()
}

fn options(path: &Path) -> SqliteConnectOptions {
    SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .busy_timeout(std::time::Duration::from_secs(10))
}

async fn pool(path: &Path, connections: u32) -> SqlitePool {
    SqlitePoolOptions::new()
        .max_connections(connections)
        .connect_with(options(path))
        .await
        .unwrap()
}

/// A clinic database with two charts and the default audit table, created through sqlx.
async fn clinic(path: &Path, connections: u32) -> SqlitePool {
    let pool = pool(path, connections).await;
    sqlx::raw_sql(
        "CREATE TABLE charts (patient TEXT PRIMARY KEY, dx TEXT NOT NULL);
         INSERT INTO charts VALUES ('p-1', 'none'), ('p-2', 'none');",
    )
    .execute(&pool)
    .await
    .unwrap();
    sx::ensure_schema(&pool, &AuditTable::default())
        .await
        .unwrap();
    pool
}

async fn dx(pool: &SqlitePool, patient: &str) -> String {
    sqlx::query_scalar("SELECT dx FROM charts WHERE patient = ?1")
        .bind(patient)
        .fetch_one(pool)
        .await
        .unwrap()
}

async fn events_of(pool: &SqlitePool, table: &str) -> Vec<AuditEvent> {
    let lines: Vec<String> = sqlx::query_scalar(&format!("SELECT line FROM {table} ORDER BY seq"))
        .fetch_all(pool)
        .await
        .unwrap();
    lines
        .iter()
        .map(|l| AuditEvent::parse(l).unwrap())
        .collect()
}

async fn begin(pool: &SqlitePool) -> Transaction<'static, Sqlite> {
    pool.begin_with("BEGIN IMMEDIATE").await.unwrap()
}

#[tokio::test]
async fn the_macro_commits_the_outcome_with_the_change_and_an_error_rolls_back_without_one() {
    let dir = tempfile::tempdir().unwrap();
    let pool = clinic(&dir.path().join("clinic.db"), 2).await;
    let sink = MemorySink::new();
    let g = guardrail(&sink);
    let ctx = g
        .context(Principal::new("dr-grey").role("provider"))
        .purpose(Purpose::Treatment);

    // Commit: the change and its `ok` outcome, with the decision's request id.
    let mut tx = begin(&pool).await;
    assert_eq!(set_diagnosis(&ctx, &mut tx, "p-1", "flu").await.unwrap(), 1);
    tx.commit().await.unwrap();
    assert_eq!(dx(&pool, "p-1").await, "flu");
    let events = events_of(&pool, "guardrail_audit").await;
    assert_eq!(events.len(), 1);
    let outcome = &events[0].record;
    assert_eq!(outcome.kind, EventKind::Outcome);
    assert_eq!(outcome.outcome, Some(Outcome::Ok));
    assert_eq!(outcome.action_kind.as_deref(), Some("update"));
    assert_eq!(outcome.subject.as_deref(), Some(&*g.subject_token(&"p-1")));
    let decisions = sink.events();
    assert_eq!(decisions.len(), 1);
    assert_eq!(decisions[0].record.kind, EventKind::Decision);
    assert_eq!(decisions[0].record.request_id, outcome.request_id);
    assert_eq!(outcome.decision_seq, Some(decisions[0].seq));

    // The body fails: the caller rolls back; no outcome in the table, the error outcome is in
    // the guardrail's sink.
    let mut tx = begin(&pool).await;
    let r = set_diagnosis(&ctx, &mut tx, "p-404", "flu").await;
    assert!(
        matches!(&r, Err(AppError::Db(m)) if m == "no such chart"),
        "{r:?}"
    );
    tx.rollback().await.unwrap();
    assert_eq!(events_of(&pool, "guardrail_audit").await.len(), 1);
    let sunk = sink.events();
    assert_eq!(sunk.len(), 3);
    assert_eq!(sunk[2].record.outcome, Some(Outcome::Error));

    // Denied: nothing runs, nothing in the table.
    let nosy = g
        .context(Principal::new("dr-grey").role("provider"))
        .purpose(Purpose::Research);
    let mut tx = begin(&pool).await;
    let r = set_diagnosis(&nosy, &mut tx, "p-2", "gossip").await;
    assert!(
        matches!(r, Err(AppError::Guard(GuardError::Denied { .. }))),
        "{r:?}"
    );
    tx.commit().await.unwrap();
    assert_eq!(dx(&pool, "p-2").await, "none");

    // No raw patient id anywhere in the table.
    for e in events_of(&pool, "guardrail_audit").await {
        assert!(!e.line().contains("\"p-1\"") && !e.line().contains("\"p-2\""));
    }
    assert_eq!(
        verify_sqlite_pool(&pool, &AuditTable::default())
            .await
            .unwrap()
            .events,
        1
    );
}

#[tokio::test]
async fn a_rolled_back_transaction_leaves_neither_event_nor_gap() {
    let dir = tempfile::tempdir().unwrap();
    let pool = clinic(&dir.path().join("clinic.db"), 2).await;
    let table = AuditTable::default();

    let mut tx = begin(&pool).await;
    let first = tx
        .append_in_tx(Record::new(EventKind::Outcome))
        .await
        .unwrap();
    assert_eq!(first.seq, 0);
    let inside: i64 = sqlx::query_scalar("SELECT count(*) FROM guardrail_audit")
        .fetch_one(&mut *tx)
        .await
        .unwrap();
    assert_eq!(inside, 1, "visible inside the transaction");
    tx.rollback().await.unwrap();
    assert!(events_of(&pool, "guardrail_audit").await.is_empty());

    // The next committed append takes seq 0 again: no gap.
    let mut tx = begin(&pool).await;
    let again = tx
        .append_in_tx(Record::new(EventKind::Outcome))
        .await
        .unwrap();
    let next = tx
        .append_in_tx(Record::new(EventKind::Outcome))
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert_eq!((again.seq, next.seq), (0, 1));
    let report = verify_sqlite_pool(&pool, &table).await.unwrap();
    assert_eq!(report.events, 2);
    assert_eq!(report.head.next_seq, 2);
}

#[tokio::test]
async fn a_failed_append_leaves_nothing_even_if_the_caller_commits_anyway() {
    let dir = tempfile::tempdir().unwrap();
    let pool = clinic(&dir.path().join("clinic.db"), 1).await;
    // The event insert succeeds, the head update fails: the savepoint must take the insert
    // back, so a caller that commits regardless keeps no half append.
    sqlx::raw_sql(
        "CREATE TRIGGER head_frozen BEFORE UPDATE OF head ON guardrail_audit_head
         BEGIN SELECT RAISE(ABORT, 'head is frozen'); END;",
    )
    .execute(&pool)
    .await
    .unwrap();
    let mut tx = begin(&pool).await;
    sqlx::query("UPDATE charts SET dx = 'kept' WHERE patient = 'p-1'")
        .execute(&mut *tx)
        .await
        .unwrap();
    let err = tx
        .append_in_tx(Record::new(EventKind::Outcome))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("head is frozen"), "{err}");
    tx.commit().await.unwrap();
    assert!(events_of(&pool, "guardrail_audit").await.is_empty());
    assert_eq!(
        dx(&pool, "p-1").await,
        "kept",
        "the caller's own change is untouched"
    );
    assert_eq!(
        verify_sqlite_pool(&pool, &AuditTable::default())
            .await
            .unwrap()
            .events,
        0
    );
}

/// Polls `fut` `polls` times, yielding to the runtime (and the SQLite worker thread) between
/// polls, then drops it. Returns whether it finished.
async fn poll_then_drop<F: Future>(fut: F, polls: usize) -> bool {
    let mut fut = pin!(fut);
    let mut cx = TaskContext::from_waker(Waker::noop());
    for _ in 0..polls {
        if fut.as_mut().poll(&mut cx).is_ready() {
            return true;
        }
        tokio::time::sleep(std::time::Duration::from_micros(300)).await;
    }
    false
}

#[tokio::test]
async fn an_append_cancelled_at_any_point_leaves_a_whole_event_or_none() {
    let dir = tempfile::tempdir().unwrap();
    let pool = clinic(&dir.path().join("clinic.db"), 1).await;
    let table = AuditTable::default();
    let mut finished = 0;
    let mut cancelled = 0;
    for polls in 0..40 {
        let mut tx = begin(&pool).await;
        let done = poll_then_drop(tx.append_in_tx(Record::new(EventKind::Outcome)), polls).await;
        if done {
            finished += 1;
        } else {
            cancelled += 1;
        }
        // A careless caller commits whatever the transaction holds.
        tx.commit().await.unwrap();
        let report = verify_sqlite_pool(&pool, &table).await.unwrap();
        assert_eq!(
            report.events,
            events_of(&pool, "guardrail_audit").await.len() as u64,
            "after {polls} polls"
        );
    }
    assert!(
        finished > 0 && cancelled > 0,
        "{finished} finished, {cancelled} cancelled"
    );
}

#[tokio::test]
async fn an_append_outside_a_transaction_or_without_the_schema_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let pool = clinic(&dir.path().join("clinic.db"), 1).await;
    let mut conn = pool.acquire().await.unwrap();
    let err = (*conn)
        .append_in_tx(Record::new(EventKind::Outcome))
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("not inside a transaction"),
        "{err}"
    );
    drop(conn);
    assert!(events_of(&pool, "guardrail_audit").await.is_empty());

    let other = AuditTable::new("never_created").unwrap();
    let mut tx = begin(&pool).await;
    let err = InTable::new(&other, &mut tx)
        .append_in_tx(Record::new(EventKind::Outcome))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("never_created_head"), "{err}");
    tx.rollback().await.unwrap();
}

#[tokio::test]
async fn a_table_written_by_sqlx_verifies_with_rusqlite_and_back() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("shared.db");
    let table = AuditTable::new("clinic_audit").unwrap();
    let pool = pool(&path, 2).await;
    sx::ensure_schema(&pool, &table).await.unwrap();
    let mut tx = begin(&pool).await;
    for i in 0..3 {
        let mut r = Record::new(EventKind::Outcome);
        r.request_id = Some(format!("sqlx-{i}").into());
        r.subject = Some("hmac-sha256:ab".into());
        r.action = Some("clinic::read_chart".into());
        InTable::new(&table, &mut tx).append_in_tx(r).await.unwrap();
    }
    tx.commit().await.unwrap();

    // rusqlite reads and verifies what sqlx wrote, then continues the chain.
    let path2 = path.clone();
    let table2 = table.clone();
    tokio::task::spawn_blocking(move || {
        let mut conn = Connection::open(&path2).unwrap();
        lite::ensure_schema(&conn, &table2).unwrap();
        assert_eq!(verify_sqlite(&conn, &table2).unwrap().events, 3);
        let tx = conn.transaction().unwrap();
        let mut tx = tx;
        for i in 0..2 {
            let mut r = Record::new(EventKind::Decision);
            r.request_id = Some(format!("rusqlite-{i}").into());
            InTable::new(&table2, &mut tx).append_in_tx(r).unwrap();
        }
        tx.commit().unwrap();
    })
    .await
    .unwrap();

    // And sqlx verifies the mixed chain.
    let report = verify_sqlite_pool(&pool, &table).await.unwrap();
    assert_eq!(report.events, 5);
    let ids: Vec<String> = events_of(&pool, "clinic_audit")
        .await
        .iter()
        .map(|e| e.record.request_id.as_deref().unwrap_or("").to_owned())
        .collect();
    assert_eq!(
        ids,
        ["sqlx-0", "sqlx-1", "sqlx-2", "rusqlite-0", "rusqlite-1"]
    );

    // A column edited behind the chain's back is caught by both.
    sqlx::query("UPDATE clinic_audit SET subject = 'hmac-sha256:cd' WHERE seq = 1")
        .execute(&pool)
        .await
        .unwrap();
    let err = verify_sqlite_pool(&pool, &table).await.unwrap_err();
    assert!(
        matches!(
            &err,
            TableVerifyError::Column {
                seq: 1,
                column: "subject",
                ..
            }
        ),
        "{err:?}"
    );
    let conn = Connection::open(&path).unwrap();
    assert!(matches!(
        verify_sqlite(&conn, &table),
        Err(TableVerifyError::Column {
            seq: 1,
            column: "subject",
            ..
        })
    ));
}

/// The `CREATE` statements of a database's audit tables and indexes, as SQLite stores them.
fn schema_of(conn: &Connection) -> Vec<(String, String, Option<String>)> {
    let mut st = conn
        .prepare("SELECT type, name, sql FROM sqlite_master WHERE name LIKE 'guardrail_audit%' ORDER BY name")
        .unwrap();
    st.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .collect::<Result<_, rusqlite::Error>>()
        .unwrap()
}

#[tokio::test]
async fn sqlx_and_rusqlite_create_the_same_schema() {
    let dir = tempfile::tempdir().unwrap();
    let by_sqlx = dir.path().join("sqlx.db");
    let p = pool(&by_sqlx, 1).await;
    sx::ensure_schema(&p, &AuditTable::default()).await.unwrap();
    // Idempotent, like the rusqlite one.
    sx::ensure_schema(&p, &AuditTable::default()).await.unwrap();
    p.close().await;
    let by_rusqlite = Connection::open(dir.path().join("rusqlite.db")).unwrap();
    lite::ensure_schema(&by_rusqlite, &AuditTable::default()).unwrap();
    let a = schema_of(&Connection::open(&by_sqlx).unwrap());
    let b = schema_of(&by_rusqlite);
    assert_eq!(a.len(), 7, "three tables, four indexes: {a:?}");
    assert_eq!(a, b);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn eight_concurrent_guarded_transactions_make_one_contiguous_chain() {
    let dir = tempfile::tempdir().unwrap();
    let pool = clinic(&dir.path().join("clinic.db"), 8).await;
    sqlx::raw_sql(
        "INSERT INTO charts SELECT 'task-' || value, 'none' FROM json_each('[0,1,2,3,4,5,6,7]');",
    )
    .execute(&pool)
    .await
    .unwrap();
    let sink = MemorySink::new();
    let g = guardrail(&sink);
    let rounds = 6u64;
    let tasks: Vec<_> = (0..8u64)
        .map(|t| {
            let (pool, g) = (pool.clone(), g.clone());
            tokio::spawn(async move {
                let ctx = g
                    .context(Principal::new("dr-grey").role("provider"))
                    .purpose(Purpose::Treatment);
                let patient = format!("task-{t}");
                let mut committed = 0u64;
                for i in 0..rounds {
                    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await.unwrap();
                    set_diagnosis(&ctx, &mut tx, &patient, &format!("dx-{i}"))
                        .await
                        .unwrap();
                    if (t + i) % 3 == 0 {
                        tx.rollback().await.unwrap();
                    } else {
                        tx.commit().await.unwrap();
                        committed += 1;
                    }
                }
                committed
            })
        })
        .collect();
    let mut committed = 0;
    for t in tasks {
        committed += t.await.unwrap();
    }
    let events = events_of(&pool, "guardrail_audit").await;
    assert_eq!(
        events.iter().map(|e| e.seq).collect::<Vec<_>>(),
        (0..committed).collect::<Vec<u64>>(),
        "the committed outcomes are one contiguous chain"
    );
    assert!(events.iter().all(|e| e.record.outcome == Some(Outcome::Ok)));
    let report = verify_sqlite_pool(&pool, &AuditTable::default())
        .await
        .unwrap();
    assert_eq!(report.events, committed);
    assert_eq!(sink.len() as u64, 8 * rounds, "one decision per call");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pool_sink_appends_from_async_code_and_rusqlite_verifies_its_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.db");
    let table = AuditTable::new("sink_audit").unwrap();
    let sink = Arc::new(
        SqlitePoolSink::open(&path, table.clone())
            .unwrap()
            .named("sqlite-audit"),
    );
    assert_eq!(AuditSink::name(&*sink), "sqlite-audit");
    // From inside the runtime (the sink blocks on its own thread, not on this runtime).
    for i in 0..5u64 {
        let mut r = Record::new(EventKind::Decision);
        r.count = Some(i);
        assert_eq!(sink.append(r).unwrap().seq, i);
    }
    // From several threads at once.
    let handles: Vec<_> = (0..4)
        .map(|_| {
            let sink = sink.clone();
            std::thread::spawn(move || {
                for _ in 0..5 {
                    sink.append(Record::new(EventKind::Outcome)).unwrap();
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    assert_eq!(sink.verify().unwrap().events, 25);
    let conn = Connection::open(&path).unwrap();
    assert_eq!(verify_sqlite(&conn, &table).unwrap().events, 25);
    drop(sink);

    // A guardrail whose only sink is the pool sink records decisions in the table.
    let sink = SqlitePoolSink::open(&path, table.clone()).unwrap();
    let g = Guardrail::builder()
        .policy(Policy::from_toml_str(POLICY).unwrap())
        .audit(sink)
        .audit_key(AuditKey::from_bytes(b"sqlx sqlite test key, 32 bytes!!").unwrap())
        .build()
        .unwrap();
    let ctx = g
        .context(Principal::new("dr-grey").role("provider"))
        .purpose(Purpose::Treatment)
        .request_id("req-pool-sink");
    let pool = clinic(&dir.path().join("clinic.db"), 1).await;
    let mut tx = begin(&pool).await;
    set_diagnosis(&ctx, &mut tx, "p-1", "flu").await.unwrap();
    tx.commit().await.unwrap();
    let mut st = conn
        .prepare("SELECT kind FROM sink_audit WHERE request_id = 'req-pool-sink'")
        .unwrap();
    let kinds: Vec<String> = st
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(kinds, ["decision"]);
}

#[test]
fn the_pool_sink_fails_closed_on_a_database_it_cannot_open() {
    let dir = tempfile::tempdir().unwrap();
    let err = SqlitePoolSink::open(
        dir.path().join("no/such/dir/audit.db"),
        AuditTable::default(),
    )
    .unwrap_err();
    assert!(
        matches!(err, guardrail_audit::AuditError::Database(_)),
        "{err:?}"
    );
}
