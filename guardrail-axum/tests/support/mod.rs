//! The host of the approvals page tests: a small axum service on loopback with one guarded
//! export that needs approval, the host's auth middleware (a bearer token, or a
//! `demo_session` cookie for the browser), and the approvals page nested at `/approvals`.

// Test helpers (outside `#[test]` fns) fail loudly by design.
#![allow(clippy::expect_used, dead_code, unreachable_pub)]

pub mod webdriver;

use axum::extract::{Query, Request};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::Response;
use axum::routing::get;
use axum::{Json, Router};
use guardrail_axum::{ApprovalsPage, GuardRejection, GuardedContext};
use guardrail_core::audit::{AuditEvent, EventKind};
use guardrail_core::prelude::*;
use guardrail_core::{ApprovalId, ApprovalState};

pub const POLICY: &str = r#"
version = "approvals-page-1"

[approval]
approver_roles = ["privacy_officer"]
ttl_secs = 900

[[rule]]
id = "research-export"
effect = "allow"
actions = ["page.research.*"]
kinds = ["export"]
roles = ["researcher"]
endpoints = ["system"]
purposes = ["research"]
reveal = ["diagnosis"]
approval_over = 2
"#;

/// The raw patient id the export is about: it must never appear on the page.
pub const PATIENT_ID: &str = "p-4711-lovelace";
/// A principal id that is markup: it must render as text.
pub const SCRIPT_ID: &str = "<script>alert('xss')</script>";

#[phi_action(name = "page.research.export", kind = "export", role = "researcher",
             resource = "cohort", subject = patient, count = n)]
async fn export_cohort(ctx: &Context, patient: &str, n: i64) -> Result<i64, GuardError> {
    let _ = patient;
    Ok(n)
}

#[derive(serde::Deserialize)]
struct ExportQuery {
    n: i64,
}

async fn export_handler(
    ctx: GuardedContext,
    Query(q): Query<ExportQuery>,
) -> Result<Json<i64>, GuardRejection> {
    Ok(Json(export_cohort(&ctx, PATIENT_ID, q.n).await?))
}

/// The principal of a demo token: `rae` researches, `kim` is the privacy officer, `lee`
/// is both (so only separation of duties keeps lee from approving lee's own request),
/// `kim-demoted` is kim after losing the officer role, `clerk` is neither.
pub fn principal_of(token: &str) -> Option<Principal> {
    Some(match token {
        "tok-rae" => Principal::new("rae").role("researcher"),
        "tok-kim" => Principal::new("po-kim").role("privacy_officer"),
        "tok-kim-demoted" => Principal::new("po-kim").role("researcher"),
        "tok-lee" => Principal::new("dr-lee")
            .role("researcher")
            .role("privacy_officer"),
        "tok-clerk" => Principal::new("clerk").role("front_desk"),
        "tok-xss" => Principal::new(SCRIPT_ID).role("researcher"),
        _ => return None,
    })
}

/// The host's auth: `Authorization: Bearer <token>` or a `demo_session=<token>` cookie.
async fn auth(mut req: Request, next: Next) -> Response {
    let bearer = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::to_owned);
    let cookie = req
        .headers()
        .get_all("cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().strip_prefix("demo_session="))
        .map(str::to_owned)
        .next();
    if let Some(p) = bearer.or(cookie).as_deref().and_then(principal_of) {
        req.extensions_mut().insert(p);
    }
    next.run(req).await
}

pub struct App {
    pub base: String,
    pub guardrail: Guardrail,
    pub sink: MemorySink,
    pub client: reqwest::Client,
}

/// Starts the host on an ephemeral loopback port. `secure_cookie` is the page's setting.
pub async fn start(secure_cookie: bool) -> App {
    let policy = Policy::from_toml_str(POLICY).expect("policy");
    let sink = MemorySink::new();
    let guardrail = Guardrail::builder()
        .policy(policy)
        .audit(sink.clone())
        .audit_key(AuditKey::from_bytes(b"approvals-page-key-0123456789ab").expect("key"))
        .build()
        .expect("guardrail");
    let system = Router::new()
        .route("/export", get(export_handler))
        .layer(guardrail_axum::endpoint(Endpoint::System));
    let page = ApprovalsPage::new(guardrail.clone())
        .expect("page")
        .secure_cookie(secure_cookie)
        .router();
    let app = Router::new()
        .nest("/system", system)
        .nest("/approvals", page)
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
        client: reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(std::time::Duration::from_secs(30))
            .build()
            .expect("client"),
    }
}

/// An HTTP answer: status, body, the CSRF cookie it set (if any).
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub text: String,
    pub set_cookie: Option<String>,
    pub content_type: Option<String>,
    pub csp: Option<String>,
}

impl Answer {
    async fn from(resp: reqwest::Response) -> Answer {
        let status = StatusCode::from_u16(resp.status().as_u16()).expect("status");
        let header = |name: &str| {
            resp.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let set_cookie = header("set-cookie");
        let content_type = header("content-type");
        let csp = header("content-security-policy");
        let text = resp.text().await.expect("body");
        assert!(
            !text.contains(PATIENT_ID),
            "the raw patient id reached a page: {text}"
        );
        Answer {
            status,
            text,
            set_cookie,
            content_type,
            csp,
        }
    }

    /// The CSRF nonce of the `Set-Cookie` header.
    pub fn nonce(&self) -> String {
        let cookie = self.set_cookie.as_deref().expect("a Set-Cookie header");
        let first = cookie.split(';').next().expect("a cookie pair");
        first
            .strip_prefix(&format!("{}=", guardrail_axum::CSRF_COOKIE))
            .expect("the CSRF cookie")
            .to_owned()
    }

    /// The CSRF token of the page's forms (every form carries the same one).
    pub fn token(&self) -> String {
        let marker = "name=\"csrf\" value=\"";
        let at = self.text.find(marker).expect("a form with a CSRF token") + marker.len();
        let end = self.text[at..].find('"').expect("end of the token");
        self.text[at..at + end].to_owned()
    }
}

impl App {
    /// The requester `token` asks for an export of `n` records; returns the approval id.
    pub async fn open_request(&self, token: &str, n: i64) -> ApprovalId {
        let resp = self.export(token, n, None).await;
        assert_eq!(resp.0, StatusCode::FORBIDDEN, "{}", resp.1);
        let body: serde_json::Value = serde_json::from_str(&resp.1).expect("json");
        assert_eq!(body["error"], "approval_required", "{body}");
        ApprovalId::new(body["approval_id"].as_str().expect("approval id"))
    }

    /// The export as `token`, optionally presenting a grant: status and body.
    pub async fn export(
        &self,
        token: &str,
        n: i64,
        approval: Option<&ApprovalId>,
    ) -> (StatusCode, String) {
        let mut req = self
            .client
            .get(format!("{}/system/export?n={n}", self.base))
            .header("authorization", format!("Bearer {token}"))
            .header("x-purpose-of-use", "research");
        if let Some(id) = approval {
            req = req.header("x-approval-id", id.as_str());
        }
        let resp = req.send().await.expect("export");
        let status = StatusCode::from_u16(resp.status().as_u16()).expect("status");
        (status, resp.text().await.expect("body"))
    }

    /// `GET /approvals` as `token` (`None`: unauthenticated), with a CSRF cookie if given.
    pub async fn page(&self, token: Option<&str>, nonce: Option<&str>) -> Answer {
        let mut req = self.client.get(format!("{}/approvals", self.base));
        if let Some(token) = token {
            req = req.header("authorization", format!("Bearer {token}"));
        }
        if let Some(nonce) = nonce {
            req = req.header("cookie", format!("{}={nonce}", guardrail_axum::CSRF_COOKIE));
        }
        Answer::from(req.send().await.expect("page")).await
    }

    /// `POST /approvals/{id}/{verb}` as `token`, with the cookie and form token given.
    pub async fn decide(
        &self,
        token: Option<&str>,
        id: &str,
        verb: &str,
        nonce: Option<&str>,
        csrf: Option<&str>,
    ) -> Answer {
        let mut req = self
            .client
            .post(format!("{}/approvals/{id}/{verb}", self.base));
        if let Some(token) = token {
            req = req.header("authorization", format!("Bearer {token}"));
        }
        if let Some(nonce) = nonce {
            req = req.header("cookie", format!("{}={nonce}", guardrail_axum::CSRF_COOKIE));
        }
        let form: Vec<(&str, &str)> = csrf.map(|c| vec![("csrf", c)]).unwrap_or_default();
        Answer::from(req.form(&form).send().await.expect("post")).await
    }

    /// The request's state in the store.
    pub fn state(&self, id: &ApprovalId) -> ApprovalState {
        self.guardrail
            .approval_request(id)
            .expect("store")
            .expect("the request exists")
            .state
    }

    /// The approval-step events of request `id` of `kind`.
    pub fn steps(&self, id: &ApprovalId, kind: EventKind) -> Vec<AuditEvent> {
        self.sink
            .events()
            .into_iter()
            .filter(|e| e.record.kind == kind && e.record.approval.as_deref() == Some(id.as_str()))
            .collect()
    }
}
