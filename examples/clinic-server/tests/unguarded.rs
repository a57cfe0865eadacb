//! The benchmark-only unguarded routes (`clinic_server::unguarded`) against the guarded ones
//! of the same clinic, on loopback: the same chart, the same rows written, the same 401 and
//! 404, and nothing in the trail; with the durable floor, one decision-shaped event per
//! request and still the same answers.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests fail loudly"
)]

use clinic_server::unguarded::{BENCHMARK_VALUE, Baseline, BenchmarkOnly, router};
use clinic_server::{Clinic, ServerConfig};
use reqwest::StatusCode;
use serde_json::{Value, json};

async fn chart(client: &reqwest::Client, base: &str, token: Option<&str>, id: &str) -> Response {
    let mut req = client
        .get(format!("{base}/provider/patients/{id}/chart"))
        .header("x-purpose-of-use", "treatment");
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    Response::of(req.send().await.unwrap()).await
}

async fn update(client: &reqwest::Client, base: &str, diagnosis: &str) -> StatusCode {
    client
        .put(format!("{base}/provider/patients/p-100/diagnosis"))
        .bearer_auth("demo-dr-grey")
        .header("x-purpose-of-use", "treatment")
        .json(&json!({ "diagnosis": diagnosis }))
        .send()
        .await
        .unwrap()
        .status()
}

struct Response {
    status: StatusCode,
    body: Value,
}

impl Response {
    async fn of(r: reqwest::Response) -> Response {
        let status = r.status();
        let body = r.json().await.unwrap_or(Value::Null);
        Response { status, body }
    }
}

async fn change_log(clinic: &Clinic) -> Vec<(String, String, String)> {
    let clinic_server::db::Db::Sqlite(pool) = clinic.db() else {
        panic!("the test runs on SQLite")
    };
    sqlx::query_as("SELECT action, patient_id, detail FROM change_log ORDER BY id")
        .fetch_all(pool)
        .await
        .unwrap()
}

/// Runs `test` on a 2-worker runtime (as the server's), with a fresh SQLite clinic.
fn with_clinic<F: std::future::Future<Output = ()>>(test: impl FnOnce(Clinic) -> F) {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
        .block_on(async {
            let dir = tempfile::tempdir().unwrap();
            let clinic = Clinic::open(ServerConfig::sqlite(dir.path().join("data")))
                .await
                .unwrap();
            test(clinic).await;
        });
}

#[test]
fn unguarded_routes_answer_and_write_as_the_guarded_ones_without_a_trail() {
    with_clinic(same_answers_and_rows_no_trail);
}

async fn same_answers_and_rows_no_trail(clinic: Clinic) {
    let proof = BenchmarkOnly::from_value(Some(BENCHMARK_VALUE)).unwrap();
    let unguarded = clinic
        .clone()
        .serve_router(
            "127.0.0.1:0".parse().unwrap(),
            router(proof, &clinic, Baseline::Bare),
        )
        .await
        .unwrap();
    let guarded = clinic
        .clone()
        .serve("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let (u, g) = (unguarded.url(), guarded.url());
    let client = reqwest::Client::new();
    let token = Some("demo-dr-grey");

    // The same chart (dr-grey's rule reveals everything, so the guarded one is unmasked).
    let from_guarded = chart(&client, &g, token, "p-100").await;
    assert_eq!(from_guarded.status, StatusCode::OK);
    let events_before = clinic.file_sink().head().next_seq;
    let from_unguarded = chart(&client, &u, token, "p-100").await;
    assert_eq!(from_unguarded.status, StatusCode::OK);
    assert_eq!(from_unguarded.body, from_guarded.body);
    assert_eq!(
        from_unguarded.body["ssn"], "512-44-8231",
        "{}",
        from_unguarded.body
    );

    // Authentication is the server's, not guardrail's: still required.
    for bad in [None, Some("no-such-token")] {
        let r = chart(&client, &u, bad, "p-100").await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{bad:?}");
    }
    assert_eq!(
        chart(&client, &u, token, "p-999").await.status,
        StatusCode::NOT_FOUND
    );
    // Guarded, a patient dr-grey does not treat is refused before any read
    // (`no_relationship`); unguarded, the read runs and finds nothing.
    assert_eq!(
        chart(&client, &g, token, "p-999").await.status,
        StatusCode::FORBIDDEN
    );

    // The same change and change-log row.
    assert_eq!(
        update(&client, &u, "changed unguarded").await,
        StatusCode::NO_CONTENT
    );
    let after = chart(&client, &g, token, "p-100").await;
    assert_eq!(after.body["diagnosis"], "changed unguarded");
    assert_eq!(
        update(&client, &g, "changed guarded").await,
        StatusCode::NO_CONTENT
    );
    let rows = change_log(&clinic).await;
    let row = |detail: &str| {
        (
            "chart.update_diagnosis".to_owned(),
            "p-100".to_owned(),
            detail.to_owned(),
        )
    };
    assert_eq!(rows, vec![row("changed unguarded"), row("changed guarded")]);

    // The unguarded requests left nothing in the trail; the guarded ones did.
    let events = clinic.file_sink().head().next_seq;
    let guarded_since = 3; // p-999's decision, the second chart read's decision and outcome
    assert!(
        events >= events_before + guarded_since,
        "{events_before} -> {events}"
    );
    let before_unguarded = clinic.file_sink().head().next_seq;
    chart(&client, &u, token, "p-100").await;
    update(&client, &u, "again").await;
    assert_eq!(clinic.file_sink().head().next_seq, before_unguarded);

    unguarded.stop().await.unwrap();
    guarded.stop().await.unwrap();
}

#[test]
fn the_floor_records_one_durable_decision_per_request_and_answers_the_same() {
    with_clinic(floor_records_one_decision);
}

async fn floor_records_one_decision(clinic: Clinic) {
    let proof = BenchmarkOnly::from_value(Some(BENCHMARK_VALUE)).unwrap();
    let serve = |baseline| {
        clinic.clone().serve_router(
            "127.0.0.1:0".parse().unwrap(),
            router(proof, &clinic, baseline),
        )
    };
    let (bare, floor) = (
        serve(Baseline::Bare).await.unwrap(),
        serve(Baseline::DurableFloor).await.unwrap(),
    );
    let client = reqwest::Client::new();
    let token = Some("demo-dr-grey");

    let first = clinic.file_sink().head().next_seq;
    let from_floor = chart(&client, &floor.url(), token, "p-100").await;
    assert_eq!(from_floor.status, StatusCode::OK);
    assert_eq!(
        from_floor.body,
        chart(&client, &bare.url(), token, "p-100").await.body
    );
    assert_eq!(
        update(&client, &floor.url(), "changed at the floor").await,
        StatusCode::NO_CONTENT
    );
    let rows = change_log(&clinic).await;
    assert_eq!(rows.last().unwrap().2, "changed at the floor");
    // Unauthenticated: refused before anything is recorded.
    assert_eq!(
        chart(&client, &floor.url(), None, "p-100").await.status,
        StatusCode::UNAUTHORIZED
    );
    // Each answered request was one event, durable before it was answered.
    assert_eq!(clinic.file_sink().head().next_seq, first + 2);

    // The two events: decisions of dr-grey on p-100's keyed token, no raw id or PHI.
    let token_of_p100 =
        clinic_server::trail::demo_key().token(guardrail_core::AuditKey::SUBJECT_DOMAIN, "p-100");
    let trail = guardrail_core::audit::FileTrail::open(clinic.audit_dir()).unwrap();
    let events: Vec<_> = trail
        .events()
        .collect::<Result<Vec<_>, _>>()
        .unwrap()
        .into_iter()
        .filter(|e| e.seq >= first)
        .collect();
    assert_eq!(events.len(), 2);
    for (event, action) in events.iter().zip(["chart.read", "chart.update_diagnosis"]) {
        let r = &event.record;
        assert_eq!(r.kind, guardrail_core::audit::EventKind::Decision);
        assert_eq!(r.action.as_deref(), Some(action));
        assert_eq!(r.principal.as_deref(), Some("dr-grey"));
        assert_eq!(r.decision.as_deref(), Some("allow"));
        assert_eq!(r.subject.as_deref(), Some(token_of_p100.as_str()));
        let line = event.line();
        for raw in ["p-100", "512-44-8231", "changed at the floor"] {
            assert!(!line.contains(raw), "{raw} in {line}");
        }
    }

    floor.stop().await.unwrap();
    bare.stop().await.unwrap();
}
