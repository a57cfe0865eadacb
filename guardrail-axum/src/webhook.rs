//! An [`AlertSink`] that POSTs alerts as JSON to a webhook.
//!
//! `send` only pushes onto a bounded queue (a full queue drops and counts the alert); a
//! dedicated thread owns a blocking HTTP client and delivers with bounded retries and
//! exponential backoff. A thread of its own (rather than a task on the host's runtime)
//! keeps delivery independent of whether and which async runtime the host runs, and a
//! slow or dead webhook can never stall the host's executor or core's alert worker.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::time::Duration;

use guardrail_core::{Alert, AlertSink};
use serde::Serialize;

/// Counter of webhook alerts dropped on a full queue.
pub const WEBHOOK_DROPPED_TOTAL: &str = "guardrail_webhook_alerts_dropped_total";
/// Counter of webhook alerts given up after the last attempt.
pub const WEBHOOK_FAILED_TOTAL: &str = "guardrail_webhook_alerts_failed_total";
/// Counter of webhook alerts delivered (a 2xx answer).
pub const WEBHOOK_DELIVERED_TOTAL: &str = "guardrail_webhook_alerts_delivered_total";

/// Registers descriptions of the webhook metrics with the installed recorder.
pub fn describe() {
    metrics::describe_counter!(
        WEBHOOK_DROPPED_TOTAL,
        "webhook alerts dropped because the queue was full"
    );
    metrics::describe_counter!(
        WEBHOOK_FAILED_TOTAL,
        "webhook alerts given up after every attempt failed"
    );
    metrics::describe_counter!(WEBHOOK_DELIVERED_TOTAL, "webhook alerts delivered");
}

/// How a [`WebhookAlertSink`] queues and retries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookOptions {
    /// Alerts waiting for delivery at most; more are dropped and counted.
    pub queue_capacity: usize,
    /// Attempts per alert (at least 1).
    pub max_attempts: u32,
    /// Wait after the first failed attempt; doubled after each further one.
    pub initial_backoff: Duration,
    /// Longest wait between two attempts.
    pub max_backoff: Duration,
    /// Timeout of one attempt (connect and answer).
    pub timeout: Duration,
}

impl Default for WebhookOptions {
    fn default() -> Self {
        WebhookOptions {
            queue_capacity: 256,
            max_attempts: 5,
            initial_backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(10),
            timeout: Duration::from_secs(5),
        }
    }
}

/// Why a [`WebhookAlertSink`] could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WebhookError {
    /// The URL is not an absolute `http` or `https` URL.
    #[error("the webhook URL is not an absolute http(s) URL")]
    InvalidUrl,
    /// The delivery thread could not be started.
    #[error("the webhook delivery thread could not start: {0}")]
    Spawn(#[from] std::io::Error),
}

/// The JSON body of one alert. Every field is PHI-free by core's contract for [`Alert`].
#[derive(Debug, Clone, Serialize)]
struct Payload {
    kind: &'static str,
    time: String,
    action: Option<String>,
    principal: Option<String>,
    request_id: Option<String>,
    count: Option<u64>,
    message: String,
}

impl Payload {
    fn of(alert: &Alert) -> Payload {
        Payload {
            kind: alert.kind.as_str(),
            time: alert.time.to_string(),
            action: alert.action.as_deref().map(str::to_owned),
            principal: alert.principal.as_deref().map(str::to_owned),
            request_id: alert.request_id.as_deref().map(str::to_owned),
            count: alert.count,
            message: alert.message.clone(),
        }
    }
}

enum Msg {
    Deliver(Box<Payload>),
    Flush(SyncSender<()>),
}

#[derive(Debug, Default)]
struct Counters {
    dropped: AtomicU64,
    failed: AtomicU64,
    delivered: AtomicU64,
}

/// Delivers alerts to a webhook: `POST <url>` with a JSON body
/// `{"kind","time","action","principal","request_id","count","message"}`.
///
/// Register it with `Guardrail::builder().alerts(sink.clone())`; clones share the queue
/// and the counters. The delivery thread ends when the last clone is dropped, after
/// delivering what is queued. Redirects are not followed.
#[derive(Clone)]
pub struct WebhookAlertSink {
    tx: SyncSender<Msg>,
    counters: Arc<Counters>,
}

impl fmt::Debug for WebhookAlertSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The URL may carry a secret token: never printed.
        f.debug_struct("WebhookAlertSink")
            .field("dropped", &self.dropped())
            .field("failed", &self.failed())
            .field("delivered", &self.delivered())
            .finish_non_exhaustive()
    }
}

impl WebhookAlertSink {
    /// A sink posting to `url` with [`WebhookOptions::default`].
    pub fn new(url: &str) -> Result<WebhookAlertSink, WebhookError> {
        WebhookAlertSink::with_options(url, WebhookOptions::default())
    }

    /// A sink posting to `url` with `options`.
    pub fn with_options(
        url: &str,
        options: WebhookOptions,
    ) -> Result<WebhookAlertSink, WebhookError> {
        let url = reqwest::Url::parse(url).map_err(|_| WebhookError::InvalidUrl)?;
        if !matches!(url.scheme(), "http" | "https") || !url.has_host() {
            return Err(WebhookError::InvalidUrl);
        }
        let (tx, rx) = sync_channel(options.queue_capacity.max(1));
        let counters = Arc::new(Counters::default());
        let worker_counters = Arc::clone(&counters);
        std::thread::Builder::new()
            .name("guardrail-webhook".into())
            .spawn(move || run(rx, url, options, &worker_counters))?;
        Ok(WebhookAlertSink { tx, counters })
    }

    /// Alerts dropped because the queue was full.
    pub fn dropped(&self) -> u64 {
        self.counters.dropped.load(Ordering::Relaxed)
    }

    /// Alerts given up after every attempt failed.
    pub fn failed(&self) -> u64 {
        self.counters.failed.load(Ordering::Relaxed)
    }

    /// Alerts delivered.
    pub fn delivered(&self) -> u64 {
        self.counters.delivered.load(Ordering::Relaxed)
    }

    /// Waits (at most `timeout` for the answer) until every alert queued before this call
    /// was delivered or given up; true if it was. May wait for room in a full queue: for
    /// shutdown and tests, never for a guarded call.
    pub fn flush(&self, timeout: Duration) -> bool {
        let (done_tx, done_rx) = sync_channel(1);
        self.tx.send(Msg::Flush(done_tx)).is_ok() && done_rx.recv_timeout(timeout).is_ok()
    }
}

impl AlertSink for WebhookAlertSink {
    fn send(&self, alert: &Alert) {
        match self.tx.try_send(Msg::Deliver(Box::new(Payload::of(alert)))) {
            Ok(()) => {}
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                self.counters.dropped.fetch_add(1, Ordering::Relaxed);
                metrics::counter!(WEBHOOK_DROPPED_TOTAL).increment(1);
            }
        }
    }
}

fn run(rx: Receiver<Msg>, url: reqwest::Url, options: WebhookOptions, counters: &Counters) {
    let client = reqwest::blocking::Client::builder()
        .timeout(options.timeout)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .ok();
    for msg in rx {
        match msg {
            Msg::Deliver(payload) => {
                let ok = client
                    .as_ref()
                    .is_some_and(|c| deliver(c, &url, &options, &payload));
                if ok {
                    counters.delivered.fetch_add(1, Ordering::Relaxed);
                    metrics::counter!(WEBHOOK_DELIVERED_TOTAL).increment(1);
                } else {
                    counters.failed.fetch_add(1, Ordering::Relaxed);
                    metrics::counter!(WEBHOOK_FAILED_TOTAL).increment(1);
                }
            }
            Msg::Flush(done) => {
                let _ = done.send(());
            }
        }
    }
}

/// Posts `payload` up to `max_attempts` times, backing off exponentially; true on a 2xx.
fn deliver(
    client: &reqwest::blocking::Client,
    url: &reqwest::Url,
    options: &WebhookOptions,
    payload: &Payload,
) -> bool {
    let attempts = options.max_attempts.max(1);
    let mut backoff = options.initial_backoff;
    for attempt in 1..=attempts {
        let answered = client.post(url.clone()).json(payload).send();
        if answered.is_ok_and(|r| r.status().is_success()) {
            return true;
        }
        if attempt < attempts {
            std::thread::sleep(backoff);
            backoff = backoff.saturating_mul(2).min(options.max_backoff);
        }
    }
    false
}
