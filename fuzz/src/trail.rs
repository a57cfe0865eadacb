//! The CLI's trail reader: fuzzed bytes written as a trail directory (manifest, event files,
//! checkpoints), verified with `verify_trail`, and, when sound, read again event by event into
//! the disclosure accumulator and the FHIR exporter exactly as `guardrail audit disclosures` /
//! `export` do (`guardrail-cli/src/read.rs`: re-verify each line, parse, accumulate).
//!
//! Input: three control bytes, then lines. A line `---` starts the next event file (at most
//! four); a line `===` ends the event files, and what follows is the manifest text when the
//! control byte asks for a raw manifest. Other lines that parse as a `Record` (with `$P` for the
//! patient's token) are sealed into one chain; the rest are written raw.
//!
//! Control byte 0: bit 0 raw manifest, bit 1 signed checkpoints (HMAC) every `1 + c2 % 8`
//! events, bit 2 and a checkpoint at the last event, bits 3–5 one edit of the sealed trail
//! (flip a byte, delete, duplicate, swap with the next, cut the tail, rewrite the history from
//! an event with a recomputed chain), bit 6 name the files instead of the directory. Byte 1
//! picks the edited event, byte 2 the byte and the checkpoint spacing.
//!
//! Properties:
//! * never a panic, whatever the bytes;
//! * every error with a place names a file of this trail and a line from 1; a sound trail's
//!   events add up over its files;
//! * a sound trail reads back line for line (each line verifies again and parses), ending at the
//!   verified head;
//! * for a trail of sealed lines with a generated manifest the outcome is known exactly: no edit
//!   verifies and reads back the sealed events, with the accounting `account_disclosures` gives
//!   in memory; every edit is refused naming the first affected seq (and file and line where
//!   the edit put a bad line), except the two the format cannot see without a checkpoint
//!   covering them (a removed last event with no later file listed after it, a rewritten
//!   history), which verify.

use std::fs;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::sync::LazyLock;

use super::{PATIENT, audit_key, record_from};
use guardrail_audit::disclosure::{DisclosureAccumulator, TimeRange, account_disclosures};
use guardrail_audit::fhir::{self, FhirOptions};
use guardrail_audit::{
    AuditEvent, AuditKey, CHECKPOINT_FILE, Chain, CheckpointSigner, CheckpointVerifier,
    MANIFEST_FILE, Manifest, ManifestEntry, Timestamp, TrailError, TrailReport, Verifier,
    verify_trail,
};

struct Fixture {
    key: AuditKey,
    token: String,
    signer: CheckpointSigner,
    verifier: CheckpointVerifier,
}

static FIXTURE: LazyLock<Fixture> = LazyLock::new(|| {
    let key = audit_key();
    let token = key.token(AuditKey::SUBJECT_DOMAIN, PATIENT);
    let signer =
        CheckpointSigner::hmac_sha256(b"trail fuzz checkpoint key").expect("a long HMAC key");
    Fixture {
        verifier: signer.verifier(),
        key,
        token,
        signer,
    }
});

/// The fuzzer's scratch directory: in memory (`/dev/shm`) where there is one.
static SCRATCH: LazyLock<PathBuf> = LazyLock::new(|| {
    let base = if Path::new("/dev/shm").is_dir() {
        PathBuf::from("/dev/shm")
    } else {
        std::env::temp_dir()
    };
    let dir = base.join(format!("guardrail-fuzz-trail-{}", std::process::id()));
    fs::create_dir_all(&dir).expect("a scratch directory");
    dir
});

/// Runs the properties on one input in a scratch directory of this process.
pub fn check_input(data: &[u8]) {
    check_in(data, &SCRATCH);
}

const LOG: &str = "00112233445566778899aabbccddeeff";
const MAX_FILES: usize = 4;
const MAX_EVENTS: usize = 48;

#[derive(Clone)]
enum Line {
    Sealed(Box<AuditEvent>),
    Raw(Vec<u8>),
}

impl Line {
    fn bytes(&self) -> &[u8] {
        match self {
            Line::Sealed(e) => e.line().as_bytes(),
            Line::Raw(b) => b,
        }
    }
}

/// Index of `seq`'s line: (file, line from 0).
fn place(files: &[Vec<Line>], seq: u64) -> Option<(usize, usize)> {
    files.iter().enumerate().find_map(|(f, lines)| {
        lines
            .iter()
            .position(|l| matches!(l, Line::Sealed(e) if e.seq == seq))
            .map(|i| (f, i))
    })
}

fn file_path(dir: &Path, n: usize) -> PathBuf {
    dir.join(format!("audit-{:08}.jsonl", n + 1))
}

/// The manifest a sink would have written for `files` (each file's first seq and link).
fn manifest_for(files: &[Vec<Line>]) -> Manifest {
    let mut chain = Chain::new();
    let mut entries = Vec::new();
    for (n, lines) in files.iter().enumerate() {
        entries.push(ManifestEntry {
            file: format!("audit-{:08}.jsonl", n + 1),
            first_seq: chain.next_seq,
            prev: chain.head,
        });
        for l in lines {
            if let Line::Sealed(e) = l {
                chain = Chain::after(e);
            }
        }
    }
    Manifest {
        log: LOG.into(),
        files: entries,
    }
}

/// Every event of `files`, re-sealed from `from` on with `from`'s record changed.
fn rewrite(files: &mut [Vec<Line>], from: u64) {
    let mut chain = Chain::new();
    for lines in files.iter_mut() {
        for l in lines.iter_mut() {
            let Line::Sealed(e) = l else { continue };
            if e.seq >= from {
                let mut r = e.record.clone();
                if e.seq == from {
                    r.detail.insert("rewritten".into(), "yes".into());
                }
                **e = chain.link(r).expect("a parsed record seals");
            } else {
                chain = Chain::after(e);
            }
        }
    }
}

/// What the edit must lead to, for a trail of sealed lines.
#[derive(Debug, PartialEq)]
enum Expect {
    /// Verifies, and reads back exactly these events.
    Sound(Vec<AuditEvent>),
    /// Refused; the first affected seq, and the file and 1-based line when the edit put a bad
    /// line there.
    Refused(u64, Option<(usize, usize)>),
    /// Refused as a rewritten history found at checkpoint seq `at`, begun at or after `from`.
    Rewritten { from: u64, at: u64 },
}

fn sealed_events(files: &[Vec<Line>]) -> Vec<AuditEvent> {
    files
        .iter()
        .flatten()
        .filter_map(|l| match l {
            Line::Sealed(e) => Some((**e).clone()),
            Line::Raw(_) => None,
        })
        .collect()
}

/// Writes every file name an input can make (the unused ones empty), so the directory holds
/// the same names after every input: rewriting a file is cheaper than unlinking it, and a raw
/// manifest naming an unused file sees the same (empty) file whatever ran before.
fn write_files(dir: &Path, files: &[Vec<Line>], cut: usize) {
    let last = files.len().saturating_sub(1);
    for n in 0..MAX_FILES {
        let mut text = Vec::new();
        for l in files.get(n).map_or(&[][..], Vec::as_slice) {
            text.extend_from_slice(l.bytes());
            text.push(b'\n');
        }
        if n == last {
            text.truncate(text.len().saturating_sub(cut));
        }
        fs::write(file_path(dir, n), text).expect("scratch files are writable");
    }
}

/// `read::for_each_event` of the CLI, over the library calls it makes.
fn read_back(report: &TrailReport, fx: &Fixture) -> Vec<AuditEvent> {
    let mut verifier = Verifier::new(Chain::new());
    let mut acc = DisclosureAccumulator::for_patient(&fx.key, PATIENT, TimeRange::all());
    let opts = FhirOptions::default();
    let mut events = Vec::new();
    let mut buf = Vec::new();
    for file in &report.files {
        let mut reader = BufReader::new(fs::File::open(&file.path).expect("a verified file"));
        for n in 1..=file.events {
            buf.clear();
            let read = reader.read_until(b'\n', &mut buf).expect("readable");
            assert!(
                read > 0 && buf.pop() == Some(b'\n'),
                "verified line {n} is gone"
            );
            verifier
                .push_line(n as usize, &buf)
                .expect("a verified line verifies again");
            let text = std::str::from_utf8(&buf).expect("a verified line is UTF-8");
            let event = AuditEvent::parse(text).expect("a verified line parses");
            acc.push(&event);
            let _ = fhir::audit_event(&event, &opts);
            events.push(event);
        }
    }
    assert_eq!(
        verifier.report().head,
        report.head,
        "read back to another head"
    );
    let accounting = acc.finish();
    assert_eq!(
        accounting,
        account_disclosures(&events, &fx.key, PATIENT, TimeRange::all())
    );
    let _ = accounting.to_table();
    events
}

fn check_error(e: &TrailError, dir: &Path) {
    assert!(!e.to_string().is_empty());
    if let Some((path, line)) = e.location() {
        assert!(path.starts_with(dir), "{e}: names a file outside the trail");
        assert!(line >= 1, "{e}: line 0");
    }
}

/// Runs the properties on one input, writing the trail into `dir` (emptied first; nothing else
/// may use it meanwhile); panics when one fails.
pub fn check_in(data: &[u8], dir: &Path) {
    let [flags, pick, c2, rest @ ..] = data else {
        return;
    };
    let (flags, pick, c2) = (*flags, *pick, *c2);
    let fx = &*FIXTURE;
    let dir = dir.to_path_buf();
    let (events_part, manifest_part) = match rest.windows(5).position(|w| w == b"\n===\n") {
        Some(i) => (&rest[..i], Some(&rest[i + 5..])),
        None => (rest, None),
    };

    // The trail as a sink would have written it.
    let mut files: Vec<Vec<Line>> = vec![Vec::new()];
    let mut chain = Chain::new();
    let mut any_raw = false;
    let mut count = 0;
    for line in events_part.split(|&b| b == b'\n') {
        if line == b"---" {
            if files.len() < MAX_FILES {
                files.push(Vec::new());
            }
            continue;
        }
        if line.is_empty() || count == MAX_EVENTS {
            continue;
        }
        count += 1;
        let item = match record_from(line, &fx.token).map(|r| chain.link(r)) {
            Some(Ok(e)) => Line::Sealed(Box::new(e)),
            _ => {
                any_raw = true;
                Line::Raw(line.to_vec())
            }
        };
        files.last_mut().expect("one file at least").push(item);
    }
    let original = sealed_events(&files);
    let n = original.len() as u64;

    // Checkpoints of the trail as written.
    let every = 1 + u64::from(c2 % 8);
    let with_cps = flags & 2 != 0;
    let mut cp_seqs: Vec<u64> = (0..n).filter(|s| (s + 1) % every == 0).collect();
    if flags & 4 != 0 && n > 0 && cp_seqs.last() != Some(&(n - 1)) {
        cp_seqs.push(n - 1);
    }
    let time = Timestamp(1_800_000_000_000_000_000);
    let cp_text: String = cp_seqs
        .iter()
        .map(|&s| {
            let head = original[s as usize].hash;
            format!("{}\n", fx.signer.sign(LOG, s, head, time))
        })
        .collect();

    // One edit.
    let generated = flags & 1 == 0 || manifest_part.is_none();
    let mut manifest = manifest_for(&files);
    let k = if n == 0 { 0 } else { u64::from(pick) % n };
    let covered = |from: u64| with_cps && cp_seqs.iter().any(|&s| s >= from);
    let mut cut = 0;
    let op = if n == 0 { 0 } else { (flags >> 3) & 7 };
    let mut expect = Expect::Sound(original.clone());
    let by_files = flags & 64 != 0;
    match op {
        1 => {
            let (f, i) = place(&files, k).expect("a sealed event");
            let mut bytes = files[f][i].bytes().to_vec();
            let at = usize::from(c2) * bytes.len() / 256;
            bytes[at] ^= if bytes[at] ^ 1 == b'\n' { 2 } else { 1 };
            files[f][i] = Line::Raw(bytes);
            expect = Expect::Refused(k, Some((f, i + 1)));
        }
        2 => {
            let (f, i) = place(&files, k).expect("a sealed event");
            files[f].remove(i);
            // A later file the manifest lists starts after the removed event: it shows when
            // the manifest is read. Files named one by one have no manifest: then only a
            // later event shows it (`k + 1 < n`), and a gap followed by empty files does not.
            let later_listed = !by_files && f + 1 < files.len();
            expect = if k + 1 < n || covered(k) || later_listed {
                Expect::Refused(k, None)
            } else {
                Expect::Sound(original[..original.len() - 1].to_vec())
            };
        }
        3 => {
            let (f, i) = place(&files, k).expect("a sealed event");
            let copy = files[f][i].clone();
            files[f].insert(i + 1, copy);
            expect = Expect::Refused(k + 1, Some((f, i + 2)));
        }
        4 => {
            let (f, i) = place(&files, k).expect("a sealed event");
            if i + 1 < files[f].len() {
                files[f].swap(i, i + 1);
                expect = Expect::Refused(k, Some((f, i + 1)));
            }
        }
        5 => {
            // Cut into the last event's line: an incomplete line where seq n-1 belongs.
            let (f, i) = place(&files, n - 1).expect("a sealed event");
            let later_empty = files[f + 1..].iter().all(Vec::is_empty);
            if later_empty && i + 1 == files[f].len() {
                files.truncate(f + 1);
                manifest = manifest_for(&files);
                let len = files[f][i].bytes().len();
                cut = 1 + usize::from(c2) % len;
                expect = Expect::Refused(n - 1, Some((f, i + 1)));
            }
        }
        6 => {
            rewrite(&mut files, k);
            manifest = manifest_for(&files);
            expect = match cp_seqs.iter().find(|&&s| s >= k) {
                Some(&at) if with_cps => Expect::Rewritten { from: k, at },
                _ => Expect::Sound(sealed_events(&files)),
            };
        }
        _ => {}
    }
    if let Expect::Sound(events) = &expect {
        if with_cps && cp_seqs.is_empty() && !events.is_empty() {
            // A checkpoint file that holds no checkpoint is refused (NoCheckpoints).
            expect = Expect::Refused(u64::MAX, None);
        }
    }

    write_files(&dir, &files, cut);
    let manifest_text = match (generated, manifest_part) {
        (false, Some(raw)) => raw.to_vec(),
        _ => manifest.to_text().into_bytes(),
    };
    fs::write(dir.join(MANIFEST_FILE), &manifest_text).expect("scratch files are writable");
    let cp_path = dir.join(CHECKPOINT_FILE);
    fs::write(&cp_path, if with_cps { cp_text.as_bytes() } else { b"" })
        .expect("scratch files are writable");
    let cps = with_cps.then_some((cp_path.as_path(), &fx.verifier));
    let paths: Vec<PathBuf> = if by_files {
        (0..files.len()).map(|i| file_path(&dir, i)).collect()
    } else {
        vec![dir.clone()]
    };
    let result = verify_trail(&paths, cps, &mut |_| {});

    match &result {
        Err(e) => check_error(e, &dir),
        Ok(report) => {
            assert_eq!(
                report.events,
                report.files.iter().map(|f| f.events).sum::<u64>()
            );
            let read = read_back(report, fx);
            assert_eq!(read.len() as u64, report.events);
        }
    }
    if any_raw || !generated {
        return;
    }
    match (expect, &result) {
        (Expect::Sound(events), Ok(report)) => {
            assert_eq!(report.events, events.len() as u64);
            let head = events.last().map_or(Chain::new(), Chain::after);
            assert_eq!(report.head, head);
            assert_eq!(read_back(report, fx), events, "read back other events");
            if !by_files {
                assert_eq!(report.log.as_deref(), Some(LOG));
            }
        }
        (Expect::Refused(seq, at), Err(e)) => {
            assert!(e.is_tampering(), "{e}");
            if seq != u64::MAX {
                assert_eq!(e.seq(), Some(seq), "{e}");
            }
            if let Some((f, line)) = at {
                let (path, l) = e.location().expect("a place");
                assert_eq!((path, l), (file_path(&dir, f).as_path(), line), "{e}");
            }
        }
        (Expect::Rewritten { from, at }, Err(e)) => match e {
            TrailError::HistoryRewritten { seq, since_seq, .. } => {
                assert_eq!(*seq, at, "{e}");
                assert!(*since_seq <= from, "{e}");
            }
            other => panic!("rewrite from seq {from} reported as {other}"),
        },
        (expect, result) => panic!("expected {expect:?}, got {result:?}"),
    }
}
