//! Crash safety of the file sink in `Fsync` mode: no acknowledged event is ever lost.
//!
//! * `sigkill_at_random_moments_loses_no_acknowledged_event`: a child process (this test
//!   binary, re-executed in the child role) appends from two threads and prints every seq
//!   whose `append` returned `Ok`; the parent kills it with SIGKILL at a random moment
//!   (during start-up and recovery as well as mid-append), 1,000 times, reusing each trail
//!   directory for many kills. After each kill the parent reopens the sink (recovery), checks
//!   that the trail verifies against its signed checkpoints and that every acknowledged event
//!   is at its seq with its content.
//! * `simulated_power_cuts_over_10000_seeds`: the same invariants against the crash-simulating
//!   disk, where a power cut keeps, drops, tears or garbles every unsynced write and may drop
//!   unsynced directory entries, also during recovery itself.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use guardrail_audit::io::Storage;
use guardrail_audit::io::sim::{SimStorage, XorShift};
use guardrail_audit::{
    AuditSink, CHECKPOINT_FILE, CheckpointOptions, CheckpointSigner, Durability, EventKind,
    FileSink, FileSinkOptions, MANIFEST_FILE, Manifest, Record, Timestamp, verify_trail,
    verify_trail_with,
};

const CHILD_DIR_ENV: &str = "GUARDRAIL_CRASH_CHILD_DIR";
const CHILD_RUN_ENV: &str = "GUARDRAIL_CRASH_CHILD_RUN";
const KILLS: u64 = 1000;
const KILLS_PER_DIR: u64 = 100;

fn signer() -> CheckpointSigner {
    CheckpointSigner::ed25519_from_seed(&[42; 32])
}

fn options() -> FileSinkOptions {
    FileSinkOptions {
        durability: Durability::Fsync,
        rotate_bytes: 8 * 1024,
        checkpoint: Some(CheckpointOptions {
            every_events: 16,
            every: Duration::from_millis(20),
            ..CheckpointOptions::new(signer())
        }),
        ..Default::default()
    }
}

fn record(token: &str) -> Record {
    let mut r = Record::new(EventKind::Decision);
    r.action = Some("clinic::read_chart".into());
    r.principal = Some("dr-grey".into());
    r.decision = Some("allow".into());
    r.with_detail("token", token)
}

/// The lines of a trail by seq, read through `storage` in manifest order.
fn lines_by_seq(storage: &dyn Storage, dir: &Path) -> Vec<String> {
    let manifest = Manifest::parse(&storage.read_all(&dir.join(MANIFEST_FILE)).unwrap()).unwrap();
    let mut out = Vec::new();
    for path in manifest.paths(dir) {
        if !storage.exists(&path) {
            continue;
        }
        let text = String::from_utf8(storage.read_all(&path).unwrap()).unwrap();
        out.extend(text.lines().map(str::to_owned));
    }
    out
}

/// Every acknowledged `(seq, token)` is in the trail at that seq.
fn assert_acknowledged_present(lines: &[String], acked: &BTreeMap<u64, String>, what: &str) {
    for (seq, token) in acked {
        let line = lines.get(*seq as usize).unwrap_or_else(|| {
            panic!(
                "{what}: acknowledged seq {seq} is missing (trail has {} events)",
                lines.len()
            )
        });
        assert!(
            line.starts_with(&format!("{{\"seq\":{seq},")),
            "{what}: line {seq} is not seq {seq}: {line}"
        );
        assert!(
            line.contains(&format!("\"token\":\"{token}\"")),
            "{what}: seq {seq} does not hold acknowledged event `{token}`: {line}"
        );
    }
}

/// The child role: append forever from two threads, print each acknowledged seq.
#[test]
fn crash_child_role() {
    let Some(dir) = std::env::var_os(CHILD_DIR_ENV) else {
        // Run directly (not as a child): one short, complete run of what the child does, so
        // this entry point is itself checked.
        let dir = tempfile::tempdir().unwrap();
        let sink = FileSink::open(dir.path(), options()).unwrap();
        let r = sink.append(record("direct-0")).unwrap();
        sink.close().unwrap();
        let cps = dir.path().join(CHECKPOINT_FILE);
        let report = verify_trail(
            &[dir.path()],
            Some((&cps, &signer().verifier())),
            &mut |_| {},
        )
        .unwrap();
        assert_eq!(
            (r.seq, report.events, report.last_checkpoint_seq),
            (0, 1, Some(0))
        );
        return;
    };
    let run = std::env::var(CHILD_RUN_ENV).unwrap_or_default();
    let sink = Arc::new(FileSink::open(PathBuf::from(dir), options()).unwrap());
    let out = Arc::new(Mutex::new(std::io::stdout()));
    let threads: Vec<_> = (0..2)
        .map(|t| {
            let sink = sink.clone();
            let out = out.clone();
            let run = run.clone();
            std::thread::spawn(move || {
                for i in 0..100_000u64 {
                    let token = format!("{run}-{t}-{i}");
                    let receipt = sink.append(record(&token)).unwrap();
                    // Printed only after `append` returned Ok: this event is acknowledged.
                    use std::io::Write;
                    let mut out = out.lock().unwrap();
                    writeln!(out, "ACK {} {token}", receipt.seq).unwrap();
                    out.flush().unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
}

#[test]
fn sigkill_at_random_moments_loses_no_acknowledged_event() {
    let exe = std::env::current_exe().unwrap();
    let mut rng = XorShift::new(0x5eed);
    let started = Instant::now();
    let mut dir = tempfile::tempdir().unwrap();
    let mut acked: BTreeMap<u64, String> = BTreeMap::new();
    let (mut total_acked, mut recoveries, mut killed_before_first_ack) = (0u64, 0u64, 0u64);
    for kill in 0..KILLS {
        if kill % KILLS_PER_DIR == 0 && kill > 0 {
            dir = tempfile::tempdir().unwrap();
            acked.clear();
        }
        let mut child = Command::new(&exe)
            .args([
                "--exact",
                "crash_child_role",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_DIR_ENV, dir.path())
            .env(CHILD_RUN_ENV, kill.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        // Kill anywhere from process start-up (mid-recovery) to well into the appends.
        std::thread::sleep(Duration::from_micros(rng.below(30_000)));
        child.kill().unwrap();
        child.wait().unwrap();
        let mut stdout = String::new();
        child
            .stdout
            .take()
            .unwrap()
            .read_to_string(&mut stdout)
            .unwrap();
        let mut acked_now = 0;
        for line in stdout.lines() {
            let mut parts = line.split(' ');
            if parts.next() != Some("ACK") {
                continue;
            }
            let (Some(seq), Some(token)) = (parts.next(), parts.next()) else {
                continue; // a line cut by the kill was never fully reported
            };
            let Ok(seq) = seq.parse::<u64>() else {
                continue;
            };
            let previous = acked.insert(seq, token.to_owned());
            assert!(previous.is_none(), "seq {seq} acknowledged twice");
            acked_now += 1;
        }
        total_acked += acked_now;
        if acked_now == 0 {
            killed_before_first_ack += 1;
        }

        // A SIGKILL cannot tear a write (the kernel finishes the write call), only a power cut
        // can. Every tenth kill the parent leaves the torn tail a power cut would, so the
        // real-file-system truncation path runs too (the simulated disk below covers the
        // power-cut cases exhaustively).
        let mut injected: Option<u64> = None;
        if kill % 10 == 5 {
            let manifest =
                Manifest::parse(&std::fs::read(dir.path().join(MANIFEST_FILE)).unwrap()).unwrap();
            let last = manifest.paths(dir.path()).pop().unwrap();
            let torn = b"{\"seq\":99999,\"prev\":\"00000000000000000000000000000000";
            let cut = 1 + rng.below(torn.len() as u64 - 1) as usize;
            // A buffered writer may have been killed between two write calls of one line, so
            // the file can already end in a partial line; recovery cuts that and the injection.
            let existing = std::fs::read(&last).unwrap_or_default();
            let partial = existing.len()
                - existing
                    .iter()
                    .rposition(|b| *b == b'\n')
                    .map_or(0, |i| i + 1);
            let mut f = std::fs::OpenOptions::new()
                .append(true)
                .create(true)
                .open(&last)
                .unwrap();
            std::io::Write::write_all(&mut f, &torn[..cut]).unwrap();
            injected = Some((partial + cut) as u64);
        }

        // Reopen: recovers a torn tail (and records it), then close (final checkpoint).
        let sink = FileSink::open(dir.path(), options())
            .unwrap_or_else(|e| panic!("kill {kill}: reopen failed: {e}"));
        recoveries += u64::from(sink.last_recovery().is_some());
        if let Some(cut) = injected {
            let r = sink
                .last_recovery()
                .expect("the torn tail was not recovered");
            assert_eq!(r.bytes_cut, cut, "kill {kill}");
        }
        sink.close().unwrap();
        let cps = dir.path().join(CHECKPOINT_FILE);
        verify_trail(
            &[dir.path()],
            Some((&cps, &signer().verifier())),
            &mut |_| {},
        )
        .unwrap_or_else(|e| panic!("kill {kill}: trail does not verify: {e}"));
        let lines = lines_by_seq(&guardrail_audit::io::StdStorage, dir.path());
        assert_acknowledged_present(&lines, &acked, &format!("kill {kill}"));
    }
    println!(
        "sigkill: {KILLS} kills, {total_acked} acknowledged events, 0 lost, {recoveries} torn tails \
         recovered ({} injected, the others left by a kill interrupting a write), {killed_before_first_ack} kills before the first ack, {:.1?}",
        KILLS / 10,
        started.elapsed()
    );
    assert!(
        total_acked > KILLS,
        "too few appends between kills to mean anything"
    );
    assert!(
        recoveries >= KILLS / 10,
        "the torn tails were not all recovered: {recoveries}"
    );
}

/// One seed: run, cut the power at a random operation, recover (maybe cut again), check.
fn simulated_run(seed: u64, counters: &mut SimCounters) {
    let mut rng = XorShift::new(seed);
    let dir = Path::new("/audit");
    let disk = SimStorage::new();
    let storage: Arc<dyn Storage> = Arc::new(disk.clone());
    let buffered = seed % 4 == 3;
    let mut opts = FileSinkOptions {
        durability: if buffered {
            Durability::Buffered
        } else {
            Durability::Fsync
        },
        rotate_bytes: 400 + rng.below(1200),
        sync_interval: Duration::from_secs(3600),
        checkpoint: Some(CheckpointOptions {
            every_events: 1 + rng.below(6),
            every: Duration::ZERO,
            ..CheckpointOptions::new(hmac_signer())
        }),
        ..Default::default()
    };
    opts.name = "sim".into();
    // Durable events, by seq: acknowledged in Fsync mode; flushed in Buffered mode.
    let mut acked: BTreeMap<u64, String> = BTreeMap::new();
    let rounds = 1 + rng.below(3);
    let mut disk = disk;
    let mut storage = storage;
    for round in 0..rounds {
        // The power fails after a random number of operations (maybe never in this round).
        let budget = rng.below(160);
        disk.crash_after(budget);
        if let Ok(sink) = FileSink::open_with(storage.clone(), dir, opts.clone()) {
            let mut pending: Vec<(u64, String)> = Vec::new();
            for i in 0..rng.below(14) {
                let token = format!("s{seed}-r{round}-{i}");
                match sink.append(record_at(&token, i)) {
                    Ok(r) if buffered => pending.push((r.seq, token)),
                    Ok(r) => {
                        acked.insert(r.seq, token);
                    }
                    Err(_) => break,
                }
                if buffered && rng.chance(1, 3) {
                    if sink.flush().is_err() {
                        break;
                    }
                    acked.extend(pending.drain(..));
                }
            }
            // Power cut now (or at the budget, whichever came first): snapshot before the
            // sink's close could write anything more.
            let after = disk.crash(seed.wrapping_mul(31).wrapping_add(round));
            drop(sink);
            disk = after;
        } else {
            counters.failed_opens += 1;
            disk = disk.crash(seed ^ round);
        }
        storage = Arc::new(disk.clone());
    }
    // Final recovery on a healthy disk must succeed and give a sound trail.
    let sink = FileSink::open_with(storage.clone(), dir, opts.clone())
        .unwrap_or_else(|e| panic!("seed {seed}: recovery failed: {e}"));
    counters.recoveries += u64::from(sink.last_recovery().is_some());
    let extra = sink.append(record_at("after", 0)).unwrap();
    sink.close().unwrap();
    let cps = dir.join(CHECKPOINT_FILE);
    let report = verify_trail_with(
        &*storage,
        &[dir],
        Some((&cps, &hmac_signer().verifier())),
        &mut |_| {},
    )
    .unwrap_or_else(|e| panic!("seed {seed}: trail does not verify after recovery: {e}"));
    assert_eq!(report.head.next_seq, extra.seq + 1, "seed {seed}");
    let lines = lines_by_seq(&*storage, dir);
    assert_acknowledged_present(&lines, &acked, &format!("seed {seed}"));
    counters.acked += acked.len() as u64;
    counters.events += report.events;
}

fn hmac_signer() -> CheckpointSigner {
    CheckpointSigner::hmac_sha256(b"simulated checkpoint key").unwrap()
}

fn record_at(token: &str, i: u64) -> Record {
    Record::at(
        EventKind::Decision,
        Timestamp(1_800_000_000_000_000_000 + i),
    )
    .with_detail("token", token)
}

#[derive(Default, Debug)]
struct SimCounters {
    acked: u64,
    events: u64,
    recoveries: u64,
    failed_opens: u64,
}

#[test]
fn simulated_power_cuts_over_10000_seeds() {
    let started = Instant::now();
    let mut c = SimCounters::default();
    for seed in 0..10_000 {
        simulated_run(seed, &mut c);
    }
    println!(
        "simulated power cuts: 10000 seeds, {} durable events checked, 0 lost, {} trails recovered \
         from a torn tail, {} opens cut short by a power failure, {} events verified, {:.1?}",
        c.acked,
        c.recoveries,
        c.failed_opens,
        c.events,
        started.elapsed()
    );
    assert!(c.recoveries > 100, "too few torn tails: {c:?}");
    assert!(
        c.failed_opens > 100,
        "too few crashes during open/recovery: {c:?}"
    );
    assert!(c.acked > 10_000, "too few durable events: {c:?}");
}
