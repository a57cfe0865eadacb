//! The durable file sink: JSON lines carrying the hash chain, group commit, torn-tail recovery,
//! size-based rotation with a manifest, and signed checkpoints.
//!
//! Layout of a trail directory:
//!
//! ```text
//! manifest.jsonl          which files, in order, and where each one's chain starts
//! audit-00000001.jsonl    events, one per line, exactly `AuditEvent::line()` + '\n'
//! audit-00000002.jsonl    (after rotation) continues the chain of the file before
//! checkpoints.jsonl       signed checkpoints (when configured; the path can be elsewhere)
//! ```
//!
//! Every append goes through one dedicated writer thread. In [`Durability::Fsync`] mode the
//! caller waits until the writer has written *and fsynced* the batch holding its event; all
//! events that arrive while an fsync is running are gathered into the next single write +
//! fsync (group commit). Once any write or fsync fails the sink is poisoned: a failed fsync
//! may have silently dropped the dirty pages (PostgreSQL's "fsyncgate"), so no later fsync
//! can prove anything; only [`FileSink::reopen`] (which re-reads and repairs the tail from
//! disk) makes the sink usable again.
//!
//! The format is specified in `docs/audit-format.md`.

mod lines;
mod manifest;
mod reader;
mod recover;
mod writer;

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::task::{Poll, Waker};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::chain::{Chain, Digest};
use crate::checkpoint::CheckpointOptions;
use crate::error::AuditError;
use crate::event::{AuditEvent, EncodedRecord, EventKind, Record, Timestamp};
use crate::io::{StdStorage, Storage};
use crate::sink::{AuditSink, Durable, Pending, Receipt, Submitted};

pub(crate) use lines::LineReader;
pub use lines::MAX_LINE_BYTES;
pub(crate) use manifest::file_name;
pub use manifest::{
    CHECKPOINT_FILE, MANIFEST_FILE, MANIFEST_VERSION, MAX_MANIFEST_BYTES, Manifest, ManifestEntry,
    ManifestError,
};
#[cfg(any(feature = "sqlite", feature = "postgres"))]
pub(crate) use reader::Filter;
pub use reader::{FileTrail, TrailEvents};

/// When [`FileSink::append`] returns, and what it promises then.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Durability {
    /// `append` returns `Ok` only once the event is written and fsynced: it survives a
    /// process crash and a power cut. Concurrent appends share one write + fsync.
    #[default]
    Fsync,
    /// `append` returns `Ok` once the event is sealed into the chain and queued; the writer
    /// thread writes it promptly and fsyncs at least every [`FileSinkOptions::sync_interval`],
    /// at rotation, on [`AuditSink::flush`] and on close. A power cut (or a process crash
    /// before the write) can lose the events of the last interval; what remains is still a
    /// valid chain after the torn tail is recovered, and checkpoints only ever cover fsynced
    /// events. Errors are reported by the next `append`/`flush` (the sink is poisoned).
    Buffered,
}

/// How a [`FileSink`] behaves. Build with `..Default::default()`.
///
/// ```
/// use guardrail_audit::{Durability, FileSinkOptions};
/// let options = FileSinkOptions {
///     durability: Durability::Fsync,
///     rotate_bytes: 64 << 20,
///     ..Default::default()
/// };
/// assert!(options.checkpoint.is_none());
/// ```
#[derive(Debug, Clone)]
pub struct FileSinkOptions {
    /// The sink's name in policy (`[audit] required = ["file"]`), metrics and errors.
    pub name: String,
    /// See [`Durability`].
    pub durability: Durability,
    /// A new file is started once the current one holds at least this many bytes.
    pub rotate_bytes: u64,
    /// In [`Durability::Buffered`] mode, the longest time written events stay unsynced.
    pub sync_interval: Duration,
    /// Signed checkpoints, if wanted.
    pub checkpoint: Option<CheckpointOptions>,
}

impl Default for FileSinkOptions {
    fn default() -> Self {
        FileSinkOptions {
            name: "file".into(),
            durability: Durability::Fsync,
            rotate_bytes: 64 << 20,
            sync_interval: Duration::from_millis(200),
            checkpoint: None,
        }
    }
}

/// What [`FileSink::open`] cut from a torn tail (also recorded as a `recovered` event).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Recovery {
    /// The file that was cut.
    pub file: PathBuf,
    /// 1-based line where the cut starts.
    pub line: usize,
    /// Byte offset where the cut starts (the new file length).
    pub offset: u64,
    /// Bytes removed.
    pub bytes_cut: u64,
    /// Why the first removed line was not kept.
    pub reason: String,
    /// Sequence number of the `recovered` event that records the cut.
    pub event_seq: u64,
}

/// Appends sent to the writer thread but not yet written.
#[derive(Debug)]
pub(crate) struct Batch {
    /// Number of the file the bytes belong to.
    pub file_no: u64,
    /// Where that file's chain starts (used when the batch opens a new file).
    pub first_seq: u64,
    pub prev: Digest,
    pub bytes: Vec<u8>,
    /// The chain after the batch's last event.
    pub end: Chain,
}

#[derive(Debug)]
pub(crate) struct State {
    pub chain: Chain,
    pub file_no: u64,
    /// Bytes of the current file, including queued ones.
    pub file_bytes: u64,
    pub queue: Vec<Batch>,
    pub queued_bytes: usize,
    pub queued_events: u64,
    /// Every event below this sequence number is written (not necessarily synced).
    pub written_next: u64,
    /// Every event below this sequence number is fsynced.
    pub durable_next: u64,
    /// First failure; the sink is poisoned while set.
    pub failure: Option<String>,
    pub closing: bool,
    pub flush_wanted: bool,
    /// Bumped by every reopen, so a waiter from before learns its event's fate is unknown.
    pub generation: u64,
    /// The writer is gathering a group and wants to hear once `queued_events` reaches
    /// `gather_target`.
    pub gathering: bool,
    pub gather_target: u64,
    pub recovery: Option<Recovery>,
}

/// What an appender waiting for its event to be fsynced looks at. It has a lock of its own
/// so that waking a group's appenders (all at once) does not make them queue on the state
/// lock that the next group's appends take.
#[derive(Debug)]
pub(crate) struct Synced {
    /// Every event below this sequence number (of `generation`) is fsynced.
    pub next: u64,
    /// [`State::generation`] this is about.
    pub generation: u64,
    /// The sink is poisoned ([`State::failure`] says why).
    pub failed: bool,
    /// Tasks awaiting a [`Pending`] of this sink, all woken by the next publication.
    pub wakers: Vec<Waker>,
}

#[derive(Debug)]
pub(crate) struct Shared {
    pub name: String,
    pub durability: Durability,
    pub rotate_bytes: u64,
    pub state: Mutex<State>,
    /// Signals the writer: work arrived, flush or close requested.
    pub work: Condvar,
    /// Signals flushes and back-pressured appends: a batch was written or became durable
    /// (or the sink failed).
    pub done: Condvar,
    /// How far the trail is durable, for `Fsync` appends waiting on `synced_cv`.
    pub synced: Mutex<Synced>,
    /// Signals `Fsync` appenders: `synced` changed.
    pub synced_cv: Condvar,
    /// How many threads are in [`Durable::wait`] for this sink (see [`SPIN_YIELDS`]).
    pub waiting: AtomicUsize,
}

impl Shared {
    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        // The state is only changed in small, complete steps; a panic elsewhere cannot leave
        // it half-updated, and the writer's own panics poison the sink explicitly.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn lock_synced(&self) -> MutexGuard<'_, Synced> {
        // Three plain fields, each written whole: nothing to be left half-updated.
        self.synced.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Tells waiting `Fsync` appenders how far `st`'s trail is durable, and whether it failed.
    /// Called with the state lock held (the state lock is always taken first).
    pub(crate) fn publish_synced(&self, st: &State) {
        let wakers = {
            let mut synced = self.lock_synced();
            synced.next = st.durable_next;
            synced.generation = st.generation;
            synced.failed = st.failure.is_some();
            std::mem::take(&mut synced.wakers)
        };
        self.synced_cv.notify_all();
        for waker in wakers {
            waker.wake();
        }
    }

    pub(crate) fn poison(&self, reason: String) {
        let mut st = self.lock();
        if st.failure.is_none() {
            st.failure = Some(reason);
        }
        self.publish_synced(&st);
        drop(st);
        self.done.notify_all();
    }
}

/// How many times a thread waiting for its `Fsync` append yields the CPU, re-checking
/// between yields, before it sleeps on the condition variable; only while another thread
/// waits as well.
///
/// Each durable append of a thread that sleeps costs a wake-up from the writer after the
/// fsync, and on a virtual machine a wake-up that crosses CPUs is dear. With many appending
/// threads, a yield hands the CPU to another appender, whose event joins the group commit
/// under way, and the thread is usually running again when its fsync is done: no wake-up.
/// A lone waiter (nothing else to run) sleeps at once rather than spin. Measured in
/// docs/benchmarks.md ("Yielding before sleeping").
const SPIN_YIELDS: usize = 64;

/// A thread counted in [`Shared::waiting`] while it lives.
struct Waiting<'a> {
    count: &'a AtomicUsize,
    /// How many other threads were waiting when this one entered.
    others: usize,
}

impl<'a> Waiting<'a> {
    fn enter(count: &'a AtomicUsize) -> Waiting<'a> {
        let others = count.fetch_add(1, Ordering::Relaxed);
        Waiting { count, others }
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.count.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Buffered appends wait once this many bytes are queued (back-pressure on a slow disk).
const MAX_QUEUED_BYTES: usize = 16 << 20;

/// The durable, tamper-evident file sink. See the module documentation.
///
/// ```
/// use guardrail_audit::{AuditSink, EventKind, FileSink, FileSinkOptions, Record, verify_trail};
/// let dir = tempfile::tempdir().unwrap();
/// let sink = FileSink::open(dir.path(), FileSinkOptions::default()).unwrap();
/// let receipt = sink.append(Record::new(EventKind::Decision)).unwrap(); // on disk now
/// assert_eq!(receipt.seq, 0);
/// sink.close().unwrap();
/// let report = verify_trail(&[dir.path()], None, &mut |_| {}).unwrap();
/// assert_eq!(report.events, 1);
/// ```
pub struct FileSink {
    shared: Arc<Shared>,
    writer: Mutex<Option<JoinHandle<()>>>,
    storage: Arc<dyn Storage>,
    dir: PathBuf,
    options: FileSinkOptions,
}

impl State {
    /// The state of a sink just (re)opened on `opened`'s trail: nothing queued, everything
    /// on disk durable, no failure.
    fn opened(opened: &mut recover::Opened, generation: u64) -> State {
        State {
            chain: opened.chain,
            file_no: opened.file_no,
            file_bytes: opened.file_bytes,
            queue: Vec::new(),
            queued_bytes: 0,
            queued_events: 0,
            written_next: opened.chain.next_seq,
            durable_next: opened.chain.next_seq,
            failure: None,
            closing: false,
            flush_wanted: false,
            generation,
            gathering: false,
            gather_target: 0,
            recovery: opened.recovery.take(),
        }
    }
}

impl fmt::Debug for FileSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FileSink")
            .field("name", &self.shared.name)
            .field("dir", &self.dir)
            .field("durability", &self.shared.durability)
            .finish_non_exhaustive()
    }
}

impl FileSink {
    /// Opens (or creates) the trail in `dir` on the real file system, recovering a torn tail.
    pub fn open(dir: impl AsRef<Path>, options: FileSinkOptions) -> Result<FileSink, AuditError> {
        FileSink::open_with(Arc::new(StdStorage), dir, options)
    }

    /// Opens the trail through another [`Storage`] (tests use `io::sim::SimStorage`, feature `sim`).
    pub fn open_with(
        storage: Arc<dyn Storage>,
        dir: impl AsRef<Path>,
        options: FileSinkOptions,
    ) -> Result<FileSink, AuditError> {
        let dir = dir.as_ref().to_owned();
        let mut opened = recover::open_trail(&storage, &dir, &options)?;
        let state = State::opened(&mut opened, 0);
        let synced = Synced {
            next: state.durable_next,
            generation: state.generation,
            failed: false,
            wakers: Vec::new(),
        };
        let shared = Arc::new(Shared {
            name: options.name.clone(),
            durability: options.durability,
            rotate_bytes: options.rotate_bytes.max(1),
            state: Mutex::new(state),
            work: Condvar::new(),
            done: Condvar::new(),
            synced: Mutex::new(synced),
            synced_cv: Condvar::new(),
            waiting: AtomicUsize::new(0),
        });
        let handle = writer::spawn(shared.clone(), opened.writer)?;
        Ok(FileSink {
            shared,
            writer: Mutex::new(Some(handle)),
            storage,
            dir,
            options,
        })
    }

    /// The trail directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// What the last open or reopen cut from a torn tail, if anything.
    pub fn last_recovery(&self) -> Option<Recovery> {
        self.shared.lock().recovery.clone()
    }

    /// The chain head: the next sequence number and the hash it will link to.
    pub fn head(&self) -> Chain {
        self.shared.lock().chain
    }

    /// Why the sink is poisoned, if it is.
    pub fn failure(&self) -> Option<String> {
        self.shared.lock().failure.clone()
    }

    fn lock_writer(&self) -> MutexGuard<'_, Option<JoinHandle<()>>> {
        self.writer.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Stops the writer after it has written, fsynced and checkpointed everything queued.
    fn stop_writer(&self, handle: &mut Option<JoinHandle<()>>) {
        {
            let mut st = self.shared.lock();
            st.closing = true;
        }
        self.shared.work.notify_all();
        if let Some(h) = handle.take() {
            if h.join().is_err() {
                self.shared
                    .poison("the audit writer thread panicked".to_owned());
            }
        }
    }

    /// Writes, fsyncs and checkpoints everything appended, then stops accepting events.
    /// Returns the failure that poisoned the sink, if any.
    pub fn close(&self) -> Result<(), AuditError> {
        let mut handle = self.lock_writer();
        self.stop_writer(&mut handle);
        let st = self.shared.lock();
        match &st.failure {
            Some(reason) => Err(AuditError::Poisoned {
                sink: self.shared.name.clone(),
                reason: reason.clone(),
            }),
            None => Ok(()),
        }
    }

    /// Re-opens the trail from disk after a failure has cleared: stops the writer, re-reads
    /// the last file, cuts and records a torn tail, and resumes. Appends that were waiting
    /// when the sink failed have already been answered with an error; their events may or
    /// may not be in the trail (never acknowledged, never counted on).
    pub fn reopen(&self) -> Result<(), AuditError> {
        let mut handle = self.lock_writer();
        self.stop_writer(&mut handle);
        let mut opened = match recover::open_trail(&self.storage, &self.dir, &self.options) {
            Ok(o) => o,
            Err(e) => {
                let mut st = self.shared.lock();
                st.closing = false;
                st.failure = Some(format!("reopen failed: {e}"));
                self.shared.publish_synced(&st);
                return Err(e);
            }
        };
        {
            let mut st = self.shared.lock();
            let generation = st.generation + 1;
            *st = State::opened(&mut opened, generation);
            self.shared.publish_synced(&st);
        }
        self.shared.done.notify_all();
        *handle = Some(writer::spawn(self.shared.clone(), opened.writer)?);
        Ok(())
    }

    fn poisoned(&self, reason: &str) -> AuditError {
        AuditError::Poisoned {
            sink: self.shared.name.clone(),
            reason: reason.to_owned(),
        }
    }

    /// Queues `record` (see [`FileSink::enqueue`]): its receipt, and in `Fsync` mode what
    /// tells when it is durable.
    fn queue(&self, record: Record) -> Result<(Receipt, Option<Fsynced>), AuditError> {
        let (seq, generation, st) = self.enqueue(record)?;
        drop(st);
        let fsynced = (self.shared.durability == Durability::Fsync).then(|| Fsynced {
            shared: self.shared.clone(),
            seq,
            generation,
        });
        Ok((Receipt { seq }, fsynced))
    }

    /// Seals `record` into the chain and queues its line; returns its seq and generation.
    ///
    /// The record is serialized before the lock is taken; under the lock only its position,
    /// link and hash are computed (SHA-256 of one line).
    fn enqueue(&self, record: Record) -> Result<(u64, u64, MutexGuard<'_, State>), AuditError> {
        let encoded = EncodedRecord::new(record)?;
        let shared = &*self.shared;
        let mut st = shared.lock();
        loop {
            if let Some(reason) = &st.failure {
                return Err(self.poisoned(reason));
            }
            if st.closing {
                return Err(AuditError::Closed(shared.name.clone()));
            }
            if st.queued_bytes < MAX_QUEUED_BYTES {
                break;
            }
            st = shared.done.wait(st).unwrap_or_else(|p| p.into_inner());
        }
        let was_idle = st.queue.is_empty();
        if st.file_bytes >= shared.rotate_bytes {
            // The current file is full: close it with a `rotated` event naming its successor;
            // the successor's first event links to that event's hash.
            let next = file_name(st.file_no + 1);
            let rotated = Record::at(EventKind::Rotated, Timestamp::now())
                .with_detail("next_file", next)
                .with_detail("reason", "size");
            let event = AuditEvent::seal(st.chain.next_seq, st.chain.head, rotated)?;
            push_event(&mut st, &event);
            st.file_no += 1;
            st.file_bytes = 0;
        }
        let event = AuditEvent::seal_encoded(st.chain.next_seq, st.chain.head, encoded)?;
        if event.line().len() >= MAX_LINE_BYTES {
            return Err(AuditError::Encode(format!(
                "the event is {} bytes long; an audit line may hold at most {MAX_LINE_BYTES}",
                event.line().len()
            )));
        }
        push_event(&mut st, &event);
        // The writer waits for the first event of a batch, and while gathering for the event
        // that completes its group: one wake-up per group, not one per append.
        if was_idle || (st.gathering && st.queued_events >= st.gather_target) {
            shared.work.notify_one();
        }
        let generation = st.generation;
        Ok((event.seq, generation, st))
    }
}

/// Appends a sealed event to the queue (a new batch when it starts a new file).
fn push_event(st: &mut State, event: &AuditEvent) {
    let line_len = event.line().len() + 1;
    let start = st.chain;
    st.chain = Chain::after(event);
    st.file_bytes += line_len as u64;
    st.queued_bytes += line_len;
    st.queued_events += 1;
    let file_no = st.file_no;
    let batch = match st.queue.last_mut() {
        Some(b) if b.file_no == file_no => b,
        _ => {
            st.queue.push(Batch {
                file_no,
                first_seq: start.next_seq,
                prev: start.head,
                bytes: Vec::with_capacity(line_len.max(4096)),
                end: start,
            });
            let last = st.queue.len() - 1;
            &mut st.queue[last]
        }
    };
    batch.bytes.extend_from_slice(event.line().as_bytes());
    batch.bytes.push(b'\n');
    batch.end = Chain::after(event);
}

/// A queued event of a `Fsync` sink, durable once the writer has fsynced past it.
#[derive(Debug)]
struct Fsynced {
    shared: Arc<Shared>,
    seq: u64,
    generation: u64,
}

/// Where a queued event stands.
enum Fate {
    Queued,
    Durable,
    /// The sink was reopened: whether the event reached the disk is unknown.
    Reopened,
    /// The sink failed first (its [`State::failure`] says why).
    Failed,
}

impl Fsynced {
    fn fate(&self, synced: &Synced) -> Fate {
        if synced.generation != self.generation {
            Fate::Reopened
        } else if synced.next > self.seq {
            Fate::Durable
        } else if synced.failed {
            Fate::Failed
        } else {
            Fate::Queued
        }
    }

    /// The answer for a settled fate. Takes the state lock for a failure's reason: never
    /// call it holding the `synced` lock (the state lock is always taken first).
    fn answer(&self, fate: Fate) -> Result<(), AuditError> {
        let reason = match fate {
            Fate::Queued | Fate::Durable => return Ok(()),
            Fate::Reopened => "the sink was reopened before the event was synced".to_owned(),
            Fate::Failed => self
                .shared
                .lock()
                .failure
                .clone()
                .unwrap_or_else(|| "the sink failed before the event was synced".to_owned()),
        };
        Err(AuditError::Poisoned {
            sink: self.shared.name.clone(),
            reason,
        })
    }
}

impl Durable for Fsynced {
    fn poll_durable(&self, cx: &mut std::task::Context<'_>) -> Poll<Result<(), AuditError>> {
        let mut synced = self.shared.lock_synced();
        match self.fate(&synced) {
            Fate::Queued => {
                // Checked and registered under one lock: a publication cannot fall between.
                if !synced.wakers.iter().any(|w| w.will_wake(cx.waker())) {
                    synced.wakers.push(cx.waker().clone());
                }
                Poll::Pending
            }
            fate => {
                drop(synced);
                Poll::Ready(self.answer(fate))
            }
        }
    }

    fn wait(&self) -> Result<(), AuditError> {
        let waiting = Waiting::enter(&self.shared.waiting);
        // Another thread waits too: give the CPU to the appenders (and the writer) that can
        // run, a few times, before sleeping (see `SPIN_YIELDS`).
        if waiting.others > 0 {
            for _ in 0..SPIN_YIELDS {
                std::thread::yield_now();
                let synced = self.shared.lock_synced();
                match self.fate(&synced) {
                    Fate::Queued => {}
                    fate => {
                        drop(synced);
                        return self.answer(fate);
                    }
                }
            }
        }
        // Wait on the `synced` lock, not the state lock: see `Synced`.
        let mut synced = self.shared.lock_synced();
        loop {
            match self.fate(&synced) {
                Fate::Queued => {
                    synced = self
                        .shared
                        .synced_cv
                        .wait(synced)
                        .unwrap_or_else(|p| p.into_inner());
                }
                fate => {
                    drop(synced);
                    return self.answer(fate);
                }
            }
        }
    }
}

impl AuditSink for FileSink {
    fn name(&self) -> &str {
        &self.shared.name
    }

    fn append(&self, record: Record) -> Result<Receipt, AuditError> {
        let (receipt, fsynced) = self.queue(record)?;
        if let Some(f) = fsynced {
            f.wait()?;
        }
        Ok(receipt)
    }

    fn submit(&self, record: Record) -> Result<Submitted, AuditError> {
        let (receipt, fsynced) = self.queue(record)?;
        Ok(Submitted {
            receipt,
            pending: fsynced.map(Pending::new),
        })
    }

    /// Writes and fsyncs everything appended so far, and the signed checkpoint when one is
    /// due (`every_events`, `every`), before returning: a flushed trail is durable and
    /// covered.
    fn flush(&self) -> Result<(), AuditError> {
        let mut st = self.shared.lock();
        let target = st.chain.next_seq;
        let generation = st.generation;
        st.flush_wanted = true;
        self.shared.work.notify_one();
        loop {
            if st.durable_next >= target {
                return Ok(());
            }
            if let Some(reason) = &st.failure {
                return Err(self.poisoned(reason));
            }
            if st.generation != generation {
                return Err(self.poisoned("the sink was reopened during the flush"));
            }
            st = self.shared.done.wait(st).unwrap_or_else(|p| p.into_inner());
        }
    }
}

impl Drop for FileSink {
    fn drop(&mut self) {
        // Errors were already reported to appenders; a drop cannot report anything more.
        let _ = self.close();
    }
}

#[cfg(test)]
mod tests;
