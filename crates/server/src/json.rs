//! The JSON of runs, snapshots, feed entries and check reports, as the API and the
//! command line print them (one shape, so `--url` and `--db` print the same).

use chrono::{TimeZone, Utc};
use ledgerflow_kernel::store::FeedEntry;
use ledgerflow_kernel::{CheckReport, RunState, Snapshot};
use serde_json::{json, Value};

/// Milliseconds since the Unix epoch as RFC 3339 UTC text.
pub fn time(at_ms: i64) -> String {
    Utc.timestamp_millis_opt(at_ms)
        .single()
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        .unwrap_or_else(|| at_ms.to_string())
}

/// A run, as listings and `runs show` print it.
pub fn run(state: &RunState) -> Value {
    json!({
        "run_id": state.run_id,
        "workflow_id": state.workflow_id,
        "version": state.workflow_version,
        "status": state.status,
        "paused": state.paused,
        "seq": state.head.seq,
        "head_hash": state.head.hash,
        "node": state.node,
        "created_at": time(state.created_at_ms),
        "updated_at": time(state.updated_at_ms),
        "created_at_ms": state.created_at_ms,
        "updated_at_ms": state.updated_at_ms,
        "waiting": state.waiting,
        "pending_effect": state.pending_effect,
        "output": state.output,
        "failure": state.failure,
        "cancel_reason": state.cancel_reason,
        "parent": state.parent,
        "vars": state.vars,
    })
}

/// A snapshot.
pub fn snapshot(snapshot: &Snapshot) -> Value {
    json!({
        "run_id": snapshot.run_id,
        "name": snapshot.name,
        "seq": snapshot.seq,
        "record_hash": snapshot.record_hash,
        "description": snapshot.description,
        "tags": snapshot.tags,
        "created_at": time(snapshot.created_at_ms),
        "created_at_ms": snapshot.created_at_ms,
    })
}

/// A feed entry.
pub fn feed_entry(entry: &FeedEntry) -> Value {
    json!({
        "feed_seq": entry.feed_seq,
        "run_id": entry.run_id,
        "seq": entry.seq,
        "kind": entry.kind,
        "at_ms": entry.at_ms,
    })
}

/// What a store check found.
pub fn check_report(report: &CheckReport) -> Value {
    let orphaned: Vec<Value> = report
        .orphaned_inboxes
        .iter()
        .map(|(key, events)| json!({ "wait_key": key, "events": events }))
        .collect();
    json!({
        "ok": report.orphaned_inboxes.is_empty(),
        "runs": report.runs,
        "records": report.records,
        "log_leaves": report.log_leaves,
        "orphaned_inboxes": orphaned,
    })
}
