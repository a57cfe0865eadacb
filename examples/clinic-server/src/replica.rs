//! Replica mode (`--replica NAME` with `DATABASE_URL`): several clinic servers on one
//! PostgreSQL database share one policy, one approval store and one verifiable trail.
//!
//! * **Policy**: the central policy store (`guardrail_policy_*` tables). The first replica
//!   to start on an empty store publishes the clinic's policy as version 1 (published by
//!   `clinic-server:NAME`); every replica starts on the store's newest version and follows
//!   it with a [`PolicyReplica`] (`LISTEN`/`NOTIFY` and a re-check every
//!   [`POLICY_RECHECK`]), so `guardrail policy publish FILE --db URL` reaches all of them.
//! * **Approvals**: [`PgApprovalStore`] on `guardrail_approvals`: a request made on one
//!   replica is decided on another and spent once on any.
//! * **Trail**: besides the local file trail, every event the guardrail records (decisions
//!   included) is appended by a [`PgSink`] to the replica's own chain, named `NAME`, of the
//!   database's `guardrail_audit` table, so replicas never wait on each other's head row.
//!   Each replica runs a checkpointer that signs RFC 6962 tree heads over every chain every
//!   [`TREE_EVERY`] with the demo's checkpoint key; `guardrail audit verify postgres://…
//!   --checkpoint-key KEY` verifies every replica's chain and every tree head. The `ok`
//!   outcome of a change is appended in the transaction of the change, to a chain the
//!   transaction holds alone while it runs (`NAME.tx0`, `NAME.tx1`, …: [`TxChains`]), never
//!   to the table's default chain, whose one head row would make every replica's every
//!   change wait on it. The sink is named `postgres`: a policy with `[audit] required
//!   = ["file", "postgres"]` refuses a call the shared trail cannot record.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use guardrail_core::audit::merkle::ChainId;
use guardrail_core::audit::sql::AuditTable;
use guardrail_core::audit::sql::postgres::{PgSink, tree_checkpoint};
use guardrail_core::policy_store::{
    PolicyReplica, PolicyReplicaOptions, PolicyStore, PolicyStoreOptions,
};
use guardrail_core::{
    Guardrail, GuardrailBuilder, PgApprovalStore, PgApprovalStoreOptions, Policy,
};
use tokio::task::JoinHandle;

use crate::config::{DatabaseConfig, ServerConfig};
use crate::db::TxChains;
use crate::server::ServerError;

/// How often a replica re-checks the policy store when no notification came.
pub const POLICY_RECHECK: Duration = Duration::from_secs(5);
/// How often a replica's checkpointer signs a tree head (when there are new events).
pub const TREE_EVERY: Duration = Duration::from_secs(2);

fn replica_error(what: &str, e: impl std::fmt::Display) -> ServerError {
    ServerError::Guardrail(format!("replica: {what}: {e}"))
}

/// `url` with its search path set to `schema`, for the store clients that take a URL.
fn url_in_schema(url: &str, schema: Option<&str>) -> String {
    match schema {
        None => url.to_owned(),
        Some(schema) => {
            let sep = if url.contains('?') { '&' } else { '?' };
            format!("{url}{sep}options[search_path]={schema}")
        }
    }
}

/// What a replica shares with the others, opened before its guardrail is built.
pub(crate) struct Opened {
    name: String,
    url: String,
    policy: Policy,
    approvals: PgApprovalStore,
    sink: Arc<PgSink>,
    tx_chains: Arc<TxChains>,
}

impl Opened {
    /// The chains this replica's transactions append their outcomes to.
    pub(crate) fn tx_chains(&self) -> Arc<TxChains> {
        self.tx_chains.clone()
    }
}

/// Opens the shared parts when `config` names a replica (`None` otherwise): the policy
/// store's newest version (publishing the clinic's policy first if the store is empty),
/// the approval store and the sink on the replica's chain. Runs after the database is
/// open, so a bad schema name was refused already.
pub(crate) async fn open(config: &ServerConfig) -> Result<Option<Opened>, ServerError> {
    let Some(name) = config.replica.clone() else {
        return Ok(None);
    };
    let DatabaseConfig::Postgres { url, schema } = &config.database else {
        return Err(ServerError::Guardrail(
            "replica mode needs PostgreSQL: set `DATABASE_URL`".into(),
        ));
    };
    let chain = ChainId::new(&name).map_err(|e| replica_error("name", e))?;
    let tx_chains = Arc::new(TxChains::new(&name).map_err(|e| replica_error("name", e))?);
    let url = url_in_schema(url, schema.as_deref());
    let store = PolicyStore::connect(&url, PolicyStoreOptions::new())
        .await
        .map_err(|e| replica_error("policy store", e))?;
    let newest = async {
        store.ensure_schema().await?;
        if store.latest().await?.is_none() {
            store
                .publish(crate::POLICY, &format!("clinic-server:{name}"))
                .await?;
        }
        store.latest().await
    }
    .await;
    store.close().await;
    let newest = newest
        .map_err(|e| replica_error("policy store", e))?
        .ok_or_else(|| replica_error("policy store", "no version after publishing"))?;
    let policy = Policy::from_toml_str(&newest.text)
        .map_err(|e| replica_error(&format!("policy store version {}", newest.version), e))?;
    let blocking_url = url.clone();
    let (approvals, sink) = tokio::task::spawn_blocking(move || {
        let approvals = PgApprovalStore::connect(&blocking_url, PgApprovalStoreOptions::new())
            .and_then(|s| s.ensure_schema().map(|()| s))
            .map_err(|e| replica_error("approval store", e))?;
        let sink = PgSink::connect_chain(&blocking_url, AuditTable::default(), chain)
            .map_err(|e| replica_error("audit table", e))?
            .named("postgres");
        Ok::<_, ServerError>((approvals, Arc::new(sink)))
    })
    .await
    .map_err(|e| replica_error("start", e))??;
    Ok(Some(Opened {
        name,
        url,
        policy,
        approvals,
        sink,
        tx_chains,
    }))
}

/// The guardrail of a replica: the store's policy, the shared approvals and the sink on
/// its chain; `builder` unchanged without a replica.
pub(crate) fn configure(builder: GuardrailBuilder, opened: Option<&Opened>) -> GuardrailBuilder {
    match opened {
        None => builder,
        Some(o) => builder
            .policy(o.policy.clone())
            .audit_arc(o.sink.clone())
            .approvals(o.approvals.clone()),
    }
}

/// Starts following the policy store and signing tree heads for `guardrail`.
pub(crate) async fn follow(
    opened: Option<Opened>,
    guardrail: &Guardrail,
    pool: Option<&sqlx::PgPool>,
) -> Result<Option<Arc<Replica>>, ServerError> {
    let (Some(opened), Some(pool)) = (opened, pool) else {
        return Ok(None);
    };
    let g = guardrail.clone();
    let (url, name) = (opened.url.clone(), opened.name.clone());
    let policy = tokio::task::spawn_blocking(move || {
        PolicyReplica::start(
            &g,
            &url,
            PolicyReplicaOptions::new(name.as_str()).recheck(POLICY_RECHECK),
        )
    })
    .await
    .map_err(|e| replica_error("start", e))?
    .map_err(|e| replica_error("policy replica", e))?;
    let pool = pool.clone();
    let checkpointer = tokio::spawn(async move {
        let signer = crate::trail::signer();
        let table = AuditTable::default();
        loop {
            if let Err(e) = tree_checkpoint(&pool, &table, &signer).await {
                tracing::error!(error = %e, "tree head not signed");
            }
            tokio::time::sleep(TREE_EVERY).await;
        }
    });
    Ok(Some(Arc::new(Replica {
        name: opened.name,
        policy: Mutex::new(Some(policy)),
        checkpointer,
    })))
}

/// A running replica: its policy subscription and its tree-head checkpointer.
#[derive(Debug)]
pub struct Replica {
    name: String,
    policy: Mutex<Option<PolicyReplica>>,
    checkpointer: JoinHandle<()>,
}

impl Replica {
    /// The replica's name (and its chain's id).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The policy store version in force (`None` once stopped).
    pub fn policy_version(&self) -> Option<u64> {
        let guard = self.policy.lock().ok()?;
        guard.as_ref().and_then(|p| p.status().version)
    }

    /// Stops the checkpointer and the policy subscription (removing its heartbeat).
    pub(crate) async fn stop(&self) {
        self.checkpointer.abort();
        let policy = self.policy.lock().ok().and_then(|mut p| p.take());
        if let Some(policy) = policy {
            let _ = tokio::task::spawn_blocking(move || policy.stop()).await;
        }
    }
}
