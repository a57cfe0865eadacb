//! Just-in-time approvals: a second person opens a risky call, once, for that exact call.
//!
//! Owns the request and grant types, the store trait and its in-memory and PostgreSQL
//! stores, the store-agnostic checks (`checks`), and the workflow (`flow`: opening,
//! deciding, consuming, and the audit event of each step).
//! May use: model, policy (labels of the verdict), telemetry; only `flow` uses the guardrail
//! (its trail, clock and store). The types, checks and stores use no other room.

mod checks;
pub(crate) mod flow;
mod memory;
#[cfg(feature = "postgres")]
mod postgres;

pub use memory::MemoryApprovalStore;
#[cfg(feature = "postgres")]
#[cfg_attr(docsrs, doc(cfg(feature = "postgres")))]
pub use postgres::{PgApprovalStore, PgApprovalStoreOptions};

use std::fmt;
use std::sync::Arc;

use guardrail_audit::Timestamp;

/// Identifies an approval request (and, once granted, its grant).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ApprovalId(Arc<str>);

impl ApprovalId {
    /// Wraps an id received from a client (e.g. a retry header).
    pub fn new(id: impl AsRef<str>) -> ApprovalId {
        ApprovalId(Arc::from(id.as_ref()))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ApprovalId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for ApprovalId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ApprovalId({})", self.0)
    }
}

/// The exact call a grant opens: a grant for 150 records of one patient opens neither
/// 10,000 records nor another patient, nor the same call under another purpose, through
/// another endpoint, decided by another rule (and so revealing other fields), with other
/// recorded arguments, or under another policy.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ApprovalBinding {
    /// The action's name.
    pub action: Arc<str>,
    /// The requesting principal's id.
    pub principal: Arc<str>,
    /// Keyed token of the subject (never the raw id).
    pub subject: Option<Arc<str>>,
    /// Record count.
    pub count: Option<u64>,
    /// Everything else that decides and shapes the call.
    pub scope: CallScope,
}

/// What besides who, whom and how many decides and shapes a call, as an approver sees it
/// and a grant is bound to it. Labels and keyed tokens only, never PHI.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct CallScope {
    /// The purpose of use (`treatment`, `research`…).
    pub purpose: Option<Arc<str>>,
    /// The endpoint the call came through.
    pub endpoint: Option<Arc<str>>,
    /// The agent the principal acted through (`None`: the person directly), so a grant a
    /// person asked for cannot be spent by an assistant acting for them, nor the reverse.
    #[serde(default)]
    pub agent: Option<Arc<str>>,
    /// The session (e.g. an MCP session) the call was asked for in (`None`: none), so a
    /// grant is spent only in the session that asked for it, and every approval step is
    /// recorded with that session (its replay shows them). Left out of the JSON when absent,
    /// so scopes stored before it existed compare equal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session: Option<Arc<str>>,
    /// The id of the rule that decided (and so the call's `reveal`).
    pub rule: Option<Arc<str>>,
    /// The categories the call may see unmasked, comma-separated.
    pub reveal: Arc<str>,
    /// One keyed digest of the call's `record = [..]` argument tokens (`None` when the action
    /// records none).
    pub arguments: Option<Arc<str>>,
    /// SHA-256 of the policy text that decided: any policy change invalidates pending grants.
    pub policy_hash: Arc<str>,
}

impl CallScope {
    /// The first field in which `self` and `other` differ, by name.
    pub fn difference(&self, other: &CallScope) -> Option<&'static str> {
        if self.purpose != other.purpose {
            Some("purpose")
        } else if self.endpoint != other.endpoint {
            Some("endpoint")
        } else if self.agent != other.agent {
            Some("agent")
        } else if self.session != other.session {
            Some("session")
        } else if self.rule != other.rule {
            Some("rule")
        } else if self.reveal != other.reveal {
            Some("reveal")
        } else if self.arguments != other.arguments {
            Some("recorded arguments")
        } else if self.policy_hash != other.policy_hash {
            Some("policy")
        } else {
            None
        }
    }

    /// The scope as one line of JSON (how stores keep it).
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// Reads [`CallScope::to_json`] back.
    pub fn from_json(text: &str) -> Result<CallScope, ApprovalError> {
        serde_json::from_str(text)
            .map_err(|e| ApprovalError::Store(format!("unreadable approval scope: {e}")))
    }
}

/// Where a request stands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ApprovalState {
    /// Waiting for an approver.
    Pending,
    /// Granted by `approver`; usable once until `expires_at`.
    Granted {
        /// The approver's principal id.
        approver: Arc<str>,
        /// When.
        at: Timestamp,
    },
    /// Rejected by `approver`; can never be granted.
    Rejected {
        /// The approver's principal id.
        approver: Arc<str>,
        /// When.
        at: Timestamp,
    },
    /// Used by the retried call.
    Consumed {
        /// When.
        at: Timestamp,
    },
}

impl ApprovalState {
    /// `pending`, `granted`, `rejected` or `consumed`.
    pub fn as_str(&self) -> &'static str {
        match self {
            ApprovalState::Pending => "pending",
            ApprovalState::Granted { .. } => "granted",
            ApprovalState::Rejected { .. } => "rejected",
            ApprovalState::Consumed { .. } => "consumed",
        }
    }
}

/// A request for approval of one call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApprovalRequest {
    /// Its id.
    pub id: ApprovalId,
    /// The action's name (same as `binding.action`).
    pub action: Arc<str>,
    /// The exact call it opens.
    pub binding: ApprovalBinding,
    /// When it was requested.
    pub requested_at: Timestamp,
    /// When it (and any grant of it) expires.
    pub expires_at: Timestamp,
    /// Where it stands.
    pub state: ApprovalState,
}

/// Why an approval step was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ApprovalError {
    /// No such request.
    #[error("approval `{0}` does not exist")]
    NotFound(String),
    /// The approver is the requester (separation of duties).
    #[error("approval `{0}` cannot be decided by the person who requested it")]
    SelfApproval(String),
    /// The approver holds none of the approver roles the policy names.
    #[error("principal `{principal}` holds none of the approver roles ({roles})")]
    NotApprover {
        /// The would-be approver.
        principal: String,
        /// The roles the policy names.
        roles: String,
    },
    /// The request was already granted, rejected or used.
    #[error("approval `{id}` is {state}, not pending")]
    NotPending {
        /// The request.
        id: String,
        /// Its state.
        state: &'static str,
    },
    /// The request or grant expired.
    #[error("approval `{0}` has expired")]
    Expired(String),
    /// The grant was already used.
    #[error("approval `{0}` was already used")]
    AlreadyUsed(String),
    /// The request was rejected.
    #[error("approval `{0}` was rejected")]
    Rejected(String),
    /// The request is still pending.
    #[error("approval `{0}` has not been granted yet")]
    NotGranted(String),
    /// The grant is bound to a different call.
    #[error("approval `{id}` was granted for a different {what}")]
    Mismatch {
        /// The grant.
        id: String,
        /// `action`, `principal`, `subject`, `count`, `purpose`, `endpoint`, `agent`, `rule`,
        /// `reveal`, `recorded arguments` or `policy`.
        what: &'static str,
    },
    /// The store failed.
    #[error("approval store failed: {0}")]
    Store(String),
}

/// Where approval requests live. Every state change is atomic in the store, so two replicas
/// racing to consume one grant see exactly one success.
pub trait ApprovalStore: Send + Sync + fmt::Debug {
    /// Stores a new pending request.
    fn insert(&self, request: &ApprovalRequest) -> Result<(), ApprovalError>;

    /// Reads a request.
    fn get(&self, id: &ApprovalId) -> Result<Option<ApprovalRequest>, ApprovalError>;

    /// Moves a pending, unexpired request to granted (`grant`) or rejected, atomically.
    /// Role and separation-of-duty checks happen before, in [`crate::Guardrail::approve`].
    fn settle(
        &self,
        id: &ApprovalId,
        approver: &str,
        grant: bool,
        now: Timestamp,
    ) -> Result<ApprovalRequest, ApprovalError>;

    /// Moves a granted, unexpired request whose binding equals `binding` to consumed,
    /// atomically; any other state or binding is an error and changes nothing.
    fn consume(
        &self,
        id: &ApprovalId,
        binding: &ApprovalBinding,
        now: Timestamp,
    ) -> Result<ApprovalRequest, ApprovalError>;

    /// Number of pending requests (for the `approvals pending` gauge).
    fn pending(&self) -> Result<u64, ApprovalError>;

    /// The pending requests that can still be decided at `now` (`expires_at` after it),
    /// oldest first (ties by id), at most `limit` of them: what an approver's page or the
    /// `guardrail approvals list` command shows.
    ///
    /// The default refuses (a store written before listing existed cannot list), so a caller
    /// never mistakes an unsupported store for an empty queue.
    fn list_pending(
        &self,
        now: Timestamp,
        limit: usize,
    ) -> Result<Vec<ApprovalRequest>, ApprovalError> {
        let _ = (now, limit);
        Err(ApprovalError::Store(
            "this approval store cannot list pending requests".to_owned(),
        ))
    }
}
