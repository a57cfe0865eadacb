//! `guardrail audit show --request ID TRAIL --sql …`: one request's decision (file trail) and
//! outcome (SQL table, written in the caller's transaction by `#[phi_action(tx = ..)]`)
//! joined, each outcome checked against the decision it names; SQLite always, PostgreSQL
//! when `GUARDRAIL_TEST_DATABASE_URL` is set.
#![expect(
    clippy::unwrap_used,
    reason = "a test fails loudly on any unexpected error"
)]

use std::path::Path;
use std::process::{Command, Output};

use guardrail_audit::sql::postgres::sqlx::{self, Postgres, Transaction};
use guardrail_audit::sql::sqlite::rusqlite::{self, Connection, params};
use guardrail_audit::sql::{AuditTable, InTable, postgres as pg, sqlite as lite};
use guardrail_audit::{FileSink, FileSinkOptions};
use guardrail_core::prelude::*;

#[path = "../../tests/support/pg.rs"]
#[allow(unreachable_pub, dead_code)]
mod pg_support;

#[derive(Debug)]
#[allow(dead_code, reason = "the variants are read through Debug")]
enum AppError {
    Guard(GuardError),
    Db(String),
}

impl From<GuardError> for AppError {
    fn from(e: GuardError) -> Self {
        AppError::Guard(e)
    }
}

impl From<rusqlite::Error> for AppError {
    fn from(e: rusqlite::Error) -> Self {
        AppError::Db(e.to_string())
    }
}

impl From<sqlx::Error> for AppError {
    fn from(e: sqlx::Error) -> Self {
        AppError::Db(e.to_string())
    }
}

const POLICY: &str = r#"
version = "show-1"

[[rule]]
id = "providers-treat"
effect = "allow"
actions = ["*"]
roles = ["provider"]
purposes = ["treatment"]
"#;

/// Changes a diagnosis inside the caller's SQLite transaction.
#[phi_action(kind = "update", role = "provider", resource = "patient_record", subject = patient, tx = tx)]
fn set_dx(
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

/// Changes a diagnosis in `charts` inside the caller's PostgreSQL transaction, its outcome
/// in the audit table `tx` is bound to.
#[phi_action(kind = "update", role = "provider", resource = "patient_record", subject = patient, tx = tx)]
async fn set_dx_pg(
    ctx: &Context,
    tx: &mut InTable<'_, Transaction<'static, Postgres>>,
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

fn guardrail_with(trail: &Path) -> Guardrail {
    Guardrail::builder()
        .policy(Policy::from_toml_str(POLICY).unwrap())
        .audit(FileSink::open(trail, FileSinkOptions::default()).unwrap())
        .audit_key(AuditKey::from_bytes(b"show test key, thirty-two bytes!").unwrap())
        .build()
        .unwrap()
}

fn ctx(g: &Guardrail, request: &str, role: &str) -> Context {
    g.context(Principal::new("dr-grey").role(role))
        .purpose(Purpose::Treatment)
        .request_id(request)
}

fn cli(args: &[&str]) -> (i32, String, String) {
    let o: Output = Command::new(env!("CARGO_BIN_EXE_guardrail"))
        .args(args)
        .output()
        .unwrap();
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// A file trail and a SQLite database written by guarded `tx = tx` calls: `req-ok` committed,
/// `req-rolled` rolled back, `req-denied` denied (a nurse), `req-err` failed in its body.
fn sqlite_scene(dir: &Path) -> (String, String) {
    let trail = dir.join("trail");
    let db = dir.join("clinic.db");
    let mut conn = Connection::open(&db).unwrap();
    conn.execute_batch(
        "CREATE TABLE charts (patient TEXT PRIMARY KEY, dx TEXT NOT NULL);
         INSERT INTO charts VALUES ('p-1', 'none'), ('p-2', 'none');",
    )
    .unwrap();
    lite::ensure_schema(&conn, &AuditTable::default()).unwrap();
    let g = guardrail_with(&trail);

    let mut tx = conn.transaction().unwrap();
    set_dx(&ctx(&g, "req-ok", "provider"), &mut tx, "p-1", "flu").unwrap();
    tx.commit().unwrap();

    let mut tx = conn.transaction().unwrap();
    set_dx(&ctx(&g, "req-rolled", "provider"), &mut tx, "p-2", "mumps").unwrap();
    tx.rollback().unwrap();

    let mut tx = conn.transaction().unwrap();
    let denied = set_dx(&ctx(&g, "req-denied", "nurse"), &mut tx, "p-2", "x");
    assert!(matches!(
        denied,
        Err(AppError::Guard(GuardError::Denied { .. }))
    ));
    let failed = set_dx(&ctx(&g, "req-err", "provider"), &mut tx, "p-9", "x");
    assert!(matches!(failed, Err(AppError::Db(_))));
    tx.rollback().unwrap();
    drop(g);
    (
        trail.to_str().unwrap().to_owned(),
        format!("sqlite:{}", db.display()),
    )
}

#[test]
fn a_committed_call_shows_its_decision_and_its_table_outcome_linked() {
    let dir = tempfile::tempdir().unwrap();
    let (trail, db) = sqlite_scene(dir.path());
    let (code, out, err) = cli(&["audit", "show", "--request", "req-ok", &trail, "--sql", &db]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.starts_with("request req-ok: 1 decision(s), 1 outcome(s)"),
        "{out}"
    );
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 3, "{out}");
    assert!(lines[1].starts_with("#0 [file] "), "{out}");
    for part in [
        "decision who=dr-grey",
        "roles=provider",
        "what=show::set_dx",
        "why=treatment",
        "rule=providers-treat",
        "decision=allow",
    ] {
        assert!(
            lines[1].contains(part) || out.contains(part),
            "{part}: {out}"
        );
    }
    assert!(lines[2].starts_with("  #0 [table] "), "{out}");
    assert!(lines[2].contains("outcome=ok decision_seq=0"), "{out}");
    assert!(!out.contains("p-1"), "no raw patient id: {out}");

    // JSON: the same join.
    let (code, out, err) = cli(&[
        "audit",
        "show",
        "--request",
        "req-ok",
        &trail,
        "--sql",
        &db,
        "--format",
        "json",
    ]);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["calls"][0]["decision"]["seq"], 0);
    assert_eq!(v["calls"][0]["outcomes"][0]["source"], "table");
    assert_eq!(v["calls"][0]["outcomes"][0]["outcome"], "ok");
}

#[test]
fn rolled_back_denied_and_failed_calls_show_what_was_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let (trail, db) = sqlite_scene(dir.path());

    let (code, out, err) = cli(&[
        "audit",
        "show",
        "--request",
        "req-rolled",
        &trail,
        "--sql",
        &db,
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("0 outcome(s)"), "{out}");
    assert!(out.contains("no outcome recorded (rolled back"), "{out}");

    let (code, out, err) = cli(&[
        "audit",
        "show",
        "--request",
        "req-denied",
        &trail,
        "--sql",
        &db,
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("decision=deny"), "{out}");
    assert!(
        !out.contains("no outcome recorded"),
        "a denial has none: {out}"
    );

    // The body failed: its `error` outcome is in the file trail, linked all the same.
    let (code, out, err) = cli(&[
        "audit",
        "show",
        "--request",
        "req-err",
        &trail,
        "--sql",
        &db,
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("[file]") && out.contains("outcome=error"),
        "{out}"
    );

    let (code, _, err) = cli(&[
        "audit",
        "show",
        "--request",
        "req-none",
        &trail,
        "--sql",
        &db,
    ]);
    assert_eq!(code, 2);
    assert!(err.contains("no event of request `req-none`"), "{err}");
}

#[test]
fn an_outcome_whose_decision_link_is_broken_exits_1() {
    let dir = tempfile::tempdir().unwrap();
    let (trail, db) = sqlite_scene(dir.path());
    // The outcome row moved to another request: its decision is not among that request's.
    // (The line is re-sealed and relinked so the table itself still verifies.)
    let path = db.strip_prefix("sqlite:").unwrap();
    let conn = Connection::open(path).unwrap();
    let line: String = conn
        .query_row("SELECT line FROM guardrail_audit WHERE seq = 0", [], |r| {
            r.get(0)
        })
        .unwrap();
    let mut event = guardrail_audit::AuditEvent::parse(&line).unwrap();
    event.record.request_id = Some("req-rolled".into());
    event.record.decision_seq = Some(7);
    let forged =
        guardrail_audit::AuditEvent::seal(0, guardrail_audit::GENESIS, event.record).unwrap();
    conn.execute(
        "UPDATE guardrail_audit SET line = ?1, hash = ?2, request_id = 'req-rolled' WHERE seq = 0",
        params![forged.line(), forged.hash.to_hex()],
    )
    .unwrap();
    conn.execute(
        "UPDATE guardrail_audit_head SET head = ?1",
        params![forged.hash.to_hex()],
    )
    .unwrap();
    let (code, _, err) = cli(&["audit", "verify", &db]);
    assert_eq!(code, 0, "the table alone still verifies: {err}");

    let (code, _, err) = cli(&[
        "audit",
        "show",
        "--request",
        "req-rolled",
        &trail,
        "--sql",
        &db,
    ]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("outcome seq 0 in table `guardrail_audit`")
            && err.contains("names decision seq 7, which is not a decision of this request"),
        "{err}"
    );

    // An edited indexed column is caught by the table reader itself.
    conn.execute(
        "UPDATE guardrail_audit SET request_id = 'req-ok' WHERE seq = 0",
        [],
    )
    .unwrap();
    let (code, _, err) = cli(&["audit", "show", "--request", "req-ok", &trail, "--sql", &db]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("column `request_id` does not match"), "{err}");
}

#[test]
fn a_table_given_as_the_trail_or_a_bad_sql_spec_is_a_usage_error() {
    let dir = tempfile::tempdir().unwrap();
    let (trail, db) = sqlite_scene(dir.path());
    let (code, _, err) = cli(&["audit", "show", "--request", "req-ok", &db]);
    assert_eq!(code, 2, "{err}");
    let (code, _, err) = cli(&[
        "audit",
        "show",
        "--request",
        "req-ok",
        &trail,
        "--sql",
        "x.db",
    ]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("is not a table"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_postgres_outcome_links_to_its_file_decision() {
    let Some(url) = pg_support::database_url("a_postgres_outcome_links_to_its_file_decision")
    else {
        return;
    };
    // Tables of their own: other tests share the server.
    let suffix = format!("{}_{}", std::process::id(), nanos());
    let (charts, audit) = (
        format!("gr_show_charts_{suffix}"),
        format!("gr_show_{suffix}"),
    );
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(2)
        .connect(&url)
        .await
        .unwrap();
    sqlx::raw_sql(&format!(
        "CREATE TABLE {charts} (patient TEXT PRIMARY KEY, dx TEXT NOT NULL);
         INSERT INTO {charts} VALUES ('p-1', 'none');"
    ))
    .execute(&pool)
    .await
    .unwrap();
    let table = AuditTable::new(&audit).unwrap();
    pg::ensure_schema(&pool, &table).await.unwrap();

    let dir = tempfile::tempdir().unwrap();
    let trail = dir.path().join("trail");
    let g = guardrail_with(&trail);
    let mut tx = pool.begin().await.unwrap();
    let mut bound = InTable::new(&table, &mut tx);
    let changed = set_dx_pg(&ctx(&g, "req-pg", "provider"), &mut bound, &charts, "p-1")
        .await
        .unwrap();
    assert_eq!(changed, 1);
    tx.commit().await.unwrap();
    drop(g);

    let trail = trail.to_str().unwrap().to_owned();
    let (cli_url, cli_table) = (url.clone(), audit.clone());
    let (code, out, err) = tokio::task::spawn_blocking(move || {
        cli(&[
            "audit",
            "show",
            "--request",
            "req-pg",
            &trail,
            "--sql",
            &cli_url,
            "--table",
            &cli_table,
        ])
    })
    .await
    .unwrap();
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains(&format!(
            "table `{audit}` of the PostgreSQL database verified (1 events)"
        )),
        "{out}"
    );
    assert!(
        out.contains("[table]") && out.contains("outcome=ok decision_seq=0"),
        "{out}"
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

fn nanos() -> u32 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos())
}
