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
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use guardrail_core::mask::scrub_text;
use guardrail_core::registry::{self, ActionDescriptor};
use guardrail_core::{
    AgentId, Context, Effect, Endpoint, GuardError, Guardrail, Policy, Principal, Purpose,
};
use serde_json::{Map, Value};

mod server;
pub use server::{APPROVAL_ARGUMENT, GuardedServer};

/// A tool's handler: the session's context and the call's arguments, to the JSON of the
/// (already masked) `Ok` value.
pub type Handler = dyn Fn(&Context, &Map<String, Value>) -> Result<Value, ToolError> + Send + Sync;

/// One tool: an MCP name wrapping the guarded action it calls.
#[derive(Clone)]
pub struct Tool {
    name: Arc<str>,
    action: &'static str,
    description: Arc<str>,
    handler: Arc<Handler>,
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
            handler: Arc::new(handler),
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

    /// The tools `principal` could ever be allowed under `policy`: the action is registered,
    /// and an allow rule applies to it and allows one of the principal's roles the code also
    /// allows. A tool for an unregistered action is never offered.
    pub fn offered(&self, policy: &Policy, principal: &Principal) -> Vec<Tool> {
        self.tools
            .iter()
            .filter(|t| {
                registry::find(t.action).is_some_and(|a| could_be_allowed(policy, a, principal))
            })
            .cloned()
            .collect()
    }
}

/// True if some allow rule applies to `action` and allows a role of `principal` that the
/// action's code allows.
pub fn could_be_allowed(policy: &Policy, action: &ActionDescriptor, principal: &Principal) -> bool {
    policy.rules().iter().any(|rule| {
        rule.effect() == Effect::Allow
            && rule.applies_to(action)
            && principal
                .get_roles()
                .iter()
                .any(|r| action.allows_role(r) && rule.allows_role(r))
    })
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
}

static SESSIONS: AtomicU64 = AtomicU64::new(0);

/// One MCP session: a person, an agent, a session id recorded in every event.
#[derive(Debug, Clone)]
pub struct Session {
    guardrail: Guardrail,
    config: SessionConfig,
    agent: AgentId,
    id: Arc<str>,
    tools: Vec<Tool>,
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
        let tools = catalogue.offered(&guardrail.policy(), &config.principal);
        Session {
            guardrail: guardrail.clone(),
            config,
            agent,
            id,
            tools,
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

    /// The context of one call: everything from the session, nothing from arguments.
    fn context(&self) -> Context {
        let mut ctx = self
            .guardrail
            .context(self.config.principal.clone())
            .agent(self.agent.clone())
            .session(&*self.id);
        if let Some(e) = self.config.endpoint {
            ctx = ctx.endpoint(e);
        }
        if let Some(p) = self.config.purpose {
            ctx = ctx.purpose(p);
        }
        ctx
    }

    /// Calls tool `name`; `approval` is a granted request's id for a retried call.
    pub fn call(
        &self,
        name: &str,
        arguments: &Map<String, Value>,
        approval: Option<&str>,
    ) -> Result<Value, ToolError> {
        let tool = self
            .tools
            .iter()
            .find(|t| &*t.name == name)
            .ok_or_else(|| ToolError::NotOffered(scrub_text(name)))?;
        let mut ctx = self.context();
        if let Some(id) = approval {
            ctx = ctx.approval(guardrail_core::approval::ApprovalId::new(id));
        }
        let value = (tool.handler)(&ctx, arguments)?;
        Ok(scrub_json(value))
    }
}

/// Passes every string of `value` (keys and values) through [`scrub_text`].
pub fn scrub_json(value: Value) -> Value {
    match value {
        Value::String(s) => Value::String(scrub_text(&s)),
        Value::Array(items) => Value::Array(items.into_iter().map(scrub_json).collect()),
        Value::Object(map) => Value::Object(
            map.into_iter()
                .map(|(k, v)| (scrub_text(&k), scrub_json(v)))
                .collect(),
        ),
        other => other,
    }
}
