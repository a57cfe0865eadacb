//! The run-time tripwire: `require_guarded` passes only inside a guarded call that declared
//! the category; every refusal is an `unguarded_access` event, an alert and a metric. The
//! marker follows the call's body (and each poll of an async body), not the OS thread.

use std::collections::HashMap;
use std::sync::{LazyLock, Mutex, MutexGuard};

use guardrail_core::audit::EventKind;
use guardrail_core::prelude::*;
use guardrail_core::{AlertKind, MemoryAlertSink, guard, require_guarded};
use metrics_util::debugging::{DebugValue, DebuggingRecorder};

const POLICY: &str = r#"
version = "tripwire-1"

[[rule]]
id = "providers"
effect = "allow"
actions = ["tw::*"]
roles = ["provider"]
"#;

struct Fixture {
    guardrail: Guardrail,
    sink: MemorySink,
    alerts: MemoryAlertSink,
}

static FIXTURE: LazyLock<Fixture> = LazyLock::new(|| {
    let sink = MemorySink::new();
    let alerts = MemoryAlertSink::new();
    let guardrail = Guardrail::builder()
        .policy(Policy::from_toml_str(POLICY).unwrap())
        .audit(sink.clone())
        .audit_key(AuditKey::from_bytes(b"tripwire-key-0123456789").unwrap())
        .alerts(alerts.clone())
        .build()
        .unwrap();
    guardrail.install_tripwire();
    Fixture {
        guardrail,
        sink,
        alerts,
    }
});

/// The tripwire guardrail is process-wide: the tests take turns.
fn serial() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

fn ctx() -> Context {
    FIXTURE
        .guardrail
        .context(Principal::new("dr-grey").role("provider"))
}

fn unguarded_events() -> Vec<(Option<String>, String)> {
    FIXTURE.guardrail.flush_alerts();
    FIXTURE
        .sink
        .events()
        .into_iter()
        .filter(|e| e.record.kind == EventKind::UnguardedAccess)
        .map(|e| {
            (
                e.record.action.as_deref().map(str::to_owned),
                e.record.detail.get("category").cloned().unwrap_or_default(),
            )
        })
        .collect()
}

fn unguarded_alerts() -> usize {
    FIXTURE.guardrail.flush_alerts();
    FIXTURE
        .alerts
        .alerts()
        .iter()
        .filter(|a| a.kind == AlertKind::UnguardedAccess)
        .count()
}

#[phi_action(kind = "read", role = "provider", phi = ["diagnosis"], name = "tw::read_dx")]
fn read_dx(ctx: &Context, also: &[Category]) -> Result<(), GuardError> {
    require_guarded(&[Category::Diagnosis])?;
    let here = guard::current().expect("inside the call");
    assert_eq!(here.action, "tw::read_dx");
    assert!(here.categories.contains(Category::Diagnosis));
    require_guarded(also)
}

#[phi_action(kind = "read", role = "provider", phi = ["ssn"], name = "tw::read_ssn")]
fn read_ssn_then_dx(ctx: &Context) -> Result<(), GuardError> {
    require_guarded(&[Category::Ssn])?;
    // A nested guarded call runs under its own declaration…
    read_dx(ctx, &[])?;
    // …and the outer one's is back afterwards.
    assert_eq!(guard::current().map(|g| g.action), Some("tw::read_ssn"));
    require_guarded(&[Category::Ssn])
}

#[phi_action(kind = "read", role = "provider", phi = ["diagnosis"], name = "tw::panics")]
fn panics(ctx: &Context) -> Result<(), GuardError> {
    require_guarded(&[Category::Diagnosis])?;
    panic!("the body failed");
}

#[test]
fn outside_any_call_is_refused_recorded_alerted_and_counted() {
    let _turn = serial();
    let before = (unguarded_events().len(), unguarded_alerts());
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let err = metrics::with_local_recorder(&recorder, || {
        require_guarded(&[Category::Diagnosis]).unwrap_err()
    });
    assert!(
        matches!(
            err,
            GuardError::Unguarded {
                action: None,
                category: Some(Category::Diagnosis)
            }
        ),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        "PHI category `diagnosis` refused: reached outside any guarded call"
    );
    let events = unguarded_events();
    assert_eq!(events.len(), before.0 + 1);
    assert_eq!(events.last(), Some(&(None, "diagnosis".to_owned())));
    assert_eq!(unguarded_alerts(), before.1 + 1);
    let counted: HashMap<String, DebugValue> = snapshotter
        .snapshot()
        .into_vec()
        .into_iter()
        .map(|(k, _, _, v)| {
            let labels: Vec<String> = k
                .key()
                .labels()
                .map(|l| format!("{}={}", l.key(), l.value()))
                .collect();
            (format!("{}{{{}}}", k.key().name(), labels.join(",")), v)
        })
        .collect();
    assert_eq!(
        counted.get("guardrail_unguarded_total{category=diagnosis}"),
        Some(&DebugValue::Counter(1))
    );
    // Even asking for nothing is refused outside a call: nothing vouches for the caller.
    assert!(require_guarded(&[]).is_err());
}

#[test]
fn inside_a_call_only_declared_categories_pass() {
    let _turn = serial();
    let before = unguarded_events().len();
    assert!(read_dx(&ctx(), &[]).is_ok());
    assert!(read_dx(&ctx(), &[Category::Diagnosis]).is_ok());
    let err = read_dx(&ctx(), &[Category::Diagnosis, Category::Ssn]).unwrap_err();
    assert!(
        matches!(
            err,
            GuardError::Unguarded {
                action: Some("tw::read_dx"),
                category: Some(Category::Ssn)
            }
        ),
        "{err:?}"
    );
    let events = unguarded_events();
    assert_eq!(events.len(), before + 1);
    assert_eq!(
        events.last(),
        Some(&(Some("tw::read_dx".to_owned()), "ssn".to_owned()))
    );
    // After the call, the thread is outside again.
    assert!(guard::current().is_none());
    assert!(require_guarded(&[Category::Diagnosis]).is_err());
}

#[test]
fn nested_calls_restore_the_outer_marker() {
    let _turn = serial();
    assert!(read_ssn_then_dx(&ctx()).is_ok());
    assert!(guard::current().is_none());
}

#[test]
fn a_panicking_body_leaves_no_marker() {
    let _turn = serial();
    let ctx = ctx();
    let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| panics(&ctx)));
    assert!(caught.is_err());
    assert!(guard::current().is_none(), "the marker survived the panic");
}

#[phi_action(kind = "read", role = "provider", phi = ["diagnosis"], name = "tw::async_dx")]
async fn async_dx(ctx: &Context, rounds: usize) -> Result<usize, GuardError> {
    let mut passed = 0;
    for _ in 0..rounds {
        require_guarded(&[Category::Diagnosis])?;
        passed += 1;
        tokio::task::yield_now().await;
    }
    Ok(passed)
}

/// An unguarded task polled on the same thread between the guarded task's polls.
async fn unguarded_task(rounds: usize) -> usize {
    let mut refused = 0;
    for _ in 0..rounds {
        if require_guarded(&[Category::Diagnosis]).is_err() {
            refused += 1;
        }
        tokio::task::yield_now().await;
    }
    refused
}

#[test]
fn the_marker_follows_the_future_not_the_thread() {
    let _turn = serial();
    // One thread for both tasks: they interleave at every yield.
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let ctx = ctx();
    let (guarded, refused) = rt.block_on(async {
        let other = tokio::spawn(unguarded_task(50));
        let guarded = async_dx(&ctx, 50).await;
        (guarded, other.await.unwrap())
    });
    assert_eq!(guarded.unwrap(), 50, "the guarded future lost its marker");
    assert_eq!(refused, 50, "another task saw the guarded call's marker");
}

#[phi_action(kind = "read", role = "provider", phi = ["diagnosis"], name = "tw::spawns")]
async fn spawns(ctx: &Context, hand_over: bool) -> Result<bool, GuardError> {
    let work = async { require_guarded(&[Category::Diagnosis]).is_ok() };
    let task = if hand_over {
        let handle = guard::current_handle().expect("inside the call");
        tokio::spawn(handle.scope(work))
    } else {
        tokio::spawn(work)
    };
    Ok(task.await.unwrap_or(false))
}

#[test]
fn a_spawned_task_inherits_only_when_handed_over() {
    let _turn = serial();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .unwrap();
    let ctx = ctx();
    assert!(
        !rt.block_on(spawns(&ctx, false)).unwrap(),
        "a spawned task inherited the marker"
    );
    assert!(
        rt.block_on(spawns(&ctx, true)).unwrap(),
        "the handed-over marker was lost"
    );
}
