//! The `guardrail` command: what an auditor runs against an audit trail.
//!
//! ```text
//! guardrail audit verify TRAIL.. [--checkpoints FILE --checkpoint-key KEY] [--progress]
//! guardrail audit verify sqlite:PATH|postgres://… [--table NAME] [--checkpoint-key KEY [--checkpoints FILE]]
//! guardrail audit disclosures --patient ID (--key-hex HEX|env:VAR|file:PATH | --key-file PATH)
//!     [--since T] [--until T] [--format table|json] [--checkpoints FILE --checkpoint-key KEY] TRAIL..
//! guardrail audit export --format fhir [--bundle | --ndjson] [--observer NAME] [-o FILE] TRAIL..
//! guardrail audit session ID [--format table|json] TRAIL..
//! guardrail approvals list --db URL [--table T] [--limit N]
//! guardrail audit show --request ID TRAIL.. [--sql sqlite:PATH|postgres://…] [--table NAME]
//! guardrail approvals show|approve|reject ID --db URL [--as PERSON --role ROLE --policy FILE --trail DIR --key KEY]
//! guardrail scan CRATE_DIR [--policy FILE]
//! guardrail policy publish FILE|list|show [VERSION]|rollback VERSION|replicas --db URL [--as PERSON]
//! ```
//!
//! `TRAIL..` is a trail directory (its `manifest.jsonl` lists the files), the manifest, or
//! the event files in chain order. Every command verifies the chain before it reports
//! anything, so an accounting or an export is never made from a tampered trail.
//!
//! Exit status: 0 the trail is sound (and the command did its work); 1 tampering was found
//! (the message names the file, the line and the seq of the first affected event); 2 usage
//! or I/O errors (unreadable files, bad arguments, bad keys, an audit key that did not make
//! the trail).
//!
//! Keys: see `keys.rs`. Everything echoed from a trail or a file name is escaped
//! (`escape.rs`).
#![forbid(unsafe_code)]

mod approvals;
mod escape;
mod keys;
mod policy;
mod prove;
mod read;
mod scan;
mod session;
mod show;
mod sqltrail;

use std::collections::BTreeMap;
use std::io::{self, BufWriter, IsTerminal as _, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Args, Parser, Subcommand, ValueEnum};
use guardrail_audit::disclosure::DisclosureReport;
use guardrail_audit::disclosure::{DisclosureAccumulator, TimeRange};
use guardrail_audit::fhir::{self, FhirOptions};
use guardrail_audit::{AuditEvent, Text, Timestamp, TrailReport};

use crate::read::{Failure, Progress};

/// Exit codes, as `--help` shows them.
const EXIT_STATUS: &str = "\
Exit status:
  0  the trail is sound (and the command did its work)
  1  tampering: the message names the file, line and seq of the first affected event
     (an edited, removed or inserted event, a forged or replaced checkpoint, an event no
     signature vouches for that this version cannot read, a damaged manifest)
  2  usage, I/O or key error: bad arguments, missing or unreadable files, a bad key, an
     audit key that did not make this trail, a checkpoint key that did not sign the file";

/// Verify guardrail audit trails, account for disclosures, export FHIR AuditEvents.
#[derive(Debug, Parser)]
#[command(name = "guardrail", version, about, after_help = EXIT_STATUS)]
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
    /// List and decide just-in-time approval requests held in PostgreSQL, as a second person.
    #[command(subcommand)]
    Approvals(approvals::ApprovalsCommand),
    /// Publish, list, show and roll back the central policy (PostgreSQL) replicas follow.
    #[command(subcommand)]
    Policy(policy::PolicyCommand),
}

#[derive(Debug, Subcommand)]
enum AuditCommand {
    /// Verify a trail: every hash and link, and with checkpoints its completeness.
    ///
    /// Every event is also read, so a trail that verifies is one the other commands read.
    #[command(after_help = EXIT_STATUS)]
    Verify(VerifyArgs),
    /// Accounting of disclosures (HIPAA §164.528): every read, export and disclosure of one
    /// patient's PHI in a time range.
    ///
    /// The audit key is checked against the key fingerprint the trail's events carry: a key
    /// that did not make the trail is an error (exit 2), not an empty accounting.
    #[command(after_help = EXIT_STATUS)]
    Disclosures(DisclosuresArgs),
    /// Export a trail as FHIR R4 AuditEvent resources.
    #[command(after_help = EXIT_STATUS)]
    Export(ExportArgs),
    /// Replay one recorded session (e.g. an AI assistant's MCP session) in order.
    Session(session::SessionArgs),
    /// One request's decisions (file trail) and outcomes (file trail and `--sql` table),
    /// each outcome checked against the decision it names.
    #[command(after_help = EXIT_STATUS)]
    Show(show::ShowArgs),
    /// One patient's events with inclusion proofs against a signed tree head of a shared
    /// PostgreSQL trail, as a self-contained JSON bundle.
    #[command(after_help = EXIT_STATUS)]
    Prove(prove::ProveArgs),
    /// Verify an inclusion bundle offline, with the checkpoint key alone.
    #[command(after_help = EXIT_STATUS)]
    VerifyProof(prove::VerifyProofArgs),
}

/// Where the trail is and how to check it.
#[derive(Debug, Args)]
struct TrailArgs {
    /// A trail directory, its manifest, or its event files in chain order; for `verify` also
    /// an audit table: `sqlite:PATH` or a `postgres://…` URL.
    #[arg(required = true, value_name = "TRAIL")]
    files: Vec<PathBuf>,
    /// Show progress on stderr (default: only when stderr is a terminal).
    #[arg(long)]
    progress: bool,
}

/// A checkpoint file and its key (`verify`, `disclosures` and `export` alike).
#[derive(Debug, Args)]
struct CheckpointArgs {
    /// Signed checkpoint file to verify the trail against: detects a cut tail and a
    /// rewritten history too.
    #[arg(long, value_name = "FILE")]
    checkpoints: Option<PathBuf>,
    /// Checkpoint key: a file or `env:VAR` holding `ed25519:<hex public key>` or
    /// `hmac-sha256:<hex secret>`.
    #[arg(long, value_name = "KEY")]
    checkpoint_key: Option<String>,
}

#[derive(Debug, Args)]
struct VerifyArgs {
    #[command(flatten)]
    trail: TrailArgs,
    #[command(flatten)]
    checkpoints: CheckpointArgs,
    /// Removed: now `--checkpoint-key`.
    #[arg(long, value_name = "KEY", hide = true)]
    key: Option<String>,
    /// The audit table of a `sqlite:PATH` or `postgres://…` trail.
    #[arg(long, value_name = "NAME", default_value = guardrail_audit::sql::AuditTable::DEFAULT)]
    table: String,
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
    /// The audit key the service tokenizes patient ids with, as hex: `env:VAR`, `file:PATH`
    /// (a file holding the hex digits), or the digits themselves (visible to other users).
    #[arg(long, value_name = "HEX", conflicts_with = "key_file")]
    key_hex: Option<String>,
    /// The audit key as raw bytes: a file holding exactly the key bytes.
    #[arg(long, value_name = "PATH")]
    key_file: Option<String>,
    /// Removed: it guessed hex or raw bytes. Use `--key-hex` or `--key-file`.
    #[arg(long, value_name = "KEY", hide = true)]
    key: Option<String>,
    /// First instant included: RFC 3339 (`2026-11-01T00:00:00Z`) or a date (`2026-11-01`).
    #[arg(long, value_name = "TIME", value_parser = parse_time)]
    since: Option<Timestamp>,
    /// First instant excluded: RFC 3339 or a date.
    #[arg(long, value_name = "TIME", value_parser = parse_time)]
    until: Option<Timestamp>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = TableFormat::Table)]
    format: TableFormat,
    #[command(flatten)]
    checkpoints: CheckpointArgs,
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
    #[command(flatten)]
    checkpoints: CheckpointArgs,
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
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) if !e.use_stderr() => e.exit(), // --help, --version
        Err(e) => {
            // clap echoes argument values (file names among them): escape each line.
            let text = e.render().to_string();
            for line in text.lines() {
                eprintln!("{}", escape::text(line));
            }
            return ExitCode::from(2);
        }
    };
    let result = match cli.command {
        Command::Audit(AuditCommand::Verify(a)) => verify(&a),
        Command::Audit(AuditCommand::Disclosures(a)) => {
            file_trail_only(&a.trail).and_then(|()| disclosures(&a))
        }
        Command::Audit(AuditCommand::Export(a)) => {
            file_trail_only(&a.trail).and_then(|()| export(&a))
        }
        Command::Audit(AuditCommand::Session(a)) => session::run(&a),
        Command::Audit(AuditCommand::Show(a)) => show::run(&a),
        Command::Audit(AuditCommand::Prove(a)) => prove::prove(&a),
        Command::Audit(AuditCommand::VerifyProof(a)) => prove::verify_proof(&a),
        Command::Approvals(c) => approvals::run(&c),
        Command::Policy(c) => policy::run(&c),
        Command::Scan(a) => return scan::run(&a),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Tampered(m)) => {
            eprintln!("guardrail: tampering detected: {}", escape::text(&m));
            ExitCode::from(1)
        }
        Err(Failure::Usage(m)) => {
            eprintln!("guardrail: error: {}", escape::text(&m));
            ExitCode::from(2)
        }
    }
}

/// `disclosures` and `export` read file trails; a table is refused by name rather than
/// looked for as a file.
fn file_trail_only(trail: &TrailArgs) -> Result<(), Failure> {
    if trail
        .files
        .iter()
        .any(|f| sqltrail::SqlTrail::parse(f).is_some())
    {
        return Err(Failure::Usage(
            "only `audit verify` reads `sqlite:` and `postgres://` trails; give a file trail"
                .into(),
        ));
    }
    Ok(())
}

/// A warning on stderr (escaped: it may quote the trail).
fn warn(m: &str) {
    eprintln!("guardrail: warning: {}", escape::text(m));
}

fn progress(trail: &TrailArgs) -> Progress {
    Progress::new(trail.progress || io::stderr().is_terminal())
}

fn checkpoint_pair(
    a: &CheckpointArgs,
) -> Result<Option<(PathBuf, guardrail_audit::CheckpointVerifier)>, Failure> {
    match (&a.checkpoints, &a.checkpoint_key) {
        (Some(f), Some(k)) => Ok(Some((
            f.clone(),
            keys::checkpoint_verifier(k).map_err(Failure::Usage)?,
        ))),
        (Some(_), None) => Err(Failure::Usage(
            "`--checkpoints` needs `--checkpoint-key` (the key that signed them)".into(),
        )),
        (None, Some(_)) => Err(Failure::Usage(
            "`--checkpoint-key` needs `--checkpoints` (the file it signed)".into(),
        )),
        (None, None) => Ok(None),
    }
}

fn verify(a: &VerifyArgs) -> Result<(), Failure> {
    if a.key.is_some() {
        return Err(Failure::Usage(keys::CHECKPOINT_KEY_RENAMED.into()));
    }
    if let Some(sql) = a
        .trail
        .files
        .iter()
        .find_map(|f| sqltrail::SqlTrail::parse(f))
    {
        return verify_table(a, &sql);
    }
    let cps = checkpoint_pair(&a.checkpoints)?;
    let mut p = progress(&a.trail);
    let report = read::verify(&a.trail.files, cps.as_ref(), &mut p)?;
    // A trail is sound only if every event is one the other commands can read.
    read::for_each_event(&report, |_| Ok(()))?;
    print_report(&report);
    Ok(())
}

/// `verify sqlite:PATH` / `verify postgres://…`: the checkpoints live in the table, so
/// `--checkpoint-key` alone checks them; `--checkpoints FILE` adds the external copy.
fn verify_table(a: &VerifyArgs, sql: &sqltrail::SqlTrail) -> Result<(), Failure> {
    if a.trail.files.len() != 1 {
        return Err(Failure::Usage(
            "a `sqlite:` or `postgres://` trail is verified on its own: give it as the only TRAIL"
                .into(),
        ));
    }
    let signed = match (&a.checkpoints.checkpoint_key, &a.checkpoints.checkpoints) {
        (Some(k), file) => Some(sqltrail::Signed {
            verifier: keys::checkpoint_verifier(k).map_err(Failure::Usage)?,
            file: file.clone(),
        }),
        (None, Some(_)) => {
            return Err(Failure::Usage(
                "`--checkpoints` needs `--checkpoint-key` (the key that signed them)".into(),
            ));
        }
        (None, None) => None,
    };
    sqltrail::verify(sql, &a.table, signed.as_ref())
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

/// Most distinct foreign fingerprints named in a message.
const MAX_FOREIGN_KEYS: usize = 4;

/// Which keys made the tokens of a trail's events, against the key given.
#[derive(Debug)]
struct KeyCheck {
    ours: Arc<str>,
    /// Events carrying our fingerprint.
    matched: u64,
    /// Other fingerprints (at most [`MAX_FOREIGN_KEYS`]) and how many events carry each;
    /// `foreign_events` counts them all.
    foreign: BTreeMap<Text, u64>,
    foreign_events: u64,
    /// Events with subject tokens but no fingerprint (written before fingerprints were).
    unmarked: u64,
}

impl KeyCheck {
    fn new(key: &guardrail_audit::AuditKey) -> KeyCheck {
        KeyCheck {
            ours: key.fingerprint_text(),
            matched: 0,
            foreign: BTreeMap::new(),
            foreign_events: 0,
            unmarked: 0,
        }
    }

    fn push(&mut self, e: &AuditEvent) {
        let r = &e.record;
        match &r.key_fingerprint {
            Some(fp) if *fp == self.ours => self.matched += 1,
            Some(fp) => {
                self.foreign_events += 1;
                if let Some(n) = self.foreign.get_mut(fp) {
                    *n += 1;
                } else if self.foreign.len() < MAX_FOREIGN_KEYS {
                    self.foreign.insert(fp.clone(), 1);
                }
            }
            None if r.subject.is_some() || !r.subjects.is_empty() => self.unmarked += 1,
            None => {}
        }
    }

    fn foreign_list(&self) -> String {
        let mut s = self
            .foreign
            .keys()
            .map(|k| &**k)
            .collect::<Vec<_>>()
            .join(", ");
        let named: u64 = self.foreign.values().sum();
        if named < self.foreign_events {
            s.push_str(", and others");
        }
        s
    }

    /// An error when the key made none of the trail's fingerprinted events; warnings when
    /// part of the trail cannot be checked or was made with another key.
    fn finish(&self, hint: Option<&str>) -> Result<(), Failure> {
        let hint = hint.map(|h| format!("; {h}")).unwrap_or_default();
        if self.matched == 0 && self.foreign_events > 0 {
            return Err(Failure::Usage(format!(
                "the key given does not match the key that made this trail (fingerprint {}, \
                 trail has {}){hint}",
                self.ours,
                self.foreign_list()
            )));
        }
        if self.foreign_events > 0 {
            warn(&format!(
                "{} event(s) carry tokens made with another key (fingerprint {}): the key \
                 given (fingerprint {}) cannot match them, so they are not in this accounting",
                self.foreign_events,
                self.foreign_list(),
                self.ours
            ));
        }
        if self.unmarked > 0 {
            let which = if self.matched == 0 {
                "the trail's events carry no key fingerprint"
            } else {
                "some events carry no key fingerprint"
            };
            warn(&format!(
                "{which} ({} event(s) written before fingerprints were recorded): the key \
                 cannot be checked against them, and with a wrong key they never match{hint}",
                self.unmarked
            ));
        }
        Ok(())
    }
}

/// The audit key from `--key-hex` or `--key-file` (exactly one).
fn audit_key(a: &DisclosuresArgs) -> Result<keys::LoadedKey, Failure> {
    if a.key.is_some() {
        return Err(Failure::Usage(keys::KEY_REMOVED.into()));
    }
    match (&a.key_hex, &a.key_file) {
        (Some(h), None) => keys::audit_key_hex(h),
        (None, Some(f)) => keys::audit_key_file(f),
        _ => Err(
            "give the audit key with `--key-hex` (hex digits: `env:VAR`, `file:PATH` or the \
                 digits) or `--key-file PATH` (raw bytes)"
                .to_owned(),
        ),
    }
    .map_err(Failure::Usage)
}

/// The report with every string from the trail escaped for a terminal.
fn escaped(mut report: DisclosureReport) -> DisclosureReport {
    fn e(t: &mut Text) {
        if let std::borrow::Cow::Owned(s) = escape::text(t) {
            *t = Arc::from(s);
        }
    }
    fn o(t: &mut Option<Text>) {
        if let Some(t) = t {
            e(t);
        }
    }
    for d in &mut report.rows {
        o(&mut d.principal);
        o(&mut d.via);
        d.roles.iter_mut().for_each(e);
        o(&mut d.purpose);
        o(&mut d.action);
        e(&mut d.action_kind);
        o(&mut d.resource);
        o(&mut d.decision);
        o(&mut d.request_id);
    }
    report
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
    let loaded = audit_key(a)?;
    let patient = read_patient(&a.patient)?;
    if let (Some(s), Some(u)) = (a.since, a.until) {
        if s >= u {
            return Err(Failure::Usage(format!(
                "`--since {s}` is not before `--until {u}`"
            )));
        }
    }
    let cps = checkpoint_pair(&a.checkpoints)?;
    let mut p = progress(&a.trail);
    let report = read::verify(&a.trail.files, cps.as_ref(), &mut p)?;
    let range = TimeRange {
        since: a.since,
        until: a.until,
    };
    let mut acc = DisclosureAccumulator::for_patient(&loaded.key, &patient, range);
    let mut check = KeyCheck::new(&loaded.key);
    read::for_each_event(&report, |e| {
        check.push(&e);
        acc.push(&e);
        Ok(())
    })?;
    check.finish(loaded.hint)?;
    let accounting = acc.finish();
    let text = match a.format {
        TableFormat::Table => escaped(accounting).to_table(),
        TableFormat::Json => {
            let j = accounting
                .to_json()
                .map_err(|e| Failure::Usage(format!("cannot encode the accounting: {e}")))?;
            let mut j = escape::json(&j).into_owned();
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
    let cps = checkpoint_pair(&a.checkpoints)?;
    let mut p = progress(&a.trail);
    let report = read::verify(&a.trail.files, cps.as_ref(), &mut p)?;
    // Every event is read once before anything is written, so the export stream never
    // starts on a trail with an unreadable event further on.
    read::for_each_event(&report, |_| Ok(()))?;
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
        let text = serde_json::to_string_pretty(&fhir::bundle(&events, &opts))
            .map_err(|e| write_err(e.into()))?;
        out.write_all(escape::json(&text).as_bytes())
            .map_err(write_err)?;
        out.write_all(b"\n").map_err(write_err)?;
    } else {
        let mut line = String::new();
        read::for_each_event(&report, |e| {
            line.clear();
            // Writing JSON into a String fails only for a non-string map key, which an
            // AuditEvent resource does not have.
            let text = serde_json::to_string(&fhir::audit_event(&e, &opts))
                .map_err(|e| write_err(e.into()))?;
            line.push_str(&escape::json(&text));
            line.push('\n');
            out.write_all(line.as_bytes()).map_err(write_err)
        })?;
    }
    out.flush().map_err(write_err)
}
