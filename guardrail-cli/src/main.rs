//! The `guardrail` command: what an auditor runs against an audit trail.
//!
//! ```text
//! guardrail audit verify TRAIL.. [--checkpoints FILE --key KEY] [--progress]
//! guardrail audit disclosures --patient ID --key KEY [--since T] [--until T] [--format table|json] TRAIL..
//! guardrail audit export --format fhir [--bundle | --ndjson] [--observer NAME] [-o FILE] TRAIL..
//! guardrail audit session ID [--format table|json] TRAIL..
//! guardrail approvals show|approve|reject ID --db URL [--as PERSON --role ROLE --policy FILE --trail DIR --key KEY]
//! guardrail scan CRATE_DIR [--policy FILE]
//! ```
//!
//! `TRAIL..` is a trail directory (its `manifest.jsonl` lists the files), the manifest, or
//! the event files in chain order. Every command verifies the chain before it reports
//! anything, so an accounting or an export is never made from a tampered trail.
//!
//! Exit status: 0 the trail is sound (and the command did its work); 1 tampering was found
//! (the message names the file, the line and the seq of the first affected event); 2 usage
//! or I/O errors (unreadable files, bad keys, bad arguments).
//!
//! Keys are given as a file path or `env:VAR`; see `keys.rs` for the formats.
#![forbid(unsafe_code)]

mod approvals;
mod keys;
mod read;
mod scan;
mod session;

use std::io::{self, BufWriter, IsTerminal as _, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand, ValueEnum};
use guardrail_audit::disclosure::{DisclosureAccumulator, TimeRange};
use guardrail_audit::fhir::{self, FhirOptions};
use guardrail_audit::{Timestamp, TrailReport};

use crate::read::{Failure, Progress};

/// Verify guardrail audit trails, account for disclosures, export FHIR AuditEvents.
#[derive(Debug, Parser)]
#[command(name = "guardrail", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Work with audit trails.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Find functions touching PHI without `#[phi_action]` in a crate's sources.
    Scan(scan::ScanArgs),
    /// Decide just-in-time approval requests held in PostgreSQL, as a second person.
    #[command(subcommand)]
    Approvals(approvals::ApprovalsCommand),
}

#[derive(Debug, Subcommand)]
enum AuditCommand {
    /// Verify a trail: every hash and link, and with checkpoints its completeness.
    ///
    /// Exit status 0: sound; 1: tampering (the first affected event is named by file, line
    /// and seq); 2: usage or I/O error.
    Verify(VerifyArgs),
    /// Accounting of disclosures (HIPAA §164.528): every read, export and disclosure of one
    /// patient's PHI in a time range.
    Disclosures(DisclosuresArgs),
    /// Export a trail as FHIR R4 AuditEvent resources.
    Export(ExportArgs),
    /// Replay one recorded session (e.g. an AI assistant's MCP session) in order.
    Session(session::SessionArgs),
}

/// Where the trail is and how to check it.
#[derive(Debug, Args)]
struct TrailArgs {
    /// A trail directory, its manifest, or its event files in chain order.
    #[arg(required = true, value_name = "TRAIL")]
    files: Vec<PathBuf>,
    /// Show progress on stderr (default: only when stderr is a terminal).
    #[arg(long)]
    progress: bool,
}

#[derive(Debug, Args)]
struct VerifyArgs {
    #[command(flatten)]
    trail: TrailArgs,
    /// Signed checkpoint file: detects a cut tail and a rewritten history too.
    #[arg(long, value_name = "FILE", requires = "key")]
    checkpoints: Option<PathBuf>,
    /// Checkpoint key: a file or `env:VAR` holding `ed25519:<hex public key>` or
    /// `hmac-sha256:<hex secret>`.
    #[arg(long, value_name = "KEY", requires = "checkpoints")]
    key: Option<String>,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum TableFormat {
    /// An aligned plain-text table.
    Table,
    /// JSON.
    Json,
}

#[derive(Debug, Args)]
struct DisclosuresArgs {
    #[command(flatten)]
    trail: TrailArgs,
    /// The patient's id as the service knows it (`-` reads it from the first line of stdin,
    /// which keeps it out of shell history and process lists).
    #[arg(long, value_name = "ID")]
    patient: String,
    /// The audit key the service tokenizes patient ids with: a file or `env:VAR`, holding
    /// the key as hex (recommended) or as raw bytes.
    #[arg(long, value_name = "KEY")]
    key: String,
    /// First instant included: RFC 3339 (`2026-11-01T00:00:00Z`) or a date (`2026-11-01`).
    #[arg(long, value_name = "TIME", value_parser = parse_time)]
    since: Option<Timestamp>,
    /// First instant excluded: RFC 3339 or a date.
    #[arg(long, value_name = "TIME", value_parser = parse_time)]
    until: Option<Timestamp>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = TableFormat::Table)]
    format: TableFormat,
    /// Signed checkpoint file to verify the trail against first.
    #[arg(long, value_name = "FILE", requires = "checkpoint_key")]
    checkpoints: Option<PathBuf>,
    /// Key of the checkpoints (as for `audit verify --key`).
    #[arg(long, value_name = "KEY", requires = "checkpoints")]
    checkpoint_key: Option<String>,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum ExportFormat {
    /// FHIR R4 AuditEvent.
    Fhir,
}

#[derive(Debug, Args)]
struct ExportArgs {
    #[command(flatten)]
    trail: TrailArgs,
    /// The export format.
    #[arg(long, value_enum)]
    format: ExportFormat,
    /// One FHIR Bundle (type `collection`) holding every event.
    #[arg(long, conflicts_with = "ndjson")]
    bundle: bool,
    /// One AuditEvent per line (the default; the FHIR bulk-data format).
    #[arg(long)]
    ndjson: bool,
    /// Name of the service that recorded the trail (`AuditEvent.source.observer`).
    #[arg(long, value_name = "NAME", default_value = "guardrail")]
    observer: String,
    /// Site of that service (`AuditEvent.source.site`).
    #[arg(long, value_name = "SITE")]
    site: Option<String>,
    /// Write to this file instead of stdout.
    #[arg(short, long, value_name = "FILE")]
    output: Option<PathBuf>,
    /// Signed checkpoint file to verify the trail against first.
    #[arg(long, value_name = "FILE", requires = "checkpoint_key")]
    checkpoints: Option<PathBuf>,
    /// Key of the checkpoints (as for `audit verify --key`).
    #[arg(long, value_name = "KEY", requires = "checkpoints")]
    checkpoint_key: Option<String>,
}

fn parse_time(s: &str) -> Result<Timestamp, String> {
    let full;
    let text = if s.len() == 10 && s.as_bytes().get(4) == Some(&b'-') {
        full = format!("{s}T00:00:00Z");
        full.as_str()
    } else {
        s
    };
    Timestamp::parse_rfc3339(text).ok_or_else(|| {
        format!("`{s}` is not an RFC 3339 time (2026-11-26T01:54:19Z) or a date (2026-11-26)")
    })
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Audit(AuditCommand::Verify(a)) => verify(&a),
        Command::Audit(AuditCommand::Disclosures(a)) => disclosures(&a),
        Command::Audit(AuditCommand::Export(a)) => export(&a),
        Command::Audit(AuditCommand::Session(a)) => session::run(&a),
        Command::Approvals(c) => approvals::run(&c),
        Command::Scan(a) => return scan::run(&a),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Tampered(m)) => {
            eprintln!("guardrail: tampering detected: {m}");
            ExitCode::from(1)
        }
        Err(Failure::Usage(m)) => {
            eprintln!("guardrail: error: {m}");
            ExitCode::from(2)
        }
    }
}

fn progress(trail: &TrailArgs) -> Progress {
    Progress::new(trail.progress || io::stderr().is_terminal())
}

fn checkpoint_pair(
    file: Option<&PathBuf>,
    key: Option<&String>,
) -> Result<Option<(PathBuf, guardrail_audit::CheckpointVerifier)>, Failure> {
    match (file, key) {
        (Some(f), Some(k)) => Ok(Some((
            f.clone(),
            keys::checkpoint_verifier(k).map_err(Failure::Usage)?,
        ))),
        _ => Ok(None),
    }
}

fn verify(a: &VerifyArgs) -> Result<(), Failure> {
    let cps = checkpoint_pair(a.checkpoints.as_ref(), a.key.as_ref())?;
    let mut p = progress(&a.trail);
    let report = read::verify(&a.trail.files, cps.as_ref(), &mut p)?;
    print_report(&report);
    Ok(())
}

fn print_report(report: &TrailReport) {
    let mut out = format!(
        "ok: {} events in {} file(s) verified",
        report.events,
        report.files.len()
    );
    if report.checkpoints > 0 {
        out.push_str(&format!(
            "; {} checkpoint(s) match, the last at seq {}",
            report.checkpoints,
            report
                .last_checkpoint_seq
                .map_or_else(|| "-".to_owned(), |s| s.to_string())
        ));
        if report.unchecked_events > 0 {
            out.push_str(&format!(
                "; {} event(s) after the last checkpoint are not covered by a signature",
                report.unchecked_events
            ));
        }
    } else {
        out.push_str(
            " (no checkpoints given: a cut tail or a recomputed chain cannot be detected)",
        );
    }
    println!("{out}");
}

fn read_patient(spec: &str) -> Result<String, Failure> {
    if spec != "-" {
        return Ok(spec.to_owned());
    }
    let mut line = String::new();
    io::stdin()
        .read_line(&mut line)
        .map_err(|e| Failure::Usage(format!("cannot read the patient id from stdin: {e}")))?;
    let id = line.trim_end_matches(['\r', '\n']).to_owned();
    if id.is_empty() {
        return Err(Failure::Usage("no patient id on stdin".into()));
    }
    Ok(id)
}

fn disclosures(a: &DisclosuresArgs) -> Result<(), Failure> {
    let key = keys::audit_key(&a.key).map_err(Failure::Usage)?;
    let patient = read_patient(&a.patient)?;
    if let (Some(s), Some(u)) = (a.since, a.until) {
        if s >= u {
            return Err(Failure::Usage(format!(
                "`--since {s}` is not before `--until {u}`"
            )));
        }
    }
    let cps = checkpoint_pair(a.checkpoints.as_ref(), a.checkpoint_key.as_ref())?;
    let mut p = progress(&a.trail);
    let report = read::verify(&a.trail.files, cps.as_ref(), &mut p)?;
    let range = TimeRange {
        since: a.since,
        until: a.until,
    };
    let mut acc = DisclosureAccumulator::for_patient(&key, &patient, range);
    read::for_each_event(&report, |e| {
        acc.push(&e);
        Ok(())
    })?;
    let accounting = acc.finish();
    let text = match a.format {
        TableFormat::Table => accounting.to_table(),
        TableFormat::Json => {
            let mut j = accounting
                .to_json()
                .map_err(|e| Failure::Usage(format!("cannot encode the accounting: {e}")))?;
            j.push('\n');
            j
        }
    };
    let mut stdout = io::stdout().lock();
    stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
        .map_err(|e| Failure::Usage(format!("cannot write the accounting: {e}")))
}

fn export(a: &ExportArgs) -> Result<(), Failure> {
    let ExportFormat::Fhir = a.format;
    let cps = checkpoint_pair(a.checkpoints.as_ref(), a.checkpoint_key.as_ref())?;
    let mut p = progress(&a.trail);
    let report = read::verify(&a.trail.files, cps.as_ref(), &mut p)?;
    let opts = FhirOptions {
        observer: a.observer.clone(),
        site: a.site.clone(),
    };
    let (sink, name): (Box<dyn Write>, String) =
        match &a.output {
            Some(path) => (
                Box::new(std::fs::File::create(path).map_err(|e| {
                    Failure::Usage(format!("cannot create `{}`: {e}", path.display()))
                })?),
                format!("`{}`", path.display()),
            ),
            None => (Box::new(io::stdout().lock()), "stdout".into()),
        };
    let mut out = BufWriter::new(sink);
    let write_err = |e: io::Error| Failure::Usage(format!("cannot write to {name}: {e}"));
    if a.bundle {
        let mut events = Vec::new();
        read::for_each_event(&report, |e| {
            events.push(e);
            Ok(())
        })?;
        serde_json::to_writer_pretty(&mut out, &fhir::bundle(&events, &opts))
            .map_err(|e| write_err(e.into()))?;
        out.write_all(b"\n").map_err(write_err)?;
    } else {
        read::for_each_event(&report, |e| {
            serde_json::to_writer(&mut out, &fhir::audit_event(&e, &opts))
                .map_err(|e| write_err(e.into()))?;
            out.write_all(b"\n").map_err(write_err)
        })?;
    }
    out.flush().map_err(write_err)
}
