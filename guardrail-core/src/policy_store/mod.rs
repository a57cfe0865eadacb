//! One policy for many replicas: a central, versioned policy store on PostgreSQL
//! (feature `postgres`).
//!
//! Owns the store ([`PolicyStore`]: publish, roll back, list, show, the replicas'
//! heartbeats) and the replica side ([`PolicyReplica`]: subscribe, reload, report, alert).
//! May use: policy (to validate what is published and what is applied), guardrail (its
//! reload, which stays the one validate-then-record-then-swap path), alert, telemetry. The
//! guardrail never uses this room: a host starts a replica next to its guardrail.
//!
//! # What is stored
//!
//! Two tables and one notification channel, all named from one prefix (default
//! `guardrail_policy`, see [`PolicyStoreOptions::prefix`]):
//!
//! ```sql
//! CREATE TABLE guardrail_policy_versions (
//!     version        BIGINT PRIMARY KEY,      -- 1, 2, 3… in publishing order
//!     sha256         TEXT NOT NULL,           -- of `body`, as `Policy::sha256`
//!     policy_version TEXT NOT NULL,           -- the text's own `version = ".."`
//!     body           TEXT NOT NULL,           -- the policy text, byte for byte
//!     published_by   TEXT NOT NULL,
//!     published_at   BIGINT NOT NULL,         -- ns since the Unix epoch, the server's clock
//!     rollback_of    BIGINT);                 -- set when this version re-publishes an older one
//! CREATE TABLE guardrail_policy_replicas (    -- one heartbeat row per replica
//!     replica_id TEXT PRIMARY KEY, store_version BIGINT, sha256 TEXT NOT NULL,
//!     policy_version TEXT NOT NULL, state TEXT NOT NULL,   -- `current` | `rejected`
//!     rejected_version BIGINT, detail TEXT, last_seen BIGINT NOT NULL);
//! -- NOTIFY channel `guardrail_policy_published`, payload: the new version number
//! ```
//!
//! Publishing validates the text completely first (the same [`Policy::from_toml_str`] a
//! replica runs); a policy that does not parse or validate is refused with its line and
//! column and nothing is stored. Version numbers are assigned under a transaction-scoped
//! advisory lock, and the `NOTIFY` is sent in the same transaction, so a replica is told
//! only about committed versions. A rollback publishes an older version's text again as a
//! new version (`rollback_of` names the old one): history is never rewritten.
//!
//! # Replicas
//!
//! A [`PolicyReplica`] runs on its own thread with its own runtime (like the PostgreSQL
//! approval store), so it works the same under synchronous and async hosts. It listens on
//! the channel (`LISTEN` through sqlx's `PgListener`, reconnecting after a loss) and also
//! re-checks the newest version every [`PolicyReplicaOptions::recheck`], so a lost
//! notification delays a version by at most one period. The newest version is applied
//! through [`Guardrail`]'s reload: parsed and validated, checked against the guardrail's
//! sinks, recorded as a `policy_reload` event (naming the policy's version and SHA-256, with
//! `store` and `store_version` in its details), then swapped in. After each check the replica
//! writes its heartbeat row and sets the `guardrail_policy_store_version` gauge.
//!
//! Failing closed:
//!
//! - a store the replica cannot reach leaves the policy in force untouched (never a default,
//!   never allow); [`AlertKind::PolicyStoreUnreachable`] is raised once per outage and
//!   [`AlertKind::PolicyStoreRecovered`] when it ends;
//! - a version the replica cannot apply (it does not validate, its text does not match its
//!   SHA-256, it requires a sink this replica lacks) is refused by the reload, which records
//!   and alerts it ([`AlertKind::PolicyReloadRefused`]); the replica does not retry that
//!   version, and its heartbeat says `rejected`, with the version and the reason.
//!
//! # Drift
//!
//! Every replica reads the heartbeat table at each re-check, but only one of them judges
//! drift: the live replica (heartbeat newer than [`PolicyReplicaOptions::live_for`]) with the
//! smallest id. There is no election to run or lose: when that replica stops, its heartbeat
//! ages out and the next smallest id takes over. When live replicas report different
//! versions on consecutive checks for longer than [`PolicyReplicaOptions::drift_after`], it
//! raises one [`AlertKind::PolicyDrift`] naming each version and its replicas; agreement ends
//! the episode. Drift is therefore seen at re-check granularity.
//!
//! [`Policy::from_toml_str`]: crate::Policy::from_toml_str
//! [`Guardrail`]: crate::Guardrail
//! [`AlertKind::PolicyStoreUnreachable`]: crate::AlertKind::PolicyStoreUnreachable
//! [`AlertKind::PolicyStoreRecovered`]: crate::AlertKind::PolicyStoreRecovered
//! [`AlertKind::PolicyReloadRefused`]: crate::AlertKind::PolicyReloadRefused
//! [`AlertKind::PolicyDrift`]: crate::AlertKind::PolicyDrift

mod replica;
mod store;

pub use replica::{PolicyReplica, PolicyReplicaOptions, ReplicaStatus};
pub use store::{PolicyStore, PolicyStoreOptions, ReplicaHeartbeat, StoredPolicy};

use crate::policy::PolicyError;

/// Why a policy store operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PolicyStoreError {
    /// The table prefix is not a plain lowercase identifier.
    #[error(
        "invalid policy store prefix `{0}`: use lowercase letters, digits and `_`, starting \
         with a letter or `_`, at most 40 characters"
    )]
    InvalidPrefix(String),
    /// A name (publisher, replica id) is empty, too long or holds control characters.
    #[error("invalid {what} `{value}`: use 1 to 128 printable characters")]
    InvalidName {
        /// Which name (`publisher`, `replica id`).
        what: &'static str,
        /// The name, with control characters escaped.
        value: String,
    },
    /// The policy does not parse or validate; nothing was stored.
    #[error("policy refused, nothing stored: {0}")]
    Invalid(#[from] PolicyError),
    /// The version asked for does not exist.
    #[error("policy store `{store}` has no version {version}")]
    NoSuchVersion {
        /// The store's prefix.
        store: String,
        /// The version asked for.
        version: u64,
    },
    /// The database failed or did not answer in time.
    #[error("policy store `{store}`: {operation} failed: {detail}")]
    Database {
        /// The store's prefix.
        store: String,
        /// What was being done (`publish`, `read the newest version`…).
        operation: &'static str,
        /// The driver's error (never the URL).
        detail: String,
    },
    /// The replica's thread or runtime could not be started.
    #[error("cannot start the policy replica: {0}")]
    Start(String),
}

/// Checks a publisher or replica name: 1 to 128 characters, none of them a control.
fn check_name(what: &'static str, value: &str) -> Result<(), PolicyStoreError> {
    let ok = !value.trim().is_empty()
        && value.chars().count() <= 128
        && !value.chars().any(char::is_control);
    if ok {
        Ok(())
    } else {
        Err(PolicyStoreError::InvalidName {
            what,
            value: value
                .chars()
                .flat_map(char::escape_default)
                .take(200)
                .collect(),
        })
    }
}
