//! Hot policy reload: validated before the swap, recorded before the swap, refused whole on
//! any error (bad file, missing sink, unrecordable), and safe under load: 8 threads deciding
//! while the policy is swapped 1,000 times (with invalid files in between) see only whole
//! policies and no wrong decision.

use std::fmt::Display;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use guardrail_core::__private::{CountArg, begin};
use guardrail_core::audit::{AuditError, EventKind, Receipt, Record};
use guardrail_core::{
    ActionDescriptor, ActionKind, AlertKind, AuditKey, AuditSink, Context, GuardError, Guardrail,
    MemoryAlertSink, MemorySink, Policy, Principal, Purpose, ReloadError,
};

const V1: &str = r#"
version = "reload-v1"

[[rule]]
id = "providers-read"
effect = "allow"
actions = ["clinic::*"]
kinds = ["read"]
roles = ["provider"]
purposes = ["treatment"]

[[rule]]
id = "billing-read"
effect = "allow"
actions = ["clinic::*"]
kinds = ["read"]
roles = ["billing"]

[[rule]]
id = "no-delete"
effect = "deny"
actions = ["clinic::delete_*"]
"#;

/// V1 without billing's read: the two versions disagree only on billing.
const V2: &str = r#"
version = "reload-v2"

[[rule]]
id = "providers-read"
effect = "allow"
actions = ["clinic::*"]
kinds = ["read"]
roles = ["provider"]
purposes = ["treatment"]

[[rule]]
id = "no-delete"
effect = "deny"
actions = ["clinic::delete_*"]
"#;

/// A syntax error on line 4, column 6 (the missing value).
const BAD_SYNTAX: &str = "version = \"reload-bad-syntax\"\n\n[[rule]]\nid = \n";
/// Parses, but names an action kind that does not exist.
const BAD_KIND: &str = r#"version = "reload-bad-kind"
[[rule]]
id = "r"
effect = "allow"
actions = ["clinic::*"]
kinds = ["wipe"]
"#;
/// Valid on its own, but requires an audit sink this guardrail does not have.
const BAD_SINK: &str = r#"version = "reload-bad-sink"
[audit]
required = ["warehouse"]
[[rule]]
id = "all"
effect = "allow"
actions = ["clinic::*"]
roles = ["provider", "nurse", "billing"]
"#;

static READ: ActionDescriptor = ActionDescriptor::new("clinic::read_chart", ActionKind::Read)
    .resource("patient_record")
    .roles(&["provider", "nurse", "billing"])
    .located(module_path!(), file!(), line!())
    .function("read_chart");

static DELETE: ActionDescriptor = ActionDescriptor::new("clinic::delete_chart", ActionKind::Delete)
    .resource("patient_record")
    .roles(&["provider"])
    .located(module_path!(), file!(), line!())
    .function("delete_chart");

fn key() -> AuditKey {
    AuditKey::from_bytes(b"reload-test-key-0123456789abcdef").unwrap()
}

fn run(action: &'static ActionDescriptor, ctx: &Context) -> Result<(), GuardError> {
    let subject: &dyn Display = &"p-7";
    let call = begin(action, ctx, Some(subject), CountArg::Absent, &[])?;
    call.finish::<(), GuardError>(Ok(()))
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

struct Setup {
    guardrail: Guardrail,
    trail: MemorySink,
    alerts: MemoryAlertSink,
}

fn setup(initial: &str) -> Setup {
    let trail = MemorySink::new();
    let alerts = MemoryAlertSink::new();
    let guardrail = Guardrail::builder()
        .policy(Policy::from_toml_str(initial).unwrap())
        .audit(trail.clone())
        .audit_key(key())
        .alerts(alerts.clone())
        .build()
        .unwrap();
    Setup {
        guardrail,
        trail,
        alerts,
    }
}

fn billing(g: &Guardrail) -> Context {
    g.context(Principal::new("bill").role("billing"))
}

#[test]
fn a_reload_is_recorded_with_both_versions_before_the_swap() {
    let s = setup(V1);
    let dir = tempfile::tempdir().unwrap();
    run(&READ, &billing(&s.guardrail)).unwrap();
    let v1 = Policy::from_toml_str(V1).unwrap();
    let v2 = Policy::from_toml_str(V2).unwrap();

    let report = s
        .guardrail
        .reload_from_path(write(dir.path(), "policy.toml", V2))
        .unwrap();
    assert!(report.changed);
    assert_eq!(report.old_version, "reload-v1");
    assert_eq!(report.new_version, "reload-v2");
    assert_eq!(report.old_sha256, v1.sha256());
    assert_eq!(report.new_sha256, v2.sha256());
    assert_eq!(s.guardrail.policy().version(), "reload-v2");
    // Billing lost its rule with the swap.
    assert!(run(&READ, &billing(&s.guardrail)).is_err());

    let events = s.trail.events();
    let reload = events
        .iter()
        .find(|e| e.record.kind == EventKind::PolicyReload)
        .unwrap();
    assert_eq!(Some(reload.seq), report.audit_seq);
    let d = &reload.record.detail;
    assert_eq!(d["old_version"], "reload-v1");
    assert_eq!(d["new_version"], "reload-v2");
    assert_eq!(d["old_sha256"], v1.sha256());
    assert_eq!(d["new_sha256"], v2.sha256());
    assert!(d["path"].ends_with("policy.toml"));
    // Decisions before it used v1, after it v2.
    for e in events
        .iter()
        .filter(|e| e.record.kind == EventKind::Decision)
    {
        let expected = if e.seq < reload.seq {
            "reload-v1"
        } else {
            "reload-v2"
        };
        assert_eq!(e.record.policy_version.as_deref(), Some(expected));
    }

    // Reloading the same text changes nothing and records nothing.
    let again = s
        .guardrail
        .reload_from_path(dir.path().join("policy.toml"))
        .unwrap();
    assert!(!again.changed);
    assert_eq!(again.audit_seq, None);
    let reloads = s
        .trail
        .events()
        .iter()
        .filter(|e| e.record.kind == EventKind::PolicyReload)
        .count();
    assert_eq!(reloads, 1);
}

#[test]
fn a_bad_file_is_refused_with_line_and_column_and_the_old_policy_keeps_serving() {
    let s = setup(V1);
    let dir = tempfile::tempdir().unwrap();
    let bad = write(dir.path(), "policy.toml", BAD_SYNTAX);
    let err = s.guardrail.reload_from_path(&bad).unwrap_err();
    let ReloadError::Policy(e) = &err else {
        panic!("expected a policy error, got {err}");
    };
    assert_eq!(e.path.as_deref(), Some(bad.as_path()));
    assert_eq!((e.line, e.column), (Some(4), Some(6)), "{e}");
    let shown = err.to_string();
    assert!(shown.contains("policy.toml:4:6"), "{shown}");

    let bad_kind = write(dir.path(), "kind.toml", BAD_KIND);
    let err = s.guardrail.reload_from_path(&bad_kind).unwrap_err();
    assert!(err.to_string().contains("`wipe`"), "{err}");
    assert!(
        s.guardrail
            .reload_from_path(dir.path().join("missing.toml"))
            .is_err()
    );

    assert_eq!(s.guardrail.policy().version(), "reload-v1");
    run(&READ, &billing(&s.guardrail)).unwrap();
    // Each refusal is in the trail and alerted; no decision ever used the bad versions.
    let events = s.trail.events();
    let refused: Vec<_> = events
        .iter()
        .filter(|e| e.record.kind == EventKind::PolicyReload)
        .collect();
    assert_eq!(refused.len(), 3);
    assert!(
        refused
            .iter()
            .all(|e| e.record.decision.as_deref() == Some("refused")
                && e.record.policy_version.as_deref() == Some("reload-v1"))
    );
    assert!(
        refused[0]
            .record
            .reason
            .as_deref()
            .unwrap()
            .contains(":4:6")
    );
    s.guardrail.flush_alerts();
    let alerts: Vec<_> = s
        .alerts
        .alerts()
        .into_iter()
        .filter(|a| a.kind == AlertKind::PolicyReloadRefused)
        .collect();
    assert_eq!(alerts.len(), 3);
    assert!(
        alerts[0].message.contains("`reload-v1` stays in force"),
        "{}",
        alerts[0].message
    );
}

#[test]
fn a_policy_requiring_a_missing_sink_is_refused() {
    let s = setup(V1);
    let err = s
        .guardrail
        .reload(Policy::from_toml_str(BAD_SINK).unwrap())
        .unwrap_err();
    assert!(matches!(err, ReloadError::Config(_)), "{err}");
    assert!(err.to_string().contains("`warehouse`"), "{err}");
    assert_eq!(s.guardrail.policy().version(), "reload-v1");
}

#[test]
fn a_reload_the_trail_cannot_record_is_refused() {
    let s = setup(V1);
    s.trail.fail_with(Some("disk full"));
    let err = s
        .guardrail
        .reload(Policy::from_toml_str(V2).unwrap())
        .unwrap_err();
    assert!(matches!(err, ReloadError::AuditUnavailable { .. }), "{err}");
    assert_eq!(s.guardrail.policy().version(), "reload-v1");
    s.trail.fail_with(None);
    s.guardrail
        .reload(Policy::from_toml_str(V2).unwrap())
        .unwrap();
    assert_eq!(s.guardrail.policy().version(), "reload-v2");
}

#[test]
fn a_call_in_flight_keeps_the_policy_it_was_decided_under() {
    let s = setup(V1);
    let subject: &dyn Display = &"p-7";
    let call = begin(
        &READ,
        &billing(&s.guardrail),
        Some(subject),
        CountArg::Absent,
        &[],
    )
    .unwrap();
    s.guardrail
        .reload(Policy::from_toml_str(V2).unwrap())
        .unwrap();
    call.finish::<(), GuardError>(Ok(())).unwrap();
    let outcome = s
        .trail
        .events()
        .into_iter()
        .find(|e| e.record.kind == EventKind::Outcome)
        .unwrap();
    assert_eq!(outcome.record.policy_version.as_deref(), Some("reload-v1"));
}

// -------------------------------------------------------------------------------------------
// Under load

/// What the load test needs of each event, kept compact (hundreds of thousands of events).
#[derive(Debug, Clone)]
struct Seen {
    kind: EventKind,
    version: Option<Arc<str>>,
    hash: Option<Arc<str>>,
    decision: Option<Arc<str>>,
    principal: Option<Arc<str>>,
    action: Option<Arc<str>>,
    new_sha256: Option<String>,
}

#[derive(Debug, Default)]
struct CompactTrail {
    seen: Mutex<Vec<Seen>>,
    seq: AtomicU64,
}

impl AuditSink for CompactTrail {
    fn name(&self) -> &str {
        "compact"
    }

    fn append(&self, mut record: Record) -> Result<Receipt, AuditError> {
        let seen = Seen {
            kind: record.kind,
            version: record.policy_version.take(),
            hash: record.policy_hash.take(),
            decision: record.decision.take(),
            principal: record.principal.take(),
            action: record.action.take(),
            new_sha256: record.detail.remove("new_sha256"),
        };
        let mut all = self.seen.lock().unwrap();
        all.push(seen);
        Ok(Receipt {
            seq: self.seq.fetch_add(1, Ordering::Relaxed),
        })
    }
}

/// Raises the flag when dropped, on every way out of a scope, unwinding included.
struct StopOnDrop<'a>(&'a AtomicBool);

impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

#[test]
fn reload_under_load_serves_only_whole_policies_and_no_wrong_decision() {
    const THREADS: usize = 8;
    const SWAPS: usize = 1_000;
    let dir = tempfile::tempdir().unwrap();
    let v1_path = write(dir.path(), "v1.toml", V1);
    let v2_path = write(dir.path(), "v2.toml", V2);
    let bad_paths = [
        write(dir.path(), "bad-syntax.toml", BAD_SYNTAX),
        write(dir.path(), "bad-kind.toml", BAD_KIND),
        write(dir.path(), "bad-sink.toml", BAD_SINK),
    ];
    let (h1, h2) = (
        Policy::from_toml_str(V1).unwrap().sha256().to_owned(),
        Policy::from_toml_str(V2).unwrap().sha256().to_owned(),
    );
    let trail = Arc::new(CompactTrail::default());
    let guardrail = Guardrail::builder()
        .policy(Policy::from_path(&v1_path).unwrap())
        .audit_arc(trail.clone())
        .audit_key(key())
        .build()
        .unwrap();

    let stop = AtomicBool::new(false);
    let wrong = AtomicU64::new(0);
    let decided = AtomicU64::new(0);
    // Nothing inside the scope asserts: a failure there would leave the workers spinning and
    // the scope waiting for them. The swap loop returns its failure, the stop flag is raised
    // however the loop ends (even by a panic, through the guard), the workers are joined, and
    // everything is asserted once the scope is over.
    let outcome: Result<usize, String> = std::thread::scope(|s| {
        let _stop_anyway = StopOnDrop(&stop);
        let workers: Vec<_> = (0..THREADS)
            .map(|t| {
                let (g, stop, wrong, decided) = (&guardrail, &stop, &wrong, &decided);
                s.spawn(move || {
                    // A panicking worker stops the others too.
                    let _stop_anyway = StopOnDrop(stop);
                    let provider = g
                        .context(Principal::new(format!("dr-{t}")).role("provider"))
                        .purpose(Purpose::Treatment);
                    let nurse = g.context(Principal::new(format!("nurse-{t}")).role("nurse"));
                    let bill = billing(g);
                    let mut i = 0u64;
                    while !stop.load(Ordering::Relaxed) {
                        // Both versions agree on these three; they differ on billing.
                        let agreed_wrong = match i % 4 {
                            0 => run(&READ, &provider).is_err(),
                            1 => run(&READ, &nurse).is_ok(),
                            2 => run(&DELETE, &provider).is_ok(),
                            _ => {
                                let _ = run(&READ, &bill);
                                false
                            }
                        };
                        if agreed_wrong {
                            wrong.fetch_add(1, Ordering::Relaxed);
                        }
                        decided.fetch_add(1, Ordering::Relaxed);
                        i += 1;
                    }
                })
            })
            .collect();
        let swaps = (|| {
            let mut refused = 0usize;
            for swap in 0..SWAPS {
                if swap % 20 == 10 {
                    let bad = &bad_paths[(swap / 20) % bad_paths.len()];
                    if guardrail.reload_from_path(bad).is_ok() {
                        return Err(format!("{bad:?} loaded"));
                    }
                    refused += 1;
                }
                let next = if swap % 2 == 0 { &v2_path } else { &v1_path };
                let report = guardrail
                    .reload_from_path(next)
                    .map_err(|e| format!("swap {swap}: {next:?} refused: {e}"))?;
                if !report.changed {
                    return Err(format!("swap {swap}: {next:?} reported unchanged"));
                }
                // Give the workers a turn under each version (2 cores are shared).
                std::thread::sleep(Duration::from_micros(200));
            }
            Ok(refused)
        })();
        stop.store(true, Ordering::Relaxed);
        let panicked = workers
            .into_iter()
            .map(|w| w.join())
            .filter(Result::is_err)
            .count();
        match (swaps, panicked) {
            (Ok(refused), 0) => Ok(refused),
            (Ok(_), n) => Err(format!("{n} decision threads panicked")),
            (Err(e), n) => Err(format!("{e} ({n} decision threads panicked)")),
        }
    });
    let refused = outcome.unwrap();

    assert_eq!(
        wrong.load(Ordering::Relaxed),
        0,
        "wrong decisions on agreed requests"
    );
    let seen = trail.seen.lock().unwrap();
    let mut per_version = [0u64; 2];
    let mut reloads = 0;
    let mut refusals = 0;
    for e in seen.iter() {
        match e.kind {
            EventKind::Decision => {
                let (version, hash) = (e.version.as_deref(), e.hash.as_deref());
                let v = match (version, hash) {
                    (Some("reload-v1"), Some(h)) if h == h1 => 0,
                    (Some("reload-v2"), Some(h)) if h == h2 => 1,
                    other => panic!("a decision used a policy never loaded whole: {other:?}"),
                };
                per_version[v] += 1;
                let billing = e.principal.as_deref() == Some("bill");
                if billing {
                    // Billing's result must be the one its recorded version gives.
                    let expected = if v == 0 { "allow" } else { "deny" };
                    assert_eq!(e.decision.as_deref(), Some(expected), "{e:?}");
                } else {
                    let expected = match (e.principal.as_deref(), e.action.as_deref()) {
                        (Some(p), Some("clinic::read_chart")) if p.starts_with("dr-") => "allow",
                        _ => "deny",
                    };
                    assert_eq!(e.decision.as_deref(), Some(expected), "{e:?}");
                }
            }
            EventKind::PolicyReload => match e.decision.as_deref() {
                Some("reloaded") => {
                    reloads += 1;
                    let new = e.new_sha256.as_deref().unwrap();
                    assert!(new == h1 || new == h2, "an invalid policy was loaded");
                }
                Some("refused") => refusals += 1,
                other => panic!("unexpected reload event {other:?}"),
            },
            _ => {}
        }
    }
    assert_eq!(reloads, SWAPS);
    assert_eq!(refusals, refused);
    assert!(refused >= 50);
    assert!(
        per_version[0] > 0 && per_version[1] > 0,
        "decisions did not overlap the swaps: {per_version:?}"
    );
    eprintln!(
        "{} decisions ({} under v1, {} under v2) across {SWAPS} swaps and {refused} refused files",
        decided.load(Ordering::Relaxed),
        per_version[0],
        per_version[1]
    );
}

// -------------------------------------------------------------------------------------------
// File watching (feature `watch`)

/// Polls `cond` every 20 ms for up to 20 s (file events are asynchronous).
fn eventually(what: &str, cond: impl Fn() -> bool) {
    for _ in 0..1000 {
        if cond() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("timed out waiting until {what}");
}

#[test]
fn a_watched_file_is_reloaded_on_change_and_a_bad_save_keeps_the_old_policy() {
    let s = setup(V1);
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "policy.toml", V1);
    let watcher = s
        .guardrail
        .watch_policy(&path, Duration::from_millis(100))
        .unwrap();
    assert_eq!(watcher.path(), path.as_path());

    std::fs::write(&path, V2).unwrap();
    eventually("v2 is in force", || {
        s.guardrail.policy().version() == "reload-v2"
    });

    // A bad save is refused: v2 keeps serving, the refusal is alerted.
    std::fs::write(&path, BAD_SYNTAX).unwrap();
    eventually("the bad file is refused", || {
        s.guardrail.flush_alerts();
        s.alerts
            .alerts()
            .iter()
            .any(|a| a.kind == AlertKind::PolicyReloadRefused)
    });
    assert_eq!(s.guardrail.policy().version(), "reload-v2");

    // Saved by rename, as editors do.
    let tmp = write(dir.path(), ".policy.toml.swp", V1);
    std::fs::rename(&tmp, &path).unwrap();
    eventually("v1 is back", || {
        s.guardrail.policy().version() == "reload-v1"
    });

    // Dropping the watcher stops reloading.
    drop(watcher);
    std::thread::sleep(Duration::from_millis(100));
    std::fs::write(&path, V2).unwrap();
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(s.guardrail.policy().version(), "reload-v1");
}
