//! How values are kept in columns: run states as their JSON, records as their export line
//! (docs/ledger-format.md, so `SELECT line FROM lf_records` is an export), ids and hashes
//! as raw bytes; and database errors as the store's typed errors. Everything read back is
//! checked: a record's hash is recomputed, a state must parse.

use ledgerflow_kernel::store::Error;
use ledgerflow_kernel::{Hash, Record, RunId, RunState, RunStatus};
use ledgerflow_ledger::merkle::TreeHash;
use uuid::Uuid;

/// A run id as a `uuid` column.
pub fn uuid(run_id: RunId) -> Uuid {
    Uuid::from_bytes(*run_id.as_bytes())
}

/// A `uuid` column as a run id.
pub fn run_id(uuid: Uuid) -> RunId {
    RunId::from_bytes(*uuid.as_bytes())
}

/// A 32-byte `bytea` column as a hash.
pub fn hash(bytes: &[u8], what: &str) -> Result<Hash, Error> {
    let array: [u8; 32] = bytes
        .try_into()
        .map_err(|_| Error::Corrupt(format!("{what}: {} bytes, not 32", bytes.len())))?;
    Ok(Hash::from_bytes(array))
}

/// A 32-byte `bytea` column as a global-log hash.
pub fn tree_hash(bytes: &[u8], index: i64) -> Result<TreeHash, Error> {
    let array: [u8; 32] = bytes.try_into().map_err(|_| {
        Error::Corrupt(format!(
            "global log hash {index}: {} bytes, not 32",
            bytes.len()
        ))
    })?;
    Ok(TreeHash(array))
}

/// A run state's column.
pub fn state_bytes(state: &RunState) -> Result<Vec<u8>, Error> {
    serde_json::to_vec(state).map_err(|e| Error::InvalidInput(format!("a run state: {e}")))
}

/// A run state from its column.
pub fn state(bytes: &[u8], run: RunId) -> Result<RunState, Error> {
    serde_json::from_slice(bytes)
        .map_err(|e| Error::Corrupt(format!("the state of run {run} does not parse: {e}")))
}

/// A record's column: its export line.
pub fn record_line(record: &Record) -> String {
    ledgerflow_ledger::record_json(record).to_string()
}

/// A record from its export line, its hash recomputed.
pub fn record(line: &str, run: RunId, seq: i64) -> Result<Record, Error> {
    let corrupt = |why: String| Error::Corrupt(format!("record {seq} of run {run}: {why}"));
    let record = ledgerflow_ledger::parse_jsonl_line(line).map_err(corrupt)?;
    if record.run_id() != run || i64::try_from(record.seq()).ok() != Some(seq) {
        return Err(corrupt("stored under another run or seq".into()));
    }
    if record.compute_hash() != record.hash() {
        return Err(corrupt("its hash does not match its fields".into()));
    }
    Ok(record)
}

/// A status column.
pub fn status(text: &str) -> Result<RunStatus, Error> {
    RunStatus::ALL
        .into_iter()
        .find(|s| s.as_str() == text)
        .ok_or_else(|| Error::Corrupt(format!("unknown run status {text:?}")))
}

/// A count or seq as a `bigint`.
pub fn int(value: u64, what: &str) -> Result<i64, Error> {
    i64::try_from(value).map_err(|_| Error::InvalidInput(format!("{what} {value} is too large")))
}

/// A `bigint` that must not be negative.
pub fn uint(value: i64, what: &str) -> Result<u64, Error> {
    u64::try_from(value).map_err(|_| Error::Corrupt(format!("{what} is negative: {value}")))
}

/// A database error as the store's error: IO (the commit was not acknowledged), with
/// what was being done.
pub fn db_error(context: &str, e: postgres::Error) -> Error {
    // The client's message is often "error connecting to server"; the cause says why.
    let mut message = format!("{context}: {e}");
    let mut source = std::error::Error::source(&e);
    while let Some(cause) = source {
        let text = cause.to_string();
        if !message.ends_with(&text) {
            message.push_str(&format!(": {text}"));
        }
        source = cause.source();
    }
    Error::io_failed(message)
}
