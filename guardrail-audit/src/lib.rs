//! The audit trail of guardrail: what happened, provably in the order it happened.
//!
//! * [`Record`] is what a caller asks to be recorded; a sink stamps it with a sequence
//!   number and the previous event's hash and returns an [`AuditEvent`] link of the chain.
//! * [`AuditSink`] is the one trait every store implements ([`MemorySink`] here; the durable
//!   file sink and the SQL sinks build on the same [`Chain`]).
//! * [`verify_events`] / [`verify_lines`] recompute the chain and name the first broken link.
//! * [`AuditKey`] turns patient identifiers and other PHI into keyed tokens, so the trail can
//!   be searched per patient by whoever holds the key and read by anyone without exposing PHI.
//!
//! # Paths
//!
//! Every public item has one path. The common types (events, chain, sinks, keys, checkpoints,
//! verification) are re-exported here at the crate root and only here; the specialised parts
//! live only in their modules: [`disclosure`], [`fhir`], [`io`] (and `io::sim` with the `sim`
//! feature), [`sql`].
//!
//! The canonical encoding that is hashed is documented in `docs/audit-format.md`.
#![forbid(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod chain;
mod checkpoint;
pub mod disclosure;
mod error;
mod event;
pub mod fhir;
mod file;
pub mod io;
mod key;
mod memory;
pub mod merkle;
mod sink;
pub mod sql;
mod trail;
mod verify;

pub use chain::{Chain, Digest, GENESIS};
pub use checkpoint::{
    CHECKPOINT_VERSION, Checkpoint, CheckpointAlgorithm, CheckpointError, CheckpointKeyError,
    CheckpointOptions, CheckpointSigner, CheckpointVerifier,
};
pub use error::AuditError;
pub use event::{AuditEvent, EventKind, Outcome, ParseEventError, Record, Text, Timestamp};
pub use file::{
    CHECKPOINT_FILE, Durability, FileSink, FileSinkOptions, FileTrail, MANIFEST_FILE,
    MANIFEST_VERSION, MAX_LINE_BYTES, MAX_MANIFEST_BYTES, Manifest, ManifestEntry, ManifestError,
    Recovery, TrailEvents,
};
pub use key::{AuditKey, KeyTooShort};
pub use memory::MemorySink;
pub use sink::{AuditSink, Durable, Pending, Receipt, Submitted};
pub use trail::{
    FileReport, PROGRESS_EVERY, TrailError, TrailReport, verify_trail, verify_trail_with,
};
pub use verify::{BreakKind, Verifier, VerifyError, VerifyReport, verify_events, verify_lines};
