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
//! Three more servers, floors (`fixture::Floor`), are timed in the same rounds: each does
//! less than any conforming guard must (a decision event with the patient's keyed token
//! before the body, an outcome event with the result's digest after it; the second also
//! masks the chart as the rule says; the third also scans the result's strings), so their
//! shares, `(floor − plain) / floor`, are lower bounds for any guard's on this machine.
//! Each round times the five batches in an order that turns from round to round.
//!
//! The memory trails are emptied at the start of each guarded or floor batch, inside its
//! timing (as in `mcp.rs`).
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

use fixture::{Floor, FloorStep, Plain, connect, setup, timed};
use guardrail_mcp::GuardedServer;
use rmcp::model::CallToolRequestParams;
use serde_json::json;

/// A client connected to a server whose events go to its own memory trail, and that trail.
type Connected = (
    guardrail_audit::MemorySink,
    rmcp::service::RunningService<rmcp::RoleClient, rmcp::model::ClientConfig>,
);

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
        "\n| runtime | plain µs | floor µs | + masking µs | + scanning µs | guarded µs | floor's share | + masking | + scanning | guard's share | rounds × calls |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
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
        let floor_of = |step| -> Connected {
            let sink = guardrail_audit::MemorySink::new();
            let client = rt.block_on(connect(Floor::new(sink.clone(), step)));
            (sink, client)
        };
        let guarded = (sink.clone(), guarded);
        let floor = floor_of(FloorStep::Events);
        let masked = floor_of(FloorStep::Masked);
        let scrubbed = floor_of(FloorStep::Scrubbed);
        let time_plain = |n: usize| {
            let start = Instant::now();
            for _ in 0..n {
                black_box(rt.block_on(plain.call_tool(request.clone())).unwrap());
            }
            start.elapsed()
        };
        let time_on = |(sink, client): &Connected, n: usize| {
            timed(sink, n as u64, || {
                black_box(rt.block_on(client.call_tool(request.clone())).unwrap());
            })
        };
        let time_floor = |n| time_on(&floor, n);
        let time_masked = |n| time_on(&masked, n);
        let time_scrubbed = |n| time_on(&scrubbed, n);
        let time_guarded = |n| time_on(&guarded, n);
        let servers: [&dyn Fn(usize) -> Duration; 5] = [
            &time_plain,
            &time_floor,
            &time_masked,
            &time_scrubbed,
            &time_guarded,
        ];
        // Warm-up: caches, allocator, every connection.
        for time in servers {
            time(4 * batch);
        }

        // Per server, each round's µs per call; per floor and the guard, each round's share.
        let mut us: [Vec<f64>; 5] = Default::default();
        let mut shares: [Vec<f64>; 4] = Default::default();
        for round in 0..rounds {
            let mut t = [0.0; 5];
            for k in 0..5 {
                let which = (round + k) % 5;
                t[which] = micros(servers[which](batch), batch);
            }
            for (list, v) in us.iter_mut().zip(t) {
                list.push(v);
            }
            for (list, v) in shares.iter_mut().zip(&t[1..]) {
                list.push((v - t[0]) / v);
            }
        }
        let spread = |v: &mut Vec<f64>| {
            let (q1, med, q3) = (quantile(v, 0.25), quantile(v, 0.5), quantile(v, 0.75));
            format!("{:.1}% ({:.1}–{:.1}%)", 100.0 * med, 100.0 * q1, 100.0 * q3)
        };
        let [p, f, m, sc, gd] = &mut us;
        let [fs, ms, ss, gs] = &mut shares;
        println!(
            "| {label} | {:.1} | {:.1} | {:.1} | {:.1} | {:.1} | {} | {} | {} | {} | {rounds} × {batch} |",
            quantile(p, 0.5),
            quantile(f, 0.5),
            quantile(m, 0.5),
            quantile(sc, 0.5),
            quantile(gd, 0.5),
            spread(fs),
            spread(ms),
            spread(ss),
            spread(gs),
        );
        rt.block_on(async {
            let _ = plain.cancel().await;
            for (_, client) in [guarded, floor, masked, scrubbed] {
                let _ = client.cancel().await;
            }
        });
    }
}
