//! Lineage between the runs of one export: a fork's first record cites the record of its
//! parent it was forked at (`from_run_id`, `from_seq`, `from_record_hash`), and a
//! subworkflow's first record cites its parent's last record when it was created
//! (`parent.run_id`, `parent.after.seq`, `parent.after.hash`). When the cited run is in
//! the export too, the cited record must be there with that hash.

use std::collections::HashMap;

use serde_json::Value;

use crate::{Hash, Record, RunId};

/// A citation that does not match the cited run's ledger.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LineageFault {
    /// The run whose first record cites another.
    pub run_id: RunId,
    /// What is wrong.
    pub reason: String,
}

/// What [`verify_lineage`] found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LineageReport {
    /// Citations checked against a cited run present in the export.
    pub checked: u64,
    /// Citations whose cited run is not in the export (not checkable here).
    pub parent_absent: u64,
    /// Citations that do not match.
    pub faults: Vec<LineageFault>,
}

/// The run, seq and record hash a run's first record cites, if any.
fn citation(first: &Record) -> Option<(RunId, u64, Option<Hash>)> {
    let body = first.body();
    let (run, seq, hash) = match first.kind() {
        "forked" => (
            &body["from_run_id"],
            &body["from_seq"],
            &body["from_record_hash"],
        ),
        "started" => {
            let after = &body["parent"]["after"];
            if after.is_null() {
                return None;
            }
            (&body["parent"]["run_id"], &after["seq"], &after["hash"])
        }
        _ => return None,
    };
    let run: RunId = run.as_str()?.parse().ok()?;
    let hash = match hash {
        Value::String(text) => text.parse().ok(),
        _ => None,
    };
    Some((run, seq.as_u64()?, hash))
}

/// Checks every citation between runs of `records` (an export, chains already verified).
pub fn verify_lineage(records: &[Record]) -> LineageReport {
    let by_key: HashMap<(RunId, u64), &Record> =
        records.iter().map(|r| ((r.run_id(), r.seq()), r)).collect();
    let runs: std::collections::HashSet<RunId> = records.iter().map(Record::run_id).collect();
    let mut report = LineageReport::default();
    for first in records.iter().filter(|r| r.seq() == 1) {
        let Some((cited_run, cited_seq, cited_hash)) = citation(first) else {
            continue;
        };
        if !runs.contains(&cited_run) {
            report.parent_absent += 1;
            continue;
        }
        report.checked += 1;
        let fault = match (by_key.get(&(cited_run, cited_seq)), cited_hash) {
            (None, _) => Some(format!(
                "cites record {cited_seq} of run {cited_run}, which is not in its ledger"
            )),
            (Some(_), None) => Some(format!(
                "cites record {cited_seq} of run {cited_run} without a valid hash"
            )),
            (Some(record), Some(hash)) if record.hash() != hash => Some(format!(
                "cites record {cited_seq} of run {cited_run} with hash {}, but that record's hash is {}",
                hash.to_hex(),
                record.hash().to_hex()
            )),
            _ => None,
        };
        if let Some(reason) = fault {
            report.faults.push(LineageFault {
                run_id: first.run_id(),
                reason,
            });
        }
    }
    report
}
