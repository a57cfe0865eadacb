//! `assistant`: the guarded MCP tool server and its scripted agent.
//!
//! ```text
//! assistant [demo] [--trail DIR] [--db URL]     the scripted session over streamable HTTP
//! assistant serve-stdio [--trail DIR] [--db URL]
//! assistant serve-http --tokens FILE [--addr 127.0.0.1:PORT] [--trail DIR] [--db URL]
//! ```
//!
//! Over HTTP every request must carry `Authorization: Bearer TOKEN`, a token of the
//! `--tokens` file (`TOKEN PERSON ROLE[,ROLE…]` a line); anything else is refused with 401.
//! The demo makes a random token for Dr. Grey and gives it to its client.
//!
//! `--db URL` keeps approval requests in PostgreSQL, where `guardrail approvals approve`
//! (another process, another person) grants them; without it they live in memory and the
//! demo's privacy officer approves in-process.

#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use assistant::serve::{Server, Tokens};
use assistant::{AGENT, Db, catalogue, clinician_session, guardrail, session_for};
use guardrail_core::Principal;
use guardrail_core::approval::{ApprovalId, ApprovalState};
use rmcp::ServiceExt as _;
use rmcp::model::{ClientCapabilities, ClientConfig, Implementation};
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;

#[derive(Debug)]
struct Options {
    command: String,
    trail: PathBuf,
    db: Option<String>,
    addr: String,
    tokens: Option<PathBuf>,
}

fn usage() -> String {
    "usage: assistant [demo | serve-stdio | serve-http] [--trail DIR] [--db URL] \
     [--addr 127.0.0.1:PORT] [--tokens FILE]"
        .into()
}

fn parse_args() -> Result<Options, String> {
    let mut args = std::env::args().skip(1);
    let mut o = Options {
        command: "demo".into(),
        trail: std::env::temp_dir().join(format!("guardrail-assistant-{}", std::process::id())),
        db: None,
        addr: "127.0.0.1:8765".into(),
        tokens: None,
    };
    let mut first = true;
    while let Some(a) = args.next() {
        let mut value = |name: &str| {
            args.next()
                .ok_or_else(|| format!("`{name}` needs a value; {}", usage()))
        };
        match a.as_str() {
            "--trail" => o.trail = PathBuf::from(value("--trail")?),
            "--db" => o.db = Some(value("--db")?),
            "--addr" => o.addr = value("--addr")?,
            "--tokens" => o.tokens = Some(PathBuf::from(value("--tokens")?)),
            "demo" | "serve-stdio" | "serve-http" if first => o.command = a,
            "-h" | "--help" => return Err(usage()),
            other => return Err(format!("unknown argument `{other}`; {}", usage())),
        }
        first = false;
    }
    Ok(o)
}

fn main() -> ExitCode {
    let options = match parse_args() {
        Ok(o) => o,
        Err(m) => {
            eprintln!("{m}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("assistant: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(options)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(m) => {
            eprintln!("assistant: {m}");
            ExitCode::FAILURE
        }
    }
}

async fn run(o: Options) -> Result<(), String> {
    let db = Db::demo().map_err(|e| format!("the clinic database: {e}"))?;
    let (g, _sink) = guardrail(&o.trail, o.db.as_deref(), None).map_err(|e| e.to_string())?;
    let server = Server::new(g.clone(), catalogue(&db), clinician_session());
    match o.command.as_str() {
        "serve-stdio" => {
            eprintln!(
                "assistant: serving MCP on stdio; trail in {}",
                o.trail.display()
            );
            server.serve_stdio().await.map_err(|e| e.to_string())
        }
        "serve-http" => {
            let Some(path) = &o.tokens else {
                return Err(format!(
                    "`serve-http` needs `--tokens FILE` (who may connect); {}",
                    usage()
                ));
            };
            let text = std::fs::read_to_string(path)
                .map_err(|e| format!("cannot read the token file `{}`: {e}", path.display()))?;
            let tokens = Tokens::parse(&text, session_for).map_err(|e| e.to_string())?;
            let server = server.tokens(tokens);
            let listener = tokio::net::TcpListener::bind(&o.addr)
                .await
                .map_err(|e| format!("cannot listen on `{}`: {e}", o.addr))?;
            let http = server.serve_http(listener).map_err(|e| e.to_string())?;
            eprintln!(
                "assistant: serving MCP at {}; trail in {}; Ctrl-C stops",
                http.url(),
                o.trail.display()
            );
            tokio::signal::ctrl_c()
                .await
                .map_err(|e| format!("cannot wait for Ctrl-C: {e}"))?;
            http.shutdown().await.map_err(|e| e.to_string())
        }
        _ => demo(&server, &o).await,
    }
}

async fn demo(server: &Server, o: &Options) -> Result<(), String> {
    let token = random_token()?;
    let server = &server
        .clone()
        .tokens(Tokens::new().token(&token, clinician_session()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| format!("cannot listen on loopback: {e}"))?;
    let http = server.serve_http(listener).map_err(|e| e.to_string())?;
    println!(
        "MCP server at {} (trail: {})",
        http.url(),
        o.trail.display()
    );
    let client = ClientConfig::new(
        ClientCapabilities::default(),
        Implementation::new(AGENT, env!("CARGO_PKG_VERSION")),
    )
    .serve(StreamableHttpClientTransport::from_config(
        StreamableHttpClientTransportConfig::with_uri(http.url()).auth_header(token),
    ))
    .await
    .map_err(|e| format!("the MCP client could not connect: {e}"))?;

    let g = server.guardrail().clone();
    let shared = o.db.is_some();
    let mut approve = move |id: &str| -> Result<(), String> {
        let id = ApprovalId::new(id);
        if shared {
            println!(
                "\n>>> waiting for a privacy officer: guardrail approvals approve {id} --db URL \
                 --as PERSON --role privacy_officer --policy examples/assistant/policy.toml \
                 --trail DIR --key-hex file:KEYFILE"
            );
            let deadline = Instant::now() + Duration::from_secs(600);
            while Instant::now() < deadline {
                match g.approval_request(&id) {
                    Ok(Some(r)) if matches!(r.state, ApprovalState::Granted { .. }) => {
                        return Ok(());
                    }
                    Ok(Some(r)) if r.state != ApprovalState::Pending => {
                        return Err(format!("request {id} is {}", r.state.as_str()));
                    }
                    Ok(_) => std::thread::sleep(Duration::from_millis(500)),
                    Err(e) => return Err(e.to_string()),
                }
            }
            return Err(format!("request {id} was not approved in time"));
        }
        let officer = Principal::new("po-1").role("privacy_officer");
        g.approve(&officer, &id).map_err(|e| e.to_string())?;
        println!("\n>>> privacy officer po-1 approved {id} (in-process: no --db given)");
        Ok(())
    };
    let transcript = assistant::agent::run(client.peer(), "Hale", &mut approve)
        .await
        .map_err(|e| e.to_string())?;
    println!("\nWhat the model saw:\n{transcript}");
    let _ = client.cancel().await;
    http.shutdown().await.map_err(|e| e.to_string())?;
    for id in server.session_ids() {
        println!("replay: guardrail audit session {id} {}", o.trail.display());
    }
    Ok(())
}

/// A fresh bearer token for the demo's client (32 random bytes, hex).
fn random_token() -> Result<String, String> {
    use std::io::Read as _;
    let mut bytes = [0u8; 32];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .map_err(|e| format!("cannot make a token: {e}"))?;
    Ok(hex::encode(bytes))
}
