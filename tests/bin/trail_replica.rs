//! One replica process of `tests/replica_faults.rs`: eight writers appending to their own
//! chains of a shared PostgreSQL trail, a checkpointer signing tree heads over every chain,
//! and a consumer racing the other replicas for the granted approvals of a shared
//! PostgreSQL approval store. The test kills it with SIGKILL at any moment and starts it
//! again.
//!
//! ```text
//! trail-replica URL SCHEMA REPLICA INCARNATION
//! ```
//!
//! The audit tables are the default ones in `SCHEMA` (its `search_path`), the approvals
//! `SCHEMA.approvals`. Writer `w` of replica `r` appends to chain `r<r>-w<w>`, each
//! transaction one or two events (request ids `<r>.<incarnation>.<w>.<n>`), with a pause
//! between the appends and the commit so that kills land inside transactions. Lines on
//! stdout, each written only after what it reports is durable:
//!
//! * `ready` once every connection is open and every task started;
//! * `ack CHAIN SEQ REQUEST_ID` for every event of a transaction whose commit returned;
//! * `consumed ID` for every approval whose consume returned success;
//! * `raced` for every consume refused because another replica used the grant first;
//! * `tree SIZE` for every tree head the checkpointer committed;
//! * `error WHAT: DETAIL` for anything that failed (the test expects none).
//!
//! Runs until its stdin closes, then lets every task finish its current step and exits 0.
//! Bad arguments or a failed start exit 2.

use std::io::{BufRead as _, Write as _};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use guardrail_core::approval::{ApprovalBinding, ApprovalError, ApprovalId, CallScope};
use guardrail_core::audit::merkle::ChainId;
use guardrail_core::audit::sql::postgres::sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use guardrail_core::audit::sql::postgres::sqlx::{self, PgPool};
use guardrail_core::audit::sql::postgres::{ChainWriter, tree_checkpoint};
use guardrail_core::audit::sql::{AsyncTxAppend as _, AuditTable};
use guardrail_core::audit::{AuditError, CheckpointSigner, EventKind, Record, Timestamp};
use guardrail_core::{ApprovalStore as _, PgApprovalStore, PgApprovalStoreOptions};

/// The tree-head signing key, the same in `tests/replica_faults.rs` (outside the database).
const TREE_KEY_SEED: [u8; 32] = [0x5a; 32];

/// Writers per replica.
const WRITERS: usize = 8;

/// The call every pooled approval was granted for (the same in the test).
fn binding() -> ApprovalBinding {
    ApprovalBinding {
        action: Arc::from("clinic::export_chart"),
        principal: Arc::from("dr-fault"),
        subject: None,
        count: None,
        scope: CallScope {
            reveal: Arc::from(""),
            policy_hash: Arc::from("replica-faults"),
            ..CallScope::default()
        },
    }
}

/// One whole line on stdout (the lock keeps lines of different tasks apart; a line is one
/// `write` to the pipe, so a kill never leaves half of one behind a newline).
fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(format!("{line}\n").as_bytes());
    let _ = out.flush();
}

fn fail(message: &str) -> ExitCode {
    let _ = writeln!(std::io::stderr(), "trail-replica: {message}");
    ExitCode::from(2)
}

fn db(e: sqlx::Error) -> AuditError {
    AuditError::Database(e.to_string())
}

/// One transaction: `events` appends, a pause, the commit. The seqs and request ids of
/// the events, once the commit returned.
async fn transaction(
    pool: &PgPool,
    writer: &ChainWriter,
    tag: &str,
    events: usize,
) -> Result<Vec<(u64, String)>, AuditError> {
    let mut tx = pool.begin().await.map_err(db)?;
    let mut written = Vec::with_capacity(events);
    for _ in 0..events {
        let id = format!("{tag}.{}", written.len());
        let mut record = Record::new(EventKind::Decision);
        record.request_id = Some(Arc::from(id.as_str()));
        record.action = Some(Arc::from("clinic::read_chart"));
        let receipt = writer.on(&mut tx).append_in_tx(record).await?;
        written.push((receipt.seq, id));
    }
    // The rest of the caller's work in the transaction: a kill here leaves an open
    // transaction holding the chain's head row.
    tokio::time::sleep(Duration::from_millis(2)).await;
    tx.commit().await.map_err(db)?;
    Ok(written)
}

async fn write(pool: PgPool, writer: ChainWriter, prefix: String, stop: Arc<AtomicBool>) {
    let mut n = 0u64;
    while !stop.load(Ordering::Relaxed) {
        n += 1;
        let tag = format!("{prefix}.{n}");
        let events = 1 + (n % 2) as usize;
        match transaction(&pool, &writer, &tag, events).await {
            Ok(written) => {
                for (seq, id) in written {
                    say(&format!("ack {} {seq} {id}", writer.chain()));
                }
            }
            Err(e) => {
                say(&format!("error append {}: {e}", writer.chain()));
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
}

async fn checkpoint(pool: PgPool, table: AuditTable, stop: Arc<AtomicBool>) {
    let signer = CheckpointSigner::ed25519_from_seed(&TREE_KEY_SEED);
    while !stop.load(Ordering::Relaxed) {
        match tree_checkpoint(&pool, &table, &signer).await {
            Ok(Some(head)) => say(&format!("tree {}", head.size)),
            Ok(None) => {}
            Err(e) => say(&format!("error checkpoint: {e}")),
        }
        tokio::time::sleep(Duration::from_millis(15)).await;
    }
}

async fn consume(pool: PgPool, store: PgApprovalStore, schema: String, stop: Arc<AtomicBool>) {
    let granted =
        format!("SELECT id FROM {schema}.approvals WHERE state = 'granted' ORDER BY id LIMIT 4");
    while !stop.load(Ordering::Relaxed) {
        let ids: Vec<String> = match sqlx::query_scalar(&granted).fetch_all(&pool).await {
            Ok(ids) => ids,
            Err(e) => {
                say(&format!("error list approvals: {e}"));
                Vec::new()
            }
        };
        for id in ids {
            let store = store.clone();
            let tried = tokio::task::spawn_blocking(move || {
                let result = store.consume(&ApprovalId::new(&id), &binding(), Timestamp::now());
                (id, result)
            })
            .await;
            match tried {
                Ok((id, Ok(_))) => say(&format!("consumed {id}")),
                // Another replica got it first: the race every replica is in.
                Ok((_, Err(ApprovalError::AlreadyUsed(_)))) => say("raced"),
                Ok((id, Err(e))) => say(&format!("error consume {id}: {e}")),
                Err(e) => say(&format!("error consume: {e}")),
            }
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [url, schema, replica, incarnation] = args.as_slice() else {
        return fail("usage: trail-replica URL SCHEMA REPLICA INCARNATION");
    };
    let schema_ok = !schema.is_empty()
        && schema
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if !schema_ok {
        return fail("SCHEMA must be lowercase letters, digits and `_`");
    }
    let chains: Result<Vec<ChainId>, _> = (0..WRITERS)
        .map(|w| ChainId::new(&format!("r{replica}-w{w}")))
        .collect();
    let chains = match chains {
        Ok(c) => c,
        Err(e) => return fail(&e.to_string()),
    };
    let store = match PgApprovalStore::connect(
        url,
        PgApprovalStoreOptions::new()
            .table(format!("{schema}.approvals"))
            .max_connections(1),
    ) {
        Ok(s) => s,
        Err(e) => return fail(&e.to_string()),
    };
    let options: PgConnectOptions = match url.parse() {
        Ok(o) => o,
        Err(e) => return fail(&format!("bad URL: {e}")),
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return fail(&e.to_string()),
    };
    let stop = Arc::new(AtomicBool::new(false));
    let started = runtime.block_on(async {
        // One connection per writer, one for the checkpointer, one for the consumer.
        let pool = PgPoolOptions::new()
            .max_connections(WRITERS as u32 + 2)
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(options.options([("search_path", schema.as_str())]))
            .await
            .map_err(|e| format!("cannot connect: {e}"))?;
        // Every connection open before `ready`: a kill after it lands on work, not on
        // connecting.
        let mut open = Vec::with_capacity(WRITERS + 2);
        for _ in 0..WRITERS + 2 {
            open.push(
                pool.acquire()
                    .await
                    .map_err(|e| format!("cannot connect: {e}"))?,
            );
        }
        drop(open);
        let table = AuditTable::default();
        let mut tasks = Vec::new();
        for (w, chain) in chains.into_iter().enumerate() {
            let writer = ChainWriter::new(table.clone(), chain);
            let prefix = format!("{replica}.{incarnation}.{w}");
            tasks.push(tokio::spawn(write(
                pool.clone(),
                writer,
                prefix,
                stop.clone(),
            )));
        }
        tasks.push(tokio::spawn(checkpoint(
            pool.clone(),
            table.clone(),
            stop.clone(),
        )));
        tasks.push(tokio::spawn(consume(
            pool.clone(),
            store,
            schema.clone(),
            stop.clone(),
        )));
        Ok::<_, String>((pool, tasks))
    });
    let (pool, tasks) = match started {
        Ok(s) => s,
        Err(e) => return fail(&e),
    };
    say("ready");
    // Run until the test closes stdin (or kills this process).
    for line in std::io::stdin().lock().lines() {
        if line.is_err() {
            break;
        }
    }
    stop.store(true, Ordering::Relaxed);
    runtime.block_on(async {
        for task in tasks {
            let _ = task.await;
        }
        pool.close().await;
    });
    ExitCode::SUCCESS
}
