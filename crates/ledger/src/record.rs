//! The record envelope and the exact byte layout its hash is computed over.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::canonical::write_canonical_json;
use crate::{Hash, RunId};

/// The version of the record format described in `docs/ledger-format.md`.
pub const FORMAT_VERSION: u32 = 1;

/// The domain separation prefix of every record's hash input: ASCII text, then one 0x00.
pub const RECORD_DOMAIN: &[u8] = b"ledgerflow.record.v1\0";

/// A record before it is linked into its chain: every field but the two chain hashes.
#[derive(Clone, Debug, PartialEq)]
pub struct RecordDraft {
    /// The run this record belongs to.
    pub run_id: RunId,
    /// Position in the run's chain, from 1.
    pub seq: u64,
    /// When the record was written, in milliseconds since the Unix epoch (UTC).
    pub at_ms: i64,
    /// What happened, e.g. `started`, `waiting`, `resumed`.
    pub kind: String,
    /// The details of what happened, as a JSON value.
    pub body: Value,
    /// Hash of the run state this record produced (see the kernel's `RunState::state_hash`).
    pub state_hash: Hash,
}

impl RecordDraft {
    /// Links the draft after a record whose hash is `prev_hash` ([`Hash::GENESIS`] for
    /// seq 1) and computes its own hash.
    pub fn seal(self, prev_hash: Hash) -> Record {
        let mut record = Record {
            run_id: self.run_id,
            seq: self.seq,
            at_ms: self.at_ms,
            kind: self.kind,
            body: self.body,
            prev_hash,
            state_hash: self.state_hash,
            hash: Hash::GENESIS,
        };
        record.hash = record.compute_hash();
        record
    }
}

/// One entry of a run's ledger. Fields are read-only: a record is built by
/// [`RecordDraft::seal`], or read from storage or an export and then checked with
/// [`crate::verify_chain`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Record {
    run_id: RunId,
    seq: u64,
    at_ms: i64,
    kind: String,
    body: Value,
    prev_hash: Hash,
    state_hash: Hash,
    hash: Hash,
}

/// Every field of a record, stored hash included, for storage layers that persist records
/// in their own encoding and rebuild them on read.
#[derive(Clone, Debug, PartialEq)]
pub struct RecordFields {
    /// See [`Record::run_id`].
    pub run_id: RunId,
    /// See [`Record::seq`].
    pub seq: u64,
    /// See [`Record::at_ms`].
    pub at_ms: i64,
    /// See [`Record::kind`].
    pub kind: String,
    /// See [`Record::body`].
    pub body: Value,
    /// See [`Record::prev_hash`].
    pub prev_hash: Hash,
    /// See [`Record::state_hash`].
    pub state_hash: Hash,
    /// See [`Record::hash`]: the hash as stored, not recomputed.
    pub hash: Hash,
}

impl Record {
    /// Rebuilds a record exactly as stored, without recomputing its hash: check it with
    /// [`Record::compute_hash`] or [`crate::verify_chain`].
    pub fn from_fields(fields: RecordFields) -> Record {
        Record {
            run_id: fields.run_id,
            seq: fields.seq,
            at_ms: fields.at_ms,
            kind: fields.kind,
            body: fields.body,
            prev_hash: fields.prev_hash,
            state_hash: fields.state_hash,
            hash: fields.hash,
        }
    }

    /// The run this record belongs to.
    pub fn run_id(&self) -> RunId {
        self.run_id
    }
    /// Position in the run's chain, from 1.
    pub fn seq(&self) -> u64 {
        self.seq
    }
    /// When the record was written, in milliseconds since the Unix epoch (UTC).
    pub fn at_ms(&self) -> i64 {
        self.at_ms
    }
    /// What happened.
    pub fn kind(&self) -> &str {
        &self.kind
    }
    /// The details of what happened.
    pub fn body(&self) -> &Value {
        &self.body
    }
    /// Hash of the previous record of the run, or [`Hash::GENESIS`] for seq 1.
    pub fn prev_hash(&self) -> Hash {
        self.prev_hash
    }
    /// Hash of the run state this record produced.
    pub fn state_hash(&self) -> Hash {
        self.state_hash
    }
    /// The hash stored with the record. [`Record::compute_hash`] recomputes it.
    pub fn hash(&self) -> Hash {
        self.hash
    }

    /// blake3 of [`hash_input`] over this record's fields.
    pub fn compute_hash(&self) -> Hash {
        // One buffer per thread, reused: hashing is on every write and every verify.
        thread_local! {
            static INPUT: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
        }
        INPUT.with(|input| {
            let mut input = input.borrow_mut();
            input.clear();
            write_hash_input(
                &mut input,
                self.run_id,
                self.seq,
                self.at_ms,
                &self.kind,
                &self.body,
                self.prev_hash,
                self.state_hash,
            );
            let hash = Hash::of(&input);
            // A huge body does not stay allocated for the thread's life.
            if input.capacity() > 1 << 20 {
                *input = Vec::new();
            }
            hash
        })
    }
}

/// The bytes a record's hash is computed over (`docs/ledger-format.md`, "Hash input"):
///
/// | field | encoding |
/// |---|---|
/// | domain | [`RECORD_DOMAIN`] (21 bytes) |
/// | run_id | 16 raw UUID bytes |
/// | seq | u64 big-endian |
/// | at_ms | i64 big-endian (two's complement) |
/// | kind | u64 big-endian byte length, then UTF-8 |
/// | body | u64 big-endian byte length, then canonical JSON |
/// | prev_hash | 32 bytes |
/// | state_hash | 32 bytes |
pub fn hash_input(
    run_id: RunId,
    seq: u64,
    at_ms: i64,
    kind: &str,
    body: &Value,
    prev_hash: Hash,
    state_hash: Hash,
) -> Vec<u8> {
    let mut input = Vec::with_capacity(RECORD_DOMAIN.len() + 240 + kind.len());
    write_hash_input(
        &mut input, run_id, seq, at_ms, kind, body, prev_hash, state_hash,
    );
    input
}

/// Appends [`hash_input`] to `out`: the body's canonical JSON is written in place, its
/// length filled in after.
#[allow(clippy::too_many_arguments)]
fn write_hash_input(
    out: &mut Vec<u8>,
    run_id: RunId,
    seq: u64,
    at_ms: i64,
    kind: &str,
    body: &Value,
    prev_hash: Hash,
    state_hash: Hash,
) {
    out.extend_from_slice(RECORD_DOMAIN);
    out.extend_from_slice(run_id.as_bytes());
    out.extend_from_slice(&seq.to_be_bytes());
    out.extend_from_slice(&at_ms.to_be_bytes());
    push_len_prefixed(out, kind.as_bytes());
    let length_at = out.len();
    out.extend_from_slice(&[0; 8]);
    write_canonical_json(body, out);
    let body_len = (out.len() - length_at - 8) as u64;
    out[length_at..length_at + 8].copy_from_slice(&body_len.to_be_bytes());
    out.extend_from_slice(prev_hash.as_bytes());
    out.extend_from_slice(state_hash.as_bytes());
}

fn push_len_prefixed(out: &mut Vec<u8>, bytes: &[u8]) {
    // usize -> u64 never truncates on the 32- and 64-bit targets Rust supports.
    out.extend_from_slice(&(bytes.len() as u64).to_be_bytes());
    out.extend_from_slice(bytes);
}
