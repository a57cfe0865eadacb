//! Alerts: break-glass, approval requests, denial bursts, export spikes, audit failures,
//! refused policy reloads, an unreachable policy store, policy drift between replicas.
//!
//! Owns `Alert`, the sinks and the bounded dispatcher, and the sliding-window detectors
//! (`detect`), which return the alert they raise instead of raising it.
//! May use: model, policy (thresholds, effects), registry, telemetry. Never the guardrail.
//!
//! A guarded call only ever pushes onto a bounded queue; a worker thread delivers to the
//! host's [`AlertSink`]s. A full queue drops the alert and counts it, it never waits.

pub(crate) mod detect;

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{SyncSender, TrySendError, sync_channel};
use std::sync::{Arc, Mutex};

use guardrail_audit::Timestamp;

/// What an alert is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum AlertKind {
    /// Emergency access was used.
    BreakGlass,
    /// A call is waiting for approval.
    ApprovalRequested,
    /// One principal was denied many times in a short window.
    DenialBurst,
    /// One principal exported many records of one action in a window.
    ExportSpike,
    /// An audit sink failed.
    AuditSinkFailure,
    /// A policy reload was refused (bad file, missing sink, unrecordable); the old policy
    /// stays in force.
    PolicyReloadRefused,
    /// PHI was reached outside a guarded call (or beyond its declared categories).
    UnguardedAccess,
    /// A replica cannot reach its central policy store; it keeps enforcing its last good
    /// policy. Raised once per outage.
    PolicyStoreUnreachable,
    /// A replica reaches its central policy store again after an outage.
    PolicyStoreRecovered,
    /// Live replicas have enforced different policy store versions for longer than allowed.
    PolicyDrift,
    /// A VIP patient's record was the subject of a guarded call (allowed or not).
    VipAccess,
}

impl AlertKind {
    /// `break_glass`, `approval_requested`, …
    pub fn as_str(self) -> &'static str {
        match self {
            AlertKind::BreakGlass => "break_glass",
            AlertKind::ApprovalRequested => "approval_requested",
            AlertKind::DenialBurst => "denial_burst",
            AlertKind::ExportSpike => "export_spike",
            AlertKind::AuditSinkFailure => "audit_sink_failure",
            AlertKind::PolicyReloadRefused => "policy_reload_refused",
            AlertKind::UnguardedAccess => "unguarded_access",
            AlertKind::PolicyStoreUnreachable => "policy_store_unreachable",
            AlertKind::PolicyStoreRecovered => "policy_store_recovered",
            AlertKind::PolicyDrift => "policy_drift",
            AlertKind::VipAccess => "vip_access",
        }
    }
}

/// One alert. Carries ids and counts, never PHI.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Alert {
    /// What it is about.
    pub kind: AlertKind,
    /// When it was raised.
    pub time: Timestamp,
    /// The action involved.
    pub action: Option<Arc<str>>,
    /// The principal involved.
    pub principal: Option<Arc<str>>,
    /// The request involved.
    pub request_id: Option<Arc<str>>,
    /// A count (denials in the window, records exported in the window).
    pub count: Option<u64>,
    /// A sentence a person can act on.
    pub message: String,
}

impl Alert {
    /// An alert of `kind` raised at `time` with a `message` a person can act on; the
    /// builder methods add what it is about.
    ///
    /// ```
    /// use guardrail_core::{Alert, AlertKind, audit::Timestamp};
    /// let alert = Alert::new(AlertKind::BreakGlass, Timestamp(0), "review the emergency")
    ///     .principal("dr-hale")
    ///     .count(Some(1));
    /// assert_eq!(alert.principal.as_deref(), Some("dr-hale"));
    /// assert_eq!(alert.action, None);
    /// ```
    pub fn new(kind: AlertKind, time: Timestamp, message: impl Into<String>) -> Alert {
        Alert {
            kind,
            time,
            action: None,
            principal: None,
            request_id: None,
            count: None,
            message: message.into(),
        }
    }

    /// The action involved.
    pub fn action(mut self, action: impl Into<Arc<str>>) -> Alert {
        self.action = Some(action.into());
        self
    }

    /// The principal involved.
    pub fn principal(mut self, principal: impl Into<Arc<str>>) -> Alert {
        self.principal = Some(principal.into());
        self
    }

    /// The request involved.
    pub fn request(mut self, request_id: impl Into<Arc<str>>) -> Alert {
        self.request_id = Some(request_id.into());
        self
    }

    /// A count (denials or records within the window).
    pub fn count(mut self, count: Option<u64>) -> Alert {
        self.count = count;
        self
    }
}

/// Where alerts go: a pager, a webhook, a chat channel. Called from the alert worker thread,
/// never from the guarded call.
pub trait AlertSink: Send + Sync + fmt::Debug {
    /// Delivers one alert.
    fn send(&self, alert: &Alert);
}

/// Collects alerts in memory (tests, examples). Clones share the list.
#[derive(Debug, Clone, Default)]
pub struct MemoryAlertSink {
    alerts: Arc<Mutex<Vec<Alert>>>,
}

impl MemoryAlertSink {
    /// An empty collector.
    pub fn new() -> MemoryAlertSink {
        MemoryAlertSink::default()
    }

    /// The alerts delivered so far.
    pub fn alerts(&self) -> Vec<Alert> {
        self.alerts.lock().map(|a| a.clone()).unwrap_or_default()
    }
}

impl AlertSink for MemoryAlertSink {
    fn send(&self, alert: &Alert) {
        if let Ok(mut a) = self.alerts.lock() {
            a.push(alert.clone());
        }
    }
}

enum Msg {
    Alert(Box<Alert>),
    Flush(SyncSender<()>),
}

/// The bounded queue in front of the alert sinks.
pub(crate) struct AlertDispatcher {
    tx: Option<SyncSender<Msg>>,
    dropped: AtomicU64,
}

impl fmt::Debug for AlertDispatcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AlertDispatcher")
            .field("enabled", &self.tx.is_some())
            .field("dropped", &self.dropped.load(Ordering::Relaxed))
            .finish()
    }
}

impl AlertDispatcher {
    /// Starts a worker for `sinks` with a queue of `capacity`; no sinks, no worker.
    pub(crate) fn start(sinks: Vec<Arc<dyn AlertSink>>, capacity: usize) -> AlertDispatcher {
        if sinks.is_empty() {
            return AlertDispatcher {
                tx: None,
                dropped: AtomicU64::new(0),
            };
        }
        let (tx, rx) = sync_channel::<Msg>(capacity.max(1));
        let spawned = std::thread::Builder::new()
            .name("guardrail-alerts".into())
            .spawn(move || {
                for msg in rx {
                    match msg {
                        Msg::Alert(alert) => {
                            for sink in &sinks {
                                sink.send(&alert);
                            }
                        }
                        Msg::Flush(done) => {
                            let _ = done.send(());
                        }
                    }
                }
            });
        AlertDispatcher {
            tx: spawned.ok().map(|_| tx),
            dropped: AtomicU64::new(0),
        }
    }

    /// Queues an alert without waiting; a full queue drops and counts it.
    pub(crate) fn raise(&self, alert: Alert) {
        let Some(tx) = &self.tx else { return };
        match tx.try_send(Msg::Alert(Box::new(alert))) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                self.dropped.fetch_add(1, Ordering::Relaxed);
                crate::telemetry::alert_dropped();
            }
        }
    }

    /// Alerts dropped because the queue was full.
    pub(crate) fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Waits until every alert queued before this call was delivered.
    pub(crate) fn flush(&self) {
        let Some(tx) = &self.tx else { return };
        let (done_tx, done_rx) = sync_channel(1);
        if tx.send(Msg::Flush(done_tx)).is_ok() {
            let _ = done_rx.recv();
        }
    }
}
