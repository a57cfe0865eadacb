//! Verifying a trail on disk: every file, across rotation, against signed checkpoints.
//!
//! [`verify_trail`] is what `guardrail audit verify` runs. It streams each file line by line
//! (never holding a file in memory), recomputes every hash and link with [`Verifier`], checks
//! that each file starts where the manifest says, and compares the chain head at every signed
//! checkpoint. The first problem is returned as a [`TrailError`] naming the file, the 1-based
//! line and the sequence number of the first affected event.
//!
//! What each check catches:
//!
//! * an edited, inserted, removed or reordered line: the hash chain, at that exact line;
//! * a cut tail or a removed last file: only checkpoints can tell (fewer events than the
//!   last checkpoint covers: [`TrailError::Truncated`]); events written after the last
//!   checkpoint can be removed without trace, which is why the sink checkpoints on close;
//! * a history rewritten with a recomputed chain: only checkpoints can tell
//!   ([`TrailError::HistoryRewritten`], naming the first checkpoint whose head differs and the
//!   range of events, after the last matching checkpoint, where the rewrite began).

use std::io;
use std::path::{Path, PathBuf};

use crate::chain::Chain;
use crate::checkpoint::{Checkpoint, CheckpointError, CheckpointVerifier};
use crate::file::{LineReader, MANIFEST_FILE, Manifest, ManifestEntry, ManifestError};
use crate::io::{StdStorage, Storage};
use crate::verify::{BreakKind, Verifier};

/// How often (in events) the progress callback is called during a long verification.
pub const PROGRESS_EVERY: u64 = 1 << 16;

/// One verified file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileReport {
    /// The file.
    pub path: PathBuf,
    /// Sequence number of its first event (or of the event it expected, when empty).
    pub first_seq: u64,
    /// Events in it.
    pub events: u64,
    /// Its size in bytes.
    pub bytes: u64,
}

/// A sound trail.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TrailReport {
    /// The files, in chain order.
    pub files: Vec<FileReport>,
    /// Events verified.
    pub events: u64,
    /// Bytes read.
    pub bytes: u64,
    /// The head after the last event: where the next event must link.
    pub head: Chain,
    /// The log identifier, when a manifest was read.
    pub log: Option<String>,
    /// Checkpoints whose signature and head were checked.
    pub checkpoints: usize,
    /// Sequence number of the last checkpoint, if any.
    pub last_checkpoint_seq: Option<u64>,
    /// Events after the last checkpoint: their removal could not have been detected.
    pub unchecked_events: u64,
}

/// Why a trail does not verify, or could not be verified. Messages name the file and line.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TrailError {
    /// The arguments do not name a trail.
    #[error("{0}")]
    Usage(String),
    /// A file does not exist.
    #[error("`{}` does not exist{}", path.display(), listed_in.as_ref().map(|m| format!(" (listed in manifest `{}`)", m.display())).unwrap_or_default())]
    MissingFile {
        /// The missing file.
        path: PathBuf,
        /// The manifest that lists it, if it was listed.
        listed_in: Option<PathBuf>,
    },
    /// A file could not be read.
    #[error("cannot read `{}`: {source}", path.display())]
    Unreadable {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: io::Error,
    },
    /// The manifest is not well-formed.
    #[error("manifest `{}` {source}", path.display())]
    Manifest {
        /// The manifest.
        path: PathBuf,
        /// What is wrong, with its line.
        source: ManifestError,
    },
    /// A line breaks the chain: it was edited, inserted, removed or moved.
    #[error("`{}` line {line}: {}{}", path.display(), describe_break(*kind, *seq), found_seq.map(|s| format!(" (the line says seq {s})")).unwrap_or_default())]
    Broken {
        /// The file.
        path: PathBuf,
        /// 1-based line in that file.
        line: usize,
        /// The sequence number the chain expected at this line: the first affected event.
        seq: u64,
        /// The sequence number written on the line, where it could be read.
        found_seq: Option<u64>,
        /// What is wrong.
        kind: BreakKind,
    },
    /// A file ends in a line without a newline (a crash the sink has not recovered yet, or a
    /// cut), or holds a line longer than any event.
    #[error("`{}` line {line}: {} (expected seq {seq})", path.display(), if *too_long { "the line is longer than any audit event" } else { "the file ends in an incomplete line (a crash the sink has not recovered yet, or a cut)" })]
    Incomplete {
        /// The file.
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// The sequence number the chain expected there.
        seq: u64,
        /// The line is too long rather than unterminated.
        too_long: bool,
    },
    /// A file does not start where the manifest says.
    #[error("`{}` starts at seq {found_seq}, but manifest `{}` says it starts at seq {listed_seq} (or links elsewhere)", path.display(), manifest.display())]
    ManifestMismatch {
        /// The file.
        path: PathBuf,
        /// The manifest.
        manifest: PathBuf,
        /// Where the chain actually is at the file's start.
        found_seq: u64,
        /// Where the manifest says the file starts.
        listed_seq: u64,
    },
    /// The trail holds fewer events than a signed checkpoint covers: its tail was removed.
    #[error("the trail ends before seq {seq} (after `{}` line {}), but checkpoint `{}` line {checkpoint_line} covers seq {checkpoint_seq}: events were removed from the end", path.display(), line.saturating_sub(1), checkpoint_path.display())]
    Truncated {
        /// The last file.
        path: PathBuf,
        /// The line where the first missing event should be.
        line: usize,
        /// The first missing sequence number.
        seq: u64,
        /// The checkpoint file.
        checkpoint_path: PathBuf,
        /// 1-based line of the checkpoint.
        checkpoint_line: usize,
        /// The last sequence number it covers.
        checkpoint_seq: u64,
    },
    /// The chain verifies but its head differs from a signed checkpoint: the history was
    /// rewritten (with a recomputed chain) somewhere in `since_seq..=seq`.
    #[error("`{}` line {line} (seq {seq}): the chain head differs from checkpoint `{}` line {checkpoint_line}: the history between seq {since_seq} and seq {seq} was rewritten (or the checkpoints belong to another log)", path.display(), checkpoint_path.display())]
    HistoryRewritten {
        /// The file holding the event at the checkpoint's seq.
        path: PathBuf,
        /// Its 1-based line.
        line: usize,
        /// The checkpoint's sequence number: the first event proven wrong.
        seq: u64,
        /// The first event after the last matching checkpoint: the rewrite began at or after it.
        since_seq: u64,
        /// The checkpoint file.
        checkpoint_path: PathBuf,
        /// 1-based line of the checkpoint.
        checkpoint_line: usize,
    },
    /// A checkpoint line is malformed, signed by another key, or its signature fails.
    #[error("checkpoint file `{}` line {line}: {source}", path.display())]
    Checkpoint {
        /// The checkpoint file.
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// What is wrong.
        source: Box<CheckpointError>,
    },
    /// A checkpoint belongs to another log.
    #[error("checkpoint file `{}` line {line} belongs to log `{found}`, not to this trail (log `{expected}`)", path.display())]
    OtherLog {
        /// The checkpoint file.
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// The log it names.
        found: String,
        /// The trail's log.
        expected: String,
    },
    /// Checkpoints are out of order (a later one covers fewer events).
    #[error("checkpoint file `{}` line {line}: seq {seq} does not come after seq {previous} of the line before", path.display())]
    CheckpointOrder {
        /// The checkpoint file.
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// Its seq.
        seq: u64,
        /// The seq of the checkpoint before.
        previous: u64,
    },
    /// A checkpoint is signed with another key than the other checkpoints of its file,
    /// which the given key signed: a line was replaced or inserted (tampering, unlike a
    /// file whose every line names another key, which is a wrong key given).
    #[error(
        "checkpoint file `{}` line {line}: {source}, while other lines of the file are signed with the given key (a checkpoint was replaced or inserted)",
        path.display()
    )]
    ForeignCheckpoint {
        /// The checkpoint file.
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// The [`CheckpointError::WrongKey`] of the line (boxed: it keeps the error small).
        source: Box<CheckpointError>,
    },
    /// A checkpoint file was given but holds no checkpoint although the trail has events.
    #[error("checkpoint file `{}` holds no checkpoint", path.display())]
    NoCheckpoints {
        /// The checkpoint file.
        path: PathBuf,
    },
}

fn describe_break(kind: BreakKind, seq: u64) -> String {
    match kind {
        BreakKind::Malformed => format!("not a well-formed audit event (expected seq {seq})"),
        BreakKind::HashMismatch => {
            format!("seq {seq}: the content does not match its hash (the event was altered)")
        }
        BreakKind::BrokenLink => format!(
            "seq {seq}: does not link to the event before (an event was removed, inserted or moved)"
        ),
        BreakKind::SequenceGap { expected } => {
            format!("expected seq {expected}: an event was removed, inserted or moved")
        }
    }
}

impl TrailError {
    /// True when the evidence itself is wrong (exit code 1 of `guardrail audit verify`);
    /// false for usage and I/O problems (exit code 2): unreadable or missing given files,
    /// a key that did not sign these checkpoints.
    pub fn is_tampering(&self) -> bool {
        match self {
            TrailError::Usage(_) | TrailError::Unreadable { .. } => false,
            TrailError::MissingFile { listed_in, .. } => listed_in.is_some(),
            TrailError::Checkpoint { source, .. } => !matches!(
                **source,
                CheckpointError::WrongKey { .. } | CheckpointError::UnsupportedVersion(_)
            ),
            _ => true,
        }
    }

    /// The file and 1-based line of the problem, where there is one.
    pub fn location(&self) -> Option<(&Path, usize)> {
        match self {
            TrailError::Broken { path, line, .. }
            | TrailError::Incomplete { path, line, .. }
            | TrailError::Truncated { path, line, .. }
            | TrailError::HistoryRewritten { path, line, .. }
            | TrailError::Checkpoint { path, line, .. }
            | TrailError::ForeignCheckpoint { path, line, .. }
            | TrailError::OtherLog { path, line, .. }
            | TrailError::CheckpointOrder { path, line, .. } => Some((path, *line)),
            TrailError::Manifest { path, source } => Some((path, source.line)),
            TrailError::ManifestMismatch { path, .. } => Some((path, 1)),
            _ => None,
        }
    }

    /// The sequence number of the first affected event, where there is one.
    pub fn seq(&self) -> Option<u64> {
        match self {
            TrailError::Broken { seq, .. }
            | TrailError::Incomplete { seq, .. }
            | TrailError::Truncated { seq, .. }
            | TrailError::HistoryRewritten { seq, .. } => Some(*seq),
            TrailError::ManifestMismatch { found_seq, .. } => Some(*found_seq),
            _ => None,
        }
    }
}

struct FileSpec {
    path: PathBuf,
    listed: Option<ManifestEntry>,
}

struct Resolved {
    files: Vec<FileSpec>,
    manifest: Option<(PathBuf, String)>,
}

fn read_manifest(storage: &dyn Storage, path: &Path) -> Result<Resolved, TrailError> {
    let manifest = Manifest::read_file(storage, path)
        .map_err(|e| file_error(path, e, None))?
        .map_err(|source| TrailError::Manifest {
            path: path.to_owned(),
            source,
        })?;
    let dir = path.parent().unwrap_or(Path::new("."));
    Ok(Resolved {
        files: manifest
            .files
            .iter()
            .map(|e| FileSpec {
                path: dir.join(&e.file),
                listed: Some(e.clone()),
            })
            .collect(),
        manifest: Some((path.to_owned(), manifest.log)),
    })
}

fn file_error(path: &Path, e: io::Error, listed_in: Option<&Path>) -> TrailError {
    if e.kind() == io::ErrorKind::NotFound {
        TrailError::MissingFile {
            path: path.to_owned(),
            listed_in: listed_in.map(Path::to_owned),
        }
    } else {
        TrailError::Unreadable {
            path: path.to_owned(),
            source: e,
        }
    }
}

fn resolve<P: AsRef<Path>>(storage: &dyn Storage, paths: &[P]) -> Result<Resolved, TrailError> {
    match paths {
        [] => Err(TrailError::Usage(
            "no trail given: name a trail directory, its manifest, or its files in order".into(),
        )),
        [one] if storage.is_dir(one.as_ref()) => {
            let manifest = one.as_ref().join(MANIFEST_FILE);
            if !storage.exists(&manifest) {
                return Err(TrailError::MissingFile {
                    path: manifest,
                    listed_in: None,
                });
            }
            read_manifest(storage, &manifest)
        }
        [one] if one.as_ref().file_name() == Some(MANIFEST_FILE.as_ref()) => {
            read_manifest(storage, one.as_ref())
        }
        many => {
            let mut files = Vec::with_capacity(many.len());
            for p in many {
                let p = p.as_ref();
                if storage.is_dir(p) {
                    return Err(TrailError::Usage(format!(
                        "`{}` is a directory: give one trail directory, or a list of files",
                        p.display()
                    )));
                }
                files.push(FileSpec {
                    path: p.to_owned(),
                    listed: None,
                });
            }
            Ok(Resolved {
                files,
                manifest: None,
            })
        }
    }
}

/// Reads and checks every checkpoint (signature, log, order).
fn load_checkpoints(
    storage: &dyn Storage,
    path: &Path,
    verifier: &CheckpointVerifier,
    log: Option<&str>,
) -> Result<Vec<(usize, Checkpoint)>, TrailError> {
    let reader = storage
        .open_read(path)
        .map_err(|e| file_error(path, e, None))?;
    let mut lines = LineReader::new(reader);
    let mut out: Vec<(usize, Checkpoint)> = Vec::new();
    let mut expected_log: Option<String> = log.map(str::to_owned);
    let mut foreign_line: Option<(usize, CheckpointError)> = None;
    while let Some(line) = lines.next_line().map_err(|e| file_error(path, e, None))? {
        let n = line.number;
        if !line.complete || line.too_long {
            return Err(TrailError::Checkpoint {
                path: path.to_owned(),
                line: n,
                source: Box::new(CheckpointError::Malformed(
                    "incomplete line (a crash the sink has not recovered yet, or a cut)".into(),
                )),
            });
        }
        let cp = match verifier.verify_line(line.bytes) {
            Ok(cp) => cp,
            Err(e @ CheckpointError::WrongKey { .. }) => {
                // Another key: the wrong key was given (usage) if no line is signed with the
                // given one; a line replaced (tampering) if some other line is.
                if !out.is_empty() {
                    return Err(foreign(path, n, e));
                }
                foreign_line.get_or_insert((n, e));
                continue;
            }
            Err(source) => {
                if let (Some((at, e)), CheckpointError::BadSignature) = (&foreign_line, &source) {
                    // This line names the given key, an earlier one another key.
                    return Err(foreign(path, *at, e.clone()));
                }
                return Err(TrailError::Checkpoint {
                    path: path.to_owned(),
                    line: n,
                    source: Box::new(source),
                });
            }
        };
        if let Some((at, e)) = foreign_line {
            return Err(foreign(path, at, e));
        }
        match &expected_log {
            Some(l) if *l != cp.log => {
                return Err(TrailError::OtherLog {
                    path: path.to_owned(),
                    line: n,
                    found: cp.log,
                    expected: l.clone(),
                });
            }
            Some(_) => {}
            None => expected_log = Some(cp.log.clone()),
        }
        if let Some((_, before)) = out.last() {
            if cp.seq <= before.seq {
                return Err(TrailError::CheckpointOrder {
                    path: path.to_owned(),
                    line: n,
                    seq: cp.seq,
                    previous: before.seq,
                });
            }
        }
        out.push((n, cp));
    }
    if let Some((line, source)) = foreign_line {
        return Err(TrailError::Checkpoint {
            path: path.to_owned(),
            line,
            source: Box::new(source),
        });
    }
    Ok(out)
}

/// A checkpoint signed with another key than the other lines of its file.
fn foreign(path: &Path, line: usize, source: CheckpointError) -> TrailError {
    TrailError::ForeignCheckpoint {
        path: path.to_owned(),
        line,
        source: Box::new(source),
    }
}

/// Verifies a trail on the real file system.
///
/// `paths` is one trail directory (its `manifest.jsonl` lists the files), the manifest
/// itself, or the event files in chain order. With `checkpoints` (the checkpoint file and
/// the key that signed it) a cut tail and a rewritten history are detected too. `progress`
/// is called with the number of events verified so far, every [`PROGRESS_EVERY`] events and
/// at the end. Never panics on bad input: every problem is a [`TrailError`] naming the file
/// and line.
///
/// ```
/// use guardrail_audit::{AuditSink, EventKind, FileSink, FileSinkOptions, Record, verify_trail};
/// use guardrail_audit::{CheckpointOptions, CheckpointSigner};
/// let dir = tempfile::tempdir().unwrap();
/// let signer = CheckpointSigner::ed25519_from_seed(&[9; 32]);
/// let options = FileSinkOptions {
///     checkpoint: Some(CheckpointOptions::new(signer.clone())),
///     ..Default::default()
/// };
/// let sink = FileSink::open(dir.path(), options).unwrap();
/// for _ in 0..3 {
///     sink.append(Record::new(EventKind::Decision)).unwrap();
/// }
/// sink.close().unwrap(); // writes the final checkpoint
/// let checkpoints = dir.path().join("checkpoints.jsonl");
/// let report = verify_trail(
///     &[dir.path()],
///     Some((&checkpoints, &signer.verifier())),
///     &mut |_| {},
/// )
/// .unwrap();
/// assert_eq!((report.events, report.last_checkpoint_seq), (3, Some(2)));
/// ```
pub fn verify_trail<P: AsRef<Path>>(
    paths: &[P],
    checkpoints: Option<(&Path, &CheckpointVerifier)>,
    progress: &mut dyn FnMut(u64),
) -> Result<TrailReport, TrailError> {
    verify_trail_with(&StdStorage, paths, checkpoints, progress)
}

/// [`verify_trail`] through another [`Storage`] (tests verify a simulated disk).
pub fn verify_trail_with<P: AsRef<Path>>(
    storage: &dyn Storage,
    paths: &[P],
    checkpoints: Option<(&Path, &CheckpointVerifier)>,
    progress: &mut dyn FnMut(u64),
) -> Result<TrailReport, TrailError> {
    let resolved = resolve(storage, paths)?;
    let log = resolved.manifest.as_ref().map(|(_, l)| l.as_str());
    let cps = match checkpoints {
        Some((path, verifier)) => Some((path, load_checkpoints(storage, path, verifier, log)?)),
        None => None,
    };
    let mut verifier = Verifier::new(Chain::new());
    let mut files = Vec::with_capacity(resolved.files.len());
    let mut total_bytes = 0u64;
    let mut next_cp = 0usize;
    let mut last_matched: Option<u64> = None;
    let mut last_line = (PathBuf::new(), 0usize);
    for spec in &resolved.files {
        let manifest_path = resolved.manifest.as_ref().map(|(p, _)| p.as_path());
        let reader = storage
            .open_read(&spec.path)
            .map_err(|e| file_error(&spec.path, e, manifest_path))?;
        let start = verifier.report().head;
        let check_listed = |at: Chain| -> Result<(), TrailError> {
            if let (Some(entry), Some(m)) = (&spec.listed, manifest_path) {
                if entry.first_seq != at.next_seq || entry.prev != at.head {
                    return Err(TrailError::ManifestMismatch {
                        path: spec.path.clone(),
                        manifest: m.to_owned(),
                        found_seq: at.next_seq,
                        listed_seq: entry.first_seq,
                    });
                }
            }
            Ok(())
        };
        let mut lines = LineReader::new(reader);
        let mut events_here = 0u64;
        let mut line_no = 0usize;
        while let Some(line) = lines
            .next_line()
            .map_err(|e| file_error(&spec.path, e, None))?
        {
            line_no = line.number;
            let expected = verifier.report().head;
            if !line.complete || line.too_long {
                return Err(TrailError::Incomplete {
                    path: spec.path.clone(),
                    line: line.number,
                    seq: expected.next_seq,
                    too_long: line.too_long,
                });
            }
            if let Err(e) = verifier.push_line(line.number, line.bytes) {
                return Err(TrailError::Broken {
                    path: spec.path.clone(),
                    line: line.number,
                    seq: expected.next_seq,
                    found_seq: e.seq,
                    kind: e.kind,
                });
            }
            if events_here == 0 {
                // The chain accepted the file's first line, so it starts at `expected`.
                check_listed(expected)?;
            }
            events_here += 1;
            let head = verifier.report().head;
            let seq = head.next_seq - 1;
            if let Some((cp_path, list)) = &cps {
                if let Some((cp_line, cp)) = list.get(next_cp) {
                    if cp.seq == seq {
                        if cp.head != head.head {
                            return Err(TrailError::HistoryRewritten {
                                path: spec.path.clone(),
                                line: line.number,
                                seq,
                                since_seq: last_matched.map_or(0, |s| s + 1),
                                checkpoint_path: cp_path.to_path_buf(),
                                checkpoint_line: *cp_line,
                            });
                        }
                        last_matched = Some(seq);
                        next_cp += 1;
                    }
                }
            }
            if head.next_seq % PROGRESS_EVERY == 0 {
                progress(verifier.report().events);
            }
        }
        if events_here == 0 {
            check_listed(start)?;
        }
        let bytes = lines.offset();
        total_bytes += bytes;
        last_line = (spec.path.clone(), line_no);
        files.push(FileReport {
            path: spec.path.clone(),
            first_seq: start.next_seq,
            events: events_here,
            bytes,
        });
    }
    let report = verifier.report();
    let mut checked = 0;
    let mut last_cp_seq = None;
    if let Some((cp_path, list)) = &cps {
        if let (Some(_), Some((cp_line, cp))) = (list.get(next_cp), list.last()) {
            return Err(TrailError::Truncated {
                path: last_line.0,
                line: last_line.1 + 1,
                seq: report.head.next_seq,
                checkpoint_path: cp_path.to_path_buf(),
                checkpoint_line: *cp_line,
                checkpoint_seq: cp.seq,
            });
        }
        if list.is_empty() && report.events > 0 {
            return Err(TrailError::NoCheckpoints {
                path: cp_path.to_path_buf(),
            });
        }
        checked = list.len();
        last_cp_seq = list.last().map(|(_, c)| c.seq);
    }
    progress(report.events);
    let unchecked_events = match (cps.is_some(), last_cp_seq) {
        (true, Some(s)) => report.head.next_seq - (s + 1),
        _ => report.events,
    };
    Ok(TrailReport {
        files,
        events: report.events,
        bytes: total_bytes,
        head: report.head,
        log: resolved.manifest.map(|(_, l)| l),
        checkpoints: checked,
        last_checkpoint_seq: last_cp_seq,
        unchecked_events,
    })
}
