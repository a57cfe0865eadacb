//! Alerts: export spikes and denial bursts over sliding windows (manual clock), once per
//! crossing; approval requests; audit sink failures; and a slow sink behind a full queue,
//! which drops and counts instead of holding up the guarded call.

use std::fmt::Display;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use guardrail_core::__private::{CountArg, begin};
use guardrail_core::{
    ActionDescriptor, ActionKind, Alert, AlertKind, AlertSink, AuditKey, Context, GuardError,
    Guardrail, ManualClock, MemoryAlertSink, MemorySink, Policy, Principal,
};

const POLICY: &str = r#"
version = "alerts-1"

[audit]
required = ["trail"]

[approval]
approver_roles = ["privacy_officer"]

[break_glass]
roles = ["provider"]
kinds = ["read"]

[alerts]
denial_burst = { count = 3, window_secs = 60 }
export_spike = { count = 1000, window_secs = 3600 }

[[rule]]
id = "analysts-export"
effect = "allow"
actions = ["reports::*"]
kinds = ["export"]
roles = ["analyst"]

[[rule]]
id = "analysts-big-export"
effect = "allow"
actions = ["bulk::*"]
kinds = ["export"]
roles = ["analyst"]
approval = "always"

[[rule]]
id = "providers-read"
effect = "allow"
actions = ["clinic::*"]
kinds = ["read"]
roles = ["provider"]
purposes = ["treatment"]
"#;

macro_rules! action {
    ($name:ident, $full:literal, $kind:ident, $roles:expr) => {
        static $name: ActionDescriptor = ActionDescriptor::new($full, ActionKind::$kind)
            .resource("patient_record")
            .roles($roles)
            .located(module_path!(), file!(), line!());
    };
}

action!(EXPORT, "reports::export_cohort", Export, &["analyst"]);
action!(EXPORT_OTHER, "reports::export_claims", Export, &["analyst"]);
action!(BULK, "bulk::export_all", Export, &["analyst"]);
action!(READ, "clinic::read_chart", Read, &["provider"]);

fn run(
    action: &'static ActionDescriptor,
    ctx: &Context,
    count: Option<u64>,
) -> Result<(), GuardError> {
    let subject: &dyn Display = &"p-1";
    let count = count.map_or(CountArg::Absent, CountArg::Value);
    let call = begin(action, ctx, Some(subject), count, &[])?;
    call.finish::<(), GuardError>(Ok(()))
}

struct Setup {
    guardrail: Guardrail,
    alerts: MemoryAlertSink,
    clock: ManualClock,
}

fn setup() -> Setup {
    let alerts = MemoryAlertSink::new();
    let clock = ManualClock::at_unix_secs(1_800_000_000);
    let guardrail = Guardrail::builder()
        .policy(Policy::from_toml_str(POLICY).unwrap())
        .audit(MemorySink::named("trail"))
        .audit_key(AuditKey::from_bytes(b"alerts-test-key-0123456789").unwrap())
        .alerts(alerts.clone())
        .clock(clock.clone())
        .build()
        .unwrap();
    Setup {
        guardrail,
        alerts,
        clock,
    }
}

fn of_kind(s: &Setup, kind: AlertKind) -> Vec<Alert> {
    s.guardrail.flush_alerts();
    s.alerts
        .alerts()
        .into_iter()
        .filter(|a| a.kind == kind)
        .collect()
}

#[test]
fn export_spike_fires_over_the_threshold_once_per_crossing_and_not_under_it() {
    let s = setup();
    let ana = s.guardrail.context(Principal::new("ana").role("analyst"));
    // 400 + 400 + 200 = 1000 within the hour: at the threshold, not over it.
    for n in [400, 400, 200] {
        run(&EXPORT, &ana, Some(n)).unwrap();
        s.clock.advance(Duration::from_secs(60));
    }
    assert!(
        of_kind(&s, AlertKind::ExportSpike).is_empty(),
        "fired at 1000"
    );
    // Another principal and another action have windows of their own.
    let bob = s.guardrail.context(Principal::new("bob").role("analyst"));
    run(&EXPORT, &bob, Some(900)).unwrap();
    run(&EXPORT_OTHER, &ana, Some(900)).unwrap();
    assert!(
        of_kind(&s, AlertKind::ExportSpike).is_empty(),
        "windows are shared"
    );

    // One more record: over the threshold.
    run(&EXPORT, &ana, Some(1)).unwrap();
    let fired = of_kind(&s, AlertKind::ExportSpike);
    assert_eq!(fired.len(), 1);
    assert_eq!(fired[0].principal.as_deref(), Some("ana"));
    assert_eq!(fired[0].action.as_deref(), Some("reports::export_cohort"));
    assert_eq!(fired[0].count, Some(1001));
    // Still over: the same burst does not page again.
    run(&EXPORT, &ana, Some(500)).unwrap();
    assert_eq!(of_kind(&s, AlertKind::ExportSpike).len(), 1);

    // An hour later the window is empty: 999 stays quiet, a single 1500 burst fires again.
    s.clock.advance(Duration::from_secs(3601));
    run(&EXPORT, &ana, Some(999)).unwrap();
    assert_eq!(of_kind(&s, AlertKind::ExportSpike).len(), 1);
    s.clock.advance(Duration::from_secs(3601));
    run(&EXPORT, &ana, Some(1500)).unwrap();
    let fired = of_kind(&s, AlertKind::ExportSpike);
    assert_eq!(fired.len(), 2);
    assert_eq!(fired[1].count, Some(1500));
}

#[test]
fn exports_waiting_for_approval_or_denied_do_not_count_as_exported() {
    let s = setup();
    let ana = s.guardrail.context(Principal::new("ana").role("analyst"));
    for _ in 0..3 {
        let err = run(&BULK, &ana, Some(5000)).unwrap_err();
        assert!(matches!(err, GuardError::ApprovalRequired { .. }), "{err}");
    }
    assert!(of_kind(&s, AlertKind::ExportSpike).is_empty());
    assert_eq!(of_kind(&s, AlertKind::ApprovalRequested).len(), 3);
}

#[test]
fn denial_burst_fires_past_the_count_within_the_window() {
    let s = setup();
    let mallory = s
        .guardrail
        .context(Principal::new("mallory").role("analyst"));
    // Three denials 30 s apart, then a pause: never more than 3 in 60 s.
    for _ in 0..3 {
        assert!(run(&READ, &mallory, None).is_err());
        s.clock.advance(Duration::from_secs(30));
    }
    s.clock.advance(Duration::from_secs(60));
    for _ in 0..3 {
        assert!(run(&READ, &mallory, None).is_err());
    }
    assert!(of_kind(&s, AlertKind::DenialBurst).is_empty(), "fired at 3");
    // The fourth within the window fires, once.
    assert!(run(&READ, &mallory, None).is_err());
    assert!(run(&READ, &mallory, None).is_err());
    let fired = of_kind(&s, AlertKind::DenialBurst);
    assert_eq!(fired.len(), 1);
    assert_eq!(fired[0].principal.as_deref(), Some("mallory"));
    assert_eq!(fired[0].count, Some(4));
    // Allowed calls never count.
    let dr = s
        .guardrail
        .context(Principal::new("dr-grey").role("provider"))
        .purpose(guardrail_core::Purpose::Treatment);
    for _ in 0..10 {
        run(&READ, &dr, None).unwrap();
    }
    assert_eq!(of_kind(&s, AlertKind::DenialBurst).len(), 1);
}

#[test]
fn audit_sink_failure_alerts_and_a_required_one_denies() {
    let alerts = MemoryAlertSink::new();
    let required = MemorySink::named("trail");
    let optional = MemorySink::named("siem");
    let guardrail = Guardrail::builder()
        .policy(Policy::from_toml_str(POLICY).unwrap())
        .audit(required.clone())
        .audit(optional.clone())
        .audit_key(AuditKey::from_bytes(b"alerts-test-key-0123456789").unwrap())
        .alerts(alerts.clone())
        .build()
        .unwrap();
    let ana = guardrail.context(Principal::new("ana").role("analyst"));
    optional.fail_with(Some("disk full"));
    run(&EXPORT, &ana, Some(1)).unwrap();
    guardrail.flush_alerts();
    let failures: Vec<_> = alerts
        .alerts()
        .into_iter()
        .filter(|a| a.kind == AlertKind::AuditSinkFailure)
        .collect();
    // Decision and outcome both failed to reach `siem`.
    assert_eq!(failures.len(), 2);
    assert!(
        failures[0].message.contains("`siem`"),
        "{}",
        failures[0].message
    );

    required.fail_with(Some("disk full"));
    let ran = AtomicUsize::new(0);
    let subject: &dyn Display = &"p-1";
    let result = begin(&EXPORT, &ana, Some(subject), CountArg::Value(1), &[]).inspect(|_| {
        ran.fetch_add(1, Ordering::SeqCst);
    });
    assert!(
        matches!(result, Err(GuardError::AuditUnavailable { ref sink, .. }) if sink == "trail")
    );
    assert_eq!(ran.load(Ordering::SeqCst), 0);
}

/// A pager that hangs: it signals when it got an alert, then blocks until released.
#[derive(Debug)]
struct StuckPager {
    entered: Mutex<Sender<()>>,
    release: Mutex<Receiver<()>>,
    delivered: Arc<AtomicUsize>,
}

impl AlertSink for StuckPager {
    fn send(&self, _alert: &Alert) {
        let _ = self.entered.lock().unwrap().send(());
        let _ = self.release.lock().unwrap().recv();
        self.delivered.fetch_add(1, Ordering::SeqCst);
    }
}

#[test]
fn a_stuck_alert_sink_and_a_full_queue_drop_and_count_without_blocking_the_call() {
    const QUEUE: usize = 2;
    const CALLS: usize = 20;
    let (entered_tx, entered_rx) = channel();
    let (release_tx, release_rx) = channel();
    let delivered = Arc::new(AtomicUsize::new(0));
    let guardrail = Guardrail::builder()
        .policy(Policy::from_toml_str(POLICY).unwrap())
        .audit(MemorySink::named("trail"))
        .audit_key(AuditKey::from_bytes(b"alerts-test-key-0123456789").unwrap())
        .alerts(StuckPager {
            entered: Mutex::new(entered_tx),
            release: Mutex::new(release_rx),
            delivered: delivered.clone(),
        })
        .alert_queue(QUEUE)
        .build()
        .unwrap();
    let recorder = metrics_util::debugging::DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let provider = Principal::new("dr-grey").role("provider");

    // The first break-glass alert reaches the pager, which then hangs.
    let ctx = guardrail.context(provider.clone()).break_glass("code blue");
    run(&READ, &ctx, None).unwrap();
    entered_rx
        .recv_timeout(Duration::from_secs(30))
        .expect("the pager got the first alert");

    // Every further call still completes: QUEUE alerts wait, the rest are dropped. The calls
    // run on another thread so that a call blocking on the queue fails the test instead of
    // hanging it.
    let worker_guardrail = guardrail.clone();
    let (done_tx, done_rx) = channel();
    std::thread::spawn(move || {
        let result = metrics::with_local_recorder(&recorder, || {
            (0..CALLS)
                .map(|_| {
                    let ctx = worker_guardrail
                        .context(provider.clone())
                        .break_glass("code blue");
                    run(&READ, &ctx, None)
                })
                .collect::<Vec<_>>()
        });
        let _ = done_tx.send(result);
    });
    let results = done_rx
        .recv_timeout(Duration::from_secs(60))
        .expect("guarded calls blocked behind a stuck alert sink");
    assert!(results.iter().all(Result::is_ok), "{results:?}");
    assert_eq!(guardrail.alerts_dropped(), (CALLS - QUEUE) as u64);

    let dropped_metric = snapshotter
        .snapshot()
        .into_vec()
        .into_iter()
        .find(|(k, ..)| k.key().name() == "guardrail_alerts_dropped_total")
        .map(|(.., v)| v);
    assert_eq!(
        dropped_metric,
        Some(metrics_util::debugging::DebugValue::Counter(
            (CALLS - QUEUE) as u64
        ))
    );

    // Released, the pager gets the one it held plus the queued ones, nothing more.
    for _ in 0..=QUEUE {
        release_tx.send(()).unwrap();
    }
    guardrail.flush_alerts();
    assert_eq!(delivered.load(Ordering::SeqCst), 1 + QUEUE);
}
