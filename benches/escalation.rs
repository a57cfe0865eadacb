//! What escalation costs a guarded call: the sliding-window detectors, alerting into a full
//! queue, and a policy reload.
//!
//! - `escalation/read` vs `escalation/read_no_alerts`: an allowed read with and without an
//!   `[alerts]` section (the detectors must not cost an allowed non-export call anything).
//! - `escalation/export` vs `escalation/export_no_alerts`: an allowed export feeding the
//!   export-spike window of its principal and action (a mutex'd map), and without one.
//! - `escalation/deny` vs `escalation/deny_no_alerts`: a denial feeding the denial-burst
//!   window.
//! - `escalation/break_glass_full_queue`: a break-glass call whose alert meets a full queue
//!   (the alert sink is stuck): the alert is dropped and counted, never waited for.
//! - `escalation/reload`: `Guardrail::reload` alternating two parsed policies (record the
//!   reload event, swap).
//!
//! Every guardrail writes to a sink that discards events, so the numbers show the escalation
//! work, not the growth of an in-memory trail.
//!
//! Run: `cargo bench -p guardrail-benches --bench escalation`

use std::fmt::Display;
use std::hint::black_box;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, channel};
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use guardrail_core::__private::{CountArg, begin};
use guardrail_core::audit::{AuditError, Receipt, Record};
use guardrail_core::{
    ActionDescriptor, ActionKind, Alert, AlertSink, AuditKey, AuditSink, Context, GuardError,
    Guardrail, Policy, Principal, Purpose,
};

const ALERTS: &str = r#"
[alerts]
denial_burst = { count = 1000000000, window_secs = 60 }
export_spike = { count = 1000000000000, window_secs = 3600 }
"#;

const RULES: &str = r#"
[break_glass]
roles = ["provider"]
kinds = ["read"]

[[rule]]
id = "providers-read"
effect = "allow"
actions = ["bench::*"]
kinds = ["read"]
roles = ["provider"]
purposes = ["treatment"]

[[rule]]
id = "analysts-export"
effect = "allow"
actions = ["bench::*"]
kinds = ["export"]
roles = ["analyst"]
"#;

static READ: ActionDescriptor = ActionDescriptor::new("bench::read_chart", ActionKind::Read)
    .resource("patient_record")
    .roles(&["provider", "analyst"])
    .located(module_path!(), file!(), line!())
    .function("read_chart");

static EXPORT: ActionDescriptor = ActionDescriptor::new("bench::export_cohort", ActionKind::Export)
    .resource("patient_record")
    .roles(&["analyst"])
    .located(module_path!(), file!(), line!())
    .function("export_cohort");

/// Discards events (numbers them, as a sink must).
#[derive(Debug, Default)]
struct NullSink {
    seq: AtomicU64,
}

impl AuditSink for NullSink {
    fn name(&self) -> &str {
        "null"
    }

    fn append(&self, record: Record) -> Result<Receipt, AuditError> {
        drop(black_box(record));
        Ok(Receipt {
            seq: self.seq.fetch_add(1, Ordering::Relaxed),
        })
    }
}

/// An alert sink that never returns from its first alert (until the process ends).
#[derive(Debug)]
struct StuckPager {
    never: Mutex<Receiver<()>>,
}

impl AlertSink for StuckPager {
    fn send(&self, _alert: &Alert) {
        let _ = self.never.lock().map(|rx| rx.recv());
    }
}

fn policy(version: &str, alerts: bool) -> Policy {
    let text = format!(
        "version = \"{version}\"\n{}{RULES}",
        if alerts { ALERTS } else { "" }
    );
    Policy::from_toml_str(&text).expect("bench policy")
}

fn guardrail(alerts: bool) -> Guardrail {
    Guardrail::builder()
        .policy(policy("bench-1", alerts))
        .audit(NullSink::default())
        .audit_key(AuditKey::from_bytes(b"escalation-bench-key-0123456789").expect("key"))
        .build()
        .expect("guardrail")
}

fn call(action: &'static ActionDescriptor, ctx: &Context, count: u64) -> Result<(), GuardError> {
    let subject: &dyn Display = &"p-100";
    let call = begin(action, ctx, Some(subject), CountArg::Value(count), &[])?;
    call.finish::<(), GuardError>(Ok(()))
}

fn detectors(c: &mut Criterion) {
    let mut group = c.benchmark_group("escalation");
    for (suffix, alerts) in [("", true), ("_no_alerts", false)] {
        let g = guardrail(alerts);
        let provider = g
            .context(Principal::new("dr-grey").role("provider"))
            .purpose(Purpose::Treatment);
        let analyst = g.context(Principal::new("ana").role("analyst"));
        assert!(call(&READ, &provider, 1).is_ok());
        assert!(call(&EXPORT, &analyst, 10).is_ok());
        assert!(call(&READ, &analyst, 1).is_err());
        group.bench_function(format!("read{suffix}"), |b| {
            b.iter(|| call(&READ, black_box(&provider), 1))
        });
        group.bench_function(format!("export{suffix}"), |b| {
            b.iter(|| call(&EXPORT, black_box(&analyst), 10))
        });
        group.bench_function(format!("deny{suffix}"), |b| {
            b.iter(|| call(&READ, black_box(&analyst), 1))
        });
    }
    group.finish();
}

fn full_queue(c: &mut Criterion) {
    let (_keep, never) = channel::<()>();
    let g = Guardrail::builder()
        .policy(policy("bench-1", true))
        .audit(NullSink::default())
        .audit_key(AuditKey::from_bytes(b"escalation-bench-key-0123456789").expect("key"))
        .alerts(StuckPager {
            never: Mutex::new(never),
        })
        .alert_queue(1)
        .build()
        .expect("guardrail");
    let ctx = g
        .context(Principal::new("dr-grey").role("provider"))
        .break_glass("bench");
    // One alert held by the stuck sink, one in the queue: every later one is dropped.
    for _ in 0..3 {
        assert!(call(&READ, &ctx, 1).is_ok());
    }
    std::thread::sleep(Duration::from_millis(50));
    let before = g.alerts_dropped();
    assert!(call(&READ, &ctx, 1).is_ok());
    assert_eq!(g.alerts_dropped(), before + 1, "the queue is not full");
    let mut group = c.benchmark_group("escalation");
    group.bench_function("break_glass_full_queue", |b| {
        b.iter(|| call(&READ, black_box(&ctx), 1))
    });
    group.finish();
}

fn reload(c: &mut Criterion) {
    let g = guardrail(true);
    let (one, two) = (policy("bench-1", true), policy("bench-2", true));
    let mut flip = false;
    let mut group = c.benchmark_group("escalation");
    group.bench_function("reload", |b| {
        b.iter(|| {
            flip = !flip;
            let next = if flip { two.clone() } else { one.clone() };
            g.reload(next).map(|r| r.changed)
        })
    });
    group.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(30)
}

criterion_group! {
    name = benches;
    config = config();
    targets = detectors, full_queue, reload
}
criterion_main!(benches);
