//! `clinic-server --listen 127.0.0.1:PORT --data DIR [--tokens FILE]`: serves the clinic
//! over HTTP. SQLite in `DIR` by default; PostgreSQL when `DATABASE_URL` is set.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clinic_server::unguarded::Baseline;
use clinic_server::{Clinic, ServerConfig};

const USAGE: &str = "usage: clinic-server --listen ADDR --data DIR [--tokens FILE] [--replica NAME]
  --listen ADDR   address to serve on, e.g. 127.0.0.1:8080 (port 0 picks a free one)
  --data DIR      audit trail, SQLite database and token file (created on first run)
  --tokens FILE   bearer tokens (default DIR/tokens.toml, written with demo tokens)
  --replica NAME  with DATABASE_URL: share policy, approvals and trail with other replicas
  DATABASE_URL    when set, the clinic's data lives in this PostgreSQL database
  (built with feature bench-unguarded: --unguarded serves two routes WITHOUT guardrail,
  --unguarded-floor the same with one durable decision event each, for load benchmarks
  only; see clinic_server::unguarded)";

struct Args {
    listen: SocketAddr,
    data: PathBuf,
    tokens: Option<PathBuf>,
    replica: Option<String>,
    /// `--unguarded` or `--unguarded-floor` (feature `bench-unguarded`): see
    /// `clinic_server::unguarded`.
    unguarded: Option<Baseline>,
}

fn parse_args(mut args: impl Iterator<Item = String>) -> Result<Args, String> {
    let (mut listen, mut data, mut tokens, mut replica) = (None, None, None, None);
    #[allow(
        unused_mut,
        reason = "only `--unguarded` sets it, a flag of the bench-unguarded feature"
    )]
    let mut unguarded = None;
    while let Some(flag) = args.next() {
        let mut value = || args.next().ok_or(format!("`{flag}` needs a value"));
        match flag.as_str() {
            "--listen" => {
                let v = value()?;
                listen = Some(v.parse::<SocketAddr>().map_err(|_| {
                    format!("`--listen {v}` is not an address like 127.0.0.1:8080")
                })?);
            }
            "--data" => data = Some(PathBuf::from(value()?)),
            "--tokens" => tokens = Some(PathBuf::from(value()?)),
            "--replica" => replica = Some(value()?),
            #[cfg(feature = "bench-unguarded")]
            "--unguarded" => unguarded = Some(Baseline::Bare),
            #[cfg(feature = "bench-unguarded")]
            "--unguarded-floor" => unguarded = Some(Baseline::DurableFloor),
            other => return Err(format!("unknown argument `{other}`")),
        }
    }
    Ok(Args {
        listen: listen.ok_or("`--listen` is required")?,
        data: data.ok_or("`--data` is required")?,
        tokens,
        replica,
        unguarded,
    })
}

/// Serves `clinic_server::unguarded`'s routes, if this build and the environment allow it.
async fn serve_unguarded(
    clinic: Clinic,
    listen: SocketAddr,
    baseline: Baseline,
) -> Result<clinic_server::RunningServer, Box<dyn std::error::Error>> {
    #[cfg(feature = "bench-unguarded")]
    {
        use clinic_server::unguarded::{BenchmarkOnly, router};
        let proof = BenchmarkOnly::from_env()?;
        proof.check_listen(listen)?;
        eprintln!("clinic-server: WARNING: serving WITHOUT guardrail (benchmark mode)");
        let router = router(proof, &clinic, baseline);
        Ok(clinic.serve_router(listen, router).await?)
    }
    #[cfg(not(feature = "bench-unguarded"))]
    {
        drop((clinic, listen, baseline));
        Err("this build has no unguarded mode".into())
    }
}

fn main() -> ExitCode {
    // Logs go to stderr through the scrubbing writer: identifiers in log lines are masked.
    tracing_subscriber::fmt()
        .with_writer(guardrail_core::mask::logs::ScrubbingWriter::new(
            std::io::stderr,
        ))
        .with_ansi(false)
        .with_target(false)
        .init();
    let args = match parse_args(std::env::args().skip(1)) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let mut config = match std::env::var("DATABASE_URL") {
        Ok(url) if !url.trim().is_empty() => ServerConfig::postgres(&args.data, url),
        _ => ServerConfig::sqlite(&args.data),
    };
    config.tokens = args.tokens;
    config.replica = args.replica;
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let served: Result<(), Box<dyn std::error::Error>> = runtime.block_on(async {
        let clinic = Clinic::open(config).await?;
        let server = match args.unguarded {
            Some(baseline) => serve_unguarded(clinic, args.listen, baseline).await?,
            None => clinic.serve(args.listen).await?,
        };
        println!(
            "clinic-server listening on {} (trail in {})",
            server.url(),
            server.clinic().audit_dir().display()
        );
        Ok(server.run_until_ctrl_c().await?)
    });
    match served {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("clinic-server: {e}");
            ExitCode::FAILURE
        }
    }
}
