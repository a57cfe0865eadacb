//! The file sink and trail verification on the real file system: what is on disk when
//! `append` returns, rotation and reopen, Buffered mode, and bad input (malformed lines,
//! missing files, wrong keys, checkpoints of another log, damaged manifests), which must give
//! a clear error naming the file and line, never a panic.

use std::fs;
use std::path::{Path, PathBuf};

use guardrail_audit::CheckpointError;
use guardrail_audit::{
    AuditEvent, AuditSink, BreakKind, CHECKPOINT_FILE, CheckpointOptions, CheckpointSigner,
    Durability, EventKind, FileSink, FileSinkOptions, MANIFEST_FILE, Manifest, Record, TrailError,
    verify_trail,
};

fn signer() -> CheckpointSigner {
    CheckpointSigner::ed25519_from_seed(&[5; 32])
}

fn options(rotate_bytes: u64) -> FileSinkOptions {
    FileSinkOptions {
        rotate_bytes,
        checkpoint: Some(CheckpointOptions {
            every_events: 10,
            ..CheckpointOptions::new(signer())
        }),
        ..Default::default()
    }
}

fn record(i: usize) -> Record {
    let mut r = Record::new(EventKind::Decision);
    r.principal = Some(format!("nurse-{i}").into());
    r.action = Some("clinic::read_chart".into());
    r
}

/// A closed trail of `n` appended events; returns its file paths in order.
fn trail(dir: &Path, n: usize, rotate_bytes: u64) -> Vec<PathBuf> {
    let sink = FileSink::open(dir, options(rotate_bytes)).unwrap();
    for i in 0..n {
        sink.append(record(i)).unwrap();
    }
    sink.close().unwrap();
    manifest(dir).paths(dir)
}

fn manifest(dir: &Path) -> Manifest {
    Manifest::parse(&fs::read(dir.join(MANIFEST_FILE)).unwrap()).unwrap()
}

fn verify(dir: &Path) -> Result<guardrail_audit::TrailReport, TrailError> {
    let cps = dir.join(CHECKPOINT_FILE);
    verify_trail(&[dir], Some((&cps, &signer().verifier())), &mut |_| {})
}

#[test]
fn an_fsync_append_is_in_the_file_when_it_returns() {
    let dir = tempfile::tempdir().unwrap();
    let sink = FileSink::open(dir.path(), options(1 << 20)).unwrap();
    let r = sink.append(record(0)).unwrap();
    // Read while the sink is still open: the line is there, complete, exactly as sealed.
    let text = fs::read_to_string(dir.path().join("audit-00000001.jsonl")).unwrap();
    assert!(text.ends_with('\n'));
    let event = AuditEvent::parse(text.trim_end()).unwrap();
    assert_eq!((event.seq, r.seq), (0, 0));
    assert_eq!(format!("{}\n", event.line()), text);
    drop(sink);
}

#[test]
fn rotation_reopen_and_progress() {
    let dir = tempfile::tempdir().unwrap();
    let paths = trail(dir.path(), 200, 4096);
    assert!(paths.len() > 3);
    let sink = FileSink::open(dir.path(), options(4096)).unwrap();
    assert!(sink.last_recovery().is_none());
    let r = sink.append(record(999)).unwrap();
    drop(sink);
    let mut progress = Vec::new();
    let cps = dir.path().join(CHECKPOINT_FILE);
    let report = verify_trail(
        &[dir.path()],
        Some((&cps, &signer().verifier())),
        &mut |n| progress.push(n),
    )
    .unwrap();
    assert_eq!(report.head.next_seq, r.seq + 1);
    assert_eq!(progress.last(), Some(&report.events));
    assert_eq!(report.unchecked_events, 0, "close checkpoints everything");
    assert_eq!(report.files.len(), manifest(dir.path()).files.len());
    // The same trail given as files in order, or as its manifest, verifies the same.
    let files = manifest(dir.path()).paths(dir.path());
    let by_files = verify_trail(&files, None, &mut |_| {}).unwrap();
    assert_eq!(by_files.events, report.events);
    let by_manifest = verify_trail(&[dir.path().join(MANIFEST_FILE)], None, &mut |_| {}).unwrap();
    assert_eq!(by_manifest.events, report.events);
}

#[test]
fn a_complete_but_invalid_last_line_is_cut_on_open() {
    let dir = tempfile::tempdir().unwrap();
    let paths = trail(dir.path(), 5, 1 << 20);
    let last = paths.last().unwrap();
    let mut text = fs::read_to_string(last).unwrap();
    let good_len = text.len() as u64;
    let forged = text.lines().last().unwrap().replace("nurse-4", "nurse-X");
    text.push_str(&forged);
    text.push('\n');
    fs::write(last, &text).unwrap();
    let sink = FileSink::open(dir.path(), options(1 << 20)).unwrap();
    let rec = sink.last_recovery().unwrap();
    assert_eq!((rec.line, rec.offset), (6, good_len));
    assert!(rec.reason.contains("line 6"), "{}", rec.reason);
    drop(sink);
    // 5 events + the `recovered` event
    assert_eq!(verify(dir.path()).unwrap().events, 6);
}

#[test]
fn buffered_mode_flush_and_drop_make_everything_durable_and_checkpointed() {
    let dir = tempfile::tempdir().unwrap();
    let sink = FileSink::open(
        dir.path(),
        FileSinkOptions {
            durability: Durability::Buffered,
            ..options(1 << 20)
        },
    )
    .unwrap();
    for i in 0..1000 {
        sink.append(record(i)).unwrap();
    }
    sink.flush().unwrap();
    let lines = fs::read_to_string(dir.path().join("audit-00000001.jsonl"))
        .unwrap()
        .lines()
        .count();
    assert_eq!(lines, 1000);
    drop(sink);
    let report = verify(dir.path()).unwrap();
    assert_eq!(
        (report.events, report.last_checkpoint_seq),
        (1000, Some(999))
    );
}

// ---- bad input: clear errors naming file and line, never a panic ----

#[test]
fn a_malformed_line_is_named_by_file_and_line_without_echoing_its_content() {
    let dir = tempfile::tempdir().unwrap();
    let paths = trail(dir.path(), 30, 2048);
    let target = &paths[1];
    let mut lines: Vec<String> = fs::read_to_string(target)
        .unwrap()
        .lines()
        .map(String::from)
        .collect();
    lines[2] = "{\"seq\":nurse-secret}".into();
    fs::write(target, lines.join("\n") + "\n").unwrap();
    let err = verify(dir.path()).unwrap_err();
    match &err {
        TrailError::Broken {
            path, line, kind, ..
        } => {
            assert_eq!((path, *line, *kind), (target, 3, BreakKind::Malformed));
        }
        other => panic!("{other}"),
    }
    let msg = err.to_string();
    assert!(
        msg.contains(&target.display().to_string()) && msg.contains("line 3"),
        "{msg}"
    );
    assert!(
        !msg.contains("nurse"),
        "the message echoes file content: {msg}"
    );
    assert!(err.is_tampering());
}

#[test]
fn binary_garbage_and_overlong_lines_are_errors_not_panics() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("garbage.jsonl");
    let garbage: Vec<u8> = (0..5000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    fs::write(&f, &garbage).unwrap();
    let err = verify_trail(&[&f], None, &mut |_| {}).unwrap_err();
    assert_eq!(
        err.location().map(|(p, l)| (p.to_owned(), l)),
        Some((f.clone(), 1)),
        "{err}"
    );

    let long = dir.path().join("long.jsonl");
    fs::write(&long, vec![b'x'; guardrail_audit::MAX_LINE_BYTES + 10]).unwrap();
    match verify_trail(&[&long], None, &mut |_| {}).unwrap_err() {
        TrailError::Incomplete {
            line: 1,
            too_long: true,
            ..
        } => {}
        other => panic!("{other}"),
    }
    let none: [&Path; 0] = [];
    assert!(matches!(
        verify_trail(&none, None, &mut |_| {}),
        Err(TrailError::Usage(_))
    ));
}

#[test]
fn missing_files_are_named_and_classified() {
    let dir = tempfile::tempdir().unwrap();
    let paths = trail(dir.path(), 40, 2048);
    fs::remove_file(&paths[1]).unwrap();
    let err = verify(dir.path()).unwrap_err();
    match &err {
        TrailError::MissingFile {
            path,
            listed_in: Some(m),
        } => {
            assert_eq!((path, m), (&paths[1], &dir.path().join(MANIFEST_FILE)));
        }
        other => panic!("{other}"),
    }
    assert!(err.is_tampering(), "a file the manifest lists is evidence");
    let nowhere = dir.path().join("no-such-file.jsonl");
    let err = verify_trail(&[&nowhere], None, &mut |_| {}).unwrap_err();
    assert!(
        matches!(
            &err,
            TrailError::MissingFile {
                listed_in: None,
                ..
            }
        ),
        "{err}"
    );
    assert!(!err.is_tampering(), "a mistyped argument is a usage error");
    assert!(err.to_string().contains("no-such-file.jsonl"));
}

#[test]
fn a_wrong_key_is_reported_as_such_on_the_first_checkpoint_line() {
    let dir = tempfile::tempdir().unwrap();
    trail(dir.path(), 25, 1 << 20);
    let cps = dir.path().join(CHECKPOINT_FILE);
    let other = CheckpointSigner::ed25519_from_seed(&[6; 32]).verifier();
    let err = verify_trail(&[dir.path()], Some((&cps, &other)), &mut |_| {}).unwrap_err();
    match &err {
        TrailError::Checkpoint {
            path,
            line: 1,
            source,
        } if matches!(**source, CheckpointError::WrongKey { .. }) => {
            assert_eq!(path, &cps);
        }
        other => panic!("{other}"),
    }
    assert!(!err.is_tampering());
    assert!(err.to_string().contains("line 1"), "{err}");
    // The sink refuses to append to a trail whose checkpoints another key signed.
    let e = FileSink::open(
        dir.path(),
        FileSinkOptions {
            checkpoint: Some(CheckpointOptions::new(CheckpointSigner::ed25519_from_seed(
                &[6; 32],
            ))),
            ..Default::default()
        },
    )
    .unwrap_err();
    assert!(
        e.to_string().contains("checkpoint file") && e.to_string().contains("line 1"),
        "{e}"
    );
}

#[test]
fn a_checkpoint_from_another_log_is_named() {
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    trail(a.path(), 25, 1 << 20);
    trail(b.path(), 25, 1 << 20);
    let b_cps = b.path().join(CHECKPOINT_FILE);
    let err = verify_trail(
        &[a.path()],
        Some((&b_cps, &signer().verifier())),
        &mut |_| {},
    )
    .unwrap_err();
    match &err {
        TrailError::OtherLog {
            path,
            line: 1,
            found,
            expected,
        } => {
            assert_eq!(path, &b_cps);
            assert_ne!(found, expected);
        }
        other => panic!("{other}"),
    }
    // Without the manifest (files given), the foreign checkpoint still fails, at its seq.
    let files = manifest(a.path()).paths(a.path());
    let err = verify_trail(&files, Some((&b_cps, &signer().verifier())), &mut |_| {}).unwrap_err();
    assert!(
        matches!(err, TrailError::HistoryRewritten { seq: 9, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("another log"), "{err}");
    // And the sink refuses to continue a trail with a foreign checkpoint file.
    fs::copy(&b_cps, a.path().join(CHECKPOINT_FILE)).unwrap();
    let e = FileSink::open(a.path(), options(1 << 20)).unwrap_err();
    assert!(e.to_string().contains("belongs to log"), "{e}");
}

#[test]
fn a_damaged_manifest_is_named_by_line() {
    let dir = tempfile::tempdir().unwrap();
    trail(dir.path(), 40, 2048);
    let m = dir.path().join(MANIFEST_FILE);
    let text = fs::read_to_string(&m).unwrap();
    fs::write(
        &m,
        text.replacen("\"first_seq\":", "\"first_seq\":\"x\",\"y\":", 2),
    )
    .unwrap();
    let err = verify(dir.path()).unwrap_err();
    assert!(
        matches!(&err, TrailError::Manifest { path, source } if path == &m && source.line == 2),
        "{err}"
    );
    fs::write(&m, text.replace("\"version\":1", "\"version\":7")).unwrap();
    let err = verify(dir.path()).unwrap_err();
    assert!(err.to_string().contains("version 7"), "{err}");
    assert!(FileSink::open(dir.path(), options(2048)).is_err());
}

#[test]
fn a_torn_checkpoint_line_fails_verification_until_the_sink_repairs_it() {
    let dir = tempfile::tempdir().unwrap();
    trail(dir.path(), 25, 1 << 20);
    let cps = dir.path().join(CHECKPOINT_FILE);
    let mut bytes = fs::read(&cps).unwrap();
    let lines = bytes.iter().filter(|&&b| b == b'\n').count();
    bytes.extend_from_slice(b"{\"v\":1,\"log\":\"");
    fs::write(&cps, &bytes).unwrap();
    match verify(dir.path()).unwrap_err() {
        TrailError::Checkpoint { line, source, .. }
            if matches!(*source, CheckpointError::Malformed(_)) =>
        {
            assert_eq!(line, lines + 1)
        }
        other => panic!("{other}"),
    }
    drop(FileSink::open(dir.path(), options(1 << 20)).unwrap());
    verify(dir.path()).unwrap();
}

#[test]
fn the_sink_refuses_a_trail_shorter_than_its_checkpoints_and_files_without_a_manifest() {
    let dir = tempfile::tempdir().unwrap();
    let paths = trail(dir.path(), 25, 1 << 20);
    let text = fs::read_to_string(&paths[0]).unwrap();
    let kept: Vec<&str> = text.lines().take(20).collect();
    fs::write(&paths[0], kept.join("\n") + "\n").unwrap();
    let e = FileSink::open(dir.path(), options(1 << 20)).unwrap_err();
    assert!(e.to_string().contains("signed events are missing"), "{e}");
    assert!(matches!(
        verify(dir.path()),
        Err(TrailError::Truncated { seq: 20, .. })
    ));

    fs::remove_file(dir.path().join(MANIFEST_FILE)).unwrap();
    let e = FileSink::open(dir.path(), FileSinkOptions::default()).unwrap_err();
    assert!(
        e.to_string().contains("refusing to start a new trail"),
        "{e}"
    );
}
