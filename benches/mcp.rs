//! A tool call through the MCP layer, in process, with and without the guard.
//!
//! Both servers run on the same tokio runtime behind an in-memory duplex pipe, and the real
//! rmcp client calls a `read_chart` tool whose body builds a six-field chart; the result goes
//! back as JSON text. The only difference is the guard:
//!
//! - `mcp/plain`: an rmcp `ServerHandler` calling the body directly and serializing it.
//! - `mcp/guarded`: [`GuardedServer`]: the session's context, the `#[phi_action]` decision and
//!   its event, the body, masking, the scrubbing of every string, the digest of the
//!   delivered JSON, and the held outcome event (memory sink).
//! - `session/guarded` and `session/plain`: the same two without the transport (what the
//!   guard adds, next to the cost of the bare handler).
//! - `mcp_1t/plain` and `mcp_1t/guarded`: the `mcp` pair on a current-thread runtime, where
//!   client, pipe and server take turns on the benchmark's own thread. On the 2-worker
//!   runtime a call crosses threads several times, and a longer handler (the guarded one)
//!   changes how often idle workers spin, park and are woken; on one thread no call waits for
//!   another thread, so the difference of the pair is the guard's own work. Neither pair is
//!   "the" figure: the first is how a multi-threaded server runs, the second isolates the
//!   guard.
//!
//! Fairness: both servers read the same arguments, run the same body and answer one text
//! block over the same pipe and client. The guarded answer is the masked chart, about 1.5
//! times the raw one (the record number becomes a 64-hex-digit token; checked below): carrying
//! those bytes is part of what the guard costs.
//!
//! The memory trail is emptied every 1024 guarded calls, inside the timing (as in
//! `decision.rs`): dropping the records is part of the cost, but the trail stays small instead
//! of growing by gigabytes, whose page faults would otherwise be charged to the guard.
//!
//! `mcp_paired.rs` measures the same two pairs in alternating rounds and reports the
//! median of the per-round shares (less sensitive to a machine whose speed drifts).
//!
//! Run: `cargo bench -p guardrail-benches --bench mcp`

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

#[path = "mcp_fixture.rs"]
mod fixture;

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use fixture::{Plain, chart_of, connect, patient, setup, text, timed};
use guardrail_core::AgentId;
use guardrail_core::prelude::*;
use guardrail_mcp::{Catalogue, GuardedServer, Session, SessionConfig};
use rmcp::model::CallToolRequestParams;
use serde_json::json;

/// `mcp/*` (2 workers) or `mcp_1t/*` (current thread): the same tool call through the plain
/// and the guarded server, side by side on `rt`.
fn over_transport(
    c: &mut Criterion,
    group: &str,
    rt: &tokio::runtime::Runtime,
    (g, sink, catalogue, config): &(Guardrail, MemorySink, Catalogue, SessionConfig),
    request: &CallToolRequestParams,
) {
    let guarded = rt.block_on(connect(GuardedServer::new(
        g.clone(),
        catalogue.clone(),
        config.clone(),
    )));
    let plain = rt.block_on(connect(Plain));
    // Both answer, only the guarded one masks, and the answers are of comparable size.
    let g_text = text(rt.block_on(guarded.call_tool(request.clone())).unwrap());
    let p_text = text(rt.block_on(plain.call_tool(request.clone())).unwrap());
    assert!(!g_text.contains("123-45-6789") && p_text.contains("123-45-6789"));
    // The masked chart is longer (the record number's token is 64 hex digits): moving the
    // extra bytes is counted as the guard's cost. Nothing else may make it differ.
    assert!(
        p_text.len() < g_text.len() && g_text.len() * 2 < p_text.len() * 3,
        "{g_text} vs {p_text}"
    );

    let mut group = c.benchmark_group(group);
    group.bench_function("plain", |b| {
        b.iter(|| black_box(rt.block_on(plain.call_tool(request.clone())).unwrap()))
    });
    group.bench_function("guarded", |b| {
        b.iter_custom(|iters| {
            timed(sink, iters, || {
                black_box(rt.block_on(guarded.call_tool(request.clone())).unwrap());
            })
        })
    });
    group.finish();
    rt.block_on(async {
        let _ = guarded.cancel().await;
        let _ = plain.cancel().await;
    });
}

fn mcp(c: &mut Criterion) {
    let fixture = setup();
    let args = json!({"patient_id": "p-1"}).as_object().cloned().unwrap();
    let request = CallToolRequestParams::new("read_chart").with_arguments(args.clone());

    let workers = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    over_transport(c, "mcp", &workers, &fixture, &request);
    let one = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    over_transport(c, "mcp_1t", &one, &fixture, &request);

    let (g, sink, catalogue, config) = fixture;
    let session = Session::open(&g, &catalogue, config, AgentId::new("bench-client"));
    let mut group = c.benchmark_group("session");
    group.bench_function("plain", |b| {
        b.iter(|| black_box(json!(chart_of(patient(black_box(&args)))).to_string()))
    });
    group.bench_function("guarded", |b| {
        b.iter_custom(|iters| {
            timed(&sink, iters, || {
                black_box(session.call("read_chart", black_box(&args), None).unwrap());
            })
        })
    });
    group.finish();
}

criterion_group!(benches, mcp);
criterion_main!(benches);
