//! Unit tests of the file sink: the known-answer vector of the line format, and behaviour
//! on a simulated disk (the crash, tamper, concurrency and fault suites are in `tests/`).

use std::path::Path;
use std::sync::Arc;

use super::*;
use crate::checkpoint::{CheckpointOptions, CheckpointSigner};
use crate::io::Storage;
use crate::io::sim::{FaultKind, Faults, SimStorage};
use crate::trail::verify_trail_with;
use crate::{GENESIS, Outcome};

/// The known-answer record: every kind of member the encoding has.
fn kat_record() -> Record {
    let mut r = Record::at(EventKind::Decision, Timestamp(1_800_000_000_123_456_789));
    r.request_id = Some("req-1".into());
    r.action = Some("clinic::read_chart".into());
    r.action_kind = Some("read".into());
    r.resource = Some("patient_record".into());
    r.principal = Some("dr-grey".into());
    r.roles = Arc::from(vec![Text::from("provider")]);
    r.endpoint = Some("provider".into());
    r.purpose = Some("treatment".into());
    r.subject = Some("hmac-sha256:00".into());
    r.count = Some(1);
    r.decision = Some("allow".into());
    r.rule = Some("providers-treat".into());
    r.break_glass = true;
    r.outcome = Some(Outcome::Ok);
    r.with_detail("k", "v \"quoted\" ü")
}

use crate::event::Text;

const KAT_LINE: &str = r#"{"seq":0,"prev":"0000000000000000000000000000000000000000000000000000000000000000","time":"2027-01-15T08:00:00.123456789Z","kind":"decision","request_id":"req-1","action":"clinic::read_chart","action_kind":"read","resource":"patient_record","principal":"dr-grey","roles":["provider"],"endpoint":"provider","purpose":"treatment","subject":"hmac-sha256:00","count":1,"decision":"allow","rule":"providers-treat","break_glass":true,"outcome":"ok","detail":{"k":"v \"quoted\" ü"},"hash":"455ad25dc1be0d5aaa181d8221b6092f5b1c359841d9794f0f866636eb9e3cf6"}"#;
const KAT_HASH: &str = "455ad25dc1be0d5aaa181d8221b6092f5b1c359841d9794f0f866636eb9e3cf6";

#[test]
fn known_answer_event_line_and_hash() {
    // A change of the line format or of the hashed bytes must fail here first; update
    // docs/audit-format.md together with these constants (and bump the format version).
    let event = AuditEvent::seal(0, GENESIS, kat_record()).unwrap();
    assert_eq!(event.line(), KAT_LINE);
    assert_eq!(event.hash.to_hex(), KAT_HASH);
    // The hash is SHA-256(0x00 || line without the hash member, closed with `}`).
    use sha2::{Digest as _, Sha256};
    let without = &KAT_LINE[..KAT_LINE.len() - crate::event::HASH_SUFFIX_LEN];
    let mut h = Sha256::new();
    h.update([0u8]);
    h.update(without.as_bytes());
    h.update(b"}");
    assert_eq!(hex::encode(h.finalize()), KAT_HASH);
}

fn sim() -> (Arc<SimStorage>, Arc<dyn Storage>) {
    let disk = Arc::new(SimStorage::new());
    let storage: Arc<dyn Storage> = disk.clone();
    (disk, storage)
}

/// Makes the fsync numbered `at` (counting from the disk's first) fail with EIO.
fn fail_fsync(disk: &SimStorage, at: u64) {
    disk.set_faults(Faults {
        sync_at: Some(at),
        kind: Some(FaultKind::Eio),
        ..Faults::default()
    });
}

fn dir() -> &'static Path {
    Path::new("/trail")
}

fn decision(i: u64) -> Record {
    Record::at(EventKind::Decision, Timestamp(i)).with_detail("i", i.to_string())
}

fn verify(storage: &dyn Storage) -> crate::TrailReport {
    verify_trail_with(storage, &[dir()], None, &mut |_| {}).unwrap()
}

#[test]
fn appends_survive_a_reopen_and_the_chain_continues() {
    let (_, storage) = sim();
    let sink = FileSink::open_with(storage.clone(), dir(), FileSinkOptions::default()).unwrap();
    for i in 0..5 {
        assert_eq!(sink.append(decision(i)).unwrap().seq, i);
    }
    sink.close().unwrap();
    let sink = FileSink::open_with(storage.clone(), dir(), FileSinkOptions::default()).unwrap();
    assert!(sink.last_recovery().is_none());
    assert_eq!(sink.append(decision(5)).unwrap().seq, 5);
    drop(sink);
    assert_eq!(verify(&*storage).events, 6);
}

#[test]
fn a_torn_tail_is_cut_and_recorded_in_the_chain() {
    let (disk, storage) = sim();
    let sink = FileSink::open_with(storage.clone(), dir(), FileSinkOptions::default()).unwrap();
    for i in 0..3 {
        sink.append(decision(i)).unwrap();
    }
    drop(sink);
    let path = dir().join(file_name(1));
    let mut bytes = storage.read_all(&path).unwrap();
    let good = bytes.len() as u64;
    bytes.extend_from_slice(b"{\"seq\":3,\"prev\":\"ab"); // a torn write
    disk.replace_durably(&path, bytes).unwrap();
    assert!(verify_trail_with(&*storage, &[dir()], None, &mut |_| {}).is_err());

    let sink = FileSink::open_with(storage.clone(), dir(), FileSinkOptions::default()).unwrap();
    let r = sink.last_recovery().unwrap();
    assert_eq!(
        (r.line, r.offset, r.bytes_cut, r.event_seq),
        (4, good, 19, 3)
    );
    drop(sink);
    let text = String::from_utf8(storage.read_all(&path).unwrap()).unwrap();
    let last = crate::AuditEvent::parse(text.lines().last().unwrap()).unwrap();
    assert_eq!(last.record.kind, EventKind::Recovered);
    assert_eq!(last.record.detail["bytes_cut"], "19");
    assert_eq!(last.record.detail["line"], "4");
    assert_eq!(verify(&*storage).events, 4);
}

#[test]
fn rotation_continues_the_chain_and_lists_files_in_the_manifest() {
    let (_, storage) = sim();
    let options = FileSinkOptions {
        rotate_bytes: 600,
        ..Default::default()
    };
    let sink = FileSink::open_with(storage.clone(), dir(), options.clone()).unwrap();
    for i in 0..20 {
        sink.append(decision(i)).unwrap();
    }
    drop(sink);
    let manifest = Manifest::read(&*storage, dir()).unwrap().unwrap();
    assert!(manifest.files.len() >= 4, "{manifest:?}");
    let report = verify(&*storage);
    assert_eq!(report.files.len(), manifest.files.len());
    // 20 decisions plus one `rotated` event closing every file but the last.
    assert_eq!(report.events, 20 + manifest.files.len() as u64 - 1);
    for (entry, file) in manifest.files.iter().zip(&report.files) {
        assert_eq!(entry.first_seq, file.first_seq);
    }
    // Reopening appends to the last file.
    let sink = FileSink::open_with(storage.clone(), dir(), options).unwrap();
    sink.append(decision(99)).unwrap();
    drop(sink);
    assert_eq!(verify(&*storage).events, report.events + 1);
}

#[test]
fn a_failed_fsync_poisons_until_reopen() {
    let (disk, storage) = sim();
    let sink = FileSink::open_with(storage.clone(), dir(), FileSinkOptions::default()).unwrap();
    sink.append(decision(0)).unwrap();
    fail_fsync(&disk, disk.stats().syncs);
    assert!(sink.append(decision(1)).is_err());
    // The next fsync would "succeed"; the sink must not believe it.
    let e = sink.append(decision(2)).unwrap_err();
    assert!(matches!(e, AuditError::Poisoned { .. }), "{e}");
    disk.clear_faults();
    assert!(
        sink.append(decision(3)).is_err(),
        "still poisoned until reopened"
    );
    sink.reopen().unwrap();
    let r = sink.append(decision(4)).unwrap();
    drop(sink);
    let report = verify(&*storage);
    assert_eq!(report.head.next_seq, r.seq + 1);
}

#[test]
fn buffered_flush_makes_events_durable_and_checkpoints_cover_only_synced_events() {
    let (disk, storage) = sim();
    let signer = CheckpointSigner::hmac_sha256(b"0123456789abcdef").unwrap();
    let options = FileSinkOptions {
        durability: Durability::Buffered,
        sync_interval: std::time::Duration::from_secs(3600),
        checkpoint: Some(CheckpointOptions {
            every_events: 1,
            ..CheckpointOptions::new(signer.clone())
        }),
        ..Default::default()
    };
    // A slow checkpoint write: were `flush` answered before the checkpoint it made due,
    // the power cut below would always come first.
    disk.delay_writes_to(CHECKPOINT_FILE, std::time::Duration::from_millis(50));
    let sink = FileSink::open_with(storage.clone(), dir(), options).unwrap();
    for i in 0..10 {
        sink.append(decision(i)).unwrap();
    }
    sink.flush().unwrap();
    let after = disk.crash(1);
    let report = verify_trail_with(
        &after,
        &[dir()],
        Some((&dir().join(CHECKPOINT_FILE), &signer.verifier())),
        &mut |_| {},
    )
    .unwrap();
    assert_eq!(report.events, 10);
    assert_eq!(report.last_checkpoint_seq, Some(9));
    drop(sink);
}

#[test]
fn an_event_longer_than_the_line_limit_is_refused_without_advancing_the_chain() {
    let (_, storage) = sim();
    let sink = FileSink::open_with(storage.clone(), dir(), FileSinkOptions::default()).unwrap();
    let huge = decision(0).with_detail("big", "x".repeat(MAX_LINE_BYTES));
    assert!(matches!(sink.append(huge), Err(AuditError::Encode(_))));
    assert_eq!(sink.append(decision(1)).unwrap().seq, 0);
}

#[test]
fn an_acknowledged_fsync_append_survives_any_crash() {
    // Each append is acknowledged only once its own event is fsynced: whatever a power cut
    // keeps of the unsynced rest, every acknowledged event is in the recovered trail.
    for seed in 0..64 {
        let (disk, storage) = sim();
        let sink = FileSink::open_with(storage.clone(), dir(), FileSinkOptions::default()).unwrap();
        let acked: Vec<u64> = (0..3)
            .map(|i| sink.append(decision(i)).unwrap().seq)
            .collect();
        let after = disk.crash(seed);
        let report = verify_trail_with(&after, &[dir()], None, &mut |_| {}).unwrap();
        assert!(
            report.events > *acked.last().unwrap(),
            "seed {seed}: {} events survived, {acked:?} acknowledged",
            report.events
        );
        drop(sink);
    }
}

#[test]
fn an_append_is_acknowledged_once_durable_before_the_checkpoint_is_written() {
    // The checkpoint after a group is signed and fsynced after its appenders are released:
    // a checkpoint that then fails poisons the sink for later appends, but the event that
    // was already durable is acknowledged (and survives a crash).
    let (disk, storage) = sim();
    let signer = CheckpointSigner::hmac_sha256(b"0123456789abcdef").unwrap();
    let options = FileSinkOptions {
        checkpoint: Some(CheckpointOptions {
            every_events: 1,
            ..CheckpointOptions::new(signer)
        }),
        ..Default::default()
    };
    let sink = FileSink::open_with(storage.clone(), dir(), options).unwrap();
    let base = disk.stats().syncs;
    sink.append(decision(0)).unwrap();
    // The append returns before its checkpoint is fsynced: wait for that fsync, so the
    // fault below lands where it is meant to.
    let until = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while disk.stats().syncs < base + 2 {
        assert!(
            std::time::Instant::now() < until,
            "the first checkpoint was never fsynced"
        );
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    // The next fsync is the trail's (it succeeds), the one after it the checkpoint's.
    fail_fsync(&disk, disk.stats().syncs + 1);
    let r = sink.append(decision(1)).unwrap();
    // The checkpoint's failure poisons the sink as soon as the writer has seen it.
    let e = sink.append(decision(2)).unwrap_err();
    assert!(matches!(e, AuditError::Poisoned { .. }), "{e}");
    let after = disk.crash(7);
    let report = verify_trail_with(&after, &[dir()], None, &mut |_| {}).unwrap();
    assert!(report.events > r.seq, "{} events", report.events);
    drop(sink);
}

/// Runs `fut` on a current-thread runtime, failing instead of hanging if a waker is lost.
fn block_on_one_thread<F: std::future::Future>(fut: F) -> F::Output {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    rt.block_on(async {
        tokio::time::timeout(std::time::Duration::from_secs(30), fut)
            .await
            .expect("a submitted event was never woken")
    })
}

#[test]
fn submitted_events_are_awaited_on_one_thread_and_share_fsyncs() {
    let (disk, storage) = sim();
    let sink =
        Arc::new(FileSink::open_with(storage.clone(), dir(), FileSinkOptions::default()).unwrap());
    let syncs_before = disk.stats().syncs;
    // 64 tasks on one thread: each queues its event and awaits it. A blocking wait would
    // hold the only thread, so the tasks could not even queue their events together.
    let seqs = block_on_one_thread(async {
        let tasks: Vec<_> = (0..64)
            .map(|i| {
                let sink = sink.clone();
                tokio::spawn(async move {
                    let submitted = sink.submit(decision(i)).unwrap();
                    submitted
                        .pending
                        .expect("an fsync sink queues")
                        .await
                        .unwrap();
                    submitted.receipt.seq
                })
            })
            .collect();
        let mut seqs = Vec::new();
        for t in tasks {
            seqs.push(t.await.unwrap());
        }
        seqs
    });
    seqs.iter().for_each(|s| assert!(*s < 64));
    let fsyncs = disk.stats().syncs - syncs_before;
    assert!(fsyncs < 64, "{fsyncs} fsyncs for 64 events awaited at once");
    sink.close().unwrap();
    assert_eq!(verify(&*storage).events, 64);
}

#[test]
fn an_awaited_event_whose_fsync_fails_is_an_error() {
    let (disk, storage) = sim();
    let sink = FileSink::open_with(storage.clone(), dir(), FileSinkOptions::default()).unwrap();
    sink.append(decision(0)).unwrap();
    fail_fsync(&disk, disk.stats().syncs);
    let submitted = sink.submit(decision(1)).unwrap();
    let e = block_on_one_thread(submitted.pending.expect("an fsync sink queues")).unwrap_err();
    assert!(matches!(e, AuditError::Poisoned { .. }), "{e}");
}

/// Many threads waiting on `Fsync` appends at once (so they yield before sleeping) each
/// learn their own event's fate: durable, or the fsync's failure; none hangs, and the count
/// of waiting threads is back to zero after both.
#[test]
fn waiting_threads_that_yield_still_learn_each_fate() {
    const THREADS: u64 = 16;
    const EACH: u64 = 25;
    let (disk, storage) = sim();
    // Slow fsyncs: the threads wait together, each sees others waiting.
    disk.delay_writes_to(
        &manifest::file_name(1),
        std::time::Duration::from_micros(200),
    );
    let sink = FileSink::open_with(storage.clone(), dir(), FileSinkOptions::default()).unwrap();
    let durable: Vec<u64> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..THREADS)
            .map(|t| {
                let sink = &sink;
                s.spawn(move || {
                    (0..EACH)
                        .map(|i| sink.append(decision(t * EACH + i)).unwrap().seq)
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    });
    assert_eq!(durable.len() as u64, THREADS * EACH);
    assert_eq!(sink.shared.waiting.load(Ordering::Relaxed), 0);

    fail_fsync(&disk, disk.stats().syncs);
    let failed = std::thread::scope(|s| {
        let handles: Vec<_> = (0..THREADS)
            .map(|t| {
                let sink = &sink;
                s.spawn(move || sink.append(decision(1_000 + t)).is_err())
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap())
            .filter(|&failed| failed)
            .count()
    });
    assert_eq!(
        failed as u64, THREADS,
        "an event the failed fsync did not cover was acknowledged"
    );
    assert_eq!(sink.shared.waiting.load(Ordering::Relaxed), 0);
    drop(sink);
    disk.clear_faults();
    let report = verify(&*storage);
    let last = durable.iter().max().copied().unwrap();
    assert!(report.head.next_seq > last, "{report:?}");
}
