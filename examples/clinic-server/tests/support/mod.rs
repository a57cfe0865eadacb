//! The loopback harness of the clinic server's tests: a server on `127.0.0.1:0` over SQLite
//! (a temporary directory) or PostgreSQL (a schema of its own, dropped afterwards), a
//! reqwest client with the demo tokens, and the readers and checks over both trails.
#![allow(
    dead_code,
    unreachable_pub,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test helpers fail the calling test loudly; each test file uses a subset"
)]

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::Router;
use clinic_server::db::Db;
use clinic_server::{Clinic, RunningServer, ServerConfig};
use guardrail_core::AuditSink;
use guardrail_core::audit::sql::AuditTable;
use guardrail_core::audit::{AuditEvent, EventKind, FileTrail, Outcome};
use reqwest::{Method, StatusCode};
use serde_json::Value;

/// Which database a test runs against.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// SQLite in the server's data directory.
    Sqlite,
    /// PostgreSQL at `GUARDRAIL_TEST_DATABASE_URL`, in a schema of the test's own.
    Postgres,
}

/// The backends a test runs on here: SQLite always; PostgreSQL when the URL is set (under
/// CI a missing URL fails the test).
pub fn backends(test: &str) -> Vec<(Backend, Option<String>)> {
    let mut all = vec![(Backend::Sqlite, None)];
    if let Some(url) = guardrail_tests::pg::database_url(test) {
        all.push((Backend::Postgres, Some(url)));
    }
    all
}

/// A running server and a client for it.
pub struct Harness {
    pub server: RunningServer,
    pub client: reqwest::Client,
    pub backend: Backend,
    schema: Option<(String, String)>,
    _dir: tempfile::TempDir,
    next_id: AtomicU64,
    /// Every request sent: request id → (method + path, status).
    pub sent: std::sync::Mutex<Vec<Sent>>,
}

/// One request the harness sent, as the client saw it.
#[derive(Clone, Debug)]
pub struct Sent {
    pub request_id: String,
    pub method: Method,
    pub path: String,
    pub status: StatusCode,
    /// Cancelled by a test layer (`x-test-cancelled`): the client cannot know whether a
    /// change it asked for committed.
    pub cancelled: bool,
}

/// A response: status, JSON body (or `Null`), and the request id it carried.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub body: Value,
    pub text: String,
    pub request_id: String,
}

impl Reply {
    /// `body.error`, `body.reason` of a refusal.
    pub fn refusal(&self) -> (String, String) {
        let s = |k: &str| self.body[k].as_str().unwrap_or_default().to_owned();
        (s("error"), s("reason"))
    }
}

fn unique(prefix: &str) -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!(
        "{prefix}_{}_{nanos:x}_{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// The bearer token of each demo principal (see `clinic_server::config::DEMO_TOKENS`).
pub fn token(principal: &str) -> String {
    format!("demo-{principal}")
}

/// The purpose each demo principal works under.
pub fn purpose_of(principal: &str) -> &'static str {
    match principal {
        "dr-grey" | "dr-hale" | "dr-ruiz" => "treatment",
        "user-alice" => "patient_request",
        "clerk-ito" => "payment",
        "res-kim" => "research",
        _ => "operations",
    }
}

impl Harness {
    /// Starts a server on `backend` with the default router.
    pub async fn start(backend: Backend, url: Option<&str>) -> Harness {
        Harness::start_with(backend, url, 4, |r| r).await
    }

    /// Starts a server whose pool holds `connections`, serving `layer(clinic.router())`.
    pub async fn start_with(
        backend: Backend,
        url: Option<&str>,
        connections: u32,
        layer: impl FnOnce(Router) -> Router,
    ) -> Harness {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let (mut config, schema) = match backend {
            Backend::Sqlite => (ServerConfig::sqlite(&data), None),
            Backend::Postgres => {
                let url = url.expect("a PostgreSQL URL");
                let schema = unique("clinic_http");
                let mut c = ServerConfig::postgres(&data, url);
                c.database = clinic_server::DatabaseConfig::Postgres {
                    url: url.to_owned(),
                    schema: Some(schema.clone()),
                };
                (c, Some((url.to_owned(), schema)))
            }
        };
        config.max_connections = connections;
        let clinic = Clinic::open(config).await.unwrap();
        let router = layer(clinic.router());
        let server = clinic
            .serve_router("127.0.0.1:0".parse().unwrap(), router)
            .await
            .unwrap();
        Harness {
            server,
            client: reqwest::Client::builder()
                .timeout(std::time::Duration::from_secs(20))
                .build()
                .unwrap(),
            backend,
            schema,
            _dir: dir,
            next_id: AtomicU64::new(0),
            sent: std::sync::Mutex::new(Vec::new()),
        }
    }

    pub fn clinic(&self) -> &Clinic {
        self.server.clinic()
    }

    pub fn db(&self) -> &Db {
        self.server.clinic().db()
    }

    /// A fresh request id.
    pub fn request_id(&self) -> String {
        format!("t-{}", self.next_id.fetch_add(1, Ordering::Relaxed))
    }

    /// Sends `method path` as `principal` (its token and purpose; `None`: no token), with
    /// extra headers and a JSON body.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        principal: Option<&str>,
        headers: &[(&str, &str)],
        body: Option<Value>,
    ) -> Reply {
        let request_id = self.request_id();
        let mut req = self
            .client
            .request(method.clone(), format!("{}{path}", self.server.url()))
            .header("x-request-id", &request_id);
        if let Some(p) = principal {
            req = req.bearer_auth(token(p));
            // The principal's own purpose, unless the test sends another.
            if !headers.iter().any(|(k, _)| *k == "x-purpose-of-use") {
                req = req.header("x-purpose-of-use", purpose_of(p));
            }
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status();
        let cancelled = resp.headers().contains_key("x-test-cancelled");
        let echoed = resp
            .headers()
            .get("x-request-id")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let text = resp.text().await.unwrap();
        assert_eq!(echoed.as_deref(), Some(request_id.as_str()), "{text}");
        self.sent.lock().unwrap().push(Sent {
            request_id: request_id.clone(),
            method,
            path: path.to_owned(),
            status,
            cancelled,
        });
        Reply {
            status,
            body: serde_json::from_str(&text).unwrap_or(Value::Null),
            text,
            request_id,
        }
    }

    /// The durable file trail's events, verified as read.
    pub fn file_events(&self) -> Vec<AuditEvent> {
        self.clinic().file_sink().flush().unwrap();
        FileTrail::open(self.clinic().audit_dir())
            .unwrap()
            .events()
            .collect::<Result<_, _>>()
            .unwrap()
    }

    /// The database audit table's events (committed outcomes of changes).
    pub async fn table_events(&self) -> Vec<AuditEvent> {
        let lines = clinic_server::db::audit_lines(self.db()).await.unwrap();
        lines
            .iter()
            .map(|l| AuditEvent::parse(l).unwrap())
            .collect()
    }

    /// `change_log` rows: (request id, action).
    pub async fn changes(&self) -> Vec<(String, String)> {
        let sql = "SELECT request_id, action FROM change_log ORDER BY id";
        match self.db() {
            Db::Sqlite(p) => sqlx::query_as(sql).fetch_all(p).await.unwrap(),
            Db::Postgres(p, _) => sqlx::query_as(sql).fetch_all(p).await.unwrap(),
        }
    }

    /// A patient's diagnosis in the database (`None`: no such patient).
    /// Runs a statement on the server's database, outside any request (test set-up).
    pub async fn execute(&self, sql: &str) {
        match self.db() {
            Db::Sqlite(p) => sqlx::query(sql).execute(p).await.map(drop),
            Db::Postgres(p, _) => sqlx::query(sql).execute(p).await.map(drop),
        }
        .unwrap();
    }

    pub async fn diagnosis(&self, patient: &str) -> Option<String> {
        let sql = "SELECT diagnosis FROM patients WHERE id = $1";
        match self.db() {
            Db::Sqlite(p) => sqlx::query_scalar(sql)
                .bind(patient)
                .fetch_optional(p)
                .await
                .unwrap(),
            Db::Postgres(p, _) => sqlx::query_scalar(sql)
                .bind(patient)
                .fetch_optional(p)
                .await
                .unwrap(),
        }
    }

    /// The agreement check: every committed change (`change_log`) has exactly one `ok`
    /// outcome in the audit table with its request id and action, every outcome in the table
    /// is an `ok` of a committed change, each names (`decision_seq`) an allowing decision of
    /// the same request and action in the file trail, no change action has an `ok` outcome
    /// in the file trail, and the client saw a 2xx for exactly the requests that committed.
    /// The table verifies (the file trail is verified as read, and whole in [`Harness::finish`]).
    /// Returns the number of committed changes.
    pub async fn assert_agreement(&self) -> usize {
        let changes = self.changes().await;
        let table = self.table_events().await;
        let file = self.file_events();
        let mut committed: BTreeMap<String, String> = BTreeMap::new();
        for (rid, action) in &changes {
            assert!(
                committed.insert(rid.clone(), action.clone()).is_none(),
                "request `{rid}` committed two changes"
            );
        }
        let mut outcomes: BTreeMap<String, String> = BTreeMap::new();
        for e in &table {
            let r = &e.record;
            assert_eq!(
                r.kind,
                EventKind::Outcome,
                "only outcomes in the table: {r:?}"
            );
            assert_eq!(
                r.outcome,
                Some(Outcome::Ok),
                "only ok outcomes commit: {r:?}"
            );
            let rid = r.request_id.as_deref().unwrap().to_owned();
            let action = r.action.as_deref().unwrap().to_owned();
            let decision = file
                .iter()
                .find(|d| Some(d.seq) == r.decision_seq)
                .unwrap_or_else(|| {
                    panic!("outcome of `{rid}` names no decision in the file trail")
                });
            assert_eq!(decision.record.kind, EventKind::Decision);
            assert_eq!(decision.record.request_id.as_deref(), Some(rid.as_str()));
            assert_eq!(decision.record.action.as_deref(), Some(action.as_str()));
            assert!(
                outcomes.insert(rid.clone(), action).is_none(),
                "request `{rid}` has two outcomes in the table"
            );
        }
        assert_eq!(
            committed, outcomes,
            "committed changes and `ok` outcomes in the table must agree"
        );
        for e in &file {
            let r = &e.record;
            let is_change = matches!(
                r.action.as_deref(),
                Some("chart.update_diagnosis" | "admin.delete_record")
            );
            assert!(
                !(is_change && r.kind == EventKind::Outcome && r.outcome == Some(Outcome::Ok)),
                "an `ok` outcome of a change went to the file trail, outside its transaction: {r:?}"
            );
        }
        for sent in self.sent.lock().unwrap().iter() {
            let write = sent.method == Method::PUT || sent.method == Method::DELETE;
            if write && !sent.cancelled {
                assert_eq!(
                    sent.status.is_success(),
                    committed.contains_key(&sent.request_id),
                    "{} {} ({}) answered {} but its change {} committed",
                    sent.method,
                    sent.path,
                    sent.request_id,
                    sent.status,
                    if committed.contains_key(&sent.request_id) {
                        "was"
                    } else {
                        "was not"
                    }
                );
            }
        }
        match self.db() {
            Db::Sqlite(p) => {
                guardrail_core::audit::sql::sqlx_sqlite::verify_sqlite_pool(
                    p,
                    &AuditTable::default(),
                )
                .await
                .unwrap();
            }
            Db::Postgres(p, _) => {
                guardrail_core::audit::sql::postgres::verify_postgres(p, &AuditTable::default())
                    .await
                    .unwrap();
            }
        }
        committed.len()
    }

    /// Runs the agreement check, stops the server and drops its PostgreSQL schema.
    pub async fn finish(self) -> usize {
        let n = self.assert_agreement().await;
        let schema = self.schema.clone();
        let audit_dir = self.clinic().audit_dir();
        self.server.stop().await.unwrap();
        // Closed, the trail ends with a signed checkpoint: it verifies whole.
        clinic_server::trail::verify(&audit_dir).unwrap();
        if let Some((url, schema)) = schema {
            let pool = sqlx::PgPool::connect(&url).await.unwrap();
            sqlx::query(&format!("DROP SCHEMA {schema} CASCADE"))
                .execute(&pool)
                .await
                .unwrap();
            pool.close().await;
        }
        n
    }
}

/// Runs `f` on every backend available here, on a runtime of its own.
pub fn on_each_backend<F, Fut>(test: &str, f: F)
where
    F: Fn(Backend, Option<String>) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    for (backend, url) in backends(test) {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(f(backend, url));
    }
}
