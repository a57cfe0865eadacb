//! A PostgreSQL trail many writers share: one chain per writer, signed RFC 6962 tree heads
//! over all of them, their verification and one patient's inclusion proofs. Each test runs
//! in its own schema, dropped at the end.

use std::time::Duration;

use guardrail_audit::merkle::{ChainCount, ChainId, MerkleTree, TreeHead, leaf_bytes, leaf_hash};
use guardrail_audit::sql::postgres::{
    ChainWriter, TrailVerifyError, ensure_schema, prove_subject, sqlx, tree_checkpoint,
    verify_postgres, verify_postgres_trail,
};
use guardrail_audit::sql::{AsyncTxAppend, AuditTable, TableVerifyError};
use guardrail_audit::{Chain, CheckpointSigner, EventKind, Record, Timestamp};

fn unique(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!("{prefix}_{}_{nanos}", std::process::id())
}

struct Db {
    url: String,
    schema: String,
    pool: sqlx::PgPool,
    table: AuditTable,
}

impl Db {
    async fn new(test: &str) -> Option<Db> {
        let url = guardrail_tests::pg::database_url(test)?;
        let schema = unique("gr_chains");
        let admin = sqlx::PgPool::connect(&url).await.unwrap();
        sqlx::raw_sql(&format!("CREATE SCHEMA {schema}"))
            .execute(&admin)
            .await
            .unwrap();
        admin.close().await;
        let options: sqlx::postgres::PgConnectOptions = url.parse().unwrap();
        let pool = sqlx::postgres::PgPoolOptions::new()
            .max_connections(12)
            .connect_with(options.options([("search_path", schema.as_str())]))
            .await
            .unwrap();
        let table = AuditTable::default();
        ensure_schema(&pool, &table).await.unwrap();
        Some(Db {
            url,
            schema,
            pool,
            table,
        })
    }

    async fn exec(&self, sql: &str) {
        sqlx::raw_sql(sql).execute(&self.pool).await.unwrap();
    }

    async fn append(&self, writer: &ChainWriter, r: Record) -> u64 {
        let mut tx = self.pool.begin().await.unwrap();
        let seq = writer.on(&mut tx).append_in_tx(r).await.unwrap().seq;
        tx.commit().await.unwrap();
        seq
    }

    async fn verify(
        &self,
    ) -> Result<guardrail_audit::sql::postgres::TrailReport, TrailVerifyError> {
        verify_postgres_trail(&self.pool, &self.table, Some(&signer().verifier())).await
    }

    async fn close(self) {
        self.pool.close().await;
        let admin = sqlx::PgPool::connect(&self.url).await.unwrap();
        let _ = sqlx::raw_sql(&format!("DROP SCHEMA {} CASCADE", self.schema))
            .execute(&admin)
            .await;
    }
}

fn signer() -> CheckpointSigner {
    CheckpointSigner::ed25519_from_seed(&[9; 32])
}

const SUBJECT: &str =
    "hmac-sha256:aa00000000000000000000000000000000000000000000000000000000000001";

fn record(i: u64, subject: bool) -> Record {
    let mut r = Record::at(
        EventKind::Decision,
        Timestamp(1_700_000_000_000_000_000 + i),
    );
    r.action = Some("read_chart".into());
    r.request_id = Some(format!("req-{i}").into());
    if subject {
        r.subject = Some(SUBJECT.into());
    }
    r
}

fn writer(name: &str) -> ChainWriter {
    ChainWriter::new(AuditTable::default(), ChainId::new(name).unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_writers_on_their_own_chains_verify_under_tree_heads() {
    let Some(db) = Db::new("concurrent_writers_on_their_own_chains_verify_under_tree_heads").await
    else {
        return;
    };
    let mut tasks = Vec::new();
    for w in 0..8 {
        let pool = db.pool.clone();
        tasks.push(tokio::spawn(async move {
            let writer = writer(&format!("w{w}"));
            for i in 0..25u64 {
                let mut tx = pool.begin().await.unwrap();
                let seq = writer
                    .on(&mut tx)
                    .append_in_tx(record(i, i % 5 == 0))
                    .await
                    .unwrap()
                    .seq;
                assert_eq!(seq, i, "each writer's chain numbers its own events");
                tx.commit().await.unwrap();
            }
        }));
    }
    // Tree heads signed while the writers append.
    let mut heads = Vec::new();
    for _ in 0..5 {
        if let Some(h) = tree_checkpoint(&db.pool, &db.table, &signer())
            .await
            .unwrap()
        {
            heads.push(h);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for t in tasks {
        t.await.unwrap();
    }
    // The default chain too, through its old entry point.
    for i in 0..3 {
        let mut tx = db.pool.begin().await.unwrap();
        tx.append_in_tx(record(100 + i, true)).await.unwrap();
        tx.commit().await.unwrap();
    }
    let last = tree_checkpoint(&db.pool, &db.table, &signer())
        .await
        .unwrap()
        .expect("new events, so a new head");
    assert_eq!(last.size, 8 * 25 + 3);
    assert_eq!(last.chains.len(), 9);
    assert!(
        tree_checkpoint(&db.pool, &db.table, &signer())
            .await
            .unwrap()
            .is_none()
    );
    let report = db.verify().await.unwrap();
    assert_eq!(report.chains, 9);
    assert_eq!(report.events, 203);
    assert_eq!(report.tree_heads, heads.len() + 1);
    assert_eq!(report.last_tree_size, Some(203));
    assert_eq!(report.uncovered_events, 0);
    // The default chain alone, as before chains existed.
    assert_eq!(
        verify_postgres(&db.pool, &db.table).await.unwrap().events,
        3
    );
    db.close().await;
}

#[tokio::test]
async fn a_writer_on_another_chain_does_not_wait_for_an_open_transaction() {
    let Some(db) = Db::new("a_writer_on_another_chain_does_not_wait_for_an_open_transaction").await
    else {
        return;
    };
    let a = writer("a");
    let b = writer("b");
    let mut open = db.pool.begin().await.unwrap();
    a.on(&mut open)
        .append_in_tx(record(0, false))
        .await
        .unwrap();
    // Chain `b` appends and commits while `a`'s transaction holds `a`'s head.
    let mut tx = db.pool.begin().await.unwrap();
    sqlx::query("SET LOCAL lock_timeout = 2000")
        .execute(&mut *tx)
        .await
        .unwrap();
    b.on(&mut tx).append_in_tx(record(1, false)).await.unwrap();
    tx.commit().await.unwrap();
    // A second writer on chain `a` does wait (and here times out).
    let mut tx = db.pool.begin().await.unwrap();
    sqlx::query("SET LOCAL lock_timeout = 300")
        .execute(&mut *tx)
        .await
        .unwrap();
    let other_a = writer("a");
    let err = other_a
        .on(&mut tx)
        .append_in_tx(record(2, false))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("lock timeout"), "{err}");
    drop(tx);
    open.commit().await.unwrap();
    assert_eq!(db.verify().await.unwrap().events, 2);
    db.close().await;
}

#[tokio::test]
async fn a_rolled_back_append_leaves_no_gap_and_the_writer_recovers() {
    let Some(db) = Db::new("a_rolled_back_append_leaves_no_gap_and_the_writer_recovers").await
    else {
        return;
    };
    let w = writer("w");
    assert_eq!(db.append(&w, record(0, false)).await, 0);
    let mut tx = db.pool.begin().await.unwrap();
    assert_eq!(
        w.on(&mut tx)
            .append_in_tx(record(1, false))
            .await
            .unwrap()
            .seq,
        1
    );
    tx.rollback().await.unwrap();
    // The writer remembers seq 1 as written; the head row says otherwise.
    assert_eq!(db.append(&w, record(2, false)).await, 1);
    // Another writer of the same chain, then the first again (its memory is stale).
    assert_eq!(db.append(&writer("w"), record(3, false)).await, 2);
    assert_eq!(db.append(&w, record(4, false)).await, 3);
    assert_eq!(db.verify().await.unwrap().events, 4);
    db.close().await;
}

/// Three chains, two tree heads (the second after more events).
async fn two_heads(db: &Db) {
    for name in ["a", "b", "c"] {
        let w = writer(name);
        for i in 0..4 {
            db.append(&w, record(i, name == "b")).await;
        }
    }
    tree_checkpoint(&db.pool, &db.table, &signer())
        .await
        .unwrap()
        .unwrap();
    for name in ["a", "c"] {
        let w = writer(name);
        for i in 4..7 {
            db.append(&w, record(i, false)).await;
        }
    }
    tree_checkpoint(&db.pool, &db.table, &signer())
        .await
        .unwrap()
        .unwrap();
}

async fn lines_of(db: &Db, chain: &str) -> Vec<String> {
    sqlx::query_scalar(&format!(
        "SELECT line FROM {} WHERE chain = $1 ORDER BY seq",
        db.table.events()
    ))
    .bind(chain)
    .fetch_all(&db.pool)
    .await
    .unwrap()
}

#[tokio::test]
async fn a_relinked_chain_is_named_with_its_seq_and_tree_size() {
    let Some(db) = Db::new("a_relinked_chain_is_named_with_its_seq_and_tree_size").await else {
        return;
    };
    two_heads(&db).await;
    db.verify().await.unwrap();
    // Delete `a`'s seq 2 and relink the rest, head row included: the chain verifies alone.
    let lines = lines_of(&db, "a").await;
    let mut chain = Chain::new();
    let mut rows = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        if i == 2 {
            continue;
        }
        let e = guardrail_audit::AuditEvent::parse(line).unwrap();
        rows.push(chain.link(e.record).unwrap());
    }
    let t = db.table.events();
    let mut sql = format!("DELETE FROM {t} WHERE chain = 'a';");
    for e in &rows {
        sql.push_str(&format!(
            "INSERT INTO {t} (chain, seq, prev, hash, time_ns, kind, action, action_kind,
                              subject, request_id, line)
             VALUES ('a', {seq}, '{prev}', '{hash}', {time}, 'decision', 'read_chart', NULL,
                     NULL, '{req}', $q${line}$q$);",
            seq = e.seq,
            prev = e.prev,
            hash = e.hash,
            line = e.line(),
            time = e.record.time.0,
            req = e.record.request_id.as_deref().unwrap(),
        ));
    }
    sql.push_str(&format!(
        "UPDATE {t}_chains SET next_seq = {}, head = '{}' WHERE chain = 'a';",
        chain.next_seq, chain.head
    ));
    db.exec(&sql).await;
    assert!(
        verify_postgres_trail(&db.pool, &db.table, None)
            .await
            .is_ok(),
        "without the key the relinked chain passes"
    );
    match db.verify().await.unwrap_err() {
        TrailVerifyError::Rewritten {
            chain,
            seq,
            tree_size,
            ..
        } => assert_eq!((chain.as_str(), seq, tree_size), ("a", 3, 12)),
        other => panic!("expected Rewritten, got {other}"),
    }
    db.close().await;
}

#[tokio::test]
async fn a_cut_chain_tail_is_named() {
    let Some(db) = Db::new("a_cut_chain_tail_is_named").await else {
        return;
    };
    two_heads(&db).await;
    let lines = lines_of(&db, "c").await;
    let last_kept = guardrail_audit::AuditEvent::parse(&lines[4]).unwrap();
    let t = db.table.events();
    db.exec(&format!(
        "DELETE FROM {t} WHERE chain = 'c' AND seq >= 5;
         UPDATE {t}_chains SET next_seq = 5, head = '{}' WHERE chain = 'c';",
        last_kept.hash
    ))
    .await;
    match db.verify().await.unwrap_err() {
        TrailVerifyError::Truncated {
            chain,
            first_missing_seq,
            covered,
            tree_size,
            ..
        } => assert_eq!(
            (chain.as_str(), first_missing_seq, covered, tree_size),
            ("c", 5, 7, 18)
        ),
        other => panic!("expected Truncated, got {other}"),
    }
    db.close().await;
}

#[tokio::test]
async fn an_edited_event_and_an_edited_tree_head_are_named() {
    let Some(db) = Db::new("an_edited_event_and_an_edited_tree_head_are_named").await else {
        return;
    };
    two_heads(&db).await;
    let t = db.table.events();
    db.exec(&format!(
        "UPDATE {t} SET line = replace(line, 'req-1', 'req-9'), request_id = 'req-9'
         WHERE chain = 'b' AND seq = 1"
    ))
    .await;
    match db.verify().await.unwrap_err() {
        TrailVerifyError::Chain {
            chain,
            source: TableVerifyError::Chain { source, .. },
        } => assert_eq!((chain.as_str(), source.seq), ("b", Some(1))),
        other => panic!("expected a broken chain `b`, got {other}"),
    }
    db.exec(&format!(
        "UPDATE {t} SET line = replace(line, 'req-9', 'req-1'), request_id = 'req-1'
         WHERE chain = 'b' AND seq = 1"
    ))
    .await;
    db.verify().await.unwrap();
    db.exec(&format!(
        "UPDATE {t}_tree SET line = replace(line, '\"size\":18', '\"size\":17') WHERE size = 18"
    ))
    .await;
    match db.verify().await.unwrap_err() {
        TrailVerifyError::TreeHead { size, .. } => assert_eq!(size, 18),
        other => panic!("expected TreeHead, got {other}"),
    }
    // And the checkpointer refuses to extend it.
    db.append(&writer("a"), record(50, false)).await;
    let err = tree_checkpoint(&db.pool, &db.table, &signer())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("refusing"), "{err}");
    db.close().await;
}

#[tokio::test]
async fn a_validly_signed_head_over_another_order_is_inconsistent() {
    let Some(db) = Db::new("a_validly_signed_head_over_another_order_is_inconsistent").await else {
        return;
    };
    two_heads(&db).await;
    // Whoever holds the key signs the same events in another order as a third head.
    let mut leaves = Vec::new();
    let mut chains = Vec::new();
    for name in ["c", "b", "a"] {
        let lines = lines_of(&db, name).await;
        let mut last = None;
        for line in &lines {
            leaves.push(leaf_hash(&leaf_bytes(name, line)));
            last = Some(guardrail_audit::AuditEvent::parse(line).unwrap().hash);
        }
        chains.push(ChainCount {
            chain: ChainId::new(name).unwrap(),
            count: lines.len() as u64,
            head: last.unwrap(),
        });
    }
    db.append(&writer("b"), record(9, false)).await; // so size 19 is a later size
    let lines = lines_of(&db, "b").await;
    let extra = guardrail_audit::AuditEvent::parse(lines.last().unwrap()).unwrap();
    leaves.push(leaf_hash(&leaf_bytes("b", lines.last().unwrap())));
    chains[1].count += 1;
    chains[1].head = extra.hash;
    let tree = MerkleTree::from_leaves(leaves);
    let line = TreeHead::sign(
        &signer(),
        db.table.events(),
        tree.size(),
        tree.root(),
        chains,
        Timestamp::now(),
    );
    sqlx::query(&format!(
        "INSERT INTO {}_tree (size, line, peaks) VALUES ($1, $2, '')",
        db.table.events()
    ))
    .bind(tree.size() as i64)
    .bind(&line)
    .execute(&db.pool)
    .await
    .unwrap();
    match db.verify().await.unwrap_err() {
        TrailVerifyError::Inconsistent {
            old_size, new_size, ..
        } => assert_eq!((old_size, new_size), (18, 19)),
        other => panic!("expected Inconsistent, got {other}"),
    }
    db.close().await;
}

#[tokio::test]
async fn one_patients_events_are_proven_against_the_newest_head() {
    let Some(db) = Db::new("one_patients_events_are_proven_against_the_newest_head").await else {
        return;
    };
    two_heads(&db).await;
    // One more event of the patient after the newest head: not in the bundle.
    db.append(&writer("c"), record(99, true)).await;
    let (bundle, uncovered) = prove_subject(&db.pool, &db.table, &signer().verifier(), SUBJECT)
        .await
        .unwrap();
    assert_eq!(uncovered, 1);
    assert_eq!(bundle.events.len(), 4, "chain `b`'s four events");
    assert!(bundle.events.iter().all(|e| e.chain.as_str() == "b"));
    let report = bundle.verify(&signer().verifier()).unwrap();
    assert_eq!((report.events, report.tree_head.size), (4, 18));
    db.close().await;
}

/// A table written before chains existed (keyed by `seq` alone, no `chain` column) is
/// migrated in place by `ensure_schema`: its rows become the default chain.
#[tokio::test]
async fn a_table_from_before_chains_is_migrated() {
    let Some(db) = Db::new("a_table_from_before_chains_is_migrated").await else {
        return;
    };
    let old = AuditTable::new("legacy_audit").unwrap();
    let mut chain = Chain::new();
    let e = chain.link(record(0, true)).unwrap();
    db.exec(&format!(
        "CREATE TABLE legacy_audit (seq BIGINT PRIMARY KEY, prev TEXT NOT NULL, hash TEXT NOT NULL,
             time_ns BIGINT NOT NULL, kind TEXT NOT NULL, action TEXT, action_kind TEXT,
             subject TEXT, request_id TEXT, line TEXT NOT NULL);
         CREATE TABLE legacy_audit_head (id INTEGER PRIMARY KEY CHECK (id = 0),
             next_seq BIGINT NOT NULL, head TEXT NOT NULL);
         CREATE TABLE legacy_audit_checkpoint (seq BIGINT PRIMARY KEY, line TEXT NOT NULL);
         INSERT INTO legacy_audit VALUES (0, '{prev}', '{hash}', {time}, 'decision', 'read_chart',
             NULL, '{SUBJECT}', 'req-0', $q${line}$q$);
         INSERT INTO legacy_audit_head VALUES (0, 1, '{hash}');",
        prev = e.prev,
        hash = e.hash,
        time = e.record.time.0,
        line = e.line(),
    ))
    .await;
    ensure_schema(&db.pool, &old).await.unwrap();
    ensure_schema(&db.pool, &old).await.unwrap();
    assert_eq!(verify_postgres(&db.pool, &old).await.unwrap().events, 1);
    let w = ChainWriter::new(old.clone(), ChainId::new("new").unwrap());
    let mut tx = db.pool.begin().await.unwrap();
    assert_eq!(
        w.on(&mut tx)
            .append_in_tx(record(1, false))
            .await
            .unwrap()
            .seq,
        0
    );
    tx.commit().await.unwrap();
    tree_checkpoint(&db.pool, &old, &signer())
        .await
        .unwrap()
        .unwrap();
    let report = verify_postgres_trail(&db.pool, &old, Some(&signer().verifier()))
        .await
        .unwrap();
    assert_eq!(
        (report.chains, report.events, report.last_tree_size),
        (2, 2, Some(2))
    );
    db.close().await;
}

/// Two writers with the same memory of one chain append in two open transactions: the
/// second waits at the key `(chain, seq)`; once the first commits it links after the
/// first's event instead (never the same seq twice), and once the first rolls back it takes
/// the seq itself (no gap).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_writers_on_one_chain_never_commit_one_seq_twice() {
    let Some(db) = Db::new("two_writers_on_one_chain_never_commit_one_seq_twice").await else {
        return;
    };
    let a = writer("shared");
    db.append(&a, record(0, false)).await;
    let b = a.clone(); // the same memory: both would write seq 1
    for commit_first in [true, false] {
        let mut first = db.pool.begin().await.unwrap();
        let first_seq = a
            .on(&mut first)
            .append_in_tx(record(1, false))
            .await
            .unwrap()
            .seq;
        let pool = db.pool.clone();
        let b = b.clone();
        let second = tokio::spawn(async move {
            let mut tx = pool.begin().await.unwrap();
            let seq = b
                .on(&mut tx)
                .append_in_tx(record(2, false))
                .await
                .unwrap()
                .seq;
            tx.commit().await.unwrap();
            seq
        });
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(
            !second.is_finished(),
            "the second writer waits for the first"
        );
        if commit_first {
            first.commit().await.unwrap();
            assert_eq!(second.await.unwrap(), first_seq + 1);
        } else {
            first.rollback().await.unwrap();
            assert_eq!(second.await.unwrap(), first_seq);
        }
    }
    let report = verify_postgres_trail(&db.pool, &db.table, None)
        .await
        .unwrap();
    assert_eq!(report.events, 4);
    let seqs: Vec<i64> = sqlx::query_scalar(&format!(
        "SELECT seq FROM {} WHERE chain = 'shared' ORDER BY seq",
        db.table.events()
    ))
    .fetch_all(&db.pool)
    .await
    .unwrap();
    assert_eq!(seqs, [0, 1, 2, 3]);
    db.close().await;
}

/// Under `REPEATABLE READ` the second of two appends of one seq cannot see the first's
/// event, so it fails with a serialization error (closed) instead of linking after it.
#[tokio::test]
async fn a_concurrent_append_under_repeatable_read_fails_closed() {
    let Some(db) = Db::new("a_concurrent_append_under_repeatable_read_fails_closed").await else {
        return;
    };
    let a = writer("rr");
    db.append(&a, record(0, false)).await;
    let b = a.clone();
    let mut late = db.pool.begin().await.unwrap();
    sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        .execute(&mut *late)
        .await
        .unwrap();
    sqlx::query("SELECT 1").execute(&mut *late).await.unwrap(); // takes the snapshot
    assert_eq!(db.append(&a, record(1, false)).await, 1);
    let err = b
        .on(&mut late)
        .append_in_tx(record(2, false))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("could not serialize"), "{err}");
    drop(late);
    assert_eq!(db.verify().await.unwrap().events, 2);
    db.close().await;
}

/// A named chain's row is a mark its events must reach: a table whose row an earlier
/// version kept at the chain's end keeps verifying as appends pass it, and a mark the
/// events do not reach (a cut tail, a row pointing at another hash) is an error.
#[tokio::test]
async fn a_named_chain_must_reach_its_mark() {
    let Some(db) = Db::new("a_named_chain_must_reach_its_mark").await else {
        return;
    };
    let w = writer("m");
    for i in 0..3 {
        db.append(&w, record(i, false)).await;
    }
    let lines = lines_of(&db, "m").await;
    let third = guardrail_audit::AuditEvent::parse(&lines[2]).unwrap();
    let t = db.table.events();
    // As an earlier version left it: the row at the chain's end.
    db.exec(&format!(
        "UPDATE {t}_chains SET next_seq = 3, head = '{}' WHERE chain = 'm'",
        third.hash
    ))
    .await;
    db.append(&w, record(3, false)).await;
    tree_checkpoint(&db.pool, &db.table, &signer())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(db.verify().await.unwrap().events, 4);
    // The mark past the events.
    db.exec(&format!(
        "UPDATE {t}_chains SET next_seq = 5, head = '{}' WHERE chain = 'm'",
        third.hash
    ))
    .await;
    match verify_postgres_trail(&db.pool, &db.table, None)
        .await
        .unwrap_err()
    {
        TrailVerifyError::Chain {
            chain,
            source:
                TableVerifyError::Head {
                    head_next_seq,
                    events_next_seq,
                    ..
                },
        } => assert_eq!(
            (chain.as_str(), head_next_seq, events_next_seq),
            ("m", 5, 4)
        ),
        other => panic!("expected a head mismatch on `m`, got {other}"),
    }
    db.append(&w, record(4, false)).await;
    let err = tree_checkpoint(&db.pool, &db.table, &signer())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("refusing"), "{err}");
    // The mark at an event of another hash.
    db.exec(&format!(
        "UPDATE {t}_chains SET next_seq = 2, head = '{}' WHERE chain = 'm'",
        third.hash
    ))
    .await;
    assert!(matches!(
        verify_postgres_trail(&db.pool, &db.table, None).await,
        Err(TrailVerifyError::Chain {
            source: TableVerifyError::Head { .. },
            ..
        })
    ));
    db.close().await;
}

/// `ensure_schema` creates no index but the key on a PostgreSQL table (each one costs every
/// append); `ensure_query_indexes` adds the four for queries by subject, time, action and
/// request, and the table keeps taking appends and verifying.
#[tokio::test]
async fn query_indexes_are_opt_in() {
    let Some(db) = Db::new("query_indexes_are_opt_in").await else {
        return;
    };
    let indexes = || async {
        let mut names: Vec<String> = sqlx::query_scalar(
            "SELECT indexname::text FROM pg_indexes WHERE schemaname = current_schema()
             AND tablename = $1",
        )
        .bind(db.table.events())
        .fetch_all(&db.pool)
        .await
        .unwrap();
        names.sort();
        names
    };
    let t = db.table.events();
    assert_eq!(indexes().await, [format!("{t}_chain_seq")]);
    guardrail_audit::sql::postgres::ensure_query_indexes(&db.pool, &db.table)
        .await
        .unwrap();
    ensure_schema(&db.pool, &db.table).await.unwrap();
    assert_eq!(
        indexes().await,
        [
            format!("{t}_action"),
            format!("{t}_chain_seq"),
            format!("{t}_request"),
            format!("{t}_subject_time"),
            format!("{t}_time"),
        ]
    );
    db.append(&writer("i"), record(0, true)).await;
    assert_eq!(
        verify_postgres_trail(&db.pool, &db.table, None)
            .await
            .unwrap()
            .events,
        1
    );
    db.close().await;
}
