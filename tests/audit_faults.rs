//! Fail closed: storage faults in the audit trail deny the guarded call, never pass silently.
//!
//! * An injected `EIO` or `ENOSPC` at every write index and at every fsync index of a run
//!   (decision and outcome events, rotation, manifest rewrite, checkpoints) makes the guarded
//!   call that needed the event fail with `AuditUnavailable`; a call denied at its decision
//!   never runs its body; every later call is denied too (the sink is poisoned, whatever later
//!   fsyncs report); after the fault clears, `reopen` restores service and the trail verifies.
//! * With a file and a memory sink, each failing or not and each required or not by the
//!   policy's `[audit] required`, a call proceeds exactly when every required sink recorded it.
//! * Non-string PHI used as the subject (numeric ids, dates of birth) is keyed-hashed: the
//!   trail holds the token and never the digits.

use std::fmt;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use guardrail_audit::io::Storage;
use guardrail_audit::io::sim::{FaultKind, Faults, SimStorage};
use guardrail_audit::{
    CheckpointOptions, CheckpointSigner, Durability, FileSink, FileSinkOptions, MANIFEST_FILE,
    Manifest, verify_trail_with,
};
use guardrail_core::prelude::*;
use guardrail_core::{Endpoint, Purpose};

#[derive(Debug)]
enum AppError {
    Guard(GuardError),
}

impl From<GuardError> for AppError {
    fn from(e: GuardError) -> Self {
        AppError::Guard(e)
    }
}

/// A date of birth: PHI that is not a string.
struct Dob(u16, u8, u8);

impl fmt::Display for Dob {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}-{:02}-{:02}", self.0, self.1, self.2)
    }
}

#[phi_action(kind = "read", role = "provider", resource = "patient_record",
             name = "faults.chart.read", subject = patient_no)]
fn read_chart(ctx: &Context, runs: &AtomicUsize, patient_no: u64) -> Result<u64, AppError> {
    runs.fetch_add(1, Ordering::SeqCst);
    Ok(patient_no)
}

#[phi_action(kind = "read", role = "provider", resource = "patient_record",
             name = "faults.chart.by_birthday", subject = dob)]
fn by_birthday(ctx: &Context, runs: &AtomicUsize, dob: &Dob) -> Result<(), AppError> {
    runs.fetch_add(1, Ordering::SeqCst);
    let _ = dob;
    Ok(())
}

fn policy(required: Option<&[&str]>) -> Policy {
    let audit = match required {
        None => String::new(),
        Some(r) => format!(
            "[audit]\nrequired = [{}]\n",
            r.iter()
                .map(|s| format!("\"{s}\""))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    Policy::from_toml_str(&format!(
        r#"
version = "faults-1"
{audit}
[[rule]]
id = "providers-treat"
effect = "allow"
actions = ["faults.chart.*"]
roles = ["provider"]
purposes = ["treatment"]
"#
    ))
    .unwrap()
}

fn key() -> AuditKey {
    AuditKey::from_bytes(b"audit key for fault tests 123456").unwrap()
}

fn dir() -> &'static Path {
    Path::new("/faults")
}

fn file_options() -> FileSinkOptions {
    FileSinkOptions {
        durability: Durability::Fsync,
        // Small files and frequent checkpoints, so rotation, the manifest rewrite and
        // checkpoint writes all happen inside the run and get their faults too.
        rotate_bytes: 1500,
        checkpoint: Some(CheckpointOptions {
            every_events: 3,
            every: std::time::Duration::ZERO,
            ..CheckpointOptions::new(signer())
        }),
        ..Default::default()
    }
}

fn signer() -> CheckpointSigner {
    CheckpointSigner::hmac_sha256(b"fault test checkpoint key").unwrap()
}

struct Rig {
    disk: SimStorage,
    sink: Arc<FileSink>,
    guardrail: Guardrail,
}

fn rig() -> Rig {
    let disk = SimStorage::new();
    let storage: Arc<dyn Storage> = Arc::new(disk.clone());
    let sink = Arc::new(FileSink::open_with(storage, dir(), file_options()).unwrap());
    let guardrail = Guardrail::builder()
        .policy(policy(None))
        .audit_arc(sink.clone())
        .audit_key(key())
        .build()
        .unwrap();
    Rig {
        disk,
        sink,
        guardrail,
    }
}

fn ctx(g: &Guardrail) -> Context {
    g.context(Principal::new("dr-grey").role("provider"))
        .endpoint(Endpoint::Provider)
        .purpose(Purpose::Treatment)
}

const CALLS: u64 = 6;

/// Runs the workload; returns per call: Ok, or the error, and whether the body ran.
fn workload(g: &Guardrail) -> Vec<(Result<u64, GuardError>, bool)> {
    let ctx = ctx(g);
    (0..CALLS)
        .map(|i| {
            let runs = AtomicUsize::new(0);
            let r = read_chart(&ctx, &runs, 1000 + i).map_err(|AppError::Guard(e)| e);
            (r, runs.load(Ordering::SeqCst) == 1)
        })
        .collect()
}

fn verify(storage: &dyn Storage) -> u64 {
    let cps = dir().join(guardrail_audit::CHECKPOINT_FILE);
    verify_trail_with(
        storage,
        &[dir()],
        Some((&cps, &signer().verifier())),
        &mut |_| {},
    )
    .unwrap_or_else(|e| panic!("trail does not verify: {e}"))
    .events
}

#[derive(Clone, Copy, Debug)]
enum At {
    Write(u64),
    Sync(u64),
}

fn inject_and_check(at: At, kind: FaultKind) {
    let rig = rig();
    let base = rig.disk.stats();
    let faults = match at {
        At::Write(k) => Faults {
            write_at: Some(base.writes + k),
            kind: Some(kind),
            ..Faults::default()
        },
        At::Sync(k) => Faults {
            sync_at: Some(base.syncs + k),
            kind: Some(kind),
            ..Faults::default()
        },
    };
    rig.disk.set_faults(faults);
    let results = workload(&rig.guardrail);
    assert_eq!(
        rig.disk.stats().faults,
        1,
        "{at:?} {kind:?}: the fault did not fire"
    );
    let first_failure = results
        .iter()
        .position(|(r, _)| r.is_err())
        .unwrap_or_else(|| panic!("{at:?} {kind:?}: a storage fault passed silently"));
    for (i, (r, ran)) in results.iter().enumerate().skip(first_failure) {
        let e = r.as_ref().unwrap_err();
        // A failed decision names the sink; a failed outcome names the outcome step, with
        // the file sink's error as the detail.
        assert!(
            matches!(e, GuardError::AuditUnavailable { sink, detail, .. }
                if sink == "file" || detail.contains("`file`")),
            "{at:?} {kind:?}: call {i}: {e}"
        );
        // Only the failing call itself may have run its body (its outcome event failed).
        if i > first_failure {
            assert!(
                !ran,
                "{at:?} {kind:?}: call {i} ran although the trail was down"
            );
        }
    }
    // The fault clears (the faults were one-shot); the sink stays poisoned until reopened.
    let ctx = ctx(&rig.guardrail);
    let runs = AtomicUsize::new(0);
    assert!(read_chart(&ctx, &runs, 7).is_err());
    assert_eq!(runs.load(Ordering::SeqCst), 0);
    rig.sink.reopen().unwrap();
    assert_eq!(
        read_chart(&ctx, &runs, 7).map_err(|AppError::Guard(e)| e.to_string()),
        Ok(7)
    );
    rig.sink.close().unwrap();
    // Recovery left a sound trail that holds every call that succeeded.
    let events = verify(&rig.disk);
    let succeeded = results.iter().filter(|(r, _)| r.is_ok()).count() as u64 + 1;
    assert!(
        events >= 2 * succeeded,
        "{at:?} {kind:?}: {events} events for {succeeded} calls"
    );
}

#[test]
fn a_fault_at_every_write_and_every_fsync_denies_and_service_recovers_after_reopen() {
    // Count the writes and fsyncs of a clean run.
    let clean = rig();
    let base = clean.disk.stats();
    let results = workload(&clean.guardrail);
    assert!(results.iter().all(|(r, ran)| r.is_ok() && *ran));
    let used = clean.disk.stats();
    let (writes, syncs) = (used.writes - base.writes, used.syncs - base.syncs);
    clean.sink.close().unwrap();
    let manifest =
        Manifest::parse(&clean.disk.read_all(&dir().join(MANIFEST_FILE)).unwrap()).unwrap();
    assert!(manifest.files.len() > 1, "the run should rotate");
    assert!(
        writes >= 2 * CALLS && syncs >= 2 * CALLS,
        "{writes} writes, {syncs} fsyncs"
    );

    let mut runs = 0;
    for kind in [FaultKind::Eio, FaultKind::Enospc] {
        for k in 0..writes {
            inject_and_check(At::Write(k), kind);
            runs += 1;
        }
        for k in 0..syncs {
            inject_and_check(At::Sync(k), kind);
            runs += 1;
        }
    }
    println!(
        "faults: {writes} write and {syncs} fsync indices x EIO/ENOSPC = {runs} runs, every one denied and recovered"
    );
}

#[test]
fn a_call_proceeds_only_when_every_required_sink_recorded_it() {
    let requirements: [Option<&[&str]>; 4] = [
        None,
        Some(&["file"]),
        Some(&["memory"]),
        Some(&["file", "memory"]),
    ];
    let mut cases = 0;
    for required in requirements {
        for file_fails in [false, true] {
            for memory_fails in [false, true] {
                let disk = SimStorage::new();
                let storage: Arc<dyn Storage> = Arc::new(disk.clone());
                let file = Arc::new(FileSink::open_with(storage, dir(), file_options()).unwrap());
                let memory = MemorySink::new();
                let g = Guardrail::builder()
                    .policy(policy(required))
                    .audit_arc(file.clone())
                    .audit(memory.clone())
                    .audit_key(key())
                    .build()
                    .unwrap();
                if file_fails {
                    disk.set_faults(Faults {
                        write_at: Some(disk.stats().writes),
                        kind: Some(FaultKind::Eio),
                        sticky: true,
                        ..Faults::default()
                    });
                }
                if memory_fails {
                    memory.fail_with(Some("memory sink down"));
                }
                let runs = AtomicUsize::new(0);
                let result = read_chart(&ctx(&g), &runs, 42);
                let is_required = |name: &str| required.is_none_or(|r| r.contains(&name));
                let refused =
                    (file_fails && is_required("file")) || (memory_fails && is_required("memory"));
                let should_proceed = !refused;
                let case = format!(
                    "required {required:?}, file fails {file_fails}, memory fails {memory_fails}"
                );
                assert_eq!(result.is_ok(), should_proceed, "{case}: {result:?}");
                assert_eq!(
                    runs.load(Ordering::SeqCst) == 1,
                    should_proceed,
                    "{case}: body"
                );
                if let Err(AppError::Guard(e)) = &result {
                    assert!(
                        matches!(e, GuardError::AuditUnavailable { .. }),
                        "{case}: {e}"
                    );
                }
                // The sinks that worked hold the decision (and, if it ran, the outcome).
                let expected_events = if should_proceed { 2 } else { 1 };
                if !memory_fails {
                    assert_eq!(memory.len(), expected_events, "{case}: memory trail");
                }
                if !file_fails {
                    file.close().unwrap();
                    assert_eq!(verify(&disk), expected_events as u64, "{case}: file trail");
                }
                cases += 1;
            }
        }
    }
    assert_eq!(cases, 16);
}

#[test]
fn non_string_phi_as_subject_is_keyed_hashed_like_strings() {
    let rig = rig();
    let ctx = ctx(&rig.guardrail);
    let runs = AtomicUsize::new(0);
    let patient_no: u64 = 4_815_162_342;
    read_chart(&ctx, &runs, patient_no)
        .map_err(|AppError::Guard(e)| e.to_string())
        .unwrap();
    let dob = Dob(1961, 4, 12);
    by_birthday(&ctx, &runs, &dob)
        .map_err(|AppError::Guard(e)| e.to_string())
        .unwrap();
    rig.sink.close().unwrap();
    let manifest =
        Manifest::parse(&rig.disk.read_all(&dir().join(MANIFEST_FILE)).unwrap()).unwrap();
    let mut trail = String::new();
    for p in manifest.paths(dir()) {
        trail.push_str(&String::from_utf8(rig.disk.read_all(&p).unwrap()).unwrap());
    }
    assert!(!trail.contains("4815162342"), "raw numeric id in the trail");
    // The date of birth in any form a value could take: the whole date, its year and month
    // (no timestamp of this run is in 1961), or the year alone as a JSON number or string. A
    // bare `1961` is no canary: hex digests and timestamps contain it by chance.
    for raw in [
        "1961-04-12",
        "1961-04",
        ":1961,",
        ":1961}",
        "\"1961\"",
        "04/12/1961",
    ] {
        assert!(
            !trail.contains(raw),
            "raw date of birth `{raw}` in the trail"
        );
    }
    let id_token = rig.guardrail.subject_token(&patient_no);
    let dob_token = rig.guardrail.subject_token(&dob);
    // Tokenized exactly like the same value given as a string.
    assert_eq!(id_token, key().token("subject", "4815162342"));
    assert_eq!(dob_token, key().token("subject", "1961-04-12"));
    assert_eq!(
        trail
            .matches(&format!("\"subject\":\"{id_token}\""))
            .count(),
        2,
        "decision + outcome"
    );
    assert_eq!(
        trail
            .matches(&format!("\"subject\":\"{dob_token}\""))
            .count(),
        2,
        "decision + outcome"
    );
}
