//! Appends in the caller's PostgreSQL transaction with 1, 8 and 32 concurrent writers:
//! every writer on the one default chain (one head row, as before chains existed) against
//! one chain per writer (`ChainWriter`), next to two ceilings the server's own `pgbench`
//! measures in the same run, one single-row insert per transaction, the row about as large
//! as an audit row:
//!
//! * `autocommit`: the script is the `INSERT` alone, one round trip per transaction;
//! * `in a transaction`: `BEGIN; INSERT; COMMIT;`, three round trips, the shape of an
//!   append in a caller's transaction (which always has its caller's `BEGIN` and `COMMIT`
//!   around it). The target ratio is computed against this one: it is the most the server
//!   can commit of that shape; the autocommit figure is printed too, as the server's
//!   absolute ceiling for one row per commit.
//!
//! Each writer is a task holding its own connection (taken from the pool once) and looping
//! `BEGIN; append; COMMIT` for the measured time; the table is the default audit table in a scratch schema, dropped at the
//! end. Reported per configuration: committed events/s and the p50/p99 latency of one
//! transaction (begin to commit acknowledged); for pgbench the same percentiles, from its
//! per-transaction log (`-l`), so an append's p99 is read against what the server's own
//! clients see at the same concurrency.
//!
//! Needs `GUARDRAIL_BENCH_DATABASE_URL`, loopback only;
//! without it the bench says so and does nothing. `GUARDRAIL_BENCH_SECS` sets the seconds
//! per configuration (default 10), `GUARDRAIL_BENCH_WRITERS` the writer counts (default
//! `1,8,32`), `GUARDRAIL_BENCH_ROUNDS` how many times the whole table is measured (default
//! 1). The server's own ceilings drift from minute to minute with its disk (pgbench's
//! in-transaction ceiling at 32 clients moved from 6,500 to 8,100 tx/s between runs of the
//! same day), so with several rounds each round's ratios are computed from the ceilings
//! measured in that round, seconds before, and the median and range of the rounds' ratios
//! follow the table.
//!
//! Run: `GUARDRAIL_BENCH_DATABASE_URL=postgres://postgres@127.0.0.1:5432/test cargo bench -p guardrail-benches --bench pg_append`

use std::sync::Arc;
use std::time::{Duration, Instant};

use guardrail_audit::merkle::ChainId;
use guardrail_audit::sql::postgres::sqlx::Connection as _;
use guardrail_audit::sql::postgres::{ChainWriter, ensure_schema, sqlx, tree_checkpoint};
use guardrail_audit::sql::{AsyncTxAppend, AuditTable};
use guardrail_audit::{CheckpointSigner, EventKind, Record};

fn record(i: u64) -> Record {
    let mut r = Record::new(EventKind::Decision);
    r.request_id = Some(format!("0f1e2d3c-4b5a-6978-8796-{i:012}").into());
    r.action = Some("clinic::update_diagnosis".into());
    r.action_kind = Some("update".into());
    r.resource = Some("patient_record".into());
    r.principal = Some("dr-grey".into());
    r.roles = Arc::from(vec!["provider".into()]);
    r.endpoint = Some("provider".into());
    r.purpose = Some("treatment".into());
    r.subject =
        Some("hmac-sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08".into());
    r.decision = Some("allow".into());
    r.rule = Some("providers-treat".into());
    r.policy_version = Some("2026-11-01".into());
    r
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    OneChain,
    ChainPerWriter,
}

struct Measured {
    events: u64,
    secs: f64,
    p50_ms: f64,
    p99_ms: f64,
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1000.0
}

async fn run(
    url: &str,
    schema: &str,
    writers: usize,
    mode: Mode,
    secs: u64,
) -> Result<Measured, sqlx::Error> {
    let options: sqlx::postgres::PgConnectOptions = url.parse()?;
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(writers as u32)
        .min_connections(writers as u32)
        .connect_with(options.options([("search_path", schema)]))
        .await?;
    let table = AuditTable::default();
    let deadline = Instant::now() + Duration::from_secs(secs);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..writers {
        let pool = pool.clone();
        let writer = ChainWriter::new(
            table.clone(),
            ChainId::new(&format!("bench-{writers}-{w}"))
                .map_err(|e| sqlx::Error::Protocol(e.to_string()))?,
        );
        tasks.push(tokio::spawn(async move {
            // The writer's own connection for the whole run, as each pgbench client has
            // its own: taking one from the pool per transaction would add the pool's pings
            // (sqlx pings a connection when it is taken and when it is given back), two
            // round trips that are the pool's cost, not the append's.
            let mut conn = pool.acquire().await?;
            let mut lat = Vec::new();
            let mut i = 0u64;
            while Instant::now() < deadline {
                let t0 = Instant::now();
                let mut tx = conn.begin().await?;
                let appended = match mode {
                    Mode::OneChain => tx.append_in_tx(record(i)).await,
                    Mode::ChainPerWriter => writer.on(&mut tx).append_in_tx(record(i)).await,
                };
                appended.map_err(|e| sqlx::Error::Protocol(e.to_string()))?;
                tx.commit().await?;
                lat.push(t0.elapsed());
                i += 1;
            }
            Ok::<_, sqlx::Error>(lat)
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        let lat = t
            .await
            .map_err(|e| sqlx::Error::Protocol(e.to_string()))??;
        all.extend(lat);
    }
    let secs = started.elapsed().as_secs_f64();
    pool.close().await;
    all.sort_unstable();
    Ok(Measured {
        events: all.len() as u64,
        secs,
        p50_ms: percentile(&all, 0.50),
        p99_ms: percentile(&all, 0.99),
    })
}

/// What one `pgbench` run measured: committed transactions per second and the p50 / p99
/// latency of one transaction (from its per-transaction log, `-l`), in ms.
struct Ceiling {
    tps: f64,
    p50_ms: f64,
    p99_ms: f64,
}

/// `pgbench -n -c N -j 2 -T secs -l` of one single-row insert per transaction, autocommit or
/// in `BEGIN; … COMMIT;`; `None` when pgbench is missing or fails.
fn pgbench(url: &str, schema: &str, clients: usize, secs: u64, in_tx: bool) -> Option<Ceiling> {
    let dir = tempfile::tempdir().ok()?;
    let script = dir.path().join("insert.sql");
    let insert = format!("INSERT INTO {schema}.pgbench_rows (v) VALUES (repeat('x', 600));\n");
    let text = if in_tx {
        format!("BEGIN;\n{insert}COMMIT;\n")
    } else {
        insert
    };
    std::fs::write(&script, text).ok()?;
    let out = std::process::Command::new("pgbench")
        .current_dir(dir.path())
        .args([
            "-n",
            "-c",
            &clients.to_string(),
            "-j",
            "2",
            "-T",
            &secs.to_string(),
            "-l",
            "-f",
        ])
        .arg(&script)
        .arg(url)
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let tps = text
        .lines()
        .find_map(|l| l.strip_prefix("tps = "))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())?;
    // One line per transaction in `pgbench_log.PID[.THREAD]`: `client tx latency_us script
    // epoch_s epoch_us`.
    let mut latencies_us: Vec<u64> = Vec::new();
    for entry in std::fs::read_dir(dir.path()).ok()?.flatten() {
        if !entry
            .file_name()
            .to_string_lossy()
            .starts_with("pgbench_log")
        {
            continue;
        }
        let log = std::fs::read_to_string(entry.path()).ok()?;
        latencies_us.extend(
            log.lines()
                .filter_map(|l| l.split_whitespace().nth(2)?.parse::<u64>().ok()),
        );
    }
    latencies_us.sort_unstable();
    let at = |q: f64| {
        latencies_us
            .get(
                ((latencies_us.len() as f64 * q) as usize)
                    .min(latencies_us.len().saturating_sub(1)),
            )
            .map_or(f64::NAN, |us| *us as f64 / 1000.0)
    };
    Some(Ceiling {
        tps,
        p50_ms: at(0.50),
        p99_ms: at(0.99),
    })
}

fn main() {
    if std::env::args().any(|a| a == "--list" || a == "--test") {
        return; // `cargo bench --no-run` / `cargo test --benches` probes
    }
    // Only this variable: the tests' database URL alone must never start a load run.
    let url = std::env::var("GUARDRAIL_BENCH_DATABASE_URL");
    let Ok(url) = url else {
        eprintln!(
            "pg_append: set GUARDRAIL_BENCH_DATABASE_URL (e.g. postgres://postgres@127.0.0.1:5432/test) to run"
        );
        return;
    };
    let secs: u64 = std::env::var("GUARDRAIL_BENCH_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10);
    let counts: Vec<usize> = std::env::var("GUARDRAIL_BENCH_WRITERS")
        .unwrap_or_else(|_| "1,8,32".into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime");
    let schema = format!("gr_bench_{}", std::process::id());
    let admin = rt
        .block_on(sqlx::PgPool::connect(&url))
        .expect("the database");
    rt.block_on(sqlx::raw_sql(&format!(
        "CREATE SCHEMA {schema}; CREATE TABLE {schema}.pgbench_rows (id BIGSERIAL PRIMARY KEY, v TEXT NOT NULL);"
    ))
    .execute(&admin))
    .expect("a scratch schema");
    let rounds: usize = std::env::var("GUARDRAIL_BENCH_ROUNDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .filter(|&r| r > 0)
        .unwrap_or(1);
    // Per writer count, each round's chain-per-writer rate over each ceiling.
    let mut ratios: Vec<(usize, Vec<f64>, Vec<f64>)> = counts
        .iter()
        .map(|&n| (n, Vec::new(), Vec::new()))
        .collect();
    println!(
        "| round | writers | pgbench autocommit tx/s (p50 / p99 ms) | pgbench BEGIN;INSERT;COMMIT tx/s (p50 / p99 ms) | one chain: events/s (p50 / p99 ms) | chain per writer: events/s (p50 / p99 ms) | per writer / pgbench in a transaction | per writer / pgbench autocommit |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|");
    for round in 1..=rounds {
        for (&n, (_, in_tx, auto)) in counts.iter().zip(ratios.iter_mut()) {
            let autocommit = pgbench(&url, &schema, n, secs, false);
            let ceiling = pgbench(&url, &schema, n, secs, true);
            let mut cells = Vec::new();
            let mut per_writer_rate = f64::NAN;
            for mode in [Mode::OneChain, Mode::ChainPerWriter] {
                // A fresh table per configuration, so every run starts from the same size.
                rt.block_on(async {
                    sqlx::raw_sql(&format!(
                    "DROP TABLE IF EXISTS {schema}.guardrail_audit, {schema}.guardrail_audit_head,
                         {schema}.guardrail_audit_checkpoint, {schema}.guardrail_audit_chains,
                         {schema}.guardrail_audit_tree"
                ))
                    .execute(&admin)
                    .await
                    .expect("drop");
                    let options: sqlx::postgres::PgConnectOptions = url.parse().expect("url");
                    let pool = sqlx::postgres::PgPoolOptions::new()
                        .max_connections(1)
                        .connect_with(options.options([("search_path", schema.as_str())]))
                        .await
                        .expect("connect");
                    ensure_schema(&pool, &AuditTable::default())
                        .await
                        .expect("schema");
                    pool.close().await;
                });
                let m = rt
                    .block_on(run(&url, &schema, n, mode, secs))
                    .expect("the run");
                let rate = m.events as f64 / m.secs;
                if mode == Mode::ChainPerWriter {
                    per_writer_rate = rate;
                    // The tree over what was written, to show the checkpointer's cost per event.
                    let options: sqlx::postgres::PgConnectOptions = url.parse().expect("url");
                    let t0 = Instant::now();
                    let head = rt.block_on(async {
                        let pool = sqlx::postgres::PgPoolOptions::new()
                            .max_connections(1)
                            .connect_with(options.options([("search_path", schema.as_str())]))
                            .await
                            .expect("connect");
                        let signer = CheckpointSigner::ed25519_from_seed(&[7; 32]);
                        tree_checkpoint(&pool, &AuditTable::default(), &signer)
                            .await
                            .expect("tree head")
                    });
                    eprintln!(
                        "pg_append: {n} writers: tree head over {} events signed in {:.0} ms",
                        head.map_or(0, |h| h.size),
                        t0.elapsed().as_secs_f64() * 1000.0
                    );
                }
                cells.push(format!("{rate:.0} ({:.1} / {:.1})", m.p50_ms, m.p99_ms));
            }
            let text = |c: &Option<Ceiling>| {
                c.as_ref().map_or_else(
                    || "-".to_owned(),
                    |c| format!("{:.0} ({:.1} / {:.1})", c.tps, c.p50_ms, c.p99_ms),
                )
            };
            let ratio = |c: &Option<Ceiling>| {
                c.as_ref().map_or_else(
                    || "-".to_owned(),
                    |c| format!("{:.0}%", 100.0 * per_writer_rate / c.tps),
                )
            };
            println!(
                "| {round} | {n} | {} | {} | {} | {} | {} | {} |",
                text(&autocommit),
                text(&ceiling),
                cells[0],
                cells[1],
                ratio(&ceiling),
                ratio(&autocommit)
            );
            if let (Some(c), Some(a)) = (&ceiling, &autocommit) {
                in_tx.push(per_writer_rate / c.tps);
                auto.push(per_writer_rate / a.tps);
            }
        }
    }
    if rounds > 1 {
        println!(
            "\n| writers | per writer / pgbench in a transaction: median (min–max) | per writer / pgbench autocommit: median (min–max) | rounds |"
        );
        println!("|---:|---:|---:|---:|");
        let spread = |v: &mut Vec<f64>| {
            v.sort_by(f64::total_cmp);
            match (v.first(), v.get(v.len() / 2), v.last()) {
                (Some(lo), Some(mid), Some(hi)) => {
                    format!("{:.0}% ({:.0}–{:.0}%)", 100.0 * mid, 100.0 * lo, 100.0 * hi)
                }
                _ => "-".to_owned(),
            }
        };
        for (n, mut in_tx, mut auto) in ratios {
            let done = in_tx.len();
            println!(
                "| {n} | {} | {} | {done} |",
                spread(&mut in_tx),
                spread(&mut auto)
            );
        }
    }
    let _ = rt.block_on(sqlx::raw_sql(&format!("DROP SCHEMA {schema} CASCADE")).execute(&admin));
}
