//! `guardrail audit verify sqlite:PATH | postgres://…`: verifying an audit table.
//!
//! The table is read in one snapshot through the audit crate's verifiers: every row's hash
//! and link, the indexed columns against the line, the head row against the last event, and
//! with `--checkpoint-key` every signed checkpoint row (and the lines of `--checkpoints
//! FILE`, the external copy) against the chain. The database is only read: a SQLite file is
//! opened read-only, and no table is created.
//!
//! A PostgreSQL trail may hold many chains (one per writer) under signed Merkle tree heads:
//! after the default chain and its checkpoints, every chain is verified and, with
//! `--checkpoint-key`, every tree head (signature, the chains it covers, consistency with
//! the previous head, its root over the events), each failure naming chain and seq or tree
//! size.

use std::path::{Path, PathBuf};

use guardrail_audit::CheckpointVerifier;
use guardrail_audit::merkle::TreeHeadError;
use guardrail_audit::sql::postgres::{TrailReport, TrailVerifyError};
use guardrail_audit::sql::{AuditTable, TableReport, TableVerifyError};

use crate::read::Failure;

/// A trail that lives in a database table.
#[derive(Debug)]
pub(crate) enum SqlTrail {
    /// `sqlite:PATH`.
    Sqlite(PathBuf),
    /// `postgres://…` or `postgresql://…`.
    Postgres(String),
}

impl SqlTrail {
    /// The SQL trail `arg` names, if it names one.
    pub(crate) fn parse(arg: &Path) -> Option<SqlTrail> {
        let s = arg.to_str()?;
        if let Some(path) = s.strip_prefix("sqlite:") {
            return Some(SqlTrail::Sqlite(PathBuf::from(path)));
        }
        if s.starts_with("postgres://") || s.starts_with("postgresql://") {
            return Some(SqlTrail::Postgres(s.to_owned()));
        }
        None
    }

    /// How the trail is named in messages: never the PostgreSQL URL, which may hold a
    /// password.
    pub(crate) fn describe(&self) -> String {
        match self {
            SqlTrail::Sqlite(p) => format!("sqlite:{}", p.display()),
            SqlTrail::Postgres(_) => "the PostgreSQL database".to_owned(),
        }
    }
}

/// What `--checkpoint-key` (and optionally `--checkpoints`) gave for a table.
pub(crate) struct Signed {
    pub(crate) verifier: CheckpointVerifier,
    pub(crate) file: Option<PathBuf>,
}

/// One verification's result, signed or not.
enum Verified {
    Unsigned(guardrail_audit::VerifyReport),
    Signed(TableReport),
}

/// Verifies the table `table` of `trail` and prints the one-line report.
pub(crate) fn verify(
    trail: &SqlTrail,
    table: &str,
    signed: Option<&Signed>,
) -> Result<(), Failure> {
    let table = AuditTable::new(table).map_err(|e| Failure::Usage(e.to_string()))?;
    let result = match trail {
        SqlTrail::Sqlite(path) => verify_sqlite(path, &table, signed),
        SqlTrail::Postgres(url) => verify_postgres(url, &table, signed),
    };
    let verified = result.map_err(|e| classify(e, trail))?;
    println!("{}", report_line(&verified, &table, trail));
    if let SqlTrail::Postgres(url) = trail {
        let report = verify_postgres_chains(url, &table, signed.map(|s| &s.verifier))
            .map_err(|e| classify(e, trail))?;
        println!("{}", chains_line(&report, signed.is_some()));
    }
    Ok(())
}

/// The second line of a PostgreSQL verification: every chain, every tree head.
fn chains_line(r: &TrailReport, signed: bool) -> String {
    let mut out = format!(
        "ok: {} chain(s) with {} events verified",
        r.chains, r.events
    );
    if !signed {
        out.push_str(" (no checkpoint key given: tree heads not checked)");
        return out;
    }
    match r.last_tree_size {
        Some(size) => out.push_str(&format!(
            "; {} signed tree head(s) match the events and are consistent, the last of size {size}",
            r.tree_heads
        )),
        None => out.push_str("; no signed tree head yet"),
    }
    if r.uncovered_events > 0 {
        out.push_str(&format!(
            "; {} event(s) are not covered by a signed tree head yet",
            r.uncovered_events
        ));
    }
    out
}

/// Every chain of a shared PostgreSQL trail and, with the key, every signed tree head.
fn verify_postgres_chains(
    url: &str,
    table: &AuditTable,
    verifier: Option<&CheckpointVerifier>,
) -> Result<TrailReport, SqlFailure> {
    use guardrail_audit::sql::postgres::verify_postgres_trail;
    on_postgres(
        url,
        SqlFailure::Open,
        async |pool| match verify_postgres_trail(pool, table, verifier).await {
            Ok(r) => Ok(r),
            Err(
                e @ TrailVerifyError::TreeHead {
                    source:
                        TreeHeadError::Signature(guardrail_audit::CheckpointError::WrongKey { .. }),
                    ..
                },
            ) => {
                let marker = verifier.map(key_marker).unwrap_or_default();
                let ours: i64 = sqlx::query_scalar(&format!(
                    "SELECT count(*) FROM {}_tree WHERE strpos(line, $1) > 0",
                    table.events()
                ))
                .bind(marker)
                .fetch_one(pool)
                .await
                .map_err(|e| SqlFailure::Open(format!("cannot read the tree heads: {e}")))?;
                Err(if ours == 0 {
                    SqlFailure::TreeKeyMismatch(Box::new(e))
                } else {
                    SqlFailure::Trail(Box::new(e))
                })
            }
            Err(e) => Err(SqlFailure::Trail(Box::new(e))),
        },
    )
}

fn report_line(v: &Verified, table: &AuditTable, trail: &SqlTrail) -> String {
    match v {
        Verified::Unsigned(r) => format!(
            "ok: {} events in table `{}` of {} verified (no checkpoint key given: a rewritten \
             chain or a cut tail cannot be detected)",
            r.events,
            table.events(),
            trail.describe()
        ),
        Verified::Signed(r) => {
            let mut out = format!(
                "ok: {} events in table `{}` of {} verified; {} checkpoint(s) match, the last \
                 at seq {}",
                r.events,
                table.events(),
                trail.describe(),
                r.checkpoints,
                r.last_checkpoint_seq
                    .map_or_else(|| "-".to_owned(), |s| s.to_string())
            );
            if r.unchecked_events > 0 {
                out.push_str(&format!(
                    "; {} event(s) after the last checkpoint are not covered by a signature",
                    r.unchecked_events
                ));
            }
            out
        }
    }
}

/// Why a verification failed, by exit status: the database could not be read (2), the key
/// given signed none of the table's checkpoints (2), or the table is not what was written
/// (1).
enum SqlFailure {
    Verify(TableVerifyError),
    /// The checkpoint rows name other keys only: the key given is not the one that signed.
    KeyMismatch(TableVerifyError),
    Open(String),
    /// A shared trail's chains or tree heads do not verify.
    Trail(Box<TrailVerifyError>),
    /// The tree head rows name other keys only.
    TreeKeyMismatch(Box<TrailVerifyError>),
}

fn classify(e: SqlFailure, trail: &SqlTrail) -> Failure {
    match e {
        SqlFailure::Open(m) => Failure::Usage(format!("{}: {m}", trail.describe())),
        SqlFailure::KeyMismatch(e) => Failure::Usage(format!(
            "{e}; no checkpoint row of the table is signed by the key given: is it the key \
             that signed this table's checkpoints?"
        )),
        SqlFailure::Verify(e @ TableVerifyError::Database { .. })
        | SqlFailure::Verify(e @ TableVerifyError::CheckpointFileRead { .. }) => {
            Failure::Usage(e.to_string())
        }
        SqlFailure::Verify(e) => Failure::Tampered(e.to_string()),
        SqlFailure::TreeKeyMismatch(e) => Failure::Usage(format!(
            "{e}; no tree head row of the table is signed by the key given: is it the key \
             that signed this trail's tree heads?"
        )),
        SqlFailure::Trail(e) => crate::prove::trail_failure(*e),
    }
}

/// The marker a checkpoint line signed by `v` carries.
fn key_marker(v: &CheckpointVerifier) -> String {
    format!("\"key\":\"{}\"", v.key_id())
}

fn is_wrong_key(e: &TableVerifyError) -> bool {
    matches!(
        e,
        TableVerifyError::Checkpoint {
            source: guardrail_audit::CheckpointError::WrongKey { .. },
            ..
        }
    )
}

fn verify_sqlite(
    path: &Path,
    table: &AuditTable,
    signed: Option<&Signed>,
) -> Result<Verified, SqlFailure> {
    use guardrail_audit::sql::sqlite::{verify_sqlite, verify_sqlite_signed};
    use rusqlite::{Connection, OpenFlags};
    // Read-only, and never created: a mistyped path is an error, not an empty trail.
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|e| SqlFailure::Open(format!("cannot open the database: {e}")))?;
    let Some(s) = signed else {
        return verify_sqlite(&conn, table)
            .map(Verified::Unsigned)
            .map_err(SqlFailure::Verify);
    };
    match verify_sqlite_signed(&conn, table, &s.verifier, s.file.as_deref()) {
        Ok(r) => Ok(Verified::Signed(r)),
        Err(e) if is_wrong_key(&e) => {
            let ours: i64 = conn
                .query_row(
                    &format!(
                        "SELECT count(*) FROM {} WHERE instr(line, ?1) > 0",
                        table.checkpoints()
                    ),
                    [key_marker(&s.verifier)],
                    |row| row.get(0),
                )
                .map_err(|e| SqlFailure::Open(format!("cannot read the checkpoints: {e}")))?;
            Err(if ours == 0 {
                SqlFailure::KeyMismatch(e)
            } else {
                SqlFailure::Verify(e)
            })
        }
        Err(e) => Err(SqlFailure::Verify(e)),
    }
}

fn verify_postgres(
    url: &str,
    table: &AuditTable,
    signed: Option<&Signed>,
) -> Result<Verified, SqlFailure> {
    use guardrail_audit::sql::postgres::{verify_postgres, verify_postgres_signed};
    on_postgres(url, SqlFailure::Open, async |pool| match signed {
        None => verify_postgres(pool, table)
            .await
            .map(Verified::Unsigned)
            .map_err(SqlFailure::Verify),
        Some(s) => {
            match verify_postgres_signed(pool, table, &s.verifier, s.file.as_deref()).await {
                Ok(r) => Ok(Verified::Signed(r)),
                Err(e) if is_wrong_key(&e) => {
                    let ours: i64 = sqlx::query_scalar(&format!(
                        "SELECT count(*) FROM {} WHERE strpos(line, $1) > 0",
                        table.checkpoints()
                    ))
                    .bind(key_marker(&s.verifier))
                    .fetch_one(pool)
                    .await
                    .map_err(|e| SqlFailure::Open(format!("cannot read the checkpoints: {e}")))?;
                    Err(if ours == 0 {
                        SqlFailure::KeyMismatch(e)
                    } else {
                        SqlFailure::Verify(e)
                    })
                }
                Err(e) => Err(SqlFailure::Verify(e)),
            }
        }
    })
}

/// Runs `work` on a one-connection pool to `url`, in a runtime of its own, then closes the
/// pool. `open` turns a failure to start the runtime or to connect into the caller's error
/// (sqlx's connect errors do not quote the URL, and so no password).
pub(crate) fn on_postgres<T, E>(
    url: &str,
    open: impl Fn(String) -> E,
    work: impl AsyncFnOnce(&sqlx::PgPool) -> Result<T, E>,
) -> Result<T, E> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| open(format!("cannot start a runtime: {e}")))?;
    rt.block_on(async {
        let pool = sqlx::postgres::PgPoolOptions::new()
            .max_connections(1)
            .acquire_timeout(std::time::Duration::from_secs(10))
            .connect(url)
            .await
            .map_err(|e| open(format!("cannot connect: {e}")))?;
        let result = work(&pool).await;
        pool.close().await;
        result
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_sql_schemes_name_sql_trails() {
        assert!(matches!(
            SqlTrail::parse(Path::new("sqlite:/tmp/a.db")),
            Some(SqlTrail::Sqlite(p)) if p == Path::new("/tmp/a.db")
        ));
        assert!(matches!(
            SqlTrail::parse(Path::new("postgres://u@h/db")),
            Some(SqlTrail::Postgres(u)) if u == "postgres://u@h/db"
        ));
        assert!(matches!(
            SqlTrail::parse(Path::new("postgresql://h/db")),
            Some(SqlTrail::Postgres(_))
        ));
        assert!(SqlTrail::parse(Path::new("trail/manifest.jsonl")).is_none());
        assert!(SqlTrail::parse(Path::new("./sqlite.db")).is_none());
    }

    #[test]
    fn a_postgres_trail_is_described_without_its_url() {
        let t = SqlTrail::Postgres("postgres://user:secret@host/db".into());
        assert!(!t.describe().contains("secret"));
    }
}
