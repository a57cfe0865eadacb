//! Signed checkpoints of SQL audit tables, shared by the SQLite and PostgreSQL code.
//!
//! A checkpoint is the file trail's checkpoint line ([`CheckpointSigner::sign`], same format,
//! same signature), stored in the `<table>_checkpoint` table and optionally appended to an
//! external checkpoint file. Its `log` member is the events table's name.
//!
//! The checkpointer never signs blindly what it reads: before signing the head it verifies
//! the rows written since the newest checkpoint (whose signature it checks first) and that
//! they end at the head row. A chain rewritten behind the newest checkpoint is therefore
//! refused at write time, and only events after the newest checkpoint can ever be signed
//! over by a rewrite.
// Without a driver feature only the public types are used.
#![cfg_attr(not(any(feature = "sqlite", feature = "postgres")), allow(dead_code))]

use std::collections::BTreeMap;
use std::io::{BufRead as _, Write as _};
use std::path::{Path, PathBuf};

use super::{AuditTable, TableVerifyError};
use crate::chain::{Chain, Digest};
use crate::checkpoint::{Checkpoint, CheckpointError, CheckpointSigner, CheckpointVerifier};
use crate::error::AuditError;
use crate::event::Timestamp;
use crate::verify::VerifyReport;

/// When and where a SQL sink writes signed checkpoints.
///
/// ```
/// use guardrail_audit::CheckpointSigner;
/// use guardrail_audit::sql::SqlCheckpointOptions;
/// let options = SqlCheckpointOptions::new(CheckpointSigner::ed25519_from_seed(&[7; 32]));
/// assert_eq!(options.every_events, 1000);
/// assert!(options.file.is_none());
/// ```
#[derive(Debug, Clone)]
pub struct SqlCheckpointOptions {
    /// The signing key. Keep it outside the database: whoever holds it can sign a rewrite.
    pub signer: CheckpointSigner,
    /// A standalone sink checkpoints, inside the append's own transaction, once at least this
    /// many events are not covered by a checkpoint (0: only on demand). Events appended
    /// through [`super::TxAppend`]/[`super::AsyncTxAppend`] count too.
    pub every_events: u64,
    /// An external checkpoint file each checkpoint is also appended to (after its row is
    /// committed). Keep it on other storage than the database: it is what detects deleted
    /// checkpoint rows.
    pub file: Option<PathBuf>,
}

impl SqlCheckpointOptions {
    /// Checkpoints every 1,000 events, stored only in the database.
    pub fn new(signer: CheckpointSigner) -> SqlCheckpointOptions {
        SqlCheckpointOptions {
            signer,
            every_events: 1000,
            file: None,
        }
    }
}

/// The result of a successful signed verification of an audit table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TableReport {
    /// Events verified.
    pub events: u64,
    /// The chain head after the last event.
    pub head: Chain,
    /// Checkpoints (table rows and file lines) whose signature and head were checked.
    pub checkpoints: usize,
    /// Sequence number of the newest checkpoint, if any.
    pub last_checkpoint_seq: Option<u64>,
    /// Events after the newest checkpoint: their removal or rewrite could not have been
    /// detected.
    pub unchecked_events: u64,
}

/// The chain a checkpointer starts from: after the newest checkpoint row (its signature,
/// seq column and log checked), or genesis.
pub(crate) fn start_after(
    table: &AuditTable,
    signer: &CheckpointSigner,
    newest: Option<(i64, String)>,
) -> Result<Chain, AuditError> {
    let Some((column, line)) = newest else {
        return Ok(Chain::new());
    };
    let refuse = |what: String| {
        AuditError::Database(format!(
            "audit table `{}`: refusing to sign a checkpoint: the newest row of `{}` (seq {column}) {what}",
            table.events(),
            table.checkpoints()
        ))
    };
    let cp = signer
        .verifier()
        .verify_line(line.as_bytes())
        .map_err(|e| refuse(format!("does not verify: {e}")))?;
    if u64::try_from(column).ok() != Some(cp.seq) {
        return Err(refuse(format!("holds the checkpoint of seq {}", cp.seq)));
    }
    if cp.log != table.events() {
        return Err(refuse("belongs to another table".to_owned()));
    }
    Ok(Chain {
        next_seq: cp.seq.saturating_add(1),
        head: cp.head,
    })
}

/// Whether a checkpoint of `head` is due, `start` being where the newest one ends.
pub(crate) fn due(
    table: &AuditTable,
    head: Chain,
    start: Chain,
    min_new: u64,
) -> Result<bool, AuditError> {
    if head.next_seq < start.next_seq {
        return Err(AuditError::Database(format!(
            "audit table `{}`: refusing to sign a checkpoint: the head row says next seq {}, \
             behind the newest checkpoint (seq {}): events were removed",
            table.events(),
            head.next_seq,
            start.next_seq.saturating_sub(1)
        )));
    }
    Ok(head.next_seq > start.next_seq && head.next_seq - start.next_seq >= min_new.max(1))
}

/// Checks that the rows after the newest checkpoint end at the head row.
pub(crate) fn check_extension(
    table: &AuditTable,
    verified: VerifyReport,
    head: Chain,
) -> Result<(), AuditError> {
    if verified.head != head {
        return Err(AuditError::Database(format!(
            "audit table `{}`: refusing to sign a checkpoint: the rows after the newest \
             checkpoint end at next seq {}, but the head row says next seq {} (rows removed \
             or the head edited)",
            table.events(),
            verified.head.next_seq,
            head.next_seq
        )));
    }
    Ok(())
}

/// A row of the events table that breaks the chain while checkpointing.
pub(crate) fn refuse_row(e: TableVerifyError) -> AuditError {
    AuditError::Database(format!("refusing to sign a checkpoint: {e}"))
}

/// Signs `head` (which covers at least one event) for `table`.
pub(crate) fn sign(
    table: &AuditTable,
    signer: &CheckpointSigner,
    head: Chain,
) -> (String, Checkpoint) {
    let seq = head.next_seq.saturating_sub(1);
    let time = Timestamp::now();
    let line = signer.sign(table.events(), seq, head.head, time);
    let cp = Checkpoint {
        log: table.events().to_owned(),
        seq,
        count: seq.saturating_add(1),
        head: head.head,
        time,
        key: signer.key_id().to_owned(),
    };
    (line, cp)
}

/// Appends a committed checkpoint's line to the external file and syncs it.
pub(crate) fn append_to_file(
    table: &AuditTable,
    path: &Path,
    line: &str,
    seq: u64,
) -> Result<(), AuditError> {
    let write = || -> std::io::Result<()> {
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)?;
        let mut bytes = Vec::with_capacity(line.len() + 1);
        bytes.extend_from_slice(line.as_bytes());
        bytes.push(b'\n');
        f.write_all(&bytes)?;
        f.sync_data()
    };
    write().map_err(|e| {
        AuditError::Io(std::io::Error::new(
            e.kind(),
            format!(
                "audit table `{}`: checkpoint seq {seq} is committed in `{}`, but appending it \
                 to the checkpoint file `{}` failed: {e}",
                table.events(),
                table.checkpoints(),
                path.display()
            ),
        ))
    })
}

/// Checks a table's checkpoints while its events are read in order.
pub(crate) struct SignedCheck<'a> {
    table: &'a AuditTable,
    verifier: &'a CheckpointVerifier,
    /// The table's checkpoints by seq.
    rows: BTreeMap<u64, Digest>,
    /// Every checkpoint (rows and file lines), sorted by seq once loading is done.
    all: Vec<(u64, Digest)>,
    next: usize,
    last_matched: Option<u64>,
    /// The first file checkpoint the table lacks.
    missing: Option<TableVerifyError>,
}

impl<'a> SignedCheck<'a> {
    pub(crate) fn new(table: &'a AuditTable, verifier: &'a CheckpointVerifier) -> Self {
        SignedCheck {
            table,
            verifier,
            rows: BTreeMap::new(),
            all: Vec::new(),
            next: 0,
            last_matched: None,
            missing: None,
        }
    }

    fn name(&self) -> String {
        self.table.events().to_owned()
    }

    /// One row of the checkpoint table, in `seq` order.
    pub(crate) fn push_row(&mut self, column: i64, line: &str) -> Result<(), TableVerifyError> {
        let cp = self
            .verifier
            .verify_line(line.as_bytes())
            .map_err(|source| TableVerifyError::Checkpoint {
                table: self.name(),
                seq: column,
                source,
            })?;
        if u64::try_from(column).ok() != Some(cp.seq) {
            return Err(TableVerifyError::CheckpointRow {
                table: self.name(),
                seq: column,
                reason: format!("the row holds the checkpoint of seq {}", cp.seq),
            });
        }
        if cp.log != self.table.events() {
            return Err(TableVerifyError::CheckpointRow {
                table: self.name(),
                seq: column,
                reason: format!("the checkpoint belongs to table `{}`", cp.log),
            });
        }
        self.rows.insert(cp.seq, cp.head);
        self.all.push((cp.seq, cp.head));
        Ok(())
    }

    /// Every line of the external checkpoint file (after all rows were pushed).
    pub(crate) fn load_file(&mut self, path: &Path) -> Result<(), TableVerifyError> {
        let table: &AuditTable = self.table;
        let verifier: &CheckpointVerifier = self.verifier;
        let name = || table.events().to_owned();
        let read_error = |e: std::io::Error| TableVerifyError::CheckpointFileRead {
            table: name(),
            path: path.to_owned(),
            detail: e.to_string(),
        };
        let file = std::fs::File::open(path).map_err(read_error)?;
        let mut previous: Option<u64> = None;
        for (i, bytes) in std::io::BufReader::new(file).split(b'\n').enumerate() {
            let line_no = i + 1;
            let bytes = bytes.map_err(read_error)?;
            let bad_line = |source: CheckpointError| TableVerifyError::CheckpointFile {
                table: name(),
                path: path.to_owned(),
                line: line_no,
                source: Box::new(source),
            };
            let cp = verifier.verify_line(&bytes).map_err(bad_line)?;
            let mismatch = |reason: String| TableVerifyError::CheckpointFileMismatch {
                table: name(),
                path: path.to_owned(),
                line: line_no,
                reason,
            };
            if cp.log != table.events() {
                return Err(mismatch(format!(
                    "the checkpoint belongs to table `{}`",
                    cp.log
                )));
            }
            if let Some(p) = previous {
                if cp.seq <= p {
                    return Err(mismatch(format!(
                        "seq {} does not come after seq {p} of the line before",
                        cp.seq
                    )));
                }
            }
            previous = Some(cp.seq);
            if self.missing.is_none() && self.rows.get(&cp.seq) != Some(&cp.head) {
                self.missing = Some(TableVerifyError::CheckpointMissing {
                    table: name(),
                    seq: cp.seq,
                    path: path.to_owned(),
                    line: line_no,
                });
            }
            self.all.push((cp.seq, cp.head));
        }
        Ok(())
    }

    /// Call once all checkpoints are loaded, before the first event.
    pub(crate) fn start(&mut self) {
        self.all.sort_by_key(|(seq, _)| *seq);
    }

    /// After each verified event: `at` is the chain right after it.
    pub(crate) fn after_event(&mut self, at: Chain) -> Result<(), TableVerifyError> {
        let seq = at.next_seq.saturating_sub(1);
        while let Some(&(cp_seq, head)) = self.all.get(self.next) {
            if cp_seq != seq {
                break;
            }
            if head != at.head {
                return Err(TableVerifyError::Rewritten {
                    table: self.name(),
                    seq,
                    since_seq: self.last_matched.map_or(0, |s| s + 1),
                });
            }
            self.last_matched = Some(seq);
            self.next += 1;
        }
        Ok(())
    }

    /// After the last event.
    pub(crate) fn finish(self, report: VerifyReport) -> Result<TableReport, TableVerifyError> {
        if let Some(&(checkpoint_seq, _)) = self.all.get(self.next) {
            return Err(TableVerifyError::Truncated {
                table: self.name(),
                first_missing_seq: report.head.next_seq,
                checkpoint_seq,
            });
        }
        if let Some(missing) = self.missing {
            return Err(missing);
        }
        let last = self.all.last().map(|(seq, _)| *seq);
        Ok(TableReport {
            events: report.events,
            head: report.head,
            checkpoints: self.all.len(),
            last_checkpoint_seq: last,
            unchecked_events: report
                .events
                .saturating_sub(last.map_or(0, |s| s.saturating_add(1))),
        })
    }
}
