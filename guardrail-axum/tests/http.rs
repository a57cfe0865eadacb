//! The integration end to end on loopback: a small axum app with guarded handlers, an auth
//! middleware mapping bearer tokens to principals, one router per endpoint, and a real HTTP
//! client. Every status of the crate's table is exercised here.

// Test helpers (outside `#[test]` fns) fail loudly by design.
#![allow(clippy::expect_used)]

use axum::extract::{Path, Query, Request};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::Response;
use axum::routing::get;
use axum::{Json, Router};
use guardrail_axum::{GuardRejection, GuardedContext};
use guardrail_core::audit::EventKind;
use guardrail_core::prelude::*;
use serde::Serialize;
use serde_json::Value;

const POLICY: &str = r#"
version = "http-test-1"

[approval]
approver_roles = ["privacy_officer"]
ttl_secs = 900

[[rule]]
id = "providers-treat"
effect = "allow"
actions = ["http.chart.*"]
roles = ["provider"]
endpoints = ["provider"]
purposes = ["treatment"]
reveal = ["diagnosis"]

[[rule]]
id = "research-export"
effect = "allow"
actions = ["http.research.*"]
kinds = ["export"]
roles = ["researcher"]
endpoints = ["system"]
approval_over = 2
"#;

/// The raw PHI the fake database holds; none of it may appear unmasked in a response.
const PATIENT_ID: &str = "p-4711";
const PATIENT_NAME: &str = "Ada Lovelace";
const DIAGNOSIS: &str = "J45.909 asthma";

#[derive(Debug, Clone, Serialize, guardrail_core::Phi)]
struct Chart {
    #[phi(name)]
    name: String,
    #[phi(diagnosis)]
    diagnosis: String,
}

#[phi_action(name = "http.chart.read", kind = "read", role = "provider",
             resource = "patient_record", subject = patient_id, phi = ["name", "diagnosis"])]
async fn read_chart(ctx: &Context, patient_id: &str) -> Result<Chart, GuardError> {
    let _ = patient_id;
    Ok(Chart {
        name: PATIENT_NAME.to_owned(),
        diagnosis: DIAGNOSIS.to_owned(),
    })
}

#[phi_action(name = "http.research.export", kind = "export", role = "researcher",
             resource = "cohort", count = n)]
async fn export_cohort(ctx: &Context, n: i64) -> Result<i64, GuardError> {
    Ok(n)
}

async fn chart_handler(
    ctx: GuardedContext,
    Path(id): Path<String>,
) -> Result<Json<Chart>, GuardRejection> {
    Ok(Json(read_chart(&ctx, &id).await?))
}

#[derive(serde::Deserialize)]
struct ExportQuery {
    n: i64,
}

async fn export_handler(
    ctx: GuardedContext,
    Query(q): Query<ExportQuery>,
) -> Result<Json<i64>, GuardRejection> {
    Ok(Json(export_cohort(&ctx, q.n).await?))
}

/// The host's auth: a bearer token names a principal; no or unknown token, no principal.
async fn auth(mut req: Request, next: Next) -> Response {
    let token = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    let principal = match token {
        Some("tok-grey") => Some(
            Principal::new("dr-grey")
                .role("provider")
                .jurisdiction("US-CA"),
        ),
        Some("tok-rae") => Some(Principal::new("rae").role("researcher")),
        Some("tok-pat") => Some(
            Principal::new("user-17")
                .role("patient")
                .patient(PATIENT_ID),
        ),
        _ => None,
    };
    if let Some(p) = principal {
        req.extensions_mut().insert(p);
    }
    next.run(req).await
}

struct App {
    base: String,
    guardrail: Guardrail,
    sink: MemorySink,
    client: reqwest::Client,
}

async fn start() -> App {
    let policy = Policy::from_toml_str(POLICY).expect("policy");
    let sink = MemorySink::new();
    let guardrail = Guardrail::builder()
        .policy(policy)
        .audit(sink.clone())
        .audit_key(AuditKey::from_bytes(b"http-test-key-0123456789abcdef").expect("key"))
        .build()
        .expect("guardrail");
    let provider = Router::new()
        .route("/charts/{id}", get(chart_handler))
        .layer(guardrail_axum::endpoint(Endpoint::Provider));
    let system = Router::new()
        .route("/export", get(export_handler))
        .layer(guardrail_axum::endpoint(Endpoint::System));
    // A router someone forgot to give an endpoint.
    let unconfigured = Router::new().route("/charts/{id}", get(chart_handler));
    let app = Router::new()
        .nest("/provider", provider)
        .nest("/system", system)
        .nest("/unconfigured", unconfigured)
        .layer(axum::middleware::from_fn(auth))
        .layer(axum::middleware::from_fn(guardrail_axum::request_id))
        .layer(guardrail_axum::guardrail(guardrail.clone()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    App {
        base: format!("http://{addr}"),
        guardrail,
        sink,
        client: reqwest::Client::new(),
    }
}

struct Answer {
    status: StatusCode,
    request_id: Option<String>,
    text: String,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_str(&self.text).expect("a JSON body")
    }

    /// No raw PHI in the body, whatever the status.
    fn assert_phi_free(&self) {
        for phi in [PATIENT_ID, PATIENT_NAME, "Lovelace"] {
            assert!(
                !self.text.contains(phi),
                "PHI `{phi}` in body: {}",
                self.text
            );
        }
    }
}

impl App {
    async fn get(&self, path: &str, headers: &[(&str, &str)]) -> Answer {
        let mut req = self.client.get(format!("{}{path}", self.base));
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let resp = req.send().await.expect("request");
        let status = StatusCode::from_u16(resp.status().as_u16()).expect("status");
        let request_id = resp
            .headers()
            .get("x-request-id")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let text = resp.text().await.expect("body");
        let answer = Answer {
            status,
            request_id,
            text,
        };
        answer.assert_phi_free();
        answer
    }

    fn chart_path(&self) -> String {
        format!("/provider/charts/{PATIENT_ID}")
    }
}

const GREY: (&str, &str) = ("authorization", "Bearer tok-grey");
const TREAT: (&str, &str) = ("x-purpose-of-use", "treatment");

#[tokio::test]
async fn allowed_call_answers_200_with_a_masked_body() {
    let app = start().await;
    let a = app.get(&app.chart_path(), &[GREY, TREAT]).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    let body = a.json();
    assert_eq!(body["diagnosis"], DIAGNOSIS, "revealed by the rule");
    assert_eq!(body["name"], "[REDACTED]", "not revealed: masked");
    let events = app.sink.events();
    assert_eq!(events.len(), 2, "decision and outcome");
    assert_eq!(events[0].record.decision.as_deref(), Some("allow"));
    assert_eq!(events[0].record.endpoint.as_deref(), Some("provider"));
    assert_eq!(events[0].record.purpose.as_deref(), Some("treatment"));
}

#[tokio::test]
async fn hl7_purpose_code_is_accepted() {
    let app = start().await;
    let a = app
        .get(&app.chart_path(), &[GREY, ("x-purpose-of-use", "TREAT")])
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
}

#[tokio::test]
async fn denied_call_answers_403_with_the_reason_code() {
    let app = start().await;
    let a = app
        .get(&app.chart_path(), &[GREY, ("x-purpose-of-use", "payment")])
        .await;
    assert_eq!(a.status, StatusCode::FORBIDDEN);
    let body = a.json();
    assert_eq!(body["error"], "denied");
    assert_eq!(body["reason"], "purpose");
    assert_eq!(body["action"], "http.chart.read");

    let patient = app
        .get(
            &app.chart_path(),
            &[("authorization", "Bearer tok-pat"), TREAT],
        )
        .await;
    assert_eq!(patient.status, StatusCode::FORBIDDEN);
    assert_eq!(patient.json()["reason"], "role");
    let events = app.sink.events();
    assert!(
        events
            .iter()
            .all(|e| e.record.decision.as_deref() == Some("deny")),
        "both denials recorded, no body ran: {events:#?}"
    );
}

#[tokio::test]
async fn missing_principal_answers_401_and_runs_nothing() {
    let app = start().await;
    for auth in [None, Some(("authorization", "Bearer forged"))] {
        let headers: Vec<_> = auth.into_iter().chain([TREAT]).collect();
        let a = app.get(&app.chart_path(), &headers).await;
        assert_eq!(a.status, StatusCode::UNAUTHORIZED);
        assert_eq!(a.json(), serde_json::json!({"error": "unauthenticated"}));
    }
    assert!(app.sink.is_empty(), "no guarded call was attempted");
}

#[tokio::test]
async fn router_without_endpoint_answers_500() {
    let app = start().await;
    let a = app
        .get(
            &format!("/unconfigured/charts/{PATIENT_ID}"),
            &[GREY, TREAT],
        )
        .await;
    assert_eq!(a.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(a.json()["error"], "misconfigured");
    assert_eq!(a.json()["missing"], "endpoint");
    assert!(app.sink.is_empty());
}

#[tokio::test]
async fn unknown_purpose_answers_400_naming_the_header_not_the_value() {
    let app = start().await;
    let huge = format!("golf-{}", "x".repeat(4000));
    for value in ["golf", huge.as_str()] {
        let a = app
            .get(&app.chart_path(), &[GREY, ("x-purpose-of-use", value)])
            .await;
        assert_eq!(a.status, StatusCode::BAD_REQUEST);
        assert_eq!(
            a.json(),
            serde_json::json!({"error": "invalid_header", "header": "x-purpose-of-use"})
        );
        assert!(!a.text.contains("golf"), "value echoed: {}", a.text);
    }
    assert!(app.sink.is_empty());
}

#[tokio::test]
async fn two_purpose_headers_answer_400_whatever_their_values() {
    let app = start().await;
    for second in ["treatment", "payment"] {
        let a = app
            .get(
                &app.chart_path(),
                &[GREY, TREAT, ("x-purpose-of-use", second)],
            )
            .await;
        assert_eq!(a.status, StatusCode::BAD_REQUEST, "{}", a.text);
        assert_eq!(
            a.json(),
            serde_json::json!({"error": "invalid_header", "header": "x-purpose-of-use"})
        );
    }
    assert!(app.sink.is_empty());
}

#[tokio::test]
async fn missing_purpose_where_the_rule_needs_one_answers_400_missing_context() {
    let app = start().await;
    let a = app.get(&app.chart_path(), &[GREY]).await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST, "{}", a.text);
    let body = a.json();
    assert_eq!(body["error"], "missing_context");
    assert_eq!(body["field"], "purpose");
    assert_eq!(body["action"], "http.chart.read");
}

#[tokio::test]
async fn request_id_is_recorded_in_every_event_and_echoed() {
    let app = start().await;
    let a = app
        .get(
            &app.chart_path(),
            &[GREY, TREAT, ("x-request-id", "abc-123.z:9")],
        )
        .await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(a.request_id.as_deref(), Some("abc-123.z:9"));
    let events = app.sink.events();
    assert_eq!(events.len(), 2);
    for e in &events {
        assert_eq!(e.record.request_id.as_deref(), Some("abc-123.z:9"));
    }
}

#[tokio::test]
async fn unsafe_or_missing_request_id_is_replaced_by_a_generated_one() {
    let app = start().await;
    let long = "a".repeat(65);
    let mut seen = Vec::new();
    for given in [
        None,
        Some("has space"),
        Some("quote\"d"),
        Some(long.as_str()),
    ] {
        app.sink.clear();
        let headers: Vec<_> = given
            .map(|g| ("x-request-id", g))
            .into_iter()
            .chain([GREY, TREAT])
            .collect();
        let a = app.get(&app.chart_path(), &headers).await;
        assert_eq!(a.status, StatusCode::OK);
        let id = a.request_id.expect("an id is always echoed");
        assert!(guardrail_axum::is_safe_id(&id), "{id}");
        assert_ne!(Some(id.as_str()), given);
        let events = app.sink.events();
        assert!(
            events
                .iter()
                .all(|e| e.record.request_id.as_deref() == Some(id.as_str())),
            "the generated id is the one recorded"
        );
        seen.push(id);
    }
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), 4, "every generated id is new");
}

#[tokio::test]
async fn request_id_is_echoed_on_rejections_too() {
    let app = start().await;
    let a = app
        .get(&app.chart_path(), &[("x-request-id", "rid-401")])
        .await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED);
    assert_eq!(a.request_id.as_deref(), Some("rid-401"));
}

#[tokio::test]
async fn approval_required_answers_403_with_the_request_id_and_a_grant_opens_the_retry() {
    let app = start().await;
    let rae = ("authorization", "Bearer tok-rae");
    let a = app.get("/system/export?n=5", &[rae]).await;
    assert_eq!(a.status, StatusCode::FORBIDDEN, "{}", a.text);
    let body = a.json();
    assert_eq!(body["error"], "approval_required");
    assert_eq!(body["action"], "http.research.export");
    let id = body["approval_id"]
        .as_str()
        .expect("an approval id")
        .to_owned();
    assert!(body["expires_at"].is_string());

    // Not yet granted: the retry is refused.
    let early = app
        .get("/system/export?n=5", &[rae, ("x-approval-id", &id)])
        .await;
    assert_eq!(early.status, StatusCode::FORBIDDEN);

    let officer = Principal::new("po-kim").role("privacy_officer");
    app.guardrail
        .approve(&officer, &guardrail_core::ApprovalId::new(&id))
        .expect("approved");
    let retry = app
        .get("/system/export?n=5", &[rae, ("x-approval-id", &id)])
        .await;
    assert_eq!(retry.status, StatusCode::OK, "{}", retry.text);
    assert_eq!(retry.json(), serde_json::json!(5));

    let bad = app
        .get(
            "/system/export?n=5",
            &[rae, ("x-approval-id", "no spaces allowed")],
        )
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert_eq!(bad.json()["header"], "x-approval-id");
}

/// Core currently refuses a negative count as a `policy_fault` denial, so `InvalidInput` is
/// not reachable over HTTP from this app; its mapping is checked on the error itself.
#[test]
fn invalid_input_answers_400_without_its_message() {
    let e = GuardRejection(GuardError::InvalidInput {
        action: "http.research.export",
        what: format!("count for patient {PATIENT_ID} is negative"),
    });
    let (status, body) = e.status_and_body();
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        body,
        serde_json::json!({"error": "invalid_input", "action": "http.research.export"})
    );
}

#[test]
fn unguarded_answers_500_with_the_category_only() {
    let e = GuardRejection(GuardError::Unguarded {
        action: Some("http.chart.read"),
        category: Some(guardrail_core::Category::Ssn),
    });
    let (status, body) = e.status_and_body();
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(
        body,
        serde_json::json!({"error": "unguarded", "action": "http.chart.read", "category": "ssn"})
    );
}

#[tokio::test]
async fn negative_count_is_refused_403() {
    let app = start().await;
    let a = app
        .get(
            "/system/export?n=-3",
            &[("authorization", "Bearer tok-rae")],
        )
        .await;
    assert_eq!(a.status, StatusCode::FORBIDDEN, "{}", a.text);
    assert_eq!(a.json()["error"], "denied");
}

#[tokio::test]
async fn audit_unavailable_answers_503_naming_only_the_sink() {
    let app = start().await;
    app.sink
        .fail_with(Some("disk /var/audit full while writing Ada Lovelace"));
    let a = app.get(&app.chart_path(), &[GREY, TREAT]).await;
    assert_eq!(a.status, StatusCode::SERVICE_UNAVAILABLE, "{}", a.text);
    assert_eq!(
        a.json(),
        serde_json::json!({"error": "audit_unavailable", "action": "http.chart.read", "sink": "memory"})
    );
    assert!(!a.text.contains("disk"), "sink detail leaked: {}", a.text);
    app.sink.fail_with(None);
    assert!(
        app.sink
            .events()
            .iter()
            .all(|e| e.record.kind != EventKind::Outcome),
        "the body never ran"
    );
}
