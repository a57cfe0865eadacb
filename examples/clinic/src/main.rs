//! `cargo run -p clinic [-- DATA_DIR]`: the guided tour of a guarded clinic service.

use std::process::ExitCode;

fn main() -> ExitCode {
    // Logs go to stderr through the scrubbing writer: identifiers in log lines are masked.
    tracing_subscriber::fmt()
        .with_writer(guardrail_core::mask::logs::ScrubbingWriter::new(
            std::io::stderr,
        ))
        .with_ansi(false)
        .with_target(false)
        .init();
    let dir = std::env::args_os()
        .nth(1)
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| {
            std::env::temp_dir().join(format!("guardrail-clinic-{}", std::process::id()))
        });
    match clinic::demo::run(&dir, &mut std::io::stdout()) {
        Ok(summary) if summary.verified => ExitCode::SUCCESS,
        Ok(_) => {
            eprintln!("the audit trail did not verify");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("clinic demo failed: {e}");
            ExitCode::FAILURE
        }
    }
}
