//! Chain verification: recompute every hash and link, name the first break.

use std::fmt;

use crate::chain::{Chain, Digest};
use crate::event::{AuditEvent, hash_of_line, parse_head};

/// What is wrong at the first broken place of a trail.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum BreakKind {
    /// The line is not an event (not the fixed `seq`/`prev`/…/`hash` layout).
    Malformed,
    /// The content does not hash to the stored `hash`: the event was edited.
    HashMismatch,
    /// `prev` is not the hash of the event before: an event was removed, inserted or moved.
    BrokenLink,
    /// `seq` is not the next number: an event was removed, inserted, duplicated or moved.
    SequenceGap {
        /// The sequence number that should have come.
        expected: u64,
    },
}

/// The first place a trail fails verification.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub struct VerifyError {
    /// 1-based line (or index + 1 for in-memory events).
    pub line: usize,
    /// The sequence number written on that line, where it could be read.
    pub seq: Option<u64>,
    /// What is wrong.
    pub kind: BreakKind,
}

impl fmt::Display for VerifyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}", self.line)?;
        if let Some(seq) = self.seq {
            write!(f, " (seq {seq})")?;
        }
        match self.kind {
            BreakKind::Malformed => f.write_str(": not a well-formed audit event"),
            BreakKind::HashMismatch => {
                f.write_str(": content does not match its hash (the event was altered)")
            }
            BreakKind::BrokenLink => f.write_str(
                ": does not link to the event before (an event was removed, inserted or moved)",
            ),
            BreakKind::SequenceGap { expected } => write!(
                f,
                ": expected seq {expected} (an event was removed, inserted or moved)"
            ),
        }
    }
}

/// The result of a successful verification.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VerifyReport {
    /// Events verified.
    pub events: u64,
    /// The chain head after the last event: where the next event (or file) must link.
    pub head: Chain,
}

/// A streaming verifier: feed lines in order, get the first break.
///
/// ```
/// use guardrail_audit::{Chain, EventKind, Record, Verifier};
/// let mut chain = Chain::new();
/// let e = chain.link(Record::new(EventKind::Decision)).unwrap();
/// let mut v = Verifier::new(Chain::new());
/// v.push_line(1, e.line().as_bytes()).unwrap();
/// assert_eq!(v.report().events, 1);
/// ```
#[derive(Clone, Copy, Debug)]
pub struct Verifier {
    chain: Chain,
    events: u64,
}

impl Verifier {
    /// Starts at `start` (use [`Chain::new`] for a trail's first file).
    pub fn new(start: Chain) -> Verifier {
        Verifier {
            chain: start,
            events: 0,
        }
    }

    /// Checks the next line (without its newline); `line_no` is only used in the error.
    pub fn push_line(&mut self, line_no: usize, line: &[u8]) -> Result<(), VerifyError> {
        let head = parse_head(line).map_err(|_| VerifyError {
            line: line_no,
            seq: None,
            kind: BreakKind::Malformed,
        })?;
        let at = |kind| VerifyError {
            line: line_no,
            seq: Some(head.seq),
            kind,
        };
        if hash_of_line(line, &head) != head.hash {
            return Err(at(BreakKind::HashMismatch));
        }
        if head.seq != self.chain.next_seq {
            return Err(at(BreakKind::SequenceGap {
                expected: self.chain.next_seq,
            }));
        }
        if head.prev != self.chain.head {
            return Err(at(BreakKind::BrokenLink));
        }
        self.chain = Chain {
            next_seq: head.seq + 1,
            head: head.hash,
        };
        self.events += 1;
        Ok(())
    }

    /// What was verified so far.
    pub fn report(&self) -> VerifyReport {
        VerifyReport {
            events: self.events,
            head: self.chain,
        }
    }

    /// The current head hash.
    pub fn head(&self) -> Digest {
        self.chain.head
    }
}

/// Verifies a trail held in memory, from genesis.
pub fn verify_events(events: &[AuditEvent]) -> Result<VerifyReport, VerifyError> {
    let mut v = Verifier::new(Chain::new());
    for (i, e) in events.iter().enumerate() {
        v.push_line(i + 1, e.line().as_bytes())?;
    }
    Ok(v.report())
}

/// Verifies JSON-lines text from genesis. Empty lines are not allowed except one final newline.
pub fn verify_lines(text: &str) -> Result<VerifyReport, VerifyError> {
    let mut v = Verifier::new(Chain::new());
    let body = text.strip_suffix('\n').unwrap_or(text);
    if body.is_empty() {
        return Ok(v.report());
    }
    for (i, line) in body.split('\n').enumerate() {
        v.push_line(i + 1, line.as_bytes())?;
    }
    Ok(v.report())
}
