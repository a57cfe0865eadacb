//! Metrics through the `metrics` facade, observed with `metrics-util`'s `DebuggingRecorder`:
//! decisions by action and result, decision and audit-append latency, audit failures,
//! approvals pending, alerts raised and dropped, policy reloads.

use std::collections::HashMap;
use std::fmt::Display;

use guardrail_core::__private::{CountArg, begin};
use guardrail_core::{
    ActionDescriptor, ActionKind, AuditKey, Context, GuardError, Guardrail, MemoryAlertSink,
    MemorySink, Policy, Principal, telemetry,
};
use metrics_util::debugging::{DebugValue, DebuggingRecorder};

const POLICY: &str = r#"
version = "metrics-1"

[audit]
required = ["trail"]

[approval]
approver_roles = ["privacy_officer"]

[break_glass]
roles = ["analyst"]
kinds = ["export"]

[[rule]]
id = "analysts-export"
effect = "allow"
actions = ["metrics::export"]
roles = ["analyst"]
purposes = ["operations"]
approval_over = 100
"#;

static EXPORT: ActionDescriptor = ActionDescriptor::new("metrics::export", ActionKind::Export)
    .roles(&["analyst"])
    .located(module_path!(), file!(), line!())
    .function("export");

fn run(ctx: &Context, count: u64) -> Result<(), GuardError> {
    let subject: &dyn Display = &"p-1";
    let call = begin(&EXPORT, ctx, Some(subject), CountArg::Value(count), &[])?;
    call.finish::<(), GuardError>(Ok(()))
}

/// `name{k=v,..}` → value, labels sorted.
fn snapshot(recorder: &metrics_util::debugging::Snapshotter) -> HashMap<String, DebugValue> {
    recorder
        .snapshot()
        .into_vec()
        .into_iter()
        .map(|(key, _, _, value)| {
            let key = key.key();
            let mut labels: Vec<String> = key
                .labels()
                .map(|l| format!("{}={}", l.key(), l.value()))
                .collect();
            labels.sort();
            (format!("{}{{{}}}", key.name(), labels.join(",")), value)
        })
        .collect()
}

/// Adds a later snapshot to an earlier one (gauges: the later value).
fn merge(
    mut early: HashMap<String, DebugValue>,
    late: HashMap<String, DebugValue>,
) -> HashMap<String, DebugValue> {
    for (k, v) in late {
        let merged = match (early.remove(&k), v) {
            (Some(DebugValue::Counter(a)), DebugValue::Counter(b)) => DebugValue::Counter(a + b),
            (Some(DebugValue::Histogram(mut a)), DebugValue::Histogram(b)) => {
                a.extend(b);
                DebugValue::Histogram(a)
            }
            (_, v) => v,
        };
        early.insert(k, merged);
    }
    early
}

fn counter(m: &HashMap<String, DebugValue>, key: &str) -> u64 {
    match m.get(key) {
        Some(DebugValue::Counter(n)) => *n,
        other => panic!("{key}: {other:?}\n{:#?}", m.keys()),
    }
}

fn histogram_len(m: &HashMap<String, DebugValue>, key: &str) -> usize {
    match m.get(key) {
        Some(DebugValue::Histogram(v)) => v.len(),
        other => panic!("{key}: {other:?}"),
    }
}

fn gauge(m: &HashMap<String, DebugValue>, key: &str) -> f64 {
    match m.get(key) {
        Some(DebugValue::Gauge(v)) => v.into_inner(),
        other => panic!("{key}: {other:?}"),
    }
}

/// The latency sampling rate is process-wide: tests that set it take turns.
static SAMPLING: std::sync::Mutex<()> = std::sync::Mutex::new(());

#[test]
fn the_counters_gauges_and_histograms_move() {
    // Time every operation so the histogram counts are exact (the default samples).
    let _sampling = SAMPLING.lock().unwrap_or_else(|p| p.into_inner());
    telemetry::set_latency_sample_every(1);
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let siem = MemorySink::named("siem");
    let guardrail = Guardrail::builder()
        .policy(Policy::from_toml_str(POLICY).unwrap())
        .audit(MemorySink::named("trail"))
        .audit(siem.clone())
        .audit_key(AuditKey::from_bytes(b"metrics-test-key-0123456789").unwrap())
        .alerts(MemoryAlertSink::new())
        .build()
        .unwrap();
    let analyst = Principal::new("ana").role("analyst");
    let ok_ctx = || {
        guardrail
            .context(analyst.clone())
            .purpose(guardrail_core::Purpose::Operations)
    };

    let pending_after_request = metrics::with_local_recorder(&recorder, || {
        telemetry::describe();
        run(&ok_ctx(), 10).unwrap();
        run(&ok_ctx(), 20).unwrap();
        // No purpose: denied.
        assert!(run(&guardrail.context(analyst.clone()), 10).is_err());
        // Over the approval threshold: a pending request.
        let Err(GuardError::ApprovalRequired { request }) = run(&ok_ctx(), 500) else {
            panic!("expected an approval request");
        };
        // A snapshot drains the recorder (counters and gauges swap to 0): keep it.
        let early = snapshot(&snapshotter);
        let pending = gauge(&early, "guardrail_approvals_pending{}");
        guardrail
            .approve(&Principal::new("olga").role("privacy_officer"), &request.id)
            .unwrap();
        // Break-glass (emergency purpose, not allowed by the rule).
        run(&guardrail.context(analyst.clone()).break_glass("outage"), 1).unwrap();
        // A non-required sink fails: counted, the call still runs.
        siem.fail_with(Some("unreachable"));
        run(&ok_ctx(), 1).unwrap();
        // Reloads, one refused.
        guardrail
            .reload(Policy::from_toml_str(&POLICY.replace("metrics-1", "metrics-2")).unwrap())
            .unwrap();
        assert!(
            guardrail
                .reload(
                    Policy::from_toml_str("version = \"x\"\n[audit]\nrequired = [\"nope\"]\n")
                        .unwrap()
                )
                .is_err()
        );
        (pending, early)
    });
    let (pending_after_request, early) = pending_after_request;
    assert_eq!(pending_after_request, 1.0);

    let m = merge(early, snapshot(&snapshotter));
    let decisions = |result: &str| {
        counter(
            &m,
            &format!("guardrail_decisions_total{{action=metrics::export,result={result}}}"),
        )
    };
    assert_eq!(decisions("allow"), 3);
    assert_eq!(decisions("deny"), 1);
    assert_eq!(decisions("approval_required"), 1);
    assert_eq!(decisions("break_glass"), 1);
    assert_eq!(histogram_len(&m, "guardrail_decision_seconds{}"), 6);
    // Every event went to both sinks: 6 decisions (the approval request is one), 4
    // outcomes, 1 grant, 1 accepted and 1 refused reload.
    assert_eq!(
        histogram_len(&m, "guardrail_audit_append_seconds{}"),
        2 * (6 + 4 + 1 + 2)
    );
    // The failing `siem` missed the last call's decision and outcome and both reloads.
    assert_eq!(counter(&m, "guardrail_audit_failures_total{sink=siem}"), 4);
    assert_eq!(gauge(&m, "guardrail_approvals_pending{}"), 0.0);
    assert_eq!(
        counter(&m, "guardrail_alerts_total{kind=approval_requested}"),
        1
    );
    assert_eq!(counter(&m, "guardrail_alerts_total{kind=break_glass}"), 1);
    assert_eq!(
        counter(&m, "guardrail_alerts_total{kind=audit_sink_failure}"),
        4
    );
    assert_eq!(
        counter(&m, "guardrail_alerts_total{kind=policy_reload_refused}"),
        1
    );
    assert_eq!(counter(&m, "guardrail_policy_reloads_total{result=ok}"), 1);
    assert_eq!(
        counter(&m, "guardrail_policy_reloads_total{result=refused}"),
        1
    );
    assert!(
        !m.contains_key("guardrail_alerts_dropped_total{}"),
        "nothing was dropped"
    );
}

#[test]
fn describe_names_every_metric() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    metrics::with_local_recorder(&recorder, || {
        telemetry::describe();
        metrics::counter!(telemetry::DECISIONS_TOTAL).increment(1);
        metrics::histogram!(telemetry::DECISION_SECONDS).record(0.5);
    });
    let described: Vec<_> = snapshotter
        .snapshot()
        .into_vec()
        .into_iter()
        .map(|(k, unit, help, _)| (k.key().name().to_owned(), unit, help.is_some()))
        .collect();
    assert!(described.contains(&(telemetry::DECISIONS_TOTAL.to_owned(), None, true)));
    assert!(described.contains(&(
        telemetry::DECISION_SECONDS.to_owned(),
        Some(metrics::Unit::Seconds),
        true
    )));
}

#[test]
fn latency_histograms_are_sampled_counters_are_not() {
    let guardrail = Guardrail::builder()
        .policy(Policy::from_toml_str(POLICY).unwrap())
        .audit(MemorySink::named("trail"))
        .audit_key(AuditKey::from_bytes(b"metrics-test-key-0123456789").unwrap())
        .build()
        .unwrap();
    let _sampling = SAMPLING.lock().unwrap_or_else(|p| p.into_inner());
    telemetry::set_latency_sample_every(telemetry::DEFAULT_LATENCY_SAMPLE_EVERY);
    // A fresh thread starts its own sample count: operations 0, 8, 16… are timed.
    let m = std::thread::spawn(move || {
        let recorder = DebuggingRecorder::new();
        let snapshotter = recorder.snapshotter();
        metrics::with_local_recorder(&recorder, || {
            let ctx = guardrail
                .context(Principal::new("ana").role("analyst"))
                .purpose(guardrail_core::Purpose::Operations);
            for _ in 0..16 {
                run(&ctx, 1).unwrap();
            }
        });
        snapshot(&snapshotter)
    })
    .join()
    .unwrap();
    // 16 decisions and 32 appends (decision + outcome), one in 8 timed.
    assert_eq!(histogram_len(&m, "guardrail_decision_seconds{}"), 2);
    assert_eq!(histogram_len(&m, "guardrail_audit_append_seconds{}"), 4);
    assert_eq!(
        counter(
            &m,
            "guardrail_decisions_total{action=metrics::export,result=allow}"
        ),
        16
    );
}
