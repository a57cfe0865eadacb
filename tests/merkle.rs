//! RFC 6962 Merkle trees: known answers, the proof-mutation suite, signed tree heads and the
//! offline inclusion bundle.
//!
//! The vectors are those of transparency-dev/merkle (Apache-2.0): leaf inputs, node and root
//! hashes from `testonly/constants.go` (`LeafInputs`, `NodeHashes`, `RootHashes`), inclusion
//! and consistency proofs from `proof/verify_test.go` (`inclusionProofs`,
//! `consistencyProofs`), copied here as hex. The mutations follow that file's
//! `corruptInclusionProof` / `corruptConsistencyProof`, plus every single-bit flip.

use guardrail_audit::merkle::{
    BundleError, BundleEvent, ChainCount, ChainId, CompactRange, InclusionBundle, MerkleTree,
    ProofError, TreeHead, TreeHeadError, empty_root, leaf_bytes, leaf_hash, node_hash,
    verify_consistency, verify_inclusion,
};
use guardrail_audit::{Chain, CheckpointSigner, Digest, EventKind, Record, Timestamp};

fn d(hex: &str) -> Digest {
    Digest::from_hex(hex).unwrap()
}

fn leaf_inputs() -> Vec<Vec<u8>> {
    [
        "",
        "00",
        "10",
        "2021",
        "3031",
        "40414243",
        "5051525354555657",
        "606162636465666768696a6b6c6d6e6f",
    ]
    .iter()
    .map(|h| hex::decode(h).unwrap())
    .collect()
}

/// `RootHashes()`: index = tree size.
const ROOTS: [&str; 9] = [
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
];

/// `NodeHashes()`: level 0 (the leaf hashes), 1, 2, 3.
const NODES: [&[&str]; 4] = [
    &[
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
        "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
        "0298d122906dcfc10892cb53a73992fc5b9f493ea4c9badb27b791b4127a7fe7",
        "07506a85fd9dd2f120eb694f86011e5bb4662e5c415a62917033d4a9624487e7",
        "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        "4271a26be0d8a84f0bd54c8c302e7cb3a3b5d1fa6780a40bcce2873477dab658",
        "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
        "46f6ffadd3d06a09ff3c5860d2755c8b9819db7df44251788c7d8e3180de8eb1",
    ],
    &[
        "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
        "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
        "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
        "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
    ],
    &[
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
    ],
    &["5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328"],
];

/// `inclusionProofs`: (1-based leaf, tree size, proof).
fn inclusion_vectors() -> Vec<(u64, u64, Vec<Digest>)> {
    vec![
        (1, 1, vec![]),
        (
            1,
            8,
            vec![
                d("96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7"),
                d("5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e"),
                d("6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"),
            ],
        ),
        (
            6,
            8,
            vec![
                d("bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"),
                d("ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0"),
                d("d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"),
            ],
        ),
        (
            3,
            3,
            vec![d(
                "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
            )],
        ),
        (
            2,
            5,
            vec![
                d("6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"),
                d("5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e"),
                d("bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"),
            ],
        ),
    ]
}

/// `consistencyProofs`: (size1, size2, proof).
fn consistency_vectors() -> Vec<(u64, u64, Vec<Digest>)> {
    vec![
        (1, 1, vec![]),
        (
            1,
            8,
            vec![
                d("96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7"),
                d("5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e"),
                d("6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"),
            ],
        ),
        (
            6,
            8,
            vec![
                d("0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a"),
                d("ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0"),
                d("d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"),
            ],
        ),
        (
            2,
            5,
            vec![
                d("5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e"),
                d("bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"),
            ],
        ),
        (
            6,
            7,
            vec![
                d("0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a"),
                d("b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f"),
                d("d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"),
            ],
        ),
    ]
}

fn vector_tree() -> MerkleTree {
    MerkleTree::from_leaves(leaf_inputs().iter().map(|l| leaf_hash(l)).collect())
}

#[test]
fn leaf_node_and_root_hashes_match_the_rfc6962_vectors() {
    let leaves = leaf_inputs();
    for (i, l) in leaves.iter().enumerate() {
        assert_eq!(leaf_hash(l), d(NODES[0][i]), "leaf {i}");
    }
    for level in 1..NODES.len() {
        for (i, want) in NODES[level].iter().enumerate() {
            let got = node_hash(&d(NODES[level - 1][2 * i]), &d(NODES[level - 1][2 * i + 1]));
            assert_eq!(got, d(want), "level {level} node {i}");
        }
    }
    assert_eq!(empty_root(), d(ROOTS[0]));
    let tree = vector_tree();
    let mut edge = CompactRange::default();
    let mut grown = MerkleTree::default();
    for size in 0..=8u64 {
        assert_eq!(
            tree.root_at(size).unwrap(),
            d(ROOTS[size as usize]),
            "size {size}"
        );
        assert_eq!(edge.root(), d(ROOTS[size as usize]), "edge at size {size}");
        assert_eq!(
            grown.root(),
            d(ROOTS[size as usize]),
            "pushed to size {size}"
        );
        if size < 8 {
            edge.push(leaf_hash(&leaves[size as usize]));
            grown.push(leaf_hash(&leaves[size as usize]));
        }
    }
}

#[test]
fn inclusion_proofs_match_the_vectors_and_verify() {
    let tree = vector_tree();
    let leaves = leaf_inputs();
    for (leaf, size, proof) in inclusion_vectors() {
        let index = leaf - 1;
        assert_eq!(
            tree.inclusion_proof_at(index, size).unwrap(),
            proof,
            "PATH({index}, {size})"
        );
        let root = d(ROOTS[size as usize]);
        verify_inclusion(
            &leaf_hash(&leaves[index as usize]),
            index,
            size,
            &proof,
            &root,
        )
        .unwrap_or_else(|e| panic!("leaf {index} of {size}: {e}"));
    }
}

#[test]
fn consistency_proofs_match_the_vectors_and_verify() {
    let tree = vector_tree();
    for (size1, size2, proof) in consistency_vectors() {
        assert_eq!(
            tree.consistency_proof_between(size1, size2).unwrap(),
            proof,
            "PROOF({size1}, {size2})"
        );
        verify_consistency(
            size1,
            size2,
            &d(ROOTS[size1 as usize]),
            &d(ROOTS[size2 as usize]),
            &proof,
        )
        .unwrap_or_else(|e| panic!("{size1} -> {size2}: {e}"));
    }
}

fn some_hash() -> Digest {
    d("abacaba000000000000000000000000000000000000000000060061e00123456")
}

/// Every way an inclusion proof can be altered: index, sizes, leaf, root, each hash (every
/// bit), a hash dropped, added at either end or inserted.
fn inclusion_mutations(
    leaf: Digest,
    index: u64,
    size: u64,
    proof: &[Digest],
    root: Digest,
) -> Vec<(String, Digest, u64, u64, Vec<Digest>, Digest)> {
    let mut out = vec![
        (
            "index - 1".into(),
            leaf,
            index.wrapping_sub(1),
            size,
            proof.to_vec(),
            root,
        ),
        (
            "index + 1".into(),
            leaf,
            index + 1,
            size,
            proof.to_vec(),
            root,
        ),
        (
            "index ^ 2".into(),
            leaf,
            index ^ 2,
            size,
            proof.to_vec(),
            root,
        ),
        (
            "size * 2".into(),
            leaf,
            index,
            size * 2,
            proof.to_vec(),
            root,
        ),
        (
            "size / 2".into(),
            leaf,
            index,
            size / 2,
            proof.to_vec(),
            root,
        ),
        (
            "wrong leaf".into(),
            leaf_hash(b"WrongLeaf"),
            index,
            size,
            proof.to_vec(),
            root,
        ),
        (
            "empty root".into(),
            leaf,
            index,
            size,
            proof.to_vec(),
            empty_root(),
        ),
        (
            "random root".into(),
            leaf,
            index,
            size,
            proof.to_vec(),
            some_hash(),
        ),
    ];
    let mut with = |name: &str, p: Vec<Digest>| out.push((name.into(), leaf, index, size, p, root));
    let mut trailing = proof.to_vec();
    trailing.push(root);
    with("trailing root", trailing);
    let mut trailing = proof.to_vec();
    trailing.push(Digest([0; 32]));
    with("trailing zero hash", trailing);
    let mut leading = vec![root];
    leading.extend_from_slice(proof);
    with("preceding root", leading);
    let mut leading = vec![Digest([0; 32])];
    leading.extend_from_slice(proof);
    with("preceding zero hash", leading);
    if !proof.is_empty() {
        with("removed last", proof[..proof.len() - 1].to_vec());
        with("removed first", proof[1..].to_vec());
    }
    if proof.len() > 1 {
        let mut inserted = vec![proof[0], some_hash()];
        inserted.extend_from_slice(&proof[1..]);
        with("inserted component", inserted);
        let mut swapped = proof.to_vec();
        swapped.swap(0, 1);
        with("swapped first two", swapped);
    }
    for i in 0..proof.len() {
        for bit in 0..256 {
            let mut p = proof.to_vec();
            p[i].0[bit / 8] ^= 1 << (bit % 8);
            with(&format!("proof[{i}] bit {bit}"), p);
        }
    }
    for bit in 0..256 {
        let mut l = leaf;
        l.0[bit / 8] ^= 1 << (bit % 8);
        out.push((
            format!("leaf bit {bit}"),
            l,
            index,
            size,
            proof.to_vec(),
            root,
        ));
        let mut r = root;
        r.0[bit / 8] ^= 1 << (bit % 8);
        out.push((
            format!("root bit {bit}"),
            leaf,
            index,
            size,
            proof.to_vec(),
            r,
        ));
    }
    out
}

#[test]
fn every_altered_inclusion_proof_fails() {
    let leaves = leaf_inputs();
    let tree = vector_tree();
    let mut cases = inclusion_vectors();
    // Every leaf of every tree of the vectors, not only the five pinned proofs.
    for size in 1..=8u64 {
        for index in 0..size {
            cases.push((
                index + 1,
                size,
                tree.inclusion_proof_at(index, size).unwrap(),
            ));
        }
    }
    let mut checked = 0;
    for (leaf, size, proof) in cases {
        let index = leaf - 1;
        let root = d(ROOTS[size as usize]);
        let leaf = leaf_hash(&leaves[index as usize]);
        verify_inclusion(&leaf, index, size, &proof, &root).unwrap();
        for (name, l, i, s, p, r) in inclusion_mutations(leaf, index, size, &proof, root) {
            // A mutation that lands on another genuine statement is not an alteration:
            // leaf 0 of a 1-leaf tree is the root itself, for example.
            let genuine = s <= 8
                && s > 0
                && i < s
                && tree.inclusion_proof_at(i, s).ok().as_ref() == Some(&p)
                && r == d(ROOTS[s as usize])
                && i < 8
                && l == leaf_hash(&leaves[i as usize]);
            if genuine {
                continue;
            }
            assert!(
                verify_inclusion(&l, i, s, &p, &r).is_err(),
                "inclusion of leaf {index} in {size} verified after: {name}"
            );
            checked += 1;
        }
    }
    assert!(checked > 10_000, "{checked}");
}

#[test]
fn every_altered_consistency_proof_fails() {
    let tree = vector_tree();
    let mut cases = consistency_vectors();
    for size2 in 1..=8u64 {
        for size1 in 1..size2 {
            cases.push((
                size1,
                size2,
                tree.consistency_proof_between(size1, size2).unwrap(),
            ));
        }
    }
    let mut checked = 0;
    for (s1, s2, proof) in cases {
        let (r1, r2) = (d(ROOTS[s1 as usize]), d(ROOTS[s2 as usize]));
        verify_consistency(s1, s2, &r1, &r2, &proof).unwrap();
        if proof.is_empty() {
            continue; // equal sizes: nothing to alter but the roots, below
        }
        let mut m: Vec<(String, u64, u64, Digest, Digest, Vec<Digest>)> = vec![
            ("size1 - 1".into(), s1 - 1, s2, r1, r2, proof.clone()),
            ("size1 + 1".into(), s1 + 1, s2, r1, r2, proof.clone()),
            ("size1 ^ 2".into(), s1 ^ 2, s2, r1, r2, proof.clone()),
            ("size2 * 2".into(), s1, s2 * 2, r1, r2, proof.clone()),
            ("size2 / 2".into(), s1, s2 / 2, r1, r2, proof.clone()),
            ("wrong root1".into(), s1, s2, some_hash(), r2, proof.clone()),
            ("wrong root2".into(), s1, s2, r1, some_hash(), proof.clone()),
            ("swapped roots".into(), s1, s2, r2, r1, proof.clone()),
            ("empty proof".into(), s1, s2, r1, r2, vec![]),
            (
                "removed last".into(),
                s1,
                s2,
                r1,
                r2,
                proof[..proof.len() - 1].to_vec(),
            ),
            ("removed first".into(), s1, s2, r1, r2, proof[1..].to_vec()),
        ];
        for (name, extra, front) in [
            ("trailing root1", r1, false),
            ("trailing root2", r2, false),
            ("trailing zero hash", Digest([0; 32]), false),
            ("preceding root1", r1, true),
            ("preceding root2", r2, true),
            ("preceding proof[0]", proof[0], true),
        ] {
            let mut p = proof.clone();
            if front {
                p.insert(0, extra);
            } else {
                p.push(extra);
            }
            m.push((name.into(), s1, s2, r1, r2, p));
        }
        for i in 0..proof.len() {
            for bit in 0..256 {
                let mut p = proof.clone();
                p[i].0[bit / 8] ^= 1 << (bit % 8);
                m.push((format!("proof[{i}] bit {bit}"), s1, s2, r1, r2, p));
            }
        }
        for bit in 0..256 {
            let (mut a, mut b) = (r1, r2);
            a.0[bit / 8] ^= 1 << (bit % 8);
            b.0[bit / 8] ^= 1 << (bit % 8);
            m.push((format!("root1 bit {bit}"), s1, s2, a, r2, proof.clone()));
            m.push((format!("root2 bit {bit}"), s1, s2, r1, b, proof.clone()));
        }
        for (name, a, b, x, y, p) in m {
            let genuine = a <= b
                && b <= 8
                && x == d(ROOTS[a as usize])
                && y == d(ROOTS[b as usize])
                && tree.consistency_proof_between(a, b).ok().as_ref() == Some(&p);
            if genuine {
                continue;
            }
            assert!(
                verify_consistency(a, b, &x, &y, &p).is_err(),
                "consistency {s1} -> {s2} verified after: {name}"
            );
            checked += 1;
        }
    }
    assert!(checked > 10_000, "{checked}");
}

#[test]
fn consistency_edge_cases_follow_rfc9162() {
    let (r1, r2) = (some_hash(), empty_root());
    // An empty tree is a prefix of every tree, with an empty proof only.
    verify_consistency(0, 5, &r1, &r2, &[]).unwrap();
    assert!(verify_consistency(0, 5, &r1, &r2, &[r2]).is_err());
    // Equal sizes: equal roots and an empty proof.
    verify_consistency(3, 3, &r1, &r1, &[]).unwrap();
    assert_eq!(
        verify_consistency(3, 3, &r1, &r2, &[]),
        Err(ProofError::RootMismatch)
    );
    assert!(verify_consistency(3, 3, &r1, &r1, &[r1]).is_err());
    // Back in time.
    assert_eq!(
        verify_consistency(2, 1, &r1, &r2, &[]),
        Err(ProofError::SizesReversed {
            old_size: 2,
            new_size: 1
        })
    );
    // A proof is needed between different non-empty sizes.
    assert!(verify_consistency(1, 2, &r1, &r2, &[]).is_err());
    // Inclusion in an empty tree, or past the end.
    assert!(verify_inclusion(&r1, 0, 0, &[], &r1).is_err());
    assert!(verify_inclusion(&r1, 1, 1, &[], &r1).is_err());
    verify_inclusion(&r1, 0, 1, &[], &r1).unwrap();
}

#[test]
fn large_trees_prove_every_sampled_leaf_and_size() {
    let leaves: Vec<Digest> = (0u32..1000).map(|i| leaf_hash(&i.to_be_bytes())).collect();
    let tree = MerkleTree::from_leaves(leaves.clone());
    for size in [1u64, 2, 3, 255, 256, 257, 511, 999, 1000] {
        let root = tree.root_at(size).unwrap();
        for index in [0, size / 3, size / 2, size - 1] {
            let p = tree.inclusion_proof_at(index, size).unwrap();
            verify_inclusion(&leaves[index as usize], index, size, &p, &root).unwrap();
        }
        for old in [1u64, 7, 64, 100, 256] {
            if old <= size {
                let p = tree.consistency_proof_between(old, size).unwrap();
                verify_consistency(old, size, &tree.root_at(old).unwrap(), &root, &p).unwrap();
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// Signed tree heads and the inclusion bundle
// ---------------------------------------------------------------------------------------

fn signer() -> CheckpointSigner {
    CheckpointSigner::ed25519_from_seed(&[42; 32])
}

#[test]
fn a_tree_head_verifies_and_every_altered_byte_fails() {
    let s = signer();
    let chains = vec![
        ChainCount {
            chain: ChainId::new("b").unwrap(),
            count: 2,
            head: Digest([2; 32]),
        },
        ChainCount {
            chain: ChainId::new("a").unwrap(),
            count: 1,
            head: Digest([1; 32]),
        },
    ];
    let line = TreeHead::sign(&s, "audit", 3, d(ROOTS[3]), chains, Timestamp(7));
    let head = TreeHead::verify(&s.verifier(), line.as_bytes()).unwrap();
    assert_eq!((head.size, head.root), (3, d(ROOTS[3])));
    assert_eq!(head.chains[0].chain.as_str(), "a", "chains are sorted");
    assert_eq!(head.count_of(&ChainId::new("b").unwrap()), 2);
    let bytes = line.as_bytes();
    for i in 0..bytes.len() {
        let mut t = bytes.to_vec();
        t[i] ^= 0x01;
        assert!(
            TreeHead::verify(&s.verifier(), &t).is_err(),
            "byte {i} altered still verifies"
        );
    }
    // A checkpoint line of the same key is not a tree head, and the reverse.
    let cp = s.sign("audit", 2, d(ROOTS[3]), Timestamp(7));
    assert!(TreeHead::verify(&s.verifier(), cp.as_bytes()).is_err());
    assert!(s.verifier().verify_line(line.as_bytes()).is_err());
    // Another key.
    let other = CheckpointSigner::ed25519_from_seed(&[43; 32]);
    assert!(matches!(
        TreeHead::verify(&other.verifier(), line.as_bytes()),
        Err(TreeHeadError::Signature(_))
    ));
}

#[test]
fn a_signed_tree_head_whose_counts_do_not_add_up_is_refused() {
    let s = signer();
    let chains = vec![ChainCount {
        chain: ChainId::default(),
        count: 2,
        head: Digest([2; 32]),
    }];
    let line = TreeHead::sign(&s, "audit", 3, d(ROOTS[3]), chains, Timestamp(7));
    assert!(matches!(
        TreeHead::verify(&s.verifier(), line.as_bytes()),
        Err(TreeHeadError::Malformed(_))
    ));
}

const SUBJECT: &str =
    "hmac-sha256:00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";

/// A bundle over a small two-chain trail: every event of chain `a` names the subject.
fn bundle() -> (InclusionBundle, CheckpointSigner) {
    let s = signer();
    let mut lines: Vec<(ChainId, String)> = Vec::new();
    let mut heads = Vec::new();
    for (name, n) in [("a", 3u64), ("b", 4)] {
        let id = ChainId::new(name).unwrap();
        let mut chain = Chain::new();
        for i in 0..n {
            let mut r = Record::at(EventKind::Decision, Timestamp(1_000 + i));
            r.action = Some("read_chart".into());
            if name == "a" {
                r.subject = Some(SUBJECT.into());
            }
            let e = chain.link(r).unwrap();
            lines.push((id.clone(), e.line().to_owned()));
        }
        heads.push(ChainCount {
            chain: id,
            count: n,
            head: chain.head,
        });
    }
    let tree = MerkleTree::from_leaves(
        lines
            .iter()
            .map(|(c, l)| leaf_hash(&leaf_bytes(c.as_str(), l)))
            .collect(),
    );
    let head = TreeHead::sign(&s, "audit", tree.size(), tree.root(), heads, Timestamp(9));
    let events = lines
        .iter()
        .enumerate()
        .filter(|(_, (c, _))| c.as_str() == "a")
        .map(|(i, (c, l))| BundleEvent {
            chain: c.clone(),
            leaf_index: i as u64,
            line: l.clone(),
            proof: tree.inclusion_proof(i as u64).unwrap(),
        })
        .collect();
    (InclusionBundle::new(SUBJECT, head, events), s)
}

#[test]
fn a_bundle_verifies_offline_and_survives_json() {
    let (b, s) = bundle();
    let report = b.verify(&s.verifier()).unwrap();
    assert_eq!((report.events, report.tree_head.size), (3, 7));
    let again = InclusionBundle::parse(&b.to_json()).unwrap();
    assert_eq!(again, b);
}

#[test]
fn every_altered_part_of_a_bundle_fails() {
    let (b, s) = bundle();
    let v = s.verifier();
    let mut failures = 0;
    let mut check = |name: &str, altered: &InclusionBundle| {
        assert!(altered.verify(&v).is_err(), "verified after: {name}");
        failures += 1;
    };
    for (i, e) in b.events.iter().enumerate() {
        for at in 0..e.line.len() {
            let mut t = b.clone();
            let mut bytes = t.events[i].line.clone().into_bytes();
            bytes[at] ^= 0x01;
            let Ok(line) = String::from_utf8(bytes) else {
                continue;
            };
            t.events[i].line = line;
            check(&format!("event {i} byte {at}"), &t);
        }
        for p in 0..e.proof.len() {
            for bit in [0, 7, 100, 255] {
                let mut t = b.clone();
                t.events[i].proof[p].0[bit / 8] ^= 1 << (bit % 8);
                check(&format!("event {i} proof[{p}] bit {bit}"), &t);
            }
            let mut t = b.clone();
            t.events[i].proof.remove(p);
            check(&format!("event {i} proof[{p}] dropped"), &t);
        }
        let mut t = b.clone();
        t.events[i].proof.push(Digest([0; 32]));
        check(&format!("event {i} proof hash added"), &t);
        let mut t = b.clone();
        t.events[i].leaf_index ^= 1;
        check(&format!("event {i} leaf index"), &t);
        let mut t = b.clone();
        t.events[i].chain = ChainId::new("b").unwrap();
        check(&format!("event {i} chain"), &t);
    }
    let mut t = b.clone();
    t.subject = SUBJECT.replace("00", "01");
    check("subject", &t);
    let mut t = b.clone();
    t.events.swap(0, 1);
    check("order", &t);
    for at in 0..b.tree_head.len() {
        let mut t = b.clone();
        let mut bytes = t.tree_head.clone().into_bytes();
        bytes[at] ^= 0x01;
        let Ok(line) = String::from_utf8(bytes) else {
            continue;
        };
        t.tree_head = line;
        check(&format!("tree head byte {at}"), &t);
    }
    assert!(failures > 1000, "{failures}");
}

#[test]
fn a_bundle_of_another_format_is_refused() {
    let (b, _) = bundle();
    let text = b.to_json().replace("guardrail-inclusion-bundle", "other");
    assert!(matches!(
        InclusionBundle::parse(&text),
        Err(BundleError::Malformed(_))
    ));
    assert!(InclusionBundle::parse("{}").is_err());
}
