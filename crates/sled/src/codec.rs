//! Versioned value envelopes and key layouts of the sled store (`docs/storage.md`).
//!
//! Every value starts with one version byte, followed by a bincode body (fixed-width
//! little-endian integers, decode size limit, no trailing bytes). JSON values are kept as
//! JSON bytes inside the envelope: bincode is not self-describing and cannot round-trip a
//! `serde_json::Value`. Keys that are scanned in order are big-endian.

use bincode::Options;
use ledgerflow_kernel::store::{Error, InboxEntry};
use ledgerflow_kernel::{Hash, Record, RunId, RunState, RunStatus};
use ledgerflow_ledger::RecordFields;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Envelope version of every value but records and feed entries.
pub(crate) const ENVELOPE_V1: u8 = 1;
/// Envelope version of records and feed entries from store format 2 on (they carry the
/// global log's leaf index and leaf hash).
pub(crate) const ENVELOPE_V2: u8 = 2;

/// Largest value this store writes or decodes (192 KiB). Keeping every value well under
/// sled's blob threshold (a quarter of a segment: 4 MiB with 16 MiB segments) keeps all
/// data in sled's log file, which is the file the store fsyncs.
pub const VALUE_BYTES_MAX: usize = 192 << 10;

fn options() -> impl Options {
    bincode::DefaultOptions::new()
        .with_fixint_encoding()
        .with_little_endian()
        .with_limit(VALUE_BYTES_MAX as u64)
        .reject_trailing_bytes()
}

fn corrupt(what: &str, reason: impl std::fmt::Display) -> Error {
    Error::Corrupt(format!("{what}: {reason}"))
}

fn encode<T: Serialize>(what: &str, value: &T) -> Result<Vec<u8>, Error> {
    encode_version(ENVELOPE_V1, what, value)
}

fn encode_version<T: Serialize>(version: u8, what: &str, value: &T) -> Result<Vec<u8>, Error> {
    let body = options().serialize(value).map_err(|e| match *e {
        bincode::ErrorKind::SizeLimit => Error::ValueTooLarge {
            what: what.to_owned(),
            bytes: VALUE_BYTES_MAX + 1,
            max: VALUE_BYTES_MAX,
        },
        other => Error::Corrupt(format!("{what} cannot be encoded: {other}")),
    })?;
    let mut out = Vec::with_capacity(body.len() + 1);
    out.push(version);
    out.extend_from_slice(&body);
    if out.len() > VALUE_BYTES_MAX {
        return Err(Error::ValueTooLarge {
            what: what.to_owned(),
            bytes: out.len(),
            max: VALUE_BYTES_MAX,
        });
    }
    Ok(out)
}

fn decode<'a, T: Deserialize<'a>>(what: &str, bytes: &'a [u8]) -> Result<T, Error> {
    match bytes.split_first() {
        None => Err(corrupt(what, "empty value")),
        Some((&ENVELOPE_V1, body)) => options().deserialize(body).map_err(|e| corrupt(what, e)),
        Some((version, _)) => Err(corrupt(what, format!("unknown envelope version {version}"))),
    }
}

/// Decodes a value written as version 1 (`V1`) or 2 (`V2`).
fn decode_either<'a, V1: Deserialize<'a>, V2: Deserialize<'a>>(
    what: &str,
    bytes: &'a [u8],
) -> Result<Either<V1, V2>, Error> {
    match bytes.split_first() {
        None => Err(corrupt(what, "empty value")),
        Some((&ENVELOPE_V1, body)) => options()
            .deserialize(body)
            .map(Either::V1)
            .map_err(|e| corrupt(what, e)),
        Some((&ENVELOPE_V2, body)) => options()
            .deserialize(body)
            .map(Either::V2)
            .map_err(|e| corrupt(what, e)),
        Some((version, _)) => Err(corrupt(what, format!("unknown envelope version {version}"))),
    }
}

enum Either<V1, V2> {
    V1(V1),
    V2(V2),
}

/// The `runs` value: the head (read for version checks without decoding the state) and
/// the state as JSON.
#[derive(Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct StateEnvelopeV1 {
    pub head_seq: u64,
    pub head_hash: [u8; 32],
    pub state_json: Vec<u8>,
}

/// The `records` value: every record field but the run id, which is in the key.
#[derive(Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct RecordEnvelopeV1 {
    pub seq: u64,
    pub at_ms: i64,
    pub kind: String,
    pub body_json: Vec<u8>,
    pub prev_hash: [u8; 32],
    pub state_hash: [u8; 32],
    pub hash: [u8; 32],
}

/// The `records` value from store format 2 on: V1's fields, then the record's leaf index
/// in the global log. The index is the last field, so its 8 bytes (little-endian) end
/// the value and the store fills them in when the commit gets its place in the log.
#[derive(Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct RecordEnvelopeV2 {
    pub seq: u64,
    pub at_ms: i64,
    pub kind: String,
    pub body_json: Vec<u8>,
    pub prev_hash: [u8; 32],
    pub state_hash: [u8; 32],
    pub hash: [u8; 32],
    pub leaf_index: u64,
}

/// The `inbox` value.
#[derive(Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct InboxEnvelopeV1 {
    pub at_ms: i64,
    pub payload_json: Vec<u8>,
}

/// The `inbox_meta` value: entries `head..=tail` are queued (`head > tail`: none).
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct InboxMetaV1 {
    pub head: u64,
    pub tail: u64,
}

impl InboxMetaV1 {
    pub fn is_empty(&self) -> bool {
        self.head > self.tail || self.tail == 0
    }
    pub fn len(&self) -> u64 {
        if self.is_empty() {
            0
        } else {
            self.tail - self.head + 1
        }
    }
}

/// The `feed` value: one committed record, keyed by its feed seq.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct FeedEnvelopeV1 {
    pub run_id: [u8; 16],
    pub seq: u64,
    pub kind: String,
    pub at_ms: i64,
}

/// The `feed` value from store format 2 on: V1's fields and the record's leaf hash in the
/// global log (the feed seq minus one is the leaf index).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct FeedEnvelopeV2 {
    pub run_id: [u8; 16],
    pub seq: u64,
    pub kind: String,
    pub at_ms: i64,
    pub leaf_hash: [u8; 32],
}

pub(crate) fn encode_feed(entry: &FeedEnvelopeV2) -> Result<Vec<u8>, Error> {
    encode_version(ENVELOPE_V2, "feed entry", entry)
}

/// A feed entry and, from format 2 on, its leaf hash.
pub(crate) fn decode_feed_leaf(
    feed_seq: u64,
    bytes: &[u8],
) -> Result<(ledgerflow_kernel::store::FeedEntry, Option<[u8; 32]>), Error> {
    let (run_id, seq, kind, at_ms, leaf) =
        match decode_either::<FeedEnvelopeV1, FeedEnvelopeV2>("feed entry", bytes)? {
            Either::V1(e) => (e.run_id, e.seq, e.kind, e.at_ms, None),
            Either::V2(e) => (e.run_id, e.seq, e.kind, e.at_ms, Some(e.leaf_hash)),
        };
    Ok((
        ledgerflow_kernel::store::FeedEntry {
            feed_seq,
            run_id: RunId::from_bytes(run_id),
            seq,
            kind,
            at_ms,
        },
        leaf,
    ))
}

pub(crate) fn decode_feed(
    feed_seq: u64,
    bytes: &[u8],
) -> Result<ledgerflow_kernel::store::FeedEntry, Error> {
    decode_feed_leaf(feed_seq, bytes).map(|(entry, _)| entry)
}

/// The `snapshots` value.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct SnapshotEnvelopeV1 {
    pub seq: u64,
    pub record_hash: [u8; 32],
    pub description: String,
    pub tags: Vec<String>,
    pub created_at_ms: i64,
}

/// The `artifacts` value: size and media type; the bytes are in `artifact_chunks`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct ArtifactEnvelopeV1 {
    pub size: u64,
    pub media_type: String,
    pub chunks: u32,
}

pub(crate) fn encode_state(state: &RunState) -> Result<Vec<u8>, Error> {
    let state_json = serde_json::to_vec(state).map_err(|e| corrupt("run state", e))?;
    encode(
        "run state",
        &StateEnvelopeV1 {
            head_seq: state.head.seq,
            head_hash: *state.head.hash.as_bytes(),
            state_json,
        },
    )
}

pub(crate) fn decode_state_head(bytes: &[u8]) -> Result<(u64, Hash), Error> {
    let env: StateEnvelopeV1 = decode("run state", bytes)?;
    Ok((env.head_seq, Hash::from_bytes(env.head_hash)))
}

pub(crate) fn decode_state(bytes: &[u8]) -> Result<RunState, Error> {
    let env: StateEnvelopeV1 = decode("run state", bytes)?;
    let state: RunState =
        serde_json::from_slice(&env.state_json).map_err(|e| corrupt("run state JSON", e))?;
    if state.head.seq != env.head_seq || *state.head.hash.as_bytes() != env.head_hash {
        return Err(corrupt(
            "run state",
            "envelope head differs from the state's head",
        ));
    }
    Ok(state)
}

/// Encodes a record with leaf index `leaf_index` (see [`set_record_leaf`]).
pub(crate) fn encode_record(record: &Record, leaf_index: u64) -> Result<Vec<u8>, Error> {
    let body_json = serde_json::to_vec(record.body()).map_err(|e| corrupt("record body", e))?;
    encode_version(
        ENVELOPE_V2,
        "record",
        &RecordEnvelopeV2 {
            seq: record.seq(),
            at_ms: record.at_ms(),
            kind: record.kind().to_owned(),
            body_json,
            prev_hash: *record.prev_hash().as_bytes(),
            state_hash: *record.state_hash().as_bytes(),
            hash: *record.hash().as_bytes(),
            leaf_index,
        },
    )
}

/// Sets the leaf index of an encoded version-2 record: its last 8 bytes.
pub(crate) fn set_record_leaf(bytes: &mut [u8], leaf_index: u64) {
    if let Some(start) = bytes.len().checked_sub(8) {
        bytes[start..].copy_from_slice(&leaf_index.to_le_bytes());
    }
}

/// The leaf index an encoded record carries (none before store format 2).
pub(crate) fn decode_record_leaf(bytes: &[u8]) -> Result<Option<u64>, Error> {
    match decode_either::<RecordEnvelopeV1, RecordEnvelopeV2>("record", bytes)? {
        Either::V1(_) => Ok(None),
        Either::V2(env) => Ok(Some(env.leaf_index)),
    }
}

/// The stored hash of an encoded record, read without decoding the rest: its 32 bytes
/// end a version-1 value, and come before the leaf index in a version-2 one.
pub(crate) fn decode_record_hash(bytes: &[u8]) -> Result<Hash, Error> {
    let end = match bytes.first() {
        Some(&ENVELOPE_V1) => bytes.len(),
        Some(&ENVELOPE_V2) => bytes.len().saturating_sub(8),
        Some(version) => {
            return Err(corrupt(
                "record",
                format!("unknown envelope version {version}"),
            ))
        }
        None => return Err(corrupt("record", "empty value")),
    };
    let hash = end
        .checked_sub(32)
        .filter(|start| *start > 0)
        .and_then(|start| <[u8; 32]>::try_from(&bytes[start..end]).ok())
        .ok_or_else(|| corrupt("record", "too short"))?;
    Ok(Hash::from_bytes(hash))
}

/// Decodes a record and checks that its fields still hash to its stored hash.
pub(crate) fn decode_record(run_id: RunId, bytes: &[u8]) -> Result<Record, Error> {
    let env = match decode_either::<RecordEnvelopeV1, RecordEnvelopeV2>("record", bytes)? {
        Either::V1(env) => env,
        Either::V2(env) => RecordEnvelopeV1 {
            seq: env.seq,
            at_ms: env.at_ms,
            kind: env.kind,
            body_json: env.body_json,
            prev_hash: env.prev_hash,
            state_hash: env.state_hash,
            hash: env.hash,
        },
    };
    let body: Value =
        serde_json::from_slice(&env.body_json).map_err(|e| corrupt("record body JSON", e))?;
    let record = Record::from_fields(RecordFields {
        run_id,
        seq: env.seq,
        at_ms: env.at_ms,
        kind: env.kind,
        body,
        prev_hash: Hash::from_bytes(env.prev_hash),
        state_hash: Hash::from_bytes(env.state_hash),
        hash: Hash::from_bytes(env.hash),
    });
    if record.compute_hash() != record.hash() {
        return Err(corrupt(
            &format!("record {run_id} seq {}", record.seq()),
            "fields do not hash to the stored hash",
        ));
    }
    Ok(record)
}

pub(crate) fn encode_inbox(payload: &Value, at_ms: i64) -> Result<Vec<u8>, Error> {
    let payload_json = serde_json::to_vec(payload).map_err(|e| corrupt("inbox payload", e))?;
    encode(
        "inbox entry",
        &InboxEnvelopeV1 {
            at_ms,
            payload_json,
        },
    )
}

pub(crate) fn decode_inbox(seq: u64, bytes: &[u8]) -> Result<InboxEntry, Error> {
    let env: InboxEnvelopeV1 = decode("inbox entry", bytes)?;
    let payload =
        serde_json::from_slice(&env.payload_json).map_err(|e| corrupt("inbox payload JSON", e))?;
    Ok(InboxEntry {
        seq,
        payload,
        at_ms: env.at_ms,
    })
}

pub(crate) fn encode_inbox_meta(meta: InboxMetaV1) -> Result<Vec<u8>, Error> {
    encode("inbox meta", &meta)
}

pub(crate) fn decode_inbox_meta(bytes: Option<&[u8]>) -> Result<InboxMetaV1, Error> {
    bytes.map_or(Ok(InboxMetaV1::default()), |b| decode("inbox meta", b))
}

pub(crate) fn encode_snapshot(snapshot: &SnapshotEnvelopeV1) -> Result<Vec<u8>, Error> {
    encode("snapshot", snapshot)
}

pub(crate) fn decode_snapshot(bytes: &[u8]) -> Result<SnapshotEnvelopeV1, Error> {
    decode("snapshot", bytes)
}

pub(crate) fn encode_artifact(artifact: &ArtifactEnvelopeV1) -> Result<Vec<u8>, Error> {
    encode("artifact", artifact)
}

pub(crate) fn decode_artifact(bytes: &[u8]) -> Result<ArtifactEnvelopeV1, Error> {
    decode("artifact", bytes)
}

/// Decodes arbitrary bytes with every decoder; for the decode fuzz tests.
#[doc(hidden)]
pub fn decode_any(bytes: &[u8]) -> usize {
    let run_id = RunId::from_bytes([7; 16]);
    [
        decode_state(bytes).is_ok(),
        decode_state_head(bytes).is_ok(),
        decode_record(run_id, bytes).is_ok(),
        decode_inbox(1, bytes).is_ok(),
        decode_inbox_meta(Some(bytes)).is_ok(),
        decode_snapshot(bytes).is_ok(),
        decode_artifact(bytes).is_ok(),
        decode_feed(1, bytes).is_ok(),
        keys::decode_run_id(bytes).is_ok(),
    ]
    .iter()
    .filter(|ok| **ok)
    .count()
}

/// Key layouts.
pub(crate) mod keys {
    use super::*;

    /// `records`: run id (16) ++ seq (u64 BE).
    pub fn record(run_id: RunId, seq: u64) -> [u8; 24] {
        let mut key = [0u8; 24];
        key[..16].copy_from_slice(run_id.as_bytes());
        key[16..].copy_from_slice(&seq.to_be_bytes());
        key
    }

    /// `timers`: due time (i64 with the sign bit flipped, BE, so it sorts) ++ run id.
    pub fn timer(due_at_ms: i64, run_id: RunId) -> [u8; 24] {
        let mut key = [0u8; 24];
        key[..8].copy_from_slice(&sortable_i64(due_at_ms));
        key[8..].copy_from_slice(run_id.as_bytes());
        key
    }

    pub fn sortable_i64(value: i64) -> [u8; 8] {
        ((value as u64) ^ (1 << 63)).to_be_bytes()
    }

    pub fn decode_timer(key: &[u8]) -> Result<(i64, RunId), Error> {
        if key.len() != 24 {
            return Err(corrupt(
                "timer key",
                format!("{} bytes, expected 24", key.len()),
            ));
        }
        let mut due = [0u8; 8];
        due.copy_from_slice(&key[..8]);
        let due_at_ms = (u64::from_be_bytes(due) ^ (1 << 63)) as i64;
        Ok((due_at_ms, decode_run_id(&key[8..])?))
    }

    /// `status`: status byte ++ run id.
    pub fn status(status: RunStatus, run_id: RunId) -> [u8; 17] {
        let mut key = [0u8; 17];
        key[0] = status_byte(status);
        key[1..].copy_from_slice(run_id.as_bytes());
        key
    }

    pub fn status_byte(status: RunStatus) -> u8 {
        match status {
            RunStatus::Running => 1,
            RunStatus::Waiting => 2,
            RunStatus::Completed => 3,
            RunStatus::Failed => 4,
            RunStatus::Cancelled => 5,
        }
    }

    /// `inbox`: wait_key length (u32 BE) ++ wait_key ++ entry seq (u64 BE).
    pub fn inbox_prefix(wait_key: &str) -> Vec<u8> {
        let mut key = Vec::with_capacity(wait_key.len() + 12);
        key.extend_from_slice(&(wait_key.len() as u32).to_be_bytes());
        key.extend_from_slice(wait_key.as_bytes());
        key
    }

    pub fn inbox(wait_key: &str, seq: u64) -> Vec<u8> {
        let mut key = inbox_prefix(wait_key);
        key.extend_from_slice(&seq.to_be_bytes());
        key
    }

    /// `by_workflow`: workflow id length (u32 BE) ++ workflow id ++ version (u32 BE) ++ run id.
    pub fn workflow_prefix(workflow_id: &str) -> Vec<u8> {
        let mut key = Vec::with_capacity(workflow_id.len() + 24);
        key.extend_from_slice(&(workflow_id.len() as u32).to_be_bytes());
        key.extend_from_slice(workflow_id.as_bytes());
        key
    }

    pub fn workflow(workflow_id: &str, version: u32, run_id: RunId) -> Vec<u8> {
        let mut key = workflow_prefix(workflow_id);
        key.extend_from_slice(&version.to_be_bytes());
        key.extend_from_slice(run_id.as_bytes());
        key
    }

    pub fn decode_workflow_suffix(suffix: &[u8]) -> Result<(u32, RunId), Error> {
        if suffix.len() != 20 {
            return Err(corrupt(
                "workflow index key",
                format!("suffix of {} bytes, expected 20", suffix.len()),
            ));
        }
        let mut version = [0u8; 4];
        version.copy_from_slice(&suffix[..4]);
        Ok((u32::from_be_bytes(version), decode_run_id(&suffix[4..])?))
    }

    /// `children`: parent run id ++ child run id.
    pub fn child(parent: RunId, child: RunId) -> [u8; 32] {
        let mut key = [0u8; 32];
        key[..16].copy_from_slice(parent.as_bytes());
        key[16..].copy_from_slice(child.as_bytes());
        key
    }

    /// `snapshots`: run id ++ name.
    pub fn snapshot(run_id: RunId, name: &str) -> Vec<u8> {
        let mut key = run_id.as_bytes().to_vec();
        key.extend_from_slice(name.as_bytes());
        key
    }

    /// `artifact_chunks`: digest (32) ++ chunk index (u32 BE).
    pub fn chunk(digest: &Hash, index: u32) -> [u8; 36] {
        let mut key = [0u8; 36];
        key[..32].copy_from_slice(digest.as_bytes());
        key[32..].copy_from_slice(&index.to_be_bytes());
        key
    }

    /// `artifact_runs`: run id ++ digest.
    pub fn artifact_run(run_id: RunId, digest: &Hash) -> [u8; 48] {
        let mut key = [0u8; 48];
        key[..16].copy_from_slice(run_id.as_bytes());
        key[16..].copy_from_slice(digest.as_bytes());
        key
    }

    pub fn decode_run_id(bytes: &[u8]) -> Result<RunId, Error> {
        let array: [u8; 16] = bytes
            .try_into()
            .map_err(|_| corrupt("run id", format!("{} bytes, expected 16", bytes.len())))?;
        Ok(RunId::from_bytes(array))
    }

    pub fn seq_suffix(key: &[u8]) -> Result<u64, Error> {
        let start = key
            .len()
            .checked_sub(8)
            .ok_or_else(|| corrupt("key", "shorter than a seq"))?;
        let mut seq = [0u8; 8];
        seq.copy_from_slice(&key[start..]);
        Ok(u64::from_be_bytes(seq))
    }
}

/// Golden files: one file per envelope of each format version (`v1/`, and `v2/` for the
/// envelopes store format 2 changed), written once and decoded by this test forever
/// after, so a change that breaks reading existing stores fails here.
/// Regenerate only for a new version: `LEDGERFLOW_WRITE_GOLDEN=1 cargo test -p ledgerflow-sled golden`.
#[cfg(test)]
pub(crate) mod golden {
    use super::*;
    use ledgerflow_kernel::{LedgerHead, RunStatus};
    use ledgerflow_ledger::RecordDraft;
    use serde_json::json;

    const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/golden/v1");
    const DIR_V2: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/golden/v2");
    const RUN: RunId = RunId::from_bytes([0x11; 16]);

    fn record() -> Record {
        RecordDraft {
            run_id: RUN,
            seq: 3,
            at_ms: 1_700_000_000_123,
            kind: "resumed".into(),
            body: json!({"wait_key": "approval", "payload": {"ok": true, "score": 0.25}, "inbox_seq": null}),
            state_hash: Hash::of(b"state"),
        }
        .seal(Hash::of(b"previous"))
    }

    /// A run state with every kind of field set (also for other modules' tests).
    pub(crate) fn state() -> RunState {
        let mut vars = serde_json::Map::new();
        vars.insert("amount".into(), json!(120));
        vars.insert("note".into(), json!("é\n"));
        RunState {
            run_id: RUN,
            workflow_id: "approval".into(),
            workflow_version: 2,
            status: RunStatus::Waiting,
            paused: true,
            node: Some("ask".into()),
            vars,
            waiting: None,
            pending_effect: None,
            output: None,
            failure: None,
            cancel_reason: None,
            ended_seq: None,
            parent: None,
            created_at_ms: 1_700_000_000_000,
            updated_at_ms: 1_700_000_000_123,
            head: LedgerHead {
                seq: 3,
                hash: Hash::of(b"head"),
            },
        }
    }

    fn snapshot() -> SnapshotEnvelopeV1 {
        SnapshotEnvelopeV1 {
            seq: 3,
            record_hash: *Hash::of(b"head").as_bytes(),
            description: "before approval".into(),
            tags: vec!["review".into(), "v2".into()],
            created_at_ms: 1_700_000_000_500,
        }
    }

    fn artifact() -> ArtifactEnvelopeV1 {
        ArtifactEnvelopeV1 {
            size: 131_073,
            media_type: "application/json".into(),
            chunks: 3,
        }
    }

    fn feed() -> FeedEnvelopeV1 {
        FeedEnvelopeV1 {
            run_id: [0x11; 16],
            seq: 3,
            kind: "resumed".into(),
            at_ms: 1_700_000_000_123,
        }
    }

    /// The record as store format 1 wrote it (no leaf index).
    fn record_v1() -> RecordEnvelopeV1 {
        let r = record();
        RecordEnvelopeV1 {
            seq: r.seq(),
            at_ms: r.at_ms(),
            kind: r.kind().to_owned(),
            body_json: serde_json::to_vec(r.body()).unwrap_or_default(),
            prev_hash: *r.prev_hash().as_bytes(),
            state_hash: *r.state_hash().as_bytes(),
            hash: *r.hash().as_bytes(),
        }
    }

    fn feed_v2() -> FeedEnvelopeV2 {
        FeedEnvelopeV2 {
            run_id: [0x11; 16],
            seq: 3,
            kind: "resumed".into(),
            at_ms: 1_700_000_000_123,
            leaf_hash: [0x5c; 32],
        }
    }

    /// Envelopes whose version 2 store format 2 introduced.
    fn files_v2() -> Result<Vec<(&'static str, Vec<u8>)>, Error> {
        Ok(vec![
            ("record.bin", encode_record(&record(), 41)?),
            ("feed.bin", encode_feed(&feed_v2())?),
        ])
    }

    fn read_v2(name: &str) -> Vec<u8> {
        std::fs::read(format!("{DIR_V2}/{name}"))
            .unwrap_or_else(|e| panic!("golden file v2/{name}: {e}"))
    }

    #[test]
    fn golden_v2_envelopes_decode() -> Result<(), Error> {
        if std::env::var_os("LEDGERFLOW_WRITE_GOLDEN").is_some() {
            std::fs::create_dir_all(DIR_V2).map_err(|e| Error::io("golden files", e))?;
            for (name, bytes) in files_v2()? {
                std::fs::write(format!("{DIR_V2}/{name}"), bytes)
                    .map_err(|e| Error::io("golden files", e))?;
            }
        }
        assert_eq!(decode_record(RUN, &read_v2("record.bin"))?, record());
        assert_eq!(decode_record_leaf(&read_v2("record.bin"))?, Some(41));
        let (entry, leaf) = decode_feed_leaf(12, &read_v2("feed.bin"))?;
        assert_eq!(
            (
                entry.feed_seq,
                entry.run_id,
                entry.seq,
                entry.kind.as_str(),
                leaf
            ),
            (12, RUN, 3, "resumed", Some([0x5c; 32]))
        );
        let mut patched = encode_record(&record(), 0)?;
        set_record_leaf(&mut patched, 41);
        assert_eq!(
            patched,
            read_v2("record.bin"),
            "the leaf index is the last 8 bytes"
        );
        for (name, bytes) in files_v2()? {
            assert_eq!(
                bytes,
                read_v2(name),
                "{name} encodes differently from its golden file"
            );
        }
        Ok(())
    }

    fn files() -> Result<Vec<(&'static str, Vec<u8>)>, Error> {
        Ok(vec![
            ("state.bin", encode_state(&state())?),
            ("record.bin", encode("record", &record_v1())?),
            (
                "inbox.bin",
                encode_inbox(&json!({"answer": "yes"}), 1_700_000_000_200)?,
            ),
            (
                "inbox_meta.bin",
                encode_inbox_meta(InboxMetaV1 { head: 4, tail: 9 })?,
            ),
            ("snapshot.bin", encode_snapshot(&snapshot())?),
            ("artifact.bin", encode_artifact(&artifact())?),
            ("feed.bin", encode("feed entry", &feed())?),
        ])
    }

    fn read(name: &str) -> Vec<u8> {
        std::fs::read(format!("{DIR}/{name}")).unwrap_or_else(|e| panic!("golden file {name}: {e}"))
    }

    #[test]
    fn golden_v1_envelopes_decode() -> Result<(), Error> {
        if std::env::var_os("LEDGERFLOW_WRITE_GOLDEN").is_some() {
            std::fs::create_dir_all(DIR).map_err(|e| Error::io("golden files", e))?;
            for (name, bytes) in files()? {
                std::fs::write(format!("{DIR}/{name}"), bytes)
                    .map_err(|e| Error::io("golden files", e))?;
            }
        }
        assert_eq!(decode_state(&read("state.bin"))?, state());
        assert_eq!(
            decode_state_head(&read("state.bin"))?,
            (3, Hash::of(b"head"))
        );
        assert_eq!(decode_record(RUN, &read("record.bin"))?, record());
        assert_eq!(decode_record_leaf(&read("record.bin"))?, None);
        let inbox = decode_inbox(7, &read("inbox.bin"))?;
        assert_eq!(
            (inbox.seq, inbox.payload, inbox.at_ms),
            (7, json!({"answer": "yes"}), 1_700_000_000_200)
        );
        assert_eq!(
            decode_inbox_meta(Some(&read("inbox_meta.bin")))?,
            InboxMetaV1 { head: 4, tail: 9 }
        );
        assert_eq!(decode_snapshot(&read("snapshot.bin"))?, snapshot());
        assert_eq!(decode_artifact(&read("artifact.bin"))?, artifact());
        let entry = decode_feed(12, &read("feed.bin"))?;
        assert_eq!(
            (entry.feed_seq, entry.run_id, entry.seq, entry.kind.as_str()),
            (12, RUN, 3, "resumed")
        );
        // Today's encoder still writes exactly the golden bytes.
        for (name, bytes) in files()? {
            assert_eq!(
                bytes,
                read(name),
                "{name} encodes differently from its golden file"
            );
        }
        Ok(())
    }
}
