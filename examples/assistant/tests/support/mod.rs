//! The harness of the assistant's tests: a server over streamable HTTP on loopback with a
//! file trail in a temporary directory, and the real rmcp client connected to it.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{Arc, OnceLock};

use assistant::serve::{HttpServer, Server, Tokens};
use assistant::{AGENT, Db, catalogue, guardrail};
use guardrail_core::Guardrail;
use guardrail_core::audit::{AuditEvent, FileSink};
use guardrail_mcp::SessionConfig;
use rmcp::RoleClient;
use rmcp::ServiceExt as _;
use rmcp::model::{ClientCapabilities, ClientConfig, Implementation};
use rmcp::service::{Peer, RunningService};
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;

/// The bearer token of the harness's person.
pub const TOKEN: &str = "harness-token-0123456789abcdef";

/// The real rmcp client over streamable HTTP at `url`, sending `token` as its bearer token
/// (none when `None`), naming itself `name`.
pub async fn connect(
    url: &str,
    token: Option<&str>,
    name: &str,
) -> Result<RunningService<RoleClient, ClientConfig>, rmcp::service::ClientInitializeError> {
    let mut config = StreamableHttpClientTransportConfig::with_uri(url);
    if let Some(t) = token {
        config = config.auth_header(t);
    }
    ClientConfig::new(
        ClientCapabilities::default(),
        Implementation::new(name, "9.9"),
    )
    .serve(StreamableHttpClientTransport::from_config(config))
    .await
}

pub struct Harness {
    pub dir: tempfile::TempDir,
    pub server: Server,
    pub http: Option<HttpServer>,
    pub client: Option<RunningService<RoleClient, ClientConfig>>,
    pub g: Guardrail,
    pub sink: Arc<FileSink>,
}

impl Harness {
    pub async fn start(config: SessionConfig, approvals_url: Option<&str>) -> Harness {
        let dir = tempfile::tempdir().unwrap();
        let trail = dir.path().join("trail");
        let (g, sink) = guardrail(&trail, approvals_url, None).unwrap();
        let db = Db::demo().unwrap();
        let server = Server::new(g.clone(), catalogue(&db), config.clone())
            .tokens(Tokens::new().token(TOKEN, config));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let http = server.serve_http(listener).unwrap();
        // The client calls itself something else: the configured agent id wins.
        let client = connect(&http.url(), Some(TOKEN), "some-mcp-client")
            .await
            .unwrap();
        Harness {
            dir,
            server,
            http: Some(http),
            client: Some(client),
            g,
            sink,
        }
    }

    pub fn peer(&self) -> &Peer<RoleClient> {
        self.client.as_ref().unwrap().peer()
    }

    pub fn trail(&self) -> PathBuf {
        self.dir.path().join("trail")
    }

    /// Ends the session and the server and closes the trail.
    pub async fn stop(&mut self) {
        if let Some(c) = self.client.take() {
            let _ = c.cancel().await;
        }
        if let Some(h) = self.http.take() {
            h.shutdown().await.unwrap();
        }
        self.sink.close().unwrap();
    }

    /// The one session this harness opened.
    pub fn session_id(&self) -> String {
        let ids = self.server.session_ids();
        assert_eq!(ids.len(), 1, "expected one session, got {ids:?}");
        ids[0].clone()
    }

    /// Every event in the trail, in order.
    pub fn events(&self) -> Vec<AuditEvent> {
        read_trail(&self.trail())
    }
}

pub fn read_trail(dir: &Path) -> Vec<AuditEvent> {
    let mut events = Vec::new();
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.ends_with(".jsonl") && n != "manifest.jsonl")
        })
        .collect();
    files.sort();
    for f in files {
        for line in std::fs::read_to_string(&f).unwrap().lines() {
            events.push(AuditEvent::parse(line).unwrap());
        }
    }
    events.sort_by_key(|e| e.seq);
    events
}

pub fn agent() -> &'static str {
    AGENT
}

/// The `guardrail` CLI binary: `GUARDRAIL_BIN`, or the one next to this test's target
/// directory (run the tests with `-p guardrail-cli` too so it is current), built once with
/// cargo if it is not there yet.
pub fn guardrail_bin() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        if let Ok(p) = std::env::var("GUARDRAIL_BIN") {
            return PathBuf::from(p);
        }
        // <target>/<profile>/deps/<this test> → <target>/<profile>/guardrail
        let exe = std::env::current_exe().unwrap();
        let profile_dir = exe.parent().and_then(Path::parent).unwrap().to_path_buf();
        let bin = profile_dir.join(format!("guardrail{}", std::env::consts::EXE_SUFFIX));
        if bin.exists() {
            // Built by `cargo test -p assistant -p guardrail-cli` (one feature set, one build).
            return bin;
        }
        let target = profile_dir.parent().unwrap().to_path_buf();
        let status = Command::new(env!("CARGO"))
            .args(["build", "-q", "-p", "guardrail-cli", "--bin", "guardrail"])
            .env("CARGO_TARGET_DIR", &target)
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .status()
            .unwrap();
        assert!(status.success(), "building the guardrail CLI failed");
        assert!(bin.exists(), "no CLI at {}", bin.display());
        bin
    })
    .clone()
}

pub fn cli(args: &[&str]) -> Output {
    Command::new(guardrail_bin()).args(args).output().unwrap()
}

/// SHA-256 hex of `text`.
pub fn sha256(text: &str) -> String {
    use sha2::Digest as _;
    hex::encode(sha2::Sha256::digest(text.as_bytes()))
}

/// Every SSN of the demo database.
pub const SSNS: [&str; 5] = [
    "123-45-6789",
    "234-56-7890",
    "345-67-8901",
    "456-78-9012",
    "567-89-0123",
];
