//! RFC 6962 / RFC 9162 Merkle trees over audit events: tree hashes, inclusion and
//! consistency proofs and their verifiers, signed tree heads, and the offline inclusion
//! bundle an auditor checks without the database.
//!
//! # Hashing (RFC 9162 §2.1.1)
//!
//! * leaf hash = SHA-256(`0x00` || leaf bytes),
//! * node hash = SHA-256(`0x01` || left || right),
//! * the root of the empty tree is SHA-256 of nothing.
//!
//! A tree of `n > 1` leaves splits at `k`, the largest power of two below `n`: the left
//! subtree holds the first `k` leaves, the right one the rest. Proofs are the RFC's `PATH`
//! (inclusion) and `PROOF` (consistency); the verifiers are the RFC 9162 §2.1.3.2 and
//! §2.1.4.2 algorithms, with the edge cases of transparency-dev/merkle (an empty tree is
//! consistent with every tree; equal sizes need equal roots and an empty proof).
//!
//! # What a leaf is here
//!
//! One audit event: the bytes of its chain id, a newline (`0x0a`), then its exact line
//! ([`leaf_bytes`]). The chain id is part of the leaf, so an event moved to another chain
//! changes the tree.
//!
//! This module needs no database: [`TreeHead`] and [`InclusionBundle`] are verified from
//! their text and a [`crate::CheckpointVerifier`] alone. The PostgreSQL checkpointer that
//! builds the tree lives in `sql::postgres` (feature `postgres`).

use sha2::{Digest as _, Sha256};

use crate::chain::Digest;

mod bundle;
mod head;

pub use bundle::{BundleError, BundleEvent, BundleReport, InclusionBundle, MAX_BUNDLE_BYTES};
pub use head::{ChainCount, ChainId, ChainIdError, TREE_HEAD_VERSION, TreeHead, TreeHeadError};

/// Domain-separation prefix of a leaf hash (RFC 6962 §2.1).
pub const LEAF_PREFIX: u8 = 0x00;
/// Domain-separation prefix of an interior node hash (RFC 6962 §2.1).
pub const NODE_PREFIX: u8 = 0x01;

/// SHA-256(`0x00` || `data`): the hash of one leaf.
pub fn leaf_hash(data: &[u8]) -> Digest {
    let mut h = Sha256::new();
    h.update([LEAF_PREFIX]);
    h.update(data);
    Digest(h.finalize().into())
}

/// SHA-256(`0x01` || `left` || `right`): the hash of an interior node.
pub fn node_hash(left: &Digest, right: &Digest) -> Digest {
    let mut h = Sha256::new();
    h.update([NODE_PREFIX]);
    h.update(left.0);
    h.update(right.0);
    Digest(h.finalize().into())
}

/// The root of the empty tree: SHA-256 of the empty string.
pub fn empty_root() -> Digest {
    Digest(Sha256::digest([]).into())
}

/// The leaf bytes of an event on `chain`: the chain id, `0x0a`, the event line.
pub fn leaf_bytes(chain: &str, line: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(chain.len() + 1 + line.len());
    out.extend_from_slice(chain.as_bytes());
    out.push(b'\n');
    out.extend_from_slice(line.as_bytes());
    out
}

/// Why a proof cannot be built over a tree.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProofRequestError {
    /// Inclusion of a leaf the tree does not hold.
    #[error("leaf index {index} is not in a tree of {size} leaves")]
    NoSuchLeaf {
        /// The leaf asked for.
        index: u64,
        /// The tree's size.
        size: u64,
    },
    /// Consistency with a tree larger than this one.
    #[error("a tree of {size} leaves has no earlier tree of {old_size} leaves")]
    NotAnEarlierSize {
        /// The earlier size asked for.
        old_size: u64,
        /// The tree's size.
        size: u64,
    },
}

/// Why a proof does not verify. Small and `Copy`: a verifier says what failed, never more.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProofError {
    /// The leaf index is not below the tree size.
    #[error("leaf index {index} is not in a tree of {size} leaves")]
    IndexOutOfRange {
        /// The leaf index claimed.
        index: u64,
        /// The tree size claimed.
        size: u64,
    },
    /// The proof has more or fewer hashes than the sizes allow.
    #[error("the proof has {got} hash(es), but these tree sizes need {expected}")]
    WrongLength {
        /// Hashes in the proof.
        got: usize,
        /// Hashes the sizes need.
        expected: usize,
    },
    /// The hashes do not lead to the root.
    #[error("the proof does not lead to the signed root")]
    RootMismatch,
    /// A consistency proof from a larger tree to a smaller one.
    #[error("tree size {old_size} is larger than tree size {new_size}")]
    SizesReversed {
        /// The earlier tree's size.
        old_size: u64,
        /// The later tree's size.
        new_size: u64,
    },
}

/// A complete tree held in memory, level by level, for computing roots and proofs.
///
/// ```
/// use guardrail_audit::merkle::{MerkleTree, leaf_hash, verify_inclusion};
/// let tree = MerkleTree::from_leaves((0u8..5).map(|i| leaf_hash(&[i])).collect());
/// let proof = tree.inclusion_proof(3).unwrap();
/// verify_inclusion(&leaf_hash(&[3]), 3, 5, &proof, &tree.root()).unwrap();
/// assert!(verify_inclusion(&leaf_hash(&[4]), 3, 5, &proof, &tree.root()).is_err());
/// ```
#[derive(Clone, Debug, Default)]
pub struct MerkleTree {
    /// `levels[0]` are the leaf hashes; `levels[l][i]` is the perfect subtree of `2^l`
    /// leaves starting at leaf `i * 2^l` (only complete ones are kept).
    levels: Vec<Vec<Digest>>,
}

impl MerkleTree {
    /// A tree over these leaf hashes, in order.
    pub fn from_leaves(leaves: Vec<Digest>) -> MerkleTree {
        let mut levels = vec![leaves];
        while let Some(last) = levels.last().filter(|l| l.len() >= 2) {
            let next: Vec<Digest> = last
                .chunks_exact(2)
                .map(|pair| node_hash(&pair[0], &pair[1]))
                .collect();
            levels.push(next);
        }
        MerkleTree { levels }
    }

    /// Adds one leaf hash at the end.
    pub fn push(&mut self, leaf: Digest) {
        if self.levels.is_empty() {
            self.levels.push(Vec::new());
        }
        self.levels[0].push(leaf);
        let mut level = 0;
        while self.levels[level].len() % 2 == 0 {
            let n = self.levels[level].len();
            let parent = node_hash(&self.levels[level][n - 2], &self.levels[level][n - 1]);
            if self.levels.len() == level + 1 {
                self.levels.push(Vec::new());
            }
            self.levels[level + 1].push(parent);
            level += 1;
        }
    }

    /// Number of leaves.
    pub fn size(&self) -> u64 {
        self.levels.first().map_or(0, |l| l.len() as u64)
    }

    /// The leaf hashes.
    pub fn leaves(&self) -> &[Digest] {
        self.levels.first().map_or(&[], Vec::as_slice)
    }

    /// The root of the whole tree (RFC 6962 `MTH`).
    pub fn root(&self) -> Digest {
        self.root_at(self.size()).unwrap_or_else(|_| empty_root())
    }

    /// The root of the tree's first `size` leaves: the root an earlier tree head signed.
    pub fn root_at(&self, size: u64) -> Result<Digest, ProofRequestError> {
        if size > self.size() {
            return Err(ProofRequestError::NotAnEarlierSize {
                old_size: size,
                size: self.size(),
            });
        }
        if size == 0 {
            return Ok(empty_root());
        }
        Ok(self.subtree(0, size))
    }

    /// `MTH(D[lo:hi])` for `hi > lo`, from stored perfect subtrees where aligned.
    fn subtree(&self, lo: u64, hi: u64) -> Digest {
        let n = hi - lo;
        if n.is_power_of_two() {
            let level = n.trailing_zeros() as usize;
            if lo % n == 0 {
                if let Some(h) = self
                    .levels
                    .get(level)
                    .and_then(|l| l.get((lo / n) as usize))
                {
                    return *h;
                }
            }
        }
        if n == 1 {
            // Every leaf is stored at level 0; unreachable for an in-range request.
            return self.levels[0][lo as usize];
        }
        let k = split(n);
        node_hash(&self.subtree(lo, lo + k), &self.subtree(lo + k, hi))
    }

    /// The inclusion proof of leaf `index` in the whole tree (RFC 6962 `PATH`), leaf side
    /// first.
    pub fn inclusion_proof(&self, index: u64) -> Result<Vec<Digest>, ProofRequestError> {
        self.inclusion_proof_at(index, self.size())
    }

    /// The inclusion proof of leaf `index` in the tree's first `size` leaves.
    pub fn inclusion_proof_at(
        &self,
        index: u64,
        size: u64,
    ) -> Result<Vec<Digest>, ProofRequestError> {
        if size > self.size() {
            return Err(ProofRequestError::NotAnEarlierSize {
                old_size: size,
                size: self.size(),
            });
        }
        if index >= size {
            return Err(ProofRequestError::NoSuchLeaf { index, size });
        }
        let mut proof = Vec::new();
        self.path(index, 0, size, &mut proof);
        Ok(proof)
    }

    /// `PATH(m, D[lo:hi])`, appended bottom-up.
    fn path(&self, m: u64, lo: u64, hi: u64, out: &mut Vec<Digest>) {
        let n = hi - lo;
        if n <= 1 {
            return;
        }
        let k = split(n);
        if m < k {
            self.path(m, lo, lo + k, out);
            out.push(self.subtree(lo + k, hi));
        } else {
            self.path(m - k, lo + k, hi, out);
            out.push(self.subtree(lo, lo + k));
        }
    }

    /// The consistency proof from the tree's first `old_size` leaves to the whole tree
    /// (RFC 6962 `PROOF`). Empty when `old_size` is 0 or the whole size.
    pub fn consistency_proof(&self, old_size: u64) -> Result<Vec<Digest>, ProofRequestError> {
        self.consistency_proof_between(old_size, self.size())
    }

    /// The consistency proof from the first `old_size` leaves to the first `new_size`.
    pub fn consistency_proof_between(
        &self,
        old_size: u64,
        new_size: u64,
    ) -> Result<Vec<Digest>, ProofRequestError> {
        if new_size > self.size() || old_size > new_size {
            return Err(ProofRequestError::NotAnEarlierSize {
                old_size,
                size: new_size.min(self.size()),
            });
        }
        let mut proof = Vec::new();
        if old_size > 0 && old_size < new_size {
            self.subproof(old_size, 0, new_size, true, &mut proof);
        }
        Ok(proof)
    }

    /// `SUBPROOF(m, D[lo:hi], b)`, appended in the RFC's order.
    fn subproof(&self, m: u64, lo: u64, hi: u64, whole: bool, out: &mut Vec<Digest>) {
        let n = hi - lo;
        if m == n {
            if !whole {
                out.push(self.subtree(lo, hi));
            }
            return;
        }
        let k = split(n);
        if m <= k {
            self.subproof(m, lo, lo + k, whole, out);
            out.push(self.subtree(lo + k, hi));
        } else {
            self.subproof(m - k, lo + k, hi, false, out);
            out.push(self.subtree(lo, lo + k));
        }
    }
}

/// The largest power of two strictly below `n` (`n >= 2`).
fn split(n: u64) -> u64 {
    1u64 << (63 - (n - 1).leading_zeros())
}

/// Verifies that `leaf` is leaf `index` of the tree of `size` leaves whose root is `root`
/// (RFC 9162 §2.1.3.2).
pub fn verify_inclusion(
    leaf: &Digest,
    index: u64,
    size: u64,
    proof: &[Digest],
    root: &Digest,
) -> Result<(), ProofError> {
    if index >= size {
        return Err(ProofError::IndexOutOfRange { index, size });
    }
    let expected = inclusion_len(index, size);
    if proof.len() != expected {
        return Err(ProofError::WrongLength {
            got: proof.len(),
            expected,
        });
    }
    let mut fnode = index;
    let mut snode = size - 1;
    let mut r = *leaf;
    for p in proof {
        if snode == 0 {
            return Err(ProofError::WrongLength {
                got: proof.len(),
                expected,
            });
        }
        if fnode & 1 == 1 || fnode == snode {
            r = node_hash(p, &r);
            while fnode & 1 == 0 && fnode != 0 {
                fnode >>= 1;
                snode >>= 1;
            }
        } else {
            r = node_hash(&r, p);
        }
        fnode >>= 1;
        snode >>= 1;
    }
    if snode != 0 || !r.ct_eq(root) {
        return Err(ProofError::RootMismatch);
    }
    Ok(())
}

/// The number of hashes in the inclusion proof of `index` in a tree of `size` (> index).
fn inclusion_len(index: u64, size: u64) -> usize {
    let inner = 64 - (index ^ (size - 1)).leading_zeros();
    let border = index.checked_shr(inner).unwrap_or(0).count_ones();
    (inner + border) as usize
}

/// Verifies that the tree of `old_size` leaves with root `old_root` is a prefix of the tree
/// of `new_size` leaves with root `new_root` (RFC 9162 §2.1.4.2). An empty old tree is a
/// prefix of every tree (the proof must be empty); equal sizes need equal roots and an
/// empty proof.
pub fn verify_consistency(
    old_size: u64,
    new_size: u64,
    old_root: &Digest,
    new_root: &Digest,
    proof: &[Digest],
) -> Result<(), ProofError> {
    if old_size > new_size {
        return Err(ProofError::SizesReversed { old_size, new_size });
    }
    if old_size == new_size || old_size == 0 {
        if !proof.is_empty() {
            return Err(ProofError::WrongLength {
                got: proof.len(),
                expected: 0,
            });
        }
        if old_size == new_size && !old_root.ct_eq(new_root) {
            return Err(ProofError::RootMismatch);
        }
        return Ok(());
    }
    // The RFC's path, with the old root prepended when the old tree is a perfect subtree.
    let shift = old_size.trailing_zeros();
    let inner = 64 - ((old_size - 1) ^ (new_size - 1)).leading_zeros() - shift;
    let border = (old_size - 1)
        .checked_shr(inner + shift)
        .unwrap_or(0)
        .count_ones();
    let starts_with_old = old_size.is_power_of_two();
    let expected = (inner + border) as usize + usize::from(!starts_with_old);
    if proof.len() != expected {
        return Err(ProofError::WrongLength {
            got: proof.len(),
            expected,
        });
    }
    let mut path: Vec<Digest> = Vec::with_capacity(proof.len() + 1);
    if starts_with_old {
        path.push(*old_root);
    }
    path.extend_from_slice(proof);
    let mut fnode = old_size - 1;
    let mut snode = new_size - 1;
    while fnode & 1 == 1 {
        fnode >>= 1;
        snode >>= 1;
    }
    let mut fr = path[0];
    let mut sr = path[0];
    for c in &path[1..] {
        if snode == 0 {
            return Err(ProofError::WrongLength {
                got: proof.len(),
                expected,
            });
        }
        if fnode & 1 == 1 || fnode == snode {
            fr = node_hash(c, &fr);
            sr = node_hash(c, &sr);
            while fnode & 1 == 0 && fnode != 0 {
                fnode >>= 1;
                snode >>= 1;
            }
        } else {
            sr = node_hash(&sr, c);
        }
        fnode >>= 1;
        snode >>= 1;
    }
    if snode != 0 || !fr.ct_eq(old_root) || !sr.ct_eq(new_root) {
        return Err(ProofError::RootMismatch);
    }
    Ok(())
}

/// The right edge of a tree: the roots of its perfect subtrees, largest first. Enough to
/// append leaves and compute the new root without the old leaves (the checkpointer stores
/// it next to each tree head and checks it against the signed root before extending).
///
/// ```
/// use guardrail_audit::merkle::{CompactRange, MerkleTree, leaf_hash};
/// let leaves: Vec<_> = (0u8..7).map(|i| leaf_hash(&[i])).collect();
/// let mut edge = CompactRange::default();
/// for l in &leaves { edge.push(*l); }
/// assert_eq!(edge.root(), MerkleTree::from_leaves(leaves).root());
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CompactRange {
    size: u64,
    peaks: Vec<Digest>,
}

impl CompactRange {
    /// The edge of a tree of `size` leaves, from its peaks (largest first). `None` when the
    /// number of peaks is not the number of one bits of `size`.
    pub fn from_peaks(size: u64, peaks: Vec<Digest>) -> Option<CompactRange> {
        (peaks.len() == size.count_ones() as usize).then_some(CompactRange { size, peaks })
    }

    /// Number of leaves covered.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The peaks, largest subtree first.
    pub fn peaks(&self) -> &[Digest] {
        &self.peaks
    }

    /// Appends one leaf hash.
    pub fn push(&mut self, leaf: Digest) {
        let mut h = leaf;
        let mut size = self.size;
        while size & 1 == 1 {
            // The last peak has the same height as `h`: merge them.
            if let Some(left) = self.peaks.pop() {
                h = node_hash(&left, &h);
            }
            size >>= 1;
        }
        self.peaks.push(h);
        self.size += 1;
    }

    /// The root of the tree covered.
    pub fn root(&self) -> Digest {
        let mut peaks = self.peaks.iter().rev();
        let Some(last) = peaks.next() else {
            return empty_root();
        };
        peaks.fold(*last, |right, left| node_hash(left, &right))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leaves(n: u8) -> Vec<Digest> {
        (0..n).map(|i| leaf_hash(&[i, i.wrapping_mul(7)])).collect()
    }

    /// The recursive definition of RFC 6962 §2.1, as the oracle for the stored levels.
    fn mth(d: &[Digest]) -> Digest {
        match d.len() {
            0 => empty_root(),
            1 => d[0],
            n => {
                let k = split(n as u64) as usize;
                node_hash(&mth(&d[..k]), &mth(&d[k..]))
            }
        }
    }

    #[test]
    fn stored_levels_agree_with_the_recursive_definition() {
        for n in 0..40u8 {
            let l = leaves(n);
            let tree = MerkleTree::from_leaves(l.clone());
            let mut pushed = MerkleTree::default();
            let mut edge = CompactRange::default();
            for (i, h) in l.iter().enumerate() {
                pushed.push(*h);
                edge.push(*h);
                assert_eq!(tree.root_at(i as u64 + 1).unwrap(), mth(&l[..=i]));
            }
            assert_eq!(tree.root(), mth(&l), "n = {n}");
            assert_eq!(pushed.root(), mth(&l), "n = {n}");
            assert_eq!(edge.root(), mth(&l), "n = {n}");
            assert_eq!(edge.peaks().len(), usize::from(n).count_ones() as usize);
        }
    }

    #[test]
    fn every_proof_of_small_trees_verifies() {
        let l = leaves(33);
        let tree = MerkleTree::from_leaves(l.clone());
        for size in 1..=33u64 {
            let root = tree.root_at(size).unwrap();
            for i in 0..size {
                let p = tree.inclusion_proof_at(i, size).unwrap();
                verify_inclusion(&l[i as usize], i, size, &p, &root).unwrap();
            }
            for old in 0..=size {
                let p = tree.consistency_proof_between(old, size).unwrap();
                verify_consistency(old, size, &tree.root_at(old).unwrap(), &root, &p).unwrap();
            }
        }
    }

    #[test]
    fn split_is_the_largest_power_of_two_below() {
        assert_eq!(split(2), 1);
        assert_eq!(split(3), 2);
        assert_eq!(split(4), 2);
        assert_eq!(split(5), 4);
        assert_eq!(split(9), 8);
    }
}
