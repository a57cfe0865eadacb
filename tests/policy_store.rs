//! The central policy store on a real PostgreSQL server: publishing, rollback, replicas that
//! follow it through `LISTEN`/`NOTIFY` and a periodic re-check, fail closed when the store is
//! gone or a version does not fit, report a heartbeat, and judge drift; and the target, a
//! published policy active on four replica processes within a second.
//!
//! Needs `GUARDRAIL_TEST_DATABASE_URL`: without it every test here fails under CI (`CI` set)
//! and otherwise skips with a notice on the terminal (`guardrail_tests::pg`). Every test uses
//! its own table prefix (and so its own channel) and drops its tables at the end.
#![expect(
    clippy::unwrap_used,
    clippy::panic,
    reason = "a test fails loudly on any unexpected error"
)]

use std::fmt::Display;
use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use guardrail_core::__private::{CountArg, begin};
use guardrail_core::audit::{AuditEvent, EventKind};
use guardrail_core::policy_store::{
    PolicyReplica, PolicyReplicaOptions, PolicyStore, PolicyStoreError, PolicyStoreOptions,
};
use guardrail_core::{
    ActionDescriptor, ActionKind, Alert, AlertKind, AuditKey, Context, GuardError, Guardrail,
    MemoryAlertSink, MemorySink, Policy, Principal,
};

/// Providers and billing may read.
const OPEN: &str = r#"
version = "open"

[[rule]]
id = "staff-read"
effect = "allow"
actions = ["clinic::*"]
kinds = ["read"]
roles = ["provider", "billing"]
"#;

/// Only providers may read.
const CLOSED: &str = r#"
version = "closed"

[[rule]]
id = "providers-read"
effect = "allow"
actions = ["clinic::*"]
kinds = ["read"]
roles = ["provider"]
"#;

/// Valid, but requires an audit sink named `warehouse`.
const NEEDS_WAREHOUSE: &str = r#"
version = "needs-warehouse"

[audit]
required = ["warehouse"]

[[rule]]
id = "staff-read"
effect = "allow"
actions = ["clinic::*"]
kinds = ["read"]
roles = ["provider", "billing"]
"#;

/// A syntax error on line 4, column 6.
const BAD_SYNTAX: &str = "version = \"bad\"\n\n[[rule]]\nid = \n";

static READ: ActionDescriptor = ActionDescriptor::new("clinic::read_chart", ActionKind::Read)
    .resource("patient_record")
    .roles(&["provider", "billing"])
    .located(module_path!(), file!(), line!())
    .function("read_chart");

fn run(ctx: &Context) -> Result<(), GuardError> {
    let subject: &dyn Display = &"p-7";
    let call = begin(&READ, ctx, Some(subject), CountArg::Absent, &[])?;
    call.finish::<(), GuardError>(Ok(()))
}

/// Whether billing may read under the guardrail's policy in force.
fn billing_reads(g: &Guardrail) -> bool {
    run(&g.context(Principal::new("bill-1").role("billing"))).is_ok()
}

fn sha(text: &str) -> String {
    Policy::from_toml_str(text).unwrap().sha256().to_owned()
}

static PREFIXES: AtomicU32 = AtomicU32::new(0);

/// A store with its own prefix, its tables dropped at the end.
struct Db {
    url: String,
    prefix: String,
    rt: tokio::runtime::Runtime,
    store: PolicyStore,
}

impl Db {
    fn new(test: &str) -> Option<Db> {
        let url = guardrail_tests::pg::database_url(test)?;
        let prefix = format!(
            "gr_ps_{}_{}",
            std::process::id(),
            PREFIXES.fetch_add(1, Ordering::Relaxed)
        );
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let store = rt
            .block_on(PolicyStore::connect(
                &url,
                PolicyStoreOptions::new().prefix(&prefix),
            ))
            .unwrap();
        rt.block_on(store.ensure_schema()).unwrap();
        Some(Db {
            url,
            prefix,
            rt,
            store,
        })
    }

    fn publish(&self, text: &str) -> u64 {
        self.rt
            .block_on(self.store.publish(text, "admin-1"))
            .unwrap()
            .version
    }

    fn sql(&self, statement: &str) {
        self.rt.block_on(async {
            let pool = sqlx::PgPool::connect(&self.url).await.unwrap();
            sqlx::raw_sql(statement).execute(&pool).await.unwrap();
            pool.close().await;
        });
    }

    fn options(&self, id: &str) -> PolicyReplicaOptions {
        PolicyReplicaOptions::new(id)
            .store(
                PolicyStoreOptions::new()
                    .prefix(&self.prefix)
                    .timeout(Duration::from_secs(2)),
            )
            .recheck(Duration::from_millis(200))
            .live_for(Duration::from_secs(3))
            .drift_after(Duration::from_secs(30))
    }

    fn heartbeat(&self, id: &str) -> guardrail_core::policy_store::ReplicaHeartbeat {
        self.rt
            .block_on(self.store.replicas(None))
            .unwrap()
            .into_iter()
            .find(|b| b.replica_id == id)
            .unwrap_or_else(|| panic!("no heartbeat of `{id}`"))
    }
}

impl Drop for Db {
    fn drop(&mut self) {
        let p = &self.prefix;
        self.sql(&format!(
            "DROP TABLE IF EXISTS {p}_replicas; DROP TABLE IF EXISTS {p}_versions"
        ));
    }
}

struct Replica {
    guardrail: Guardrail,
    trail: MemorySink,
    alerts: MemoryAlertSink,
}

/// A guardrail on `initial` with a memory trail named `main` (and `warehouse` if asked).
fn replica_guardrail(initial: &str, warehouse: bool) -> Replica {
    let trail = MemorySink::new();
    let alerts = MemoryAlertSink::new();
    let mut b = Guardrail::builder()
        .policy(Policy::from_toml_str(initial).unwrap())
        .audit(trail.clone())
        .audit_key(AuditKey::from_bytes(b"policy-store-test-key-0123456789").unwrap())
        .alerts(alerts.clone());
    if warehouse {
        b = b.audit(MemorySink::named("warehouse"));
    }
    Replica {
        guardrail: b.build().unwrap(),
        trail,
        alerts,
    }
}

impl Replica {
    fn alerts_of(&self, kind: AlertKind) -> Vec<Alert> {
        self.guardrail.flush_alerts();
        self.alerts
            .alerts()
            .into_iter()
            .filter(|a| a.kind == kind)
            .collect()
    }

    fn reloads(&self) -> Vec<AuditEvent> {
        self.trail
            .events()
            .into_iter()
            .filter(|e| e.record.kind == EventKind::PolicyReload)
            .collect()
    }
}

/// Polls `cond` every 5 ms until it holds or `limit` passes; returns whether it held.
fn eventually(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    loop {
        if cond() {
            return true;
        }
        if start.elapsed() > limit {
            return false;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn publish_validates_stores_and_lists_versions() {
    let Some(db) = Db::new("publish_validates_stores_and_lists_versions") else {
        return;
    };
    let refused = db
        .rt
        .block_on(db.store.publish(BAD_SYNTAX, "admin-1"))
        .unwrap_err();
    match &refused {
        PolicyStoreError::Invalid(e) => assert_eq!((e.line, e.column), (Some(4), Some(6))),
        other => panic!("expected a validation error, got {other:?}"),
    }
    assert!(db.rt.block_on(db.store.list()).unwrap().is_empty());
    assert!(db.rt.block_on(db.store.latest()).unwrap().is_none());

    assert_eq!(db.publish(OPEN), 1);
    assert_eq!(db.publish(CLOSED), 2);
    let list = db.rt.block_on(db.store.list()).unwrap();
    let summary: Vec<_> = list
        .iter()
        .map(|v| (v.version, v.policy_version.as_str(), v.sha256.clone()))
        .collect();
    assert_eq!(
        summary,
        [(1, "open", sha(OPEN)), (2, "closed", sha(CLOSED))]
    );
    assert_eq!(list[0].published_by, "admin-1");
    let latest = db.rt.block_on(db.store.latest()).unwrap().unwrap();
    assert_eq!((latest.version, latest.text.as_str()), (2, CLOSED));

    let back = db.rt.block_on(db.store.rollback(1, "admin-2")).unwrap();
    assert_eq!(
        (back.version, back.rollback_of, back.sha256.as_str()),
        (3, Some(1), sha(OPEN).as_str())
    );
    let shown = db.rt.block_on(db.store.get(3)).unwrap().unwrap();
    assert_eq!(
        (shown.text.as_str(), shown.published_by.as_str()),
        (OPEN, "admin-2")
    );
    assert!(matches!(
        db.rt.block_on(db.store.rollback(9, "admin-2")),
        Err(PolicyStoreError::NoSuchVersion { version: 9, .. })
    ));
}

#[test]
fn a_replica_applies_each_version_through_a_recorded_reload() {
    let Some(db) = Db::new("a_replica_applies_each_version_through_a_recorded_reload") else {
        return;
    };
    let r = replica_guardrail(CLOSED, false);
    // Long re-checks: only the notification can bring the versions in time.
    let replica = PolicyReplica::start(
        &r.guardrail,
        &db.url,
        db.options("r-1").recheck(Duration::from_secs(60)),
    )
    .unwrap();
    assert_eq!(replica.status().version, None, "nothing published yet");
    assert!(!billing_reads(&r.guardrail));

    let v1 = db.publish(OPEN);
    assert!(eventually(Duration::from_secs(2), || replica
        .status()
        .version
        == Some(v1)));
    assert!(billing_reads(&r.guardrail), "version 1 lets billing read");
    let reloads = r.reloads();
    assert_eq!(reloads.len(), 1);
    let rec = &reloads[0].record;
    assert_eq!(rec.decision.as_deref(), Some("reloaded"));
    assert_eq!(rec.policy_version.as_deref(), Some("open"));
    assert_eq!(rec.policy_hash.as_deref(), Some(sha(OPEN).as_str()));
    assert_eq!(
        rec.detail.get("store_version").map(String::as_str),
        Some("1")
    );
    assert_eq!(
        rec.detail.get("store").map(String::as_str),
        Some(db.prefix.as_str())
    );
    assert_eq!(rec.detail.get("old_sha256"), Some(&sha(CLOSED)));

    let beat = db.heartbeat("r-1");
    assert_eq!(
        (beat.version, beat.sha256.as_str(), beat.state.as_str()),
        (Some(1), sha(OPEN).as_str(), "current")
    );

    // Version 2 closes billing's read again; rolling back to version 1 reopens it.
    let v2 = db.publish(CLOSED);
    assert!(eventually(Duration::from_secs(2), || replica
        .status()
        .version
        == Some(v2)));
    assert!(!billing_reads(&r.guardrail));
    let v3 = db
        .rt
        .block_on(db.store.rollback(v1, "admin-2"))
        .unwrap()
        .version;
    assert!(eventually(Duration::from_secs(2), || replica
        .status()
        .version
        == Some(v3)));
    assert!(
        billing_reads(&r.guardrail),
        "the rollback restored version 1's text"
    );
    let applied: Vec<_> = r
        .reloads()
        .iter()
        .map(|e| e.record.detail.get("store_version").cloned().unwrap())
        .collect();
    assert_eq!(applied, ["1", "2", "3"]);
    assert!(r.alerts_of(AlertKind::PolicyDrift).is_empty());

    replica.stop();
    assert!(
        db.rt.block_on(db.store.replicas(None)).unwrap().is_empty(),
        "a replica stopping cleanly removes its heartbeat"
    );
}

#[test]
fn a_lost_notification_is_picked_up_by_the_recheck() {
    let Some(db) = Db::new("a_lost_notification_is_picked_up_by_the_recheck") else {
        return;
    };
    let r = replica_guardrail(CLOSED, false);
    let replica = PolicyReplica::start(&r.guardrail, &db.url, db.options("r-1")).unwrap();
    // Stored without its NOTIFY, as if the notification were lost.
    db.sql(&format!(
        "INSERT INTO {}_versions (version, sha256, policy_version, body, published_by, \
         published_at, rollback_of) VALUES (1, '{}', 'open', $${OPEN}$$, 'admin-1', 0, NULL)",
        db.prefix,
        sha(OPEN)
    ));
    assert!(
        eventually(Duration::from_secs(3), || replica.status().version
            == Some(1)),
        "the periodic re-check must find the version"
    );
    assert!(billing_reads(&r.guardrail));
}

/// A TCP proxy to the database that can be cut (every connection closed, new ones refused)
/// and restored.
struct Proxy {
    port: u16,
    up: Arc<AtomicBool>,
    open: Arc<Mutex<Vec<TcpStream>>>,
}

impl Proxy {
    fn start(upstream: String) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let up = Arc::new(AtomicBool::new(true));
        let open: Arc<Mutex<Vec<TcpStream>>> = Arc::default();
        let (up2, open2) = (up.clone(), open.clone());
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { continue };
                if !up2.load(Ordering::SeqCst) {
                    let _ = client.shutdown(Shutdown::Both);
                    continue;
                }
                let Ok(server) = TcpStream::connect(&upstream) else {
                    continue;
                };
                {
                    let mut open = open2.lock().unwrap();
                    open.push(client.try_clone().unwrap());
                    open.push(server.try_clone().unwrap());
                }
                let pipe = |mut from: TcpStream, mut to: TcpStream| {
                    std::thread::spawn(move || {
                        let mut buf = [0u8; 16384];
                        while let Ok(n) = from.read(&mut buf) {
                            if n == 0 || to.write_all(&buf[..n]).is_err() {
                                break;
                            }
                        }
                        let _ = to.shutdown(Shutdown::Both);
                        let _ = from.shutdown(Shutdown::Both);
                    });
                };
                pipe(client.try_clone().unwrap(), server.try_clone().unwrap());
                pipe(server, client);
            }
        });
        Proxy { port, up, open }
    }

    fn cut(&self) {
        self.up.store(false, Ordering::SeqCst);
        for s in self.open.lock().unwrap().drain(..) {
            let _ = s.shutdown(Shutdown::Both);
        }
    }

    fn restore(&self) {
        self.up.store(true, Ordering::SeqCst);
    }
}

/// `url` with its `host:port` replaced by the proxy's; and the original `host:port`.
fn through_proxy(url: &str, port: u16) -> (String, String) {
    let scheme_end = url.find("://").unwrap() + 3;
    let rest = &url[scheme_end..];
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    let (userinfo, hostport) = match authority.rfind('@') {
        Some(at) => (&authority[..=at], &authority[at + 1..]),
        None => ("", authority),
    };
    let upstream = if hostport.contains(':') {
        hostport.to_owned()
    } else {
        format!("{hostport}:5432")
    };
    let proxied = format!(
        "{}{userinfo}127.0.0.1:{port}{}",
        &url[..scheme_end],
        &rest[authority_end..]
    );
    (proxied, upstream)
}

#[test]
fn an_unreachable_store_keeps_the_last_good_policy_and_alerts_once() {
    let Some(db) = Db::new("an_unreachable_store_keeps_the_last_good_policy_and_alerts_once")
    else {
        return;
    };
    let (_, upstream) = through_proxy(&db.url, 0);
    let proxy = Proxy::start(upstream);
    let (url, _) = through_proxy(&db.url, proxy.port);
    let r = replica_guardrail(OPEN, false);
    let v1 = db.publish(CLOSED);
    let replica = PolicyReplica::start(&r.guardrail, &url, db.options("r-1")).unwrap();
    assert_eq!(replica.status().version, Some(v1));
    assert!(!billing_reads(&r.guardrail));

    proxy.cut();
    assert!(eventually(Duration::from_secs(5), || !r
        .alerts_of(AlertKind::PolicyStoreUnreachable)
        .is_empty()));
    let v2 = db.publish(OPEN);
    // Several re-check periods into the outage.
    std::thread::sleep(Duration::from_millis(1000));
    assert!(!replica.status().reachable);
    assert_eq!(replica.status().version, Some(v1));
    assert_eq!(r.guardrail.policy().sha256(), sha(CLOSED));
    assert!(
        !billing_reads(&r.guardrail),
        "the last good policy still denies"
    );
    assert!(
        run(&r.guardrail.context(Principal::new("dr-1").role("provider"))).is_ok(),
        "and still allows what it allowed"
    );
    let down = r.alerts_of(AlertKind::PolicyStoreUnreachable);
    assert_eq!(down.len(), 1, "one alert per outage: {down:?}");
    assert!(down[0].message.contains("keeps enforcing version 1"));
    assert!(r.alerts_of(AlertKind::PolicyStoreRecovered).is_empty());

    proxy.restore();
    assert!(eventually(Duration::from_secs(5), || replica
        .status()
        .version
        == Some(v2)));
    assert!(billing_reads(&r.guardrail));
    assert_eq!(r.alerts_of(AlertKind::PolicyStoreRecovered).len(), 1);
    assert_eq!(r.alerts_of(AlertKind::PolicyStoreUnreachable).len(), 1);
}

#[test]
fn a_version_that_does_not_fit_is_refused_alerted_and_reported() {
    let Some(db) = Db::new("a_version_that_does_not_fit_is_refused_alerted_and_reported") else {
        return;
    };
    let r = replica_guardrail(CLOSED, false);
    let replica = PolicyReplica::start(&r.guardrail, &db.url, db.options("r-1")).unwrap();
    let bad = db.publish(NEEDS_WAREHOUSE);
    assert!(eventually(Duration::from_secs(3), || replica
        .status()
        .rejected
        .is_some()));
    let status = replica.status();
    let (version, why) = status.rejected.unwrap();
    assert_eq!(version, bad);
    assert!(why.contains("`warehouse`"), "{why}");
    assert_eq!(status.version, None);
    assert_eq!(r.guardrail.policy().sha256(), sha(CLOSED));
    assert!(!billing_reads(&r.guardrail));
    let refused = r.reloads();
    assert_eq!(refused.len(), 1);
    assert_eq!(refused[0].record.decision.as_deref(), Some("refused"));
    assert_eq!(
        refused[0]
            .record
            .detail
            .get("store_version")
            .map(String::as_str),
        Some("1")
    );
    // Several re-checks later: refused once, alerted once.
    std::thread::sleep(Duration::from_millis(700));
    assert_eq!(r.alerts_of(AlertKind::PolicyReloadRefused).len(), 1);
    assert_eq!(r.reloads().len(), 1);
    let beat = db.heartbeat("r-1");
    assert_eq!(
        (beat.state.as_str(), beat.rejected_version, beat.version),
        ("rejected", Some(bad), None)
    );
    assert!(beat.detail.unwrap().contains("`warehouse`"));

    // A stored text that does not match its hash is refused too.
    db.sql(&format!(
        "INSERT INTO {}_versions (version, sha256, policy_version, body, published_by, \
         published_at, rollback_of) VALUES (2, '{}', 'open', $${OPEN}$$, 'admin-1', 0, NULL)",
        db.prefix,
        "0".repeat(64)
    ));
    assert!(eventually(Duration::from_secs(3), || replica
        .status()
        .rejected
        .is_some_and(|r| r.0 == 2)));
    assert!(!billing_reads(&r.guardrail));

    let good = db.publish(OPEN);
    assert!(eventually(Duration::from_secs(3), || replica
        .status()
        .version
        == Some(good)));
    assert_eq!(replica.status().rejected, None);
    assert!(eventually(Duration::from_secs(3), || db
        .heartbeat("r-1")
        .state
        == "current"));
}

#[test]
fn drift_between_live_replicas_is_alerted_once_by_one_judge() {
    let Some(db) = Db::new("drift_between_live_replicas_is_alerted_once_by_one_judge") else {
        return;
    };
    let drift_after = Duration::from_millis(800);
    let a = replica_guardrail(CLOSED, true);
    let b = replica_guardrail(CLOSED, false);
    let ra = PolicyReplica::start(
        &a.guardrail,
        &db.url,
        db.options("r-a").drift_after(drift_after),
    )
    .unwrap();
    let rb = PolicyReplica::start(
        &b.guardrail,
        &db.url,
        db.options("r-b").drift_after(drift_after),
    )
    .unwrap();
    // Both follow a good version: no drift.
    let v1 = db.publish(OPEN);
    assert!(eventually(Duration::from_secs(2), || ra.status().version
        == Some(v1)
        && rb.status().version == Some(v1)));
    std::thread::sleep(drift_after + Duration::from_millis(400));
    assert!(a.alerts_of(AlertKind::PolicyDrift).is_empty());

    // `r-b` lacks the warehouse sink: it stays on version 1 while `r-a` moves on.
    let published = Instant::now();
    let v2 = db.publish(NEEDS_WAREHOUSE);
    assert!(eventually(Duration::from_secs(5), || !a
        .alerts_of(AlertKind::PolicyDrift)
        .is_empty()));
    assert!(
        published.elapsed() >= drift_after,
        "drift is alerted only after it lasted `drift_after`"
    );
    assert_eq!(ra.status().version, Some(v2));
    assert_eq!(rb.status().rejected.map(|r| r.0), Some(v2));
    let drift = a.alerts_of(AlertKind::PolicyDrift);
    assert!(
        drift[0].message.contains("version 1: r-b") && drift[0].message.contains("version 2: r-a"),
        "{}",
        drift[0].message
    );
    std::thread::sleep(Duration::from_millis(600));
    assert_eq!(
        a.alerts_of(AlertKind::PolicyDrift).len(),
        1,
        "once per episode"
    );
    assert!(
        b.alerts_of(AlertKind::PolicyDrift).is_empty(),
        "only the smallest live id judges"
    );
}

/// One replica process, killed on drop.
struct Process {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: BufReader<ChildStdout>,
}

impl Process {
    /// Closes stdin (the process stops its replica and exits) and returns the rest of its
    /// output.
    fn finish(mut self) -> String {
        drop(self.stdin.take());
        let mut rest = String::new();
        self.stdout.read_to_string(&mut rest).unwrap();
        rest
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        drop(self.stdin.take());
        let deadline = Instant::now() + Duration::from_secs(3);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn a_published_policy_is_active_on_four_replica_processes_within_a_second() {
    let Some(db) =
        Db::new("a_published_policy_is_active_on_four_replica_processes_within_a_second")
    else {
        return;
    };
    let ids = ["p-1", "p-2", "p-3", "p-4"];
    let mut processes: Vec<Process> = ids
        .iter()
        .map(|id| {
            // Re-checks every 60 s: within the test, only notifications move the replicas.
            let mut child = Command::new(env!("CARGO_BIN_EXE_policy-replica"))
                .args([db.url.as_str(), db.prefix.as_str(), id, "60000"])
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .spawn()
                .unwrap();
            let stdin = child.stdin.take();
            let stdout = BufReader::new(child.stdout.take().unwrap());
            Process {
                child,
                stdin,
                stdout,
            }
        })
        .collect();
    for p in &mut processes {
        let mut line = String::new();
        p.stdout.read_line(&mut line).unwrap();
        assert_eq!(line.trim(), "ready -");
    }
    let on = |v: u64| {
        let beats = db.rt.block_on(db.store.replicas(None)).unwrap();
        beats.len() == ids.len() && beats.iter().all(|b| b.version == Some(v))
    };
    let publishes = 10;
    let mut times = Vec::new();
    for i in 0..publishes {
        let text = if i % 2 == 0 { OPEN } else { CLOSED };
        let text = text.replacen("version = \"", &format!("version = \"{i}-"), 1);
        let v = db.publish(&text);
        let published = Instant::now();
        assert!(
            eventually(Duration::from_secs(5), || on(v)),
            "version {v} did not reach every replica"
        );
        times.push(published.elapsed());
    }
    times.sort();
    let (p50, max) = (times[times.len() / 2], times[times.len() - 1]);
    let _ = writeln!(
        std::io::stderr(),
        "policy_store: 4 replica processes, {publishes} publishes: publish to every heartbeat \
         p50 {} ms, max {} ms",
        p50.as_millis(),
        max.as_millis()
    );
    assert!(
        max <= Duration::from_secs(1),
        "slowest publish took {max:?}"
    );
    for p in processes {
        let out = p.finish();
        let versions: Vec<&str> = out.lines().collect();
        assert_eq!(versions.last(), Some(&"version 10"), "{out}");
    }
}
