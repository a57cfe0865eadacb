//! The event model and its byte encoding.
//!
//! An event is one JSON object on one line. Its first two members are always `seq` and `prev`,
//! its last member is always `hash`; the hash covers the exact bytes of the line with the
//! `,"hash":"…"` member removed (see [`crate::Chain`]). Because the hash covers bytes, not a
//! re-encoding, a verifier never needs to parse an event to check the chain, and any change of
//! any byte is detected.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::chain::{Digest, hash_canonical};
use crate::error::AuditError;

/// Shared, immutable text: cloning a [`Record`] field is a reference-count increment.
pub type Text = Arc<str>;

/// Wall-clock time of an event, nanoseconds since the Unix epoch, written as RFC 3339 UTC
/// with nine fractional digits (`2026-11-26T01:54:19.123456789Z`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Timestamp(pub u64);

impl Timestamp {
    /// The current time.
    pub fn now() -> Timestamp {
        Timestamp::from_system_time(SystemTime::now())
    }

    /// Converts a [`SystemTime`]; times before 1970 clamp to the epoch.
    pub fn from_system_time(t: SystemTime) -> Timestamp {
        let nanos = t
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        Timestamp(u64::try_from(nanos).unwrap_or(u64::MAX))
    }

    /// This time as a [`SystemTime`].
    pub fn to_system_time(self) -> SystemTime {
        UNIX_EPOCH + Duration::from_nanos(self.0)
    }

    /// Parses RFC 3339 (`2026-11-26T01:54:19Z`, fractional seconds optional).
    pub fn parse_rfc3339(s: &str) -> Option<Timestamp> {
        humantime::parse_rfc3339(s)
            .ok()
            .map(Timestamp::from_system_time)
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}",
            humantime::format_rfc3339_nanos(self.to_system_time())
        )
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Timestamp::parse_rfc3339(&s)
            .ok_or_else(|| serde::de::Error::custom("expected an RFC 3339 UTC timestamp"))
    }
}

/// What an event records.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum EventKind {
    /// A policy decision for a guarded call, written before the body runs.
    Decision,
    /// How a guarded call that was allowed ended.
    Outcome,
    /// A file sink cut a torn tail after a crash; `detail` says what was cut.
    Recovered,
    /// The policy was replaced; `detail` holds old and new versions and hashes.
    PolicyReload,
    /// A just-in-time approval was requested.
    ApprovalRequested,
    /// An approver granted a request.
    ApprovalGranted,
    /// An approver rejected a request.
    ApprovalRejected,
    /// A grant was used by the retried call.
    ApprovalConsumed,
    /// An alert was raised (break-glass, denial burst, export spike, sink failure).
    Alert,
    /// A sink rotated to a new file; the chain continues.
    Rotated,
    /// PHI was reached outside a guarded call, or beyond the categories the running action
    /// declared, and refused (`detail.category`, and `action` when inside a call).
    UnguardedAccess,
}

/// How an allowed call ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// The body returned `Ok`.
    Ok,
    /// The body returned `Err`.
    Error,
    /// The body panicked; the panic was resumed after recording.
    Panic,
    /// The future was dropped before it completed.
    Cancelled,
}

impl Outcome {
    /// The wire name (`ok`, `error`, `panic`, `cancelled`).
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Error => "error",
            Outcome::Panic => "panic",
            Outcome::Cancelled => "cancelled",
        }
    }
}

/// A shared empty list (an empty `Arc<[_]>` would otherwise allocate per record).
fn no_roles() -> Arc<[Text]> {
    static EMPTY: std::sync::LazyLock<Arc<[Text]>> =
        std::sync::LazyLock::new(|| Arc::from(Vec::new()));
    EMPTY.clone()
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// The content of an event, as a caller hands it to a sink.
///
/// No field may hold raw PHI: `subject` and anything PHI-like in `detail` are [`crate::AuditKey`]
/// tokens. Field order here is the order on the wire and must never change within a format
/// version (`docs/audit-format.md`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Record {
    /// When it happened.
    pub time: Timestamp,
    /// What kind of event this is.
    pub kind: EventKind,
    /// Correlates the decision and outcome of one call.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<Text>,
    /// The guarded action's name (`clinic::update_diagnosis`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<Text>,
    /// create, read, update, delete, export or disclose.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action_kind: Option<Text>,
    /// The resource type touched (`patient_record`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource: Option<Text>,
    /// The acting principal's unique id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub principal: Option<Text>,
    /// The principal's roles.
    #[serde(default = "no_roles", skip_serializing_if = "<[Text]>::is_empty")]
    pub roles: Arc<[Text]>,
    /// The software agent the principal acted through (`name` or `name/version`, e.g. an
    /// MCP client); absent for a direct call and omitted from the line.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub via: Option<Text>,
    /// The session (e.g. MCP session id) the call belongs to; omitted when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session: Option<Text>,
    /// admin, provider, patient or system.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<Text>,
    /// The principal's jurisdiction (`US-CA`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jurisdiction: Option<Text>,
    /// Purpose of use (HL7 PurposeOfUse name, e.g. `treatment`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub purpose: Option<Text>,
    /// Keyed token of the patient whose PHI is touched; never the raw id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<Text>,
    /// Keyed tokens of every patient a bulk call touches (`subjects = ..`), in call order.
    #[serde(default = "no_roles", skip_serializing_if = "<[Text]>::is_empty")]
    pub subjects: Arc<[Text]>,
    /// How many records the call touches.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<u64>,
    /// allow, deny or approval_required.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decision: Option<Text>,
    /// Id of the rule that decided (absent for the default deny).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule: Option<Text>,
    /// Why, in words a person can act on (never PHI).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<Text>,
    /// The call used emergency (break-glass) access.
    #[serde(default, skip_serializing_if = "is_false")]
    pub break_glass: bool,
    /// The approval request or grant involved.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval: Option<Text>,
    /// Version string of the policy that decided.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy_version: Option<Text>,
    /// SHA-256 of the policy text that decided.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy_hash: Option<Text>,
    /// How the call ended (outcome events).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<Outcome>,
    /// Sequence number, in the guardrail's first sink, of the decision this outcome follows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decision_seq: Option<u64>,
    /// Further facts, by name (reload versions, recovery details, alert kind…).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub detail: BTreeMap<String, String>,
    /// [`crate::AuditKey::fingerprint`] of the key the event's tokens (`subject`,
    /// `subjects`, tokenized `detail` values) were made with, so a reader given a key can
    /// tell a wrong key from an absent patient. Omitted when absent (lines written before
    /// it existed still parse).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_fingerprint: Option<Text>,
}

impl Record {
    /// An empty record of `kind` stamped with the current time.
    pub fn new(kind: EventKind) -> Record {
        Record::at(kind, Timestamp::now())
    }

    /// An empty record of `kind` at `time`.
    pub fn at(kind: EventKind, time: Timestamp) -> Record {
        Record {
            time,
            kind,
            request_id: None,
            action: None,
            action_kind: None,
            resource: None,
            principal: None,
            roles: no_roles(),
            via: None,
            session: None,
            endpoint: None,
            jurisdiction: None,
            purpose: None,
            subject: None,
            subjects: no_roles(),
            count: None,
            decision: None,
            rule: None,
            reason: None,
            break_glass: false,
            approval: None,
            policy_version: None,
            policy_hash: None,
            outcome: None,
            decision_seq: None,
            detail: BTreeMap::new(),
            key_fingerprint: None,
        }
    }

    /// Adds a `detail` entry (builder style).
    pub fn with_detail(mut self, key: impl Into<String>, value: impl Into<String>) -> Record {
        self.detail.insert(key.into(), value.into());
        self
    }
}

/// Length of the fixed suffix `,"hash":"<64 hex>"}`.
pub(crate) const HASH_SUFFIX_LEN: usize = 9 + 64 + 2;

/// A record serialized once, before its position in a chain is known (its JSON object; the
/// line splices in its members after `seq` and `prev`).
pub(crate) struct EncodedRecord {
    record: Record,
    members: Vec<u8>,
}

impl EncodedRecord {
    /// Serializes `record`.
    pub(crate) fn new(record: Record) -> Result<EncodedRecord, AuditError> {
        let mut members = Vec::with_capacity(512);
        serde_json::to_writer(&mut members, &record)
            .map_err(|e| AuditError::Encode(e.to_string()))?;
        // The record always serializes as a non-empty object; its opening brace is skipped
        // when it is spliced into a line.
        if members.first() != Some(&b'{') {
            return Err(AuditError::Encode("record is not a JSON object".into()));
        }
        Ok(EncodedRecord { record, members })
    }
}

/// One sealed link of the chain: a [`Record`] with its position, its link and its hash.
#[derive(Clone, PartialEq)]
pub struct AuditEvent {
    /// Position in the trail, from 0, contiguous.
    pub seq: u64,
    /// Hash of the event before ([`crate::GENESIS`] for the first).
    pub prev: Digest,
    /// What was recorded.
    pub record: Record,
    /// `SHA-256(0x00 || line without the hash member)`.
    pub hash: Digest,
    line: String,
}

impl fmt::Debug for AuditEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuditEvent")
            .field("seq", &self.seq)
            .field("prev", &self.prev)
            .field("record", &self.record)
            .field("hash", &self.hash)
            .finish()
    }
}

/// Why a line is not an event.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ParseEventError(pub String);

impl AuditEvent {
    /// Encodes `record` at `seq` after `prev` and computes its hash.
    ///
    /// `seq` `u64::MAX` is refused: no event could follow it, and no line may carry it.
    pub fn seal(seq: u64, prev: Digest, record: Record) -> Result<AuditEvent, AuditError> {
        AuditEvent::seal_encoded(seq, prev, EncodedRecord::new(record)?)
    }

    /// [`AuditEvent::seal`] of a record already serialized: only the position, the link
    /// and the hash are computed here (the file sink serializes outside its lock).
    pub(crate) fn seal_encoded(
        seq: u64,
        prev: Digest,
        encoded: EncodedRecord,
    ) -> Result<AuditEvent, AuditError> {
        if seq == u64::MAX {
            return Err(AuditError::Encode(
                "the sequence numbers are exhausted (seq u64::MAX is reserved)".into(),
            ));
        }
        let EncodedRecord { record, members } = encoded;
        let mut body = Vec::with_capacity(members.len() + 96 + HASH_SUFFIX_LEN);
        body.extend_from_slice(b"{\"seq\":");
        body.extend_from_slice(seq.to_string().as_bytes());
        body.extend_from_slice(b",\"prev\":\"");
        body.extend_from_slice(prev.to_hex().as_bytes());
        body.extend_from_slice(b"\",");
        body.extend_from_slice(members.get(1..).unwrap_or_default());
        let hash = hash_canonical(&body);
        body.pop(); // the closing brace
        body.extend_from_slice(b",\"hash\":\"");
        body.extend_from_slice(hash.to_hex().as_bytes());
        body.extend_from_slice(b"\"}");
        let line = String::from_utf8(body).map_err(|e| AuditError::Encode(e.to_string()))?;
        Ok(AuditEvent {
            seq,
            prev,
            record,
            hash,
            line,
        })
    }

    /// The exact line (without newline) this event is stored as.
    pub fn line(&self) -> &str {
        &self.line
    }

    /// Parses one stored line. Does not check the hash: use [`crate::verify_lines`] for that.
    pub fn parse(line: &str) -> Result<AuditEvent, ParseEventError> {
        let head = parse_head(line.as_bytes())?;
        let record_json = format!("{{{}}}", &line[head.record_start..head.record_end]);
        let record: Record = serde_json::from_str(&record_json)
            .map_err(|e| ParseEventError(format!("invalid event: {e}")))?;
        Ok(AuditEvent {
            seq: head.seq,
            prev: head.prev,
            record,
            hash: head.hash,
            line: line.to_owned(),
        })
    }
}

/// The fixed-position parts of a line, found without a JSON parser.
#[derive(Debug, Clone, Copy)]
pub(crate) struct LineHead {
    pub seq: u64,
    pub prev: Digest,
    pub hash: Digest,
    /// Byte range of the record members (between `"prev":"…",` and `,"hash"`).
    pub record_start: usize,
    pub record_end: usize,
}

/// Splits a line into `seq`, `prev`, record members and `hash`, strictly.
pub(crate) fn parse_head(line: &[u8]) -> Result<LineHead, ParseEventError> {
    const SEQ: &[u8] = b"{\"seq\":";
    const PREV: &[u8] = b",\"prev\":\"";
    const HASH: &[u8] = b",\"hash\":\"";
    let err = |m: &str| ParseEventError(m.to_owned());
    let rest = line
        .strip_prefix(SEQ)
        .ok_or_else(|| err("line does not start with `{\"seq\":`"))?;
    let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
    if digits == 0 || (digits > 1 && rest[0] == b'0') || digits > 20 {
        return Err(err("`seq` is not a canonical unsigned integer"));
    }
    let seq: u64 = std::str::from_utf8(&rest[..digits])
        .ok()
        .and_then(|s| s.parse().ok())
        // u64::MAX is reserved (no event can follow it): refusing it here keeps every
        // `seq + 1` of the verifier and the chain in range.
        .filter(|&s| s != u64::MAX)
        .ok_or_else(|| err("`seq` is out of range"))?;
    let rest = rest[digits..]
        .strip_prefix(PREV)
        .ok_or_else(|| err("`prev` does not follow `seq`"))?;
    if rest.len() < 66 || rest[64] != b'"' || rest[65] != b',' {
        return Err(err("`prev` is not 64 hex characters"));
    }
    let prev = std::str::from_utf8(&rest[..64])
        .ok()
        .and_then(Digest::from_hex)
        .ok_or_else(|| err("`prev` is not 64 lowercase hex characters"))?;
    let record_start = line.len() - rest.len() + 66;
    if line.len() < record_start + HASH_SUFFIX_LEN {
        return Err(err("line is too short to hold a record and a hash"));
    }
    let suffix_at = line.len() - HASH_SUFFIX_LEN;
    let suffix = &line[suffix_at..];
    if !suffix.starts_with(HASH) || !suffix.ends_with(b"\"}") {
        return Err(err("line does not end with the `hash` member"));
    }
    let hash = std::str::from_utf8(&suffix[HASH.len()..HASH.len() + 64])
        .ok()
        .and_then(Digest::from_hex)
        .ok_or_else(|| err("`hash` is not 64 lowercase hex characters"))?;
    Ok(LineHead {
        seq,
        prev,
        hash,
        record_start,
        record_end: suffix_at,
    })
}

/// Recomputes the hash of a stored line from its bytes.
pub(crate) fn hash_of_line(line: &[u8], head: &LineHead) -> Digest {
    use sha2::{Digest as _, Sha256};
    let mut h = Sha256::new();
    h.update([crate::chain::EVENT_PREFIX]);
    h.update(&line[..head.record_end]);
    h.update(b"}");
    Digest(h.finalize().into())
}
