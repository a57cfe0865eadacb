//! Guarded tools for AI agents (MCP servers).
//!
//! Each tool wraps a `#[phi_action]` function. A [`Session`] is authenticated as a *person*
//! (the [`SessionConfig`]'s principal, from server configuration or an auth hook) and names
//! the agent it acts through; the tools it is offered are those whose action the person could
//! ever be allowed ([`Catalogue::offered`]). Principal, roles, purpose, endpoint and
//! break-glass come only from the session and server configuration, never from tool
//! arguments: a tool's handler receives a [`Context`] built by the session and the arguments
//! as data. Results are JSON of the masked `Ok` value with every string scrubbed
//! ([`scrub_json`]); denials and approval requests become PHI-free [`ToolError`]s.
//!
//! [`GuardedServer`] is the rmcp `ServerHandler` over a [`Catalogue`]: one per connection,
//! its session opened on first use with the agent named by the client's initialize request.

#![forbid(unsafe_code)]

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use guardrail_core::mask::scrub_text;
use guardrail_core::registry::{self, ActionDescriptor};
use guardrail_core::{
    AgentId, Context, Effect, Endpoint, GuardError, Guardrail, HeldOutcomes, Policy, Principal,
    Purpose,
};
use serde_json::{Map, Value};

mod render;
mod server;
pub use render::{result_digest, scrub_json, scrub_json_in_place};
pub use server::{APPROVAL_ARGUMENT, Authenticate, GuardedServer};

/// A tool's handler: the session's context and the call's arguments, to the JSON of the
/// (already masked) `Ok` value.
pub type Handler = dyn Fn(&Context, &Map<String, Value>) -> Result<Value, ToolError> + Send + Sync;

/// The future an async tool's handler returns.
pub type ToolFuture = Pin<Box<dyn Future<Output = Result<Value, ToolError>> + Send>>;

/// An async tool's handler: its own copy of the session's context and of the call's
/// arguments, to the future of the JSON of the (already masked) `Ok` value. Its guarded
/// calls are `async fn` actions, which await the durability of their events instead of
/// blocking the thread.
pub type AsyncHandler = dyn Fn(Context, Map<String, Value>) -> ToolFuture + Send + Sync;

/// How a tool runs.
#[derive(Clone)]
enum Body {
    Sync(Arc<Handler>),
    Async(Arc<AsyncHandler>),
}

/// One tool: an MCP name wrapping the guarded action it calls.
#[derive(Clone)]
pub struct Tool {
    name: Arc<str>,
    action: &'static str,
    description: Arc<str>,
    body: Body,
}

impl fmt::Debug for Tool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tool")
            .field("name", &self.name)
            .field("action", &self.action)
            .finish_non_exhaustive()
    }
}

impl Tool {
    /// A tool `name` calling the guarded action named `action` through `handler`.
    ///
    /// The handler runs on the thread that calls the tool: under [`GuardedServer`], a worker
    /// of the async runtime. Its guarded call waits there for its decision event to be
    /// durable (with a trail in fsync mode, for a group commit), and any blocking I/O of its
    /// own (a SQLite query) holds the worker too; with such a trail, or on a runtime with few
    /// workers, prefer [`Tool::new_async`] and an `async fn` action, which await instead.
    pub fn new(
        name: impl AsRef<str>,
        action: &'static str,
        description: impl AsRef<str>,
        handler: impl Fn(&Context, &Map<String, Value>) -> Result<Value, ToolError>
        + Send
        + Sync
        + 'static,
    ) -> Tool {
        Tool {
            name: Arc::from(name.as_ref()),
            action,
            description: Arc::from(description.as_ref()),
            body: Body::Sync(Arc::new(handler)),
        }
    }

    /// A tool `name` calling the guarded `async fn` action named `action` through the async
    /// `handler`. Only [`Session::call_async`] (what [`GuardedServer`] uses) runs it.
    pub fn new_async<F>(
        name: impl AsRef<str>,
        action: &'static str,
        description: impl AsRef<str>,
        handler: impl Fn(Context, Map<String, Value>) -> F + Send + Sync + 'static,
    ) -> Tool
    where
        F: Future<Output = Result<Value, ToolError>> + Send + 'static,
    {
        let handler = move |ctx, args| -> ToolFuture { Box::pin(handler(ctx, args)) };
        Tool {
            name: Arc::from(name.as_ref()),
            action,
            description: Arc::from(description.as_ref()),
            body: Body::Async(Arc::new(handler)),
        }
    }

    /// The MCP tool name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The guarded action's name.
    pub fn action(&self) -> &'static str {
        self.action
    }

    /// What the model is told the tool does.
    pub fn description(&self) -> &str {
        &self.description
    }
}

/// Why a tool call produced no result. Every message is free of PHI.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ToolError {
    /// The session is not offered this tool (unknown, or never allowed for this person).
    #[error("no tool named `{0}` is available in this session")]
    NotOffered(String),
    /// The policy refused the call.
    #[error("refused by policy: {0}")]
    Denied(String),
    /// A second person must approve first; retry once request `id` is approved.
    #[error("needs approval: wait for request `{id}` to be approved, then call again")]
    ApprovalRequired {
        /// The approval request's id.
        id: String,
    },
    /// The arguments are unusable (named field, never its value).
    #[error("invalid arguments: {0}")]
    InvalidArguments(String),
    /// The tool failed for another reason (described without PHI).
    #[error("the tool failed: {0}")]
    Failed(String),
}

impl From<GuardError> for ToolError {
    fn from(e: GuardError) -> ToolError {
        match e {
            GuardError::Denied { reason, .. } => ToolError::Denied(reason.to_string()),
            GuardError::ApprovalRequired { request } => ToolError::ApprovalRequired {
                id: request.id.as_str().to_owned(),
            },
            GuardError::MissingContext { field, .. } => {
                ToolError::Denied(format!("the session has no {field}"))
            }
            GuardError::AuditUnavailable { .. } => {
                ToolError::Failed("the audit trail is unavailable".into())
            }
            GuardError::InvalidInput { .. } => {
                ToolError::InvalidArguments("an argument the guard reads is unusable".into())
            }
            _ => ToolError::Failed("refused".into()),
        }
    }
}

/// The server's tools.
#[derive(Debug, Clone, Default)]
pub struct Catalogue {
    tools: Vec<Tool>,
}

impl Catalogue {
    /// An empty catalogue.
    pub fn new() -> Catalogue {
        Catalogue::default()
    }

    /// Adds a tool.
    pub fn tool(mut self, tool: Tool) -> Catalogue {
        self.tools.push(tool);
        self
    }

    /// The tools `principal`, acting through `agent` (`None`: directly), could ever be
    /// allowed under `policy`: the action is registered, and an allow rule applies to it,
    /// allows one of the principal's roles the code also allows, and its agent conditions
    /// (`agents = [..]`, `direct_only`) hold for `agent`. A tool for an unregistered action
    /// is never offered.
    pub fn offered(
        &self,
        policy: &Policy,
        principal: &Principal,
        agent: Option<&str>,
    ) -> Vec<Tool> {
        self.tools
            .iter()
            .filter(|t| {
                registry::find(t.action)
                    .is_some_and(|a| could_be_allowed(policy, a, principal, agent))
            })
            .cloned()
            .collect()
    }
}

/// True if some allow rule applies to `action`, allows a role of `principal` that the
/// action's code allows, and admits calls through `agent` (`None`: a direct call).
pub fn could_be_allowed(
    policy: &Policy,
    action: &ActionDescriptor,
    principal: &Principal,
    agent: Option<&str>,
) -> bool {
    policy.rules().iter().any(|rule| {
        rule.effect() == Effect::Allow
            && rule.applies_to(action)
            && rule.allows_agent(agent)
            && principal
                .get_roles()
                .iter()
                .any(|r| action.allows_role(r) && rule.allows_role(r))
    })
}

/// True if break-glass could ever open `action` for `principal`: the policy has a
/// `[break_glass]` section and the code allows one of the principal's roles. (The section's
/// finer limits are checked at call time; a tool offered here may still be refused.)
fn break_glass_could_open(
    policy: &Policy,
    action: &ActionDescriptor,
    principal: &Principal,
) -> bool {
    policy.break_glass_enabled() && principal.get_roles().iter().any(|r| action.allows_role(r))
}

/// Who a session acts for and how, fixed by server configuration (or an auth hook).
#[derive(Debug, Clone)]
pub struct SessionConfig {
    /// The authenticated person.
    pub principal: Principal,
    /// The endpoint calls come through.
    pub endpoint: Option<Endpoint>,
    /// The purpose of use.
    pub purpose: Option<Purpose>,
    /// A configured agent id; when `None`, the client's own (initialize) name is used.
    pub agent: Option<AgentId>,
    /// An emergency declared by the server for this whole session (its reason): every call
    /// is made under break-glass, flagged in its events and alerted. Only server
    /// configuration sets it; no tool argument can.
    pub break_glass: Option<String>,
}

impl SessionConfig {
    /// A session for `principal` with no endpoint, purpose, configured agent or emergency.
    pub fn new(principal: Principal) -> SessionConfig {
        SessionConfig {
            principal,
            endpoint: None,
            purpose: None,
            agent: None,
            break_glass: None,
        }
    }

    /// Sets the endpoint.
    pub fn endpoint(mut self, endpoint: Endpoint) -> SessionConfig {
        self.endpoint = Some(endpoint);
        self
    }

    /// Sets the purpose of use.
    pub fn purpose(mut self, purpose: Purpose) -> SessionConfig {
        self.purpose = Some(purpose);
        self
    }

    /// Names the agent instead of the client's own name.
    pub fn agent(mut self, agent: AgentId) -> SessionConfig {
        self.agent = Some(agent);
        self
    }

    /// Declares an emergency for the whole session, with its reason.
    pub fn break_glass(mut self, reason: impl Into<String>) -> SessionConfig {
        self.break_glass = Some(reason.into());
        self
    }
}

static SESSIONS: AtomicU64 = AtomicU64::new(0);

/// One MCP session: a person, an agent, a session id recorded in every event.
#[derive(Debug, Clone)]
pub struct Session {
    config: SessionConfig,
    agent: AgentId,
    id: Arc<str>,
    tools: Vec<Tool>,
    /// The context every call starts from (under its own request id): built once, from the
    /// session alone.
    base: Context,
}

impl Session {
    /// Opens a session for `config`; `client` is the agent the MCP client named itself in its
    /// initialize request (used unless the configuration names one).
    pub fn open(
        guardrail: &Guardrail,
        catalogue: &Catalogue,
        config: SessionConfig,
        client: AgentId,
    ) -> Session {
        let agent = config.agent.clone().unwrap_or(client);
        let n = SESSIONS.fetch_add(1, Ordering::Relaxed);
        let id: Arc<str> = Arc::from(format!(
            "mcp-{:x}-{n:x}",
            guardrail_core::audit::Timestamp::now().0
        ));
        let policy = guardrail.policy();
        let mut tools = catalogue.offered(&policy, &config.principal, Some(agent.name()));
        if config.break_glass.is_some() {
            // An emergency session may also be offered what break-glass could open.
            tools = catalogue
                .tools
                .iter()
                .filter(|t| {
                    registry::find(t.action).is_some_and(|a| {
                        could_be_allowed(&policy, a, &config.principal, Some(agent.name()))
                            || break_glass_could_open(&policy, a, &config.principal)
                    })
                })
                .cloned()
                .collect();
        }
        let base = base_context(guardrail, &config, &agent, &id);
        Session {
            config,
            agent,
            id,
            tools,
            base,
        }
    }

    /// The session id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The tools this session is offered.
    pub fn tools(&self) -> &[Tool] {
        &self.tools
    }

    /// The person the session acts for.
    pub fn principal(&self) -> &Principal {
        &self.config.principal
    }

    /// The agent the session acts through.
    pub fn agent(&self) -> &AgentId {
        &self.agent
    }

    /// Calls tool `name`; `approval` is a granted request's id for a retried call.
    ///
    /// The `ok` outcome events of the guarded calls the tool makes are held until the result
    /// is rendered, then appended with `detail.result_digest`: the SHA-256 (hex) of
    /// [`Delivered::text`], exactly what the model receives. If they cannot be recorded the
    /// result is withheld (fail closed). Waits on the thread for the trail's durability; an
    /// async server calls [`Session::call_async`] instead. An async tool
    /// ([`Tool::new_async`]) is refused here.
    pub fn call(
        &self,
        name: &str,
        arguments: &Map<String, Value>,
        approval: Option<&str>,
    ) -> Result<Delivered, ToolError> {
        let (tool, held, ctx) = self.start(name, approval)?;
        let Body::Sync(handler) = &tool.body else {
            return Err(ToolError::Failed(
                "this tool is async: it runs only in an async server".into(),
            ));
        };
        // On an error the holder is dropped: held outcomes are recorded as `undelivered`.
        let delivered = deliverable(handler(&ctx, arguments)?)?;
        held.release(&[(RESULT_DIGEST, delivered.digest.clone())])
            .map_err(ToolError::from)?;
        Ok(delivered)
    }

    /// [`Session::call`] for an async server: the held outcome events are queued and their
    /// durability awaited, never waited for on the thread, and an async tool's guarded
    /// calls await theirs too. (A sync tool's guarded calls still record their decision
    /// events on the thread, as sync actions do.) Nothing is delivered before every outcome
    /// event is durable.
    pub async fn call_async(
        &self,
        name: &str,
        arguments: &Map<String, Value>,
        approval: Option<&str>,
    ) -> Result<Delivered, ToolError> {
        let (tool, held, ctx) = self.start(name, approval)?;
        // On an error the holder is dropped: held outcomes are recorded as `undelivered`.
        let value = match &tool.body {
            Body::Sync(handler) => handler(&ctx, arguments)?,
            Body::Async(handler) => handler(ctx, arguments.clone()).await?,
        };
        let delivered = deliverable(value)?;
        held.release_async(&[(RESULT_DIGEST, delivered.digest.clone())])
            .await
            .map_err(ToolError::from)?;
        Ok(delivered)
    }

    /// The offered tool `name`, a holder for its outcome events, and its context: the
    /// session's, under a new request id, holding its `ok` outcomes.
    fn start(
        &self,
        name: &str,
        approval: Option<&str>,
    ) -> Result<(&Tool, HeldOutcomes, Context), ToolError> {
        let tool = self
            .tools
            .iter()
            .find(|t| &*t.name == name)
            .ok_or_else(|| ToolError::NotOffered(scrub_text(name)))?;
        let held = HeldOutcomes::new();
        // Everything from the session, nothing from arguments; a new request id per call.
        let mut ctx = self.base.next_request().hold_outcomes(&held);
        if let Some(id) = approval {
            ctx = ctx.approval(guardrail_core::approval::ApprovalId::new(id));
        }
        Ok((tool, held, ctx))
    }
}

/// A tool's JSON as delivered: scrubbed, its compact text, and the text's digest.
fn deliverable(mut value: Value) -> Result<Delivered, ToolError> {
    scrub_json_in_place(&mut value);
    let text = render::render(&value)?;
    let digest = result_digest(&text);
    Ok(Delivered {
        value,
        text,
        digest,
    })
}

/// The context every call of a session starts from: the person, the agent, the session id,
/// and the configured endpoint, purpose and emergency.
fn base_context(g: &Guardrail, config: &SessionConfig, agent: &AgentId, id: &str) -> Context {
    let mut ctx = g
        .context(config.principal.clone())
        .agent(agent.clone())
        .session(id);
    if let Some(e) = config.endpoint {
        ctx = ctx.endpoint(e);
    }
    if let Some(p) = config.purpose {
        ctx = ctx.purpose(p);
    }
    if let Some(reason) = &config.break_glass {
        ctx = ctx.break_glass(reason);
    }
    ctx
}

/// The `detail` key of an outcome event holding the digest of the delivered result.
pub const RESULT_DIGEST: &str = "result_digest";

/// What a tool call delivered to the model.
#[derive(Debug, Clone, PartialEq)]
pub struct Delivered {
    value: Value,
    text: String,
    digest: String,
}

impl Delivered {
    /// The scrubbed JSON value.
    pub fn value(&self) -> &Value {
        &self.value
    }

    /// The exact text sent to the model (the value as compact JSON).
    pub fn text(&self) -> &str {
        &self.text
    }

    /// SHA-256 (hex) of [`Delivered::text`], as recorded in the outcome events.
    pub fn digest(&self) -> &str {
        &self.digest
    }

    /// The exact text sent to the model, taken out (no copy).
    pub fn into_text(self) -> String {
        self.text
    }
}
