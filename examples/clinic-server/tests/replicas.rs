//! Two clinic servers in replica mode on one PostgreSQL database, each on its own loopback
//! port: an approval requested on one is granted on the other by a privacy officer and
//! spent once, a newly published policy version reaches both, and the shared trail (both
//! replicas' chains, decisions included, and the signed tree heads) verifies.
//!
//! Needs `GUARDRAIL_TEST_DATABASE_URL`: without it the test fails under CI (`CI` set) and
//! otherwise skips with a notice on the terminal. It runs in a schema of its own, dropped
//! at the end.
#![expect(
    clippy::unwrap_used,
    reason = "a test fails loudly on any unexpected error"
)]

use std::time::{Duration, Instant};

use clinic_server::{Clinic, DatabaseConfig, RunningServer, ServerConfig};
use guardrail_core::Principal;
use guardrail_core::approval::ApprovalId;
use guardrail_core::audit::sql::AuditTable;
use guardrail_core::audit::sql::postgres::verify_postgres_trail;
use guardrail_core::policy_store::{PolicyStore, PolicyStoreOptions};
use reqwest::StatusCode;
use serde_json::{Value, json};

fn unique(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!("{prefix}_{}_{nanos:x}", std::process::id())
}

async fn start(url: &str, schema: &str, name: &str, dir: &std::path::Path) -> RunningServer {
    let mut config = ServerConfig::postgres(dir, url);
    config.database = DatabaseConfig::Postgres {
        url: url.to_owned(),
        schema: Some(schema.to_owned()),
    };
    config.replica = Some(name.to_owned());
    Clinic::open(config)
        .await
        .unwrap()
        .serve("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap()
}

/// `PUT /provider/patients/p-100/diagnosis` as dr-grey (on p-100's care team), on the
/// server at `base`.
async fn update(base: String, diagnosis: &str) -> StatusCode {
    reqwest::Client::new()
        .put(format!("{base}/provider/patients/p-100/diagnosis"))
        .bearer_auth("demo-dr-grey")
        .header("x-purpose-of-use", "treatment")
        .json(&json!({ "diagnosis": diagnosis }))
        .send()
        .await
        .unwrap()
        .status()
}

/// `POST /system/cohorts/export` of 150 records as the researcher, on `server`.
async fn export(server: &RunningServer, approval: Option<&str>) -> (StatusCode, Value) {
    let ids: Vec<&str> = (0..150)
        .map(|i| if i % 2 == 0 { "p-100" } else { "p-200" })
        .collect();
    let mut req = reqwest::Client::new()
        .post(format!("{}/system/cohorts/export", server.url()))
        .bearer_auth("demo-res-kim")
        .header("x-purpose-of-use", "research")
        .json(&json!({ "patient_ids": ids }));
    if let Some(id) = approval {
        req = req.header("x-approval-id", id);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status();
    let body = resp.json().await.unwrap_or(Value::Null);
    (status, body)
}

/// Waits until `done` holds, for at most `limit`.
async fn wait_for(limit: Duration, what: &str, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < limit, "{what} within {limit:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[test]
fn two_replicas_share_policy_approvals_and_trail() {
    let Some(url) = guardrail_tests::pg::database_url("clinic_replicas") else {
        return;
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let schema = unique("clinic_replicas");
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    rt.block_on(async {
        let a = start(&url, &schema, "clinic-a", dir_a.path()).await;
        let b = start(&url, &schema, "clinic-b", dir_b.path()).await;
        assert_ne!(a.addr(), b.addr());
        // The first replica published the clinic's policy; both enforce it.
        for s in [&a, &b] {
            assert_eq!(s.clinic().replica().unwrap().policy_version(), Some(1));
        }

        // Requested on A, granted on B by the privacy officer, spent on A, once.
        let (status, body) = export(&a, None).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
        assert_eq!(body["error"], "approval_required", "{body}");
        let id = body["approval_id"].as_str().unwrap().to_owned();
        let officer = Principal::new("po-lee").role("privacy_officer");
        b.clinic()
            .guardrail()
            .approve(&officer, &ApprovalId::new(&id))
            .unwrap();
        let (status, body) = export(&a, Some(&id)).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body.as_array().map(Vec::len), Some(150));
        let (status, body) = export(&b, Some(&id)).await;
        assert_eq!(
            status,
            StatusCode::FORBIDDEN,
            "a grant opens one call: {body}"
        );

        // A new version, published to the store, reaches both replicas.
        let in_schema = format!("{url}?options[search_path]={schema}");
        let store = PolicyStore::connect(&in_schema, PolicyStoreOptions::new())
            .await
            .unwrap();
        let next = clinic_server::POLICY.replacen(
            "version = \"clinic-2026-11-01\"",
            "version = \"clinic-replicas-2\"\n",
            1,
        );
        assert_ne!(next, clinic_server::POLICY);
        let published = store.publish(&next, "adm-ray").await.unwrap();
        assert_eq!(published.version, 2);
        store.close().await;
        for s in [&a, &b] {
            let clinic = s.clinic();
            wait_for(Duration::from_secs(10), "the new version in force", || {
                clinic.replica().unwrap().policy_version() == Some(2)
                    && clinic.guardrail().policy().version() == "clinic-replicas-2"
            })
            .await;
        }

        // Changes on both replicas at once: each commits its `ok` outcome on a chain its
        // transaction holds alone (`NAME.txN`), none on the default chain's one head row.
        let updates: Vec<_> = (0..8)
            .map(|i| {
                let base = if i % 2 == 0 { a.url() } else { b.url() };
                tokio::spawn(update(
                    base,
                    if i % 2 == 0 { "Asthma" } else { "Asthma, mild" },
                ))
            })
            .collect();
        for u in updates {
            assert_eq!(u.await.unwrap(), StatusCode::NO_CONTENT);
        }

        // The shared trail: both chains hold decisions, and a tree head covers them.
        let options: sqlx::postgres::PgConnectOptions = url.parse().unwrap();
        let pool = sqlx::postgres::PgPoolOptions::new()
            .max_connections(1)
            .connect_with(options.options([("search_path", schema.as_str())]))
            .await
            .unwrap();
        let start_wait = Instant::now();
        loop {
            let signed: i64 = sqlx::query_scalar("SELECT count(*) FROM guardrail_audit_tree")
                .fetch_one(&pool)
                .await
                .unwrap();
            if signed > 0 {
                break;
            }
            assert!(
                start_wait.elapsed() < Duration::from_secs(15),
                "no tree head"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        a.stop().await.unwrap();
        b.stop().await.unwrap();
        let decisions: Vec<(String, i64)> = sqlx::query_as(
            "SELECT chain, count(*) FROM guardrail_audit WHERE kind = 'decision' \
             GROUP BY chain ORDER BY chain",
        )
        .fetch_all(&pool)
        .await
        .unwrap();
        let chains: Vec<&str> = decisions.iter().map(|(c, _)| c.as_str()).collect();
        assert_eq!(chains, ["clinic-a", "clinic-b"], "{decisions:?}");
        let outcomes: Vec<(String, i64)> = sqlx::query_as(
            "SELECT chain, count(*) FROM guardrail_audit WHERE kind = 'outcome' \
             AND action = 'chart.update_diagnosis' GROUP BY chain ORDER BY chain",
        )
        .fetch_all(&pool)
        .await
        .unwrap();
        assert_eq!(
            outcomes.iter().map(|(_, n)| n).sum::<i64>(),
            8,
            "every change's outcome is in the table: {outcomes:?}"
        );
        for (chain, _) in &outcomes {
            assert!(
                chain.starts_with("clinic-a.tx") || chain.starts_with("clinic-b.tx"),
                "an outcome on chain {chain}: {outcomes:?}"
            );
        }
        assert!(
            outcomes.iter().any(|(c, _)| c.starts_with("clinic-a."))
                && outcomes.iter().any(|(c, _)| c.starts_with("clinic-b.")),
            "{outcomes:?}"
        );
        let report = verify_postgres_trail(
            &pool,
            &AuditTable::default(),
            Some(&clinic_server::trail::checkpoint_verifier()),
        )
        .await
        .unwrap_or_else(|e| panic!("the shared trail does not verify: {e}"));
        assert!(report.tree_heads >= 1, "{report:?}");
        assert!(report.chains >= 3, "{report:?}");
        pool.close().await;
        let admin = sqlx::PgPool::connect(&url).await.unwrap();
        sqlx::raw_sql(&format!("DROP SCHEMA {schema} CASCADE"))
            .execute(&admin)
            .await
            .unwrap();
        admin.close().await;
    });
}
