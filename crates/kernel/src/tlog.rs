//! Reading the global Merkle log of any [`Store`]: its head, the inclusion proof of a
//! record and the consistency proof between two sizes (`docs/ledger-format.md`, "The
//! global log").

use ledgerflow_ledger::merkle::{self, TreeHash};

use crate::store::{Error, Store};
use crate::{Hash, RunId};

/// The size and root of a store's global log.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LogHead {
    /// Number of leaves: every acknowledged record of every run.
    pub size: u64,
    /// RFC 6962 root over them.
    pub root: TreeHash,
}

/// The proof that one record is leaf `leaf_index` of the tree of `tree_size` leaves.
#[derive(Clone, Debug, PartialEq)]
pub struct RecordProof {
    /// The record's run.
    pub run_id: RunId,
    /// The record's seq.
    pub seq: u64,
    /// The record's BLAKE3 hash, which its leaf covers.
    pub record_hash: Hash,
    /// Its leaf's index (its feed seq minus one).
    pub leaf_index: u64,
    /// The tree size the proof is for.
    pub tree_size: u64,
    /// The audit path, leaf to root.
    pub path: Vec<TreeHash>,
}

impl RecordProof {
    /// Checks the proof against the root of the tree of `tree_size` leaves.
    pub fn verify(&self, root: TreeHash) -> Result<(), merkle::Error> {
        merkle::verify_inclusion(
            &self.path,
            self.leaf_index,
            merkle::leaf_hash(self.run_id, self.seq, &self.record_hash),
            self.tree_size,
            root,
        )
    }
}

fn nodes<S: Store + ?Sized>(store: &S) -> impl Fn(&[u64]) -> Result<Vec<TreeHash>, String> + '_ {
    move |indexes: &[u64]| store.log_nodes(indexes).map_err(|e| e.to_string())
}

fn log_error(e: merkle::Error) -> Error {
    match e {
        merkle::Error::OutOfRange { index, size } => Error::InvalidInput(format!(
            "{index} is beyond the global log, which has {size} leaves"
        )),
        merkle::Error::InvalidProof => {
            Error::Corrupt("the global log's stored hashes do not agree".into())
        }
        merkle::Error::Read(e) => Error::Corrupt(format!("reading the global log: {e}")),
    }
}

/// The store's global log as acknowledged now.
pub fn log_head<S: Store + ?Sized>(store: &S) -> Result<LogHead, Error> {
    let size = store.feed_head()?;
    Ok(LogHead {
        size,
        root: log_root(store, size)?,
    })
}

/// The root of the first `size` leaves of the store's log.
pub fn log_root<S: Store + ?Sized>(store: &S, size: u64) -> Result<TreeHash, Error> {
    check_size(store, size)?;
    merkle::tree_root(size, &nodes(store)).map_err(log_error)
}

fn check_size<S: Store + ?Sized>(store: &S, size: u64) -> Result<u64, Error> {
    let head = store.feed_head()?;
    if size > head {
        return Err(Error::InvalidInput(format!(
            "tree size {size} is beyond the global log, which has {head} leaves"
        )));
    }
    Ok(head)
}

/// The inclusion proof of record `seq` of `run_id` in the tree of `tree_size` leaves
/// (the current size when `None`).
pub fn prove_record<S: Store + ?Sized>(
    store: &S,
    run_id: RunId,
    seq: u64,
    tree_size: Option<u64>,
) -> Result<RecordProof, Error> {
    let head = store.feed_head()?;
    let tree_size = tree_size.unwrap_or(head);
    check_size(store, tree_size)?;
    let record = store
        .read_records(run_id, seq, 1)?
        .into_iter()
        .next()
        .filter(|r| r.seq() == seq)
        .ok_or_else(|| Error::InvalidInput(format!("run {run_id} has no record {seq}")))?;
    let leaf_index = store.leaf_index(run_id, seq)?.ok_or_else(|| {
        Error::Corrupt(format!(
            "record {seq} of run {run_id} has no leaf in the global log"
        ))
    })?;
    if leaf_index >= tree_size {
        return Err(Error::InvalidInput(format!(
            "record {seq} of run {run_id} is leaf {leaf_index}, after the tree of {tree_size} leaves"
        )));
    }
    let path = merkle::prove_inclusion(leaf_index, tree_size, &nodes(store)).map_err(log_error)?;
    Ok(RecordProof {
        run_id,
        seq,
        record_hash: record.hash(),
        leaf_index,
        tree_size,
        path,
    })
}

/// The proof that the tree of `old_size` leaves is a prefix of the tree of `size`.
pub fn prove_consistency<S: Store + ?Sized>(
    store: &S,
    old_size: u64,
    size: u64,
) -> Result<Vec<TreeHash>, Error> {
    check_size(store, size)?;
    merkle::prove_consistency(old_size, size, &nodes(store)).map_err(log_error)
}

/// `(run id, seq)` of each of the first `size` leaves of the store's log, in leaf order
/// (what a complete export's proof file lists), read from the feed a page at a time.
pub fn log_leaves<S: Store + ?Sized>(store: &S, size: u64) -> Result<Vec<(RunId, u64)>, Error> {
    check_size(store, size)?;
    let mut leaves = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
    let page = store.limits().read_items_max;
    while (leaves.len() as u64) < size {
        let entries = store.read_feed(leaves.len() as u64, page)?;
        if entries.is_empty() {
            return Err(Error::Corrupt(format!(
                "the feed ends at {} before the log's size {size}",
                leaves.len()
            )));
        }
        leaves.extend(
            entries
                .into_iter()
                .take((size - leaves.len() as u64) as usize)
                .map(|e| (e.run_id, e.seq)),
        );
    }
    Ok(leaves)
}
