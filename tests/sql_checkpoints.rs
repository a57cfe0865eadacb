//! Signed checkpoints of the SQL audit tables: someone with write access to the database
//! (but not to the checkpoint key) rewrites the trail, and the signed verification names what
//! was done and where. Each attack is its own test, run against SQLite always and against
//! PostgreSQL when `GUARDRAIL_TEST_DATABASE_URL` is set (`tests/support/pg.rs`).

use std::path::{Path, PathBuf};

use guardrail_audit::sql::postgres::{PgSink, sqlx, verify_postgres_signed};
use guardrail_audit::sql::sqlite::{SqliteSink, verify_sqlite, verify_sqlite_signed};
use guardrail_audit::sql::{AuditTable, SqlCheckpointOptions, TableReport, TableVerifyError};
use guardrail_audit::{
    AuditError, AuditEvent, AuditSink, Chain, CheckpointError, CheckpointSigner,
    CheckpointVerifier, EventKind, Record, Timestamp,
};

/// The principal whose rows the attacker removes: it acts at seq 7, 13 and 22 only.
const VICTIM: &str = "dr-mallory";

fn record(i: usize) -> Record {
    let mut r = Record::at(
        EventKind::Decision,
        Timestamp(1_793_491_200_000_000_000 + i as u64 * 1_000),
    );
    r.request_id = Some(format!("req-{i}").into());
    r.action = Some("clinic::read_chart".into());
    r.action_kind = Some("read".into());
    let principal = if matches!(i, 7 | 13 | 22) {
        VICTIM.to_owned()
    } else {
        format!("dr-{}", i % 3)
    };
    r.principal = Some(principal.into());
    r.subject = Some(format!("hmac-sha256:{i:064x}").into());
    r.decision = Some("allow".into());
    r
}

fn signer() -> CheckpointSigner {
    CheckpointSigner::ed25519_from_seed(&[42; 32])
}

/// The SQL an attacker with write access runs, and the verification an auditor runs.
trait Db {
    fn table(&self) -> &AuditTable;
    fn file(&self) -> &Path;
    fn exec(&mut self, sql: &str);
    fn lines(&mut self, from_table: &str) -> Vec<(i64, String)>;
    fn append(&mut self, r: Record) -> Result<u64, AuditError>;
    fn verify(
        &mut self,
        verifier: &CheckpointVerifier,
        file: Option<&Path>,
    ) -> Result<TableReport, TableVerifyError>;
}

fn sql_text(s: Option<&str>) -> String {
    match s {
        Some(s) => format!("'{}'", s.replace('\'', "''")),
        None => "NULL".to_owned(),
    }
}

/// Inserts an event row exactly as the sink would.
fn insert_sql(table: &AuditTable, e: &AuditEvent) -> String {
    let r = &e.record;
    let kind = serde_json::to_value(r.kind).unwrap();
    format!(
        "INSERT INTO {} (seq, prev, hash, time_ns, kind, action, action_kind, subject, \
         request_id, line) VALUES ({}, '{}', '{}', {}, '{}', {}, {}, {}, {}, {})",
        table.events(),
        e.seq,
        e.prev,
        e.hash,
        r.time.0,
        kind.as_str().unwrap(),
        sql_text(r.action.as_deref()),
        sql_text(r.action_kind.as_deref()),
        sql_text(r.subject.as_deref()),
        sql_text(r.request_id.as_deref()),
        sql_text(Some(e.line())),
    )
}

fn set_head(db: &mut dyn Db, head: Chain) {
    let sql = format!(
        "UPDATE {} SET next_seq = {}, head = '{}' WHERE id = 0",
        db.table().head(),
        head.next_seq,
        head.head
    );
    db.exec(&sql);
}

fn fill(db: &mut dyn Db, n: usize) {
    for i in 0..n {
        assert_eq!(db.append(record(i)).unwrap(), i as u64);
    }
}

fn file_seqs(path: &Path) -> Vec<u64> {
    let v = signer().verifier();
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| v.verify_line(l.as_bytes()).unwrap().seq)
        .collect()
}

// ---------------------------------------------------------------------------------------
// The attacks, each against any database.
// ---------------------------------------------------------------------------------------

/// Checkpoints every 5 events: 42 events leave checkpoints at 4, 9, …, 39 in the table and
/// in the file, and 2 events uncovered; an on-demand checkpoint covers them.
fn untampered_trail_verifies(db: &mut dyn Db) {
    fill(db, 42);
    let expected: Vec<u64> = (0..8).map(|k| k * 5 + 4).collect();
    assert_eq!(file_seqs(db.file()), expected);
    let cps = db.table().checkpoints().to_owned();
    let rows: Vec<i64> = db.lines(&cps).into_iter().map(|(seq, _)| seq).collect();
    assert_eq!(rows, expected.iter().map(|&s| s as i64).collect::<Vec<_>>());
    let v = signer().verifier();
    let file = db.file().to_owned();
    let report = db.verify(&v, Some(&file)).unwrap();
    assert_eq!(
        (
            report.events,
            report.head.next_seq,
            report.checkpoints,
            report.last_checkpoint_seq,
            report.unchecked_events
        ),
        (42, 42, 16, Some(39), 2)
    );
    let without_file = db.verify(&v, None).unwrap();
    assert_eq!(
        (without_file.checkpoints, without_file.unchecked_events),
        (8, 2)
    );
}

/// The attack of the issue: delete one principal's rows, relink the rest with `Chain::link`
/// (a valid chain again), rewrite the head row. The unsigned verification passes; the signed
/// one names the first checkpoint the rewrite contradicts (seq 9) and the range it began in
/// (after the matching checkpoint at seq 4: the first changed seq is 7).
fn relinked_chain_is_named(db: &mut dyn Db, unsigned_ok: &mut dyn FnMut(&mut dyn Db) -> u64) {
    fill(db, 40);
    let head = relink_without_victim(db);
    assert_eq!(head.next_seq, 37);
    assert_eq!(
        unsigned_ok(db),
        37,
        "the unsigned check cannot see a relink"
    );
    let v = signer().verifier();
    match db.verify(&v, None).unwrap_err() {
        TableVerifyError::Rewritten {
            table,
            seq,
            since_seq,
        } => {
            assert_eq!(table, db.table().events());
            assert_eq!((seq, since_seq), (9, 5));
        }
        other => panic!("expected Rewritten, got {other}"),
    }
    // The sink refuses to sign over it (its next checkpoint would cover the rewrite).
    let err = db.append(record(40)).unwrap_err();
    assert!(
        err.to_string().contains("refusing to sign a checkpoint"),
        "{err}"
    );
}

/// Same relink with a checkpoint after every event: the exact first changed seq is named.
fn relinked_chain_with_checkpoint_per_event_names_the_first_changed_seq(db: &mut dyn Db) {
    fill(db, 40);
    relink_without_victim(db);
    match db.verify(&signer().verifier(), None).unwrap_err() {
        TableVerifyError::Rewritten { seq, since_seq, .. } => {
            assert_eq!((seq, since_seq), (7, 7));
        }
        other => panic!("expected Rewritten, got {other}"),
    }
}

fn relink_without_victim(db: &mut dyn Db) -> Chain {
    let events = db.table().events().to_owned();
    let kept: Vec<Record> = db
        .lines(&events)
        .into_iter()
        .map(|(_, l)| AuditEvent::parse(&l).unwrap().record)
        .filter(|r| r.principal.as_deref() != Some(VICTIM))
        .collect();
    let mut chain = Chain::new();
    let table = db.table().clone();
    db.exec(&format!("DELETE FROM {events}"));
    for r in kept {
        let e = chain.link(r).unwrap();
        db.exec(&insert_sql(&table, &e));
    }
    set_head(db, chain);
    chain
}

/// Cut the tail (seq 23 on) and move the head back to the last kept event: the chain and
/// the head row agree, but checkpoint 24 covers events that are gone.
fn cut_tail_names_the_first_missing_seq(db: &mut dyn Db) {
    fill(db, 40);
    let events = db.table().events().to_owned();
    let last_kept = AuditEvent::parse(&db.lines(&events)[22].1).unwrap();
    assert_eq!(last_kept.seq, 22);
    db.exec(&format!("DELETE FROM {events} WHERE seq >= 23"));
    set_head(db, Chain::after(&last_kept));
    match db.verify(&signer().verifier(), None).unwrap_err() {
        TableVerifyError::Truncated {
            table,
            first_missing_seq,
            checkpoint_seq,
        } => {
            assert_eq!(table, events);
            assert_eq!((first_missing_seq, checkpoint_seq), (23, 24));
        }
        other => panic!("expected Truncated, got {other}"),
    }
}

/// Replay the head row saved at 20 events after cutting the events after it. With the
/// newer checkpoint rows left, the table convicts itself; with them deleted too the
/// database is an exact copy of its earlier, genuine state, which only the external file
/// can tell.
fn replayed_old_head_is_named(db: &mut dyn Db) {
    fill(db, 20);
    let head_table = db.table().head().to_owned();
    let saved = db.lines_head(&head_table);
    for i in 20..40 {
        db.append(record(i)).unwrap();
    }
    let events = db.table().events().to_owned();
    db.exec(&format!("DELETE FROM {events} WHERE seq >= 20"));
    set_head(db, saved);
    let v = signer().verifier();
    let file = db.file().to_owned();
    let truncated = |e: TableVerifyError| match e {
        TableVerifyError::Truncated {
            first_missing_seq,
            checkpoint_seq,
            ..
        } => (first_missing_seq, checkpoint_seq),
        other => panic!("expected Truncated, got {other}"),
    };
    assert_eq!(truncated(db.verify(&v, None).unwrap_err()), (20, 24));
    let cps = db.table().checkpoints().to_owned();
    db.exec(&format!("DELETE FROM {cps} WHERE seq >= 20"));
    let fooled = db.verify(&v, None).unwrap();
    assert_eq!(
        (fooled.events, fooled.last_checkpoint_seq),
        (20, Some(19)),
        "without the file an exact earlier state is indistinguishable"
    );
    assert_eq!(truncated(db.verify(&v, Some(&file)).unwrap_err()), (20, 24));
}

/// Edit a checkpoint row (its head), and move a genuine checkpoint into another row.
fn edited_checkpoint_row_fails_on_its_signature(db: &mut dyn Db) {
    fill(db, 20);
    let cps = db.table().checkpoints().to_owned();
    let rows = db.lines(&cps);
    let (seq, line) = rows.iter().find(|(s, _)| *s == 14).unwrap().clone();
    let cp = signer().verifier().verify_line(line.as_bytes()).unwrap();
    let forged = line.replace(&cp.head.to_hex(), &"ab".repeat(32));
    assert_ne!(forged, line);
    db.exec(&format!(
        "UPDATE {cps} SET line = '{forged}' WHERE seq = {seq}"
    ));
    match db.verify(&signer().verifier(), None).unwrap_err() {
        TableVerifyError::Checkpoint { table, seq, source } => {
            assert_eq!(table, db.table().events());
            assert_eq!((seq, source), (14, CheckpointError::BadSignature));
        }
        other => panic!("expected a bad checkpoint signature, got {other}"),
    }
    // A genuine line of seq 9 placed in the row of seq 14.
    let line9 = rows.iter().find(|(s, _)| *s == 9).unwrap().1.clone();
    db.exec(&format!("UPDATE {cps} SET line = '{line9}' WHERE seq = 14"));
    match db.verify(&signer().verifier(), None).unwrap_err() {
        TableVerifyError::CheckpointRow { seq, reason, .. } => {
            assert_eq!(seq, 14);
            assert!(reason.contains("seq 9"), "{reason}");
        }
        other => panic!("expected a misplaced checkpoint, got {other}"),
    }
}

/// A checkpoint row signed with the attacker's own key (covering a rewrite) is refused as
/// signed by another key.
fn forged_checkpoint_row_is_refused(db: &mut dyn Db) {
    fill(db, 12);
    let attacker = CheckpointSigner::ed25519_from_seed(&[66; 32]);
    let events = db.table().events().to_owned();
    let last = AuditEvent::parse(&db.lines(&events)[11].1).unwrap();
    let line = attacker.sign(&events, 11, last.hash, Timestamp(0));
    let cps = db.table().checkpoints().to_owned();
    db.exec(&format!(
        "INSERT INTO {cps} (seq, line) VALUES (11, '{line}')"
    ));
    match db.verify(&signer().verifier(), None).unwrap_err() {
        TableVerifyError::Checkpoint {
            seq,
            source: CheckpointError::WrongKey { found, .. },
            ..
        } => {
            assert_eq!(seq, 11);
            assert_eq!(found, attacker.key_id());
        }
        other => panic!("expected WrongKey, got {other}"),
    }
}

/// Delete the newest checkpoint rows (34 and 39): the table alone cannot tell, the external
/// file names the first one missing.
fn deleted_checkpoint_rows_are_caught_with_the_file(db: &mut dyn Db) {
    fill(db, 40);
    let cps = db.table().checkpoints().to_owned();
    db.exec(&format!("DELETE FROM {cps} WHERE seq >= 30"));
    let v = signer().verifier();
    let alone = db.verify(&v, None).unwrap();
    assert_eq!(
        (alone.last_checkpoint_seq, alone.unchecked_events),
        (Some(29), 10)
    );
    let file = db.file().to_owned();
    match db.verify(&v, Some(&file)).unwrap_err() {
        TableVerifyError::CheckpointMissing {
            table,
            seq,
            path,
            line,
        } => {
            assert_eq!(table, db.table().events());
            assert_eq!((seq, line), (34, 7));
            assert_eq!(path, file);
        }
        other => panic!("expected CheckpointMissing, got {other}"),
    }
}

trait HeadRow {
    fn lines_head(&mut self, head_table: &str) -> Chain;
}

impl<T: Db + ?Sized> HeadRow for T {
    fn lines_head(&mut self, head_table: &str) -> Chain {
        let rows = self.lines(&format!(
            "(SELECT next_seq AS seq, head AS line FROM {head_table}) AS h"
        ));
        let (next_seq, head) = rows.into_iter().next().unwrap();
        Chain {
            next_seq: next_seq as u64,
            head: guardrail_audit::Digest::from_hex(&head).unwrap(),
        }
    }
}

// ---------------------------------------------------------------------------------------
// SQLite
// ---------------------------------------------------------------------------------------

struct Sqlite {
    _dir: tempfile::TempDir,
    file: PathBuf,
    table: AuditTable,
    sink: SqliteSink,
}

impl Sqlite {
    fn new(test: &str, every_events: u64) -> Sqlite {
        let dir = tempfile::tempdir().unwrap();
        let table = AuditTable::new(&format!("cp_{test}")).unwrap();
        let file = dir.path().join("checkpoints.jsonl");
        let options = SqlCheckpointOptions {
            every_events,
            file: Some(file.clone()),
            ..SqlCheckpointOptions::new(signer())
        };
        let sink = SqliteSink::open(dir.path().join("audit.db"), table.clone())
            .unwrap()
            .with_checkpoints(options);
        Sqlite {
            _dir: dir,
            file,
            table,
            sink,
        }
    }
}

impl Db for Sqlite {
    fn table(&self) -> &AuditTable {
        &self.table
    }
    fn file(&self) -> &Path {
        &self.file
    }
    fn exec(&mut self, sql: &str) {
        self.sink.with_connection(|c| c.execute_batch(sql).unwrap());
    }
    fn lines(&mut self, from_table: &str) -> Vec<(i64, String)> {
        self.sink.with_connection(|c| {
            let mut st = c
                .prepare(&format!("SELECT seq, line FROM {from_table} ORDER BY seq"))
                .unwrap();
            st.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
                .unwrap()
                .map(Result::unwrap)
                .collect()
        })
    }
    fn append(&mut self, r: Record) -> Result<u64, AuditError> {
        self.sink.append(r).map(|x| x.seq)
    }
    fn verify(
        &mut self,
        verifier: &CheckpointVerifier,
        file: Option<&Path>,
    ) -> Result<TableReport, TableVerifyError> {
        let table = self.table.clone();
        self.sink
            .with_connection(|c| verify_sqlite_signed(c, &table, verifier, file))
    }
}

fn sqlite_unsigned(db: &mut dyn Db) -> u64 {
    let table = db.table().clone();
    let path = db.file().with_file_name("audit.db");
    let conn = guardrail_audit::sql::sqlite::rusqlite::Connection::open(path).unwrap();
    verify_sqlite(&conn, &table).unwrap().events
}

#[test]
fn sqlite_untampered_trail_verifies() {
    untampered_trail_verifies(&mut Sqlite::new("untampered", 5));
}

#[test]
fn sqlite_relinked_chain_is_named() {
    relinked_chain_is_named(&mut Sqlite::new("relinked", 5), &mut sqlite_unsigned);
}

#[test]
fn sqlite_relinked_chain_with_checkpoint_per_event() {
    relinked_chain_with_checkpoint_per_event_names_the_first_changed_seq(&mut Sqlite::new(
        "relinked_each",
        1,
    ));
}

#[test]
fn sqlite_cut_tail_is_named() {
    cut_tail_names_the_first_missing_seq(&mut Sqlite::new("cut", 5));
}

#[test]
fn sqlite_replayed_old_head_is_named() {
    replayed_old_head_is_named(&mut Sqlite::new("replay", 5));
}

#[test]
fn sqlite_edited_checkpoint_row_is_named() {
    edited_checkpoint_row_fails_on_its_signature(&mut Sqlite::new("edited_cp", 5));
}

#[test]
fn sqlite_forged_checkpoint_row_is_refused() {
    forged_checkpoint_row_is_refused(&mut Sqlite::new("forged_cp", 5));
}

#[test]
fn sqlite_deleted_checkpoint_rows_are_caught_with_the_file() {
    deleted_checkpoint_rows_are_caught_with_the_file(&mut Sqlite::new("deleted_cp", 5));
}

/// Events appended through `TxAppend` in the caller's transactions are covered by an
/// on-demand checkpoint, and by the sink's count trigger at its next append.
#[test]
fn sqlite_tx_appends_are_covered_by_checkpoints() {
    use guardrail_audit::sql::sqlite::{checkpoint, ensure_schema, rusqlite::Connection};
    use guardrail_audit::sql::{InTable, TxAppend};
    let dir = tempfile::tempdir().unwrap();
    let table = AuditTable::new("cp_tx").unwrap();
    let mut conn = Connection::open(dir.path().join("audit.db")).unwrap();
    ensure_schema(&conn, &table).unwrap();
    let file = dir.path().join("cp.jsonl");
    let options = SqlCheckpointOptions {
        file: Some(file.clone()),
        ..SqlCheckpointOptions::new(signer())
    };
    let v = signer().verifier();
    assert!(checkpoint(&mut conn, &table, &options).unwrap().is_none());
    for i in 0..3 {
        let mut tx = conn.transaction().unwrap();
        InTable::new(&table, &mut tx)
            .append_in_tx(record(i))
            .unwrap();
        tx.commit().unwrap();
    }
    let cp = checkpoint(&mut conn, &table, &options).unwrap().unwrap();
    assert_eq!((cp.seq, cp.log.as_str()), (2, "cp_tx"));
    assert!(checkpoint(&mut conn, &table, &options).unwrap().is_none());
    let r = verify_sqlite_signed(&conn, &table, &v, Some(&file)).unwrap();
    assert_eq!(
        (r.events, r.last_checkpoint_seq, r.unchecked_events),
        (3, Some(2), 0)
    );
    // A cut of the tx-appended tail is now caught.
    conn.execute_batch(&format!(
        "DELETE FROM {} WHERE seq = 2; UPDATE {} SET next_seq = 2 WHERE id = 0",
        table.events(),
        table.head()
    ))
    .unwrap();
    match verify_sqlite_signed(&conn, &table, &v, None).unwrap_err() {
        TableVerifyError::Truncated {
            first_missing_seq,
            checkpoint_seq,
            ..
        } => assert_eq!((first_missing_seq, checkpoint_seq), (2, 2)),
        other => panic!("expected Truncated, got {other}"),
    }
}

// ---------------------------------------------------------------------------------------
// PostgreSQL
// ---------------------------------------------------------------------------------------

struct Pg {
    _dir: tempfile::TempDir,
    file: PathBuf,
    table: AuditTable,
    sink: Option<PgSink>,
    pool: sqlx::PgPool,
    rt: tokio::runtime::Runtime,
}

impl Pg {
    fn new(test: &str, every_events: u64) -> Option<Pg> {
        let url = guardrail_tests::pg::database_url(test)?;
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        let table =
            AuditTable::new(&format!("gr_cp_{test}_{}_{nanos}", std::process::id())).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("checkpoints.jsonl");
        let options = SqlCheckpointOptions {
            every_events,
            file: Some(file.clone()),
            ..SqlCheckpointOptions::new(signer())
        };
        let sink = PgSink::connect(&url, table.clone())
            .unwrap()
            .with_checkpoints(options);
        let rt = tokio::runtime::Runtime::new().unwrap();
        let pool = rt.block_on(sqlx::PgPool::connect(&url)).unwrap();
        Some(Pg {
            _dir: dir,
            file,
            table,
            sink: Some(sink),
            pool,
            rt,
        })
    }
}

impl Drop for Pg {
    fn drop(&mut self) {
        self.sink.take();
        let sql = format!(
            "DROP TABLE IF EXISTS {0}, {1}, {2}, {0}_chains, {0}_tree",
            self.table.events(),
            self.table.head(),
            self.table.checkpoints()
        );
        let _ = self.rt.block_on(sqlx::raw_sql(&sql).execute(&self.pool));
    }
}

impl Db for Pg {
    fn table(&self) -> &AuditTable {
        &self.table
    }
    fn file(&self) -> &Path {
        &self.file
    }
    fn exec(&mut self, sql: &str) {
        self.rt
            .block_on(sqlx::raw_sql(sql).execute(&self.pool))
            .unwrap();
    }
    fn lines(&mut self, from_table: &str) -> Vec<(i64, String)> {
        self.rt
            .block_on(
                sqlx::query_as(&format!("SELECT seq, line FROM {from_table} ORDER BY seq"))
                    .fetch_all(&self.pool),
            )
            .unwrap()
    }
    fn append(&mut self, r: Record) -> Result<u64, AuditError> {
        self.sink.as_ref().unwrap().append(r).map(|x| x.seq)
    }
    fn verify(
        &mut self,
        verifier: &CheckpointVerifier,
        file: Option<&Path>,
    ) -> Result<TableReport, TableVerifyError> {
        self.rt.block_on(verify_postgres_signed(
            &self.pool,
            &self.table,
            verifier,
            file,
        ))
    }
}

fn pg_unsigned(db: &mut dyn Db) -> u64 {
    let table = db.table().clone();
    let url = std::env::var(guardrail_tests::pg::DATABASE_URL_VAR).unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let pool = sqlx::PgPool::connect(&url).await.unwrap();
        guardrail_audit::sql::postgres::verify_postgres(&pool, &table)
            .await
            .unwrap()
            .events
    })
}

#[test]
fn postgres_untampered_trail_verifies() {
    if let Some(mut db) = Pg::new("untampered", 5) {
        untampered_trail_verifies(&mut db);
    }
}

#[test]
fn postgres_relinked_chain_is_named() {
    if let Some(mut db) = Pg::new("relinked", 5) {
        relinked_chain_is_named(&mut db, &mut pg_unsigned);
    }
}

#[test]
fn postgres_relinked_chain_with_checkpoint_per_event() {
    if let Some(mut db) = Pg::new("relinked_each", 1) {
        relinked_chain_with_checkpoint_per_event_names_the_first_changed_seq(&mut db);
    }
}

#[test]
fn postgres_cut_tail_is_named() {
    if let Some(mut db) = Pg::new("cut", 5) {
        cut_tail_names_the_first_missing_seq(&mut db);
    }
}

#[test]
fn postgres_replayed_old_head_is_named() {
    if let Some(mut db) = Pg::new("replay", 5) {
        replayed_old_head_is_named(&mut db);
    }
}

#[test]
fn postgres_edited_checkpoint_row_is_named() {
    if let Some(mut db) = Pg::new("edited_cp", 5) {
        edited_checkpoint_row_fails_on_its_signature(&mut db);
    }
}

#[test]
fn postgres_forged_checkpoint_row_is_refused() {
    if let Some(mut db) = Pg::new("forged_cp", 5) {
        forged_checkpoint_row_is_refused(&mut db);
    }
}

#[test]
fn postgres_deleted_checkpoint_rows_are_caught_with_the_file() {
    if let Some(mut db) = Pg::new("deleted_cp", 5) {
        deleted_checkpoint_rows_are_caught_with_the_file(&mut db);
    }
}

/// On-demand checkpoints through the sink and through `postgres::checkpoint`.
#[test]
fn postgres_on_demand_checkpoint_covers_the_tail() {
    let Some(mut db) = Pg::new("on_demand", 0) else {
        return;
    };
    fill(&mut db, 3);
    let v = signer().verifier();
    assert_eq!(db.verify(&v, None).unwrap().unchecked_events, 3);
    let cp = db.sink.as_ref().unwrap().checkpoint().unwrap().unwrap();
    assert_eq!(cp.seq, 2);
    assert!(db.sink.as_ref().unwrap().checkpoint().unwrap().is_none());
    db.append(record(3)).unwrap();
    let options = SqlCheckpointOptions {
        file: Some(db.file.clone()),
        ..SqlCheckpointOptions::new(signer())
    };
    let cp = db
        .rt
        .block_on(guardrail_audit::sql::postgres::checkpoint(
            &db.pool, &db.table, &options,
        ))
        .unwrap()
        .unwrap();
    assert_eq!(cp.seq, 3);
    assert_eq!(file_seqs(&db.file), vec![2, 3]);
    let file = db.file.clone();
    let r = db.verify(&v, Some(&file)).unwrap();
    assert_eq!(
        (r.events, r.last_checkpoint_seq, r.unchecked_events),
        (4, Some(3), 0)
    );
}

/// The checkpointer never signs what it did not verify: an edited row or a cut tail after
/// the newest checkpoint makes the checkpoint (and so the append that made it due) fail.
#[test]
fn sqlite_checkpointer_refuses_to_sign_a_broken_tail() {
    let mut db = Sqlite::new("refuse", 5);
    fill(&mut db, 42);
    let events = db.table.events().to_owned();
    db.exec(&format!(
        "UPDATE {events} SET line = replace(line, 'req-41', 'req-00') WHERE seq = 41"
    ));
    let err = db.sink.checkpoint().unwrap_err().to_string();
    assert!(
        err.contains("refusing to sign a checkpoint")
            && err.contains("(seq 41): content does not match its hash"),
        "{err}"
    );
    db.exec(&format!("DELETE FROM {events} WHERE seq = 41"));
    let err = db.sink.checkpoint().unwrap_err().to_string();
    assert!(
        err.contains("end at next seq 41, but the head row says next seq 42"),
        "{err}"
    );
    assert_eq!(file_seqs(&db.file).last(), Some(&39));
}
