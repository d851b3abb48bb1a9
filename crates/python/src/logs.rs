//! Named append-only logs on the ledger: each log is a run of the built-in workflow
//! `ledgerflow.log` that waits on the key `log:<name>`, and each entry appended is
//! delivered to that key, so it is a `resumed` record of the run — hash-chained,
//! fsynced, in the global log, verifiable like any other run. The LangGraph checkpointer
//! keeps one log per thread.

use ledgerflow::{
    Effect, Engine, Event, Hash, RunId, RunQuery, ScheduledRuntime, StepContext, StepPlan,
    WorkflowSpec,
};
use serde_json::{json, Value};

/// The workflow id of logs.
pub const LOG_WORKFLOW: &str = "ledgerflow.log";

/// How many records are read per page when a log is read back.
const PAGE: usize = 1_000;

fn key(name: &str) -> String {
    format!("log:{name}")
}

/// The spec of the log workflow: one node that waits for the next entry, forever.
pub fn spec() -> Result<WorkflowSpec, ledgerflow::SpecError> {
    WorkflowSpec::builder(LOG_WORKFLOW, 1)
        .node("append", |ctx: &mut StepContext<'_>| {
            let name = ctx.var("log").and_then(Value::as_str).unwrap_or_default();
            StepPlan::effect(Effect::wait_event(key(name))).then_next("append")
        })
        .entry("append")
        .build()
}

/// The run that holds the log `name`: derived from the name, so every process finds it.
pub fn run_id(name: &str) -> RunId {
    let digest = Hash::of_domain(b"ledgerflow.log.v1\0", name.as_bytes());
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest.as_bytes()[..16]);
    bytes[6] = (bytes[6] & 0x0f) | 0x80; // UUID version 8 (custom)
    bytes[8] = (bytes[8] & 0x3f) | 0x80; // RFC 4122 variant
    RunId::from_bytes(bytes)
}

/// Appends `entry` to the log `name` (creating the log first if needed) in one durable
/// commit; the seq of its record.
pub fn append(
    rt: &ScheduledRuntime,
    name: &str,
    entry: Value,
) -> Result<u64, ledgerflow::SchedulerError> {
    let engine = rt.engine();
    let id = run_id(name);
    // The log's run waits on its key: resume it directly (one load, one commit, no inbox
    // lookup). A log never written is created first; anything else — the run between two
    // entries, another writer moving it first — goes through `deliver`, which queues the
    // entry or resumes the run, never both.
    match engine.resume(id, &key(name), entry.clone()) {
        Ok(state) => return Ok(state.head.seq.saturating_sub(1)),
        Err(e) if e.kind() == ledgerflow::ErrorKind::NotFound => {
            // A lost race to create it is fine: the log exists either way.
            match engine.run_as(id, (LOG_WORKFLOW, 1), json!({ "log": name })) {
                Ok(_) => {}
                Err(e) if e.is_conflict() => {}
                Err(e) => return Err(e.into()),
            }
        }
        Err(e) if resume_can_be_retried(&e) => {}
        Err(e) => return Err(e.into()),
    }
    match rt.deliver(&key(name), entry)? {
        ledgerflow::Delivered::Resumed(state) => Ok(state.head.seq.saturating_sub(1)),
        // The log's run was between two entries: it consumes this one next, in order.
        ledgerflow::Delivered::Queued(_) => Ok(0),
    }
}

/// Whether a direct resume failed before writing anything, for a reason `deliver`
/// handles (the run not waiting at that moment, or a lost race).
fn resume_can_be_retried(e: &ledgerflow::Error) -> bool {
    matches!(
        e.kind(),
        ledgerflow::ErrorKind::Conflict | ledgerflow::ErrorKind::InvalidState
    )
}

/// Every entry of the log `name`, in order (an empty list for a log never written).
pub fn read(engine: &Engine, name: &str) -> Result<Vec<Value>, ledgerflow::Error> {
    let id = run_id(name);
    if engine.store().load(id)?.is_none() {
        return Ok(Vec::new());
    }
    let mut entries = Vec::new();
    let mut from = 1;
    loop {
        let records = engine.records(id, from, PAGE)?;
        for record in &records {
            if let Event::Resumed { payload, .. } = Event::from_record(record)
                .map_err(|e| ledgerflow::Error::Internal(e.to_string()))?
            {
                entries.push(engine.resolve(&payload)?);
            }
        }
        match records.last() {
            Some(last) if records.len() == PAGE => from = last.seq() + 1,
            _ => return Ok(entries),
        }
    }
}

/// The names of every log in the store.
pub fn names(engine: &Engine) -> Result<Vec<String>, ledgerflow::Error> {
    let query = RunQuery {
        workflow_id: Some(LOG_WORKFLOW.to_owned()),
        ..RunQuery::default()
    };
    let mut out = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let page = engine.query_runs(&query, cursor.as_deref(), PAGE)?;
        out.extend(
            page.runs
                .iter()
                .filter_map(|s| s.vars.get("log").and_then(Value::as_str).map(str::to_owned)),
        );
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => return Ok(out),
        }
    }
}
