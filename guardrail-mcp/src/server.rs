//! The rmcp `ServerHandler`: tools/list and tools/call over one [`Session`].

use std::sync::{Arc, OnceLock};

use guardrail_core::{AgentId, Guardrail};
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, ListToolsResult,
    PaginatedRequestParams, ServerCapabilities, ServerConfig,
};
use rmcp::service::RequestContext;
use rmcp::{ErrorData as McpError, RoleServer, ServerHandler};
use serde_json::{Map, Value};

use crate::{Catalogue, Session, SessionConfig};

/// The one argument the server reads itself: the id of an approved request, for a retry.
/// It is removed before the tool sees its arguments; a grant is bound to the person, the
/// action and the call, so naming one cannot widen anything.
pub const APPROVAL_ARGUMENT: &str = "_approval";

/// An MCP server over guarded tools, one per connection (MCP session).
#[derive(Debug, Clone)]
pub struct GuardedServer {
    guardrail: Guardrail,
    catalogue: Arc<Catalogue>,
    config: SessionConfig,
    session: Arc<OnceLock<Session>>,
}

impl GuardedServer {
    /// A server for the person and agent of `config`.
    pub fn new(guardrail: Guardrail, catalogue: Catalogue, config: SessionConfig) -> Self {
        GuardedServer {
            guardrail,
            catalogue: Arc::new(catalogue),
            config,
            session: Arc::new(OnceLock::new()),
        }
    }

    /// The session, opened on first use with the agent the client named at initialize.
    fn session(&self, context: &RequestContext<RoleServer>) -> &Session {
        self.session.get_or_init(|| {
            let client = match context.client_info() {
                Some(info) if !info.version.is_empty() => {
                    AgentId::new(&info.name).version(&info.version)
                }
                Some(info) => AgentId::new(&info.name),
                None => AgentId::new("unknown-agent"),
            };
            Session::open(
                &self.guardrail,
                &self.catalogue,
                self.config.clone(),
                client,
            )
        })
    }

    /// The session id, once a request opened it.
    pub fn session_id(&self) -> Option<&str> {
        self.session.get().map(Session::id)
    }
}

fn schema() -> Arc<Map<String, Value>> {
    let mut m = Map::new();
    m.insert("type".into(), Value::String("object".into()));
    Arc::new(m)
}

impl ServerHandler for GuardedServer {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, McpError> {
        let tools = self
            .session(&context)
            .tools()
            .iter()
            .map(|t| {
                rmcp::model::Tool::new(t.name().to_owned(), t.description().to_owned(), schema())
            })
            .collect();
        Ok(ListToolsResult::with_all_items(tools))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, McpError> {
        let session = self.session(&context);
        let mut args = request.arguments.unwrap_or_default();
        let approval = match args.remove(APPROVAL_ARGUMENT) {
            Some(Value::String(s)) => Some(s),
            _ => None,
        };
        let result = match session.call(&request.name, &args, approval.as_deref()) {
            Ok(delivered) => {
                CallToolResult::success(vec![ContentBlock::text(delivered.text().to_owned())])
            }
            Err(e) => CallToolResult::error(vec![ContentBlock::text(e.to_string())]),
        };
        Ok(result.into())
    }
}
