//! A replica's side: listen, re-check, apply through the guardrail's reload, report, alert.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use sqlx::postgres::PgListener;
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender, unbounded_channel};

use super::store::{Beat, Head, PolicyStore, PolicyStoreOptions};
use super::{PolicyStoreError, check_name};
use crate::alert::{Alert, AlertKind};
use crate::guardrail::{Guardrail, ReloadError};
use crate::policy::{Policy, PolicyError};

/// Options of [`PolicyReplica::start`].
#[derive(Debug, Clone)]
pub struct PolicyReplicaOptions {
    replica_id: String,
    store: PolicyStoreOptions,
    recheck: Duration,
    live_for: Duration,
    drift_after: Duration,
}

impl PolicyReplicaOptions {
    /// Options for the replica named `replica_id` (unique among the service's replicas, e.g.
    /// the host name and port). Defaults: the default store, a re-check every 5 s, replicas
    /// live for 15 s after their last heartbeat, drift alerted after 60 s.
    pub fn new(replica_id: impl Into<String>) -> PolicyReplicaOptions {
        PolicyReplicaOptions {
            replica_id: replica_id.into(),
            store: PolicyStoreOptions::default(),
            recheck: Duration::from_secs(5),
            live_for: Duration::from_secs(15),
            drift_after: Duration::from_secs(60),
        }
    }

    /// The store (its prefix, pool size and per-operation timeout).
    pub fn store(mut self, store: PolicyStoreOptions) -> PolicyReplicaOptions {
        self.store = store;
        self
    }

    /// How often the newest version is read and the heartbeat written even without a
    /// notification: the longest a lost notification delays a version.
    pub fn recheck(mut self, every: Duration) -> PolicyReplicaOptions {
        self.recheck = every.max(Duration::from_millis(10));
        self
    }

    /// How long after its last heartbeat a replica still counts as live (for drift and for
    /// choosing who judges it). Keep it a few re-check periods.
    pub fn live_for(mut self, window: Duration) -> PolicyReplicaOptions {
        self.live_for = window;
        self
    }

    /// How long live replicas may enforce different versions before it is alerted.
    pub fn drift_after(mut self, after: Duration) -> PolicyReplicaOptions {
        self.drift_after = after;
        self
    }
}

/// What a replica enforces and whether it reaches its store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplicaStatus {
    /// The store version in force (`None`: the guardrail still enforces a policy that is
    /// not the store's newest, e.g. its bootstrap policy, or nothing was published).
    pub version: Option<u64>,
    /// SHA-256 of the policy in force.
    pub sha256: String,
    /// The newest version this replica refused, and why.
    pub rejected: Option<(u64, String)>,
    /// False during an outage of the store.
    pub reachable: bool,
}

enum Wake {
    Check,
    Stop,
}

/// Keeps a guardrail on the newest version of a central policy store (see the
/// [module docs](super)). Dropping it stops the replica's thread, which removes its
/// heartbeat row; [`PolicyReplica::stop`] also waits for that. A process that dies leaves
/// its row to age out of [`PolicyReplicaOptions::live_for`].
///
/// ```no_run
/// # fn demo(guardrail: &guardrail_core::Guardrail) -> Result<(), Box<dyn std::error::Error>> {
/// use std::time::Duration;
/// use guardrail_core::policy_store::{PolicyReplica, PolicyReplicaOptions};
/// let replica = PolicyReplica::start(
///     guardrail,
///     "postgres://guardrail@db/clinic",
///     PolicyReplicaOptions::new("clinic-a").recheck(Duration::from_secs(5)),
/// )?;
/// println!("enforcing store version {:?}", replica.status().version);
/// # Ok(()) }
/// ```
pub struct PolicyReplica {
    id: Arc<str>,
    status: Arc<Mutex<ReplicaStatus>>,
    wake: UnboundedSender<Wake>,
    thread: Option<JoinHandle<()>>,
}

impl fmt::Debug for PolicyReplica {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PolicyReplica")
            .field("id", &self.id)
            .field("status", &self.status())
            .finish_non_exhaustive()
    }
}

impl PolicyReplica {
    /// Starts keeping `guardrail` on the newest version of the store at `url`. Returns after
    /// the first check: the newest version is in force if it could be applied, and if the
    /// store could not be reached the guardrail keeps its policy (and an alert is raised).
    /// Fails only on bad options or when the thread cannot start.
    pub fn start(
        guardrail: &Guardrail,
        url: &str,
        options: PolicyReplicaOptions,
    ) -> Result<PolicyReplica, PolicyStoreError> {
        check_name("replica id", &options.replica_id)?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| PolicyStoreError::Start(format!("cannot start a runtime: {e}")))?;
        let store = {
            let _entered = runtime.enter();
            PolicyStore::connect_lazy(url, &options.store)?
        };
        let policy = guardrail.policy();
        let status = Arc::new(Mutex::new(ReplicaStatus {
            version: None,
            sha256: policy.sha256().to_owned(),
            rejected: None,
            reachable: true,
        }));
        let (wake, wakes) = unbounded_channel();
        let (ready_tx, ready_rx) = std::sync::mpsc::sync_channel::<()>(1);
        let id: Arc<str> = Arc::from(options.replica_id.as_str());
        let mut worker = Worker {
            guardrail: guardrail.clone(),
            store,
            url: url.to_owned(),
            options,
            status: status.clone(),
            state: State {
                version: None,
                rejected: None,
                reachable: true,
                schema_ready: false,
                drift_since: None,
                drift_alerted: false,
            },
        };
        let wake_listener = wake.clone();
        let thread = std::thread::Builder::new()
            .name("guardrail-policy-replica".into())
            .spawn(move || worker.run(runtime, wake_listener, wakes, ready_tx))
            .map_err(|e| PolicyStoreError::Start(format!("cannot start the thread: {e}")))?;
        // The first check is bounded by the store's timeout (a few operations of it).
        let _ = ready_rx.recv();
        Ok(PolicyReplica {
            id,
            status,
            wake,
            thread: Some(thread),
        })
    }

    /// The replica's id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// What the replica enforces now.
    pub fn status(&self) -> ReplicaStatus {
        self.status
            .lock()
            .map(|s| s.clone())
            .unwrap_or_else(|p| p.into_inner().clone())
    }

    /// Checks the store now, without waiting for a notification or the re-check period.
    pub fn check_now(&self) {
        let _ = self.wake.send(Wake::Check);
    }

    /// Stops the replica, removes its heartbeat row (best effort) and waits for its thread.
    /// The guardrail keeps the policy in force.
    pub fn stop(mut self) {
        let _ = self.wake.send(Wake::Stop);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for PolicyReplica {
    fn drop(&mut self) {
        if self.thread.is_some() {
            let _ = self.wake.send(Wake::Stop);
        }
    }
}

struct State {
    version: Option<u64>,
    rejected: Option<(u64, String)>,
    reachable: bool,
    schema_ready: bool,
    drift_since: Option<Instant>,
    drift_alerted: bool,
}

struct Worker {
    guardrail: Guardrail,
    store: PolicyStore,
    url: String,
    options: PolicyReplicaOptions,
    status: Arc<Mutex<ReplicaStatus>>,
    state: State,
}

impl Worker {
    fn run(
        &mut self,
        runtime: tokio::runtime::Runtime,
        wake: UnboundedSender<Wake>,
        mut wakes: UnboundedReceiver<Wake>,
        ready: std::sync::mpsc::SyncSender<()>,
    ) {
        runtime.spawn(listen(
            self.url.clone(),
            self.store.channel(),
            wake,
            self.options.recheck.min(Duration::from_secs(1)),
            self.options.store.get_timeout(),
        ));
        self.check(&runtime, true);
        let _ = ready.send(());
        let mut next_tick = Instant::now() + self.options.recheck;
        loop {
            let woke = runtime.block_on(async {
                tokio::select! {
                    w = wakes.recv() => match w {
                        Some(Wake::Check) => {
                            // Several notifications while busy are one check.
                            while let Ok(w) = wakes.try_recv() {
                                if matches!(w, Wake::Stop) {
                                    return None;
                                }
                            }
                            Some(false)
                        }
                        Some(Wake::Stop) | None => None,
                    },
                    () = tokio::time::sleep_until(next_tick.into()) => Some(true),
                }
            });
            match woke {
                None => break,
                Some(periodic) => {
                    if periodic {
                        next_tick = Instant::now() + self.options.recheck;
                    }
                    self.check(&runtime, periodic);
                }
            }
        }
        // Stopping cleanly: a replica that is gone no longer counts as live.
        let _ = runtime.block_on(self.store.forget(&self.options.replica_id));
        runtime.block_on(self.store.close());
    }

    /// One check: read the newest version, apply it if needed, write the heartbeat, and on
    /// periodic checks judge drift. Runs the reload outside the runtime (sinks may block).
    fn check(&mut self, runtime: &tokio::runtime::Runtime, periodic: bool) {
        if !self.state.schema_ready {
            match runtime.block_on(self.store.ensure_schema()) {
                Ok(()) => self.state.schema_ready = true,
                Err(e) => return self.unreachable(&e),
            }
        }
        let known = self.guardrail.policy().sha256().to_owned();
        match runtime.block_on(self.store.head(&known)) {
            Ok(Some(head)) => {
                self.reachable();
                self.apply(head);
            }
            Ok(None) => self.reachable(),
            Err(e) => return self.unreachable(&e),
        }
        let policy = self.guardrail.policy();
        let beat = Beat {
            replica_id: &self.options.replica_id,
            version: self.state.version,
            sha256: policy.sha256(),
            policy_version: policy.version(),
            rejected: self
                .state
                .rejected
                .as_ref()
                .map(|(v, why)| (*v, why.as_str())),
        };
        if let Err(e) = runtime.block_on(self.store.beat(&beat)) {
            return self.unreachable(&e);
        }
        self.publish_status();
        if periodic {
            self.judge_drift(runtime);
        }
    }

    fn apply(&mut self, head: Head) {
        if self.state.version == Some(head.version)
            || self.state.rejected.as_ref().map(|r| r.0) == Some(head.version)
        {
            return;
        }
        if self.guardrail.policy().sha256() == head.sha256 {
            // Already in force (a rollback to the text in force, or the bootstrap policy).
            self.state.version = Some(head.version);
            self.state.rejected = None;
            return;
        }
        let store = self.store.prefix().to_owned();
        let parsed = match head.text {
            Some(text) => Policy::from_toml_str(&text).and_then(|p| {
                if p.sha256() == head.sha256 {
                    Ok(p)
                } else {
                    Err(PolicyError {
                        path: None,
                        line: None,
                        column: None,
                        field: None,
                        message: format!(
                            "the stored text of version {} does not match its sha256 `{}`",
                            head.version, head.sha256
                        ),
                    })
                }
            }),
            None => Err(PolicyError {
                path: None,
                line: None,
                column: None,
                field: None,
                message: format!("the store returned no text for version {}", head.version),
            }),
        };
        // The reload records and alerts a refusal itself.
        match self
            .guardrail
            .reload_from_store(parsed, &store, head.version)
        {
            Ok(_) => {
                self.state.version = Some(head.version);
                self.state.rejected = None;
            }
            // The trail could not record the reload: try again at the next check.
            Err(ReloadError::AuditUnavailable { .. }) => {}
            Err(e) => self.state.rejected = Some((head.version, e.to_string())),
        }
    }

    fn reachable(&mut self) {
        if !self.state.reachable {
            self.state.reachable = true;
            self.guardrail.raise(Alert::new(
                AlertKind::PolicyStoreRecovered,
                self.guardrail.clock().now(),
                format!(
                    "replica `{}` reaches policy store `{}` again",
                    self.options.replica_id,
                    self.store.prefix()
                ),
            ));
        }
        crate::telemetry::policy_store_reachable(true);
    }

    fn unreachable(&mut self, error: &PolicyStoreError) {
        if self.state.reachable {
            self.state.reachable = false;
            let policy = self.guardrail.policy();
            let version = self
                .state
                .version
                .map_or_else(|| "no store version".to_owned(), |v| format!("version {v}"));
            self.guardrail.raise(Alert::new(
                AlertKind::PolicyStoreUnreachable,
                self.guardrail.clock().now(),
                format!(
                    "replica `{}` cannot reach its policy store ({error}); it keeps enforcing \
                     {version} (`{}`, sha256 {})",
                    self.options.replica_id,
                    policy.version(),
                    policy.sha256()
                ),
            ));
        }
        crate::telemetry::policy_store_reachable(false);
        self.publish_status();
    }

    fn publish_status(&self) {
        crate::telemetry::policy_store_version(self.state.version.unwrap_or(0));
        let status = ReplicaStatus {
            version: self.state.version,
            sha256: self.guardrail.policy().sha256().to_owned(),
            rejected: self.state.rejected.clone(),
            reachable: self.state.reachable,
        };
        match self.status.lock() {
            Ok(mut s) => *s = status,
            Err(p) => *p.into_inner() = status,
        }
    }

    /// The live replica with the smallest id alerts when live replicas disagree for longer
    /// than `drift_after`; once per episode.
    fn judge_drift(&mut self, runtime: &tokio::runtime::Runtime) {
        let live = match runtime.block_on(self.store.replicas(Some(self.options.live_for))) {
            Ok(live) => live,
            Err(e) => return self.unreachable(&e),
        };
        let judge = live.iter().map(|r| r.replica_id.as_str()).min();
        let mut by_version: BTreeMap<Option<u64>, Vec<&str>> = BTreeMap::new();
        for r in &live {
            by_version.entry(r.version).or_default().push(&r.replica_id);
        }
        if judge != Some(self.options.replica_id.as_str()) || by_version.len() <= 1 {
            self.state.drift_since = None;
            self.state.drift_alerted = false;
            return;
        }
        let since = *self.state.drift_since.get_or_insert_with(Instant::now);
        if self.state.drift_alerted || since.elapsed() < self.options.drift_after {
            return;
        }
        self.state.drift_alerted = true;
        let groups: Vec<String> = by_version
            .iter()
            .map(|(v, ids)| {
                let v = v.map_or_else(|| "no store version".to_owned(), |v| format!("version {v}"));
                format!("{v}: {}", ids.join(", "))
            })
            .collect();
        self.guardrail.raise(
            Alert::new(
                AlertKind::PolicyDrift,
                self.guardrail.clock().now(),
                format!(
                    "replicas of policy store `{}` have enforced different versions for {} s \
                     (allowed {} s): {}",
                    self.store.prefix(),
                    since.elapsed().as_secs(),
                    self.options.drift_after.as_secs(),
                    groups.join("; ")
                ),
            )
            .count(Some(by_version.len() as u64)),
        );
    }
}

/// Listens on `channel`, waking the worker for every notification and after every
/// (re)connection (a version may have been published while it was not listening).
async fn listen(
    url: String,
    channel: String,
    wake: UnboundedSender<Wake>,
    retry: Duration,
    timeout: Duration,
) {
    loop {
        let connected = tokio::time::timeout(timeout, async {
            let mut listener = PgListener::connect(&url).await?;
            listener.listen(&channel).await?;
            Ok::<_, sqlx::Error>(listener)
        })
        .await;
        if let Ok(Ok(mut listener)) = connected {
            if wake.send(Wake::Check).is_err() {
                return;
            }
            // `Ok(None)`: the connection was lost; reconnect (after `retry`) and re-check.
            while let Ok(Some(_)) = listener.try_recv().await {
                if wake.send(Wake::Check).is_err() {
                    return;
                }
            }
        }
        if wake.is_closed() {
            return;
        }
        tokio::time::sleep(retry).await;
    }
}
