//! The inclusion bundle: one patient's events, each with its RFC 6962 inclusion proof
//! against one signed tree head, in a self-contained JSON document an auditor verifies
//! offline with the checkpoint key alone.
//!
//! ```text
//! {"format":"guardrail-inclusion-bundle","v":1,"subject":"hmac-sha256:…","tree_head":"<signed tree head line>",
//!  "events":[{"chain":"<id>","leaf_index":I,"line":"<event line>","proof":["<64 hex>",…]},…]}
//! ```
//!
//! Verification checks the tree head's signature, then for each event: its line hashes to
//! its own `hash` member (a sound event), it names the subject, its seq is among the events
//! of its chain the head covers, and the proof leads from the leaf (chain id, `0x0a`, line)
//! at `leaf_index` to the signed root. Any altered byte of an event, a proof hash, an index
//! or the head fails one of these.

use serde::{Deserialize, Serialize};

use super::{
    ChainId, ProofError, TreeHead, TreeHeadError, leaf_bytes, leaf_hash, verify_inclusion,
};
use crate::chain::{Chain, Digest};
use crate::checkpoint::CheckpointVerifier;
use crate::event::AuditEvent;
use crate::verify::Verifier;

/// The `format` member of every bundle.
const FORMAT: &str = "guardrail-inclusion-bundle";
/// The bundle version this build writes and reads.
const VERSION: u64 = 1;
/// Bundles larger than this are refused before parsing.
pub const MAX_BUNDLE_BYTES: usize = 256 * 1024 * 1024;

/// One event and its proof.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BundleEvent {
    /// The chain the event belongs to.
    pub chain: ChainId,
    /// Its position in the tree.
    pub leaf_index: u64,
    /// The exact event line.
    pub line: String,
    /// The inclusion proof, leaf side first.
    pub proof: Vec<Digest>,
}

/// One patient's events with inclusion proofs against a signed tree head.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InclusionBundle {
    /// Always `guardrail-inclusion-bundle`.
    pub format: String,
    /// The bundle version (1).
    pub v: u64,
    /// The patient's keyed token (`hmac-sha256:…`): every event names it.
    pub subject: String,
    /// The signed tree head line the proofs lead to.
    pub tree_head: String,
    /// The events, in tree order.
    pub events: Vec<BundleEvent>,
}

/// What a verified bundle holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BundleReport {
    /// The tree head every proof leads to.
    pub tree_head: TreeHead,
    /// Events verified.
    pub events: usize,
}

/// Why a bundle does not verify. Exit status 1 in the CLI for every variant but `Read`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BundleError {
    /// Not a bundle (not JSON of the bundle's shape, another format or version).
    #[error("not an inclusion bundle: {0}")]
    Malformed(String),
    /// The tree head does not verify.
    #[error("the bundle's tree head: {0}")]
    TreeHead(#[from] TreeHeadError),
    /// An event line is not a sound event, or does not belong where the bundle puts it.
    #[error("bundle event {position} (leaf {leaf_index}): {reason}")]
    Event {
        /// 1-based position in `events`.
        position: usize,
        /// The leaf index it claims.
        leaf_index: u64,
        /// What is wrong.
        reason: String,
    },
    /// An inclusion proof does not verify.
    #[error("bundle event {position} (leaf {leaf_index}): {source}")]
    Proof {
        /// 1-based position in `events`.
        position: usize,
        /// The leaf index it claims.
        leaf_index: u64,
        /// Why the proof fails.
        #[source]
        source: ProofError,
    },
}

impl InclusionBundle {
    /// A bundle of `events` against the signed `tree_head` line.
    pub fn new(subject: &str, tree_head: String, events: Vec<BundleEvent>) -> InclusionBundle {
        InclusionBundle {
            format: FORMAT.to_owned(),
            v: VERSION,
            subject: subject.to_owned(),
            tree_head,
            events,
        }
    }

    /// The bundle as pretty-printed JSON.
    pub fn to_json(&self) -> String {
        // Strings, numbers and digests always serialize.
        serde_json::to_string_pretty(self).unwrap_or_default()
    }

    /// Parses a bundle (at most [`MAX_BUNDLE_BYTES`]).
    pub fn parse(text: &str) -> Result<InclusionBundle, BundleError> {
        if text.len() > MAX_BUNDLE_BYTES {
            return Err(BundleError::Malformed(format!(
                "larger than {MAX_BUNDLE_BYTES} bytes"
            )));
        }
        let bundle: InclusionBundle =
            serde_json::from_str(text).map_err(|e| BundleError::Malformed(e.to_string()))?;
        if bundle.format != FORMAT {
            return Err(BundleError::Malformed(format!(
                "`format` is `{}`, not `{FORMAT}`",
                bundle.format.escape_debug()
            )));
        }
        if bundle.v != VERSION {
            return Err(BundleError::Malformed(format!(
                "bundle version {} is not supported (this build reads version {VERSION})",
                bundle.v
            )));
        }
        Ok(bundle)
    }

    /// Verifies the bundle with the checkpoint key (see the module docs).
    ///
    /// An empty `events` list verifies only the tree head: a bundle says what it holds,
    /// not that the patient has no other events (that needs the database).
    pub fn verify(&self, verifier: &CheckpointVerifier) -> Result<BundleReport, BundleError> {
        let head = TreeHead::verify(verifier, self.tree_head.as_bytes())?;
        if self.subject.is_empty() || self.subject.contains(['"', '\\']) {
            return Err(BundleError::Malformed(
                "`subject` is empty or holds a quote or backslash".into(),
            ));
        }
        let mut previous: Option<u64> = None;
        for (i, e) in self.events.iter().enumerate() {
            let position = i + 1;
            let bad = |reason: String| BundleError::Event {
                position,
                leaf_index: e.leaf_index,
                reason,
            };
            if previous.is_some_and(|p| p >= e.leaf_index) {
                return Err(bad("events are not in increasing leaf order".into()));
            }
            previous = Some(e.leaf_index);
            let event = AuditEvent::parse(&e.line).map_err(|err| bad(err.to_string()))?;
            let mut own = Verifier::new(Chain {
                next_seq: event.seq,
                head: event.prev,
            });
            own.push_line(1, e.line.as_bytes())
                .map_err(|err| bad(format!("the event line does not hash to its `hash`: {err}")))?;
            if !e.line.contains(&format!("\"{}\"", self.subject)) {
                return Err(bad("the event does not name the bundle's subject".into()));
            }
            let covered = head.count_of(&e.chain);
            if event.seq >= covered {
                return Err(bad(format!(
                    "seq {} of chain `{}` is not covered by the tree head ({covered} events)",
                    event.seq, e.chain
                )));
            }
            let leaf = leaf_hash(&leaf_bytes(e.chain.as_str(), &e.line));
            verify_inclusion(&leaf, e.leaf_index, head.size, &e.proof, &head.root).map_err(
                |source| BundleError::Proof {
                    position,
                    leaf_index: e.leaf_index,
                    source,
                },
            )?;
        }
        Ok(BundleReport {
            tree_head: head,
            events: self.events.len(),
        })
    }
}
