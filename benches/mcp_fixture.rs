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

/// The least any conforming guard does around the tool, and nothing more: the floor under
/// the guard's cost. Before the body, one decision event (who, via which agent, in which
/// session, the patient's keyed token, `allow`) appended to a memory trail; after it, one
/// outcome event holding the SHA-256 of the text delivered. From [`FloorStep::Masked`], the
/// chart is also masked as the policy's rule says (its `[masking]` strategies, `name` and
/// `diagnosis` revealed) before it is rendered; from [`FloorStep::Scrubbed`], the result's
/// strings are also scanned (`guardrail_mcp::scrub_json_in_place`), as issue 10 requires of
/// free text. No policy decision, no request ids, no held outcomes: a guard that met issue 10
/// would do those as well.
#[derive(Clone)]
pub struct Floor {
    pub key: AuditKey,
    pub sink: MemorySink,
    /// `principal`, `via`, `session`, `action`, `allow`, shared by every event.
    pub fields: Arc<[Arc<str>; 5]>,
    pub masking: Option<Arc<guardrail_core::mask::MaskingConfig>>,
    pub scrub: bool,
}

/// How much of a guard's work a [`Floor`] does.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum FloorStep {
    /// The two events, the keyed subject and the result's digest.
    Events,
    /// And masking.
    Masked,
    /// And scanning the result's strings.
    Scrubbed,
}

impl Floor {
    pub fn new(sink: MemorySink, step: FloorStep) -> Floor {
        let config = Policy::from_toml_str(POLICY).unwrap().masking().clone();
        Floor {
            key: AuditKey::from_bytes(b"bench-mcp-key-0123456789abcdefgh").unwrap(),
            sink,
            fields: Arc::new(
                [
                    "dr-grey",
                    "bench-assistant",
                    "mcp-floor",
                    "bench_mcp.read_chart",
                    "allow",
                ]
                .map(Arc::from),
            ),
            masking: (step != FloorStep::Events).then(|| Arc::new(config)),
            scrub: step == FloorStep::Scrubbed,
        }
    }

    fn event(&self, kind: guardrail_audit::EventKind) -> guardrail_audit::Record {
        let [principal, via, session, action, _] = &*self.fields;
        let mut r = guardrail_audit::Record::at(kind, guardrail_audit::Timestamp::now());
        r.principal = Some(principal.clone());
        r.via = Some(via.clone());
        r.session = Some(session.clone());
        r.action = Some(action.clone());
        r
    }
}

impl ServerHandler for Floor {
    fn get_info(&self) -> ServerConfig {
        Plain.get_info()
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        use guardrail_audit::{AuditSink, EventKind};
        let args = request.arguments.unwrap_or_default();
        let id = patient(&args);
        let mut decision = self.event(EventKind::Decision);
        decision.subject = Some(self.key.token_display_arc(AuditKey::SUBJECT_DOMAIN, &id));
        decision.decision = Some(self.fields[4].clone());
        self.sink
            .append(decision)
            .map_err(|_| ErrorData::internal_error("trail", None))?;
        let mut chart = chart_of(id);
        if let Some(config) = &self.masking {
            use guardrail_core::{Category, CategorySet, Masker, Redact};
            let reveal = CategorySet::EMPTY
                .with(Category::Name)
                .with(Category::Diagnosis);
            chart.redact(&Masker::new(reveal, config, &self.key));
        }
        let mut value = json!(chart);
        if self.scrub {
            guardrail_mcp::scrub_json_in_place(&mut value);
        }
        let text = value.to_string();
        let mut outcome = self.event(EventKind::Outcome);
        outcome
            .detail
            .insert("result_digest".into(), guardrail_mcp::result_digest(&text));
        self.sink
            .append(outcome)
            .map_err(|_| ErrorData::internal_error("trail", None))?;
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
