//! Metrics through the [`metrics`] facade: the host installs any recorder (Prometheus,
//! StatsD…); without one, recording is a no-op.
//!
//! | name | type | labels | what |
//! |---|---|---|---|
//! | `guardrail_decisions_total` | counter | `action`, `result` | decisions; `result` is `allow`, `deny`, `approval_required`, `break_glass` or `audit_unavailable` |
//! | `guardrail_decision_seconds` | histogram | | time from `begin` to the recorded decision (audit append included) |
//! | `guardrail_audit_append_seconds` | histogram | | one append to one audit sink |
//! | `guardrail_audit_failures_total` | counter | `sink` | failed appends |
//! | `guardrail_approvals_pending` | gauge | | pending approval requests, set whenever one is opened or decided |
//! | `guardrail_alerts_total` | counter | `kind` | alerts raised (`break_glass`, `approval_requested`, `denial_burst`, `export_spike`, `audit_sink_failure`) |
//! | `guardrail_alerts_dropped_total` | counter | | alerts dropped because the alert queue was full |
//! | `guardrail_policy_reloads_total` | counter | `result` | reloads, `ok` or `refused` |
//! | `guardrail_unguarded_total` | counter | `category` | PHI reached outside a guarded call (or beyond its `phi = [..]`), refused |
//! | `guardrail_policy_store_version` | gauge | | the central store's version this replica enforces (`policy_store`, feature `postgres`; 0 before the first) |
//! | `guardrail_policy_store_reachable` | gauge | | 1 while the replica reaches its policy store, 0 during an outage |
//!
//! Label values are static strings (action names come from the macro), so recording
//! allocates nothing on the hot path.
//!
//! # Prometheus
//!
//! With `metrics-exporter-prometheus` (default features off, so no HTTP server is pulled in),
//! install a recorder once at startup and serve its rendering on your own `/metrics` route:
//!
//! ```text
//! let handle = metrics_exporter_prometheus::PrometheusBuilder::new().install_recorder()?;
//! guardrail_core::telemetry::describe();   // HELP lines and units
//! // in the /metrics handler:
//! let body: String = handle.render();      // Prometheus text format 0.0.4
//! ```

use std::time::Duration;

/// Counter of decisions by `action` and `result`.
pub const DECISIONS_TOTAL: &str = "guardrail_decisions_total";
/// Histogram of decision latency, in seconds.
pub const DECISION_SECONDS: &str = "guardrail_decision_seconds";
/// Histogram of one audit append, in seconds.
pub const AUDIT_APPEND_SECONDS: &str = "guardrail_audit_append_seconds";
/// Counter of failed audit appends by `sink`.
pub const AUDIT_FAILURES_TOTAL: &str = "guardrail_audit_failures_total";
/// Gauge of pending approval requests.
pub const APPROVALS_PENDING: &str = "guardrail_approvals_pending";
/// Counter of alerts raised by `kind`.
pub const ALERTS_TOTAL: &str = "guardrail_alerts_total";
/// Counter of alerts dropped on a full queue.
pub const ALERTS_DROPPED_TOTAL: &str = "guardrail_alerts_dropped_total";
/// Counter of refused unguarded PHI accesses by `category`.
pub const UNGUARDED_TOTAL: &str = "guardrail_unguarded_total";
/// Counter of policy reloads by `result` (`ok`, `refused`).
pub const POLICY_RELOADS_TOTAL: &str = "guardrail_policy_reloads_total";

/// Gauge of the policy store version a replica enforces.
pub const POLICY_STORE_VERSION: &str = "guardrail_policy_store_version";
/// Gauge: 1 while the replica reaches its policy store, 0 during an outage.
pub const POLICY_STORE_REACHABLE: &str = "guardrail_policy_store_reachable";

/// Registers descriptions and units of every guardrail metric with the installed recorder
/// (the `# HELP` lines of a Prometheus scrape). Call once after installing the recorder.
pub fn describe() {
    use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
    describe_counter!(
        DECISIONS_TOTAL,
        "guarded-call decisions by action and result"
    );
    describe_histogram!(
        DECISION_SECONDS,
        Unit::Seconds,
        "time to decide and record a guarded call"
    );
    describe_histogram!(
        AUDIT_APPEND_SECONDS,
        Unit::Seconds,
        "time of one append to one audit sink"
    );
    describe_counter!(AUDIT_FAILURES_TOTAL, "failed audit appends by sink");
    describe_gauge!(
        APPROVALS_PENDING,
        "approval requests waiting for an approver"
    );
    describe_counter!(ALERTS_TOTAL, "alerts raised by kind");
    describe_counter!(
        ALERTS_DROPPED_TOTAL,
        "alerts dropped because the queue was full"
    );
    describe_counter!(POLICY_RELOADS_TOTAL, "policy reloads by result");
    describe_gauge!(
        POLICY_STORE_VERSION,
        "the central policy store version this replica enforces"
    );
    describe_gauge!(
        POLICY_STORE_REACHABLE,
        "1 while this replica reaches its policy store, 0 during an outage"
    );
    describe_counter!(
        UNGUARDED_TOTAL,
        "PHI reached outside a guarded call (or beyond its declared categories), refused"
    );
}

/// One decision: `result` is `allow`, `deny`, `approval_required`, `break_glass` or
/// `audit_unavailable`.
pub(crate) fn decision(action: &'static str, result: &'static str, latency: Option<Duration>) {
    metrics::counter!(DECISIONS_TOTAL, "action" => action, "result" => result).increment(1);
    if let Some(latency) = latency {
        metrics::histogram!(DECISION_SECONDS).record(latency.as_secs_f64());
    }
}

/// One append to a sink.
pub(crate) fn audit_append(latency: Option<Duration>) {
    if let Some(latency) = latency {
        metrics::histogram!(AUDIT_APPEND_SECONDS).record(latency.as_secs_f64());
    }
}

static SAMPLE_EVERY: std::sync::atomic::AtomicU32 =
    std::sync::atomic::AtomicU32::new(DEFAULT_LATENCY_SAMPLE_EVERY);

/// By default one decision (and one audit append) in this many per thread is timed for the
/// latency histograms; the counters count every one.
pub const DEFAULT_LATENCY_SAMPLE_EVERY: u32 = 8;

/// Times one in `every` decisions and audit appends per thread for the latency histograms
/// (`1`: time every one). Reading the clock costs more than a policy decision on some
/// virtual machines and a guarded call would read it six times, so by default a systematic
/// sample (the first operation on each thread, then every `every`-th) keeps the histograms'
/// distribution at an eighth of the cost. Counters are never sampled.
pub fn set_latency_sample_every(every: u32) {
    SAMPLE_EVERY.store(every.max(1), std::sync::atomic::Ordering::Relaxed);
}

/// A latency measurement that is taken only for sampled operations.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Stopwatch(Option<std::time::Instant>);

impl Stopwatch {
    /// Starts timing if this operation is in the sample.
    pub(crate) fn start() -> Stopwatch {
        thread_local! {
            static COUNT: std::cell::Cell<u32> = const { std::cell::Cell::new(0) };
        }
        let every = SAMPLE_EVERY
            .load(std::sync::atomic::Ordering::Relaxed)
            .max(1);
        let sampled = COUNT.with(|c| {
            let n = c.get();
            c.set(n.wrapping_add(1));
            n % every == 0
        });
        Stopwatch(sampled.then(std::time::Instant::now))
    }

    /// Time since `start`, for sampled operations.
    pub(crate) fn elapsed(self) -> Option<Duration> {
        self.0.map(|t| t.elapsed())
    }
}

/// An append that failed (rare: the label may allocate).
pub(crate) fn audit_failure(sink: &str) {
    metrics::counter!(AUDIT_FAILURES_TOTAL, "sink" => sink.to_owned()).increment(1);
}

/// An alert raised.
pub(crate) fn alert(kind: &'static str) {
    metrics::counter!(ALERTS_TOTAL, "kind" => kind).increment(1);
}

/// An alert dropped on a full queue.
pub(crate) fn alert_dropped() {
    metrics::counter!(ALERTS_DROPPED_TOTAL).increment(1);
}

/// Pending approval requests.
pub(crate) fn approvals_pending(n: u64) {
    metrics::gauge!(APPROVALS_PENDING).set(n as f64);
}

/// An unguarded PHI access refused (`category` is a category name or `none`).
pub(crate) fn unguarded(category: &'static str) {
    metrics::counter!(UNGUARDED_TOTAL, "category" => category).increment(1);
}

/// A policy reload, accepted (`ok`) or refused.
pub(crate) fn policy_reload(result: &'static str) {
    metrics::counter!(POLICY_RELOADS_TOTAL, "result" => result).increment(1);
}

/// The policy store version this replica enforces (0: none yet).
#[cfg(feature = "postgres")]
pub(crate) fn policy_store_version(version: u64) {
    metrics::gauge!(POLICY_STORE_VERSION).set(version as f64);
}

/// Whether this replica reaches its policy store.
#[cfg(feature = "postgres")]
pub(crate) fn policy_store_reachable(reachable: bool) {
    metrics::gauge!(POLICY_STORE_REACHABLE).set(if reachable { 1.0 } else { 0.0 });
}
