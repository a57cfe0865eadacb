//! Audit trail benchmarks: file sink appends and trail verification.
//!
//! - `audit/append_buffered`: one `append` in `Buffered` mode (sealed, queued; the writer
//!   thread writes and fsyncs in the background).
//! - `audit/append_fsync_1_writer`: one `append` in `Fsync` mode from one thread: each event
//!   waits for its own write + fsync.
//! - `audit/append_fsync_8_writers`, `audit/append_fsync_64_writers`: the same with 8 and 64
//!   threads appending concurrently; group commit gathers their events into one write +
//!   fsync (reported per append, so the throughput line is durable events/s). Each thread
//!   has one append in flight, so `writers / fsync latency` bounds these: on a disk whose
//!   fsync takes 2 ms, 64 writers cannot exceed 32,000 events/s whatever the sink does.
//! - `audit/append_fsync_64_writers_checkpointed`: the same with a signed checkpoint every 16
//!   events, as clinic-server's trail: each group then also signs and fsyncs a checkpoint,
//!   which the appenders do not wait for (they are released once their events are durable).
//! - `audit/append_fsync_64_tasks`, `audit/append_fsync_512_tasks`: the writers are tokio
//!   tasks on a 2-worker runtime, each looping `submit` + awaiting its `Pending`, as an async
//!   service's guarded calls do: no thread is held while an event waits for its fsync.
//! - `audit/verify_trail` vs `audit/sha256_raw`: verifying a 40,000-event trail from its files
//!   (read, split, parse the fixed members, hash, link) against SHA-256 alone over the same
//!   bytes already in memory; both reported in bytes/s.
//!
//! The trails live in `CARGO_TARGET_TMPDIR` (under the workspace's `target/`), i.e. on the
//! same disk as the project, since fsync latency is a property of that disk;
//! `GUARDRAIL_BENCH_AUDIT_DIR` puts them elsewhere (a tmpfs such as `/dev/shm`, where fsync
//! costs nothing, measures the sink's own ceiling: locking, hashing, wake-ups).
//!
//! Run: `cargo bench -p guardrail-benches --bench audit`

use std::hint::black_box;
use std::path::Path;
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use guardrail_audit::{
    AuditSink, CheckpointOptions, CheckpointSigner, Durability, EventKind, FileSink,
    FileSinkOptions, MANIFEST_FILE, Manifest, Record, verify_trail,
};
use sha2::{Digest as _, Sha256};

fn record() -> Record {
    let mut r = Record::new(EventKind::Decision);
    r.request_id = Some("0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0".into());
    r.action = Some("clinic::update_diagnosis".into());
    r.action_kind = Some("update".into());
    r.resource = Some("patient_record".into());
    r.principal = Some("dr-grey".into());
    r.roles = Arc::from(vec!["provider".into()]);
    r.endpoint = Some("provider".into());
    r.purpose = Some("treatment".into());
    r.subject =
        Some("hmac-sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08".into());
    r.decision = Some("allow".into());
    r.rule = Some("providers-treat".into());
    r.policy_version = Some("2026-11-01".into());
    r
}

fn scratch() -> tempfile::TempDir {
    let base = std::env::var_os("GUARDRAIL_BENCH_AUDIT_DIR").map_or_else(
        || env!("CARGO_TARGET_TMPDIR").into(),
        std::path::PathBuf::from,
    );
    tempfile::tempdir_in(base).expect("a scratch directory")
}

fn open(dir: &Path, durability: Durability) -> FileSink {
    FileSink::open(
        dir,
        FileSinkOptions {
            durability,
            ..Default::default()
        },
    )
    .expect("the sink opens")
}

/// `writers` threads appending concurrently, `iters` appends in all; returns the time from
/// the moment all threads are ready (spawning 64 threads is not the sink's cost) until the
/// last append returned.
fn concurrent_appends(sink: &FileSink, writers: u64, iters: u64) -> Duration {
    let ready = Barrier::new(usize::try_from(writers).expect("few writers") + 1);
    std::thread::scope(|s| {
        for t in 0..writers {
            let n = iters / writers + u64::from(t < iters % writers);
            let ready = &ready;
            s.spawn(move || {
                ready.wait();
                for _ in 0..n {
                    black_box(sink.append(record()).expect("append"));
                }
            });
        }
        ready.wait();
        Instant::now()
    })
    .elapsed()
}

/// `iters` events submitted and awaited by `tasks` tasks at once; the time until all are durable.
async fn concurrent_submits(sink: &Arc<FileSink>, tasks: u64, iters: u64) -> Duration {
    let start = Instant::now();
    let handles: Vec<_> = (0..tasks)
        .map(|t| {
            let n = iters / tasks + u64::from(t < iters % tasks);
            let sink = sink.clone();
            tokio::spawn(async move {
                for _ in 0..n {
                    let submitted = sink.submit(record()).expect("submit");
                    if let Some(pending) = submitted.pending {
                        pending.await.expect("durable");
                    }
                }
            })
        })
        .collect();
    for h in handles {
        h.await.expect("the task ends");
    }
    start.elapsed()
}

fn appends(c: &mut Criterion) {
    let mut g = c.benchmark_group("audit");
    g.throughput(Throughput::Elements(1));

    let dir = scratch();
    let sink = open(dir.path(), Durability::Buffered);
    g.bench_function("append_buffered", |b| {
        b.iter(|| black_box(sink.append(record()).expect("append")))
    });
    sink.close().expect("close");

    let dir = scratch();
    let sink = open(dir.path(), Durability::Fsync);
    g.bench_function("append_fsync_1_writer", |b| {
        b.iter(|| black_box(sink.append(record()).expect("append")))
    });
    drop(sink);

    for writers in [8u64, 64] {
        let dir = scratch();
        let sink = open(dir.path(), Durability::Fsync);
        g.bench_function(format!("append_fsync_{writers}_writers"), |b| {
            b.iter_custom(|iters| concurrent_appends(&sink, writers, iters))
        });
    }

    // The same, with the writers as tasks on a 2-worker tokio runtime that await their
    // events' durability (`submit` + `Pending`): how an async service's guarded calls wait.
    let workers = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .expect("a runtime");
    for tasks in [64u64, 512] {
        let dir = scratch();
        let sink = Arc::new(open(dir.path(), Durability::Fsync));
        g.bench_function(format!("append_fsync_{tasks}_tasks"), |b| {
            b.iter_custom(|iters| workers.block_on(concurrent_submits(&sink, tasks, iters)))
        });
    }
    drop(workers);

    let dir = scratch();
    let mut checkpoint = CheckpointOptions::new(CheckpointSigner::ed25519_from_seed(&[7; 32]));
    checkpoint.every_events = 16;
    let sink = FileSink::open(
        dir.path(),
        FileSinkOptions {
            durability: Durability::Fsync,
            checkpoint: Some(checkpoint),
            ..Default::default()
        },
    )
    .expect("the sink opens");
    g.bench_function("append_fsync_64_writers_checkpointed", |b| {
        b.iter_custom(|iters| concurrent_appends(&sink, 64, iters))
    });
    g.finish();
}

fn verification(c: &mut Criterion) {
    let dir = scratch();
    let sink = open(dir.path(), Durability::Buffered);
    for _ in 0..40_000 {
        sink.append(record()).expect("append");
    }
    sink.close().expect("close");
    let manifest = Manifest::parse(&std::fs::read(dir.path().join(MANIFEST_FILE)).expect("read"))
        .expect("manifest");
    let mut bytes = Vec::new();
    for p in manifest.paths(dir.path()) {
        bytes.extend_from_slice(&std::fs::read(p).expect("read"));
    }

    let mut g = c.benchmark_group("audit");
    g.throughput(Throughput::Bytes(bytes.len() as u64));
    g.bench_function("verify_trail", |b| {
        b.iter(|| {
            let report = verify_trail(&[dir.path()], None, &mut |_| {}).expect("sound trail");
            assert_eq!(report.events, 40_000);
            black_box(report)
        })
    });
    g.bench_function("sha256_raw", |b| {
        b.iter(|| black_box(Sha256::digest(black_box(&bytes))))
    });
    g.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3))
        .sample_size(20)
}

criterion_group! {
    name = benches;
    config = config();
    targets = appends, verification
}
criterion_main!(benches);
