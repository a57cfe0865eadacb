//! Helpers shared by the audit fuzz targets: turning fuzzed text into sealed chains, and an
//! independent recomputation of the event hash (so a target does not check the verifier
//! against itself).
//!
//! The same invariants run as proptest properties in `tests/parsers_prop.rs` of the main
//! workspace; `docs/fuzzing.md` lists the targets and the executions reached.
//!
//! Each module holds one target's properties as `check_input(bytes)`; the targets in
//! `fuzz_targets/` are one line each, and `tests/parsers_prop.rs` includes this file (with
//! `#[path]`) to run the very same checks on proptest-generated inputs.
#![forbid(unsafe_code)]

pub mod checkpoint;
pub mod event_line;
pub mod manifest;
pub mod trail;
pub mod verify_chain;

use guardrail_audit::{AuditEvent, AuditKey, Chain, Record};
use sha2::{Digest as _, Sha256};

/// Length of the fixed suffix `,"hash":"<64 hex>"}` of an event line.
pub const HASH_SUFFIX_LEN: usize = 9 + 64 + 2;

/// The patient whose disclosures the trail target accounts for.
pub const PATIENT: &str = "p-1";

/// The key the trail target tokenizes subjects with.
pub fn audit_key() -> AuditKey {
    match AuditKey::from_bytes(b"fuzzing key of at least sixteen bytes") {
        Ok(k) => k,
        Err(e) => panic!("fixed key rejected: {e}"),
    }
}

/// `SHA-256(0x00 || line without its hash member || "}")` in lowercase hex, computed here
/// rather than by the crate; `None` when the line has no room for the hash suffix.
pub fn expected_hash(line: &[u8]) -> Option<String> {
    if line.len() < HASH_SUFFIX_LEN {
        return None;
    }
    let body = &line[..line.len() - HASH_SUFFIX_LEN];
    let mut h = Sha256::new();
    h.update([0u8]);
    h.update(body);
    h.update(b"}");
    Some(hex::encode(h.finalize()))
}

/// The 64 characters where a line keeps its hash, when the line has the suffix's shape.
pub fn written_hash(line: &[u8]) -> Option<&[u8]> {
    if line.len() < HASH_SUFFIX_LEN {
        return None;
    }
    let suffix = &line[line.len() - HASH_SUFFIX_LEN..];
    (suffix.starts_with(b",\"hash\":\"") && suffix.ends_with(b"\"}")).then(|| &suffix[9..73])
}

/// `line` with its hash member replaced by the right hash (as someone who can write the file
/// and recompute SHA-256 would do); `None` when the line has no hash suffix.
pub fn with_fixed_hash(line: &[u8]) -> Option<Vec<u8>> {
    written_hash(line)?;
    let hash = expected_hash(line)?;
    let mut out = line.to_vec();
    let at = out.len() - HASH_SUFFIX_LEN + 9;
    out[at..at + 64].copy_from_slice(hash.as_bytes());
    Some(out)
}

/// One line of a fuzzed chain: sealed from a record, or raw bytes written as they are.
#[derive(Clone, Debug)]
pub enum Item {
    /// A record linked into the chain.
    Sealed(Box<AuditEvent>),
    /// Bytes that did not parse as a record (no newline in them).
    Raw(Vec<u8>),
}

impl Item {
    /// The bytes written for this item (without newline).
    pub fn bytes(&self) -> &[u8] {
        match self {
            Item::Sealed(e) => e.line().as_bytes(),
            Item::Raw(b) => b,
        }
    }
}

/// Parses one fuzzed line as a [`Record`], replacing the placeholder `$P` with the keyed token
/// of [`PATIENT`] (a fuzzer cannot compute HMAC tokens, so without this the disclosure
/// accumulator would never see the patient).
pub fn record_from(line: &[u8], token: &str) -> Option<Record> {
    let text = std::str::from_utf8(line).ok()?;
    if !text.starts_with('{') {
        return None;
    }
    let text = text.replace("$P", token);
    serde_json::from_str(&text).ok()
}

/// Seals every line of `text` that parses as a record into one chain from genesis; other
/// non-empty lines stay raw. At most `max` items.
pub fn chain_from(text: &[u8], token: &str, max: usize) -> Vec<Item> {
    let mut chain = Chain::new();
    let mut out = Vec::new();
    for line in text.split(|&b| b == b'\n') {
        if out.len() == max {
            break;
        }
        if line.is_empty() {
            continue;
        }
        match record_from(line, token).map(|r| chain.link(r)) {
            Some(Ok(e)) => out.push(Item::Sealed(Box::new(e))),
            _ => out.push(Item::Raw(line.to_vec())),
        }
    }
    out
}
