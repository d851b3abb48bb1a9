//! JSONL export and import: one record per line, every hashed field present, so an
//! export verifies on its own.

use std::io::{self, BufRead, Write};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::{Hash, Record, RecordFields, RunId};

/// The value of the `format` member of every exported line.
const LINE_FORMAT: &str = "ledgerflow.record.v1";

/// The longest line [`import_jsonl`] accepts, in bytes (64 MiB). A longer line is an
/// error rather than an unbounded allocation.
pub const JSONL_LINE_BYTES_MAX: usize = 64 << 20;

#[derive(Serialize)]
struct LineOut<'a> {
    format: &'static str,
    run_id: RunId,
    seq: u64,
    at_ms: i64,
    kind: &'a str,
    body: &'a Value,
    prev_hash: Hash,
    state_hash: Hash,
    hash: Hash,
}

/// A line as read: members other than these, a member twice, or a duplicate key or too
/// deep a nesting inside the body are refused; ids and hashes are checked to be in their
/// one lowercase form by [`parse_jsonl_line`].
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LineIn {
    format: String,
    run_id: String,
    seq: u64,
    at_ms: i64,
    kind: String,
    #[serde(deserialize_with = "crate::strict::body")]
    body: Value,
    prev_hash: String,
    state_hash: String,
    hash: String,
}

/// A run id in its one textual form: the lowercase hyphenated UUID.
fn exact_run_id(text: &str) -> Result<RunId, String> {
    let id: RunId = text
        .parse()
        .map_err(|_| format!("run_id {text:?} is not a UUID"))?;
    if id.to_string() != text {
        return Err(format!(
            "run_id {text:?} must be the lowercase hyphenated UUID ({id})"
        ));
    }
    Ok(id)
}

/// A hash in its one textual form: 64 lowercase hex digits.
fn exact_hash(field: &str, text: &str) -> Result<Hash, String> {
    let refused = || format!("{field} {text:?} must be 64 lowercase hex digits");
    let hash: Hash = text.parse().map_err(|_| refused())?;
    if hash.to_hex() != text {
        return Err(refused());
    }
    Ok(hash)
}

/// A line of an export that could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// Reading the input failed.
    #[error("reading line {line}: {source}")]
    Io {
        /// 1-based line number.
        line: u64,
        /// The underlying error.
        source: io::Error,
    },
    /// The line is not a record of a known format.
    #[error("line {line}: {reason}")]
    Malformed {
        /// 1-based line number.
        line: u64,
        /// What was wrong.
        reason: String,
    },
}

/// One record as the JSON object of its export line (see [`export_jsonl`]).
pub fn record_json(record: &Record) -> serde_json::Value {
    let line = line_of(record);
    // A line is strings, numbers and a JSON body: it always converts.
    serde_json::to_value(&line).unwrap_or(serde_json::Value::Null)
}

fn line_of(record: &Record) -> LineOut<'_> {
    LineOut {
        format: LINE_FORMAT,
        run_id: record.run_id(),
        seq: record.seq(),
        at_ms: record.at_ms(),
        kind: record.kind(),
        body: record.body(),
        prev_hash: record.prev_hash(),
        state_hash: record.state_hash(),
        hash: record.hash(),
    }
}

/// Writes `records` as JSONL: one compact JSON object per line, members in the order of
/// `docs/ledger-format.md`, each line ending in `\n`.
pub fn export_jsonl<'a, W: Write>(
    records: impl IntoIterator<Item = &'a Record>,
    mut out: W,
) -> io::Result<()> {
    for record in records {
        serde_json::to_writer(&mut out, &line_of(record))?;
        out.write_all(b"\n")?;
    }
    out.flush()
}

/// Parses one exported line into a record. The record's hash is *not* checked here: that
/// is [`crate::verify_chain`]'s job, which also names the record that fails.
pub fn parse_jsonl_line(text: &str) -> Result<Record, String> {
    let line: LineIn = serde_json::from_str(text).map_err(|e| e.to_string())?;
    if line.format != LINE_FORMAT {
        return Err(format!(
            "unknown format {:?}, expected {LINE_FORMAT:?}",
            line.format
        ));
    }
    Ok(Record::from_fields(RecordFields {
        run_id: exact_run_id(&line.run_id)?,
        seq: line.seq,
        at_ms: line.at_ms,
        kind: line.kind,
        body: line.body,
        prev_hash: exact_hash("prev_hash", &line.prev_hash)?,
        state_hash: exact_hash("state_hash", &line.state_hash)?,
        hash: exact_hash("hash", &line.hash)?,
    }))
}

/// Reads a JSONL export. Blank lines are skipped. Records of several runs may be mixed;
/// group them by run before verifying.
pub fn import_jsonl<R: BufRead>(mut input: R) -> Result<Vec<Record>, ImportError> {
    let mut records = Vec::new();
    let mut buf = Vec::new();
    let mut line_no = 0u64;
    loop {
        buf.clear();
        line_no += 1;
        let mut limited = io::Read::take(&mut input, JSONL_LINE_BYTES_MAX as u64 + 1);
        let read = limited
            .read_until(b'\n', &mut buf)
            .map_err(|source| ImportError::Io {
                line: line_no,
                source,
            })?;
        if read == 0 {
            return Ok(records);
        }
        if buf.len() > JSONL_LINE_BYTES_MAX {
            return Err(ImportError::Malformed {
                line: line_no,
                reason: format!("line longer than {JSONL_LINE_BYTES_MAX} bytes"),
            });
        }
        let text = std::str::from_utf8(&buf).map_err(|e| ImportError::Malformed {
            line: line_no,
            reason: format!("not UTF-8: {e}"),
        })?;
        let text = text.trim();
        if text.is_empty() {
            continue;
        }
        let record = parse_jsonl_line(text).map_err(|reason| ImportError::Malformed {
            line: line_no,
            reason,
        })?;
        records.push(record);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::RecordDraft;
    use serde_json::json;

    fn chain(len: u64) -> Vec<Record> {
        let run_id = RunId::new_v4();
        let mut prev = Hash::GENESIS;
        (1..=len)
            .map(|seq| {
                let record = RecordDraft {
                    run_id,
                    seq,
                    at_ms: 1_000 + i64::try_from(seq).unwrap_or(0),
                    kind: "step".into(),
                    body: json!({"n": seq, "f": 0.1, "s": "é\n"}),
                    state_hash: Hash::of(&seq.to_be_bytes()),
                }
                .seal(prev);
                prev = record.hash();
                record
            })
            .collect()
    }

    #[test]
    fn export_then_import_is_identity() {
        let records = chain(5);
        let mut out = Vec::new();
        export_jsonl(&records, &mut out).expect("writing to a Vec succeeds");
        let back = import_jsonl(out.as_slice()).expect("own export imports");
        assert_eq!(back, records);
        assert!(crate::verify_chain(&back).is_ok());
    }

    #[test]
    fn import_names_the_bad_line() {
        let mut out = Vec::new();
        export_jsonl(&chain(2), &mut out).expect("writing to a Vec succeeds");
        out.extend_from_slice(b"{\"format\":\"other\"}\n");
        match import_jsonl(out.as_slice()) {
            Err(ImportError::Malformed { line, .. }) => assert_eq!(line, 3),
            other => panic!("expected a malformed line 3, got {other:?}"),
        }
    }

    /// Every line of `tests/vectors/invalid-lines-v1.json` is refused, for the reason
    /// given (the independent Python verifier checks the same file).
    #[test]
    fn invalid_line_vectors_are_refused() {
        let text = include_str!("../tests/vectors/invalid-lines-v1.json");
        let vectors: Vec<Value> = serde_json::from_str(text).expect("vectors");
        assert!(vectors.len() >= 6);
        for v in &vectors {
            let line = v["line"].as_str().expect("line");
            let err = parse_jsonl_line(line).expect_err(v["name"].as_str().unwrap_or("?"));
            let expect = v["rust_error_contains"].as_str().expect("expected error");
            assert!(err.contains(expect), "{}: {err}", v["name"]);
        }
        // The valid line they are made from parses.
        let good = vectors[0]["valid_line"].as_str().expect("valid line");
        parse_jsonl_line(good).expect("the valid line parses");
    }

    #[test]
    fn depth_is_counted_by_containers() {
        assert_eq!(crate::strict::depth(&json!(1)), 0);
        assert_eq!(crate::strict::depth(&json!({"a": [1, {"b": []}]})), 4);
    }

    #[test]
    fn unknown_format_version_is_rejected() {
        let mut out = Vec::new();
        export_jsonl(&chain(1), &mut out).expect("writing to a Vec succeeds");
        let text = String::from_utf8(out).expect("utf-8").replace(".v1", ".v9");
        let err = parse_jsonl_line(text.trim()).expect_err("v9 is unknown");
        assert!(err.contains("unknown format"), "{err}");
    }
}
