//! `guardrail scan CRATE_DIR [--policy FILE]`: the source scan of
//! `guardrail_core::coverage::scan_sources`, one line per finding:
//! `path:line:col: fn_name: why` (path relative to `CRATE_DIR`, sorted).
//!
//! Exit status: 0 no finding, 1 findings, 2 error (unreadable or unparsable file, bad
//! policy). Without `--policy`, SQL literals are not checked (there is no `[schema]`).

use std::io::{self, Write as _};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use guardrail_core::Policy;
use guardrail_core::coverage::scan_sources;

/// Arguments of `guardrail scan`.
#[derive(Debug, Args)]
pub(crate) struct ScanArgs {
    /// The host crate's directory (the one holding `Cargo.toml` and `src/`).
    crate_dir: PathBuf,
    /// The policy whose `[schema]` names the PHI tables and columns.
    #[arg(long)]
    policy: Option<PathBuf>,
}

/// Runs the scan and prints the findings to stdout, errors to stderr.
pub(crate) fn run(args: &ScanArgs) -> ExitCode {
    let policy = match &args.policy {
        Some(path) => Policy::from_path(path),
        None => Policy::from_toml_str("version = \"scan\"\n"),
    };
    let policy = match policy {
        Ok(p) => p,
        Err(e) => {
            eprintln!("guardrail: error: {e}");
            return ExitCode::from(2);
        }
    };
    let report = match scan_sources(&args.crate_dir, &policy) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("guardrail: error: {e}");
            return ExitCode::from(2);
        }
    };
    let mut out = io::stdout().lock();
    for finding in report.findings() {
        if writeln!(out, "{finding}").is_err() {
            return ExitCode::from(2);
        }
    }
    if report.is_clean() {
        ExitCode::SUCCESS
    } else {
        eprintln!(
            "guardrail: {} unguarded PHI-touching function(s) in {} file(s) scanned",
            report.findings().len(),
            report.file_count()
        );
        ExitCode::from(1)
    }
}
