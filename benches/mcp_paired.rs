//! The guard's share of a tool call through the MCP layer, measured in pairs.
//!
//! `mcp.rs` times the plain and the guarded call one after the other, seconds apart; on a
//! shared machine whose speed drifts (other processes, frequency, a neighbour on the host)
//! the two medians can come from different machines, and the share moved from 6% to 21%
//! between two quiet runs. Here the same two servers, client and pipe as in `mcp.rs`
//! (`mcp_fixture.rs`) are timed in alternating rounds: each round times a batch of plain
//! calls and a batch of guarded calls back to back (the order alternates from round to
//! round), and gives one share, `(guarded − plain) / guarded`. The report is the median
//! plain and guarded call and the median and quartiles of the rounds' shares, for the
//! 2-worker runtime (as an rmcp server runs) and for a current-thread runtime (client,
//! pipe and server take turns on one thread: the guard's own work, with nothing hidden
//! by a second core).
//!
//! The memory trail is emptied at the start of each guarded batch, inside its timing (as
//! in `mcp.rs`).
//!
//! `GUARDRAIL_BENCH_ROUNDS` sets the rounds (default 41), `GUARDRAIL_BENCH_BATCH` the calls
//! per batch (default 400).
//!
//! Run: `cargo bench -p guardrail-benches --bench mcp_paired`

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

#[path = "mcp_fixture.rs"]
mod fixture;

use std::hint::black_box;
use std::time::{Duration, Instant};

use fixture::{Plain, connect, setup, timed};
use guardrail_mcp::GuardedServer;
use rmcp::model::CallToolRequestParams;
use serde_json::json;

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|s| s.parse().ok())
        .filter(|&n| n > 0)
        .unwrap_or(default)
}

/// The value at quantile `q` (0..=1) of `v`, sorted in place.
fn quantile(v: &mut [f64], q: f64) -> f64 {
    v.sort_by(f64::total_cmp);
    let at = ((v.len() - 1) as f64 * q).round() as usize;
    v[at]
}

fn micros(d: Duration, calls: usize) -> f64 {
    d.as_secs_f64() * 1e6 / calls as f64
}

fn main() {
    if std::env::args().any(|a| a == "--list" || a == "--test") {
        return; // `cargo bench --no-run` / `cargo test --benches` probes
    }
    let rounds = env_or("GUARDRAIL_BENCH_ROUNDS", 41);
    let batch = env_or("GUARDRAIL_BENCH_BATCH", 400);
    let (g, sink, catalogue, config) = setup();
    let args = json!({"patient_id": "p-1"}).as_object().cloned().unwrap();
    let request = CallToolRequestParams::new("read_chart").with_arguments(args);

    println!(
        "\n| runtime | plain µs (median) | guarded µs (median) | guard's share: median (quartiles) | rounds × calls |"
    );
    println!("|---|---:|---:|---:|---:|");
    for (label, rt) in [
        (
            "2 workers",
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap(),
        ),
        (
            "current thread",
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap(),
        ),
    ] {
        let guarded = rt.block_on(connect(GuardedServer::new(
            g.clone(),
            catalogue.clone(),
            config.clone(),
        )));
        let plain = rt.block_on(connect(Plain));
        let time_plain = |n: usize| {
            let start = Instant::now();
            for _ in 0..n {
                black_box(rt.block_on(plain.call_tool(request.clone())).unwrap());
            }
            start.elapsed()
        };
        let time_guarded = |n: usize| {
            timed(&sink, n as u64, || {
                black_box(rt.block_on(guarded.call_tool(request.clone())).unwrap());
            })
        };
        // Warm-up: caches, allocator, both connections.
        time_plain(4 * batch);
        time_guarded(4 * batch);

        let (mut p, mut gd, mut share) = (Vec::new(), Vec::new(), Vec::new());
        for round in 0..rounds {
            let (tp, tg) = if round % 2 == 0 {
                let tp = time_plain(batch);
                (tp, time_guarded(batch))
            } else {
                let tg = time_guarded(batch);
                (time_plain(batch), tg)
            };
            let (up, ug) = (micros(tp, batch), micros(tg, batch));
            p.push(up);
            gd.push(ug);
            share.push((ug - up) / ug);
        }
        let (q1, med, q3) = (
            quantile(&mut share, 0.25),
            quantile(&mut share, 0.5),
            quantile(&mut share, 0.75),
        );
        println!(
            "| {label} | {:.1} | {:.1} | {:.1}% ({:.1}–{:.1}%) | {rounds} × {batch} |",
            quantile(&mut p, 0.5),
            quantile(&mut gd, 0.5),
            100.0 * med,
            100.0 * q1,
            100.0 * q3,
        );
        rt.block_on(async {
            let _ = guarded.cancel().await;
            let _ = plain.cancel().await;
        });
    }
}
