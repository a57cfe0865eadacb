//! Signed checkpoints: a periodic, signed statement "this log had N events and its head was H".
//!
//! A hash chain alone proves that the events present are the ones written, in order, but not
//! that none were cut from the end, nor that someone with write access did not recompute the
//! whole chain after editing it. A checkpoint, signed with a key the writer of the log does
//! not share with whoever can edit the files (Ed25519), or at least kept apart from them
//! (HMAC-SHA256), closes both gaps: a verifier that finds fewer events than the last
//! checkpoint counts reports a truncated tail, and one that finds a different head at a
//! checkpoint's sequence number reports a rewritten history.
//!
//! A checkpoint is one JSON line in a separate file:
//!
//! ```text
//! {"v":1,"log":"<32 hex>","seq":S,"count":S+1,"head":"<64 hex>","time":"<RFC 3339>","alg":"ed25519","key":"<16 hex>","sig":"<hex>"}
//! ```
//!
//! The signature covers `0x01 || <the line without its ,"sig":"…" member>` (the event hash
//! uses `0x00`, so a checkpoint can never be mistaken for an event). `docs/audit-format.md`
//! has the details.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use ed25519_dalek::{Signature, Signer as _, SigningKey, VerifyingKey};
use hmac::{Hmac, Mac};
use serde::Deserialize;
use sha2::{Digest as _, Sha256};

use crate::chain::Digest;
use crate::event::Timestamp;

type HmacSha256 = Hmac<Sha256>;

/// Domain-separation prefix of the bytes a checkpoint signature covers.
pub(crate) const CHECKPOINT_PREFIX: u8 = 0x01;
/// Domain-separation prefix of key identifiers (never signed, never an event).
const KEY_ID_PREFIX: u8 = 0x02;
/// The only checkpoint format version this crate writes and reads.
pub const CHECKPOINT_VERSION: u64 = 1;

const SIG_MEMBER: &[u8] = b",\"sig\":\"";

/// One signed statement about a log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Checkpoint {
    /// The log's identifier (from its manifest), so a checkpoint of another log is recognized.
    pub log: String,
    /// Sequence number of the last event covered.
    pub seq: u64,
    /// Number of events covered (`seq + 1`: events are numbered from 0).
    pub count: u64,
    /// Hash of the event at `seq`.
    pub head: Digest,
    /// When the checkpoint was signed.
    pub time: Timestamp,
    /// Identifier of the key that signed it.
    pub key: String,
}

/// Which signature scheme a key uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CheckpointAlgorithm {
    /// Ed25519 (`ed25519`): verifiable with the public key alone.
    Ed25519,
    /// HMAC-SHA256 (`hmac-sha256`): the verifier needs the same secret key.
    HmacSha256,
}

impl CheckpointAlgorithm {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            CheckpointAlgorithm::Ed25519 => "ed25519",
            CheckpointAlgorithm::HmacSha256 => "hmac-sha256",
        }
    }
}

/// Why a key cannot be used for checkpoints.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CheckpointKeyError {
    /// An HMAC key shorter than 16 bytes.
    #[error("an HMAC checkpoint key needs at least 16 bytes, got {0}")]
    TooShort(usize),
    /// Not a valid Ed25519 public key.
    #[error("not a valid Ed25519 public key")]
    InvalidPublicKey,
    /// The key text is not `ed25519:<64 hex>` or `hmac-sha256:<hex>`.
    #[error(
        "a checkpoint key is written `ed25519:<64 hex characters of the public key>` or \
         `hmac-sha256:<hex of the secret key>`"
    )]
    BadText,
}

/// Why one checkpoint line is not acceptable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CheckpointError {
    /// Not a checkpoint line.
    #[error("not a well-formed checkpoint: {0}")]
    Malformed(String),
    /// A format version this build does not know, on a line whose signature verifies
    /// (an unsigned line is [`CheckpointError::BadSignature`] whatever version it claims).
    #[error("checkpoint format version {0} is not supported (this build reads version 1)")]
    UnsupportedVersion(u64),
    /// Signed with another key (or another algorithm) than the one given.
    #[error(
        "signed with key `{found}` ({found_alg}), not with the given key `{expected}` ({expected_alg})"
    )]
    WrongKey {
        /// Key id written in the checkpoint.
        found: String,
        /// Its algorithm name as written.
        found_alg: String,
        /// Key id of the verifier.
        expected: String,
        /// The verifier's algorithm.
        expected_alg: &'static str,
    },
    /// The signature does not verify: the checkpoint was altered or forged.
    #[error("the signature does not verify (the checkpoint was altered or forged)")]
    BadSignature,
}

#[derive(Clone)]
enum SigningSecret {
    Ed25519(Box<SigningKey>),
    Hmac(HmacSha256),
}

/// Signs checkpoints. Its `Debug` never prints the key.
///
/// ```
/// use guardrail_audit::CheckpointSigner;
/// let signer = CheckpointSigner::ed25519_from_seed(&[7u8; 32]);
/// let verifier = signer.verifier();
/// assert_eq!(signer.key_id(), verifier.key_id());
/// assert!(verifier.key_text().starts_with("ed25519:"));
/// ```
#[derive(Clone)]
pub struct CheckpointSigner {
    secret: SigningSecret,
    key_id: String,
}

impl fmt::Debug for CheckpointSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CheckpointSigner")
            .field("alg", &self.algorithm().as_str())
            .field("key", &self.key_id)
            .finish_non_exhaustive()
    }
}

fn ed25519_key_id(public: &VerifyingKey) -> String {
    let mut h = Sha256::new();
    h.update([KEY_ID_PREFIX]);
    h.update(b"ed25519");
    h.update(public.as_bytes());
    hex::encode(&h.finalize()[..8])
}

fn hmac_key_id(mac: &HmacSha256) -> String {
    let mut m = mac.clone();
    m.update(&[KEY_ID_PREFIX]);
    m.update(b"guardrail-audit checkpoint key id");
    hex::encode(&m.finalize().into_bytes()[..8])
}

fn hmac_from(key: &[u8]) -> Result<HmacSha256, CheckpointKeyError> {
    if key.len() < 16 {
        return Err(CheckpointKeyError::TooShort(key.len()));
    }
    HmacSha256::new_from_slice(key).map_err(|_| CheckpointKeyError::TooShort(key.len()))
}

impl CheckpointSigner {
    /// An Ed25519 signer from its 32-byte secret seed.
    pub fn ed25519_from_seed(seed: &[u8; 32]) -> CheckpointSigner {
        let key = SigningKey::from_bytes(seed);
        let key_id = ed25519_key_id(&key.verifying_key());
        CheckpointSigner {
            secret: SigningSecret::Ed25519(Box::new(key)),
            key_id,
        }
    }

    /// An HMAC-SHA256 signer from a secret key of at least 16 bytes.
    pub fn hmac_sha256(key: &[u8]) -> Result<CheckpointSigner, CheckpointKeyError> {
        let mac = hmac_from(key)?;
        let key_id = hmac_key_id(&mac);
        Ok(CheckpointSigner {
            secret: SigningSecret::Hmac(mac),
            key_id,
        })
    }

    /// The scheme.
    pub fn algorithm(&self) -> CheckpointAlgorithm {
        match self.secret {
            SigningSecret::Ed25519(_) => CheckpointAlgorithm::Ed25519,
            SigningSecret::Hmac(_) => CheckpointAlgorithm::HmacSha256,
        }
    }

    /// The key identifier written into each checkpoint (16 hex characters; reveals nothing
    /// about an HMAC key).
    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    /// The verifier for this signer's checkpoints.
    pub fn verifier(&self) -> CheckpointVerifier {
        match &self.secret {
            SigningSecret::Ed25519(k) => CheckpointVerifier {
                key: VerifyingSecret::Ed25519(k.verifying_key()),
                key_id: self.key_id.clone(),
            },
            SigningSecret::Hmac(m) => CheckpointVerifier {
                key: VerifyingSecret::Hmac(m.clone()),
                key_id: self.key_id.clone(),
            },
        }
    }

    /// Encodes and signs `cp` as one line (without newline).
    pub fn sign(&self, log: &str, seq: u64, head: Digest, time: Timestamp) -> String {
        let mut body = format!(
            "{{\"v\":{CHECKPOINT_VERSION},\"log\":{},\"seq\":{seq},\"count\":{},\"head\":\"{}\",\"time\":\"{time}\",\"alg\":\"{}\",\"key\":\"{}\"",
            json_string(log),
            seq.saturating_add(1),
            head.to_hex(),
            self.algorithm().as_str(),
            self.key_id,
        );
        let sig = self.signature_hex(CHECKPOINT_PREFIX, body.as_bytes());
        body.push_str(",\"sig\":\"");
        body.push_str(&sig);
        body.push_str("\"}");
        body
    }
}

impl CheckpointSigner {
    /// Signs `prefix || body || "}"` and returns the signature in hex: the one signing
    /// primitive of checkpoints (prefix `0x01`) and Merkle tree heads (`0x03`).
    pub(crate) fn signature_hex(&self, prefix: u8, body: &[u8]) -> String {
        match &self.secret {
            SigningSecret::Ed25519(k) => {
                hex::encode(k.sign(&signed_bytes(prefix, body)).to_bytes())
            }
            SigningSecret::Hmac(m) => {
                let mut m = m.clone();
                m.update(&[prefix]);
                m.update(body);
                m.update(b"}");
                hex::encode(m.finalize().into_bytes())
            }
        }
    }
}

fn json_string(s: &str) -> String {
    // Serializing a &str cannot fail.
    serde_json::to_string(s).unwrap_or_else(|_| "\"\"".to_owned())
}

/// `prefix || body || "}"`: the bytes a signature covers.
fn signed_bytes(prefix: u8, body: &[u8]) -> Vec<u8> {
    let mut msg = Vec::with_capacity(body.len() + 2);
    msg.push(prefix);
    msg.extend_from_slice(body);
    msg.push(b'}');
    msg
}

#[derive(Clone)]
enum VerifyingSecret {
    Ed25519(VerifyingKey),
    Hmac(HmacSha256),
}

/// Checks checkpoint signatures. Its `Debug` never prints an HMAC key.
///
/// ```
/// use guardrail_audit::{CheckpointSigner, Digest, Timestamp};
/// let signer = CheckpointSigner::hmac_sha256(b"sixteen or more bytes").unwrap();
/// let line = signer.sign("log-1", 9, Digest([3; 32]), Timestamp(0));
/// let cp = signer.verifier().verify_line(line.as_bytes()).unwrap();
/// assert_eq!((cp.seq, cp.count), (9, 10));
/// let tampered = line.replace("\"seq\":9", "\"seq\":8");
/// assert!(signer.verifier().verify_line(tampered.as_bytes()).is_err());
/// ```
#[derive(Clone)]
pub struct CheckpointVerifier {
    key: VerifyingSecret,
    key_id: String,
}

impl fmt::Debug for CheckpointVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CheckpointVerifier")
            .field("alg", &self.algorithm().as_str())
            .field("key", &self.key_id)
            .finish_non_exhaustive()
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CheckpointBody {
    v: u64,
    log: String,
    seq: u64,
    count: u64,
    head: Digest,
    time: Timestamp,
    /// Checked (with `key`) by [`SignerOnly`] before the signature; named here so the strict
    /// parse accepts it.
    #[serde(rename = "alg")]
    _alg: String,
    key: String,
}

#[derive(Deserialize)]
struct VersionOnly {
    v: u64,
}

/// The members that say who signed a line, read before anything else is trusted.
#[derive(Deserialize)]
struct SignerOnly {
    alg: String,
    key: String,
}

impl CheckpointVerifier {
    /// A verifier from an Ed25519 public key.
    pub fn ed25519(public_key: &[u8; 32]) -> Result<CheckpointVerifier, CheckpointKeyError> {
        let key = VerifyingKey::from_bytes(public_key)
            .map_err(|_| CheckpointKeyError::InvalidPublicKey)?;
        Ok(CheckpointVerifier {
            key_id: ed25519_key_id(&key),
            key: VerifyingSecret::Ed25519(key),
        })
    }

    /// A verifier from the HMAC secret key the checkpoints were signed with.
    pub fn hmac_sha256(key: &[u8]) -> Result<CheckpointVerifier, CheckpointKeyError> {
        let mac = hmac_from(key)?;
        Ok(CheckpointVerifier {
            key_id: hmac_key_id(&mac),
            key: VerifyingSecret::Hmac(mac),
        })
    }

    /// Parses the key text a person passes on a command line: `ed25519:<64 hex characters of
    /// the public key>` or `hmac-sha256:<hex of the secret key>`.
    pub fn from_key_text(text: &str) -> Result<CheckpointVerifier, CheckpointKeyError> {
        let text = text.trim();
        if let Some(h) = text.strip_prefix("ed25519:") {
            let mut public = [0u8; 32];
            hex::decode_to_slice(h, &mut public).map_err(|_| CheckpointKeyError::BadText)?;
            CheckpointVerifier::ed25519(&public)
        } else if let Some(h) = text.strip_prefix("hmac-sha256:") {
            let key = hex::decode(h).map_err(|_| CheckpointKeyError::BadText)?;
            CheckpointVerifier::hmac_sha256(&key)
        } else {
            Err(CheckpointKeyError::BadText)
        }
    }

    /// The key as text for [`CheckpointVerifier::from_key_text`]. For Ed25519 this is the
    /// public key; for HMAC only the key id is shown (`hmac-sha256-id:<id>`), never the secret.
    pub fn key_text(&self) -> String {
        match &self.key {
            VerifyingSecret::Ed25519(k) => format!("ed25519:{}", hex::encode(k.as_bytes())),
            VerifyingSecret::Hmac(_) => format!("hmac-sha256-id:{}", self.key_id),
        }
    }

    /// The scheme.
    pub fn algorithm(&self) -> CheckpointAlgorithm {
        match self.key {
            VerifyingSecret::Ed25519(_) => CheckpointAlgorithm::Ed25519,
            VerifyingSecret::Hmac(_) => CheckpointAlgorithm::HmacSha256,
        }
    }

    /// The key identifier checkpoints signed by this key carry.
    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    /// Checks the signature of a signed line (`…,"sig":"<hex>"}`) over
    /// `prefix || <the line without its sig member> || "}"` and returns the line without its
    /// `sig` member as a JSON object. The signer (`alg`, `key`) is checked first, so a line
    /// of another key is `WrongKey`, and nothing else in it is trusted before the signature.
    pub(crate) fn verified_json(
        &self,
        prefix: u8,
        line: &[u8],
    ) -> Result<Vec<u8>, CheckpointError> {
        let malformed = |m: &str| CheckpointError::Malformed(m.to_owned());
        let sig_at = line
            .windows(SIG_MEMBER.len())
            .rposition(|w| w == SIG_MEMBER)
            .ok_or_else(|| malformed("no `sig` member"))?;
        let body = &line[..sig_at];
        let sig_hex = line[sig_at + SIG_MEMBER.len()..]
            .strip_suffix(b"\"}")
            .ok_or_else(|| malformed("the line does not end with the `sig` member"))?;
        let mut json = body.to_vec();
        json.push(b'}');
        let signer: SignerOnly =
            serde_json::from_slice(&json).map_err(|e| CheckpointError::Malformed(e.to_string()))?;
        if signer.alg != self.algorithm().as_str() || signer.key != self.key_id {
            return Err(CheckpointError::WrongKey {
                found: signer.key,
                found_alg: signer.alg,
                expected: self.key_id.clone(),
                expected_alg: self.algorithm().as_str(),
            });
        }
        let sig_str = std::str::from_utf8(sig_hex).map_err(|_| malformed("`sig` is not hex"))?;
        let ok = match &self.key {
            VerifyingSecret::Ed25519(k) => {
                let mut raw = [0u8; 64];
                hex::decode_to_slice(sig_str, &mut raw)
                    .map_err(|_| malformed("`sig` is not 128 hex characters"))?;
                k.verify_strict(&signed_bytes(prefix, body), &Signature::from_bytes(&raw))
                    .is_ok()
            }
            VerifyingSecret::Hmac(m) => {
                let raw = hex::decode(sig_str).map_err(|_| malformed("`sig` is not hex"))?;
                let mut m = m.clone();
                m.update(&[prefix]);
                m.update(body);
                m.update(b"}");
                m.verify_slice(&raw).is_ok()
            }
        };
        if !ok {
            return Err(CheckpointError::BadSignature);
        }
        Ok(json)
    }

    /// Parses one checkpoint line (without newline) and checks its signature.
    pub fn verify_line(&self, line: &[u8]) -> Result<Checkpoint, CheckpointError> {
        let malformed = |m: &str| CheckpointError::Malformed(m.to_owned());
        let json = self.verified_json(CHECKPOINT_PREFIX, line)?;
        let parsed: CheckpointBody = match serde_json::from_slice(&json) {
            Ok(p) => p,
            Err(e) => {
                // Signed by this key: a newer version may have other members.
                if let Ok(VersionOnly { v }) = serde_json::from_slice(&json) {
                    if v != CHECKPOINT_VERSION {
                        return Err(CheckpointError::UnsupportedVersion(v));
                    }
                }
                return Err(CheckpointError::Malformed(e.to_string()));
            }
        };
        if parsed.v != CHECKPOINT_VERSION {
            return Err(CheckpointError::UnsupportedVersion(parsed.v));
        }
        // `checked_add`: a checkpoint at seq u64::MAX would count 2^64 events; none verifies.
        if parsed.seq.checked_add(1) != Some(parsed.count) {
            return Err(malformed("`count` is not `seq` + 1"));
        }
        Ok(Checkpoint {
            log: parsed.log,
            seq: parsed.seq,
            count: parsed.count,
            head: parsed.head,
            time: parsed.time,
            key: parsed.key,
        })
    }
}

/// When and where a [`crate::FileSink`] writes checkpoints.
#[derive(Debug, Clone)]
pub struct CheckpointOptions {
    /// The signing key.
    pub signer: CheckpointSigner,
    /// A checkpoint at least every this many durable events (0: no count trigger).
    pub every_events: u64,
    /// A checkpoint at least this often while new events arrive (zero: no time trigger).
    pub every: Duration,
    /// The checkpoint file (default: `checkpoints.jsonl` in the sink's directory). Keeping it
    /// on other storage (another host, WORM) makes it harder to rewrite together with the log.
    pub path: Option<PathBuf>,
}

impl CheckpointOptions {
    /// Checkpoints every 1,000 events or 10 seconds, in the sink's directory.
    pub fn new(signer: CheckpointSigner) -> CheckpointOptions {
        CheckpointOptions {
            signer,
            every_events: 1000,
            every: Duration::from_secs(10),
            path: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_answer_ed25519_checkpoint() {
        // Fixed seed, fixed content: Ed25519 is deterministic, so the line is fixed. A change
        // of the checkpoint encoding must change this test and docs/audit-format.md together.
        let signer = CheckpointSigner::ed25519_from_seed(&[1u8; 32]);
        let line = signer.sign(
            "00112233445566778899aabbccddeeff",
            41,
            Digest([0xab; 32]),
            Timestamp(1_800_000_000_000_000_000),
        );
        assert_eq!(line, KAT_CHECKPOINT);
        let cp = signer.verifier().verify_line(line.as_bytes()).unwrap();
        assert_eq!(cp.count, 42);
    }

    const KAT_CHECKPOINT: &str = r#"{"v":1,"log":"00112233445566778899aabbccddeeff","seq":41,"count":42,"head":"abababababababababababababababababababababababababababababababab","time":"2027-01-15T08:00:00.000000000Z","alg":"ed25519","key":"23a0249ccb8e758c","sig":"7b3422065ca549a207814799225a2a4c1044e0faefcb7f98f1ad1d2691e080779b07e217f2515aae1dc83c4c45113c1426839f86093e3a4c9535bf933fe1df0b"}"#;

    #[test]
    fn every_altered_byte_of_a_checkpoint_is_rejected() {
        let signer = CheckpointSigner::ed25519_from_seed(&[2u8; 32]);
        let line = signer.sign("log", 3, Digest([1; 32]), Timestamp(5));
        let v = signer.verifier();
        for i in 0..line.len() {
            let mut b = line.clone().into_bytes();
            b[i] ^= 0x01;
            assert!(v.verify_line(&b).is_err(), "byte {i} flipped was accepted");
        }
    }

    #[test]
    fn another_key_is_named_as_such() {
        let a = CheckpointSigner::hmac_sha256(b"key a key a key a").unwrap();
        let b = CheckpointSigner::hmac_sha256(b"key b key b key b").unwrap();
        let line = a.sign("log", 0, Digest([0; 32]), Timestamp(0));
        match b.verifier().verify_line(line.as_bytes()) {
            Err(CheckpointError::WrongKey {
                found, expected, ..
            }) => {
                assert_eq!(found, a.key_id());
                assert_eq!(expected, b.key_id());
            }
            other => panic!("expected WrongKey, got {other:?}"),
        }
        let e = CheckpointSigner::ed25519_from_seed(&[0; 32]);
        assert!(matches!(
            e.verifier().verify_line(line.as_bytes()),
            Err(CheckpointError::WrongKey { .. })
        ));
    }

    #[test]
    fn a_forged_signature_with_the_right_key_id_is_bad_signature() {
        let a = CheckpointSigner::ed25519_from_seed(&[3; 32]);
        let line = a.sign("log", 0, Digest([0; 32]), Timestamp(0));
        let forged = line.replace("\"seq\":0,\"count\":1", "\"seq\":1,\"count\":2");
        assert_eq!(
            a.verifier().verify_line(forged.as_bytes()),
            Err(CheckpointError::BadSignature)
        );
    }

    #[test]
    fn key_text_round_trips_for_ed25519_and_rejects_garbage() {
        let a = CheckpointSigner::ed25519_from_seed(&[4; 32]);
        let v = CheckpointVerifier::from_key_text(&a.verifier().key_text()).unwrap();
        assert_eq!(v.key_id(), a.key_id());
        let h = CheckpointVerifier::from_key_text("hmac-sha256:000102030405060708090a0b0c0d0e0f")
            .unwrap();
        assert_eq!(h.algorithm(), CheckpointAlgorithm::HmacSha256);
        assert_eq!(
            CheckpointVerifier::from_key_text("rsa:00").unwrap_err(),
            CheckpointKeyError::BadText
        );
        assert_eq!(
            CheckpointVerifier::from_key_text("hmac-sha256:0001").unwrap_err(),
            CheckpointKeyError::TooShort(2)
        );
    }

    #[test]
    fn an_unknown_version_is_unsupported_only_when_signed() {
        let secret = b"sixteen or more bytes of secret";
        let a = CheckpointSigner::hmac_sha256(secret).unwrap();
        let line = a.sign("log", 0, Digest([0; 32]), Timestamp(0));
        // Version changed, signature kept: nobody with the key wrote this line.
        let unsigned = line.replacen("\"v\":1", "\"v\":2", 1);
        assert_eq!(
            a.verifier().verify_line(unsigned.as_bytes()),
            Err(CheckpointError::BadSignature)
        );
        // A version-2 line with members this build does not know, unsigned: still forged.
        let body = format!(
            "{{\"v\":2,\"log\":\"log\",\"novel\":true,\"alg\":\"hmac-sha256\",\"key\":\"{}\"",
            a.key_id()
        );
        let forged = format!("{body},\"sig\":\"{}\"}}", "00".repeat(32));
        assert_eq!(
            a.verifier().verify_line(forged.as_bytes()),
            Err(CheckpointError::BadSignature)
        );
        // The same line signed with the key: a genuine newer format.
        let mut m = HmacSha256::new_from_slice(secret).unwrap();
        m.update(&[CHECKPOINT_PREFIX]);
        m.update(body.as_bytes());
        m.update(b"}");
        let signed = format!(
            "{body},\"sig\":\"{}\"}}",
            hex::encode(m.finalize().into_bytes())
        );
        assert_eq!(
            a.verifier().verify_line(signed.as_bytes()),
            Err(CheckpointError::UnsupportedVersion(2))
        );
    }
}
