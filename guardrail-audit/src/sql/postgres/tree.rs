//! Signed Merkle tree heads over every chain of a PostgreSQL trail: the checkpointer
//! ([`tree_checkpoint`]), the verifier of every chain and every tree head
//! ([`verify_postgres_trail`]) and the prover of one patient's events
//! ([`prove_subject`]).
//!
//! # The order of the leaves
//!
//! Events commit concurrently on many chains, so no order fixed at insert time (a global
//! sequence, a timestamp) is stable: a transaction that drew an earlier number can commit
//! after a later one was already covered. The tree's order is therefore fixed by the
//! checkpointer, which runs alone (a session advisory lock) and reads one `REPEATABLE READ`
//! snapshot: every chain's committed events after those the previous tree head covers are
//! appended, chain by chain in the byte order of chain ids, each chain's in seq order.
//! Within a chain the committed events always form a prefix (an append inserts only after
//! a predecessor its transaction sees, on the default chain under the head row's lock), and
//! the checkpointer checks that they link on from the chain head the previous tree head
//! signed, up to the default chain's head row and past a named chain's mark (`chains`). Each tree
//! head signs, besides size and root, every chain's count and last hash, so the order is
//! reproducible by anyone holding the events and the signed heads.
//!
//! Next to each signed line the `t_tree` row keeps the tree's right edge (its
//! [`CompactRange`] peaks), so the next checkpoint hashes only the new events; the
//! checkpointer checks the stored edge against the signed root before extending it.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use sqlx::postgres::PgPool;
use sqlx::{PgConnection, Row as _};

use super::chains::{self, chains_table, tree_table};
use super::{EVENT_COLUMNS, VERIFY_PAGE, row_columns};
use crate::chain::{Chain, Digest};
use crate::checkpoint::{CheckpointSigner, CheckpointVerifier};
use crate::error::AuditError;
use crate::event::Timestamp;
use crate::merkle::{
    BundleEvent, ChainCount, ChainId, CompactRange, InclusionBundle, MerkleTree, TreeHead,
    TreeHeadError, leaf_bytes, leaf_hash, verify_consistency,
};
use crate::sql::{AuditTable, TableVerifyError, check_row};
use crate::verify::Verifier;

fn db(e: sqlx::Error) -> AuditError {
    AuditError::Database(e.to_string())
}

fn to_i64(n: u64) -> Result<i64, AuditError> {
    i64::try_from(n).map_err(|_| AuditError::Database("sequence number out of range".into()))
}

/// Every chain's committed head, sorted by chain id.
async fn chain_heads(
    conn: &mut PgConnection,
    table: &AuditTable,
) -> Result<BTreeMap<ChainId, Chain>, AuditError> {
    let rows = sqlx::query(&format!(
        "SELECT '{default}', next_seq, head FROM {head} WHERE id = 0
         UNION ALL SELECT chain, next_seq, head FROM {chains}",
        default = ChainId::DEFAULT,
        head = table.head(),
        chains = chains_table(table)
    ))
    .fetch_all(&mut *conn)
    .await
    .map_err(db)?;
    let mut out = BTreeMap::new();
    for row in rows {
        let name: String = row.try_get(0).map_err(db)?;
        let next_seq: i64 = row.try_get(1).map_err(db)?;
        let head: String = row.try_get(2).map_err(db)?;
        let id = ChainId::new(&name)
            .map_err(|e| AuditError::Database(format!("`{}`: {e}", chains_table(table))))?;
        out.insert(id, chains::head_of(next_seq, &head, table)?);
    }
    Ok(out)
}

/// Reads `chain`'s events with seq `from..` in order, checking each row (link, seq column,
/// indexed columns) from `start`, and calls `each` with its seq, line and hash.
async fn read_chain(
    conn: &mut PgConnection,
    table: &AuditTable,
    chain: &ChainId,
    start: Chain,
    mut each: impl FnMut(u64, &str, Digest),
) -> Result<Chain, TableVerifyError> {
    let dberr = |e: sqlx::Error| TableVerifyError::Database {
        table: table.events().to_owned(),
        detail: e.to_string(),
    };
    let page = format!(
        "SELECT {EVENT_COLUMNS} FROM {} WHERE chain = $1 AND seq > $2 ORDER BY seq LIMIT $3",
        table.events()
    );
    let mut verifier = Verifier::new(start);
    let mut after = i64::try_from(start.next_seq).unwrap_or(i64::MAX) - 1;
    let mut position = 0usize;
    loop {
        let rows = sqlx::query(&page)
            .bind(chain.as_str())
            .bind(after)
            .bind(VERIFY_PAGE)
            .fetch_all(&mut *conn)
            .await
            .map_err(dberr)?;
        let n = rows.len();
        for row in rows {
            position += 1;
            let (seq, line, stored) = row_columns(&row).map_err(dberr)?;
            check_row(table, &mut verifier, position, seq, &line, &stored)?;
            let head = verifier.report().head;
            each(head.next_seq - 1, &line, head.head);
            after = seq;
        }
        if i64::try_from(n).unwrap_or(i64::MAX) < VERIFY_PAGE {
            break;
        }
    }
    Ok(verifier.report().head)
}

fn peaks_text(range: &CompactRange) -> String {
    range
        .peaks()
        .iter()
        .map(Digest::to_hex)
        .collect::<Vec<_>>()
        .join(",")
}

fn parse_peaks(size: u64, text: &str) -> Option<CompactRange> {
    let peaks = if text.is_empty() {
        Vec::new()
    } else {
        text.split(',')
            .map(Digest::from_hex)
            .collect::<Option<Vec<_>>>()?
    };
    CompactRange::from_peaks(size, peaks)
}

/// Signs a tree head over every committed event now, if any event is not covered yet:
/// `None` when the newest tree head covers them all. Serialized with other checkpointers by
/// a session advisory lock; appends never wait for it (it only reads the chains).
///
/// Refuses (fails closed, signs nothing) when the newest tree head does not verify with
/// `signer`'s key, its stored edge does not lead to its signed root, or a chain's new rows
/// do not link on from the head that tree head signed up to the default chain's head row
/// and past a named chain's mark.
pub async fn tree_checkpoint(
    pool: &PgPool,
    table: &AuditTable,
    signer: &CheckpointSigner,
) -> Result<Option<TreeHead>, AuditError> {
    let mut conn = pool.acquire().await.map_err(db)?;
    let key = format!("guardrail_tree:{}", table.events());
    sqlx::query("SELECT pg_advisory_lock(hashtext($1))")
        .bind(&key)
        .execute(&mut *conn)
        .await
        .map_err(db)?;
    let result = checkpoint_locked(&mut conn, table, signer).await;
    let unlocked = sqlx::query("SELECT pg_advisory_unlock(hashtext($1))")
        .bind(&key)
        .execute(&mut *conn)
        .await;
    if result.is_err() || unlocked.is_err() {
        // Closing the session releases its lock and ends any transaction left open.
        conn.close_on_drop();
    }
    result
}

async fn checkpoint_locked(
    conn: &mut PgConnection,
    table: &AuditTable,
    signer: &CheckpointSigner,
) -> Result<Option<TreeHead>, AuditError> {
    let tree = tree_table(table);
    let refuse = |why: String| {
        AuditError::Database(format!(
            "audit table `{}`: refusing to sign a tree head: {why}",
            table.events()
        ))
    };
    sqlx::query("BEGIN ISOLATION LEVEL REPEATABLE READ")
        .execute(&mut *conn)
        .await
        .map_err(db)?;
    let newest: Option<(i64, String, String)> = sqlx::query_as(&format!(
        "SELECT size, line, peaks FROM {tree} ORDER BY size DESC LIMIT 1"
    ))
    .fetch_optional(&mut *conn)
    .await
    .map_err(db)?;
    let (mut range, previous) = match newest {
        None => (CompactRange::default(), None),
        Some((size, line, peaks)) => {
            let head = TreeHead::verify(&signer.verifier(), line.as_bytes())
                .map_err(|e| refuse(format!("tree head row size {size}: {e}")))?;
            if u64::try_from(size).ok() != Some(head.size) || head.tree != table.events() {
                return Err(refuse(format!(
                    "tree head row size {size} holds the head of another size or table"
                )));
            }
            let range = parse_peaks(head.size, &peaks)
                .filter(|r| r.root().ct_eq(&head.root))
                .ok_or_else(|| {
                    refuse(format!(
                        "the stored edge of tree size {size} does not lead to its signed root"
                    ))
                })?;
            (range, Some(head))
        }
    };
    let signed: HashMap<ChainId, ChainCount> = previous
        .iter()
        .flat_map(|h| h.chains.iter().cloned())
        .map(|c| (c.chain.clone(), c))
        .collect();
    let heads = chain_heads(conn, table).await?;
    if let Some(missing) = signed.keys().find(|c| !heads.contains_key(*c)) {
        return Err(refuse(format!(
            "chain `{missing}` is covered by the newest tree head but has no head row"
        )));
    }
    let mut counts = Vec::with_capacity(heads.len());
    let mut added = 0u64;
    for (id, head_row) in &heads {
        let start = signed.get(id).map_or(Chain::new(), |c| Chain {
            next_seq: c.count,
            head: c.head,
        });
        if id.is_default() && head_row.next_seq < start.next_seq {
            return Err(refuse(format!(
                "chain `{id}`'s head row says {} events, the newest tree head covers {}",
                head_row.next_seq, start.next_seq
            )));
        }
        let mut new_leaves = Vec::new();
        let mark = head_row.next_seq.checked_sub(1);
        let mut at_mark = None;
        let end = read_chain(conn, table, id, start, |seq, line, hash| {
            if Some(seq) == mark {
                at_mark = Some(hash);
            }
            new_leaves.push(leaf_hash(&leaf_bytes(id.as_str(), line)));
        })
        .await
        .map_err(|e| refuse(format!("chain `{id}`: {e}")))?;
        if head_row.next_seq == start.next_seq {
            at_mark = Some(start.head);
        }
        // A named chain's mark below what the newest tree head covers was checked when
        // that head was signed (and is by every verification from genesis).
        let below_covered = !id.is_default() && head_row.next_seq < start.next_seq;
        if !below_covered && !chains::agrees_with_head_row(id, end, *head_row, at_mark) {
            return Err(refuse(format!(
                "chain `{id}`: the rows after the newest tree head end at next seq {}, the head \
                 row says {}",
                end.next_seq, head_row.next_seq
            )));
        }
        added += new_leaves.len() as u64;
        for leaf in new_leaves {
            range.push(leaf);
        }
        if end.next_seq > 0 {
            counts.push(ChainCount {
                chain: id.clone(),
                count: end.next_seq,
                head: end.head,
            });
        }
    }
    if added == 0 {
        sqlx::query("ROLLBACK")
            .execute(&mut *conn)
            .await
            .map_err(db)?;
        return Ok(None);
    }
    let line = TreeHead::sign(
        signer,
        table.events(),
        range.size(),
        range.root(),
        counts,
        Timestamp::now(),
    );
    sqlx::query(&format!(
        "INSERT INTO {tree} (size, line, peaks) VALUES ($1, $2, $3)"
    ))
    .bind(to_i64(range.size())?)
    .bind(&line)
    .bind(peaks_text(&range))
    .execute(&mut *conn)
    .await
    .map_err(db)?;
    sqlx::query("COMMIT")
        .execute(&mut *conn)
        .await
        .map_err(db)?;
    TreeHead::verify(&signer.verifier(), line.as_bytes())
        .map(Some)
        .map_err(|e| refuse(e.to_string()))
}

/// Why a shared PostgreSQL trail does not verify. Every variant names where: the chain and
/// seq, or the tree size.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TrailVerifyError {
    /// A chain's rows do not verify (broken link, edited column, head row mismatch).
    #[error("chain `{chain}`: {source}")]
    Chain {
        /// The chain.
        chain: ChainId,
        /// What is wrong with its rows.
        #[source]
        source: TableVerifyError,
    },
    /// Events of a chain that has no head row.
    #[error("audit table `{table}`: chain `{chain}` has events but no head row")]
    ChainWithoutHead {
        /// The events table.
        table: String,
        /// The chain (as stored; it may not even be a valid id).
        chain: String,
    },
    /// A tree head row does not verify: malformed, signed by another key, altered or
    /// forged.
    #[error("audit table `{table}`: tree head row size {size}: {source}")]
    TreeHead {
        /// The events table.
        table: String,
        /// The `size` column of the row.
        size: i64,
        /// What is wrong with it.
        #[source]
        source: TreeHeadError,
    },
    /// A validly signed tree head is not where it is stored (another size, another table).
    #[error("audit table `{table}`: tree head row size {size}: {reason}")]
    TreeHeadRow {
        /// The events table.
        table: String,
        /// The `size` column of the row.
        size: i64,
        /// What is wrong.
        reason: String,
    },
    /// A chain holds fewer events than a signed tree head covers: its tail was removed.
    #[error(
        "audit table `{table}`: chain `{chain}` ends before seq {first_missing_seq}, but the tree head of size {tree_size} covers {covered} of its events: events were removed"
    )]
    Truncated {
        /// The events table.
        table: String,
        /// The chain.
        chain: ChainId,
        /// The first missing seq.
        first_missing_seq: u64,
        /// Events of the chain the head covers.
        covered: u64,
        /// The tree head.
        tree_size: u64,
    },
    /// A chain's event differs from the one a tree head signed: the chain was rewritten.
    #[error(
        "audit table `{table}`: chain `{chain}` seq {seq}: the event differs from the one the tree head of size {tree_size} signed: the chain was rewritten"
    )]
    Rewritten {
        /// The events table.
        table: String,
        /// The chain.
        chain: ChainId,
        /// The seq whose hash differs.
        seq: u64,
        /// The tree head.
        tree_size: u64,
    },
    /// A later tree head covers less of a chain than an earlier one.
    #[error(
        "audit table `{table}`: the tree head of size {tree_size} covers {count} event(s) of chain `{chain}`, the earlier one of size {previous_size} covered {previous_count}"
    )]
    Shrunk {
        /// The events table.
        table: String,
        /// The chain.
        chain: ChainId,
        /// The later head.
        tree_size: u64,
        /// Its count.
        count: u64,
        /// The earlier head.
        previous_size: u64,
        /// Its count.
        previous_count: u64,
    },
    /// The consistency proof between two successive tree heads fails: the later one is
    /// not an extension of the earlier one over the stored events.
    #[error(
        "audit table `{table}`: the tree heads of size {old_size} and {new_size} are not consistent ({source})"
    )]
    Inconsistent {
        /// The events table.
        table: String,
        /// The earlier head.
        old_size: u64,
        /// The later head.
        new_size: u64,
        /// Why the proof fails.
        #[source]
        source: crate::merkle::ProofError,
    },
    /// The events do not hash to a tree head's signed root.
    #[error(
        "audit table `{table}`: the events do not lead to the signed root of the tree head of size {tree_size}: the trail was rewritten or reordered"
    )]
    Root {
        /// The events table.
        table: String,
        /// The tree head.
        tree_size: u64,
    },
    /// The database could not be read.
    #[error("audit table `{table}`: database error: {detail}")]
    Database {
        /// The events table.
        table: String,
        /// What failed.
        detail: String,
    },
}

/// What [`verify_postgres_trail`] found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TrailReport {
    /// Chains verified.
    pub chains: usize,
    /// Events verified, over all chains.
    pub events: u64,
    /// Signed tree heads verified (0 without a key).
    pub tree_heads: usize,
    /// The newest verified tree head's size.
    pub last_tree_size: Option<u64>,
    /// Events no signed tree head covers yet.
    pub uncovered_events: u64,
}

/// One chain as read: every event's hash and leaf hash, in seq order.
#[derive(Default)]
struct ChainRows {
    hashes: Vec<Digest>,
    leaves: Vec<Digest>,
}

/// The verified trail: its report, the tree of the newest head and where each event sits.
struct Verified {
    report: TrailReport,
    tree: MerkleTree,
    newest: Option<(TreeHead, String)>,
    leaf_index: HashMap<ChainId, Vec<u64>>,
}

/// Verifies every chain of the trail and, with `verifier`, every signed tree head, in one
/// `REPEATABLE READ` snapshot:
///
/// * each chain from genesis: links, seq and indexed columns, its head row;
/// * each tree head row: signature, size column, table; for each chain it lists, that the
///   chain still holds `count` events and its event at `count - 1` is the signed hash
///   ([`TrailVerifyError::Truncated`], [`TrailVerifyError::Rewritten`]); that no chain's
///   count shrinks; the consistency proof from the previous head; and that the events, in
///   the order the heads define, hash to its root.
///
/// Without `verifier` only the chains are checked: a relinked chain or a cut tail then
/// goes unnoticed.
pub async fn verify_postgres_trail(
    pool: &PgPool,
    table: &AuditTable,
    verifier: Option<&CheckpointVerifier>,
) -> Result<TrailReport, TrailVerifyError> {
    verify_inner(pool, table, verifier).await.map(|v| v.report)
}

async fn verify_inner(
    pool: &PgPool,
    table: &AuditTable,
    verifier: Option<&CheckpointVerifier>,
) -> Result<Verified, TrailVerifyError> {
    let t = table.events().to_owned();
    let dberr = |e: sqlx::Error| TrailVerifyError::Database {
        table: t.clone(),
        detail: e.to_string(),
    };
    let mut conn = pool.acquire().await.map_err(dberr)?;
    sqlx::query("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        .execute(&mut *conn)
        .await
        .map_err(dberr)?;
    let result = verify_snapshot(&mut conn, table, verifier).await;
    if sqlx::query("ROLLBACK").execute(&mut *conn).await.is_err() {
        conn.close_on_drop();
    }
    result
}

async fn verify_snapshot(
    conn: &mut PgConnection,
    table: &AuditTable,
    verifier: Option<&CheckpointVerifier>,
) -> Result<Verified, TrailVerifyError> {
    let t = || table.events().to_owned();
    let dberr = |e: sqlx::Error| TrailVerifyError::Database {
        table: t(),
        detail: e.to_string(),
    };
    let heads = chain_heads(conn, table)
        .await
        .map_err(|e| TrailVerifyError::Database {
            table: t(),
            detail: e.to_string(),
        })?;
    let stored: Vec<String> =
        sqlx::query_scalar(&format!("SELECT DISTINCT chain FROM {}", table.events()))
            .fetch_all(&mut *conn)
            .await
            .map_err(dberr)?;
    let mut names: BTreeSet<String> = stored.into_iter().collect();
    for id in heads.keys() {
        names.remove(id.as_str());
    }
    if let Some(orphan) = names.into_iter().next() {
        return Err(TrailVerifyError::ChainWithoutHead {
            table: t(),
            chain: orphan.escape_debug().to_string(),
        });
    }
    let mut chains: BTreeMap<ChainId, ChainRows> = BTreeMap::new();
    let mut report = TrailReport::default();
    for (id, head_row) in &heads {
        let mut rows = ChainRows::default();
        let end = read_chain(conn, table, id, Chain::new(), |_, line, hash| {
            rows.hashes.push(hash);
            rows.leaves.push(leaf_hash(&leaf_bytes(id.as_str(), line)));
        })
        .await
        .map_err(|source| TrailVerifyError::Chain {
            chain: id.clone(),
            source,
        })?;
        let at_mark = head_row
            .next_seq
            .checked_sub(1)
            .and_then(|i| usize::try_from(i).ok())
            .and_then(|i| rows.hashes.get(i).copied());
        if !chains::agrees_with_head_row(id, end, *head_row, at_mark) {
            return Err(TrailVerifyError::Chain {
                chain: id.clone(),
                source: TableVerifyError::Head {
                    table: t(),
                    head_next_seq: head_row.next_seq,
                    events_next_seq: end.next_seq,
                },
            });
        }
        report.chains += 1;
        report.events += end.next_seq;
        chains.insert(id.clone(), rows);
    }
    let mut tree = MerkleTree::default();
    let mut leaf_index: HashMap<ChainId, Vec<u64>> = HashMap::new();
    let mut newest: Option<(TreeHead, String)> = None;
    if let Some(verifier) = verifier {
        let rows: Vec<(i64, String)> = sqlx::query_as(&format!(
            "SELECT size, line FROM {} ORDER BY size",
            tree_table(table)
        ))
        .fetch_all(&mut *conn)
        .await
        .map_err(dberr)?;
        let mut covered: BTreeMap<ChainId, u64> = BTreeMap::new();
        for (size, line) in rows {
            let bad_row = |reason: String| TrailVerifyError::TreeHeadRow {
                table: t(),
                size,
                reason,
            };
            let head = TreeHead::verify(verifier, line.as_bytes()).map_err(|source| {
                TrailVerifyError::TreeHead {
                    table: t(),
                    size,
                    source,
                }
            })?;
            if u64::try_from(size).ok() != Some(head.size) {
                return Err(bad_row(format!(
                    "the row holds the head of size {}",
                    head.size
                )));
            }
            if head.tree != table.events() {
                return Err(bad_row(format!(
                    "the head is of table `{}`",
                    head.tree.escape_debug()
                )));
            }
            let previous = newest.as_ref().map(|(h, _)| h);
            for (id, before) in &covered {
                let now = head.count_of(id);
                if now < *before {
                    return Err(TrailVerifyError::Shrunk {
                        table: t(),
                        chain: id.clone(),
                        tree_size: head.size,
                        count: now,
                        previous_size: previous.map_or(0, |p| p.size),
                        previous_count: *before,
                    });
                }
            }
            for c in &head.chains {
                let Some(rows) = chains.get(&c.chain) else {
                    return Err(TrailVerifyError::Truncated {
                        table: t(),
                        chain: c.chain.clone(),
                        first_missing_seq: 0,
                        covered: c.count,
                        tree_size: head.size,
                    });
                };
                let present = rows.hashes.len() as u64;
                if present < c.count {
                    return Err(TrailVerifyError::Truncated {
                        table: t(),
                        chain: c.chain.clone(),
                        first_missing_seq: present,
                        covered: c.count,
                        tree_size: head.size,
                    });
                }
                if !rows.hashes[(c.count - 1) as usize].ct_eq(&c.head) {
                    return Err(TrailVerifyError::Rewritten {
                        table: t(),
                        chain: c.chain.clone(),
                        seq: c.count - 1,
                        tree_size: head.size,
                    });
                }
                let from = covered.get(&c.chain).copied().unwrap_or(0);
                let indexes = leaf_index.entry(c.chain.clone()).or_default();
                for leaf in &rows.leaves[from as usize..c.count as usize] {
                    indexes.push(tree.size());
                    tree.push(*leaf);
                }
                covered.insert(c.chain.clone(), c.count);
            }
            if let Some(p) = previous {
                let proof = tree
                    .consistency_proof_between(p.size, head.size)
                    .map_err(|e| bad_row(e.to_string()))?;
                verify_consistency(p.size, head.size, &p.root, &head.root, &proof).map_err(
                    |source| TrailVerifyError::Inconsistent {
                        table: t(),
                        old_size: p.size,
                        new_size: head.size,
                        source,
                    },
                )?;
            }
            if tree.size() != head.size || !tree.root().ct_eq(&head.root) {
                return Err(TrailVerifyError::Root {
                    table: t(),
                    tree_size: head.size,
                });
            }
            report.tree_heads += 1;
            report.last_tree_size = Some(head.size);
            newest = Some((head, line));
        }
        report.uncovered_events = report.events - tree.size();
    } else {
        report.uncovered_events = report.events;
    }
    Ok(Verified {
        report,
        tree,
        newest,
        leaf_index,
    })
}

/// Why [`prove_subject`] produced no bundle.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProveError {
    /// The trail does not verify: no proof is built over a trail that does not.
    #[error(transparent)]
    Verify(#[from] TrailVerifyError),
    /// No signed tree head exists yet.
    #[error("audit table `{0}` has no signed tree head yet: run a tree checkpoint first")]
    NoTreeHead(String),
}

/// One patient's events (those whose line names `subject`, the keyed token) that the
/// newest signed tree head covers, each with its inclusion proof, as a self-contained
/// bundle. The whole trail is verified first (as [`verify_postgres_trail`] with
/// `verifier`), in the same snapshot the events are read from. Returns the bundle and the
/// number of the subject's events not covered by the tree head yet (left out).
pub async fn prove_subject(
    pool: &PgPool,
    table: &AuditTable,
    verifier: &CheckpointVerifier,
    subject: &str,
) -> Result<(InclusionBundle, u64), ProveError> {
    let t = table.events().to_owned();
    let dberr = |e: sqlx::Error| TrailVerifyError::Database {
        table: t.clone(),
        detail: e.to_string(),
    };
    let mut conn = pool.acquire().await.map_err(dberr)?;
    sqlx::query("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        .execute(&mut *conn)
        .await
        .map_err(dberr)?;
    let result = prove_snapshot(&mut conn, table, verifier, subject).await;
    if sqlx::query("ROLLBACK").execute(&mut *conn).await.is_err() {
        conn.close_on_drop();
    }
    result
}

async fn prove_snapshot(
    conn: &mut PgConnection,
    table: &AuditTable,
    verifier: &CheckpointVerifier,
    subject: &str,
) -> Result<(InclusionBundle, u64), ProveError> {
    let t = table.events().to_owned();
    let dberr = |e: sqlx::Error| TrailVerifyError::Database {
        table: t.clone(),
        detail: e.to_string(),
    };
    let verified = verify_snapshot(conn, table, Some(verifier)).await?;
    let Some((head, line)) = verified.newest else {
        return Err(ProveError::NoTreeHead(t));
    };
    // The token quoted, as every event writes it (`"subject":"…"`, or in `subjects`).
    let quoted = format!("\"{subject}\"");
    let rows: Vec<(String, i64, String)> = sqlx::query_as(&format!(
        "SELECT chain, seq, line FROM {} WHERE strpos(line, $1) > 0",
        table.events()
    ))
    .bind(&quoted)
    .fetch_all(&mut *conn)
    .await
    .map_err(dberr)?;
    let mut events = Vec::new();
    let mut uncovered = 0u64;
    for (chain, seq, line) in rows {
        let (Ok(chain), Ok(seq)) = (ChainId::new(&chain), u64::try_from(seq)) else {
            continue; // unreachable: the verification above read every row
        };
        let index = verified
            .leaf_index
            .get(&chain)
            .and_then(|v| v.get(seq as usize))
            .copied();
        let Some(leaf_index) = index.filter(|&i| i < head.size) else {
            uncovered += 1;
            continue;
        };
        let proof = verified
            .tree
            .inclusion_proof_at(leaf_index, head.size)
            .map_err(|e| TrailVerifyError::Database {
                table: t.clone(),
                detail: e.to_string(),
            })?;
        events.push(BundleEvent {
            chain,
            leaf_index,
            line,
            proof,
        });
    }
    events.sort_by_key(|e| e.leaf_index);
    Ok((InclusionBundle::new(subject, line, events), uncovered))
}
