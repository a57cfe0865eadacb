//! Cancel safety: a guarded change cancelled at each await point k of its request (a layer
//! drops the request's future after k pending polls, as a client disconnect or a timeout
//! does) never leaves a commit without its `ok` outcome or an outcome without its commit;
//! a cancelled guarded call is recorded `cancelled`; and the pool's only connection comes
//! back clean (outside any transaction, no guardrail session settings, seeing only
//! committed data). Against SQLite, and PostgreSQL when its URL is set.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests fail loudly"
)]

mod support;

use std::future::Future;
use std::task::Poll;

use axum::extract::Request;
use axum::http::StatusCode;
use axum::middleware::{Next, from_fn};
use axum::response::{IntoResponse, Response};
use clinic_server::db::Db;
use guardrail_core::audit::{EventKind, Outcome};
use reqwest::Method;
use serde_json::json;
use support::{Backend, Harness, on_each_backend};

/// Test header: cancel the request after this many pending polls.
const CANCEL_AFTER: &str = "x-test-cancel-after";
/// Response header marking a request the layer cancelled.
const CANCELLED: &str = "x-test-cancelled";

/// Drops the rest of the stack's future once it has returned `Pending` k times.
async fn cancel_after(req: Request, next: Next) -> Response {
    let Some(k) = req
        .headers()
        .get(CANCEL_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok())
    else {
        return next.run(req).await;
    };
    let request_id = req.headers().get("x-request-id").cloned();
    let mut inner = Box::pin(next.run(req));
    let mut pending = 0;
    let finished = std::future::poll_fn(|cx| match inner.as_mut().poll(cx) {
        Poll::Ready(r) => Poll::Ready(Some(r)),
        Poll::Pending if pending >= k => Poll::Ready(None),
        Poll::Pending => {
            pending += 1;
            Poll::Pending
        }
    })
    .await;
    drop(inner);
    finished.unwrap_or_else(|| {
        let mut r = (StatusCode::SERVICE_UNAVAILABLE, [(CANCELLED, "1")]).into_response();
        if let Some(id) = request_id {
            r.headers_mut().insert("x-request-id", id);
        }
        r
    })
}

/// What a connection of the pool sees: in a transaction?, guardrail settings, the diagnosis.
async fn pooled_state(db: &Db) -> (bool, String, String) {
    match db {
        Db::Sqlite(pool) => {
            let mut conn = pool.acquire().await.unwrap();
            // Fails inside a transaction ("cannot start a transaction within a transaction").
            let began = sqlx::raw_sql("BEGIN IMMEDIATE; ROLLBACK")
                .execute(&mut *conn)
                .await;
            if let Err(e) = &began {
                eprintln!("BEGIN IMMEDIATE on the pooled connection: {e}");
            }
            let clean = began.is_ok();
            let dx: String =
                sqlx::query_scalar("SELECT diagnosis FROM patients WHERE id = 'p-100'")
                    .fetch_one(&mut *conn)
                    .await
                    .unwrap();
            (clean, String::new(), dx)
        }
        Db::Postgres(pool, _) => {
            let mut conn = pool.acquire().await.unwrap();
            // now() is the transaction's start: over the simple query protocol (raw_sql) a
            // lone statement outside a transaction block starts its own, so the two agree
            // only there.
            let row = sqlx::raw_sql("SELECT now() = statement_timestamp()")
                .fetch_one(&mut *conn)
                .await
                .unwrap();
            let outside: bool = sqlx::Row::get(&row, 0);
            let settings: String = sqlx::query_scalar(
                "SELECT coalesce(current_setting('guardrail.action', true), '')
                     || coalesce(current_setting('guardrail.principal', true), '')",
            )
            .fetch_one(&mut *conn)
            .await
            .unwrap();
            let dx: String =
                sqlx::query_scalar("SELECT diagnosis FROM patients WHERE id = 'p-100'")
                    .fetch_one(&mut *conn)
                    .await
                    .unwrap();
            (outside, settings, dx)
        }
    }
}

#[test]
fn a_change_cancelled_at_every_await_point_keeps_commit_and_outcome_together() {
    on_each_backend("cancel_at_every_await_point", |backend, url| async move {
        // One connection: the one a cancelled request used is the one checked after it.
        let h = Harness::start_with(backend, url.as_deref(), 1, |r| {
            r.layer(from_fn(cancel_after))
        })
        .await;
        let mut committed_dx = "Type 2 diabetes mellitus".to_owned();
        let (mut cancelled_calls, mut before_call, mut after_call) = (0, 0, 0);
        // How many polls land inside the guarded call depends on timing (a fast database
        // answers before the first poll returns): sweep k again until some did, at most 20
        // times. Every k of every round is checked.
        let mut rounds = 0;
        let mut completed_at = None;
        while rounds < 20 && (rounds == 0 || cancelled_calls == 0) {
            rounds += 1;
            completed_at = None;
            for k in 0..400usize {
                let dx = format!("dx {rounds}.{k}");
                let kk = k.to_string();
                let r = h
                    .send(
                        Method::PUT,
                        "/provider/patients/p-100/diagnosis",
                        Some("dr-grey"),
                        &[(CANCEL_AFTER, kk.as_str())],
                        Some(json!({ "diagnosis": dx })),
                    )
                    .await;
                let cancelled = r.status == StatusCode::SERVICE_UNAVAILABLE;
                assert!(
                    cancelled || r.status == StatusCode::NO_CONTENT,
                    "k={k}: {} {}",
                    r.status,
                    r.text
                );
                // A commit spawned before the cancellation may still be running: wait for it
                // by taking the pool's only connection.
                let (clean, settings, seen_dx) = pooled_state(h.db()).await;
                assert!(
                    clean,
                    "k={k} ({backend:?}): the pooled connection is still in a transaction"
                );
                assert_eq!(
                    settings, "",
                    "k={k}: guardrail settings leaked into the pool"
                );

                let rid = r.request_id.clone();
                let changes = h.changes().await;
                let committed = changes.iter().any(|(id, _)| *id == rid);
                let table_ok = h.table_events().await.iter().any(|e| {
                    e.record.request_id.as_deref() == Some(rid.as_str())
                        && e.record.outcome == Some(Outcome::Ok)
                });
                assert_eq!(
                    committed, table_ok,
                    "k={k}: commit and `ok` outcome disagree"
                );
                if committed {
                    committed_dx = dx.clone();
                }
                assert_eq!(
                    seen_dx, committed_dx,
                    "k={k}: the pool sees uncommitted data"
                );

                let file = h.file_events();
                let of_request: Vec<_> = file
                    .iter()
                    .filter(|e| e.record.request_id.as_deref() == Some(rid.as_str()))
                    .collect();
                let decided = of_request
                    .iter()
                    .any(|e| e.record.kind == EventKind::Decision);
                let file_outcome = of_request
                    .iter()
                    .find(|e| e.record.kind == EventKind::Outcome)
                    .and_then(|e| e.record.outcome);
                match (decided, committed, file_outcome) {
                    // Cancelled before the guarded call began: nothing happened, nothing recorded.
                    (false, false, None) => before_call += 1,
                    // Cancelled inside the call: rolled back, recorded as cancelled.
                    (true, false, Some(Outcome::Cancelled)) => cancelled_calls += 1,
                    // The call had returned: its commit ran to the end (and the outcome with it).
                    (true, true, None) => {
                        if cancelled {
                            after_call += 1;
                        }
                    }
                    other => panic!("k={k} ({backend:?}): decision/commit/outcome = {other:?}"),
                }
                if !cancelled {
                    completed_at = Some(k);
                    break;
                }
            }
        }
        let completed_at =
            completed_at.expect("the request completes once k exceeds its await points");
        assert!(
            cancelled_calls >= 1,
            "the guarded call itself was cancelled at some point ({cancelled_calls})"
        );
        // On PostgreSQL the transaction begins (on a task of its own) before the call: a
        // cancellation there leaves nothing. A SQLite transaction begins inside the call, at
        // its first use, so nothing before the call awaits.
        if backend == Backend::Postgres {
            assert!(before_call >= 1, "{before_call}");
        }
        eprintln!(
            "{backend:?}: {rounds} round(s), the last completed at k={completed_at}; cancelled \
             before the call {before_call}, inside it {cancelled_calls}, after it {after_call}"
        );
        h.finish().await;
    });
}
