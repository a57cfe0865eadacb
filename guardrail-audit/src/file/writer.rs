//! The writer thread: the only code that writes to the trail's files.
//!
//! It takes every queued batch at once, writes each file's bytes with one write call, fsyncs
//! (always in `Fsync` mode; at intervals, rotation, flush and close in `Buffered` mode), then
//! publishes how far the trail is written and durable and wakes the appenders. In `Fsync` mode
//! it gathers a group before writing: the appenders it just released usually append again
//! within microseconds, so it waits (at most half an fsync) until as many events are queued as
//! it released plus those already waiting; this keeps all writers in one group instead of two
//! alternating half-groups, which would halve the events per fsync.

use std::io;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::PathBuf;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::manifest::{Manifest, ManifestEntry, file_name};
use super::{Batch, Durability, Shared, State};
use crate::chain::Chain;
use crate::checkpoint::CheckpointSigner;
use crate::error::AuditError;
use crate::event::Timestamp;
use crate::io::{Storage, StorageFile};

/// Upper bound of the gathering wait, whatever the fsync latency.
const MAX_GATHER: Duration = Duration::from_millis(2);

/// Writes checkpoints after events became durable.
pub(crate) struct CheckpointWriter {
    pub signer: CheckpointSigner,
    pub every_events: u64,
    pub every: Duration,
    pub file: Box<dyn StorageFile>,
    pub path: PathBuf,
    /// Events covered by the last checkpoint written (its seq + 1).
    pub covered_next: u64,
    pub last_time: Instant,
}

/// Everything the writer thread owns.
pub(crate) struct Writer {
    pub storage: Arc<dyn Storage>,
    pub dir: PathBuf,
    pub manifest: Manifest,
    pub file: Box<dyn StorageFile>,
    pub file_no: u64,
    pub durability: Durability,
    pub sync_interval: Duration,
    /// The chain after the last event written / fsynced.
    pub written: Chain,
    pub synced: Chain,
    pub last_sync: Instant,
    pub checkpoints: Option<CheckpointWriter>,
    /// How long the last fsync took (the gathering wait is bounded by half of it).
    pub last_fsync: Duration,
}

impl Writer {
    fn sync_due(&self, now: Instant) -> bool {
        self.durability == Durability::Buffered
            && self.written.next_seq > self.synced.next_seq
            && now >= self.last_sync + self.sync_interval
    }

    fn checkpoint_due(&self, now: Instant) -> bool {
        let Some(cp) = &self.checkpoints else {
            return false;
        };
        let fresh = self.synced.next_seq.saturating_sub(cp.covered_next);
        fresh > 0
            && ((cp.every_events > 0 && fresh >= cp.every_events)
                || (!cp.every.is_zero() && now >= cp.last_time + cp.every))
    }

    /// When the writer must wake up without being told (interval fsync, timed checkpoint).
    fn next_wakeup(&self, now: Instant) -> Option<Duration> {
        let mut at: Option<Instant> = None;
        if self.durability == Durability::Buffered && self.written.next_seq > self.synced.next_seq {
            at = Some(self.last_sync + self.sync_interval);
        }
        if let Some(cp) = &self.checkpoints {
            if !cp.every.is_zero() {
                let t = cp.last_time + cp.every;
                at = Some(at.map_or(t, |a| a.min(t)));
            }
        }
        at.map(|t| {
            t.saturating_duration_since(now)
                .max(Duration::from_millis(1))
        })
    }

    fn sync_file(&mut self) -> io::Result<()> {
        if self.written.next_seq > self.synced.next_seq {
            let started = Instant::now();
            self.file
                .sync()
                .map_err(|e| annotate(e, "fsync of", &self.current_path()))?;
            self.last_fsync = started.elapsed();
            self.synced = self.written;
            self.last_sync = Instant::now();
        }
        Ok(())
    }

    fn current_path(&self) -> PathBuf {
        self.dir.join(file_name(self.file_no))
    }

    /// Finishes the current file and starts the one `batch` belongs to.
    fn rotate(&mut self, batch: &Batch) -> io::Result<()> {
        // The old file must be durable before the manifest names its successor: recovery
        // only ever repairs the last file, and that file links to the old file's last hash.
        self.sync_file()?;
        let name = file_name(batch.file_no);
        self.manifest.files.push(ManifestEntry {
            file: name.clone(),
            first_seq: batch.first_seq,
            prev: batch.prev,
        });
        let manifest_path = self.dir.join(super::MANIFEST_FILE);
        self.manifest
            .write(&*self.storage, &self.dir)
            .map_err(|e| annotate(e, "rewrite of", &manifest_path))?;
        let path = self.dir.join(&name);
        self.file = self
            .storage
            .open_append(&path)
            .map_err(|e| annotate(e, "creation of", &path))?;
        self.storage
            .sync_dir(&self.dir)
            .map_err(|e| annotate(e, "fsync of directory", &self.dir))?;
        self.file_no = batch.file_no;
        Ok(())
    }

    fn write(&mut self, batches: &[Batch], must_sync: bool) -> io::Result<()> {
        for b in batches {
            if b.file_no != self.file_no {
                self.rotate(b)?;
            }
            self.file
                .append(&b.bytes)
                .map_err(|e| annotate(e, "write to", &self.current_path()))?;
            self.written = b.end;
        }
        if must_sync {
            self.sync_file()?;
        }
        Ok(())
    }

    fn checkpoint(&mut self, force: bool) -> io::Result<()> {
        let now = Instant::now();
        if !(force || self.checkpoint_due(now)) {
            return Ok(());
        }
        let synced = self.synced;
        let log = self.manifest.log.clone();
        let Some(cp) = &mut self.checkpoints else {
            return Ok(());
        };
        if synced.next_seq <= cp.covered_next || synced.next_seq == 0 {
            return Ok(());
        }
        let mut line = cp
            .signer
            .sign(&log, synced.next_seq - 1, synced.head, Timestamp::now());
        line.push('\n');
        cp.file
            .append(line.as_bytes())
            .map_err(|e| annotate(e, "write to", &cp.path))?;
        cp.file
            .sync()
            .map_err(|e| annotate(e, "fsync of", &cp.path))?;
        cp.covered_next = synced.next_seq;
        cp.last_time = now;
        Ok(())
    }
}

/// Publishes how far the trail is written and durable (and `result`'s failure) to the
/// appenders and flushes waiting for it.
fn publish(shared: &Shared, st: &mut State, w: &Writer, result: &io::Result<()>) {
    st.written_next = w.written.next_seq;
    st.durable_next = w.synced.next_seq;
    if let Err(e) = result {
        if st.failure.is_none() {
            st.failure = Some(e.to_string());
        }
    }
    shared.publish_synced(st);
    shared.done.notify_all();
}

fn annotate(e: io::Error, what: &str, path: &std::path::Path) -> io::Error {
    io::Error::new(e.kind(), format!("{what} `{}` failed: {e}", path.display()))
}

/// Starts the writer thread.
pub(crate) fn spawn(shared: Arc<Shared>, writer: Writer) -> Result<JoinHandle<()>, AuditError> {
    std::thread::Builder::new()
        .name("guardrail-audit-writer".into())
        .spawn(move || {
            // A panic here must not leave appenders waiting forever: it poisons the sink.
            if catch_unwind(AssertUnwindSafe(|| run(&shared, writer))).is_err() {
                shared.poison("the audit writer thread panicked".to_owned());
            }
        })
        .map_err(AuditError::Io)
}

fn run(shared: &Shared, mut w: Writer) {
    let fsync_mode = w.durability == Durability::Fsync;
    // Group commit: how many events to wait for, and until when.
    let mut gather_target: u64 = 0;
    let mut gather_until = Instant::now();
    let mut st = shared.lock();
    loop {
        loop {
            if st.failure.is_some() {
                return;
            }
            let now = Instant::now();
            let wanted = !st.queue.is_empty()
                || st.flush_wanted
                || st.closing
                || w.sync_due(now)
                || w.checkpoint_due(now);
            if wanted {
                if fsync_mode
                    && !st.closing
                    && !st.flush_wanted
                    && !st.queue.is_empty()
                    && st.queued_events < gather_target
                    && now < gather_until
                {
                    st.gathering = true;
                    st.gather_target = gather_target;
                    st = shared
                        .work
                        .wait_timeout(st, gather_until - now)
                        .map(|r| r.0)
                        .unwrap_or_else(|p| p.into_inner().0);
                    continue;
                }
                break;
            }
            st.gathering = false;
            st = match w.next_wakeup(now) {
                Some(t) => shared
                    .work
                    .wait_timeout(st, t)
                    .map(|r| r.0)
                    .unwrap_or_else(|p| p.into_inner().0),
                None => shared.work.wait(st).unwrap_or_else(|p| p.into_inner()),
            };
        }
        st.gathering = false;
        let batches = std::mem::take(&mut st.queue);
        let events = std::mem::take(&mut st.queued_events);
        st.queued_bytes = 0;
        let flush = std::mem::take(&mut st.flush_wanted);
        let closing = st.closing;
        drop(st);

        let must_sync = fsync_mode || flush || closing || w.sync_due(Instant::now());
        let mut result = w.write(&batches, must_sync);
        drop(batches);
        // The appenders are released before the checkpoint is signed and fsynced: it covers
        // only events already durable, and its fsync overlaps with their next appends. A
        // flush is answered after its due checkpoint, so a flushed trail is also covered.
        let checkpointing = (result.is_ok() && w.checkpoint_due(Instant::now())) || closing;
        let checkpoint_first = checkpointing && flush;
        if checkpoint_first && result.is_ok() {
            result = w.checkpoint(closing);
        }
        st = shared.lock();
        publish(shared, &mut st, &w, &result);
        // Events queued when the `events` appenders were released: those appenders will
        // likely append again at once, and the next group should hold them too.
        let queued_at_release = st.queued_events;
        if checkpointing && !checkpoint_first {
            drop(st);
            if result.is_ok() {
                result = w.checkpoint(closing);
            }
            st = shared.lock();
            publish(shared, &mut st, &w, &result);
        }
        if result.is_err() {
            return;
        }
        if fsync_mode && events > 0 {
            gather_target = queued_at_release + events;
            gather_until = Instant::now() + (w.last_fsync / 2).min(MAX_GATHER);
        }
        if closing && st.queue.is_empty() {
            return;
        }
    }
}
