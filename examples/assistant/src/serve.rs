//! Serving the tools over MCP: stdio (one session, the configured person) and streamable
//! HTTP on loopback (one session per MCP session the client opens; every HTTP request
//! authenticated by its bearer token).

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use guardrail_core::Guardrail;
use guardrail_mcp::{Catalogue, GuardedServer, SessionConfig};
use rmcp::ServiceExt as _;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use sha2::{Digest as _, Sha256};
use tokio::net::TcpListener;
use tokio::sync::oneshot;

/// The bearer tokens the HTTP server accepts, each the credential of one person (from the
/// server's configuration). Kept as SHA-256 digests: a lookup compares digests, so its
/// timing says nothing useful about a token, and the tokens themselves are not kept.
#[derive(Clone, Default)]
pub struct Tokens {
    by_digest: HashMap<[u8; 32], SessionConfig>,
}

impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Who holds a token is configuration, the tokens are secrets: neither is printed.
        f.debug_struct("Tokens")
            .field("count", &self.by_digest.len())
            .finish()
    }
}

impl Tokens {
    /// No token: every HTTP request is refused.
    pub fn new() -> Tokens {
        Tokens::default()
    }

    /// Accepts `token` as the credential of the person (and session) of `config`.
    pub fn token(mut self, token: &str, config: SessionConfig) -> Tokens {
        self.by_digest.insert(digest(token), config);
        self
    }

    /// The session configuration of the person `token` belongs to, if it is one of ours.
    pub fn find(&self, token: &str) -> Option<&SessionConfig> {
        if token.is_empty() {
            return None;
        }
        self.by_digest.get(&digest(token))
    }

    /// How many tokens are accepted.
    pub fn len(&self) -> usize {
        self.by_digest.len()
    }

    /// True when no token is accepted.
    pub fn is_empty(&self) -> bool {
        self.by_digest.is_empty()
    }
}

/// Why a token file could not be read (the token itself is never quoted).
#[derive(Debug, thiserror::Error)]
#[error("the token file, line {line}: {what}")]
pub struct TokenFileError {
    /// The line (from 1).
    pub line: usize,
    /// What is wrong with it.
    pub what: &'static str,
}

impl Tokens {
    /// Reads a token file: one `TOKEN PERSON ROLE[,ROLE…]` per line (`#` starts a comment),
    /// each person's session made by `session` (the server's endpoint, purpose and agent).
    ///
    /// # Errors
    ///
    /// A line without the three fields, a token shorter than 16 characters, or a token
    /// listed twice; also a file without any token.
    pub fn parse(
        text: &str,
        session: impl Fn(guardrail_core::Principal) -> SessionConfig,
    ) -> Result<Tokens, TokenFileError> {
        let mut tokens = Tokens::new();
        for (i, line) in text.lines().enumerate() {
            let line_no = i + 1;
            let line = line.split('#').next().unwrap_or_default().trim();
            if line.is_empty() {
                continue;
            }
            let fields: Vec<&str> = line.split_whitespace().collect();
            let &[token, person, roles] = fields.as_slice() else {
                return Err(TokenFileError {
                    line: line_no,
                    what: "expected `TOKEN PERSON ROLE[,ROLE…]`",
                });
            };
            if token.len() < 16 {
                return Err(TokenFileError {
                    line: line_no,
                    what: "the token is shorter than 16 characters",
                });
            }
            if tokens.find(token).is_some() {
                return Err(TokenFileError {
                    line: line_no,
                    what: "the token is listed twice",
                });
            }
            let mut principal = guardrail_core::Principal::new(person);
            for role in roles.split(',').filter(|r| !r.is_empty()) {
                principal = principal.role(role);
            }
            tokens = tokens.token(token, session(principal));
        }
        if tokens.is_empty() {
            return Err(TokenFileError {
                line: 0,
                what: "no token is listed",
            });
        }
        Ok(tokens)
    }
}

fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// The person an HTTP request was authenticated as: put into the request's extensions by
/// the bearer check, read back by the [`GuardedServer`] for every MCP request.
#[derive(Debug, Clone)]
struct Authenticated(SessionConfig);

/// The bearer check in front of `/mcp`: a request without a known token is answered `401`
/// and never reaches the MCP service.
async fn bearer(State(tokens): State<Arc<Tokens>>, mut request: Request, next: Next) -> Response {
    let config = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .and_then(|t| tokens.find(t.trim()))
        .cloned();
    match config {
        Some(config) => {
            request.extensions_mut().insert(Authenticated(config));
            next.run(request).await
        }
        None => (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"))],
            "a known bearer token is required",
        )
            .into_response(),
    }
}

/// The person of one MCP request over HTTP: what the bearer check recorded in the HTTP
/// request rmcp hands on (`http::request::Parts`); nothing else counts.
fn authenticated(extensions: &rmcp::model::Extensions) -> Option<SessionConfig> {
    extensions
        .get::<axum::http::request::Parts>()?
        .extensions
        .get::<Authenticated>()
        .map(|a| a.0.clone())
}

/// The tool server.
///
/// Over stdio the person is the configured one (the process's user); over HTTP each request
/// is authenticated by its bearer token ([`Tokens`]), and a session stays with the person
/// who opened it. The agent is the configured one. Nothing a client sends as MCP changes
/// either.
#[derive(Debug, Clone)]
pub struct Server {
    guardrail: Guardrail,
    catalogue: Catalogue,
    config: SessionConfig,
    tokens: Arc<Tokens>,
    connections: Arc<Mutex<Vec<GuardedServer>>>,
}

impl Server {
    /// A server of `catalogue`: `config` is the person of a stdio session; HTTP accepts no
    /// one until [`Server::tokens`] names who.
    pub fn new(guardrail: Guardrail, catalogue: Catalogue, config: SessionConfig) -> Server {
        Server {
            guardrail,
            catalogue,
            config,
            tokens: Arc::default(),
            connections: Arc::default(),
        }
    }

    /// The bearer tokens HTTP requests are authenticated by.
    pub fn tokens(mut self, tokens: Tokens) -> Server {
        self.tokens = Arc::new(tokens);
        self
    }

    /// The guardrail the tools run under.
    pub fn guardrail(&self) -> &Guardrail {
        &self.guardrail
    }

    fn remember(&self, server: GuardedServer) -> GuardedServer {
        if let Ok(mut list) = self.connections.lock() {
            list.push(server.clone());
        }
        server
    }

    /// A handler for one new stdio connection: the configured person.
    pub fn connection(&self) -> GuardedServer {
        self.remember(GuardedServer::new(
            self.guardrail.clone(),
            self.catalogue.clone(),
            self.config.clone(),
        ))
    }

    /// A handler for one new HTTP MCP session: every request authenticated on its own.
    fn http_connection(&self) -> GuardedServer {
        self.remember(GuardedServer::authenticated(
            self.guardrail.clone(),
            self.catalogue.clone(),
            authenticated,
        ))
    }

    /// The ids of the sessions opened so far, in order.
    pub fn session_ids(&self) -> Vec<String> {
        self.connections
            .lock()
            .map(|list| {
                list.iter()
                    .filter_map(|s| s.session_id().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Serves one session over this process's stdin and stdout until the client leaves.
    pub async fn serve_stdio(&self) -> io::Result<()> {
        let running = self
            .connection()
            .serve(rmcp::transport::stdio())
            .await
            .map_err(|e| io::Error::other(format!("the MCP handshake failed: {e}")))?;
        running
            .waiting()
            .await
            .map_err(|e| io::Error::other(format!("the MCP session failed: {e}")))?;
        Ok(())
    }

    /// Serves streamable HTTP at `/mcp` on `listener` (which must be bound to loopback)
    /// until the returned handle is shut down or dropped. Every request needs one of the
    /// [`Tokens`] as `Authorization: Bearer …` (otherwise `401`); without any token
    /// configured the server does not start.
    pub fn serve_http(&self, listener: TcpListener) -> io::Result<HttpServer> {
        let addr = listener.local_addr()?;
        if !addr.ip().is_loopback() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("refusing to serve on `{addr}`: the example serves on loopback only"),
            ));
        }
        if self.tokens.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "no bearer token is configured: the HTTP server would refuse everyone",
            ));
        }
        let config = StreamableHttpServerConfig::default();
        let sessions = config.cancellation_token.clone();
        let me = self.clone();
        let service = StreamableHttpService::new(
            move || Ok(me.http_connection()),
            Arc::new(LocalSessionManager::default()),
            config,
        );
        let router = axum::Router::new()
            .nest_service("/mcp", service)
            .layer(middleware::from_fn_with_state(self.tokens.clone(), bearer));
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let shutdown = async move {
                let _ = stopped.await;
                sessions.cancel();
            };
            axum::serve(listener, router)
                .with_graceful_shutdown(shutdown)
                .await
        });
        Ok(HttpServer {
            addr,
            stop: Some(stop),
            task: Some(task),
        })
    }
}

/// A running streamable HTTP server.
#[derive(Debug)]
pub struct HttpServer {
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<io::Result<()>>>,
}

impl HttpServer {
    /// The MCP endpoint's URL.
    pub fn url(&self) -> String {
        format!("http://{}/mcp", self.addr)
    }

    /// Stops accepting, ends the sessions, and waits for the server to finish.
    pub async fn shutdown(mut self) -> io::Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        match self.task.take() {
            Some(task) => task
                .await
                .map_err(|e| io::Error::other(format!("the HTTP server task failed: {e}")))?,
            None => Ok(()),
        }
    }
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}
