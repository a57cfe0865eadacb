//! Start-up and serving: open the trail, the database (migrations, seed) and the guardrail,
//! then serve the router on a listener until stopped.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::{Next, from_fn, from_fn_with_state};
use axum::response::Response;
use axum::routing::get;
use guardrail_core::audit::sql::AuditTable;
use guardrail_core::audit::{AuditError, FileSink};
use guardrail_core::{Guardrail, MemoryAlertSink, Policy};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::config::{DatabaseConfig, ServerConfig, TokenError, TokenTable};
use crate::db::{Db, MigrateError};
use crate::directory::{ClinicDirectory, LocalDirectory};
use crate::routes::{AppState, authenticate, clinic_router};
use crate::{error_body, seed, trail};

/// Why the server could not start or stop cleanly.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServerError {
    /// The data directory or the token file could not be written.
    #[error("cannot prepare `{path}`: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The token file was refused.
    #[error(transparent)]
    Tokens(#[from] TokenError),
    /// The audit trail could not be opened, or the audit table created.
    #[error("audit: {0}")]
    Audit(#[from] AuditError),
    /// The database could not be reached.
    #[error("database `{database}`: {source}")]
    Database {
        /// `sqlite` or `postgres`.
        database: &'static str,
        /// Why.
        #[source]
        source: sqlx::Error,
    },
    /// The PostgreSQL schema name is not a plain identifier.
    #[error(
        "postgres schema `{0}` is not a plain identifier (ASCII letters, digits and `_`, at most 50)"
    )]
    BadSchema(String),
    /// The migrations failed.
    #[error(transparent)]
    Migrate(#[from] MigrateError),
    /// The policy or the guardrail could not be built.
    #[error("guardrail: {0}")]
    Guardrail(String),
    /// The listener could not be bound, or serving failed.
    #[error("listener `{addr}`: {source}")]
    Listen {
        /// The address.
        addr: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// The process's Prometheus recorder (a process has one; every server in it shares it).
fn prometheus() -> Option<PrometheusHandle> {
    static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let handle = PrometheusBuilder::new().install_recorder().ok()?;
            guardrail_core::telemetry::describe();
            Some(handle)
        })
        .clone()
}

/// The opened service: trail, database, guardrail and tokens, ready to serve.
#[derive(Clone, Debug)]
pub struct Clinic {
    config: ServerConfig,
    guardrail: Guardrail,
    file_sink: Arc<FileSink>,
    alerts: MemoryAlertSink,
    pub(crate) state: AppState,
    /// The privacy officer's approvals page (guardrail-axum), built once so its CSRF key
    /// lives as long as the server.
    approvals: Router,
    /// Replica mode's policy subscription and checkpointer (see [`crate::replica`]).
    replica: Option<Arc<crate::replica::Replica>>,
}

impl Clinic {
    /// Opens everything `config` names, creating on first run what is missing: the data
    /// directory, the token file (with [`crate::config::DEMO_TOKENS`]), the trail, the
    /// SQLite database, the schema (migrations), the audit table and the demo patients.
    pub async fn open(config: ServerConfig) -> Result<Clinic, ServerError> {
        let io = |path: &Path| {
            let path = path.to_owned();
            move |source| ServerError::Io { path, source }
        };
        std::fs::create_dir_all(&config.data_dir).map_err(io(&config.data_dir))?;
        let tokens_path = config.tokens_path();
        if config.tokens.is_none() && !tokens_path.exists() {
            std::fs::write(&tokens_path, crate::config::DEMO_TOKENS).map_err(io(&tokens_path))?;
        }
        let tokens = TokenTable::load(&tokens_path)?;
        let file_sink = trail::open(&config.data_dir.join("audit"))?;
        let db = connect(&config).await?;
        let db_error = |source| ServerError::Database {
            database: db.kind(),
            source,
        };
        crate::db::migrate(&db).await?;
        match &db {
            Db::Sqlite(pool) => {
                guardrail_core::audit::sql::sqlx_sqlite::ensure_schema(pool, &AuditTable::default())
                    .await?
            }
            Db::Postgres(pool, _) => {
                guardrail_core::audit::sql::postgres::ensure_schema(pool, &AuditTable::default())
                    .await?
            }
        }
        seed::seed_if_empty(&db, seed::PATIENTS)
            .await
            .map_err(db_error)?;
        seed::seed_relations_if_empty(&db, seed::CARE_TEAM, seed::CONSENTS)
            .await
            .map_err(db_error)?;
        let policy = Policy::from_toml_str(crate::POLICY)
            .map_err(|e| ServerError::Guardrail(e.to_string()))?;
        let alerts = MemoryAlertSink::new();
        let shared = crate::replica::open(&config).await?;
        let db = match &shared {
            Some(opened) => db.with_tx_chains(opened.tx_chains()),
            None => db,
        };
        let builder = Guardrail::builder()
            .policy(policy)
            .audit(file_sink.clone())
            .audit_key(trail::demo_key())
            .alerts(alerts.clone());
        // On SQLite the directory reads in the calling thread (`directory` module docs).
        let builder = match &db {
            Db::Sqlite(_) => {
                let local = Arc::new(LocalDirectory::new(&config.data_dir.join(SQLITE_FILE)));
                builder.relationships(local.clone()).consents(local)
            }
            Db::Postgres(..) => builder
                .async_relationships(ClinicDirectory::new(db.clone()))
                .async_consents(ClinicDirectory::new(db.clone())),
        };
        let guardrail = crate::replica::configure(builder, shared.as_ref())
            .build()
            .map_err(|e| ServerError::Guardrail(e.to_string()))?;
        let pg = if let Db::Postgres(pool, _) = &db {
            Some(pool)
        } else {
            None
        };
        let replica = crate::replica::follow(shared, &guardrail, pg).await?;
        // The demo serves plain HTTP on loopback, so the page's cookie cannot be `Secure`.
        let approvals = guardrail_axum::ApprovalsPage::new(guardrail.clone())
            .map_err(|e| ServerError::Guardrail(e.to_string()))?
            .secure_cookie(false)
            .router();
        Ok(Clinic {
            config,
            guardrail,
            replica,
            approvals,
            file_sink,
            alerts,
            state: AppState {
                db,
                tokens: Arc::new(tokens),
            },
        })
    }

    /// The guardrail every request's context comes from (the approver's methods too).
    pub fn guardrail(&self) -> &Guardrail {
        &self.guardrail
    }

    /// In replica mode, the replica (its name, its policy store version).
    pub fn replica(&self) -> Option<&crate::replica::Replica> {
        self.replica.as_deref()
    }

    /// The clinic's database.
    pub fn db(&self) -> &Db {
        &self.state.db
    }

    /// The durable trail's directory.
    pub fn audit_dir(&self) -> PathBuf {
        self.config.data_dir.join("audit")
    }

    /// The durable trail.
    pub fn file_sink(&self) -> &Arc<FileSink> {
        &self.file_sink
    }

    /// The alerts raised so far (break-glass, denial bursts, export spikes), kept in memory
    /// for the tour; a deployment would add `guardrail_axum::WebhookAlertSink`.
    pub fn alerts(&self) -> &MemoryAlertSink {
        &self.alerts
    }

    /// The whole application: the clinic's routes and the approvals page (`/approvals`)
    /// behind bearer authentication, `/metrics` and `/health`, with the request-id, guardrail and deadline layers.
    pub fn router(&self) -> Router {
        let app: Router = clinic_router().with_state(self.state.clone());
        // The privacy officer's approvals page, mounted before the bearer authentication so
        // it covers the page: the approver is the authenticated principal.
        let app = app.nest("/approvals", self.approvals.clone());
        let mut app = app
            .layer(from_fn_with_state(self.state.clone(), authenticate))
            .route("/health", get(|| async { "ok" }));
        if let Some(handle) = prometheus() {
            app = app.merge(guardrail_axum::metrics_router(handle));
        }
        app.layer(guardrail_axum::guardrail(self.guardrail.clone()))
            .layer(from_fn(guardrail_axum::request_id))
            .layer(from_fn_with_state(self.config.request_timeout, deadline))
    }

    /// Binds `addr` (`127.0.0.1:0` picks a free port) and serves [`Clinic::router`].
    pub async fn serve(self, addr: SocketAddr) -> Result<RunningServer, ServerError> {
        let router = self.router();
        self.serve_router(addr, router).await
    }

    /// Binds `addr` and serves `router` (the clinic's, perhaps with layers of the caller's).
    pub async fn serve_router(
        self,
        addr: SocketAddr,
        router: Router,
    ) -> Result<RunningServer, ServerError> {
        let listen = |source| ServerError::Listen {
            addr: addr.to_string(),
            source,
        };
        let listener = TcpListener::bind(addr).await.map_err(listen)?;
        let addr = listener.local_addr().map_err(listen)?;
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            axum::serve(listener, router)
                .with_graceful_shutdown(async move {
                    let _ = stopped.await;
                })
                .await
        });
        Ok(RunningServer {
            addr,
            clinic: self,
            stop,
            task,
        })
    }
}

/// A clinic being served.
#[derive(Debug)]
pub struct RunningServer {
    addr: SocketAddr,
    clinic: Clinic,
    stop: oneshot::Sender<()>,
    task: JoinHandle<std::io::Result<()>>,
}

impl RunningServer {
    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://ADDR`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The served clinic.
    pub fn clinic(&self) -> &Clinic {
        &self.clinic
    }

    /// Stops accepting, lets requests in flight finish, closes the pool and closes the trail
    /// (a final signed checkpoint). The clinic's guardrail refuses calls afterwards: its
    /// required sink is closed.
    pub async fn stop(self) -> Result<(), ServerError> {
        let _ = self.stop.send(());
        let served = self.task.await.map_err(|e| ServerError::Listen {
            addr: self.addr.to_string(),
            source: std::io::Error::other(e),
        })?;
        served.map_err(|source| ServerError::Listen {
            addr: self.addr.to_string(),
            source,
        })?;
        if let Some(replica) = &self.clinic.replica {
            replica.stop().await;
        }
        self.clinic.db().close().await;
        // Writes, fsyncs and checkpoints what was appended; the trail then verifies whole.
        self.clinic.file_sink.close()?;
        Ok(())
    }

    /// Serves until the process receives Ctrl-C (SIGINT) or, on Unix, SIGTERM (what a
    /// supervisor or `kill` sends), then stops as [`RunningServer::stop`]: requests in
    /// flight finish and the trail is closed with a final checkpoint.
    pub async fn run_until_ctrl_c(self) -> Result<(), ServerError> {
        shutdown_signal().await;
        self.stop().await
    }
}

/// Resolves on SIGINT, or SIGTERM on Unix. If a handler cannot be installed, waits on the
/// other one alone.
async fn shutdown_signal() {
    let interrupt = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut term) => {
                term.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = interrupt => {}
        () = terminate => {}
    }
}

/// Middleware: a request still running after the configured time is cancelled (its
/// handler's future is dropped, which records `cancelled` for a guarded call in flight and
/// rolls back its transaction) and answered 503 `timeout`.
async fn deadline(State(limit): State<Duration>, req: Request, next: Next) -> Response {
    match tokio::time::timeout(limit, next.run(req)).await {
        Ok(response) => response,
        Err(_) => error_body(StatusCode::SERVICE_UNAVAILABLE, "timeout"),
    }
}

fn is_identifier(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 50
        && name
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// The SQLite database's file in the data directory.
const SQLITE_FILE: &str = "clinic.sqlite";

async fn connect(config: &ServerConfig) -> Result<Db, ServerError> {
    match &config.database {
        DatabaseConfig::Sqlite => {
            let options = SqliteConnectOptions::new()
                .filename(config.data_dir.join(SQLITE_FILE))
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                .busy_timeout(Duration::from_secs(10));
            let pool = SqlitePoolOptions::new()
                .max_connections(config.max_connections)
                .connect_with(options)
                .await
                .map_err(|source| ServerError::Database {
                    database: "sqlite",
                    source,
                })?;
            Ok(Db::Sqlite(pool))
        }
        DatabaseConfig::Postgres { url, schema } => {
            let failed = |source| ServerError::Database {
                database: "postgres",
                source,
            };
            let mut options = PgConnectOptions::from_str(url).map_err(failed)?;
            if let Some(schema) = schema {
                if !is_identifier(schema) {
                    return Err(ServerError::BadSchema(schema.clone()));
                }
                let admin = PgPoolOptions::new()
                    .max_connections(1)
                    .connect_with(options.clone())
                    .await
                    .map_err(failed)?;
                sqlx::query(&format!("CREATE SCHEMA IF NOT EXISTS {schema}"))
                    .execute(&admin)
                    .await
                    .map_err(failed)?;
                admin.close().await;
                options = options.options([("search_path", schema.as_str())]);
            }
            let pool = PgPoolOptions::new()
                .max_connections(config.max_connections)
                .connect_with(options)
                .await
                .map_err(failed)?;
            Ok(Db::Postgres(pool, None))
        }
    }
}
