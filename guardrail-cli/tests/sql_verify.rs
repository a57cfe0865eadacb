//! `guardrail audit verify sqlite:PATH | postgres://…`: the command over audit tables, with
//! and without the checkpoint key, sound and tampered, against SQLite always and PostgreSQL
//! when `GUARDRAIL_TEST_DATABASE_URL` is set.
#![expect(
    clippy::unwrap_used,
    reason = "a test fails loudly on any unexpected error"
)]

use std::path::Path;
use std::process::{Command, Output};

use guardrail_audit::sql::postgres::{PgSink, sqlx};
use guardrail_audit::sql::sqlite::SqliteSink;
use guardrail_audit::sql::{AuditTable, SqlCheckpointOptions};
use guardrail_audit::{AuditSink, CheckpointSigner, EventKind, Record, Timestamp};

#[path = "../../tests/support/pg.rs"]
#[allow(unreachable_pub, dead_code)]
mod pg;

fn record(i: u64) -> Record {
    let mut r = Record::at(
        EventKind::Decision,
        Timestamp(1_793_491_200_000_000_000 + i * 1_000),
    );
    r.action = Some("clinic::read_chart".into());
    r.action_kind = Some("read".into());
    r.principal = Some(format!("dr-{}", i % 3).into());
    r.subject = Some(format!("hmac-sha256:{i:064x}").into());
    r.decision = Some("allow".into());
    r
}

fn signer() -> CheckpointSigner {
    CheckpointSigner::hmac_sha256(&SECRET).unwrap()
}

/// The secret of [`signer`].
const SECRET: [u8; 32] = [7; 32];
/// A key that signed nothing here.
const OTHER: [u8; 32] = [9; 32];

/// An HMAC checkpoint key as the CLI reads it, in a file.
fn key_file(dir: &Path, secret: &[u8]) -> String {
    let path = dir.join("checkpoint.key");
    let hex: String = secret.iter().map(|b| format!("{b:02x}")).collect();
    std::fs::write(&path, format!("hmac-sha256:{hex}\n")).unwrap();
    path.to_str().unwrap().to_owned()
}

fn options() -> SqlCheckpointOptions {
    SqlCheckpointOptions {
        signer: signer(),
        every_events: 5,
        file: None,
    }
}

fn guardrail(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_guardrail"))
        .args(args)
        .output()
        .unwrap()
}

fn text(o: &Output) -> (i32, String, String) {
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// 12 events, checkpoints every 5 (at seq 4 and 9).
fn sqlite_trail(dir: &Path) -> (String, AuditTable) {
    let path = dir.join("clinic.db");
    let table = AuditTable::new("clinic_audit").unwrap();
    let sink = SqliteSink::open(&path, table.clone())
        .unwrap()
        .with_checkpoints(options());
    for i in 0..12 {
        sink.append(record(i)).unwrap();
    }
    drop(sink);
    (format!("sqlite:{}", path.display()), table)
}

fn sqlite_exec(trail: &str, sql: &str) {
    let path = trail.strip_prefix("sqlite:").unwrap();
    rusqlite::Connection::open(path)
        .unwrap()
        .execute_batch(sql)
        .unwrap();
}

/// The stored hash of event `seq`.
fn sqlite_hash(trail: &str, table: &AuditTable, seq: u64) -> String {
    let path = trail.strip_prefix("sqlite:").unwrap();
    rusqlite::Connection::open(path)
        .unwrap()
        .query_row(
            &format!("SELECT hash FROM {} WHERE seq = {seq}", table.events()),
            [],
            |r| r.get(0),
        )
        .unwrap()
}

/// `guardrail audit verify TRAIL --table clinic_audit --checkpoint-key KEY`.
fn verify_signed(trail: &str, key: &str) -> (i32, String, String) {
    text(&guardrail(&[
        "audit",
        "verify",
        trail,
        "--table",
        "clinic_audit",
        "--checkpoint-key",
        key,
    ]))
}

#[test]
fn a_sound_sqlite_table_verifies_with_and_without_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let (trail, _) = sqlite_trail(dir.path());
    let key = key_file(dir.path(), &SECRET);
    let (code, out, err) = verify_signed(&trail, &key);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("ok: 12 events in table `clinic_audit`")
            && out.contains("2 checkpoint(s) match, the last at seq 9")
            && out.contains("2 event(s) after the last checkpoint"),
        "{out}"
    );
    let (code, out, _) = text(&guardrail(&[
        "audit",
        "verify",
        &trail,
        "--table",
        "clinic_audit",
    ]));
    assert_eq!(code, 0);
    assert!(
        out.contains("ok: 12 events") && out.contains("no checkpoint key given"),
        "{out}"
    );
}

#[test]
fn a_cut_tail_with_the_head_moved_back_exits_1_naming_the_first_missing_seq() {
    let dir = tempfile::tempdir().unwrap();
    let (trail, table) = sqlite_trail(dir.path());
    // The attacker cuts seq 7.. and moves the head back to what it was after seq 6.
    let hash6 = sqlite_hash(&trail, &table, 6);
    sqlite_exec(
        &trail,
        &format!(
            "DELETE FROM {ev} WHERE seq >= 7; UPDATE {head} SET next_seq = 7, head = '{hash6}';",
            ev = table.events(),
            head = table.head()
        ),
    );
    let key = key_file(dir.path(), &SECRET);
    let args = ["audit", "verify", &trail, "--table", "clinic_audit"];
    // Without the key the cut cannot be seen: that is what the key is for.
    assert_eq!(text(&guardrail(&args)).0, 0);
    let (code, out, err) = text(&guardrail(
        &[&args[..], &["--checkpoint-key", &key]].concat(),
    ));
    assert_eq!(code, 1, "{out}{err}");
    assert!(
        err.contains("tampering detected") && err.contains("seq 7"),
        "{err}"
    );
}

#[test]
fn an_edited_checkpoint_row_exits_1() {
    let dir = tempfile::tempdir().unwrap();
    let (trail, table) = sqlite_trail(dir.path());
    sqlite_exec(
        &trail,
        &format!(
            "UPDATE {} SET line = replace(line, '\"head\":\"', '\"head\":\"0') WHERE seq = 4",
            table.checkpoints()
        ),
    );
    let key = key_file(dir.path(), &SECRET);
    let (code, _, err) = verify_signed(&trail, &key);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("checkpoint row seq 4"), "{err}");
}

#[test]
fn a_key_that_signed_none_of_the_checkpoints_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let (trail, _) = sqlite_trail(dir.path());
    let key = key_file(dir.path(), &OTHER);
    let (code, _, err) = verify_signed(&trail, &key);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("no checkpoint row of the table is signed by the key given"),
        "{err}"
    );
}

#[test]
fn a_checkpoint_row_signed_by_another_key_among_ours_exits_1() {
    let dir = tempfile::tempdir().unwrap();
    let (trail, table) = sqlite_trail(dir.path());
    // The attacker re-signs the row at seq 9 with a key of their own.
    let hash9 = sqlite_hash(&trail, &table, 9);
    let path = trail.strip_prefix("sqlite:").unwrap();
    let conn = rusqlite::Connection::open(path).unwrap();
    let forged = CheckpointSigner::hmac_sha256(&OTHER).unwrap().sign(
        table.events(),
        9,
        guardrail_audit::Digest::from_hex(&hash9).unwrap(),
        Timestamp(1),
    );
    conn.execute(
        &format!("UPDATE {} SET line = ?1 WHERE seq = 9", table.checkpoints()),
        [forged],
    )
    .unwrap();
    drop(conn);
    let key = key_file(dir.path(), &SECRET);
    let (code, _, err) = verify_signed(&trail, &key);
    assert_eq!(code, 1, "{err}");
}

#[test]
fn a_missing_database_or_a_mixed_trail_is_a_usage_error() {
    let dir = tempfile::tempdir().unwrap();
    let missing = format!("sqlite:{}", dir.path().join("nope.db").display());
    let (code, _, err) = text(&guardrail(&["audit", "verify", &missing]));
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("cannot open the database"), "{err}");
    assert!(
        !dir.path().join("nope.db").exists(),
        "verify created a database"
    );
    let (code, _, err) = text(&guardrail(&["audit", "verify", &missing, "other"]));
    assert_eq!(code, 2);
    assert!(err.contains("only TRAIL"), "{err}");
    let (code, _, err) = text(&guardrail(&[
        "audit", "export", "--format", "fhir", &missing,
    ]));
    assert_eq!(code, 2);
    assert!(err.contains("only `audit verify`"), "{err}");
}

#[test]
fn a_postgres_table_verifies_and_a_cut_tail_exits_1() {
    let Some(url) = pg::database_url("a_postgres_table_verifies_and_a_cut_tail_exits_1") else {
        return;
    };
    let name = format!("cli_verify_{}", std::process::id());
    let table = AuditTable::new(&name).unwrap();
    let sink = PgSink::connect(&url, table.clone())
        .unwrap()
        .with_checkpoints(options());
    for i in 0..12 {
        sink.append(record(i)).unwrap();
    }
    drop(sink);
    let dir = tempfile::tempdir().unwrap();
    let key = key_file(dir.path(), &SECRET);
    let args = [
        "audit",
        "verify",
        &url,
        "--table",
        &name,
        "--checkpoint-key",
        &key,
    ];
    let (code, out, err) = text(&guardrail(&args));
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("ok: 12 events") && out.contains("the last at seq 9"),
        "{out}"
    );
    assert!(!out.contains(&url), "the URL is echoed: {out}");

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let pool = sqlx::PgPool::connect(&url).await.unwrap();
        let hash6: String = sqlx::query_scalar(&format!(
            "SELECT hash FROM {} WHERE seq = 6",
            table.events()
        ))
        .fetch_one(&pool)
        .await
        .unwrap();
        sqlx::query(&format!("DELETE FROM {} WHERE seq >= 7", table.events()))
            .execute(&pool)
            .await
            .unwrap();
        sqlx::query(&format!(
            "UPDATE {} SET next_seq = 7, head = $1",
            table.head()
        ))
        .bind(hash6)
        .execute(&pool)
        .await
        .unwrap();
        let (code, _, err) = text(&guardrail(&args));
        assert_eq!(code, 1, "{err}");
        assert!(err.contains("seq 7"), "{err}");
        let chains = format!("{}_chains", table.events());
        let tree = format!("{}_tree", table.events());
        for t in [
            table.events(),
            table.head(),
            table.checkpoints(),
            &chains,
            &tree,
        ] {
            sqlx::query(&format!("DROP TABLE {t}"))
                .execute(&pool)
                .await
                .unwrap();
        }
    });
}
