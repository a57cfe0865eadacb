//! Reading a trail for the commands: verify it first (with `verify_trail`), then stream its
//! events, re-checking every line against the chain so a file changed between the two passes
//! is caught rather than reported from.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use guardrail_audit::{
    AuditEvent, Chain, CheckpointVerifier, TrailError, TrailReport, Verifier, verify_trail,
};

/// Why a command failed, by exit status.
#[derive(Debug)]
pub(crate) enum Failure {
    /// Exit 1: the trail is not what was written.
    Tampered(String),
    /// Exit 2: bad arguments, unreadable files, bad keys.
    Usage(String),
}

impl From<TrailError> for Failure {
    fn from(e: TrailError) -> Self {
        if e.is_tampering() {
            Failure::Tampered(e.to_string())
        } else {
            Failure::Usage(e.to_string())
        }
    }
}

/// Progress on stderr: a count updated in place, only when enabled.
#[derive(Debug)]
pub(crate) struct Progress {
    enabled: bool,
    shown: bool,
}

impl Progress {
    /// Shows progress only if `enabled`.
    pub(crate) fn new(enabled: bool) -> Progress {
        Progress {
            enabled,
            shown: false,
        }
    }

    fn update(&mut self, events: u64) {
        if self.enabled {
            let mut err = io::stderr().lock();
            // Progress is best effort: a closed stderr must not fail the verification.
            let _ = write!(err, "\rverifying: {events} events");
            let _ = err.flush();
            self.shown = true;
        }
    }

    fn done(&mut self) {
        if self.shown {
            eprintln!();
            self.shown = false;
        }
    }
}

/// Verifies the trail (and its checkpoints, when given).
pub(crate) fn verify(
    files: &[PathBuf],
    checkpoints: Option<&(PathBuf, CheckpointVerifier)>,
    progress: &mut Progress,
) -> Result<TrailReport, Failure> {
    let cps = checkpoints.map(|(p, v)| (p.as_path(), v));
    let result = verify_trail(files, cps, &mut |n| progress.update(n));
    progress.done();
    Ok(result?)
}

fn changed(path: &Path, line: usize, what: &str) -> Failure {
    Failure::Tampered(format!(
        "`{}` line {line}: {what} (the file changed while it was read)",
        path.display()
    ))
}

/// An event the chain accepts but this version cannot read. Signed (covered by a verified
/// checkpoint), it was written by a newer guardrail: a usage error. Unsigned, nothing vouches
/// for it (anyone who can write the files can recompute a chain): tampering. The parser's
/// message is left out, as it may quote the line's content.
fn unreadable(report: &TrailReport, path: &Path, line: usize, seq: u64) -> Failure {
    let at = format!("`{}` line {line} (seq {seq})", path.display());
    if report.last_checkpoint_seq.is_some_and(|s| seq <= s) {
        Failure::Usage(format!(
            "{at}: the event is covered by a signed checkpoint but this version of guardrail \
             cannot read it (a newer format?): use the version that wrote the trail"
        ))
    } else {
        Failure::Tampered(format!(
            "{at}: the event is not one this version of guardrail writes, and no checkpoint \
             signature covers it (if a newer version wrote it, verify with its checkpoints)"
        ))
    }
}

/// Calls `f` with every event of a verified trail, in order. Reads exactly the events the
/// verification covered and checks each line against the chain again.
pub(crate) fn for_each_event(
    report: &TrailReport,
    mut f: impl FnMut(AuditEvent) -> Result<(), Failure>,
) -> Result<(), Failure> {
    let mut verifier = Verifier::new(Chain::new());
    let mut buf = Vec::with_capacity(1024);
    for file in &report.files {
        let path = &file.path;
        let reader = File::open(path)
            .map_err(|e| Failure::Usage(format!("cannot read `{}`: {e}", path.display())))?;
        let mut reader = BufReader::new(reader);
        for n in 1..=file.events {
            let line_no = usize::try_from(n).unwrap_or(usize::MAX);
            buf.clear();
            let read = reader
                .read_until(b'\n', &mut buf)
                .map_err(|e| Failure::Usage(format!("cannot read `{}`: {e}", path.display())))?;
            if read == 0 || buf.pop() != Some(b'\n') {
                return Err(changed(path, line_no, "the line is gone or incomplete"));
            }
            verifier
                .push_line(line_no, &buf)
                .map_err(|e| changed(path, line_no, &e.to_string()))?;
            let text = std::str::from_utf8(&buf)
                .map_err(|_| changed(path, line_no, "the line is not UTF-8"))?;
            let seq = verifier.report().head.next_seq.saturating_sub(1);
            let Ok(event) = AuditEvent::parse(text) else {
                return Err(unreadable(report, path, line_no, seq));
            };
            f(event)?;
        }
    }
    if verifier.report().head != report.head {
        return Err(Failure::Tampered(
            "the trail changed while it was read (its head differs from the verified one)".into(),
        ));
    }
    Ok(())
}
