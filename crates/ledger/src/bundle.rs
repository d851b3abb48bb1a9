//! The proof file of an export (`<export>.proof.json`): the signed checkpoint the export
//! was made against and what ties every exported record to it, and the check that finds
//! a cut tail, a deleted run or a rewritten history in an export.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::checkpoint::{CheckpointKey, SignedCheckpoint};
use crate::merkle::{self, parse_tree_hash, tree_hash_hex, Frontier, TreeHash};
use crate::{Record, RunId};

/// The `format` of a proof file.
pub const PROOF_FORMAT: &str = "ledgerflow.proof.v1";

/// Longest proof file read, in bytes.
pub const PROOF_FILE_BYTES_MAX: u64 = 1 << 30;

/// An inclusion proof of one record (exports of some runs only).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LeafProof {
    /// The record's run.
    pub run_id: RunId,
    /// The record's seq.
    pub seq: u64,
    /// Its leaf index in the global log.
    pub leaf_index: u64,
    /// The audit path, leaf to root, as 64 hex digits each.
    pub path: Vec<String>,
}

/// The proof file of an export.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProofBundle {
    /// Always [`PROOF_FORMAT`].
    pub format: String,
    /// The signed checkpoint note (C2SP tlog-checkpoint), exactly as the store wrote it.
    pub checkpoint: String,
    /// The public key of the store that wrote the export, for convenience only: an
    /// auditor pins the key they trust with `--public-key`.
    pub public_key: Option<String>,
    /// The checkpoint's tree size.
    pub tree_size: u64,
    /// The checkpoint's root, 64 hex digits.
    pub root: String,
    /// Set when the export holds every record of the log up to `tree_size`: then
    /// `leaves` names the record of each leaf, in order, and the verifier recomputes the
    /// root from the exported records.
    pub complete: bool,
    /// `[run_id, seq]` of every leaf, in leaf order (complete exports).
    #[serde(default)]
    pub leaves: Vec<(RunId, u64)>,
    /// One inclusion proof per exported record the checkpoint covers (partial exports).
    #[serde(default)]
    pub proofs: Vec<LeafProof>,
}

/// Why an export does not match its proof file.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BundleError {
    /// The proof file itself is malformed.
    #[error("proof file: {0}")]
    Malformed(String),
    /// The checkpoint's signature does not verify.
    #[error("{0}")]
    Signature(String),
    /// A record the checkpoint covers is not in the export (a cut tail, a deleted run).
    #[error("leaf {leaf_index}: record {seq} of run {run_id} is missing from the export (cut or deleted)")]
    Missing {
        /// The leaf.
        leaf_index: u64,
        /// Its run.
        run_id: RunId,
        /// Its seq.
        seq: u64,
    },
    /// The exported records do not hash to the signed root (changed or re-hashed).
    #[error(
        "the exported records do not hash to the checkpoint's root: the history was changed{0}"
    )]
    RootMismatch(String),
}

/// What a verified export is covered by.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Coverage {
    /// The checkpoint's tree size.
    pub tree_size: u64,
    /// Records proven to be in the signed log.
    pub covered: u64,
    /// Exported records written after the checkpoint (not covered by it).
    pub uncovered: u64,
    /// Whether the signature was checked against a key the caller gave (`false`: only
    /// against the key in the proof file, which proves nothing about who signed).
    pub key_pinned: bool,
    /// The key that verified the checkpoint (`None`: unsigned checkpoint, no key).
    pub key: Option<String>,
}

impl ProofBundle {
    /// Parses a proof file.
    pub fn from_json(text: &str) -> Result<Self, BundleError> {
        let bundle: ProofBundle =
            serde_json::from_str(text).map_err(|e| BundleError::Malformed(e.to_string()))?;
        if bundle.format != PROOF_FORMAT {
            return Err(BundleError::Malformed(format!(
                "format {:?}, expected {PROOF_FORMAT}",
                bundle.format
            )));
        }
        Ok(bundle)
    }

    /// The file's text.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_default()
    }

    /// Makes the proof file of a complete export.
    pub fn complete(
        checkpoint: &SignedCheckpoint,
        public_key: Option<&CheckpointKey>,
        leaves: Vec<(RunId, u64)>,
    ) -> Self {
        ProofBundle::new(checkpoint, public_key, true, leaves, Vec::new())
    }

    /// Makes the proof file of a partial export.
    pub fn partial(
        checkpoint: &SignedCheckpoint,
        public_key: Option<&CheckpointKey>,
        proofs: Vec<LeafProof>,
    ) -> Self {
        ProofBundle::new(checkpoint, public_key, false, Vec::new(), proofs)
    }

    fn new(
        checkpoint: &SignedCheckpoint,
        public_key: Option<&CheckpointKey>,
        complete: bool,
        leaves: Vec<(RunId, u64)>,
        proofs: Vec<LeafProof>,
    ) -> Self {
        ProofBundle {
            format: PROOF_FORMAT.into(),
            checkpoint: checkpoint.note.clone(),
            public_key: public_key.map(|k| k.as_str().to_owned()),
            tree_size: checkpoint.head.size,
            root: tree_hash_hex(&checkpoint.head.root),
            complete,
            leaves,
            proofs,
        }
    }

    /// Checks `records` (an export, its chains already verified) against this proof
    /// file: the checkpoint's signature (with `key` when given, else the file's key),
    /// then, for a complete export, that every leaf's record is exported and the records
    /// hash to the signed root; for a partial one, every inclusion proof.
    pub fn verify(
        &self,
        records: &[Record],
        key: Option<&CheckpointKey>,
    ) -> Result<Coverage, BundleError> {
        let checkpoint = SignedCheckpoint::parse(&self.checkpoint)
            .map_err(|e| BundleError::Malformed(e.to_string()))?;
        let root = parse_tree_hash(&self.root)
            .ok_or_else(|| BundleError::Malformed(format!("root {:?}", self.root)))?;
        if checkpoint.head.size != self.tree_size || checkpoint.head.root != root {
            return Err(BundleError::Malformed(
                "tree_size and root differ from the checkpoint's".into(),
            ));
        }
        let file_key = match &self.public_key {
            Some(text) => Some(
                CheckpointKey::parse(text)
                    .map_err(|e| BundleError::Malformed(format!("public_key: {e}")))?,
            ),
            None => None,
        };
        let checking = key.or(file_key.as_ref());
        match checking {
            Some(k) => checkpoint
                .verify(k)
                .map_err(|e| BundleError::Signature(e.to_string()))?,
            None if checkpoint.signed => {
                return Err(BundleError::Signature(
                    "the checkpoint is signed but no public key was given".into(),
                ))
            }
            None => {}
        }
        let by_key: HashMap<(RunId, u64), &Record> =
            records.iter().map(|r| ((r.run_id(), r.seq()), r)).collect();
        let leaf_of = |run_id: RunId, seq: u64, leaf_index: u64| {
            by_key
                .get(&(run_id, seq))
                .map(|r| merkle::leaf_hash(run_id, seq, &r.hash()))
                .ok_or(BundleError::Missing {
                    leaf_index,
                    run_id,
                    seq,
                })
        };
        let covered = if self.complete {
            if self.leaves.len() as u64 != self.tree_size {
                return Err(BundleError::Malformed(format!(
                    "{} leaves listed for a tree of {}",
                    self.leaves.len(),
                    self.tree_size
                )));
            }
            let mut frontier = Frontier::new();
            for (i, (run_id, seq)) in self.leaves.iter().enumerate() {
                frontier.append(leaf_of(*run_id, *seq, i as u64)?);
            }
            if frontier.root() != root {
                return Err(BundleError::RootMismatch(String::new()));
            }
            self.tree_size
        } else {
            for proof in &self.proofs {
                let path = proof
                    .path
                    .iter()
                    .map(|h| parse_tree_hash(h))
                    .collect::<Option<Vec<TreeHash>>>()
                    .ok_or_else(|| BundleError::Malformed("a proof hash".into()))?;
                let leaf = leaf_of(proof.run_id, proof.seq, proof.leaf_index)?;
                merkle::verify_inclusion(&path, proof.leaf_index, leaf, self.tree_size, root)
                    .map_err(|_| {
                        BundleError::RootMismatch(format!(
                            " (record {} of run {} is not leaf {} of the signed log)",
                            proof.seq, proof.run_id, proof.leaf_index
                        ))
                    })?;
            }
            self.proofs.len() as u64
        };
        Ok(Coverage {
            tree_size: self.tree_size,
            covered,
            uncovered: (records.len() as u64).saturating_sub(covered),
            key_pinned: key.is_some(),
            key: checking.map(|k| k.as_str().to_owned()),
        })
    }
}
