//! Many threads appending through one `FileSink` give one valid chain: every receipt is a
//! distinct seq, the seqs are contiguous, and each seq holds the event of the thread that got
//! that receipt.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use guardrail_audit::{
    AuditSink, Durability, EventKind, FileSink, FileSinkOptions, MANIFEST_FILE, Manifest, Record,
    verify_trail,
};

fn run(dir: &Path, durability: Durability, threads: u64, per_thread: u64, rotate_bytes: u64) {
    let sink = Arc::new(
        FileSink::open(
            dir,
            FileSinkOptions {
                durability,
                rotate_bytes,
                ..Default::default()
            },
        )
        .unwrap(),
    );
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let sink = sink.clone();
            std::thread::spawn(move || {
                (0..per_thread)
                    .map(|i| {
                        let r =
                            Record::new(EventKind::Decision).with_detail("who", format!("{t}/{i}"));
                        (sink.append(r).unwrap().seq, format!("{t}/{i}"))
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let mut receipts: BTreeMap<u64, String> = BTreeMap::new();
    for h in handles {
        for (seq, who) in h.join().unwrap() {
            assert!(
                receipts.insert(seq, who).is_none(),
                "seq {seq} handed out twice"
            );
        }
    }
    sink.close().unwrap();
    assert_eq!(receipts.len() as u64, threads * per_thread);

    let report = verify_trail(&[dir], None, &mut |_| {}).unwrap();
    let manifest = Manifest::parse(&std::fs::read(dir.join(MANIFEST_FILE)).unwrap()).unwrap();
    // Every event is either a receipt or a `rotated` event closing a file.
    assert_eq!(
        report.events,
        receipts.len() as u64 + manifest.files.len() as u64 - 1
    );
    assert_eq!(
        report.head.next_seq, report.events,
        "seqs are contiguous from 0"
    );
    let mut seq = 0u64;
    let mut rotated = 0;
    for path in manifest.paths(dir) {
        for line in std::fs::read_to_string(&path).unwrap().lines() {
            match receipts.get(&seq) {
                Some(who) => assert!(
                    line.contains(&format!("\"who\":\"{who}\"")),
                    "seq {seq} does not hold {who}'s event"
                ),
                None => {
                    assert!(line.contains("\"kind\":\"rotated\""), "seq {seq}: {line}");
                    rotated += 1;
                }
            }
            seq += 1;
        }
    }
    assert_eq!(rotated, manifest.files.len() - 1);
    println!(
        "{durability:?}: {threads} threads x {per_thread} appends -> {} events in {} files, one valid chain",
        report.events,
        manifest.files.len()
    );
}

#[test]
fn eight_threads_times_20000_buffered_appends_make_one_contiguous_chain() {
    let dir = tempfile::tempdir().unwrap();
    run(dir.path(), Durability::Buffered, 8, 20_000, 4 << 20);
}

#[test]
fn eight_threads_with_fsync_group_commit_make_one_contiguous_chain() {
    let dir = tempfile::tempdir().unwrap();
    run(dir.path(), Durability::Fsync, 8, 60, 8 * 1024);
}
