//! `guardrail policy publish|list|show|rollback|replicas` against a real PostgreSQL server
//! (`GUARDRAIL_TEST_DATABASE_URL`; without it the test fails under CI and skips elsewhere).
#![expect(
    clippy::unwrap_used,
    reason = "a test fails loudly on any unexpected error"
)]

use std::process::{Command, Output};

use guardrail_audit::sql::postgres::sqlx;

#[path = "../../tests/support/pg.rs"]
#[allow(unreachable_pub, dead_code)]
mod pg;

const V1: &str = "version = \"cli-v1\"\n\n[[rule]]\nid = \"providers-read\"\neffect = \"allow\"\nactions = [\"clinic::*\"]\nroles = [\"provider\"]\n";
const V2: &str = "version = \"cli-v2\"\n\n[[rule]]\nid = \"staff-read\"\neffect = \"allow\"\nactions = [\"clinic::*\"]\nroles = [\"provider\", \"billing\"]\n";
/// A syntax error on line 4, column 6.
const BAD: &str = "version = \"bad\"\n\n[[rule]]\nid = \n";

fn guardrail(args: &[&str]) -> (i32, String, String) {
    let o: Output = Command::new(env!("CARGO_BIN_EXE_guardrail"))
        .args(args)
        .env_remove("USER")
        .output()
        .unwrap();
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

fn sql(url: &str, statement: &str) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let pool = sqlx::PgPool::connect(url).await.unwrap();
        sqlx::raw_sql(statement).execute(&pool).await.unwrap();
        pool.close().await;
    });
}

/// Drops the test's tables, whatever happened.
struct Tables<'a> {
    url: &'a str,
    prefix: String,
}

impl Drop for Tables<'_> {
    fn drop(&mut self) {
        let p = &self.prefix;
        sql(
            self.url,
            &format!("DROP TABLE IF EXISTS {p}_replicas; DROP TABLE IF EXISTS {p}_versions"),
        );
    }
}

#[test]
fn publish_list_show_rollback_and_refusals() {
    let Some(url) = pg::database_url("publish_list_show_rollback_and_refusals") else {
        return;
    };
    let tables = Tables {
        url: &url,
        prefix: format!("gr_cli_ps_{}", std::process::id()),
    };
    let dir = tempfile::tempdir().unwrap();
    let (v1, v2, bad) = (
        dir.path().join("v1.toml"),
        dir.path().join("v2.toml"),
        dir.path().join("bad.toml"),
    );
    std::fs::write(&v1, V1).unwrap();
    std::fs::write(&v2, V2).unwrap();
    std::fs::write(&bad, BAD).unwrap();
    let p = tables.prefix.as_str();
    let db = ["--db", url.as_str(), "--prefix", p];
    let with = |head: &[&str], tail: &[&str]| -> Vec<String> {
        head.iter()
            .chain(db.iter())
            .chain(tail.iter())
            .map(|s| s.to_string())
            .collect()
    };
    let run = |args: Vec<String>| {
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        guardrail(&refs)
    };

    // Without `--as` and without USER: refused before anything is stored.
    let (code, _, err) = run(with(&["policy", "publish", v1.to_str().unwrap()], &[]));
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--as PERSON"), "{err}");

    let (code, out, err) = run(with(
        &["policy", "publish", v1.to_str().unwrap()],
        &["--as", "admin-1"],
    ));
    assert_eq!(code, 0, "{err}");
    assert!(
        out.starts_with("published version 1 (policy `cli-v1`"),
        "{out}"
    );

    // A bad policy: line and column, exit 2, nothing stored.
    let (code, out, err) = run(with(
        &["policy", "publish", bad.to_str().unwrap()],
        &["--as", "admin-1"],
    ));
    assert_eq!(code, 2, "{out}{err}");
    assert!(err.contains("nothing stored"), "{err}");
    assert!(err.contains("bad.toml:4:6:"), "{err}");

    let (code, out, err) = run(with(
        &["policy", "publish", v2.to_str().unwrap()],
        &["--as", "admin-2"],
    ));
    assert_eq!(code, 0, "{err}");
    assert!(
        out.starts_with("published version 2 (policy `cli-v2`"),
        "{out}"
    );

    let (code, out, _) = run(with(&["policy", "list"], &[]));
    assert_eq!(code, 0);
    let rows: Vec<&str> = out.lines().skip(1).collect();
    assert_eq!(rows.len(), 2, "{out}");
    assert!(
        rows[0].starts_with("1  ") && rows[0].contains("admin-1") && rows[0].contains("cli-v1")
    );
    assert!(rows[1].starts_with("2  ") && rows[1].contains("admin-2"));

    // `show` writes the newest text byte for byte; `show 1` the first.
    let (code, out, err) = run(with(&["policy", "show"], &[]));
    assert_eq!((code, out.as_str()), (0, V2), "{err}");
    assert!(err.starts_with("version 2 (policy `cli-v2`"), "{err}");
    let (code, out, _) = run(with(&["policy", "show", "1"], &[]));
    assert_eq!((code, out.as_str()), (0, V1));
    let (code, _, err) = run(with(&["policy", "show", "7"], &[]));
    assert_eq!(code, 2);
    assert!(err.contains("has no version 7"), "{err}");

    let (code, out, err) = run(with(&["policy", "rollback", "1"], &["--as", "admin-3"]));
    assert_eq!(code, 0, "{err}");
    assert!(
        out.starts_with("published version 3 as a rollback to version 1"),
        "{out}"
    );
    let (_, out, _) = run(with(&["policy", "show"], &[]));
    assert_eq!(out, V1);
    let (_, out, _) = run(with(&["policy", "list"], &[]));
    assert!(
        out.lines().nth(3).unwrap().ends_with("rollback to 1"),
        "{out}"
    );

    // A text edited in the table no longer matches its hash: tampering.
    sql(
        &url,
        &format!("UPDATE {p}_versions SET body = body || '# edited' WHERE version = 3"),
    );
    let (code, _, err) = run(with(&["policy", "show", "3"], &[]));
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("tampering") && err.contains("version 3"),
        "{err}"
    );

    let (code, out, _) = run(with(&["policy", "replicas"], &[]));
    assert_eq!(code, 0);
    assert!(out.contains("no replica has reported"), "{out}");
}
