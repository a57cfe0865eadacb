//! What `mcp.rs` and `mcp_paired.rs` share: the policy, the `read_chart` tool (guarded and
//! plain), the session's configuration, and the client. Included by each with `#[path]`.

#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use guardrail_core::prelude::*;
use guardrail_core::{AgentId, AuditKey, Endpoint, Purpose};
use guardrail_mcp::{Catalogue, SessionConfig, Tool};
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ClientCapabilities, ClientConfig,
    ContentBlock, Implementation, ListToolsResult, PaginatedRequestParams, ServerCapabilities,
    ServerConfig,
};
use rmcp::service::{RequestContext, RunningService};
use rmcp::{ErrorData, RoleClient, RoleServer, ServerHandler, ServiceExt};
use serde::Serialize;
use serde_json::{Map, Value, json};

pub const POLICY: &str = r#"
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
pub struct Chart {
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

pub fn chart_of(id: &str) -> Chart {
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
pub fn read_chart(ctx: &Context, id: &str) -> Result<Chart, GuardError> {
    Ok(chart_of(id))
}

pub fn patient(a: &Map<String, Value>) -> &str {
    a.get("patient_id").and_then(Value::as_str).unwrap_or("")
}

/// The same tool without the guard.
#[derive(Debug, Clone)]
pub struct Plain;

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

pub fn setup() -> (Guardrail, MemorySink, Catalogue, SessionConfig) {
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
pub fn timed(sink: &MemorySink, iters: u64, mut call: impl FnMut()) -> Duration {
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

pub async fn connect<S: ServerHandler>(server: S) -> RunningService<RoleClient, ClientConfig> {
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
pub fn text(r: CallToolResult) -> String {
    r.content
        .first()
        .and_then(|c| c.as_text())
        .map(|t| t.text.clone())
        .unwrap()
}
