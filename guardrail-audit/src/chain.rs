//! The hash chain: domain-separated SHA-256 over the canonical encoding of each event.
//!
//! `hash(event) = SHA-256(0x00 || canonical_json(event without "hash"))`. The encoding
//! already contains `prev`, the hash of the event before, so every event commits to the whole
//! history before it. The first event of a trail links to [`GENESIS`] (32 zero bytes).
//! Checkpoints use the prefix byte `0x01`, so a checkpoint can never be confused with an event.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq;

use crate::error::AuditError;
use crate::event::{AuditEvent, Record};

/// Domain-separation prefix of an event hash.
pub(crate) const EVENT_PREFIX: u8 = 0x00;

/// A SHA-256 digest, written as 64 lowercase hex characters.
#[derive(Clone, Copy, Eq)]
pub struct Digest(pub [u8; 32]);

/// Value of each lowercase hex digit; 0x80 marks every other byte (uppercase included).
const HEX_VALUE: [u8; 256] = {
    let mut t = [0x80u8; 256];
    let mut i = 0;
    while i < 10 {
        t[b'0' as usize + i] = i as u8;
        i += 1;
    }
    let mut i = 0;
    while i < 6 {
        t[b'a' as usize + i] = 10 + i as u8;
        i += 1;
    }
    t
};

/// The `prev` of the first event of a trail.
pub const GENESIS: Digest = Digest([0u8; 32]);

impl Digest {
    /// Compares two digests in constant time.
    pub fn ct_eq(&self, other: &Digest) -> bool {
        self.0.ct_eq(&other.0).into()
    }

    /// Lowercase hex form.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// Parses exactly 64 lowercase hex characters.
    pub fn from_hex(s: &str) -> Option<Digest> {
        // Table-driven and branch-free per character: verification parses two digests per
        // event, and a branchy decoder mispredicted on random hex often enough to cost more
        // than hashing the event itself.
        let s = s.as_bytes();
        if s.len() != 64 {
            return None;
        }
        let mut out = [0u8; 32];
        let mut invalid = 0u8;
        for (o, pair) in out.iter_mut().zip(s.chunks_exact(2)) {
            let (hi, lo) = (HEX_VALUE[pair[0] as usize], HEX_VALUE[pair[1] as usize]);
            invalid |= hi | lo;
            *o = (hi << 4) | (lo & 0x0f);
        }
        (invalid & 0x80 == 0).then_some(Digest(out))
    }
}

impl PartialEq for Digest {
    fn eq(&self, other: &Self) -> bool {
        self.ct_eq(other)
    }
}

impl std::hash::Hash for Digest {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.0.hash(state);
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Digest({})", self.to_hex())
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl Serialize for Digest {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut buf = [0u8; 64];
        // encode_to_slice only fails on a wrong output length, which is fixed here.
        match hex::encode_to_slice(self.0, &mut buf) {
            Ok(()) => s.serialize_str(std::str::from_utf8(&buf).unwrap_or_default()),
            Err(e) => Err(serde::ser::Error::custom(e)),
        }
    }
}

impl<'de> Deserialize<'de> for Digest {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Digest::from_hex(&s)
            .ok_or_else(|| serde::de::Error::custom("expected 64 lowercase hex characters"))
    }
}

/// Hashes the canonical bytes of an event (the JSON without its `hash` field).
pub(crate) fn hash_canonical(canonical: &[u8]) -> Digest {
    let mut h = Sha256::new();
    h.update([EVENT_PREFIX]);
    h.update(canonical);
    Digest(h.finalize().into())
}

/// The head of a chain: the next sequence number and the hash to link to.
///
/// Every sink keeps one behind its lock; [`Chain::link`] turns a [`Record`] into the next
/// [`AuditEvent`]. It is public so that sinks outside this crate share the exact same rules.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Chain {
    /// Sequence number the next event gets.
    pub next_seq: u64,
    /// Hash of the last event (or [`GENESIS`]).
    pub head: Digest,
}

impl Default for Chain {
    fn default() -> Self {
        Chain::new()
    }
}

impl Chain {
    /// An empty chain: the first event gets seq 0 and links to [`GENESIS`].
    pub const fn new() -> Chain {
        Chain {
            next_seq: 0,
            head: GENESIS,
        }
    }

    /// A chain that continues after an existing event.
    pub fn after(event: &AuditEvent) -> Chain {
        Chain {
            next_seq: event.seq + 1,
            head: event.hash,
        }
    }

    /// Links `record` as the next event and advances the head.
    pub fn link(&mut self, record: Record) -> Result<AuditEvent, AuditError> {
        let event = AuditEvent::seal(self.next_seq, self.head, record)?;
        self.next_seq += 1;
        self.head = event.hash;
        Ok(event)
    }
}
