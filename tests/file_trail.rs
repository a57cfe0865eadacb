//! `FileTrail`: a file trail read back as typed events, verified line by line. It yields what
//! the `FileSink` wrote, in order, across rotation, with every value; the filters (request,
//! subject token, time range) pick the right events while every line is still checked; a
//! tampered line, a torn tail, a file that does not start where the manifest says, or a
//! missing file stop the stream with an error naming the file, line and seq, and nothing past
//! the break is yielded.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use guardrail_audit::{
    AuditEvent, AuditSink, BreakKind, EventKind, FileSink, FileSinkOptions, FileTrail,
    MANIFEST_FILE, Outcome, Record, Text, Timestamp, TrailError,
};

/// Base time of the written events: event `i` is at `T0 + i` seconds.
const T0: u64 = 1_800_000_000_000_000_000;
const SECOND: u64 = 1_000_000_000;

fn record(i: u64) -> Record {
    let mut r = Record::at(
        if i % 2 == 0 {
            EventKind::Decision
        } else {
            EventKind::Outcome
        },
        Timestamp(T0 + i * SECOND),
    );
    r.request_id = Some(format!("req-{}", i / 2).into());
    r.action = Some("clinic::update_diagnosis".into());
    r.subject = Some(format!("hmac-sha256:patient-{}", i % 3).into());
    if i % 2 == 1 {
        r.outcome = Some(Outcome::Ok);
        r.decision_seq = Some(i - 1);
    }
    if i == 7 {
        // A bulk call: two more patients in `subjects`.
        r.subjects = Arc::from(vec![
            Text::from("hmac-sha256:bulk-a"),
            Text::from("hmac-sha256:bulk-b"),
        ]);
    }
    r
}

/// Writes `n` events with small files (several rotations) and closes the sink.
fn write_trail(dir: &Path, n: u64) -> Vec<AuditEvent> {
    let sink = FileSink::open(
        dir,
        FileSinkOptions {
            rotate_bytes: 2000,
            ..Default::default()
        },
    )
    .unwrap();
    for i in 0..n {
        sink.append(record(i)).unwrap();
    }
    sink.close().unwrap();
    // What was written, straight from the files (rotation events included).
    let trail = FileTrail::open(dir).unwrap();
    let mut events = Vec::new();
    for f in trail.files() {
        for line in std::fs::read_to_string(f).unwrap().lines() {
            events.push(AuditEvent::parse(line).unwrap());
        }
    }
    events
}

fn read_all(dir: &Path) -> Vec<AuditEvent> {
    FileTrail::open(dir)
        .unwrap()
        .events()
        .collect::<Result<Vec<_>, _>>()
        .unwrap()
}

#[test]
fn reads_back_what_the_file_sink_wrote_in_order_with_every_value() {
    let dir = tempfile::tempdir().unwrap();
    let written = write_trail(dir.path(), 40);
    let trail = FileTrail::open(dir.path()).unwrap();
    assert!(
        trail.files().len() >= 3,
        "the trail rotated: {:?}",
        trail.files()
    );
    assert_eq!(trail.log().len(), 32);

    let read = read_all(dir.path());
    assert_eq!(read.len(), written.len());
    assert_eq!(
        read.iter().map(|e| e.seq).collect::<Vec<_>>(),
        (0..written.len() as u64).collect::<Vec<_>>()
    );
    for (r, w) in read.iter().zip(&written) {
        assert_eq!(r, w, "seq {}", w.seq);
        assert_eq!(r.line(), w.line());
    }
    // The appended records come back with their values, in order, between the rotation
    // events the sink added.
    let appended: Vec<&Record> = read
        .iter()
        .map(|e| &e.record)
        .filter(|r| r.kind != EventKind::Rotated)
        .collect();
    assert_eq!(appended.len(), 40);
    for (i, r) in appended.iter().enumerate() {
        assert_eq!(**r, record(i as u64), "record {i}");
    }
    assert!(read.iter().any(|e| e.record.kind == EventKind::Rotated));
}

#[test]
fn filters_pick_one_request_one_subject_and_a_time_range() {
    let dir = tempfile::tempdir().unwrap();
    write_trail(dir.path(), 40);
    let trail = FileTrail::open(dir.path()).unwrap();
    let seqs_of = |events: Vec<AuditEvent>| -> Vec<u64> {
        events
            .iter()
            .map(|e| {
                e.record
                    .time
                    .0
                    .checked_sub(T0)
                    .map_or(u64::MAX, |d| d / SECOND)
            })
            .collect()
    };

    let req: Vec<AuditEvent> = trail
        .events()
        .request_id("req-5")
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(seqs_of(req.clone()), vec![10, 11], "decision and outcome");
    assert_eq!(
        (req[0].record.kind, req[1].record.kind),
        (EventKind::Decision, EventKind::Outcome)
    );

    // Record i touches patient i % 3; record 7 also touches the bulk subjects.
    let p1: Vec<AuditEvent> = trail
        .events()
        .subject("hmac-sha256:patient-1")
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(
        seqs_of(p1),
        (0..40).filter(|i| i % 3 == 1).collect::<Vec<u64>>()
    );
    let bulk: Vec<AuditEvent> = trail
        .events()
        .subject("hmac-sha256:bulk-b")
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(seqs_of(bulk), vec![7]);

    // since <= time < until, combined with a subject.
    let window: Vec<AuditEvent> = trail
        .events()
        .since(Timestamp(T0 + 10 * SECOND))
        .until(Timestamp(T0 + 20 * SECOND))
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(seqs_of(window), (10..20).collect::<Vec<u64>>());
    let both: Vec<AuditEvent> = trail
        .events()
        .since(Timestamp(T0 + 10 * SECOND))
        .until(Timestamp(T0 + 20 * SECOND))
        .subject("hmac-sha256:patient-0")
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(seqs_of(both), vec![12, 15, 18]);
    let none: Vec<AuditEvent> = trail
        .events()
        .request_id("req-404")
        .collect::<Result<_, _>>()
        .unwrap();
    assert!(none.is_empty());
}

/// The file and 1-based line holding `seq`.
fn locate(dir: &Path, seq: u64) -> (PathBuf, usize) {
    let trail = FileTrail::open(dir).unwrap();
    for f in trail.files() {
        for (i, line) in std::fs::read_to_string(&f).unwrap().lines().enumerate() {
            if AuditEvent::parse(line).unwrap().seq == seq {
                return (f, i + 1);
            }
        }
    }
    panic!("no seq {seq}");
}

fn rewrite_line(path: &Path, line_no: usize, edit: impl Fn(&str) -> String) {
    let text = std::fs::read_to_string(path).unwrap();
    let out: Vec<String> = text
        .lines()
        .enumerate()
        .map(|(i, l)| {
            if i + 1 == line_no {
                edit(l)
            } else {
                l.to_owned()
            }
        })
        .collect();
    std::fs::write(path, out.join("\n") + "\n").unwrap();
}

#[test]
fn a_tampered_line_stops_the_stream_with_its_file_line_and_seq() {
    let dir = tempfile::tempdir().unwrap();
    write_trail(dir.path(), 40);
    // Tamper with an event in the middle of a later file: a changed request id.
    let path = FileTrail::open(dir.path()).unwrap().files()[1].clone();
    let line = 3;
    let original = std::fs::read_to_string(&path).unwrap();
    let event = AuditEvent::parse(original.lines().nth(line - 1).unwrap()).unwrap();
    assert!(event.record.request_id.is_some(), "{event:?}");
    let seq = event.seq;
    rewrite_line(&path, line, |l| l.replacen("\"req-", "\"REQ-", 1));
    assert_ne!(std::fs::read_to_string(&path).unwrap(), original);

    let mut yielded = Vec::new();
    let mut error = None;
    let mut events = FileTrail::open(dir.path()).unwrap().events();
    for item in events.by_ref() {
        match item {
            Ok(e) => yielded.push(e.seq),
            Err(e) => {
                error = Some(e);
                break;
            }
        }
    }
    assert_eq!(
        yielded,
        (0..seq).collect::<Vec<u64>>(),
        "every event before the break, none after"
    );
    let error = error.expect("the tampered line is reported");
    match &error {
        TrailError::Broken {
            path: p,
            line: l,
            seq: s,
            kind,
            ..
        } => {
            assert_eq!((p, *l, *s), (&path, line, seq));
            assert_eq!(*kind, BreakKind::HashMismatch);
        }
        other => panic!("expected a broken link, got {other:?}"),
    }
    let message = error.to_string();
    assert!(
        message.contains(&format!("`{}` line {line}", path.display()))
            && message.contains(&format!("seq {seq}")),
        "{message}"
    );
    assert!(events.next().is_none(), "the stream ends after the error");

    // A filter that would skip the tampered event still stops there.
    let filtered: Vec<Result<AuditEvent, TrailError>> = FileTrail::open(dir.path())
        .unwrap()
        .events()
        .request_id("req-19")
        .collect();
    assert_eq!(filtered.len(), 1, "{filtered:?}");
    assert!(
        matches!(&filtered[0], Err(TrailError::Broken { seq: s, .. }) if *s == seq),
        "{filtered:?}"
    );
}

#[test]
fn a_removed_line_is_reported_where_the_next_event_stands() {
    let dir = tempfile::tempdir().unwrap();
    write_trail(dir.path(), 20);
    let (path, line) = locate(dir.path(), 5);
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(line < text.lines().count(), "seq 6 is in the same file");
    let kept: Vec<&str> = text
        .lines()
        .enumerate()
        .filter(|(i, _)| i + 1 != line)
        .map(|(_, l)| l)
        .collect();
    std::fs::write(&path, kept.join("\n") + "\n").unwrap();
    let items: Vec<_> = FileTrail::open(dir.path()).unwrap().events().collect();
    assert_eq!(items.len(), 6, "seq 0..5 then the error");
    match items.last() {
        Some(Err(TrailError::Broken {
            path: p,
            line: l,
            seq,
            found_seq,
            ..
        })) => {
            assert_eq!((p, *l, *seq, *found_seq), (&path, line, 5, Some(6)));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_torn_tail_a_moved_file_and_a_missing_file_are_errors_not_events() {
    // Torn tail: the last line has no newline.
    let dir = tempfile::tempdir().unwrap();
    write_trail(dir.path(), 6);
    let trail = FileTrail::open(dir.path()).unwrap();
    let last = trail.files().pop().unwrap();
    let text = std::fs::read_to_string(&last).unwrap();
    let lines = text.lines().count();
    std::fs::write(&last, &text[..text.len() - 10]).unwrap();
    let items: Vec<_> = trail.events().collect();
    assert!(items[..items.len() - 1].iter().all(Result::is_ok));
    match items.last() {
        Some(Err(e @ TrailError::Incomplete { path, line, .. })) => {
            assert_eq!((path, *line), (&last, lines));
            assert!(e.to_string().contains("incomplete line"), "{e}");
        }
        other => panic!("{other:?}"),
    }

    // A file listed in the manifest is gone.
    let dir = tempfile::tempdir().unwrap();
    write_trail(dir.path(), 40);
    let files = FileTrail::open(dir.path()).unwrap().files();
    std::fs::remove_file(&files[1]).unwrap();
    let items: Vec<_> = FileTrail::open(dir.path()).unwrap().events().collect();
    match items.last() {
        Some(Err(TrailError::MissingFile { path, listed_in })) => {
            assert_eq!(path, &files[1]);
            assert_eq!(listed_in.as_deref(), Some(&*dir.path().join(MANIFEST_FILE)));
        }
        other => panic!("{other:?}"),
    }
    // Only the first file's events came before the error.
    let first_file_events = std::fs::read_to_string(&files[0]).unwrap().lines().count();
    assert_eq!(items.len(), first_file_events + 1);

    // The second file replaced by the third: it does not start where the chain is.
    let dir = tempfile::tempdir().unwrap();
    write_trail(dir.path(), 40);
    let files = FileTrail::open(dir.path()).unwrap().files();
    std::fs::copy(&files[2], &files[1]).unwrap();
    let err = FileTrail::open(dir.path())
        .unwrap()
        .events()
        .find_map(Result::err)
        .expect("an error");
    assert!(
        matches!(&err, TrailError::Broken { path, line: 1, kind: BreakKind::SequenceGap { .. }, .. } if path == &files[1]),
        "{err:?}"
    );
}

#[test]
fn opening_something_that_is_not_a_trail_says_what_is_missing() {
    let dir = tempfile::tempdir().unwrap();
    let err = FileTrail::open(dir.path()).unwrap_err();
    assert!(
        matches!(&err, TrailError::MissingFile { path, .. } if path == &dir.path().join(MANIFEST_FILE)),
        "{err:?}"
    );
    let err = FileTrail::open(dir.path().join("nope")).unwrap_err();
    assert!(err.to_string().contains("nope"), "{err}");
    std::fs::write(dir.path().join("file"), b"x").unwrap();
    let err = FileTrail::open(dir.path().join("file")).unwrap_err();
    assert!(err.to_string().contains("not a trail directory"), "{err}");
    std::fs::write(dir.path().join(MANIFEST_FILE), b"{}\n").unwrap();
    let err = FileTrail::open(dir.path()).unwrap_err();
    assert!(
        matches!(&err, TrailError::Manifest { source, .. } if source.line == 1),
        "{err:?}"
    );
}

#[test]
fn a_file_that_does_not_start_where_the_manifest_says_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    write_trail(dir.path(), 40);
    let manifest_path = dir.path().join(MANIFEST_FILE);
    let mut manifest =
        guardrail_audit::Manifest::parse(&std::fs::read(&manifest_path).unwrap()).unwrap();
    // The second file's entry claims one event more before it than there is.
    let listed = manifest.files[1].first_seq + 1;
    manifest.files[1].first_seq = listed;
    std::fs::write(&manifest_path, manifest.to_text()).unwrap();
    let files = FileTrail::open(dir.path()).unwrap().files();
    let first_file_events = std::fs::read_to_string(&files[0]).unwrap().lines().count();
    let items: Vec<_> = FileTrail::open(dir.path()).unwrap().events().collect();
    assert_eq!(items.len(), first_file_events + 1, "{:?}", items.last());
    match items.last() {
        Some(Err(TrailError::ManifestMismatch {
            path,
            manifest,
            found_seq,
            listed_seq,
        })) => {
            assert_eq!((path, manifest), (&files[1], &manifest_path));
            assert_eq!((*found_seq, *listed_seq), (listed - 1, listed));
        }
        other => panic!("{other:?}"),
    }
}
