//! Opening a trail: read the manifest, verify the last file, cut and record a torn tail,
//! check the checkpoint file against the trail, and hand everything to a new writer.
//!
//! Only the last file can have a torn tail: a file is fsynced before the manifest names its
//! successor. The last file is verified from its first line (its start is in the manifest);
//! everything from the first line that is incomplete, malformed, or does not continue the
//! chain to the end of the file is cut, because after a power cut the unsynced end of a file
//! may hold any mix of lost, partial and garbage writes. In `Fsync` mode no acknowledged event
//! is ever in that region: it was fsynced before its append returned. The cut is then recorded
//! as a `recovered` event, so the trail itself says that (and where) bytes were removed.
//!
//! If the trail ends before the last signed checkpoint, opening fails instead of cutting:
//! checkpointed events were durable, so their loss is tampering or storage damage for a person
//! to look at, not a crash to repair.

use std::io;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use sha2::{Digest as _, Sha256};

use super::lines::LineReader;
use super::manifest::{
    CHECKPOINT_FILE, MANIFEST_FILE, Manifest, ManifestEntry, file_name, file_number,
};
use super::writer::{CheckpointWriter, Writer};
use super::{FileSinkOptions, Recovery};
use crate::chain::{Chain, GENESIS};
use crate::checkpoint::{CheckpointError, CheckpointOptions};
use crate::error::AuditError;
use crate::event::{EventKind, Record, Timestamp};
use crate::io::Storage;
use crate::verify::Verifier;

pub(crate) struct Opened {
    pub writer: Writer,
    pub chain: Chain,
    pub file_no: u64,
    pub file_bytes: u64,
    pub recovery: Option<Recovery>,
}

fn invalid(message: String) -> AuditError {
    AuditError::Io(io::Error::new(io::ErrorKind::InvalidData, message))
}

fn io_at(e: io::Error, what: &str, path: &Path) -> AuditError {
    AuditError::Io(io::Error::new(
        e.kind(),
        format!("{what} `{}` failed: {e}", path.display()),
    ))
}

/// A fresh log identifier: unique, not secret.
fn new_log_id(dir: &Path) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut h = Sha256::new();
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO);
    h.update(now.as_nanos().to_le_bytes());
    h.update(std::process::id().to_le_bytes());
    h.update(COUNTER.fetch_add(1, Ordering::Relaxed).to_le_bytes());
    h.update(dir.as_os_str().as_encoded_bytes());
    h.update(format!("{:?}", Instant::now()).as_bytes());
    hex::encode(&h.finalize()[..16])
}

/// The valid prefix of the last file.
struct Scan {
    chain: Chain,
    valid_len: u64,
    /// (1-based line, offset, bytes after it, why) of the first line not kept.
    cut: Option<(usize, u64, u64, String)>,
}

fn scan_last_file(storage: &dyn Storage, path: &Path, start: Chain) -> Result<Scan, AuditError> {
    let reader = storage
        .open_read(path)
        .map_err(|e| io_at(e, "reading", path))?;
    let mut lines = LineReader::new(reader);
    let mut verifier = Verifier::new(start);
    let mut valid_len = 0u64;
    let mut cut: Option<(usize, u64, String)> = None;
    while let Some(line) = lines.next_line().map_err(|e| io_at(e, "reading", path))? {
        let why = if line.too_long {
            Some("the line is longer than the longest event allowed".to_owned())
        } else if !line.complete {
            Some("the last line is incomplete (no newline)".to_owned())
        } else {
            verifier
                .push_line(line.number, line.bytes)
                .err()
                .map(|e| e.to_string())
        };
        if let Some(why) = why {
            cut = Some((line.number, line.offset, why));
            break;
        }
        valid_len = line.offset + line.bytes.len() as u64 + 1;
    }
    let total = {
        // Count the rest of the file without keeping it.
        let mut total = lines.offset();
        while let Some(l) = lines.next_line().map_err(|e| io_at(e, "reading", path))? {
            total = l.offset + l.bytes.len() as u64 + u64::from(l.complete);
        }
        total
    };
    Ok(Scan {
        chain: verifier.report().head,
        valid_len,
        cut: cut.map(|(line, offset, why)| (line, offset, total - offset, why)),
    })
}

fn open_checkpoints(
    storage: &dyn Storage,
    dir: &Path,
    options: &CheckpointOptions,
    log: &str,
    chain: Chain,
) -> Result<CheckpointWriter, AuditError> {
    let path = options
        .path
        .clone()
        .unwrap_or_else(|| dir.join(CHECKPOINT_FILE));
    let verifier = options.signer.verifier();
    let mut covered_next = 0u64;
    let mut last_good: Option<(usize, crate::checkpoint::Checkpoint)> = None;
    let mut valid_len = 0u64;
    let mut torn_from: Option<usize> = None;
    let existed = storage.exists(&path);
    if existed {
        let reader = storage
            .open_read(&path)
            .map_err(|e| io_at(e, "reading", &path))?;
        let mut lines = LineReader::new(reader);
        while let Some(line) = lines.next_line().map_err(|e| io_at(e, "reading", &path))? {
            let n = line.number;
            let parsed = if line.complete && !line.too_long {
                verifier.verify_line(line.bytes)
            } else {
                Err(CheckpointError::Malformed("incomplete line".into()))
            };
            match parsed {
                Ok(cp) => {
                    if let Some(first_bad) = torn_from {
                        return Err(invalid(format!(
                            "checkpoint file `{}` line {first_bad} is damaged but line {n} after it is valid: refusing to repair anything but a torn tail",
                            path.display()
                        )));
                    }
                    if cp.log != log {
                        return Err(invalid(format!(
                            "checkpoint file `{}` line {n} belongs to log `{}`, not to this trail (log `{log}`)",
                            path.display(),
                            cp.log
                        )));
                    }
                    if cp.seq < covered_next {
                        return Err(invalid(format!(
                            "checkpoint file `{}` line {n}: seq {} goes back behind an earlier checkpoint",
                            path.display(),
                            cp.seq
                        )));
                    }
                    covered_next = cp.count;
                    valid_len = line.offset + line.bytes.len() as u64 + 1;
                    last_good = Some((n, cp));
                }
                // Only what a crash can produce is repaired: an incomplete or garbled tail.
                Err(CheckpointError::Malformed(_)) => {
                    torn_from.get_or_insert(n);
                }
                Err(e) => {
                    return Err(invalid(format!(
                        "checkpoint file `{}` line {n}: {e}",
                        path.display()
                    )));
                }
            }
        }
    }
    if let Some((n, cp)) = &last_good {
        if cp.seq >= chain.next_seq {
            return Err(invalid(format!(
                "the trail ends before seq {}, but checkpoint file `{}` line {n} covers seq {}: signed events are missing; refusing to open",
                chain.next_seq,
                path.display(),
                cp.seq
            )));
        }
        if cp.seq + 1 == chain.next_seq && cp.head != chain.head {
            return Err(invalid(format!(
                "the trail's head at seq {} differs from checkpoint file `{}` line {n}: the history was rewritten; refusing to open",
                cp.seq,
                path.display()
            )));
        }
    }
    if let Some(parent) = path.parent() {
        storage
            .create_dir_all(parent)
            .map_err(|e| io_at(e, "creating", parent))?;
    }
    let mut file = storage
        .open_append(&path)
        .map_err(|e| io_at(e, "opening", &path))?;
    if !existed {
        if let Some(parent) = path.parent() {
            storage
                .sync_dir(parent)
                .map_err(|e| io_at(e, "fsync of directory", parent))?;
        }
    }
    if torn_from.is_some() {
        file.truncate(valid_len)
            .map_err(|e| io_at(e, "truncating", &path))?;
        file.sync().map_err(|e| io_at(e, "fsync of", &path))?;
    }
    Ok(CheckpointWriter {
        signer: options.signer.clone(),
        every_events: options.every_events,
        every: options.every,
        file,
        path,
        covered_next,
        last_time: Instant::now(),
    })
}

/// Opens (creating if needed) the trail in `dir` and repairs a torn tail.
pub(crate) fn open_trail(
    storage: &Arc<dyn Storage>,
    dir: &Path,
    options: &FileSinkOptions,
) -> Result<Opened, AuditError> {
    let st: &dyn Storage = &**storage;
    st.create_dir_all(dir)
        .map_err(|e| io_at(e, "creating", dir))?;
    let manifest_path = dir.join(MANIFEST_FILE);
    let manifest = if st.exists(&manifest_path) {
        Manifest::read(st, dir)
            .map_err(|e| io_at(e, "reading", &manifest_path))?
            .map_err(|e| invalid(format!("manifest `{}` {e}", manifest_path.display())))?
    } else {
        let first = dir.join(file_name(1));
        if st.exists(&first) {
            return Err(invalid(format!(
                "`{}` exists but `{}` does not: refusing to start a new trail over an existing one",
                first.display(),
                manifest_path.display()
            )));
        }
        let m = Manifest {
            log: new_log_id(dir),
            files: vec![ManifestEntry {
                file: file_name(1),
                first_seq: 0,
                prev: GENESIS,
            }],
        };
        m.write(st, dir)
            .map_err(|e| io_at(e, "writing", &manifest_path))?;
        m
    };
    let Some(last) = manifest.files.last().cloned() else {
        return Err(invalid(format!(
            "manifest `{}` lists no files",
            manifest_path.display()
        )));
    };
    let Some(file_no) = file_number(&last.file) else {
        return Err(invalid(format!(
            "manifest `{}`: `{}` is not a file name this sink writes",
            manifest_path.display(),
            last.file
        )));
    };
    if file_name(file_no) != last.file {
        return Err(invalid(format!(
            "manifest `{}`: `{}` is not a file name this sink writes",
            manifest_path.display(),
            last.file
        )));
    }
    let path = dir.join(&last.file);
    let start = Chain {
        next_seq: last.first_seq,
        head: last.prev,
    };
    let existed = st.exists(&path);
    let scan = if existed {
        scan_last_file(st, &path, start)?
    } else {
        // The manifest is rewritten before the file it adds is created.
        Scan {
            chain: start,
            valid_len: 0,
            cut: None,
        }
    };
    let checkpoints = match &options.checkpoint {
        Some(o) => Some(open_checkpoints(st, dir, o, &manifest.log, scan.chain)?),
        None => None,
    };
    let mut file = st
        .open_append(&path)
        .map_err(|e| io_at(e, "opening", &path))?;
    if !existed {
        st.sync_dir(dir)
            .map_err(|e| io_at(e, "fsync of directory", dir))?;
    }
    let mut chain = scan.chain;
    let mut file_bytes = scan.valid_len;
    let mut recovery = None;
    if let Some((line, offset, bytes_cut, why)) = scan.cut {
        file.truncate(scan.valid_len)
            .map_err(|e| io_at(e, "truncating", &path))?;
        file.sync().map_err(|e| io_at(e, "fsync of", &path))?;
        let record = Record::at(EventKind::Recovered, Timestamp::now())
            .with_detail("file", last.file.clone())
            .with_detail("line", line.to_string())
            .with_detail("offset", offset.to_string())
            .with_detail("bytes_cut", bytes_cut.to_string())
            .with_detail("reason", why.clone());
        let event = chain.link(record)?;
        let mut bytes = event.line().as_bytes().to_vec();
        bytes.push(b'\n');
        file.append(&bytes)
            .map_err(|e| io_at(e, "write to", &path))?;
        file.sync().map_err(|e| io_at(e, "fsync of", &path))?;
        file_bytes += bytes.len() as u64;
        recovery = Some(Recovery {
            file: path.clone(),
            line,
            offset,
            bytes_cut,
            reason: why,
            event_seq: event.seq,
        });
    }
    let writer = Writer {
        storage: storage.clone(),
        dir: dir.to_owned(),
        manifest,
        file,
        file_no,
        durability: options.durability,
        sync_interval: options.sync_interval,
        written: chain,
        synced: chain,
        last_sync: Instant::now(),
        checkpoints,
        last_fsync: Duration::ZERO,
    };
    Ok(Opened {
        writer,
        chain,
        file_no,
        file_bytes,
        recovery,
    })
}
