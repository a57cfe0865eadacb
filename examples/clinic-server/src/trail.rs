//! The clinic's durable audit trail: a file sink in `Fsync` mode with signed checkpoints.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use guardrail_core::audit::{
    AuditError, CheckpointOptions, CheckpointSigner, CheckpointVerifier, Durability, FileSink,
    FileSinkOptions, TrailError, verify_trail,
};

/// The checkpoint signing seed of the demo (a real service keeps it in a secret store).
const DEMO_CHECKPOINT_SEED: &[u8; 32] = b"clinic-demo-checkpoint-seed!!!!!";

pub(crate) fn signer() -> CheckpointSigner {
    CheckpointSigner::ed25519_from_seed(DEMO_CHECKPOINT_SEED)
}

/// The public verification key of the demo's checkpoints.
pub fn checkpoint_verifier() -> CheckpointVerifier {
    signer().verifier()
}

/// Where the checkpoints of the trail in `dir` are.
pub fn checkpoint_path(dir: &Path) -> PathBuf {
    dir.join(guardrail_core::audit::CHECKPOINT_FILE)
}

/// Opens (or creates, or continues) the trail in `dir`: every append is on disk before the
/// guarded call proceeds, and a signed checkpoint is written every 16 events (and on
/// close). The public key is written next to it as `checkpoint.pub` so the trail can be
/// verified with the CLI.
pub fn open(dir: &Path) -> Result<Arc<FileSink>, AuditError> {
    std::fs::create_dir_all(dir)?;
    let mut checkpoint = CheckpointOptions::new(signer());
    checkpoint.every_events = 16;
    let sink = FileSink::open(
        dir,
        FileSinkOptions {
            durability: Durability::Fsync,
            checkpoint: Some(checkpoint),
            ..Default::default()
        },
    )?;
    std::fs::write(dir.join("checkpoint.pub"), checkpoint_verifier().key_text())?;
    Ok(Arc::new(sink))
}

/// Verifies the trail in `dir` against its checkpoints; returns the number of events.
pub fn verify(dir: &Path) -> Result<u64, TrailError> {
    let checkpoints = checkpoint_path(dir);
    let verifier = checkpoint_verifier();
    verify_trail(
        &[dir],
        Some((checkpoints.as_path(), &verifier)),
        &mut |_| {},
    )
    .map(|r| r.events)
}

/// The audit key of the demo. A real service loads its key from a secret store; here it can
/// be given as 64 hex characters in `GUARDRAIL_AUDIT_KEY`, else the fixed [`DEMO_KEY`] is
/// used, so `guardrail audit disclosures --key-hex env:GUARDRAIL_AUDIT_KEY` can be tried on
/// the demo's trail.
pub fn demo_key() -> guardrail_core::AuditKey {
    let from_env = std::env::var("GUARDRAIL_AUDIT_KEY")
        .ok()
        .and_then(|h| hex::decode(h).ok())
        .and_then(|b| guardrail_core::AuditKey::from_bytes(&b).ok());
    from_env.unwrap_or_else(|| match guardrail_core::AuditKey::from_bytes(DEMO_KEY) {
        Ok(k) => k,
        Err(_) => unreachable!("the demo key is 32 bytes"),
    })
}

/// The demo's fixed key bytes (never use a fixed key in production).
pub const DEMO_KEY: &[u8; 32] = b"clinic-demo-key-not-for-prod!!!!";
