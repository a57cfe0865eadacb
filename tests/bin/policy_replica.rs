//! One replica process for `tests/policy_store.rs`: a guardrail of its own (memory trail),
//! kept on the newest version of a PostgreSQL policy store by a `PolicyReplica`.
//!
//! ```text
//! policy-replica URL PREFIX REPLICA_ID RECHECK_MS
//! ```
//!
//! Prints `ready <version|->` once the first check is done, then `version <n>` whenever the
//! store version in force changes (polled every millisecond), until its stdin closes; then
//! it stops the replica (removing its heartbeat) and exits 0. Bad arguments exit 2.

use std::io::{BufRead as _, Write as _};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use guardrail_core::policy_store::{PolicyReplica, PolicyReplicaOptions, PolicyStoreOptions};
use guardrail_core::{AuditKey, Guardrail, MemorySink, Policy};

const BOOTSTRAP: &str = r#"
version = "bootstrap"

[[rule]]
id = "providers-read"
effect = "allow"
actions = ["clinic::*"]
kinds = ["read"]
roles = ["provider"]
"#;

fn fail(message: &str) -> ExitCode {
    let _ = writeln!(std::io::stderr(), "policy-replica: {message}");
    ExitCode::from(2)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [url, prefix, id, recheck_ms] = args.as_slice() else {
        return fail("usage: policy-replica URL PREFIX REPLICA_ID RECHECK_MS");
    };
    let Ok(recheck_ms) = recheck_ms.parse::<u64>() else {
        return fail("RECHECK_MS is not a number");
    };
    let built = Policy::from_toml_str(BOOTSTRAP)
        .map_err(|e| e.to_string())
        .and_then(|policy| {
            let key = AuditKey::from_bytes(b"policy-replica-test-key-0123456789")
                .map_err(|e| e.to_string())?;
            Guardrail::builder()
                .policy(policy)
                .audit(MemorySink::new())
                .audit_key(key)
                .build()
                .map_err(|e| e.to_string())
        });
    let guardrail = match built {
        Ok(g) => g,
        Err(e) => return fail(&e),
    };
    let options = PolicyReplicaOptions::new(id.as_str())
        .store(PolicyStoreOptions::new().prefix(prefix.as_str()))
        .recheck(Duration::from_millis(recheck_ms));
    let replica = match PolicyReplica::start(&guardrail, url, options) {
        Ok(r) => Arc::new(r),
        Err(e) => return fail(&e.to_string()),
    };
    let show = |v: Option<u64>| v.map_or_else(|| "-".to_owned(), |v| v.to_string());
    let mut last = replica.status().version;
    println!("ready {}", show(last));
    let done = Arc::new(AtomicBool::new(false));
    let watcher = {
        let done = done.clone();
        let replica = replica.clone();
        std::thread::spawn(move || {
            while !done.load(Ordering::Relaxed) {
                let now = replica.status().version;
                if now != last {
                    last = now;
                    println!("version {}", show(now));
                }
                std::thread::sleep(Duration::from_millis(1));
            }
        })
    };
    // Run until the test closes stdin (or dies, which closes it too).
    for line in std::io::stdin().lock().lines() {
        if line.is_err() {
            break;
        }
    }
    done.store(true, Ordering::Relaxed);
    let _ = watcher.join();
    if let Ok(replica) = Arc::try_unwrap(replica) {
        replica.stop();
    }
    ExitCode::SUCCESS
}
