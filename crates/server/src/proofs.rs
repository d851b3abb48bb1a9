//! Proofs for auditors as JSON, one shape for the API and `ledgerflow log prove|consistency
//! --json`: inclusion proofs of a run's records in the latest signed checkpoint, and the
//! consistency proof from an older tree size to it; and the proof file of an export. Each
//! inclusion and consistency proof is verified before it is returned (a proof that does
//! not verify is damage, reported as `Corrupt`).

use ledgerflow_kernel::store::Error;
use ledgerflow_kernel::{log_leaves, log_root, prove_consistency, prove_record, RunId, Store};
use ledgerflow_ledger::bundle::{LeafProof, ProofBundle};
use ledgerflow_ledger::checkpoint::SignedCheckpoint;
use ledgerflow_ledger::merkle::{self, tree_hash_hex};
use serde_json::{json, Value};

/// The store's latest checkpoint, or `NotFound` saying why there is none.
pub fn latest(store: &dyn Store) -> Result<SignedCheckpoint, Error> {
    store.latest_checkpoint()?.ok_or_else(|| {
        Error::NotFound(
            "a checkpoint: this store has none yet (a store writes one after every durable \
             commit and on close; memory stores keep none)"
                .into(),
        )
    })
}

fn hexes(path: &[merkle::TreeHash]) -> Vec<String> {
    path.iter().map(tree_hash_hex).collect()
}

/// Inclusion proofs of `run`'s record `seq` (every record when `None`) in the latest
/// checkpoint: `{checkpoint, tree_size, root, proofs: [{run_id, seq, record_hash,
/// leaf_index, path}], not_yet_covered: [seq…]}`.
pub fn inclusion(store: &dyn Store, run: RunId, seq: Option<u64>) -> Result<Value, Error> {
    let latest = latest(store)?;
    let head = store
        .load(run)?
        .ok_or_else(|| Error::NotFound(format!("run {run}")))?
        .head
        .seq;
    let seqs: Vec<u64> = match seq {
        Some(seq) if seq == 0 || seq > head => {
            return Err(Error::InvalidInput(format!(
                "run {run} has records 1 to {head}, not {seq}"
            )))
        }
        Some(seq) => vec![seq],
        None => (1..=head).collect(),
    };
    let mut proofs = Vec::new();
    let mut uncovered = Vec::new();
    for seq in seqs {
        let leaf = store.leaf_index(run, seq)?;
        if leaf.is_some_and(|leaf| leaf >= latest.head.size) {
            uncovered.push(seq);
            continue;
        }
        let proof = prove_record(store, run, seq, Some(latest.head.size))?;
        proof.verify(latest.head.root).map_err(|e| {
            Error::Corrupt(format!(
                "the proof of seq {seq} of run {run} does not verify: {e}"
            ))
        })?;
        proofs.push(json!({
            "run_id": proof.run_id,
            "seq": proof.seq,
            "record_hash": proof.record_hash,
            "leaf_index": proof.leaf_index,
            "path": hexes(&proof.path),
        }));
    }
    Ok(json!({
        "checkpoint": latest.note,
        "tree_size": latest.head.size,
        "root": tree_hash_hex(&latest.head.root),
        "proofs": proofs,
        "not_yet_covered": uncovered,
    }))
}

/// The consistency proof that the log at `old_size` leaves is a prefix of the latest
/// checkpoint's: `{old_size, old_root, tree_size, root, proof, checkpoint}`.
pub fn consistency(store: &dyn Store, old_size: u64) -> Result<Value, Error> {
    let latest = latest(store)?;
    if old_size > latest.head.size {
        return Err(Error::InvalidInput(format!(
            "old size {old_size} is beyond the latest checkpoint's tree size {}",
            latest.head.size
        )));
    }
    let old_root = log_root(store, old_size)?;
    let proof = prove_consistency(store, old_size, latest.head.size)?;
    merkle::verify_consistency(
        &proof,
        old_size,
        old_root,
        latest.head.size,
        latest.head.root,
    )
    .map_err(|e| Error::Corrupt(format!("the consistency proof does not verify: {e}")))?;
    Ok(json!({
        "old_size": old_size,
        "old_root": tree_hash_hex(&old_root),
        "tree_size": latest.head.size,
        "root": tree_hash_hex(&latest.head.root),
        "proof": hexes(&proof),
        "checkpoint": latest.note,
    }))
}

/// The proof file of an export (`ledger export`'s `OUT.proof.json`) against the latest
/// checkpoint: with `exported` `None`, the whole log (every leaf's record up to the
/// checkpoint's tree size: the export of all runs must hold each); else one inclusion
/// proof for each of the `exported` records the checkpoint covers.
pub fn bundle(store: &dyn Store, exported: Option<&[(RunId, u64)]>) -> Result<ProofBundle, Error> {
    let latest = latest(store)?;
    let key = store.checkpoint_public_key()?;
    let Some(exported) = exported else {
        let leaves = log_leaves(store, latest.head.size)?;
        return Ok(ProofBundle::complete(&latest, key.as_ref(), leaves));
    };
    let mut proofs = Vec::new();
    for &(run, seq) in exported {
        if store
            .leaf_index(run, seq)?
            .is_some_and(|leaf| leaf < latest.head.size)
        {
            let proof = prove_record(store, run, seq, Some(latest.head.size))?;
            proofs.push(LeafProof {
                run_id: run,
                seq,
                leaf_index: proof.leaf_index,
                path: hexes(&proof.path),
            });
        }
    }
    Ok(ProofBundle::partial(&latest, key.as_ref(), proofs))
}
