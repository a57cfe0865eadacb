//! The clinic's durable audit trail: a file sink in `Fsync` mode with signed checkpoints.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use guardrail_core::audit::{
    AuditError, AuditEvent, CheckpointOptions, CheckpointSigner, CheckpointVerifier, Durability,
    FileSink, FileSinkOptions, Manifest, TrailError, verify_trail,
};

/// The checkpoint signing seed of the demo (a real service keeps it in a secret store).
const DEMO_CHECKPOINT_SEED: &[u8; 32] = b"clinic-demo-checkpoint-seed!!!!!";

fn signer() -> CheckpointSigner {
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

/// Opens the trail in `dir`: every append is on disk before the guarded call proceeds, and a
/// signed checkpoint is written every 16 events (and on close). The public key is written next
/// to it as `checkpoint.pub` so the trail can be verified with the CLI.
pub fn open(dir: &Path) -> Result<Arc<FileSink>, AuditError> {
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

/// Reads every event of the trail in `dir`, in order.
pub fn read(dir: &Path) -> Result<Vec<AuditEvent>, String> {
    let manifest_path = dir.join(guardrail_core::audit::MANIFEST_FILE);
    let manifest =
        std::fs::read(&manifest_path).map_err(|e| format!("{}: {e}", manifest_path.display()))?;
    let manifest = Manifest::parse(&manifest).map_err(|e| e.to_string())?;
    let mut events = Vec::new();
    for path in manifest.paths(dir) {
        let text =
            std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        for (i, line) in text.lines().enumerate() {
            let event = AuditEvent::parse(line)
                .map_err(|e| format!("{}:{}: {e}", path.display(), i + 1))?;
            events.push(event);
        }
    }
    Ok(events)
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
