//! `guardrail audit prove` and `guardrail audit verify-proof`: one patient's events with
//! RFC 6962 inclusion proofs against a signed tree head, handed to an auditor as one JSON
//! bundle and verified offline, without the database.
//!
//! `prove` verifies the whole shared PostgreSQL trail first (every chain, every tree head,
//! their consistency), in the snapshot the events are read from, and refuses to build a
//! bundle over a trail that does not verify. `verify-proof` needs only the bundle and the
//! checkpoint key.

use std::path::PathBuf;

use clap::Args;
use guardrail_audit::merkle::{BundleError, InclusionBundle, TreeHeadError};
use guardrail_audit::sql::AuditTable;
use guardrail_audit::sql::postgres::{ProveError, TrailVerifyError, prove_subject};
use guardrail_audit::{CheckpointError, CheckpointVerifier};

use crate::read::Failure;
use crate::sqltrail::SqlTrail;
use crate::{escape, keys};

/// `guardrail audit prove`.
#[derive(Debug, Args)]
pub(crate) struct ProveArgs {
    /// The patient's keyed token (`hmac-sha256:…`), as events record it.
    #[arg(long, value_name = "TOKEN")]
    subject: String,
    /// The checkpoint key the tree heads are signed with: a file or `env:VAR` holding
    /// `ed25519:<hex public key>` or `hmac-sha256:<hex secret>`.
    #[arg(long, value_name = "KEY")]
    checkpoint_key: String,
    /// The audit table.
    #[arg(long, value_name = "NAME", default_value = AuditTable::DEFAULT)]
    table: String,
    /// Write the bundle here instead of standard output.
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
    /// The trail: a `postgres://…` URL.
    #[arg(value_name = "TRAIL")]
    trail: PathBuf,
}

/// `guardrail audit verify-proof`.
#[derive(Debug, Args)]
pub(crate) struct VerifyProofArgs {
    /// The bundle `guardrail audit prove` wrote.
    #[arg(value_name = "BUNDLE")]
    bundle: PathBuf,
    /// The checkpoint key (as for `prove`).
    #[arg(long, value_name = "KEY")]
    checkpoint_key: String,
}

fn is_wrong_key(e: &TreeHeadError) -> bool {
    matches!(
        e,
        TreeHeadError::Signature(CheckpointError::WrongKey { .. })
    )
}

/// Builds the bundle and writes it.
pub(crate) fn prove(a: &ProveArgs) -> Result<(), Failure> {
    let Some(SqlTrail::Postgres(url)) = SqlTrail::parse(&a.trail) else {
        return Err(Failure::Usage(
            "`audit prove` reads a shared PostgreSQL trail: give a `postgres://…` URL".into(),
        ));
    };
    let table = AuditTable::new(&a.table).map_err(|e| Failure::Usage(e.to_string()))?;
    let verifier = keys::checkpoint_verifier(&a.checkpoint_key).map_err(Failure::Usage)?;
    let (bundle, uncovered) = run_prove(&url, &table, &verifier, &a.subject)?;
    let text = bundle.to_json();
    match &a.out {
        Some(path) => std::fs::write(path, format!("{text}\n"))
            .map_err(|e| Failure::Usage(format!("cannot write `{}`: {e}", path.display())))?,
        None => println!("{text}"),
    }
    eprintln!(
        "guardrail: {} event(s) proven against the tree head of size {}{}",
        bundle.events.len(),
        tree_size(&bundle),
        if uncovered > 0 {
            format!(
                "; {uncovered} later event(s) of the subject are not covered by a signed tree \
                 head yet and were left out"
            )
        } else {
            String::new()
        }
    );
    Ok(())
}

fn tree_size(bundle: &InclusionBundle) -> String {
    // The size as the bundle's (already verified) head line states it, for the message only.
    serde_json::from_str::<serde_json::Value>(&bundle.tree_head)
        .ok()
        .and_then(|v| v.get("size").and_then(serde_json::Value::as_u64))
        .map_or_else(|| "-".to_owned(), |s| s.to_string())
}

fn run_prove(
    url: &str,
    table: &AuditTable,
    verifier: &CheckpointVerifier,
    subject: &str,
) -> Result<(InclusionBundle, u64), Failure> {
    let usage = |e: String| Failure::Usage(format!("the PostgreSQL database: {e}"));
    crate::sqltrail::on_postgres(url, usage, async |pool| {
        prove_subject(pool, table, verifier, subject)
            .await
            .map_err(|e| match e {
                ProveError::Verify(e) => trail_failure(e),
                other => Failure::Usage(other.to_string()),
            })
    })
}

/// Verifies a bundle offline.
pub(crate) fn verify_proof(a: &VerifyProofArgs) -> Result<(), Failure> {
    let verifier = keys::checkpoint_verifier(&a.checkpoint_key).map_err(Failure::Usage)?;
    let meta = std::fs::metadata(&a.bundle)
        .map_err(|e| Failure::Usage(format!("cannot read `{}`: {e}", a.bundle.display())))?;
    if meta.len() > guardrail_audit::merkle::MAX_BUNDLE_BYTES as u64 {
        return Err(Failure::Usage(format!(
            "`{}` is larger than a bundle may be",
            a.bundle.display()
        )));
    }
    let bytes = std::fs::read(&a.bundle)
        .map_err(|e| Failure::Usage(format!("cannot read `{}`: {e}", a.bundle.display())))?;
    // A bundle altered into invalid UTF-8 or JSON is a bundle that does not verify.
    let text = String::from_utf8(bytes).map_err(|_| {
        Failure::Tampered(format!(
            "`{}` is not a valid inclusion bundle (not UTF-8)",
            a.bundle.display()
        ))
    })?;
    let bundle = InclusionBundle::parse(&text)
        .map_err(|e| Failure::Tampered(format!("`{}`: {e}", a.bundle.display())))?;
    match bundle.verify(&verifier) {
        Ok(report) => {
            println!(
                "ok: {} event(s) of subject {} are included in the tree of `{}` of size {}, \
                 signed at {} by key {}",
                report.events,
                escape::text(&bundle.subject),
                escape::text(&report.tree_head.tree),
                report.tree_head.size,
                report.tree_head.time,
                report.tree_head.key
            );
            Ok(())
        }
        Err(BundleError::TreeHead(e)) if is_wrong_key(&e) => Err(Failure::Usage(format!(
            "the bundle's tree head: {e}; is it the key that signed this trail's tree heads?"
        ))),
        Err(e) => Err(Failure::Tampered(format!("`{}`: {e}", a.bundle.display()))),
    }
}

/// Exit status of a trail error (also for `prove`): unreadable database 2, the rest 1.
pub(crate) fn trail_failure(e: TrailVerifyError) -> Failure {
    match e {
        e @ TrailVerifyError::Database { .. } => Failure::Usage(e.to_string()),
        e => Failure::Tampered(e.to_string()),
    }
}
