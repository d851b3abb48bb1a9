//! The global Merkle log: one RFC 6962 (RFC 9162) tree over every record of every run,
//! in feed order, so that a record that goes missing — a cut tail, a deleted run, a store
//! rolled back by its storage engine — changes a root someone has already seen.
//!
//! Leaves are `SHA-256(0x00 || leaf data)` and interior nodes `SHA-256(0x01 || left ||
//! right)`, exactly as in RFC 6962 §2.1, so any transparency-log verifier checks our
//! proofs. The leaf data of a record is [`LEAF_DOMAIN`], its run id, its seq and its
//! BLAKE3 record hash (see [`leaf_data`] and `docs/ledger-format.md`).
//!
//! Stores keep the hashes of every complete subtree, numbered as
//! [`tlog_tiles::stored_hash_index`] numbers them, so a root or a proof for any tree size
//! reads O(log n) of them. [`Frontier`] is the right edge of the tree, enough to append.

use std::cell::RefCell;

use tlog_tiles::{HashReader, HASH_SIZE};

use crate::{Hash, RunId};

pub use tlog_tiles::{
    node_hash, split_stored_hash_index, stored_hash_index, Hash as TreeHash, EMPTY_HASH,
};

/// The bytes every leaf's data starts with: the leaf format and its version.
pub const LEAF_DOMAIN: &[u8] = b"ledgerflow.leaf.v1\0";

/// Length of a leaf's data: domain, run id, seq, record hash.
pub const LEAF_DATA_BYTES: usize = LEAF_DOMAIN.len() + 16 + 8 + 32;

/// Longest proof this module builds or accepts: two per level of a 2^64-leaf tree.
const PROOF_HASHES_MAX: usize = 128;

/// Why a tree hash, a proof or its check failed.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Error {
    /// The leaf or tree size asked about is not inside the tree.
    #[error("leaf {index} is not in a tree of {size} leaves")]
    OutOfRange {
        /// The leaf index or older tree size asked about.
        index: u64,
        /// The tree size.
        size: u64,
    },
    /// The proof does not prove what it was checked against.
    #[error("the proof does not verify")]
    InvalidProof,
    /// A stored hash could not be read.
    #[error("reading the tree's hashes: {0}")]
    Read(String),
}

/// Reads stored subtree hashes by their [`stored_hash_index`].
pub trait NodeReader {
    /// The hashes at `indexes`, in that order; an index never written is an error.
    fn read_nodes(&self, indexes: &[u64]) -> Result<Vec<TreeHash>, String>;
}

impl<F> NodeReader for F
where
    F: Fn(&[u64]) -> Result<Vec<TreeHash>, String>,
{
    fn read_nodes(&self, indexes: &[u64]) -> Result<Vec<TreeHash>, String> {
        self(indexes)
    }
}

/// The data of the leaf that stands for record `seq` of `run_id` whose hash is
/// `record_hash`: `LEAF_DOMAIN || run id (16 bytes) || seq (u64 big-endian) || hash`.
pub fn leaf_data(run_id: RunId, seq: u64, record_hash: &Hash) -> [u8; LEAF_DATA_BYTES] {
    let mut data = [0u8; LEAF_DATA_BYTES];
    let (domain, rest) = data.split_at_mut(LEAF_DOMAIN.len());
    domain.copy_from_slice(LEAF_DOMAIN);
    rest[..16].copy_from_slice(run_id.as_bytes());
    rest[16..24].copy_from_slice(&seq.to_be_bytes());
    rest[24..].copy_from_slice(record_hash.as_bytes());
    data
}

/// The RFC 6962 leaf hash of a record: `SHA-256(0x00 || leaf_data(...))`.
pub fn leaf_hash(run_id: RunId, seq: u64, record_hash: &Hash) -> TreeHash {
    tlog_tiles::record_hash(&leaf_data(run_id, seq, record_hash))
}

/// Parses a tree hash from base64 (the checkpoint form) or 64 hex digits.
pub fn parse_tree_hash(text: &str) -> Option<TreeHash> {
    if text.len() == 2 * HASH_SIZE {
        let mut bytes = [0u8; HASH_SIZE];
        for (i, byte) in bytes.iter_mut().enumerate() {
            *byte = u8::from_str_radix(text.get(2 * i..2 * i + 2)?, 16).ok()?;
        }
        return Some(TreeHash(bytes));
    }
    TreeHash::parse_hash(text).ok()
}

/// A tree hash as 64 lowercase hex digits (the form used in JSON exports).
pub fn tree_hash_hex(hash: &TreeHash) -> String {
    hash.0.iter().map(|b| format!("{b:02x}")).collect()
}

/// The right edge of a tree: for each set bit `l` of its size, the hash of the complete
/// subtree of `2^l` leaves that bit stands for. Enough to append leaves and compute the
/// root without reading anything else.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Frontier {
    size: u64,
    /// `levels[l]` is set exactly when bit `l` of `size` is.
    levels: Vec<Option<TreeHash>>,
}

impl Frontier {
    /// The frontier of the empty tree.
    pub fn new() -> Self {
        Frontier::default()
    }

    /// Reads the frontier of the tree of `size` leaves from its stored hashes.
    pub fn load(size: u64, reader: &impl NodeReader) -> Result<Self, Error> {
        let mut indexes = Vec::new();
        let mut levels = Vec::new();
        let mut start = 0u64;
        for level in (0..64u8).rev() {
            if size & (1 << level) != 0 {
                indexes.push(stored_hash_index(level, start >> level));
                levels.push(level);
                start += 1 << level;
            }
        }
        let hashes = reader.read_nodes(&indexes).map_err(Error::Read)?;
        if hashes.len() != indexes.len() {
            return Err(Error::Read("a wrong number of hashes came back".into()));
        }
        let mut frontier = Frontier {
            size,
            levels: vec![None; 64],
        };
        for (level, hash) in levels.into_iter().zip(hashes) {
            frontier.levels[usize::from(level)] = Some(hash);
        }
        frontier.trim();
        Ok(frontier)
    }

    fn trim(&mut self) {
        while matches!(self.levels.last(), Some(None)) {
            self.levels.pop();
        }
    }

    /// Number of leaves.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Appends a leaf and returns every hash to store for it, with its stored index: the
    /// leaf itself and each subtree it completes (two on average).
    pub fn append(&mut self, leaf: TreeHash) -> Vec<(u64, TreeHash)> {
        let mut stored = vec![(stored_hash_index(0, self.size), leaf)];
        let mut hash = leaf;
        let mut level = 0usize;
        let mut n = self.size;
        while n & 1 == 1 {
            let left = self.levels.get_mut(level).and_then(Option::take);
            hash = tlog_tiles::node_hash(left.unwrap_or(EMPTY_HASH), hash);
            level += 1;
            n >>= 1;
            stored.push((stored_hash_index(level as u8, n), hash));
        }
        if self.levels.len() <= level {
            self.levels.resize(level + 1, None);
        }
        self.levels[level] = Some(hash);
        self.size += 1;
        stored
    }

    /// The tree's root hash (RFC 6962 MTH); [`EMPTY_HASH`] for the empty tree.
    pub fn root(&self) -> TreeHash {
        let mut root: Option<TreeHash> = None;
        for hash in self.levels.iter().flatten() {
            root = Some(match root {
                None => *hash,
                Some(right) => tlog_tiles::node_hash(*hash, right),
            });
        }
        root.unwrap_or(EMPTY_HASH)
    }
}

/// Adapts a [`NodeReader`] to `tlog_tiles`, keeping the reader's own error text.
struct Reader<'a, R: NodeReader> {
    inner: &'a R,
    failed: RefCell<Option<String>>,
}

impl<R: NodeReader> HashReader for Reader<'_, R> {
    fn read_hashes(&self, indexes: &[u64]) -> Result<Vec<TreeHash>, tlog_tiles::Error> {
        match self.inner.read_nodes(indexes) {
            Ok(hashes) if hashes.len() == indexes.len() => Ok(hashes),
            Ok(_) => {
                *self.failed.borrow_mut() = Some("a wrong number of hashes came back".into());
                Err(tlog_tiles::Error::InvalidProof)
            }
            Err(e) => {
                *self.failed.borrow_mut() = Some(e);
                Err(tlog_tiles::Error::InvalidProof)
            }
        }
    }
}

fn with_reader<R: NodeReader, T>(
    reader: &R,
    f: impl FnOnce(&Reader<'_, R>) -> Result<T, tlog_tiles::Error>,
) -> Result<T, Error> {
    let adapter = Reader {
        inner: reader,
        failed: RefCell::new(None),
    };
    let result = f(&adapter);
    match (result, adapter.failed.into_inner()) {
        (_, Some(e)) => Err(Error::Read(e)),
        (Ok(value), None) => Ok(value),
        (Err(_), None) => Err(Error::InvalidProof),
    }
}

/// The root of the tree's first `size` leaves.
pub fn tree_root(size: u64, reader: &impl NodeReader) -> Result<TreeHash, Error> {
    with_reader(reader, |r| tlog_tiles::tree_hash(size, r))
}

/// The RFC 6962 audit path that leaf `index` is in the tree of `size` leaves.
pub fn prove_inclusion(
    index: u64,
    size: u64,
    reader: &impl NodeReader,
) -> Result<Vec<TreeHash>, Error> {
    if index >= size {
        return Err(Error::OutOfRange { index, size });
    }
    with_reader(reader, |r| tlog_tiles::prove_record(size, index, r))
}

/// The RFC 6962 consistency proof that the tree of `old_size` leaves is a prefix of the
/// tree of `size` leaves.
pub fn prove_consistency(
    old_size: u64,
    size: u64,
    reader: &impl NodeReader,
) -> Result<Vec<TreeHash>, Error> {
    if old_size > size {
        return Err(Error::OutOfRange {
            index: old_size,
            size,
        });
    }
    if old_size == 0 || old_size == size {
        return Ok(Vec::new());
    }
    with_reader(reader, |r| tlog_tiles::prove_tree(size, old_size, r))
}

/// Checks that `proof` shows `leaf` at `index` in the tree of `size` leaves whose root
/// is `root`.
pub fn verify_inclusion(
    proof: &[TreeHash],
    index: u64,
    leaf: TreeHash,
    size: u64,
    root: TreeHash,
) -> Result<(), Error> {
    if index >= size {
        return Err(Error::OutOfRange { index, size });
    }
    if proof.len() > PROOF_HASHES_MAX {
        return Err(Error::InvalidProof);
    }
    tlog_tiles::check_record(&proof.to_vec(), size, root, index, leaf)
        .map_err(|_| Error::InvalidProof)
}

/// Checks that `proof` shows the tree of `old_size` leaves with root `old_root` is a
/// prefix of the tree of `size` leaves with root `root`.
pub fn verify_consistency(
    proof: &[TreeHash],
    old_size: u64,
    old_root: TreeHash,
    size: u64,
    root: TreeHash,
) -> Result<(), Error> {
    if old_size > size {
        return Err(Error::OutOfRange {
            index: old_size,
            size,
        });
    }
    if proof.len() > PROOF_HASHES_MAX {
        return Err(Error::InvalidProof);
    }
    if old_size == size {
        return if proof.is_empty() && old_root == root {
            Ok(())
        } else {
            Err(Error::InvalidProof)
        };
    }
    if old_size == 0 {
        return if proof.is_empty() && old_root == EMPTY_HASH {
            Ok(())
        } else {
            Err(Error::InvalidProof)
        };
    }
    tlog_tiles::check_tree(&proof.to_vec(), size, root, old_size, old_root)
        .map_err(|_| Error::InvalidProof)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashMap;

    /// A tree kept in memory the way stores keep it: stored hashes by index.
    #[derive(Default)]
    struct Memory {
        nodes: HashMap<u64, TreeHash>,
        frontier: Frontier,
        leaves: Vec<TreeHash>,
    }

    impl Memory {
        fn append(&mut self, leaf: TreeHash) {
            for (index, hash) in self.frontier.append(leaf) {
                self.nodes.insert(index, hash);
            }
            self.leaves.push(leaf);
        }
    }

    impl NodeReader for Memory {
        fn read_nodes(&self, indexes: &[u64]) -> Result<Vec<TreeHash>, String> {
            indexes
                .iter()
                .map(|i| self.nodes.get(i).copied().ok_or(format!("no hash {i}")))
                .collect()
        }
    }

    fn leaf(i: u64) -> TreeHash {
        leaf_hash(
            RunId::from_bytes([7; 16]),
            i + 1,
            &Hash::from_bytes([i as u8; 32]),
        )
    }

    /// RFC 6962's MTH, straight from its definition.
    fn mth(leaves: &[TreeHash]) -> TreeHash {
        match leaves.len() {
            0 => EMPTY_HASH,
            1 => leaves[0],
            n => {
                let k = 1usize << (usize::BITS - 1 - (n - 1).leading_zeros());
                tlog_tiles::node_hash(mth(&leaves[..k]), mth(&leaves[k..]))
            }
        }
    }

    #[test]
    fn frontier_matches_the_definition_and_tlog_tiles() {
        let mut tree = Memory::default();
        for i in 0..70u64 {
            let expected_stored = tlog_tiles::stored_hashes_for_record_hash(
                i,
                leaf(i),
                &Reader {
                    inner: &tree,
                    failed: RefCell::new(None),
                },
            )
            .expect("stored hashes");
            let mut copy = tree.frontier.clone();
            let stored: Vec<TreeHash> = copy.append(leaf(i)).into_iter().map(|(_, h)| h).collect();
            assert_eq!(stored, expected_stored, "leaf {i}");
            tree.append(leaf(i));
            let size = i + 1;
            assert_eq!(tree.frontier.root(), mth(&tree.leaves), "size {size}");
            assert_eq!(tree_root(size, &tree), Ok(mth(&tree.leaves)));
            assert_eq!(Frontier::load(size, &tree), Ok(tree.frontier.clone()));
        }
    }

    #[test]
    fn leaf_data_layout() {
        let run = RunId::from_bytes([0xab; 16]);
        let data = leaf_data(run, 258, &Hash::from_bytes([0xcd; 32]));
        assert_eq!(&data[..19], b"ledgerflow.leaf.v1\0");
        assert_eq!(&data[19..35], &[0xab; 16]);
        assert_eq!(&data[35..43], &[0, 0, 0, 0, 0, 0, 1, 2]);
        assert_eq!(&data[43..], &[0xcd; 32]);
    }

    #[test]
    fn out_of_range_asks_are_errors() {
        let mut tree = Memory::default();
        tree.append(leaf(0));
        assert_eq!(
            prove_inclusion(1, 1, &tree),
            Err(Error::OutOfRange { index: 1, size: 1 })
        );
        assert_eq!(
            prove_consistency(2, 1, &tree),
            Err(Error::OutOfRange { index: 2, size: 1 })
        );
        assert!(matches!(tree_root(5, &tree), Err(Error::Read(_))));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn every_proof_verifies_and_any_change_fails(
            size in 1u64..300,
            pick in any::<u64>(),
            old_pick in any::<u64>(),
            flip in any::<u8>(),
        ) {
            let mut tree = Memory::default();
            for i in 0..size {
                tree.append(leaf(i));
            }
            let root = tree.frontier.root();
            let index = pick % size;
            let proof = prove_inclusion(index, size, &tree).expect("proof");
            prop_assert_eq!(verify_inclusion(&proof, index, leaf(index), size, root), Ok(()));
            // Another leaf, another index, another root, a changed proof. (The size is bound
            // by the checkpoint's signature over size and root: a proof alone may fit the
            // same root under another size, as RFC 6962 paths do.)
            prop_assert!(verify_inclusion(&proof, index, leaf(index + 1), size, root).is_err());
            if size > 1 {
                prop_assert!(verify_inclusion(&proof, (index + 1) % size, leaf(index), size, root).is_err());
            }
            let mut bad_root = root;
            bad_root.0[usize::from(flip % 32)] ^= 1;
            prop_assert!(verify_inclusion(&proof, index, leaf(index), size, bad_root).is_err());
            if !proof.is_empty() {
                let mut bad = proof.clone();
                let k = usize::from(flip) % bad.len();
                bad[k].0[0] ^= 0x80;
                prop_assert!(verify_inclusion(&bad, index, leaf(index), size, root).is_err());
            }

            let old_size = 1 + old_pick % size;
            let old_root = tree_root(old_size, &tree).expect("old root");
            prop_assert_eq!(old_root, mth(&tree.leaves[..old_size as usize]));
            let consistency = prove_consistency(old_size, size, &tree).expect("consistency");
            prop_assert_eq!(verify_consistency(&consistency, old_size, old_root, size, root), Ok(()));
            prop_assert!(verify_consistency(&consistency, old_size, old_root, size, bad_root).is_err());
            let mut bad_old = old_root;
            bad_old.0[0] ^= 1;
            prop_assert!(verify_consistency(&consistency, old_size, bad_old, size, root).is_err());
            // (A changed size with the same root can still fit the hashes, e.g. 2 -> 4
            // read as 2 -> 3: a size is bound by the signature over size and root.)
            if !consistency.is_empty() {
                let mut bad = consistency.clone();
                bad[0].0[5] ^= 1;
                prop_assert!(verify_consistency(&bad, old_size, old_root, size, root).is_err());
            }
        }
    }
}
