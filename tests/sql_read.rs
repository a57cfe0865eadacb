//! The typed readers of SQL audit tables (`SqliteEvents`, `SqlxSqliteEvents`, `PgEvents`):
//! the outcomes `#[phi_action(tx = ..)]` calls wrote, in seq order, with the file reader's
//! request/subject/time filters; every row verified before it is yielded (an edited column,
//! a removed row, a removed tail end the stream with an error naming the table, and nothing
//! past the break is yielded). SQLite through rusqlite and sqlx always, PostgreSQL when
//! `GUARDRAIL_TEST_DATABASE_URL` is set.

use guardrail_tests::AppError;

use guardrail_audit::sql::postgres::{self as pg, sqlx};
use guardrail_audit::sql::sqlite::rusqlite::{self, Connection, params};
use guardrail_audit::sql::sqlite::{self as lite};
use guardrail_audit::sql::sqlx_sqlite::{self as sx};
use guardrail_audit::sql::{
    AuditTable, InTable, PgEvents, SqliteEvents, SqlxSqliteEvents, TableVerifyError,
};
use guardrail_audit::{AuditEvent, EventKind, Outcome, Timestamp};
use guardrail_core::prelude::*;

const POLICY: &str = r#"
version = "sql-read-1"

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
    dx: &str,
) -> Result<usize, AppError> {
    Ok(tx.execute(
        "UPDATE charts SET dx = ?1 WHERE patient = ?2",
        params![dx, patient],
    )?)
}

#[phi_action(kind = "update", role = "provider", resource = "patient_record", subject = patient, tx = tx)]
async fn set_dx_sqlx(
    ctx: &Context,
    tx: &mut sx::sqlx::Transaction<'_, sx::sqlx::Sqlite>,
    patient: &str,
    dx: &str,
) -> Result<u64, AppError> {
    let done = sx::sqlx::query("UPDATE charts SET dx = ?1 WHERE patient = ?2")
        .bind(dx)
        .bind(patient)
        .execute(&mut **tx)
        .await
        .map_err(|e| AppError::Db(e.to_string()))?;
    Ok(done.rows_affected())
}

#[phi_action(kind = "update", role = "provider", resource = "patient_record", subject = patient, tx = tx)]
async fn set_dx_pg(
    ctx: &Context,
    tx: &mut InTable<'_, sqlx::Transaction<'static, sqlx::Postgres>>,
    charts: &str,
    patient: &str,
) -> Result<u64, AppError> {
    let done = sqlx::query(&format!(
        "UPDATE {charts} SET dx = 'flu' WHERE patient = $1"
    ))
    .bind(patient)
    .execute(&mut **tx.conn)
    .await?;
    Ok(done.rows_affected())
}

fn guardrail(sink: &MemorySink) -> Guardrail {
    Guardrail::builder()
        .policy(Policy::from_toml_str(POLICY).unwrap())
        .audit(sink.clone())
        .audit_key(AuditKey::from_bytes(b"sql reader test key, 32 bytes!!!").unwrap())
        .build()
        .unwrap()
}

fn ctx(g: &Guardrail, request: &str) -> Context {
    g.context(Principal::new("dr-grey").role("provider"))
        .purpose(Purpose::Treatment)
        .request_id(request)
}

/// Four committed calls (requests r-0..r-3, patients p-1, p-2, p-1, p-2) and one rolled back.
fn rusqlite_scene(dir: &std::path::Path, g: &Guardrail) -> Connection {
    let mut conn = Connection::open(dir.join("clinic.db")).unwrap();
    conn.execute_batch(
        "CREATE TABLE charts (patient TEXT PRIMARY KEY, dx TEXT NOT NULL);
         INSERT INTO charts VALUES ('p-1', 'none'), ('p-2', 'none');",
    )
    .unwrap();
    lite::ensure_schema(&conn, &AuditTable::default()).unwrap();
    for i in 0..4 {
        let patient = if i % 2 == 0 { "p-1" } else { "p-2" };
        let mut tx = conn.transaction().unwrap();
        set_dx(&ctx(g, &format!("r-{i}")), &mut tx, patient, "flu").unwrap();
        tx.commit().unwrap();
        if i == 1 {
            let mut tx = conn.transaction().unwrap();
            set_dx(&ctx(g, "r-rolled"), &mut tx, patient, "mumps").unwrap();
            tx.rollback().unwrap();
        }
    }
    conn
}

fn seqs(events: impl Iterator<Item = Result<AuditEvent, TableVerifyError>>) -> Vec<u64> {
    events.map(|e| e.unwrap().seq).collect()
}

#[test]
fn rusqlite_reader_yields_the_tx_outcomes_in_order_with_the_filters() {
    let dir = tempfile::tempdir().unwrap();
    let sink = MemorySink::new();
    let g = guardrail(&sink);
    let conn = rusqlite_scene(dir.path(), &g);
    let table = AuditTable::default();

    let all: Vec<AuditEvent> = SqliteEvents::new(&conn, &table)
        .map(|e| e.unwrap())
        .collect();
    assert_eq!(all.iter().map(|e| e.seq).collect::<Vec<_>>(), [0, 1, 2, 3]);
    for (i, e) in all.iter().enumerate() {
        assert_eq!(e.record.kind, EventKind::Outcome);
        assert_eq!(e.record.outcome, Some(Outcome::Ok));
        assert_eq!(e.record.request_id.as_deref(), Some(&*format!("r-{i}")));
    }
    // Each outcome names its decision, which is in the guardrail's own sink.
    let decisions = sink.events();
    let d = &decisions[usize::try_from(all[2].record.decision_seq.unwrap()).unwrap()];
    assert_eq!(d.record.kind, EventKind::Decision);
    assert_eq!(d.record.request_id.as_deref(), Some("r-2"));

    assert_eq!(
        seqs(SqliteEvents::new(&conn, &table).request_id("r-2")),
        [2]
    );
    assert!(
        seqs(SqliteEvents::new(&conn, &table).request_id("r-rolled")).is_empty(),
        "a rolled-back outcome is not in the table"
    );
    let p2 = g.subject_token(&"p-2");
    assert_eq!(seqs(SqliteEvents::new(&conn, &table).subject(&p2)), [1, 3]);
    let t2 = all[2].record.time;
    assert_eq!(seqs(SqliteEvents::new(&conn, &table).since(t2)), [2, 3]);
    assert_eq!(seqs(SqliteEvents::new(&conn, &table).until(t2)), [0, 1]);
    assert_eq!(
        seqs(
            SqliteEvents::new(&conn, &table)
                .subject(&p2)
                .since(Timestamp(t2.0))
        ),
        [3]
    );
    let mut reader = SqliteEvents::new(&conn, &table).request_id("r-0");
    assert_eq!(reader.by_ref().count(), 1);
    assert_eq!(
        reader.verified().next_seq,
        4,
        "a filtered read verifies every row"
    );
}

#[test]
fn rusqlite_reader_pages_through_a_long_table() {
    let dir = tempfile::tempdir().unwrap();
    let sink = MemorySink::new();
    let g = guardrail(&sink);
    let mut conn = rusqlite_scene(dir.path(), &g);
    let mut tx = conn.transaction().unwrap();
    for _ in 0..1200 {
        use guardrail_audit::sql::TxAppend as _;
        tx.append_in_tx(guardrail_audit::Record::new(EventKind::Outcome))
            .unwrap();
    }
    tx.commit().unwrap();
    let events: Vec<u64> = seqs(SqliteEvents::new(&conn, &AuditTable::default()));
    assert_eq!(events, (0..1204).collect::<Vec<u64>>());
}

/// Reads until the error; returns the seqs yielded before it and the error.
fn until_error(
    events: impl Iterator<Item = Result<AuditEvent, TableVerifyError>>,
) -> (Vec<u64>, TableVerifyError) {
    let mut yielded = Vec::new();
    let mut events = events;
    for e in events.by_ref() {
        match e {
            Ok(e) => yielded.push(e.seq),
            Err(err) => {
                assert!(events.next().is_none(), "fused after the error");
                return (yielded, err);
            }
        }
    }
    panic!("no error; yielded {yielded:?}")
}

#[test]
fn rusqlite_reader_stops_at_an_edited_column_a_removed_row_or_a_removed_tail() {
    let dir = tempfile::tempdir().unwrap();
    let sink = MemorySink::new();
    let g = guardrail(&sink);
    let conn = rusqlite_scene(dir.path(), &g);
    let table = AuditTable::default();

    // An indexed copy edited: the filter would be fooled, the reader is not.
    conn.execute(
        "UPDATE guardrail_audit SET request_id = 'r-0' WHERE seq = 2",
        [],
    )
    .unwrap();
    let (yielded, err) = until_error(SqliteEvents::new(&conn, &table).request_id("r-0"));
    assert_eq!(yielded, [0]);
    assert!(
        matches!(
            err,
            TableVerifyError::Column {
                seq: 2,
                column: "request_id",
                ..
            }
        ),
        "{err}"
    );
    conn.execute(
        "UPDATE guardrail_audit SET request_id = 'r-2' WHERE seq = 2",
        [],
    )
    .unwrap();

    // The tail removed (the head row still says 4 events).
    let saved: (String, String, i64, String) = conn
        .query_row(
            "SELECT prev, hash, time_ns, line FROM guardrail_audit WHERE seq = 3",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
        )
        .unwrap();
    conn.execute("DELETE FROM guardrail_audit WHERE seq = 3", [])
        .unwrap();
    let (yielded, err) = until_error(SqliteEvents::new(&conn, &table));
    assert_eq!(yielded, [0, 1, 2]);
    assert!(
        matches!(
            err,
            TableVerifyError::Head {
                head_next_seq: 4,
                events_next_seq: 3,
                ..
            }
        ),
        "{err}"
    );

    // A row in the middle removed (the tail put back).
    conn.execute(
        "INSERT INTO guardrail_audit (seq, prev, hash, time_ns, kind, action, action_kind, \
         subject, request_id, line) SELECT 3, ?1, ?2, ?3, kind, action, action_kind, subject, \
         'r-3', ?4 FROM guardrail_audit WHERE seq = 2",
        params![saved.0, saved.1, saved.2, saved.3],
    )
    .unwrap();
    conn.execute(
        "UPDATE guardrail_audit SET subject = (SELECT subject FROM guardrail_audit WHERE seq = 1) \
         WHERE seq = 3",
        [],
    )
    .unwrap();
    assert_eq!(
        seqs(SqliteEvents::new(&conn, &table)),
        [0, 1, 2, 3],
        "restored"
    );
    conn.execute("DELETE FROM guardrail_audit WHERE seq = 1", [])
        .unwrap();
    let (yielded, err) = until_error(SqliteEvents::new(&conn, &table));
    assert_eq!(yielded, [0]);
    assert!(matches!(err, TableVerifyError::Chain { .. }), "{err}");
    assert!(err.to_string().contains("guardrail_audit"), "{err}");

    // No table at all: a database error, not an empty read.
    let empty = Connection::open_in_memory().unwrap();
    let (yielded, err) = until_error(SqliteEvents::new(&empty, &table));
    assert!(yielded.is_empty());
    assert!(matches!(err, TableVerifyError::Database { .. }), "{err}");
}

#[tokio::test]
async fn sqlx_sqlite_reader_reads_what_the_tx_calls_wrote() {
    use sx::sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions};
    let dir = tempfile::tempdir().unwrap();
    let pool = SqlitePoolOptions::new()
        .max_connections(2)
        .connect_with(
            SqliteConnectOptions::new()
                .filename(dir.path().join("clinic.db"))
                .create_if_missing(true),
        )
        .await
        .unwrap();
    sx::sqlx::raw_sql(
        "CREATE TABLE charts (patient TEXT PRIMARY KEY, dx TEXT NOT NULL);
         INSERT INTO charts VALUES ('p-1', 'none'), ('p-2', 'none');",
    )
    .execute(&pool)
    .await
    .unwrap();
    let table = AuditTable::default();
    sx::ensure_schema(&pool, &table).await.unwrap();
    let sink = MemorySink::new();
    let g = guardrail(&sink);
    for (i, patient) in ["p-1", "p-2", "p-1"].into_iter().enumerate() {
        let mut tx = pool.begin_with("BEGIN IMMEDIATE").await.unwrap();
        set_dx_sqlx(&ctx(&g, &format!("r-{i}")), &mut tx, patient, "flu")
            .await
            .unwrap();
        tx.commit().await.unwrap();
    }
    let all = SqlxSqliteEvents::new(&pool, &table)
        .collect()
        .await
        .unwrap();
    assert_eq!(all.iter().map(|e| e.seq).collect::<Vec<_>>(), [0, 1, 2]);
    assert!(all.iter().all(|e| e.record.outcome == Some(Outcome::Ok)));
    let p1 = g.subject_token(&"p-1");
    let mine = SqlxSqliteEvents::new(&pool, &table)
        .subject(&p1)
        .collect()
        .await
        .unwrap();
    assert_eq!(mine.iter().map(|e| e.seq).collect::<Vec<_>>(), [0, 2]);
    let one = SqlxSqliteEvents::new(&pool, &table)
        .request_id("r-1")
        .collect()
        .await
        .unwrap();
    assert_eq!(one.len(), 1);
    assert_eq!(
        one[0].record.subject.as_deref(),
        Some(&*g.subject_token(&"p-2"))
    );

    sx::sqlx::query("UPDATE guardrail_audit SET action = 'other' WHERE seq = 1")
        .execute(&pool)
        .await
        .unwrap();
    let mut reader = SqlxSqliteEvents::new(&pool, &table);
    assert_eq!(reader.next().await.unwrap().unwrap().seq, 0);
    let err = reader.next().await.unwrap().unwrap_err();
    assert!(
        matches!(
            err,
            TableVerifyError::Column {
                seq: 1,
                column: "action",
                ..
            }
        ),
        "{err}"
    );
    assert!(reader.next().await.is_none(), "fused after the error");
    pool.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_reader_reads_what_the_tx_calls_wrote() {
    let Some(url) =
        guardrail_tests::pg::database_url("postgres_reader_reads_what_the_tx_calls_wrote")
    else {
        return;
    };
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    let suffix = format!("{}_{nanos}", std::process::id());
    let (charts, audit) = (
        format!("gr_read_charts_{suffix}"),
        format!("gr_read_{suffix}"),
    );
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(2)
        .connect(&url)
        .await
        .unwrap();
    sqlx::raw_sql(&format!(
        "CREATE TABLE {charts} (patient TEXT PRIMARY KEY, dx TEXT NOT NULL);
         INSERT INTO {charts} VALUES ('p-1', 'none'), ('p-2', 'none');"
    ))
    .execute(&pool)
    .await
    .unwrap();
    let table = AuditTable::new(&audit).unwrap();
    pg::ensure_schema(&pool, &table).await.unwrap();
    let sink = MemorySink::new();
    let g = guardrail(&sink);
    for (i, patient) in ["p-1", "p-2", "p-1"].into_iter().enumerate() {
        let mut tx = pool.begin().await.unwrap();
        let mut bound = InTable::new(&table, &mut tx);
        set_dx_pg(&ctx(&g, &format!("r-{i}")), &mut bound, &charts, patient)
            .await
            .unwrap();
        if i == 1 {
            tx.rollback().await.unwrap();
        } else {
            tx.commit().await.unwrap();
        }
    }
    let all = PgEvents::new(&pool, &table).collect().await.unwrap();
    assert_eq!(all.iter().map(|e| e.seq).collect::<Vec<_>>(), [0, 1]);
    assert_eq!(all[1].record.request_id.as_deref(), Some("r-2"));
    let one = PgEvents::new(&pool, &table)
        .request_id("r-0")
        .collect()
        .await
        .unwrap();
    assert_eq!(one.len(), 1);
    assert_eq!(
        one[0].record.subject.as_deref(),
        Some(&*g.subject_token(&"p-1"))
    );

    sqlx::query(&format!("DELETE FROM {audit} WHERE seq = 1"))
        .execute(&pool)
        .await
        .unwrap();
    let mut reader = PgEvents::new(&pool, &table);
    assert_eq!(reader.next().await.unwrap().unwrap().seq, 0);
    let err = reader.next().await.unwrap().unwrap_err();
    assert!(
        matches!(
            err,
            TableVerifyError::Head {
                head_next_seq: 2,
                events_next_seq: 1,
                ..
            }
        ),
        "{err}"
    );
    sqlx::raw_sql(&format!(
        "DROP TABLE {charts}; DROP TABLE {audit}; DROP TABLE {audit}_head; \
         DROP TABLE {audit}_checkpoint;"
    ))
    .execute(&pool)
    .await
    .unwrap();
    pool.close().await;
}
