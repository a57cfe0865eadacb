//! A tool call through the MCP layer, in process, with and without the guard.
//!
//! Both servers run on the same tokio runtime behind an in-memory duplex pipe, and the real
//! rmcp client calls a `read_chart` tool whose body builds a six-field chart; the result goes
//! back as JSON text. The only difference is the guard:
//!
//! - `mcp/plain`: an rmcp `ServerHandler` calling the body directly and serializing it.
//! - `mcp/guarded`: [`GuardedServer`]: the session's context, the `#[phi_action]` decision and
//!   its event, the body, masking, the scrubbing of every string, the digest of the
//!   delivered JSON, and the held outcome event (memory sink).
//! - `session/guarded` and `session/plain`: the same two without the transport (what the
//!   guard adds, next to the cost of the bare handler).
//! - `mcp_1t/plain` and `mcp_1t/guarded`: the `mcp` pair on a current-thread runtime, where
//!   client, pipe and server take turns on the benchmark's own thread. On the 2-worker
//!   runtime a call crosses threads several times, and a longer handler (the guarded one)
//!   changes how often idle workers spin, park and are woken; on one thread no call waits for
//!   another thread, so the difference of the pair is the guard's own work. Neither pair is
//!   "the" figure: the first is how a multi-threaded server runs, the second isolates the
//!   guard.
//!
//! Fairness: both servers read the same arguments, run the same body and answer one text
//! block over the same pipe and client. The guarded answer is the masked chart, about 1.5
//! times the raw one (the record number becomes a 64-hex-digit token; checked below): carrying
//! those bytes is part of what the guard costs.
//!
//! The memory trail is emptied every 1024 guarded calls, inside the timing (as in
//! `decision.rs`): dropping the records is part of the cost, but the trail stays small instead
//! of growing by gigabytes, whose page faults would otherwise be charged to the guard.
//!
//! Run: `cargo bench -p guardrail-benches --bench mcp`

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use guardrail_core::prelude::*;
use guardrail_core::{AgentId, AuditKey, Endpoint, Purpose};
use guardrail_mcp::{Catalogue, GuardedServer, Session, SessionConfig, Tool};
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ClientCapabilities, ClientConfig,
    ContentBlock, Implementation, ListToolsResult, PaginatedRequestParams, ServerCapabilities,
    ServerConfig,
};
use rmcp::service::{RequestContext, RunningService};
use rmcp::{ErrorData, RoleClient, RoleServer, ServerHandler, ServiceExt};
use serde::Serialize;
use serde_json::{Map, Value, json};

const POLICY: &str = r#"
version = "bench-mcp-1"

[masking]
ssn = "partial"
mrn = "tokenize"
birth_date = "generalize"

[[rule]]
id = "assistant-reads"
effect = "allow"
actions = ["bench_mcp.read_chart"]
roles = ["provider"]
purposes = ["treatment"]
agents = ["bench-assistant"]
reveal = ["name", "diagnosis"]
"#;

#[derive(Debug, Clone, Serialize, guardrail_core::Phi)]
struct Chart {
    id: String,
    #[phi(mrn)]
    mrn: String,
    #[phi(name)]
    name: String,
    #[phi(ssn)]
    ssn: String,
    #[phi(birth_date)]
    birth_date: String,
    #[phi(diagnosis)]
    diagnosis: String,
}

fn chart_of(id: &str) -> Chart {
    Chart {
        id: id.to_owned(),
        mrn: "MRN-0001001".into(),
        name: "Ada Hale".into(),
        ssn: "123-45-6789".into(),
        birth_date: "1961-04-12".into(),
        diagnosis: "hypertension".into(),
    }
}

#[phi_action(
    kind = "read",
    role = "provider",
    name = "bench_mcp.read_chart",
    resource = "patient_record",
    subject = id,
    phi = ["mrn", "name", "ssn", "birth_date", "diagnosis"]
)]
fn read_chart(ctx: &Context, id: &str) -> Result<Chart, GuardError> {
    Ok(chart_of(id))
}

fn patient(a: &Map<String, Value>) -> &str {
    a.get("patient_id").and_then(Value::as_str).unwrap_or("")
}

/// The same tool without the guard.
#[derive(Debug, Clone)]
struct Plain;

impl ServerHandler for Plain {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        let mut schema = Map::new();
        schema.insert("type".into(), json!("object"));
        Ok(ListToolsResult::with_all_items(vec![
            rmcp::model::Tool::new("read_chart", "read a chart", Arc::new(schema)),
        ]))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let args = request.arguments.unwrap_or_default();
        let text = json!(chart_of(patient(&args))).to_string();
        Ok(CallToolResult::success(vec![ContentBlock::text(text)]).into())
    }
}

fn setup() -> (Guardrail, MemorySink, Catalogue, SessionConfig) {
    let sink = MemorySink::new();
    let g = Guardrail::builder()
        .policy(Policy::from_toml_str(POLICY).unwrap())
        .audit(sink.clone())
        .audit_key(AuditKey::from_bytes(b"bench-mcp-key-0123456789abcdefgh").unwrap())
        .build()
        .unwrap();
    let catalogue = Catalogue::new().tool(Tool::new(
        "read_chart",
        "bench_mcp.read_chart",
        "read a chart",
        |ctx, a| Ok(json!(read_chart(ctx, patient(a))?)),
    ));
    let config = SessionConfig::new(Principal::new("dr-grey").role("provider"))
        .endpoint(Endpoint::Provider)
        .purpose(Purpose::Treatment)
        .agent(AgentId::new("bench-assistant"));
    (g, sink, catalogue, config)
}

/// Times `iters` calls of `call`, emptying the memory trail every 1024 of them.
fn timed(sink: &MemorySink, iters: u64, mut call: impl FnMut()) -> Duration {
    sink.clear();
    let start = Instant::now();
    for i in 0..iters {
        call();
        if i % 1024 == 1023 {
            sink.clear();
        }
    }
    start.elapsed()
}

async fn connect<S: ServerHandler>(server: S) -> RunningService<RoleClient, ClientConfig> {
    let (server_io, client_io) = tokio::io::duplex(1 << 16);
    tokio::spawn(async move {
        if let Ok(running) = server.serve(server_io).await {
            let _ = running.waiting().await;
        }
    });
    ClientConfig::new(
        ClientCapabilities::default(),
        Implementation::new("bench-client", "1"),
    )
    .serve(client_io)
    .await
    .unwrap()
}

/// The rmcp client's text answer.
fn text(r: CallToolResult) -> String {
    r.content
        .first()
        .and_then(|c| c.as_text())
        .map(|t| t.text.clone())
        .unwrap()
}

/// `mcp/*` (2 workers) or `mcp_1t/*` (current thread): the same tool call through the plain
/// and the guarded server, side by side on `rt`.
fn over_transport(
    c: &mut Criterion,
    group: &str,
    rt: &tokio::runtime::Runtime,
    (g, sink, catalogue, config): &(Guardrail, MemorySink, Catalogue, SessionConfig),
    request: &CallToolRequestParams,
) {
    let guarded = rt.block_on(connect(GuardedServer::new(
        g.clone(),
        catalogue.clone(),
        config.clone(),
    )));
    let plain = rt.block_on(connect(Plain));
    // Both answer, only the guarded one masks, and the answers are of comparable size.
    let g_text = text(rt.block_on(guarded.call_tool(request.clone())).unwrap());
    let p_text = text(rt.block_on(plain.call_tool(request.clone())).unwrap());
    assert!(!g_text.contains("123-45-6789") && p_text.contains("123-45-6789"));
    // The masked chart is longer (the record number's token is 64 hex digits): moving the
    // extra bytes is counted as the guard's cost. Nothing else may make it differ.
    assert!(
        p_text.len() < g_text.len() && g_text.len() * 2 < p_text.len() * 3,
        "{g_text} vs {p_text}"
    );

    let mut group = c.benchmark_group(group);
    group.bench_function("plain", |b| {
        b.iter(|| black_box(rt.block_on(plain.call_tool(request.clone())).unwrap()))
    });
    group.bench_function("guarded", |b| {
        b.iter_custom(|iters| {
            timed(sink, iters, || {
                black_box(rt.block_on(guarded.call_tool(request.clone())).unwrap());
            })
        })
    });
    group.finish();
    rt.block_on(async {
        let _ = guarded.cancel().await;
        let _ = plain.cancel().await;
    });
}

fn mcp(c: &mut Criterion) {
    let fixture = setup();
    let args = json!({"patient_id": "p-1"}).as_object().cloned().unwrap();
    let request = CallToolRequestParams::new("read_chart").with_arguments(args.clone());

    let workers = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    over_transport(c, "mcp", &workers, &fixture, &request);
    let one = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    over_transport(c, "mcp_1t", &one, &fixture, &request);

    let (g, sink, catalogue, config) = fixture;
    let session = Session::open(&g, &catalogue, config, AgentId::new("bench-client"));
    let mut group = c.benchmark_group("session");
    group.bench_function("plain", |b| {
        b.iter(|| black_box(json!(chart_of(patient(black_box(&args)))).to_string()))
    });
    group.bench_function("guarded", |b| {
        b.iter_custom(|iters| {
            timed(&sink, iters, || {
                black_box(session.call("read_chart", black_box(&args), None).unwrap());
            })
        })
    });
    group.finish();
}

criterion_group!(benches, mcp);
criterion_main!(benches);
