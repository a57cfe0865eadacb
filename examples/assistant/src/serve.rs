//! Serving the tools over MCP: stdio (one session) and streamable HTTP on loopback (one
//! session per MCP session the client opens).

use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use guardrail_core::Guardrail;
use guardrail_mcp::{Catalogue, GuardedServer, SessionConfig};
use rmcp::ServiceExt as _;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use tokio::net::TcpListener;
use tokio::sync::oneshot;

/// The tool server: every connection gets a [`GuardedServer`] for the configured person.
///
/// The person is fixed by the server's configuration (the example's stand-in for
/// authentication); the agent is the configured one. Nothing a client sends changes either.
#[derive(Debug, Clone)]
pub struct Server {
    guardrail: Guardrail,
    catalogue: Catalogue,
    config: SessionConfig,
    connections: Arc<Mutex<Vec<GuardedServer>>>,
}

impl Server {
    /// A server of `catalogue` for the person of `config`.
    pub fn new(guardrail: Guardrail, catalogue: Catalogue, config: SessionConfig) -> Server {
        Server {
            guardrail,
            catalogue,
            config,
            connections: Arc::default(),
        }
    }

    /// The guardrail the tools run under.
    pub fn guardrail(&self) -> &Guardrail {
        &self.guardrail
    }

    /// A handler for one new connection (MCP session).
    pub fn connection(&self) -> GuardedServer {
        let server = GuardedServer::new(
            self.guardrail.clone(),
            self.catalogue.clone(),
            self.config.clone(),
        );
        if let Ok(mut list) = self.connections.lock() {
            list.push(server.clone());
        }
        server
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
    /// until the returned handle is shut down or dropped.
    pub fn serve_http(&self, listener: TcpListener) -> io::Result<HttpServer> {
        let addr = listener.local_addr()?;
        if !addr.ip().is_loopback() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("refusing to serve on `{addr}`: the example serves on loopback only"),
            ));
        }
        let config = StreamableHttpServerConfig::default();
        let sessions = config.cancellation_token.clone();
        let me = self.clone();
        let service = StreamableHttpService::new(
            move || Ok(me.connection()),
            Arc::new(LocalSessionManager::default()),
            config,
        );
        let router = axum::Router::new().nest_service("/mcp", service);
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
