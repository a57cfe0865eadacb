//! Faults on a shared PostgreSQL trail and approval store: four replica processes
//! (`tests/bin/trail_replica.rs`), each with eight writers on chains of their own, a
//! checkpointer signing tree heads and a consumer racing the others for a pool of granted
//! approvals, under load on the real server, while the test kills a random working replica
//! (one that has acknowledged an event since it started) with SIGKILL every few tens of
//! milliseconds and starts it again, a hundred times. Then:
//!
//! * every event a replica acknowledged (its commit returned) is in the table, as written;
//! * every chain verifies and every signed tree head verifies and is consistent with the
//!   one before it (`verify_postgres_trail`, what `guardrail audit verify postgres://…`
//!   runs), and every tree head a replica reported committed is stored;
//! * no approval was consumed by two processes, and the store holds every reported one as
//!   consumed.
//!
//! Needs `GUARDRAIL_TEST_DATABASE_URL`: without it the test fails under CI (`CI` set) and
//! otherwise skips with a notice on the terminal (`guardrail_tests::pg`). It runs in a
//! schema of its own, dropped at the end.
#![expect(
    clippy::unwrap_used,
    clippy::panic,
    reason = "a test fails loudly on any unexpected error"
)]

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::{BufRead as _, BufReader};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use guardrail_audit::sql::AuditTable;
use guardrail_audit::sql::postgres::{ensure_schema, tree_checkpoint, verify_postgres_trail};
use guardrail_audit::{CheckpointSigner, Timestamp};
use guardrail_core::approval::CallScope;
use guardrail_core::{PgApprovalStore, PgApprovalStoreOptions};

/// The tree-head signing key, the same in `tests/bin/trail_replica.rs`.
const TREE_KEY_SEED: [u8; 32] = [0x5a; 32];
const REPLICAS: usize = 4;
const WRITERS: usize = 8;
const KILLS: usize = 100;
/// Granted approvals in the pool the replicas race for.
const APPROVALS: i64 = 3000;
/// The whole run (start, kills, stop) must end within this, or the test fails.
const BUDGET: Duration = Duration::from_secs(100);

/// xorshift64*: kill times and victims. The seed is printed so a failing schedule can be
/// told apart from another (the processes' timing is not reproducible anyway).
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % n
    }
}

#[derive(Debug)]
struct Ack {
    chain: String,
    seq: i64,
    request_id: String,
}

/// What every replica process said, incarnation by incarnation.
#[derive(Default)]
struct Log {
    acks: Vec<Ack>,
    /// Approval id → the `replica.incarnation` that reported consuming it, each time.
    consumed: BTreeMap<String, Vec<String>>,
    /// Consumes refused because another replica had used the grant first.
    raced: u64,
    trees: BTreeSet<i64>,
    errors: Vec<String>,
    /// Incarnations (`replica.incarnation`) that said `ready`.
    ready: BTreeSet<String>,
    /// Incarnations that acknowledged an event.
    working: BTreeSet<String>,
}

impl Log {
    fn take(&mut self, who: &str, line: &str) {
        let mut words = line.split(' ');
        match words.next() {
            Some("ack") => {
                let (Some(chain), Some(seq), Some(id)) = (words.next(), words.next(), words.next())
                else {
                    self.errors.push(format!("{who}: malformed `{line}`"));
                    return;
                };
                if !self.working.contains(who) {
                    self.working.insert(who.to_owned());
                }
                self.acks.push(Ack {
                    chain: chain.to_owned(),
                    seq: seq.parse().unwrap(),
                    request_id: id.to_owned(),
                });
            }
            Some("consumed") => self
                .consumed
                .entry(words.next().unwrap_or_default().to_owned())
                .or_default()
                .push(who.to_owned()),
            Some("raced") => self.raced += 1,
            Some("tree") => {
                self.trees
                    .insert(words.next().unwrap_or_default().parse().unwrap());
            }
            Some("ready") => {
                self.ready.insert(who.to_owned());
            }
            _ => self.errors.push(format!("{who}: {line}")),
        }
    }
}

/// One running incarnation of a replica.
struct Replica {
    child: Child,
    stdin: Option<ChildStdin>,
    reader: Option<JoinHandle<()>>,
}

struct Run {
    url: String,
    schema: String,
    log: Arc<Mutex<Log>>,
    incarnations: [u32; REPLICAS],
    replicas: Vec<Option<Replica>>,
}

impl Run {
    fn start(&mut self, r: usize) {
        let incarnation = self.incarnations[r];
        self.incarnations[r] += 1;
        let mut child = Command::new(env!("CARGO_BIN_EXE_trail-replica"))
            .args([
                self.url.as_str(),
                self.schema.as_str(),
                &r.to_string(),
                &incarnation.to_string(),
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let log = self.log.clone();
        let who = format!("{r}.{incarnation}");
        let reader = std::thread::spawn(move || {
            let mut out = BufReader::new(stdout);
            let mut line = String::new();
            loop {
                line.clear();
                match out.read_line(&mut line) {
                    // A line cut by the kill (no newline) reports nothing.
                    Ok(0) | Err(_) => break,
                    Ok(_) if !line.ends_with('\n') => break,
                    Ok(_) => log.lock().unwrap().take(&who, line.trim_end()),
                }
            }
        });
        self.replicas[r] = Some(Replica {
            stdin: child.stdin.take(),
            child,
            reader: Some(reader),
        });
    }

    fn kill(&mut self, r: usize) {
        let mut replica = self.replicas[r].take().unwrap();
        // SIGKILL on Unix: no destructor, no flush, no rollback but the server's.
        replica.child.kill().unwrap();
        replica.child.wait().unwrap();
        replica.reader.take().unwrap().join().unwrap();
    }

    /// Closes every replica's stdin and waits for it to finish its current step and exit.
    fn stop(&mut self, deadline: Instant) {
        for replica in self.replicas.iter_mut().flatten() {
            replica.stdin = None;
        }
        for r in 0..REPLICAS {
            let Some(mut replica) = self.replicas[r].take() else {
                continue;
            };
            let status = loop {
                if let Some(status) = replica.child.try_wait().unwrap() {
                    break status;
                }
                if Instant::now() > deadline {
                    let _ = replica.child.kill();
                    panic!("replica {r} did not stop within the test's time budget");
                }
                std::thread::sleep(Duration::from_millis(10));
            };
            assert!(status.success(), "replica {r} exited with {status}");
            replica.reader.take().unwrap().join().unwrap();
        }
    }
}

impl Drop for Run {
    fn drop(&mut self) {
        // Passed or failed: no replica outlives the test, and its schema goes.
        for replica in self.replicas.iter_mut().flatten() {
            let _ = replica.child.kill();
            let _ = replica.child.wait();
        }
        let (url, schema) = (self.url.clone(), self.schema.clone());
        // On a thread of its own: a runtime cannot start inside another.
        let cleanup = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(drop_schema(&url, &schema));
        });
        let _ = cleanup.join();
    }
}

/// The call every pooled approval is granted for (the same in the replica).
fn scope_json() -> String {
    CallScope {
        reveal: Arc::from(""),
        policy_hash: Arc::from("replica-faults"),
        ..CallScope::default()
    }
    .to_json()
}

async fn setup(url: &str, schema: &str) -> sqlx::PgPool {
    let admin = sqlx::PgPool::connect(url).await.unwrap();
    sqlx::raw_sql(&format!("CREATE SCHEMA {schema}"))
        .execute(&admin)
        .await
        .unwrap();
    admin.close().await;
    let options: sqlx::postgres::PgConnectOptions = url.parse().unwrap();
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(2)
        .connect_with(options.options([("search_path", schema)]))
        .await
        .unwrap();
    ensure_schema(&pool, &AuditTable::default()).await.unwrap();
    let store = PgApprovalStore::connect(
        url,
        PgApprovalStoreOptions::new().table(format!("{schema}.approvals")),
    )
    .unwrap();
    tokio::task::spawn_blocking(move || store.ensure_schema())
        .await
        .unwrap()
        .unwrap();
    let now = i64::try_from(Timestamp::now().0).unwrap();
    let hour = 3_600_000_000_000i64;
    sqlx::query(&format!(
        "INSERT INTO {schema}.approvals (id, action, principal, subject, record_count, \
         requested_at, expires_at, state, approver, decided_at, consumed_at, scope) \
         SELECT 'apr-' || lpad(g::text, 5, '0'), 'clinic::export_chart', 'dr-fault', NULL, \
         NULL, $1, $2, 'granted', 'officer-1', $1, NULL, $3 FROM generate_series(1, $4) g"
    ))
    .bind(now)
    .bind(now + hour)
    .bind(scope_json())
    .bind(APPROVALS)
    .execute(&pool)
    .await
    .unwrap();
    pool
}

async fn drop_schema(url: &str, schema: &str) {
    let admin = sqlx::PgPool::connect(url).await.unwrap();
    let _ = sqlx::raw_sql(&format!("DROP SCHEMA {schema} CASCADE"))
        .execute(&admin)
        .await;
    admin.close().await;
}

#[test]
fn four_replicas_keep_trail_and_approvals_whole_through_a_hundred_sigkills() {
    let Some(url) = guardrail_tests::pg::database_url("replica_faults") else {
        return;
    };
    let began = Instant::now();
    let deadline = began + BUDGET;
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    let schema = format!("gr_faults_{}_{}", std::process::id(), nanos % 1_000_000_000);
    let seed = nanos | 1;
    eprintln!("replica_faults: schema {schema}, kill schedule seed {seed:#x}");
    let mut rng = Rng(seed);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut run = Run {
        url: url.clone(),
        schema: schema.clone(),
        log: Arc::new(Mutex::new(Log::default())),
        incarnations: [0; REPLICAS],
        replicas: (0..REPLICAS).map(|_| None).collect(),
    };
    let pool = rt.block_on(setup(&url, &schema));
    for r in 0..REPLICAS {
        run.start(r);
    }
    while run.log.lock().unwrap().ready.len() < REPLICAS {
        assert!(Instant::now() < deadline, "the replicas did not start");
        std::thread::sleep(Duration::from_millis(5));
    }
    for _ in 0..KILLS {
        std::thread::sleep(Duration::from_millis(20 + rng.below(40)));
        // A working replica (one that acknowledged an event since it started), so each
        // kill lands under load.
        let victim = loop {
            let running: Vec<usize> = {
                let log = run.log.lock().unwrap();
                (0..REPLICAS)
                    .filter(|r| {
                        log.working
                            .contains(&format!("{r}.{}", run.incarnations[*r] - 1))
                    })
                    .collect()
            };
            if !running.is_empty() {
                break running[rng.below(running.len() as u64) as usize];
            }
            assert!(Instant::now() < deadline, "no replica restarted");
            std::thread::sleep(Duration::from_millis(2));
        };
        run.kill(victim);
        run.start(victim);
        assert!(
            Instant::now() < deadline,
            "the kills did not end within {BUDGET:?}"
        );
    }
    // Let the last incarnations get going, then stop everything.
    std::thread::sleep(Duration::from_millis(300));
    run.stop(deadline);
    let killed_after = began.elapsed();

    let log = std::mem::take(&mut *run.log.lock().unwrap());
    let signer = CheckpointSigner::ed25519_from_seed(&TREE_KEY_SEED);
    let table = AuditTable::default();
    let (report, rows, trees, approvals) = rt.block_on(async {
        // A last tree head covering everything, then the verifier the CLI runs.
        tree_checkpoint(&pool, &table, &signer).await.unwrap();
        let report = verify_postgres_trail(&pool, &table, Some(&signer.verifier())).await;
        let rows: Vec<(String, i64, Option<String>)> =
            sqlx::query_as("SELECT chain, seq, request_id FROM guardrail_audit")
                .fetch_all(&pool)
                .await
                .unwrap();
        let trees: Vec<i64> = sqlx::query_scalar("SELECT size FROM guardrail_audit_tree")
            .fetch_all(&pool)
            .await
            .unwrap();
        let approvals: Vec<(String, String)> =
            sqlx::query_as(&format!("SELECT id, state FROM {schema}.approvals"))
                .fetch_all(&pool)
                .await
                .unwrap();
        (report, rows, trees, approvals)
    });

    let incarnations: u32 = run.incarnations.iter().sum();
    let consumed_in_store = approvals.iter().filter(|(_, s)| s == "consumed").count();
    eprintln!(
        "replica_faults: {KILLS} kills, {incarnations} incarnations ({} ready) in {killed_after:?}; \
         {} acknowledged events, {} rows; {} tree heads reported, {} stored; {} approvals \
         consumed (store: {consumed_in_store}), {} lost races",
        log.ready.len(),
        log.acks.len(),
        rows.len(),
        log.trees.len(),
        trees.len(),
        log.consumed.len(),
        log.raced,
    );
    assert!(
        log.errors.is_empty(),
        "replicas reported errors: {:?}",
        &log.errors[..log.errors.len().min(10)]
    );

    // 0 acknowledged events lost: each is in the table at its chain and seq, as written.
    let stored: HashMap<(String, i64), Option<String>> = rows
        .into_iter()
        .map(|(chain, seq, id)| ((chain, seq), id))
        .collect();
    let lost: Vec<&Ack> = log
        .acks
        .iter()
        .filter(|a| {
            stored.get(&(a.chain.clone(), a.seq)).map(Option::as_deref)
                != Some(Some(a.request_id.as_str()))
        })
        .collect();
    assert!(
        lost.is_empty(),
        "{} of {} acknowledged events are not in the table as acknowledged, e.g. {:?}",
        lost.len(),
        log.acks.len(),
        &lost[..lost.len().min(5)]
    );

    // Every chain and every tree head verifies, successive heads are consistent, and the
    // last covers every event.
    let report = report.unwrap_or_else(|e| panic!("the shared trail does not verify: {e}"));
    assert_eq!(report.uncovered_events, 0, "{report:?}");
    assert_eq!(report.events as usize, stored.len(), "{report:?}");
    assert_eq!(report.tree_heads, trees.len(), "{report:?}");
    let reported: BTreeSet<i64> = log.trees.iter().copied().collect();
    let in_table: BTreeSet<i64> = trees.iter().copied().collect();
    let missing: Vec<&i64> = reported.difference(&in_table).collect();
    assert!(
        missing.is_empty(),
        "tree heads reported committed are not stored: sizes {missing:?}"
    );

    // No approval consumed twice, and the store holds every reported one as consumed.
    let twice: Vec<(&String, &Vec<String>)> = log
        .consumed
        .iter()
        .filter(|(_, who)| who.len() > 1)
        .collect();
    assert!(
        twice.is_empty(),
        "{} approvals were consumed more than once, e.g. {:?}",
        twice.len(),
        &twice[..twice.len().min(5)]
    );
    let states: HashMap<&str, &str> = approvals
        .iter()
        .map(|(id, s)| (id.as_str(), s.as_str()))
        .collect();
    for id in log.consumed.keys() {
        assert_eq!(
            states.get(id.as_str()).copied(),
            Some("consumed"),
            "approval `{id}` was reported consumed"
        );
    }

    // The run was a real one: every chain written before and after its replica's restarts,
    // tree heads signed along the way, replicas racing for approvals.
    let mut incarnations_of: HashMap<&str, BTreeSet<&str>> = HashMap::new();
    for a in &log.acks {
        let incarnation = a.request_id.split('.').nth(1).unwrap_or_default();
        incarnations_of
            .entry(a.chain.as_str())
            .or_default()
            .insert(incarnation);
    }
    assert_eq!(
        incarnations_of.len(),
        REPLICAS * WRITERS,
        "chains written: {:?}",
        incarnations_of.keys()
    );
    let continued = incarnations_of.values().filter(|i| i.len() > 1).count();
    assert!(
        continued >= REPLICAS * WRITERS * 3 / 4,
        "only {continued} chains were written by more than one incarnation"
    );
    assert_eq!(report.chains, REPLICAS * WRITERS + 1, "{report:?}");
    // At least one head of the replicas' besides the final one: one consistency proof.
    assert!(report.tree_heads >= 2, "{report:?}");
    assert!(log.consumed.len() >= 10, "{} consumed", log.consumed.len());
    assert!(log.raced > 0, "the replicas never raced for an approval");
    rt.block_on(pool.close());
}
