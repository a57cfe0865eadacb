//! The store itself: versions in, versions out, heartbeats.

use std::fmt;
use std::time::Duration;

use guardrail_audit::Timestamp;
use sqlx::postgres::{PgPool, PgPoolOptions, PgRow};
use sqlx::{Connection as _, Row as _};

use super::{PolicyStoreError, check_name};
use crate::policy::Policy;

/// The server's clock in nanoseconds since the Unix epoch (microsecond precision), so that
/// every replica's heartbeat is judged by one clock.
const NOW_NS: &str = "((extract(epoch from clock_timestamp()) * 1000000)::bigint * 1000)";

/// Options of [`PolicyStore::connect`].
#[derive(Debug, Clone)]
pub struct PolicyStoreOptions {
    prefix: String,
    max_connections: u32,
    timeout: Duration,
}

impl Default for PolicyStoreOptions {
    fn default() -> PolicyStoreOptions {
        PolicyStoreOptions {
            prefix: "guardrail_policy".into(),
            max_connections: 2,
            timeout: Duration::from_secs(5),
        }
    }
}

impl PolicyStoreOptions {
    /// Defaults: prefix `guardrail_policy`, 2 connections, 5 s per operation.
    pub fn new() -> PolicyStoreOptions {
        PolicyStoreOptions::default()
    }

    /// The prefix of the tables (`<prefix>_versions`, `<prefix>_replicas`) and of the
    /// notification channel (`<prefix>_published`): lowercase letters, digits and `_`,
    /// checked by [`PolicyStore::connect`]. Use `schema.` in the connection's `search_path`
    /// rather than here.
    pub fn prefix(mut self, prefix: impl Into<String>) -> PolicyStoreOptions {
        self.prefix = prefix.into();
        self
    }

    /// Size of the connection pool (at least 1).
    pub fn max_connections(mut self, n: u32) -> PolicyStoreOptions {
        self.max_connections = n.max(1);
        self
    }

    /// How long one operation may take before it fails.
    pub fn timeout(mut self, timeout: Duration) -> PolicyStoreOptions {
        self.timeout = timeout;
        self
    }

    pub(crate) fn get_timeout(&self) -> Duration {
        self.timeout
    }
}

fn valid_prefix(prefix: &str) -> bool {
    let mut chars = prefix.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_lowercase() || c == '_')
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        && prefix.len() <= 40
}

/// One stored version.
#[derive(Clone, PartialEq, Eq)]
pub struct StoredPolicy {
    /// The store's version number (1, 2, 3… in publishing order).
    pub version: u64,
    /// SHA-256 (hex) of `text`, as [`Policy::sha256`] computes it.
    pub sha256: String,
    /// The policy's own `version = ".."`.
    pub policy_version: String,
    /// The policy text, byte for byte (empty in [`PolicyStore::list`]).
    pub text: String,
    /// Who published it.
    pub published_by: String,
    /// When it was published (the database server's clock).
    pub published_at: Timestamp,
    /// The version this one re-published, when it was a rollback.
    pub rollback_of: Option<u64>,
}

impl fmt::Debug for StoredPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoredPolicy")
            .field("version", &self.version)
            .field("sha256", &self.sha256)
            .field("policy_version", &self.policy_version)
            .field("published_by", &self.published_by)
            .field("published_at", &self.published_at)
            .field("rollback_of", &self.rollback_of)
            .field("text_bytes", &self.text.len())
            .finish()
    }
}

/// One replica's heartbeat row, as [`PolicyStore::replicas`] reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplicaHeartbeat {
    /// The replica's id.
    pub replica_id: String,
    /// The store version it enforces (`None`: none of the store's versions yet).
    pub version: Option<u64>,
    /// SHA-256 of the policy it enforces.
    pub sha256: String,
    /// The policy's own `version = ".."`.
    pub policy_version: String,
    /// `current`, or `rejected` when it refused the newest version it saw.
    pub state: String,
    /// The version it refused, when `state` is `rejected`.
    pub rejected_version: Option<u64>,
    /// Why it refused it.
    pub detail: Option<String>,
    /// When it last wrote this row (the database server's clock).
    pub last_seen: Timestamp,
    /// How long ago that was, by the database server's clock when read.
    pub age: Duration,
}

/// The newest version's number and hash, and its text when the caller does not have it.
pub(crate) struct Head {
    pub(crate) version: u64,
    pub(crate) sha256: String,
    pub(crate) text: Option<String>,
}

/// What a replica writes into its heartbeat row.
pub(crate) struct Beat<'a> {
    pub(crate) replica_id: &'a str,
    pub(crate) version: Option<u64>,
    pub(crate) sha256: &'a str,
    pub(crate) policy_version: &'a str,
    pub(crate) rejected: Option<(u64, &'a str)>,
}

/// A central, versioned policy store in PostgreSQL (see the [module docs](super)).
///
/// ```no_run
/// # async fn demo() -> Result<(), guardrail_core::policy_store::PolicyStoreError> {
/// use guardrail_core::policy_store::{PolicyStore, PolicyStoreOptions};
/// let store = PolicyStore::connect("postgres://guardrail@db/clinic", PolicyStoreOptions::new()).await?;
/// store.ensure_schema().await?;
/// let text = std::fs::read_to_string("policy.toml").unwrap_or_default();
/// let stored = store.publish(&text, "dr-admin").await?;
/// println!("published version {} ({})", stored.version, stored.sha256);
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct PolicyStore {
    pool: PgPool,
    prefix: String,
    timeout: Duration,
}

impl fmt::Debug for PolicyStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PolicyStore")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

impl PolicyStore {
    /// Connects to `url`. Does not create the tables; see [`PolicyStore::ensure_schema`].
    pub async fn connect(
        url: &str,
        options: PolicyStoreOptions,
    ) -> Result<PolicyStore, PolicyStoreError> {
        let store = PolicyStore::connect_lazy(url, &options)?;
        // Fail now, not at the first operation, when the server cannot be reached.
        let mut conn = store.op("connect", store.pool.acquire()).await?;
        store.op("connect", conn.ping()).await?;
        Ok(store)
    }

    /// A store whose connections open on first use (a replica that starts during an outage
    /// must still start, and serve its last good policy).
    pub(crate) fn connect_lazy(
        url: &str,
        options: &PolicyStoreOptions,
    ) -> Result<PolicyStore, PolicyStoreError> {
        if !valid_prefix(&options.prefix) {
            return Err(PolicyStoreError::InvalidPrefix(options.prefix.clone()));
        }
        let pool = PgPoolOptions::new()
            .max_connections(options.max_connections)
            .acquire_timeout(options.timeout)
            .connect_lazy(url)
            .map_err(|e| PolicyStoreError::Database {
                store: options.prefix.clone(),
                operation: "connect",
                // sqlx's URL errors describe the URL's shape, never its password.
                detail: e.to_string(),
            })?;
        Ok(PolicyStore {
            pool,
            prefix: options.prefix.clone(),
            timeout: options.timeout,
        })
    }

    /// The prefix of this store's tables and channel.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The notification channel a publish notifies.
    pub fn channel(&self) -> String {
        format!("{}_published", self.prefix)
    }

    fn versions(&self) -> String {
        format!("{}_versions", self.prefix)
    }

    fn replicas_table(&self) -> String {
        format!("{}_replicas", self.prefix)
    }

    /// Runs `fut` under the store's timeout, naming `operation` in any error.
    async fn op<T, E: fmt::Display>(
        &self,
        operation: &'static str,
        fut: impl Future<Output = Result<T, E>>,
    ) -> Result<T, PolicyStoreError> {
        match tokio::time::timeout(self.timeout, fut).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(self.db(operation, e)),
            Err(_) => Err(self.db(
                operation,
                format!("no answer within {} ms", self.timeout.as_millis()),
            )),
        }
    }

    fn db(&self, operation: &'static str, e: impl fmt::Display) -> PolicyStoreError {
        PolicyStoreError::Database {
            store: self.prefix.clone(),
            operation,
            detail: e.to_string(),
        }
    }

    /// Creates the tables if they do not exist (several replicas may race to do it: an
    /// advisory lock makes them take turns).
    pub async fn ensure_schema(&self) -> Result<(), PolicyStoreError> {
        let versions = self.versions();
        let replicas = self.replicas_table();
        let lock_key = format!("{}:schema", self.prefix);
        self.op("create the tables", async {
            let mut tx = self.pool.begin().await?;
            sqlx::query("SELECT pg_advisory_xact_lock(hashtext($1))")
                .bind(&lock_key)
                .execute(&mut *tx)
                .await?;
            sqlx::query(&format!(
                "CREATE TABLE IF NOT EXISTS {versions} (
                     version BIGINT PRIMARY KEY CHECK (version > 0),
                     sha256 TEXT NOT NULL,
                     policy_version TEXT NOT NULL,
                     body TEXT NOT NULL,
                     published_by TEXT NOT NULL,
                     published_at BIGINT NOT NULL,
                     rollback_of BIGINT REFERENCES {versions} (version))"
            ))
            .execute(&mut *tx)
            .await?;
            sqlx::query(&format!(
                "CREATE TABLE IF NOT EXISTS {replicas} (
                     replica_id TEXT PRIMARY KEY,
                     store_version BIGINT,
                     sha256 TEXT NOT NULL,
                     policy_version TEXT NOT NULL,
                     state TEXT NOT NULL CHECK (state IN ('current', 'rejected')),
                     rejected_version BIGINT,
                     detail TEXT,
                     last_seen BIGINT NOT NULL)"
            ))
            .execute(&mut *tx)
            .await?;
            tx.commit().await
        })
        .await
    }

    /// Validates `text` completely (parse and compile, as a replica will) and stores it as
    /// the next version, published by `who`; replicas are notified when it commits. A policy
    /// that does not validate is refused with its line and column, and nothing is stored.
    pub async fn publish(&self, text: &str, who: &str) -> Result<StoredPolicy, PolicyStoreError> {
        self.insert(text, who, None).await
    }

    /// Publishes the text of `version` again, as a new version recorded as its rollback.
    /// The old text is validated again first (the parser may have grown stricter).
    pub async fn rollback(
        &self,
        version: u64,
        who: &str,
    ) -> Result<StoredPolicy, PolicyStoreError> {
        let old = self
            .get(version)
            .await?
            .ok_or_else(|| PolicyStoreError::NoSuchVersion {
                store: self.prefix.clone(),
                version,
            })?;
        self.insert(&old.text, who, Some(version)).await
    }

    async fn insert(
        &self,
        text: &str,
        who: &str,
        rollback_of: Option<u64>,
    ) -> Result<StoredPolicy, PolicyStoreError> {
        check_name("publisher", who)?;
        let policy = Policy::from_toml_str(text)?;
        let versions = self.versions();
        let channel = self.channel();
        let row = self
            .op("publish", async {
                let mut tx = self.pool.begin().await?;
                // One publisher at a time, so version numbers are dense and ordered.
                sqlx::query("SELECT pg_advisory_xact_lock(hashtext($1))")
                    .bind(&versions)
                    .execute(&mut *tx)
                    .await?;
                let row = sqlx::query(&format!(
                    "INSERT INTO {versions}
                         (version, sha256, policy_version, body, published_by, published_at,
                          rollback_of)
                     SELECT COALESCE(MAX(version), 0) + 1, $1, $2, $3, $4, {NOW_NS}, $5
                     FROM {versions}
                     RETURNING version, published_at"
                ))
                .bind(policy.sha256())
                .bind(policy.version())
                .bind(text)
                .bind(who)
                .bind(rollback_of.map(to_db))
                .fetch_one(&mut *tx)
                .await?;
                let version: i64 = row.try_get("version")?;
                // Delivered on commit, and only then.
                sqlx::query("SELECT pg_notify($1, $2)")
                    .bind(&channel)
                    .bind(version.to_string())
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok::<_, sqlx::Error>(row)
            })
            .await?;
        Ok(StoredPolicy {
            version: from_db(row.try_get("version").map_err(|e| self.db("publish", e))?),
            sha256: policy.sha256().to_owned(),
            policy_version: policy.version().to_owned(),
            text: text.to_owned(),
            published_by: who.to_owned(),
            published_at: Timestamp(from_db(
                row.try_get("published_at")
                    .map_err(|e| self.db("publish", e))?,
            )),
            rollback_of,
        })
    }

    /// Every version, oldest first, without their texts.
    pub async fn list(&self) -> Result<Vec<StoredPolicy>, PolicyStoreError> {
        let rows = self
            .op(
                "list the versions",
                sqlx::query(&format!(
                    "SELECT version, sha256, policy_version, '' AS body, published_by,
                            published_at, rollback_of
                     FROM {} ORDER BY version",
                    self.versions()
                ))
                .fetch_all(&self.pool),
            )
            .await?;
        rows.iter()
            .map(|r| stored(r).map_err(|e| self.db("list the versions", e)))
            .collect()
    }

    /// One version with its text (`None` when it does not exist).
    pub async fn get(&self, version: u64) -> Result<Option<StoredPolicy>, PolicyStoreError> {
        let row = self
            .op(
                "read a version",
                sqlx::query(&format!(
                    "SELECT version, sha256, policy_version, body, published_by, published_at,
                            rollback_of
                     FROM {} WHERE version = $1",
                    self.versions()
                ))
                .bind(to_db(version))
                .fetch_optional(&self.pool),
            )
            .await?;
        row.map(|r| stored(&r).map_err(|e| self.db("read a version", e)))
            .transpose()
    }

    /// The newest version with its text (`None` when nothing was published).
    pub async fn latest(&self) -> Result<Option<StoredPolicy>, PolicyStoreError> {
        let row = self
            .op(
                "read the newest version",
                sqlx::query(&format!(
                    "SELECT version, sha256, policy_version, body, published_by, published_at,
                            rollback_of
                     FROM {} ORDER BY version DESC LIMIT 1",
                    self.versions()
                ))
                .fetch_optional(&self.pool),
            )
            .await?;
        row.map(|r| stored(&r).map_err(|e| self.db("read the newest version", e)))
            .transpose()
    }

    /// The newest version's number and hash; its text only when its hash is not `known`.
    pub(crate) async fn head(&self, known: &str) -> Result<Option<Head>, PolicyStoreError> {
        let row = self
            .op(
                "read the newest version",
                sqlx::query(&format!(
                    "SELECT version, sha256, CASE WHEN sha256 = $1 THEN NULL ELSE body END AS body
                     FROM {} ORDER BY version DESC LIMIT 1",
                    self.versions()
                ))
                .bind(known)
                .fetch_optional(&self.pool),
            )
            .await?;
        let Some(row) = row else { return Ok(None) };
        let read = |row: &PgRow| -> Result<Head, sqlx::Error> {
            Ok(Head {
                version: from_db(row.try_get("version")?),
                sha256: row.try_get("sha256")?,
                text: row.try_get("body")?,
            })
        };
        read(&row)
            .map(Some)
            .map_err(|e| self.db("read the newest version", e))
    }

    /// Writes a replica's heartbeat row.
    pub(crate) async fn beat(&self, beat: &Beat<'_>) -> Result<(), PolicyStoreError> {
        let (state, rejected_version, detail) = match beat.rejected {
            Some((v, why)) => ("rejected", Some(to_db(v)), Some(why)),
            None => ("current", None, None),
        };
        self.op(
            "write the heartbeat",
            sqlx::query(&format!(
                "INSERT INTO {} AS r
                     (replica_id, store_version, sha256, policy_version, state,
                      rejected_version, detail, last_seen)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, {NOW_NS})
                 ON CONFLICT (replica_id) DO UPDATE SET
                     store_version = EXCLUDED.store_version, sha256 = EXCLUDED.sha256,
                     policy_version = EXCLUDED.policy_version, state = EXCLUDED.state,
                     rejected_version = EXCLUDED.rejected_version, detail = EXCLUDED.detail,
                     last_seen = EXCLUDED.last_seen",
                self.replicas_table()
            ))
            .bind(beat.replica_id)
            .bind(beat.version.map(to_db))
            .bind(beat.sha256)
            .bind(beat.policy_version)
            .bind(state)
            .bind(rejected_version)
            .bind(detail)
            .execute(&self.pool),
        )
        .await
        .map(|_| ())
    }

    /// Removes a replica's heartbeat row (a replica stopping cleanly).
    pub(crate) async fn forget(&self, replica_id: &str) -> Result<(), PolicyStoreError> {
        self.op(
            "remove the heartbeat",
            sqlx::query(&format!(
                "DELETE FROM {} WHERE replica_id = $1",
                self.replicas_table()
            ))
            .bind(replica_id)
            .execute(&self.pool),
        )
        .await
        .map(|_| ())
    }

    /// Every replica's heartbeat, by id; with `live_for`, only those seen within it.
    pub async fn replicas(
        &self,
        live_for: Option<Duration>,
    ) -> Result<Vec<ReplicaHeartbeat>, PolicyStoreError> {
        let window = live_for.map_or(i64::MAX, |d| {
            i64::try_from(d.as_nanos()).unwrap_or(i64::MAX)
        });
        let rows = self
            .op(
                "read the heartbeats",
                sqlx::query(&format!(
                    "SELECT replica_id, store_version, sha256, policy_version, state,
                            rejected_version, detail, last_seen,
                            GREATEST({NOW_NS} - last_seen, 0) AS age
                     FROM {} WHERE {NOW_NS} - last_seen <= $1 ORDER BY replica_id",
                    self.replicas_table()
                ))
                .bind(window)
                .fetch_all(&self.pool),
            )
            .await?;
        let read = |r: &PgRow| -> Result<ReplicaHeartbeat, sqlx::Error> {
            Ok(ReplicaHeartbeat {
                replica_id: r.try_get("replica_id")?,
                version: r.try_get::<Option<i64>, _>("store_version")?.map(from_db),
                sha256: r.try_get("sha256")?,
                policy_version: r.try_get("policy_version")?,
                state: r.try_get("state")?,
                rejected_version: r
                    .try_get::<Option<i64>, _>("rejected_version")?
                    .map(from_db),
                detail: r.try_get("detail")?,
                last_seen: Timestamp(from_db(r.try_get("last_seen")?)),
                age: Duration::from_nanos(from_db(r.try_get("age")?)),
            })
        };
        rows.iter()
            .map(|r| read(r).map_err(|e| self.db("read the heartbeats", e)))
            .collect()
    }

    /// Closes the pool.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

fn stored(r: &PgRow) -> Result<StoredPolicy, sqlx::Error> {
    Ok(StoredPolicy {
        version: from_db(r.try_get("version")?),
        sha256: r.try_get("sha256")?,
        policy_version: r.try_get("policy_version")?,
        text: r.try_get("body")?,
        published_by: r.try_get("published_by")?,
        published_at: Timestamp(from_db(r.try_get("published_at")?)),
        rollback_of: r.try_get::<Option<i64>, _>("rollback_of")?.map(from_db),
    })
}

/// Versions and times are `BIGINT`s; none is ever negative (a negative one reads as 0).
fn from_db(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

fn to_db(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}
