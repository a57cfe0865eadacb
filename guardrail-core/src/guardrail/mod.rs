//! The guardrail: a policy, audit sinks, a key, alert sinks and an approval store.
//!
//! Owns `Guardrail` and its builder, `Context`, the fan-out of records to the sinks, hot
//! reload (and file watching), and the approver's methods (`approve`, `reject`).
//! May use: model, policy, approval (the store and the workflow), alert, telemetry, clock.
//! Never the runtime: the runtime calls in, not the other way round.

mod approvals;
mod context;
mod reload;

pub use context::Context;
#[cfg(feature = "watch")]
#[cfg_attr(docsrs, doc(cfg(feature = "watch")))]
pub use reload::PolicyWatcher;
pub use reload::{ReloadError, ReloadReport};

use std::fmt;
use std::sync::Arc;

use arc_swap::ArcSwap;
use guardrail_audit::{AuditError, AuditKey, AuditSink, Receipt, Record};

use crate::alert::detect::Detectors;
use crate::alert::{Alert, AlertDispatcher, AlertKind, AlertSink};
use crate::approval::ApprovalStore;
use crate::approval::MemoryApprovalStore;
use crate::clock::{Clock, SystemClock};
use crate::error::GuardError;
use crate::model::Principal;
use crate::policy::Policy;
use crate::relation::{AsyncConsents, AsyncRelationships, Consents, Lookups, Relationships};

/// Why a guardrail could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// No policy was given.
    #[error("no policy: call `.policy(..)` with a loaded policy")]
    MissingPolicy,
    /// No audit sink was given (no audit, no access).
    #[error("no audit sink: call `.audit(..)` with at least one sink")]
    MissingAudit,
    /// No key for tokenizing patient identifiers in events.
    #[error("no audit key: call `.audit_key(..)` so patient ids are tokenized in the trail")]
    MissingAuditKey,
    /// The policy names a required sink that is not configured.
    #[error("the policy requires audit sink `{0}`, which is not configured")]
    UnknownRequiredSink(String),
    /// Two sinks share a name.
    #[error("two audit sinks are named `{0}`; give each a distinct name")]
    DuplicateSink(String),
}

/// The configured enforcement point. Cheap to clone, `Send + Sync`.
///
/// ```
/// use guardrail_core::prelude::*;
/// let policy = Policy::from_toml_str(r#"
///     version = "1"
///     [[rule]]
///     id = "providers-read"
///     effect = "allow"
///     actions = ["*"]
///     roles = ["provider"]
/// "#).unwrap();
/// let guardrail = Guardrail::builder()
///     .policy(policy)
///     .audit(MemorySink::new())
///     .audit_key(AuditKey::from_bytes(b"0123456789abcdef0123").unwrap())
///     .build()
///     .unwrap();
/// let ctx = guardrail.context(Principal::new("dr-grey").role("provider"));
/// # let _ = ctx;
/// ```
#[derive(Clone)]
pub struct Guardrail {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) policy: ArcSwap<Policy>,
    pub(crate) sinks: Vec<Arc<dyn AuditSink>>,
    pub(crate) key: AuditKey,
    pub(crate) alerts: AlertDispatcher,
    pub(crate) approvals: Arc<dyn ApprovalStore>,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) detectors: Detectors,
    /// The host's relationship and consent providers (every context gets a fresh memo).
    pub(crate) lookups: Lookups,
}

impl fmt::Debug for Guardrail {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let policy = self.policy();
        f.debug_struct("Guardrail")
            .field("policy_version", &policy.version())
            .field(
                "sinks",
                &self
                    .inner
                    .sinks
                    .iter()
                    .map(|s| s.name())
                    .collect::<Vec<_>>(),
            )
            .field("alerts", &self.inner.alerts)
            .finish_non_exhaustive()
    }
}

/// Builds a [`Guardrail`]; see [`Guardrail::builder`].
#[derive(Default)]
pub struct GuardrailBuilder {
    policy: Option<Policy>,
    sinks: Vec<Arc<dyn AuditSink>>,
    key: Option<AuditKey>,
    alert_sinks: Vec<Arc<dyn AlertSink>>,
    alert_queue: Option<usize>,
    approvals: Option<Arc<dyn ApprovalStore>>,
    clock: Option<Arc<dyn Clock>>,
    lookups: Lookups,
}

impl fmt::Debug for GuardrailBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GuardrailBuilder")
            .field(
                "policy",
                &self.policy.as_ref().map(|p| p.version().to_owned()),
            )
            .field("sinks", &self.sinks.len())
            .finish_non_exhaustive()
    }
}

impl GuardrailBuilder {
    /// The policy to enforce.
    pub fn policy(mut self, policy: Policy) -> Self {
        self.policy = Some(policy);
        self
    }

    /// Adds an audit sink. Every sink records every event; the policy's `[audit] required`
    /// names the sinks whose failure denies the call (all of them when absent).
    pub fn audit(mut self, sink: impl AuditSink + 'static) -> Self {
        self.sinks.push(Arc::new(sink));
        self
    }

    /// Adds an audit sink already behind an `Arc`.
    pub fn audit_arc(mut self, sink: Arc<dyn AuditSink>) -> Self {
        self.sinks.push(sink);
        self
    }

    /// The key that tokenizes patient ids and PHI in events (and masked `tokenize` fields).
    pub fn audit_key(mut self, key: AuditKey) -> Self {
        self.key = Some(key);
        self
    }

    /// Adds an alert sink (pager, webhook…).
    pub fn alerts(mut self, sink: impl AlertSink + 'static) -> Self {
        self.alert_sinks.push(Arc::new(sink));
        self
    }

    /// Capacity of the alert queue (default 1024); a full queue drops and counts.
    pub fn alert_queue(mut self, capacity: usize) -> Self {
        self.alert_queue = Some(capacity);
        self
    }

    /// Where approval requests live (default: in memory, this process only).
    pub fn approvals(mut self, store: impl ApprovalStore + 'static) -> Self {
        self.approvals = Some(Arc::new(store));
        self
    }

    /// The clock (default: system time). Tests use [`crate::ManualClock`].
    pub fn clock(mut self, clock: impl Clock + 'static) -> Self {
        self.clock = Some(Arc::new(clock));
        self
    }

    /// Who has which relation to which patient, and the patients' flags (VIP,
    /// restrictions): answers `relations = [..]`, `vip`, `restricted` and a personal
    /// representative's `self_only`. Asked once per request per subject.
    pub fn relationships(mut self, provider: impl Relationships + 'static) -> Self {
        self.lookups = self.lookups.relationships(Arc::new(provider));
        self
    }

    /// Which consents are on file: answers `consent = [..]`.
    pub fn consents(mut self, provider: impl Consents + 'static) -> Self {
        self.lookups = self.lookups.consents(Arc::new(provider));
        self
    }

    /// [`relationships`](Self::relationships) for async hosts: answers are loaded with
    /// [`Context::preload`] before the guarded call.
    pub fn async_relationships(mut self, provider: impl AsyncRelationships + 'static) -> Self {
        self.lookups = self.lookups.async_relationships(Arc::new(provider));
        self
    }

    /// [`consents`](Self::consents) for async hosts (see [`Context::preload`]).
    pub fn async_consents(mut self, provider: impl AsyncConsents + 'static) -> Self {
        self.lookups = self.lookups.async_consents(Arc::new(provider));
        self
    }

    /// Checks the configuration and starts the alert worker.
    pub fn build(self) -> Result<Guardrail, BuildError> {
        let policy = self.policy.ok_or(BuildError::MissingPolicy)?;
        if self.sinks.is_empty() {
            return Err(BuildError::MissingAudit);
        }
        let key = self.key.ok_or(BuildError::MissingAuditKey)?;
        let mut names: Vec<&str> = self.sinks.iter().map(|s| s.name()).collect();
        names.sort_unstable();
        if let Some(w) = names.windows(2).find(|w| w[0] == w[1]) {
            return Err(BuildError::DuplicateSink(w[0].to_owned()));
        }
        check_required_sinks(&policy, &self.sinks)?;
        let clock = self.clock.unwrap_or_else(|| Arc::new(SystemClock));
        let guardrail = Guardrail {
            inner: Arc::new(Inner {
                detectors: Detectors::default(),
                policy: ArcSwap::from_pointee(policy),
                sinks: self.sinks,
                key,
                alerts: AlertDispatcher::start(self.alert_sinks, self.alert_queue.unwrap_or(1024)),
                approvals: self
                    .approvals
                    .unwrap_or_else(|| Arc::new(MemoryApprovalStore::new())),
                clock,
                lookups: self.lookups,
            }),
        };
        // The first guardrail of the process records refusals of the tripwire until the host
        // names another (`install_tripwire`).
        crate::guard::install(&guardrail, false);
        Ok(guardrail)
    }
}

pub(crate) fn check_required_sinks(
    policy: &Policy,
    sinks: &[Arc<dyn AuditSink>],
) -> Result<(), BuildError> {
    for required in policy.required_sinks() {
        if !sinks.iter().any(|s| s.name() == &**required) {
            return Err(BuildError::UnknownRequiredSink(required.to_string()));
        }
    }
    Ok(())
}

/// The required sink an append could not reach, and its error.
#[derive(Debug)]
pub(crate) struct AppendFailure {
    pub(crate) sink: String,
    pub(crate) error: Arc<AuditError>,
}

impl AppendFailure {
    /// The error of a call whose `event` (`decision`, `outcome`…) could not be recorded.
    pub(crate) fn into_guard_error(self, action: &'static str, event: &str) -> GuardError {
        GuardError::AuditUnavailable {
            action,
            sink: self.sink,
            detail: event.to_owned(),
            source: self.error,
        }
    }
}

/// Events queued by [`Guardrail::append_with`] that are not durable yet.
#[derive(Debug, Default)]
pub(crate) struct Deferred(Vec<Waiting>);

#[derive(Debug)]
struct Waiting {
    sink: String,
    required: bool,
    pending: guardrail_audit::Pending,
}

impl Deferred {
    /// Waits (without holding a thread) until every queued event is durable. A sink that
    /// fails first is alerted and counted like a failed append; the first one the policy
    /// requires is the error.
    pub(crate) async fn settle(self, g: &Guardrail) -> Result<(), AppendFailure> {
        let mut failure = None;
        for w in self.0 {
            if let Err(e) = w.pending.await {
                if let Some(f) = g.sink_failed(&w.sink, w.required, e) {
                    failure.get_or_insert(f);
                }
            }
        }
        failure.map_or(Ok(()), Err)
    }
}

impl Guardrail {
    /// Starts building a guardrail.
    pub fn builder() -> GuardrailBuilder {
        GuardrailBuilder::default()
    }

    /// A context for `principal`; refine it with `.endpoint(..)`, `.purpose(..)`.
    pub fn context(&self, principal: Principal) -> Context {
        Context::new(self.clone(), principal)
    }

    /// The policy in force now.
    pub fn policy(&self) -> Arc<Policy> {
        self.inner.policy.load_full()
    }

    /// The key events are tokenized under.
    pub fn audit_key(&self) -> &AuditKey {
        &self.inner.key
    }

    /// The clock in use.
    pub fn clock(&self) -> &dyn Clock {
        &*self.inner.clock
    }

    /// The approval store in use.
    pub fn approval_store(&self) -> &dyn ApprovalStore {
        &*self.inner.approvals
    }

    /// The audit sinks, in the order given.
    pub fn sinks(&self) -> &[Arc<dyn AuditSink>] {
        &self.inner.sinks
    }

    /// Keyed token of a subject (patient) id, as it appears in events.
    pub fn subject_token(&self, subject: &dyn fmt::Display) -> String {
        self.inner
            .key
            .token_display(AuditKey::SUBJECT_DOMAIN, subject)
    }

    /// Appends `record` to every sink. Fails if a sink the policy requires failed; other
    /// failures raise an alert and are counted. Returns the receipt of the first sink.
    #[inline]
    pub(crate) fn append(&self, policy: &Policy, record: Record) -> Result<Receipt, AppendFailure> {
        self.append_with(policy, record, None)
    }

    /// [`Guardrail::append`]; with `defer`, each sink only chains and queues the record
    /// ([`AuditSink::submit`]) and what is left to wait for goes into `defer`, to be awaited
    /// with [`Deferred::settle`] before anything relies on the event.
    pub(crate) fn append_with(
        &self,
        policy: &Policy,
        record: Record,
        mut defer: Option<&mut Deferred>,
    ) -> Result<Receipt, AppendFailure> {
        let Some((last, others)) = self.inner.sinks.split_last() else {
            return Err(AppendFailure {
                sink: "*".into(),
                error: Arc::new(AuditError::Closed("no sink recorded the event".into())),
            });
        };
        let mut first: Option<Receipt> = None;
        let mut failure: Option<AppendFailure> = None;
        for sink in others {
            let defer = defer.as_deref_mut();
            self.append_one(
                policy,
                &**sink,
                record.clone(),
                defer,
                &mut first,
                &mut failure,
            );
        }
        // The last sink takes the record itself: one sink, no copy.
        self.append_one(policy, &**last, record, defer, &mut first, &mut failure);
        match (failure, first) {
            (Some(f), _) => Err(f),
            (None, Some(r)) => Ok(r),
            (None, None) => Err(AppendFailure {
                sink: "*".into(),
                error: Arc::new(AuditError::Closed("no sink recorded the event".into())),
            }),
        }
    }

    /// Appends to one sink, keeping the first receipt and the first required failure.
    #[inline]
    fn append_one(
        &self,
        policy: &Policy,
        sink: &dyn AuditSink,
        record: Record,
        defer: Option<&mut Deferred>,
        first: &mut Option<Receipt>,
        failure: &mut Option<AppendFailure>,
    ) {
        let started = crate::telemetry::Stopwatch::start();
        let result = match defer {
            None => sink.append(record),
            Some(defer) => sink.submit(record).map(|submitted| {
                if let Some(pending) = submitted.pending {
                    defer.0.push(Waiting {
                        sink: sink.name().to_owned(),
                        required: policy.sink_required(sink.name()),
                        pending,
                    });
                }
                submitted.receipt
            }),
        };
        crate::telemetry::audit_append(started.elapsed());
        match result {
            Ok(receipt) => {
                first.get_or_insert(receipt);
            }
            Err(e) => {
                let required = policy.sink_required(sink.name());
                if let Some(f) = self.sink_failed(sink.name(), required, e) {
                    failure.get_or_insert(f);
                }
            }
        }
    }

    /// Alerts and counts a sink's failure; the failure to report when the policy requires
    /// the sink.
    fn sink_failed(&self, sink: &str, required: bool, e: AuditError) -> Option<AppendFailure> {
        crate::telemetry::audit_failure(sink);
        self.raise(Alert::new(
            AlertKind::AuditSinkFailure,
            self.inner.clock.now(),
            format!("audit sink `{sink}` failed: {e}"),
        ));
        required.then(|| AppendFailure {
            sink: sink.to_owned(),
            error: Arc::new(e),
        })
    }

    /// Makes this guardrail the one whose trail, alerts and metrics record PHI reached
    /// outside a guarded call (`require_guarded`, the SQLite authorizer). Without a call, the
    /// first guardrail built in the process is that one.
    pub fn install_tripwire(&self) {
        crate::guard::install(self, true);
    }

    /// The sliding-window detectors (denial bursts, export spikes).
    pub(crate) fn detectors(&self) -> &Detectors {
        &self.inner.detectors
    }

    /// Queues an alert (never blocks).
    pub(crate) fn raise(&self, alert: Alert) {
        crate::telemetry::alert(alert.kind.as_str());
        self.inner.alerts.raise(alert);
    }

    /// Waits until queued alerts were delivered (tests, shutdown).
    pub fn flush_alerts(&self) {
        self.inner.alerts.flush();
    }

    /// Alerts dropped because the queue was full.
    pub fn alerts_dropped(&self) -> u64 {
        self.inner.alerts.dropped()
    }
}
