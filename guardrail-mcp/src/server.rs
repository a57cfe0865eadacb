//! The rmcp `ServerHandler`: tools/list and tools/call over one [`Session`].

use std::sync::{Arc, OnceLock};

use guardrail_core::{AgentId, Guardrail};
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, Extensions,
    InitializeRequestParams, InitializeResult, ListToolsResult, PaginatedRequestParams,
    ServerCapabilities, ServerConfig,
};
use rmcp::service::RequestContext;
use rmcp::{ErrorData as McpError, RoleServer, ServerHandler};
use serde_json::{Map, Value};

use crate::{Catalogue, Session, SessionConfig};

/// The one argument the server reads itself: the id of an approved request, for a retry.
/// It is removed before the tool sees its arguments; a grant is bound to the person, the
/// action and the call, so naming one cannot widen anything.
pub const APPROVAL_ARGUMENT: &str = "_approval";

/// Who a request comes from, decided by the host for each request from what the transport
/// carries (for streamable HTTP, the request's `http::request::Parts`, with the extensions
/// the host's authentication layer added): the session configuration of the person the
/// request was authenticated as, or `None` to refuse it.
pub type Authenticate = dyn Fn(&Extensions) -> Option<SessionConfig> + Send + Sync;

/// Where a server's person comes from.
#[derive(Clone)]
enum Identity {
    /// One configured person for the whole connection (stdio: the process's user).
    Fixed(SessionConfig),
    /// Every request authenticated on its own (streamable HTTP).
    PerRequest(Arc<Authenticate>),
}

impl std::fmt::Debug for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Identity::Fixed(config) => f.debug_tuple("Fixed").field(config).finish(),
            Identity::PerRequest(_) => f.write_str("PerRequest"),
        }
    }
}

/// An MCP server over guarded tools, one per connection (MCP session).
#[derive(Debug, Clone)]
pub struct GuardedServer {
    guardrail: Guardrail,
    catalogue: Arc<Catalogue>,
    identity: Identity,
    session: Arc<OnceLock<Session>>,
}

impl GuardedServer {
    /// A server for the person and agent of `config`, fixed for the whole connection.
    pub fn new(guardrail: Guardrail, catalogue: Catalogue, config: SessionConfig) -> Self {
        GuardedServer {
            guardrail,
            catalogue: Arc::new(catalogue),
            identity: Identity::Fixed(config),
            session: Arc::new(OnceLock::new()),
        }
    }

    /// A server whose every request is authenticated by `authenticate` (see
    /// [`Authenticate`]). A request it returns `None` for is refused before anything else
    /// happens, and so is a request authenticated as another person than the one the
    /// session was opened for: a session never changes hands. Fails closed: a host that
    /// forgot its authentication layer gets every request refused.
    pub fn authenticated(
        guardrail: Guardrail,
        catalogue: Catalogue,
        authenticate: impl Fn(&Extensions) -> Option<SessionConfig> + Send + Sync + 'static,
    ) -> Self {
        GuardedServer {
            guardrail,
            catalogue: Arc::new(catalogue),
            identity: Identity::PerRequest(Arc::new(authenticate)),
            session: Arc::new(OnceLock::new()),
        }
    }

    /// The session of this request, opened on first use with the agent the client named at
    /// initialize; an error (PHI-free) if the request is not authenticated as its person.
    fn session(&self, context: &RequestContext<RoleServer>) -> Result<&Session, McpError> {
        // A fixed identity is borrowed, not copied: a request of a stdio session costs no
        // allocation here.
        let authenticated;
        let config = match &self.identity {
            Identity::Fixed(config) => config,
            Identity::PerRequest(authenticate) => {
                authenticated = authenticate(&context.extensions).ok_or_else(|| {
                    McpError::invalid_request("the request is not authenticated", None)
                })?;
                &authenticated
            }
        };
        let session = self.session.get_or_init(|| {
            let client = match context.client_info() {
                Some(info) if !info.version.is_empty() => {
                    AgentId::new(&info.name).version(&info.version)
                }
                Some(info) => AgentId::new(&info.name),
                None => AgentId::new("unknown-agent"),
            };
            Session::open(&self.guardrail, &self.catalogue, config.clone(), client)
        });
        if session.principal().id() != config.principal.id() {
            return Err(McpError::invalid_request(
                "the request is authenticated as another person than the session's",
                None,
            ));
        }
        Ok(session)
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

    /// Opens the session at the handshake, for the person the initialize request is
    /// authenticated as: a session belongs to whoever opened it, never to the first person
    /// who happens to call a tool in it.
    async fn initialize(
        &self,
        request: InitializeRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<InitializeResult, McpError> {
        context.peer.set_peer_info(request.clone());
        self.session(&context)?;
        self.negotiate_initialize(&request)
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, McpError> {
        let tools = self
            .session(&context)?
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
        let session = self.session(&context)?;
        let mut args = request.arguments.unwrap_or_default();
        let approval = match args.remove(APPROVAL_ARGUMENT) {
            Some(Value::String(s)) => Some(s),
            _ => None,
        };
        // Awaits the trail's durability instead of blocking the worker on it.
        let result = match session
            .call_async(&request.name, &args, approval.as_deref())
            .await
        {
            Ok(delivered) => {
                CallToolResult::success(vec![ContentBlock::text(delivered.into_text())])
            }
            Err(e) => CallToolResult::error(vec![ContentBlock::text(e.to_string())]),
        };
        Ok(result.into())
    }
}
