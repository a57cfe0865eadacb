//! Reading a file trail back as typed events, verifying every line on the way.
//!
//! [`FileTrail::open`] reads a trail directory's manifest; [`FileTrail::events`] streams the
//! events of every listed file in chain order, one line at a time (a file is never held in
//! memory). Each line is checked against the chain before its event is yielded: its hash, its
//! sequence number and its link to the event before, and each file's first event against
//! the manifest entry. The first problem ends the stream with a [`TrailError`] naming the
//! file, the 1-based line and the sequence number the chain expected there; no event past a
//! broken link is ever yielded.
//!
//! What a read cannot tell on its own: a tail cut after the last event, or a history rewritten
//! with a recomputed chain. Only signed checkpoints prove those ([`crate::verify_trail`] with a
//! checkpoint file).

use std::io::Read;
use std::path::{Path, PathBuf};

use crate::chain::Chain;
use crate::event::{AuditEvent, Timestamp};
use crate::file::{LineReader, MANIFEST_FILE, Manifest, ManifestEntry};
use crate::io::{StdStorage, Storage};
use crate::trail::TrailError;
use crate::verify::{BreakKind, Verifier};

/// A file trail opened for reading: the manifest and the files it lists.
///
/// ```
/// use guardrail_audit::{AuditSink, EventKind, FileSink, FileSinkOptions, FileTrail, Record};
/// let dir = tempfile::tempdir().unwrap();
/// let sink = FileSink::open(dir.path(), FileSinkOptions::default()).unwrap();
/// for id in ["req-1", "req-2", "req-1"] {
///     let mut r = Record::new(EventKind::Decision);
///     r.request_id = Some(id.into());
///     sink.append(r).unwrap();
/// }
/// sink.close().unwrap();
///
/// let trail = FileTrail::open(dir.path()).unwrap();
/// // Every event, verified as it is read.
/// let all: Vec<_> = trail.events().collect::<Result<_, _>>().unwrap();
/// assert_eq!(all.iter().map(|e| e.seq).collect::<Vec<_>>(), [0, 1, 2]);
/// // One request's events (every line is still verified, only matches are yielded).
/// let seqs: Vec<u64> = trail
///     .events()
///     .request_id("req-1")
///     .map(|e| e.map(|e| e.seq))
///     .collect::<Result<_, _>>()
///     .unwrap();
/// assert_eq!(seqs, [0, 2]);
/// ```
#[derive(Clone, Debug)]
pub struct FileTrail {
    dir: PathBuf,
    manifest_path: PathBuf,
    manifest: Manifest,
}

impl FileTrail {
    /// Opens the trail in `dir` (the directory holding `manifest.jsonl`) and reads its
    /// manifest. The event files are opened only when [`FileTrail::events`] reaches them.
    pub fn open(dir: impl AsRef<Path>) -> Result<FileTrail, TrailError> {
        let dir = dir.as_ref();
        let storage = StdStorage;
        if !storage.is_dir(dir) {
            return Err(if storage.exists(dir) {
                TrailError::Usage(format!(
                    "`{}` is not a trail directory (give the directory that holds `{MANIFEST_FILE}`)",
                    dir.display()
                ))
            } else {
                TrailError::MissingFile {
                    path: dir.to_owned(),
                    listed_in: None,
                }
            });
        }
        let manifest_path = dir.join(MANIFEST_FILE);
        let bytes = storage
            .read_all(&manifest_path)
            .map_err(|e| io_error(&manifest_path, e, None))?;
        let manifest = Manifest::parse(&bytes).map_err(|source| TrailError::Manifest {
            path: manifest_path.clone(),
            source,
        })?;
        Ok(FileTrail {
            dir: dir.to_owned(),
            manifest_path,
            manifest,
        })
    }

    /// The trail directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The log identifier the manifest names.
    pub fn log(&self) -> &str {
        &self.manifest.log
    }

    /// The event files, in chain order.
    pub fn files(&self) -> Vec<PathBuf> {
        self.manifest.paths(&self.dir)
    }

    /// Streams every event from genesis, verified as it is read. See [`TrailEvents`] for the
    /// filters.
    pub fn events(&self) -> TrailEvents {
        TrailEvents {
            storage: Box::new(StdStorage),
            manifest_path: self.manifest_path.clone(),
            files: self
                .manifest
                .files
                .iter()
                .map(|e| (self.dir.join(&e.file), e.clone()))
                .collect(),
            next_file: 0,
            current: None,
            verifier: Verifier::new(Chain::new()),
            filter: Filter::default(),
            done: false,
        }
    }
}

/// The open file of a [`TrailEvents`] stream.
struct Current {
    path: PathBuf,
    entry: ManifestEntry,
    lines: LineReader<Box<dyn Read + Send>>,
    events_here: u64,
}

/// The request/subject/time filters of a trail reader (the SQL table readers use the same).
#[derive(Clone, Debug, Default)]
pub(crate) struct Filter {
    pub(crate) request_id: Option<String>,
    pub(crate) subject: Option<String>,
    pub(crate) since: Option<Timestamp>,
    pub(crate) until: Option<Timestamp>,
}

impl Filter {
    pub(crate) fn accepts(&self, e: &AuditEvent) -> bool {
        let r = &e.record;
        self.request_id
            .as_deref()
            .is_none_or(|id| r.request_id.as_deref() == Some(id))
            && self.subject.as_deref().is_none_or(|token| {
                r.subject.as_deref() == Some(token) || r.subjects.iter().any(|s| &**s == token)
            })
            && self.since.is_none_or(|t| r.time >= t)
            && self.until.is_none_or(|t| r.time < t)
    }
}

/// The events of a [`FileTrail`], in chain order: an iterator of `Result<AuditEvent,
/// TrailError>`.
///
/// Every line of every file is verified, including the lines a filter skips, so a filtered
/// read proves as much as a full one. After the first `Err` the iterator ends (it is fused).
/// Filters combine (all must match):
///
/// * [`TrailEvents::request_id`]: the events of one request (its decision and outcome);
/// * [`TrailEvents::subject`]: the events touching one patient, by keyed token (the
///   `subject` of single calls and the `subjects` of bulk calls);
/// * [`TrailEvents::since`] / [`TrailEvents::until`]: a time range, `since <= time < until`.
pub struct TrailEvents {
    storage: Box<dyn Storage>,
    manifest_path: PathBuf,
    files: Vec<(PathBuf, ManifestEntry)>,
    next_file: usize,
    current: Option<Current>,
    verifier: Verifier,
    filter: Filter,
    done: bool,
}

impl std::fmt::Debug for TrailEvents {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TrailEvents")
            .field("manifest", &self.manifest_path)
            .field("file", &self.current.as_ref().map(|c| &c.path))
            .field("verified", &self.verifier.report().events)
            .field("filter", &self.filter)
            .field("done", &self.done)
            .finish()
    }
}

impl TrailEvents {
    /// Yields only the events with this request id.
    pub fn request_id(mut self, id: &str) -> TrailEvents {
        self.filter.request_id = Some(id.to_owned());
        self
    }

    /// Yields only the events whose `subject`, or one of whose `subjects`, is this keyed
    /// token (as [`crate::AuditKey::token`] makes it, or `Guardrail::subject_token` in
    /// guardrail-core; never the raw identifier, which the trail does not hold).
    pub fn subject(mut self, token: &str) -> TrailEvents {
        self.filter.subject = Some(token.to_owned());
        self
    }

    /// Yields only the events at or after `time`.
    pub fn since(mut self, time: Timestamp) -> TrailEvents {
        self.filter.since = Some(time);
        self
    }

    /// Yields only the events before `time`.
    pub fn until(mut self, time: Timestamp) -> TrailEvents {
        self.filter.until = Some(time);
        self
    }

    /// The chain after the last verified line: how far the stream has proven the trail.
    pub fn verified(&self) -> Chain {
        self.verifier.report().head
    }

    /// Opens the next listed file, or returns `false` at the end of the trail.
    fn open_next(&mut self) -> Result<bool, TrailError> {
        let Some((path, entry)) = self.files.get(self.next_file).cloned() else {
            return Ok(false);
        };
        self.next_file += 1;
        let reader = self
            .storage
            .open_read(&path)
            .map_err(|e| io_error(&path, e, Some(&self.manifest_path)))?;
        self.current = Some(Current {
            path,
            entry,
            lines: LineReader::new(reader),
            events_here: 0,
        });
        Ok(true)
    }

    /// Checks that a file starts where its manifest entry says (`at` is the chain there).
    fn check_listed(&self, cur: &Current, at: Chain) -> Result<(), TrailError> {
        if cur.entry.first_seq != at.next_seq || cur.entry.prev != at.head {
            return Err(TrailError::ManifestMismatch {
                path: cur.path.clone(),
                manifest: self.manifest_path.clone(),
                found_seq: at.next_seq,
                listed_seq: cur.entry.first_seq,
            });
        }
        Ok(())
    }

    /// The next verified event, filtered or not; `None` at the end of the trail.
    fn next_verified(&mut self) -> Result<Option<AuditEvent>, TrailError> {
        loop {
            let Some(mut cur) = self.current.take() else {
                if !self.open_next()? {
                    return Ok(None);
                }
                continue;
            };
            let expected = self.verifier.report().head;
            let line = cur
                .lines
                .next_line()
                .map_err(|e| io_error(&cur.path, e, None))?;
            let Some(line) = line else {
                if cur.events_here == 0 {
                    // An empty file must still sit where the manifest says.
                    self.check_listed(&cur, expected)?;
                }
                continue;
            };
            if !line.complete || line.too_long {
                return Err(TrailError::Incomplete {
                    path: cur.path.clone(),
                    line: line.number,
                    seq: expected.next_seq,
                    too_long: line.too_long,
                });
            }
            let number = line.number;
            if let Err(e) = self.verifier.push_line(number, line.bytes) {
                return Err(TrailError::Broken {
                    path: cur.path.clone(),
                    line: number,
                    seq: expected.next_seq,
                    found_seq: e.seq,
                    kind: e.kind,
                });
            }
            // The chain accepted the line: it is the event at `expected.next_seq`.
            let event = std::str::from_utf8(line.bytes)
                .ok()
                .and_then(|text| AuditEvent::parse(text).ok())
                .ok_or_else(|| TrailError::Broken {
                    path: cur.path.clone(),
                    line: number,
                    seq: expected.next_seq,
                    found_seq: Some(expected.next_seq),
                    kind: BreakKind::Malformed,
                })?;
            if cur.events_here == 0 {
                self.check_listed(&cur, expected)?;
            }
            cur.events_here += 1;
            self.current = Some(cur);
            return Ok(Some(event));
        }
    }
}

impl Iterator for TrailEvents {
    type Item = Result<AuditEvent, TrailError>;

    fn next(&mut self) -> Option<Self::Item> {
        while !self.done {
            match self.next_verified() {
                Ok(Some(event)) if self.filter.accepts(&event) => return Some(Ok(event)),
                Ok(Some(_)) => {}
                Ok(None) => self.done = true,
                Err(e) => {
                    self.done = true;
                    return Some(Err(e));
                }
            }
        }
        None
    }
}

impl std::iter::FusedIterator for TrailEvents {}

fn io_error(path: &Path, e: std::io::Error, listed_in: Option<&Path>) -> TrailError {
    if e.kind() == std::io::ErrorKind::NotFound {
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
