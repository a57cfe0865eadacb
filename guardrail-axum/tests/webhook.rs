//! The webhook alert sink against local axum servers: one that records, one that fails N
//! times then succeeds, and none at all (a closed port).

// Test helpers (outside `#[test]` fns) fail loudly by design.
#![allow(clippy::expect_used)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use axum::{Json, Router};
use guardrail_axum::{WebhookAlertSink, WebhookOptions};
use guardrail_core::audit::Timestamp;
use guardrail_core::prelude::*;
use guardrail_core::{Alert, AlertKind};
use serde_json::Value;

#[derive(Clone, Default)]
struct Hook {
    received: Arc<Mutex<Vec<Value>>>,
    calls: Arc<AtomicUsize>,
    fail_first: usize,
}

async fn hook(State(h): State<Hook>, Json(body): Json<Value>) -> StatusCode {
    let n = h.calls.fetch_add(1, Ordering::SeqCst);
    if n < h.fail_first {
        return StatusCode::INTERNAL_SERVER_ERROR;
    }
    h.received.lock().expect("lock").push(body);
    StatusCode::NO_CONTENT
}

async fn serve(fail_first: usize) -> (String, Hook) {
    let h = Hook {
        fail_first,
        ..Hook::default()
    };
    let app = Router::new()
        .route("/hook", post(hook))
        .with_state(h.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (format!("http://{addr}/hook"), h)
}

fn fast(max_attempts: u32, queue_capacity: usize) -> WebhookOptions {
    WebhookOptions {
        queue_capacity,
        max_attempts,
        initial_backoff: Duration::from_millis(10),
        max_backoff: Duration::from_millis(40),
        timeout: Duration::from_secs(2),
    }
}

fn alert(n: u64) -> Alert {
    Alert::new(
        AlertKind::DenialBurst,
        Timestamp(1_700_000_000_000_000_000),
        "review the denials",
    )
    .action("chart.read")
    .principal("dr-grey")
    .request(format!("req-{n}"))
    .count(Some(n))
}

async fn flush(sink: &WebhookAlertSink) {
    let s = sink.clone();
    let done = tokio::task::spawn_blocking(move || s.flush(Duration::from_secs(10)))
        .await
        .expect("join");
    assert!(done, "the sink flushed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delivers_phi_free_json() {
    let (url, h) = serve(0).await;
    let sink = WebhookAlertSink::with_options(&url, fast(3, 8)).expect("sink");
    sink.send(&alert(1));
    sink.send(&alert(2));
    flush(&sink).await;
    assert_eq!(sink.delivered(), 2);
    assert_eq!((sink.failed(), sink.dropped()), (0, 0));
    let got = h.received.lock().expect("lock").clone();
    assert_eq!(
        got[0],
        serde_json::json!({
            "kind": "denial_burst",
            "time": "2023-11-14T22:13:20.000000000Z",
            "action": "chart.read",
            "principal": "dr-grey",
            "request_id": "req-1",
            "count": 1,
            "message": "review the denials",
        })
    );
    assert_eq!(got[1]["request_id"], "req-2");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_with_backoff_until_the_hook_answers() {
    let (url, h) = serve(3).await;
    let sink = WebhookAlertSink::with_options(&url, fast(4, 8)).expect("sink");
    let started = Instant::now();
    sink.send(&alert(7));
    flush(&sink).await;
    assert_eq!(
        h.calls.load(Ordering::SeqCst),
        4,
        "three failures, then success"
    );
    assert_eq!((sink.delivered(), sink.failed()), (1, 0));
    // 10 + 20 + 40 ms of backoff at least.
    assert!(
        started.elapsed() >= Duration::from_millis(70),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(h.received.lock().expect("lock")[0]["count"], 7);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attempts_are_bounded() {
    let (url, h) = serve(usize::MAX).await;
    let sink = WebhookAlertSink::with_options(&url, fast(3, 8)).expect("sink");
    sink.send(&alert(1));
    flush(&sink).await;
    assert_eq!(h.calls.load(Ordering::SeqCst), 3);
    assert_eq!((sink.delivered(), sink.failed()), (0, 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_hook_never_blocks_send_and_a_full_queue_drops_and_counts() {
    // A port that was just free: nothing listens there.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    let options = WebhookOptions {
        initial_backoff: Duration::from_millis(200),
        max_backoff: Duration::from_millis(200),
        ..fast(3, 2)
    };
    let sink = WebhookAlertSink::with_options(&format!("http://127.0.0.1:{port}/hook"), options)
        .expect("sink");
    let started = Instant::now();
    for n in 0..20 {
        sink.send(&alert(n));
    }
    assert!(
        started.elapsed() < Duration::from_millis(100),
        "send never waits: {:?}",
        started.elapsed()
    );
    // The worker holds at most one, the queue two: the rest were dropped.
    assert!(sink.dropped() >= 17, "dropped {}", sink.dropped());
    assert!(sink.dropped() <= 18, "dropped {}", sink.dropped());
    flush(&sink).await;
    assert_eq!(sink.failed() + sink.dropped(), 20);
    assert_eq!(sink.delivered(), 0);
}

#[test]
fn urls_are_checked() {
    assert!(WebhookAlertSink::new("not a url").is_err());
    assert!(WebhookAlertSink::new("ftp://127.0.0.1/x").is_err());
    assert!(WebhookAlertSink::new("http://127.0.0.1:9/x").is_ok());
}

#[phi_action(name = "webhook.research.export", kind = "export", role = "researcher", count = n)]
fn export(ctx: &Context, n: u64) -> Result<u64, GuardError> {
    Ok(n)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guardrail_alerts_reach_the_hook() {
    let (url, h) = serve(0).await;
    let sink = WebhookAlertSink::with_options(&url, fast(3, 8)).expect("sink");
    let policy = Policy::from_toml_str(
        r#"
version = "w"
[approval]
approver_roles = ["privacy_officer"]
[[rule]]
id = "r"
effect = "allow"
actions = ["webhook.*"]
roles = ["researcher"]
approval_over = 1
"#,
    )
    .expect("policy");
    let guardrail = Guardrail::builder()
        .policy(policy)
        .audit(MemorySink::new())
        .audit_key(AuditKey::from_bytes(b"webhook-test-key-0123456789").expect("key"))
        .alerts(sink.clone())
        .build()
        .expect("guardrail");
    let ctx = guardrail
        .context(Principal::new("rae").role("researcher"))
        .request_id("rid-77");
    let err = export(&ctx, 5).expect_err("needs approval");
    assert!(
        matches!(err, GuardError::ApprovalRequired { .. }),
        "{err:?}"
    );
    guardrail.flush_alerts();
    flush(&sink).await;
    let got = h.received.lock().expect("lock").clone();
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0]["kind"], "approval_requested");
    assert_eq!(got[0]["principal"], "rae");
    assert_eq!(got[0]["request_id"], "rid-77");
}
