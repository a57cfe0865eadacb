//! Signed tree heads: "the tree over this trail's first `size` events has root `root`, and
//! it holds the first `count` events of each chain, the last of them hashing to `head`".
//!
//! One JSON line, signed like a checkpoint (same keys, same `alg`/`key`/`sig` members) but
//! over the domain prefix `0x03`, so a tree head can never pass for a checkpoint (`0x01`)
//! or an event (`0x00`):
//!
//! ```text
//! {"v":1,"tree":"<table>","size":N,"root":"<64 hex>","chains":[{"chain":"<id>","count":C,"head":"<64 hex>"},…],"time":"<RFC 3339>","alg":"ed25519","key":"<16 hex>","sig":"<hex>"}
//! ```
//!
//! `chains` is sorted by chain id (bytes), lists only chains with events, and its counts
//! add up to `size`.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::chain::Digest;
use crate::checkpoint::{CheckpointError, CheckpointSigner, CheckpointVerifier};
use crate::event::Timestamp;

/// Domain-separation prefix of the bytes a tree head signature covers.
pub(crate) const TREE_HEAD_PREFIX: u8 = 0x03;
/// The only tree head format version this crate writes and reads.
pub const TREE_HEAD_VERSION: u64 = 1;

/// The name of one writer's hash chain in a shared trail: 1 to 64 ASCII letters, digits,
/// `_`, `-` or `.`. Writers that append concurrently use different chains, so they never
/// wait on each other's head row.
///
/// ```
/// use guardrail_audit::merkle::ChainId;
/// assert_eq!(ChainId::default().as_str(), "default");
/// assert_eq!(ChainId::new("replica-2.slot_7").unwrap().as_str(), "replica-2.slot_7");
/// assert!(ChainId::new("a b").is_err());
/// assert!(ChainId::new("").is_err());
/// ```
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct ChainId(String);

/// Why a name cannot be a chain id.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("chain id `{0}` is not 1 to 64 ASCII letters, digits, `_`, `-` or `.`")]
pub struct ChainIdError(pub String);

impl ChainId {
    /// The chain of writers that name none: the single chain of earlier versions.
    pub const DEFAULT: &'static str = "default";

    /// Validates `name`.
    pub fn new(name: &str) -> Result<ChainId, ChainIdError> {
        let ok = !name.is_empty()
            && name.len() <= 64
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.');
        if ok {
            Ok(ChainId(name.to_owned()))
        } else {
            Err(ChainIdError(name.escape_debug().to_string()))
        }
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether this is [`ChainId::DEFAULT`].
    pub fn is_default(&self) -> bool {
        self.0 == Self::DEFAULT
    }
}

impl Default for ChainId {
    fn default() -> Self {
        ChainId(Self::DEFAULT.to_owned())
    }
}

impl fmt::Display for ChainId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for ChainId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        ChainId::new(&s).map_err(serde::de::Error::custom)
    }
}

/// How much of one chain a tree head covers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChainCount {
    /// The chain.
    pub chain: ChainId,
    /// Its first `count` events (seq `0..count`) are leaves of the tree.
    pub count: u64,
    /// The hash of its event at seq `count - 1`.
    pub head: Digest,
}

/// A verified tree head.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TreeHead {
    /// The trail (the events table's name).
    pub tree: String,
    /// Number of leaves.
    pub size: u64,
    /// The RFC 6962 root over them.
    pub root: Digest,
    /// The chains covered, sorted by id.
    pub chains: Vec<ChainCount>,
    /// When it was signed.
    pub time: Timestamp,
    /// Identifier of the key that signed it.
    pub key: String,
}

/// Why a tree head line is not acceptable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TreeHeadError {
    /// The signature part: malformed, another key, altered or forged.
    #[error(transparent)]
    Signature(#[from] CheckpointError),
    /// Signed, but a format version this build does not read.
    #[error("tree head format version {0} is not supported (this build reads version 1)")]
    UnsupportedVersion(u64),
    /// Signed, but not a well-formed tree head.
    #[error("not a well-formed tree head: {0}")]
    Malformed(String),
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Body {
    v: u64,
    tree: String,
    size: u64,
    root: Digest,
    chains: Vec<ChainCount>,
    time: Timestamp,
    alg: String,
    key: String,
}

#[derive(Deserialize)]
struct VersionOnly {
    v: u64,
}

impl TreeHead {
    /// Encodes and signs a tree head as one line (without newline). `chains` is sorted here.
    ///
    /// ```
    /// use guardrail_audit::merkle::{ChainCount, ChainId, TreeHead, leaf_hash};
    /// use guardrail_audit::{CheckpointSigner, Digest, Timestamp};
    /// let signer = CheckpointSigner::ed25519_from_seed(&[1; 32]);
    /// let chains = vec![ChainCount { chain: ChainId::default(), count: 1, head: Digest([2; 32]) }];
    /// let line = TreeHead::sign(&signer, "audit", 1, leaf_hash(b"x"), chains, Timestamp(0));
    /// let head = TreeHead::verify(&signer.verifier(), line.as_bytes()).unwrap();
    /// assert_eq!(head.size, 1);
    /// assert!(TreeHead::verify(&signer.verifier(), line.replace("\"size\":1", "\"size\":2").as_bytes()).is_err());
    /// ```
    pub fn sign(
        signer: &CheckpointSigner,
        tree: &str,
        size: u64,
        root: Digest,
        mut chains: Vec<ChainCount>,
        time: Timestamp,
    ) -> String {
        chains.sort_by(|a, b| a.chain.cmp(&b.chain));
        let body = Body {
            v: TREE_HEAD_VERSION,
            tree: tree.to_owned(),
            size,
            root,
            chains,
            time,
            alg: signer.algorithm().as_str().to_owned(),
            key: signer.key_id().to_owned(),
        };
        // Serializing plain strings, numbers and digests cannot fail.
        let mut text = serde_json::to_string(&body).unwrap_or_default();
        text.pop(); // the closing brace: the signature covers the body as `sign` prints it
        let sig = signer.signature_hex(TREE_HEAD_PREFIX, text.as_bytes());
        text.push_str(",\"sig\":\"");
        text.push_str(&sig);
        text.push_str("\"}");
        text
    }

    /// Parses a tree head line and checks its signature, then its shape: chains sorted and
    /// unique, counts adding up to `size`.
    pub fn verify(verifier: &CheckpointVerifier, line: &[u8]) -> Result<TreeHead, TreeHeadError> {
        let json = verifier.verified_json(TREE_HEAD_PREFIX, line)?;
        let body: Body = match serde_json::from_slice(&json) {
            Ok(b) => b,
            Err(e) => {
                if let Ok(VersionOnly { v }) = serde_json::from_slice(&json) {
                    if v != TREE_HEAD_VERSION {
                        return Err(TreeHeadError::UnsupportedVersion(v));
                    }
                }
                return Err(TreeHeadError::Malformed(e.to_string()));
            }
        };
        if body.v != TREE_HEAD_VERSION {
            return Err(TreeHeadError::UnsupportedVersion(body.v));
        }
        if body.chains.windows(2).any(|w| w[0].chain >= w[1].chain) {
            return Err(TreeHeadError::Malformed(
                "`chains` is not sorted by chain id without repeats".into(),
            ));
        }
        if body.chains.iter().any(|c| c.count == 0) {
            return Err(TreeHeadError::Malformed("a chain counts 0 events".into()));
        }
        let total = body
            .chains
            .iter()
            .try_fold(0u64, |acc, c| acc.checked_add(c.count));
        if total != Some(body.size) {
            return Err(TreeHeadError::Malformed(
                "the chains' counts do not add up to `size`".into(),
            ));
        }
        Ok(TreeHead {
            tree: body.tree,
            size: body.size,
            root: body.root,
            chains: body.chains,
            time: body.time,
            key: body.key,
        })
    }

    /// How many events of `chain` this head covers.
    pub fn count_of(&self, chain: &ChainId) -> u64 {
        self.chains
            .iter()
            .find(|c| &c.chain == chain)
            .map_or(0, |c| c.count)
    }
}
