//! Tamper evidence: 1,000 random tamperings of a rotated, checkpointed trail are all
//! detected, and the verifier names the first affected event (file, line and seq).
//!
//! The trail has 300 events over a dozen files (rotation), with a signed checkpoint every 7
//! events and one at close. Each round applies one tampering to a pristine copy:
//!
//! * byte flip anywhere in a line or its newline: reported at that line, with its seq;
//! * line deleted: reported where the next event now stands (seq of the deleted one), or as
//!   a truncation when it was the last event;
//! * two lines of a file swapped: reported at the earlier one;
//! * line inserted (a copy of another event, garbage, or a correctly chained forgery):
//!   reported at the inserted line, or, for the forgery, at the displaced event after it;
//! * tail truncated (whole lines, mid-line, or the whole last file with its manifest entry):
//!   reported as truncated at the first missing seq (or the incomplete line);
//! * whole history rewritten from some event on, chain and manifest recomputed: reported at
//!   the first checkpoint whose head differs, and the reported range `since_seq..=seq` holds
//!   the first rewritten event (checkpoints are the only evidence of a recomputed chain, so
//!   this is the closest the first affected event can be named);
//! * chain relinked: an event removed and every later event renumbered and re-hashed on its
//!   own, each keeping its `prev` (every line is self-consistent and the seqs contiguous):
//!   only the link check sees it, a broken link where the removed event stood;
//! * checkpoint forged: history rewritten as above and the checkpoints after the rewrite
//!   given the new heads, their signatures kept or replaced by the attacker's own under the
//!   given key's id: only the signature check sees it, at the first forged checkpoint.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use guardrail_audit::io::Storage;
use guardrail_audit::io::sim::{SimStorage, XorShift};
use guardrail_audit::{
    AuditEvent, AuditSink, BreakKind, CHECKPOINT_FILE, Chain, CheckpointError, CheckpointOptions,
    CheckpointSigner, CheckpointVerifier, Digest, EventKind, FileSink, FileSinkOptions, GENESIS,
    MANIFEST_FILE, Manifest, Record, Timestamp, TrailError, verify_trail,
};

const EVENTS: u64 = 300;
const CHECKPOINT_EVERY: u64 = 7;

struct Pristine {
    manifest: Manifest,
    /// Lines (without newline) of each file, in manifest order.
    files: Vec<Vec<Vec<u8>>>,
    checkpoints: Vec<u8>,
    checkpoint_seqs: Vec<u64>,
    events: Vec<AuditEvent>,
}

impl Pristine {
    fn total(&self) -> u64 {
        self.events.len() as u64
    }
    /// (file index, 1-based line) of global event `g`.
    fn loc(&self, g: u64) -> (usize, usize) {
        let mut g = g as usize;
        for (f, lines) in self.files.iter().enumerate() {
            if g < lines.len() {
                return (f, g + 1);
            }
            g -= lines.len();
        }
        panic!("no event {g}");
    }
    fn global(&self, f: usize, line: usize) -> u64 {
        (self.files[..f].iter().map(Vec::len).sum::<usize>() + line - 1) as u64
    }
}

fn signer() -> CheckpointSigner {
    CheckpointSigner::ed25519_from_seed(&[11; 32])
}

/// Writes the trail once on a simulated disk (fast), then takes its bytes.
fn build() -> Pristine {
    let disk = SimStorage::new();
    let storage: Arc<dyn Storage> = Arc::new(disk.clone());
    let dir = Path::new("/t");
    let options = FileSinkOptions {
        rotate_bytes: 6000,
        checkpoint: Some(CheckpointOptions {
            every_events: CHECKPOINT_EVERY,
            every: std::time::Duration::ZERO,
            ..CheckpointOptions::new(signer())
        }),
        ..Default::default()
    };
    let sink = FileSink::open_with(storage.clone(), dir, options).unwrap();
    let mut appended = 0;
    while sink.head().next_seq < EVENTS {
        let mut r = Record::at(
            EventKind::Decision,
            Timestamp(1_800_000_000_000_000_000 + appended),
        );
        r.action = Some("clinic::read_chart".into());
        r.principal = Some(format!("user-{}", appended % 5).into());
        r.subject = Some(format!("hmac-sha256:{:064x}", appended * 7919).into());
        r.decision = Some("allow".into());
        sink.append(r).unwrap();
        appended += 1;
    }
    sink.close().unwrap();
    let manifest = Manifest::parse(&disk.read_all(&dir.join(MANIFEST_FILE)).unwrap()).unwrap();
    let files: Vec<Vec<Vec<u8>>> = manifest
        .paths(dir)
        .iter()
        .map(|p| {
            let bytes = disk.read_all(p).unwrap();
            assert_eq!(bytes.last(), Some(&b'\n'));
            bytes[..bytes.len() - 1]
                .split(|&b| b == b'\n')
                .map(<[u8]>::to_vec)
                .collect()
        })
        .collect();
    let events: Vec<AuditEvent> = files
        .iter()
        .flatten()
        .map(|l| AuditEvent::parse(std::str::from_utf8(l).unwrap()).unwrap())
        .collect();
    let checkpoints = disk.read_all(&dir.join(CHECKPOINT_FILE)).unwrap();
    let v = signer().verifier();
    let checkpoint_seqs = checkpoints[..checkpoints.len() - 1]
        .split(|&b| b == b'\n')
        .map(|l| v.verify_line(l).unwrap().seq)
        .collect();
    Pristine {
        manifest,
        files,
        checkpoints,
        checkpoint_seqs,
        events,
    }
}

#[derive(Debug)]
enum Expect {
    /// Broken or incomplete line at (file, line) with the first affected seq.
    At(usize, usize, u64),
    /// Truncated: the first missing seq would be at (file, line).
    Truncated(usize, usize, u64),
    /// The head at (file, line) differs from the checkpoint at that seq.
    CheckpointAt(usize, usize, u64),
    /// Rewritten from `first` on: detected at checkpoint `seq`.
    Rewritten { first: u64, seq: u64 },
    /// A broken link (not a hash mismatch nor a gap) at (file, line) with that seq.
    Link(usize, usize, u64),
    /// A checkpoint whose signature does not verify, at that 1-based line of the file.
    Forged(usize),
}

struct Tampered {
    files: Vec<Vec<u8>>,
    manifest: Manifest,
    /// The checkpoint file, when the tampering changed it.
    checkpoints: Option<Vec<u8>>,
    expect: Expect,
    what: String,
}

fn join(lines: &[Vec<u8>]) -> Vec<u8> {
    let mut out = Vec::new();
    for l in lines {
        out.extend_from_slice(l);
        out.push(b'\n');
    }
    out
}

fn tamper(p: &Pristine, kind: u64, rng: &mut XorShift) -> Tampered {
    let mut lines = p.files.clone();
    let mut manifest = p.manifest.clone();
    let total = p.total();
    let last_file = lines.len() - 1;
    let mut files: Option<Vec<Vec<u8>>> = None;
    let mut checkpoints: Option<Vec<u8>> = None;
    let (expect, what) = match kind {
        0 => {
            let g = rng.below(total);
            let (f, l) = p.loc(g);
            let line = &mut lines[f][l - 1];
            let pos = rng.below(line.len() as u64 + 1) as usize;
            let mut raw: Vec<Vec<u8>> = lines.iter().map(|ls| join(ls)).collect();
            // Offset of the byte within the file (the line's bytes, then its newline).
            let offset: usize = lines[f][..l - 1].iter().map(|x| x.len() + 1).sum::<usize>() + pos;
            let mask = 1 + rng.below(255) as u8;
            raw[f][offset] ^= mask;
            files = Some(raw);
            (
                Expect::At(f, l, g),
                format!("byte {pos} of seq {g} flipped"),
            )
        }
        1 => {
            let g = rng.below(total);
            let (f, l) = p.loc(g);
            lines[f].remove(l - 1);
            let expect = if g + 1 == total {
                Expect::Truncated(f, l, g)
            } else if l <= lines[f].len() {
                Expect::At(f, l, g)
            } else {
                Expect::At(f + 1, 1, g)
            };
            (expect, format!("seq {g} deleted"))
        }
        2 => {
            let f = rng.below(lines.len() as u64) as usize;
            let n = lines[f].len() as u64;
            let a = rng.below(n - 1) as usize;
            let b = a + 1 + rng.below(n - 1 - a as u64) as usize;
            lines[f].swap(a, b);
            let g = p.global(f, a + 1);
            (
                Expect::At(f, a + 1, g),
                format!("lines {} and {} of file {f} swapped", a + 1, b + 1),
            )
        }
        3 => {
            // Position: before line l of file f (l = len + 1: at the file's end), never after
            // the trail's last event (appending a valid event is not tampering).
            let f = rng.below(lines.len() as u64) as usize;
            let max_l = if f == last_file {
                lines[f].len()
            } else {
                lines[f].len() + 1
            };
            let l = 1 + rng.below(max_l as u64) as usize;
            let expected = if l <= lines[f].len() {
                p.global(f, l)
            } else {
                p.global(f, l - 1) + 1
            };
            let variant = rng.below(3);
            let (inserted, expect) = match variant {
                0 => {
                    let mut h = rng.below(total);
                    if h == expected {
                        h = (h + 1) % total;
                    }
                    (
                        p.events[h as usize].line().as_bytes().to_vec(),
                        Expect::At(f, l, expected),
                    )
                }
                1 => {
                    let junk = format!(
                        "{{\"seq\":{expected},\"note\":\"not an event {}\"}}",
                        rng.next_u64()
                    );
                    (junk.into_bytes(), Expect::At(f, l, expected))
                }
                _ => {
                    let prev = if expected == 0 {
                        GENESIS
                    } else {
                        p.events[expected as usize - 1].hash
                    };
                    let mut chain = Chain {
                        next_seq: expected,
                        head: prev,
                    };
                    let forged = chain
                        .link(Record::at(EventKind::Decision, Timestamp(1)))
                        .unwrap();
                    // Chained correctly, the forgery itself passes the chain check: it is
                    // caught by a checkpoint at its own seq, or else at the event it displaced.
                    let expect = if p.checkpoint_seqs.contains(&expected) {
                        Expect::CheckpointAt(f, l, expected)
                    } else if l <= lines[f].len() {
                        Expect::At(f, l + 1, expected + 1)
                    } else {
                        Expect::At(f + 1, 1, expected + 1)
                    };
                    (forged.line().as_bytes().to_vec(), expect)
                }
            };
            lines[f].insert(l - 1, inserted);
            (
                expect,
                format!("line inserted (variant {variant}) before line {l} of file {f}"),
            )
        }
        4 => {
            let n = lines[last_file].len();
            match rng.below(3) {
                0 => {
                    let k = 1 + rng.below(n as u64) as usize;
                    lines[last_file].truncate(n - k);
                    let seq = total - k as u64;
                    (
                        Expect::Truncated(last_file, n - k + 1, seq),
                        format!("last {k} events cut"),
                    )
                }
                1 => {
                    let j = rng.below(n as u64) as usize;
                    let keep = 1 + rng.below(lines[last_file][j].len() as u64 - 1) as usize;
                    lines[last_file][j].truncate(keep);
                    lines[last_file].truncate(j + 1);
                    let mut raw: Vec<Vec<u8>> = lines.iter().map(|ls| join(ls)).collect();
                    raw[last_file].pop(); // no newline after the cut line
                    files = Some(raw);
                    let g = p.global(last_file, j + 1);
                    (
                        Expect::At(last_file, j + 1, g),
                        format!("cut inside seq {g}"),
                    )
                }
                _ => {
                    let dropped = lines.pop().unwrap();
                    manifest.files.pop();
                    let f = lines.len() - 1;
                    let seq = total - dropped.len() as u64;
                    (
                        Expect::Truncated(f, lines[f].len() + 1, seq),
                        "last file and its manifest entry removed".into(),
                    )
                }
            }
        }
        5 => {
            let first = rng.below(total);
            rewrite_from(p, &mut lines, &mut manifest, first);
            let seq = *p.checkpoint_seqs.iter().find(|&&s| s >= first).unwrap();
            (
                Expect::Rewritten { first, seq },
                format!("history rewritten from seq {first}"),
            )
        }
        6 => {
            // Not the last event: removing that one is a cut tail, not a relinked chain.
            let g = rng.below(total - 1);
            let (f, l) = p.loc(g);
            let mut seq = 0u64;
            for (fi, file) in lines.iter_mut().enumerate() {
                let mut kept = Vec::with_capacity(file.len());
                for (li, line) in file.iter().enumerate() {
                    let orig = p.global(fi, li + 1);
                    if orig == g {
                        continue;
                    }
                    if orig > g {
                        // Renumbered and re-hashed, its own `prev` kept.
                        let e = &p.events[orig as usize];
                        let moved = AuditEvent::seal(seq, e.prev, e.record.clone()).unwrap();
                        kept.push(moved.line().as_bytes().to_vec());
                    } else {
                        kept.push(line.clone());
                    }
                    seq += 1;
                }
                *file = kept;
            }
            let expect = if l <= lines[f].len() {
                Expect::Link(f, l, g)
            } else {
                Expect::Link(f + 1, 1, g)
            };
            (expect, format!("seq {g} removed and the chain relinked"))
        }
        _ => {
            let first = rng.below(total);
            let heads = rewrite_from(p, &mut lines, &mut manifest, first);
            let resign = rng.below(2) == 1;
            let attacker = CheckpointSigner::ed25519_from_seed(&[66; 32]);
            let verifier = signer().verifier();
            let mut out = Vec::new();
            let mut forged_at = None;
            let body = &p.checkpoints[..p.checkpoints.len() - 1];
            for (i, l) in body.split(|&b| b == b'\n').enumerate() {
                let cp = verifier.verify_line(l).unwrap();
                if cp.seq >= first {
                    forged_at.get_or_insert(i + 1);
                    let head = heads[cp.seq as usize];
                    let line = if resign {
                        attacker.sign(&cp.log, cp.seq, head, cp.time).replacen(
                            attacker.key_id(),
                            signer().key_id(),
                            1,
                        )
                    } else {
                        String::from_utf8(l.to_vec()).unwrap().replacen(
                            &cp.head.to_hex(),
                            &head.to_hex(),
                            1,
                        )
                    };
                    out.extend_from_slice(line.as_bytes());
                } else {
                    out.extend_from_slice(l);
                }
                out.push(b'\n');
            }
            checkpoints = Some(out);
            (
                Expect::Forged(forged_at.unwrap()),
                format!(
                    "history rewritten from seq {first}, checkpoints forged ({})",
                    if resign {
                        "re-signed"
                    } else {
                        "signatures kept"
                    }
                ),
            )
        }
    };
    let files = files.unwrap_or_else(|| lines.iter().map(|ls| join(ls)).collect());
    Tampered {
        files,
        manifest,
        checkpoints,
        expect,
        what,
    }
}

/// Rewrites every event from `first` on (the first one's principal changed), recomputing
/// the chain and the manifest's links as an attacker with write access would. Returns the
/// new hash of every event, by seq.
fn rewrite_from(
    p: &Pristine,
    lines: &mut [Vec<Vec<u8>>],
    manifest: &mut Manifest,
    first: u64,
) -> Vec<Digest> {
    let mut heads: Vec<Digest> = p.events.iter().map(|e| e.hash).collect();
    let mut head = if first == 0 {
        GENESIS
    } else {
        p.events[first as usize - 1].hash
    };
    let mut g = 0u64;
    for file in lines.iter_mut() {
        for line in file.iter_mut() {
            if g >= first {
                let mut record = p.events[g as usize].record.clone();
                if g == first {
                    record.principal = Some("mallory".into());
                }
                let e = AuditEvent::seal(g, head, record).unwrap();
                head = e.hash;
                heads[g as usize] = e.hash;
                *line = e.line().as_bytes().to_vec();
            }
            g += 1;
        }
    }
    // The attacker also fixes the manifest's links, so only checkpoints can tell.
    let mut prev = GENESIS;
    for (entry, file) in manifest.files.iter_mut().zip(lines.iter()) {
        entry.prev = prev;
        let last = AuditEvent::parse(std::str::from_utf8(file.last().unwrap()).unwrap()).unwrap();
        prev = last.hash;
    }
    heads
}

fn write_trail(
    dir: &Path,
    p: &Pristine,
    files: &[Vec<u8>],
    manifest: &Manifest,
    checkpoints: &[u8],
) -> Vec<PathBuf> {
    let paths = p.manifest.paths(dir);
    for (path, bytes) in paths.iter().zip(files) {
        std::fs::write(path, bytes).unwrap();
    }
    std::fs::write(dir.join(MANIFEST_FILE), manifest.to_text()).unwrap();
    std::fs::write(dir.join(CHECKPOINT_FILE), checkpoints).unwrap();
    paths
}

fn check(err: &TrailError, expect: &Expect, paths: &[PathBuf], p: &Pristine, what: &str) {
    match (expect, err) {
        (
            Expect::At(f, l, seq),
            TrailError::Broken {
                path, line, seq: s, ..
            }
            | TrailError::Incomplete {
                path, line, seq: s, ..
            },
        ) => {
            assert_eq!((path, line, s), (&paths[*f], l, seq), "{what}: {err}");
        }
        (
            Expect::Truncated(f, l, seq),
            TrailError::Truncated {
                path, line, seq: s, ..
            },
        ) => {
            assert_eq!((path, line, s), (&paths[*f], l, seq), "{what}: {err}");
        }
        (
            Expect::Rewritten { first, seq },
            TrailError::HistoryRewritten {
                path,
                line,
                seq: s,
                since_seq,
                ..
            },
        ) => {
            let (f, l) = p.loc(*seq);
            assert_eq!((path, line, s), (&paths[f], &l, seq), "{what}: {err}");
            assert!(
                *since_seq <= *first && first <= s,
                "{what}: range {since_seq}..={s} misses {first}"
            );
            assert!(
                s - since_seq <= CHECKPOINT_EVERY,
                "{what}: range too wide: {err}"
            );
        }
        (
            Expect::CheckpointAt(f, l, seq),
            TrailError::HistoryRewritten {
                path, line, seq: s, ..
            },
        ) => {
            assert_eq!((path, line, s), (&paths[*f], l, seq), "{what}: {err}");
        }
        (
            Expect::Link(f, l, seq),
            TrailError::Broken {
                path,
                line,
                seq: s,
                kind: BreakKind::BrokenLink,
                ..
            },
        ) => {
            assert_eq!((path, line, s), (&paths[*f], l, seq), "{what}: {err}");
        }
        (Expect::Forged(l), TrailError::Checkpoint { line, source, .. })
            if matches!(**source, CheckpointError::BadSignature) =>
        {
            assert_eq!(line, l, "{what}: {err}");
        }
        _ => panic!("{what}: expected {expect:?}, got {err}"),
    }
    assert!(
        err.is_tampering(),
        "{what}: {err} not classified as tampering"
    );
}

#[test]
fn a_thousand_random_tamperings_are_all_detected_at_the_first_affected_event() {
    let p = build();
    assert!(
        p.files.len() >= 8,
        "the trail should span many files: {}",
        p.files.len()
    );
    let dir = tempfile::tempdir().unwrap();
    let verifier: CheckpointVerifier = signer().verifier();
    let cps = dir.path().join(CHECKPOINT_FILE);
    // The pristine copy verifies.
    let paths = write_trail(
        dir.path(),
        &p,
        &p.files.iter().map(|l| join(l)).collect::<Vec<_>>(),
        &p.manifest,
        &p.checkpoints,
    );
    let report = verify_trail(&[dir.path()], Some((&cps, &verifier)), &mut |_| {}).unwrap();
    assert_eq!((report.events, report.unchecked_events), (p.total(), 0));

    let names = [
        "byte flip",
        "line deleted",
        "lines swapped",
        "line inserted",
        "tail truncated",
        "history rewritten",
        "chain relinked",
        "checkpoint forged",
    ];
    let mut counts: BTreeMap<&str, u32> = BTreeMap::new();
    let mut rng = XorShift::new(2026);
    for round in 0..1000 {
        let kind = rng.below(names.len() as u64);
        let t = tamper(&p, kind, &mut rng);
        let cps_bytes = t.checkpoints.as_deref().unwrap_or(&p.checkpoints);
        write_trail(dir.path(), &p, &t.files, &t.manifest, cps_bytes);
        let what = format!("round {round}: {}", t.what);
        let err = verify_trail(&[dir.path()], Some((&cps, &verifier)), &mut |_| {})
            .err()
            .unwrap_or_else(|| panic!("{what}: NOT DETECTED"));
        check(&err, &t.expect, &paths, &p, &what);
        *counts.entry(names[kind as usize]).or_default() += 1;
    }
    println!("tamperings detected at the first affected event: {counts:?} (1000 of 1000)");
    assert_eq!(counts.len(), names.len(), "{counts:?}");
    assert!(counts.values().all(|&n| n >= 80), "{counts:?}");
}
