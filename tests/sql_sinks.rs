//! SQL audit sinks: SQLite and PostgreSQL tables hold the same chain a memory or file sink
//! holds, verification from the table passes for an untouched table and names the first
//! edited, removed or reordered row, an edited index column or a cut tail. Concurrent
//! appenders (threads, separate connections) keep one contiguous chain.

use std::sync::Arc;

use guardrail_audit::sql::postgres::{PgSink, sqlx, verify_postgres};
use guardrail_audit::sql::sqlite::rusqlite::{Connection, params};
use guardrail_audit::sql::sqlite::{SqliteSink, verify_sqlite};
use guardrail_audit::sql::{AuditTable, TableVerifyError};
use guardrail_audit::{
    AuditKey, AuditSink, BreakKind, EventKind, MemorySink, Outcome, Record, Timestamp,
};

fn records(n: usize) -> Vec<Record> {
    let key = AuditKey::from_bytes(b"sql sink test key of 32 bytes!!!").unwrap();
    (0..n)
        .map(|i| {
            let kind = if i % 2 == 0 {
                EventKind::Decision
            } else {
                EventKind::Outcome
            };
            let mut r = Record::at(
                kind,
                Timestamp(1_793_491_200_000_000_000 + i as u64 * 1_000),
            );
            r.request_id = Some(format!("req-{}", i / 2).into());
            r.action = Some("clinic::read_chart".into());
            r.action_kind = Some("read".into());
            r.principal = Some(format!("dr-{}", i % 3).into());
            r.subject = Some(key.token("subject", &format!("patient-{}", i % 5)).into());
            if kind == EventKind::Decision {
                r.decision = Some("allow".into());
            } else {
                r.outcome = Some(Outcome::Ok);
            }
            r
        })
        .collect()
}

fn sqlite_table_name(test: &str) -> AuditTable {
    AuditTable::new(&format!("audit_{test}")).unwrap()
}

fn open_sqlite(dir: &std::path::Path, table: &AuditTable) -> SqliteSink {
    SqliteSink::open(dir.join("audit.db"), table.clone()).unwrap()
}

fn chain_error(e: TableVerifyError) -> (usize, Option<u64>, BreakKind) {
    match e {
        TableVerifyError::Chain { source, .. } => (source.line, source.seq, source.kind),
        other => panic!("expected a chain break, got {other}"),
    }
}

#[test]
fn sqlite_holds_the_same_chain_as_a_memory_sink() {
    let dir = tempfile::tempdir().unwrap();
    let table = sqlite_table_name("same_chain");
    let sink = open_sqlite(dir.path(), &table);
    let memory = MemorySink::new();
    for (i, r) in records(40).into_iter().enumerate() {
        assert_eq!(sink.append(r.clone()).unwrap().seq, i as u64);
        memory.append(r).unwrap();
    }
    let report = sink.verify().unwrap();
    assert_eq!(report.events, 40);
    let lines: Vec<String> = sink.with_connection(|c| {
        let mut st = c
            .prepare(&format!("SELECT line FROM {} ORDER BY seq", table.events()))
            .unwrap();
        st.query_map([], |r| r.get(0))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    });
    let expected: Vec<String> = memory
        .events()
        .iter()
        .map(|e| e.line().to_owned())
        .collect();
    assert_eq!(
        lines, expected,
        "the SQL table must hold byte-identical events"
    );
    // Reopening continues the chain.
    drop(sink);
    let sink = open_sqlite(dir.path(), &table);
    assert_eq!(sink.append(records(1).remove(0)).unwrap().seq, 40);
    assert_eq!(sink.verify().unwrap().events, 41);
}

/// What a verification failure must say.
type Check = Box<dyn Fn(TableVerifyError)>;

#[test]
fn sqlite_verification_names_the_edited_row() {
    let dir = tempfile::tempdir().unwrap();
    let table = sqlite_table_name("edited");
    let sink = open_sqlite(dir.path(), &table);
    for r in records(30) {
        sink.append(r).unwrap();
    }
    let t = table.events().to_owned();
    let h = table.head().to_owned();
    let fresh = || Connection::open(dir.path().join("audit.db")).unwrap();
    // Each case edits a copy of the database and expects a precise finding.
    let cases: Vec<(&str, String, Check)> = vec![
        (
            "edited line",
            format!("UPDATE {t} SET line = replace(line, '\"dr-2\"', '\"dr-9\"') WHERE seq = 17"),
            Box::new(|e| assert_eq!(chain_error(e), (18, Some(17), BreakKind::HashMismatch))),
        ),
        (
            "deleted row",
            format!("DELETE FROM {t} WHERE seq = 12"),
            // The next row is sound but is not the event that should come.
            Box::new(|e| {
                let expected = (13, Some(13), BreakKind::SequenceGap { expected: 12 });
                assert_eq!(chain_error(e), expected);
            }),
        ),
        (
            "edited subject column",
            format!("UPDATE {t} SET subject = 'hmac-sha256:00' WHERE seq = 5"),
            Box::new(|e| match e {
                TableVerifyError::Column { seq, column, .. } => {
                    assert_eq!((seq, column), (5, "subject"))
                }
                other => panic!("{other}"),
            }),
        ),
        (
            "seq column moved",
            format!("UPDATE {t} SET seq = 1000 WHERE seq = 29"),
            Box::new(|e| match e {
                TableVerifyError::SeqColumn {
                    column_seq,
                    line_seq,
                    ..
                } => {
                    assert_eq!((column_seq, line_seq), (1000, 29));
                }
                other => panic!("{other}"),
            }),
        ),
        (
            "cut tail",
            format!("DELETE FROM {t} WHERE seq >= 27"),
            Box::new(|e| match e {
                TableVerifyError::Head {
                    head_next_seq,
                    events_next_seq,
                    ..
                } => {
                    assert_eq!((head_next_seq, events_next_seq), (30, 27));
                }
                other => panic!("{other}"),
            }),
        ),
        (
            "head row removed",
            format!("DELETE FROM {h}"),
            Box::new(|e| assert!(matches!(e, TableVerifyError::HeadMissing { .. }), "{e}")),
        ),
    ];
    drop(sink);
    let pristine = std::fs::read(dir.path().join("audit.db")).unwrap();
    for (name, sql, check) in cases {
        std::fs::write(dir.path().join("audit.db"), &pristine).unwrap();
        let conn = fresh();
        assert_eq!(
            verify_sqlite(&conn, &table).unwrap().events,
            30,
            "{name}: pristine"
        );
        conn.execute_batch(&sql).unwrap();
        let err = verify_sqlite(&conn, &table).expect_err(name);
        // Messages name the table and never hold a patient id.
        let msg = err.to_string();
        assert!(msg.contains(table.events()), "{name}: {msg}");
        assert!(!msg.contains("patient-"), "{name}: {msg}");
        check(err);
    }
}

#[test]
fn sqlite_concurrent_writers_on_separate_connections_keep_one_chain() {
    let dir = tempfile::tempdir().unwrap();
    let table = sqlite_table_name("concurrent");
    let sinks: Vec<Arc<SqliteSink>> = (0..4)
        .map(|_| Arc::new(open_sqlite(dir.path(), &table)))
        .collect();
    let threads: Vec<_> = sinks
        .iter()
        .cloned()
        .map(|sink| {
            std::thread::spawn(move || {
                let mut seqs = Vec::new();
                for r in records(50) {
                    seqs.push(sink.append(r).unwrap().seq);
                }
                seqs
            })
        })
        .collect();
    let mut all: Vec<u64> = threads
        .into_iter()
        .flat_map(|t| t.join().unwrap())
        .collect();
    all.sort_unstable();
    assert_eq!(
        all,
        (0..200).collect::<Vec<u64>>(),
        "seqs contiguous, none twice"
    );
    assert_eq!(sinks[0].verify().unwrap().events, 200);
}

#[test]
fn an_append_outside_a_transaction_is_refused() {
    use guardrail_audit::sql::{InTable, TxAppend};
    let mut conn = Connection::open_in_memory().unwrap();
    let table = sqlite_table_name("autocommit");
    guardrail_audit::sql::sqlite::ensure_schema(&conn, &table).unwrap();
    let err = InTable::new(&table, &mut conn)
        .append_in_tx(records(1).remove(0))
        .unwrap_err();
    assert!(
        err.to_string().contains("not inside a transaction"),
        "{err}"
    );
    conn.execute_batch("BEGIN IMMEDIATE").unwrap();
    InTable::new(&table, &mut conn)
        .append_in_tx(records(1).remove(0))
        .unwrap();
    conn.execute_batch("COMMIT").unwrap();
    assert_eq!(verify_sqlite(&conn, &table).unwrap().events, 1);
    // A table name that is not a plain identifier never reaches SQL.
    assert!(AuditTable::new("audit; DROP TABLE charts").is_err());
    assert!(AuditTable::new("").is_err());
    let n: i64 = conn
        .query_row(
            &format!("SELECT count(*) FROM {}", table.events()),
            params![],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(n, 1);
}

// ---------------------------------------------------------------------------------------
// PostgreSQL
// ---------------------------------------------------------------------------------------

fn pg_table(test: &str) -> AuditTable {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    AuditTable::new(&format!("gr_sink_{test}_{}_{nanos}", std::process::id())).unwrap()
}

async fn drop_tables(pool: &sqlx::PgPool, table: &AuditTable) {
    let _ = sqlx::raw_sql(&format!(
        "DROP TABLE IF EXISTS {0}, {1}, {0}_checkpoint, {0}_chains, {0}_tree",
        table.events(),
        table.head()
    ))
    .execute(pool)
    .await;
}

#[test]
fn postgres_sink_chain_is_valid_and_an_edited_row_is_named() {
    let Some(url) = guardrail_tests::pg::database_url(
        "postgres_sink_chain_is_valid_and_an_edited_row_is_named",
    ) else {
        return;
    };
    let table = pg_table("edit");
    let sink = Arc::new(PgSink::connect(&url, table.clone()).unwrap());
    let memory = MemorySink::new();
    // Appends from several threads at once, and from inside a tokio runtime (the sink never
    // blocks on the caller's runtime).
    let rt = tokio::runtime::Runtime::new().unwrap();
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let sink = sink.clone();
            std::thread::spawn(move || {
                for r in records(10) {
                    sink.append(r).unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    rt.block_on(async {
        for r in records(10) {
            sink.append(r.clone()).unwrap();
            memory.append(r).unwrap();
        }
    });
    assert_eq!(sink.verify().unwrap().events, 50);

    rt.block_on(async {
        let pool = sqlx::PgPool::connect(&url).await.unwrap();
        assert_eq!(verify_postgres(&pool, &table).await.unwrap().events, 50);
        // The last ten events are the memory sink's chain, shifted: same record bytes.
        let lines: Vec<String> = sqlx::query_scalar(&format!(
            "SELECT line FROM {} WHERE seq >= 40 ORDER BY seq",
            table.events()
        ))
        .fetch_all(&pool)
        .await
        .unwrap();
        let mem = memory.events();
        for (line, e) in lines.iter().zip(&mem) {
            let body =
                |l: &str| l[l.find(",\"time\"").unwrap()..l.find(",\"hash\"").unwrap()].to_owned();
            assert_eq!(body(line), body(e.line()));
        }

        sqlx::query(&format!(
            "UPDATE {} SET line = replace(line, '\"dr-', '\"xx-') WHERE seq = 22",
            table.events()
        ))
        .execute(&pool)
        .await
        .unwrap();
        let err = verify_postgres(&pool, &table).await.unwrap_err();
        assert_eq!(chain_error(err), (23, Some(22), BreakKind::HashMismatch));

        // Restore by recomputing nothing: delete the tail from the edit on instead, and the
        // head row gives the cut away.
        sqlx::query(&format!("DELETE FROM {} WHERE seq >= 22", table.events()))
            .execute(&pool)
            .await
            .unwrap();
        match verify_postgres(&pool, &table).await.unwrap_err() {
            TableVerifyError::Head {
                head_next_seq,
                events_next_seq,
                ..
            } => {
                assert_eq!((head_next_seq, events_next_seq), (50, 22));
            }
            other => panic!("{other}"),
        }
        drop(sink);
        drop_tables(&pool, &table).await;
    });
}

#[test]
fn postgres_sink_reports_a_bad_url_as_an_error() {
    let Some(_) = guardrail_tests::pg::database_url("postgres_sink_reports_a_bad_url_as_an_error")
    else {
        return;
    };
    let err = PgSink::connect("postgres://nobody@127.0.0.1:1/none", pg_table("bad")).unwrap_err();
    assert!(err.to_string().contains("audit database error"), "{err}");
}
