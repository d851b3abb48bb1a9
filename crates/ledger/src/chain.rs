//! Chain verification: checks that a run's records link up, one record at a time.

use crate::{Hash, Record, RunId};

/// The last record of a verified chain.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChainHead {
    /// The run the chain belongs to.
    pub run_id: RunId,
    /// Seq of the last record.
    pub seq: u64,
    /// Hash of the last record.
    pub hash: Hash,
}

/// What was wrong with the first bad record.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ChainFault {
    /// The stored hash is not the hash of the record's fields: a hashed field was changed.
    #[error("hash mismatch: stored {stored}, fields hash to {computed}")]
    HashMismatch {
        /// The hash the record carries.
        stored: Hash,
        /// The hash recomputed from its fields.
        computed: Hash,
    },
    /// `prev_hash` is not the hash of the record before it.
    #[error("prev_hash mismatch: record cites {found}, previous record's hash is {expected}")]
    PrevMismatch {
        /// Hash of the previous record (or genesis).
        expected: Hash,
        /// What the record cites.
        found: Hash,
    },
    /// A record is missing, repeated or out of order.
    #[error("seq gap: expected seq {expected}, found {found}")]
    SeqGap {
        /// The seq that should come next.
        expected: u64,
        /// The seq found.
        found: u64,
    },
    /// A record of another run in the middle of this run's chain.
    #[error("record of run {found} in the chain of run {expected}")]
    ForeignRun {
        /// The run whose chain this is.
        expected: RunId,
        /// The run the record names.
        found: RunId,
    },
}

/// The first bad record of a chain and what was wrong with it.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("run {run_id} seq {seq}: {fault}")]
pub struct ChainError {
    /// The run the bad record names.
    pub run_id: RunId,
    /// The seq the bad record names.
    pub seq: u64,
    /// What was wrong.
    pub fault: ChainFault,
}

/// Verifies a chain incrementally, so a ledger of any length can be checked in bounded
/// memory by reading it in pages.
#[derive(Clone, Debug)]
pub struct ChainVerifier {
    run_id: Option<RunId>,
    next_seq: u64,
    prev_hash: Hash,
}

impl Default for ChainVerifier {
    fn default() -> Self {
        Self::new()
    }
}

impl ChainVerifier {
    /// Expects the chain to start at seq 1 with [`Hash::GENESIS`]; the first record fixes
    /// the run.
    pub fn new() -> Self {
        ChainVerifier {
            run_id: None,
            next_seq: 1,
            prev_hash: Hash::GENESIS,
        }
    }

    /// Continues after an already-verified head.
    pub fn after(head: ChainHead) -> Self {
        ChainVerifier {
            run_id: Some(head.run_id),
            next_seq: head.seq + 1,
            prev_hash: head.hash,
        }
    }

    /// Checks the next record.
    pub fn push(&mut self, record: &Record) -> Result<ChainHead, ChainError> {
        let fail = |fault| ChainError {
            run_id: record.run_id(),
            seq: record.seq(),
            fault,
        };
        let run_id = *self.run_id.get_or_insert(record.run_id());
        if record.run_id() != run_id {
            return Err(fail(ChainFault::ForeignRun {
                expected: run_id,
                found: record.run_id(),
            }));
        }
        if record.seq() != self.next_seq {
            return Err(fail(ChainFault::SeqGap {
                expected: self.next_seq,
                found: record.seq(),
            }));
        }
        let computed = record.compute_hash();
        if computed != record.hash() {
            return Err(fail(ChainFault::HashMismatch {
                stored: record.hash(),
                computed,
            }));
        }
        if record.prev_hash() != self.prev_hash {
            return Err(fail(ChainFault::PrevMismatch {
                expected: self.prev_hash,
                found: record.prev_hash(),
            }));
        }
        self.next_seq += 1;
        self.prev_hash = record.hash();
        Ok(ChainHead {
            run_id,
            seq: record.seq(),
            hash: record.hash(),
        })
    }

    /// The head verified so far, or `None` before the first record.
    pub fn head(&self) -> Option<ChainHead> {
        self.run_id
            .map(|run_id| ChainHead {
                run_id,
                seq: self.next_seq - 1,
                hash: self.prev_hash,
            })
            .filter(|head| head.seq > 0)
    }
}

/// Verifies a whole chain from seq 1. Returns its head (`None` for an empty chain), or the
/// first bad record with the reason.
///
/// ```
/// use ledgerflow_ledger::{verify_chain, Hash, RecordDraft, RunId};
/// use serde_json::json;
///
/// let run_id = RunId::from_bytes([7; 16]);
/// let draft = |seq, kind: &str| RecordDraft {
///     run_id,
///     seq,
///     at_ms: 1_700_000_000_000,
///     kind: kind.to_owned(),
///     body: json!({}),
///     state_hash: Hash::GENESIS,
/// };
/// let first = draft(1, "started").seal(Hash::GENESIS);
/// let second = draft(2, "completed").seal(first.hash());
/// assert_eq!(verify_chain([&first, &second]).expect("verifies").map(|h| h.seq), Some(2));
/// // A record that does not follow the one before it is named.
/// let stray = draft(2, "completed").seal(Hash::GENESIS);
/// assert!(verify_chain([&first, &stray]).is_err());
/// ```
pub fn verify_chain<'a>(
    records: impl IntoIterator<Item = &'a Record>,
) -> Result<Option<ChainHead>, ChainError> {
    let mut verifier = ChainVerifier::new();
    for record in records {
        verifier.push(record)?;
    }
    Ok(verifier.head())
}
