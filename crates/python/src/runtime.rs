//! `Runtime`: a `ScheduledRuntime` for Python. Every call that touches the store or waits
//! releases the GIL, so the scheduler's workers can run Python node handlers meanwhile;
//! values cross as JSON (see `convert.rs`); errors become `ledgerflow` exceptions.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use ledgerflow::{
    Delivered, Durability, FeedCursor, RunId, RunQuery, RunState, RunStatus, RuntimeConfig,
    ScheduledRuntime, SnapshotFilter, StoreChoice, WorkflowKey, WorkflowSpec,
};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyDict;
use serde_json::{json, Value};

use crate::convert::{to_json, to_py};
use crate::errors::{exception, to_py_err, Kinded};
use crate::handlers::{PyEffect, PyNode};

/// How long `await_end` and `await_waiting` wait by default, in seconds.
const AWAIT_DEFAULT_S: f64 = 30.0;

/// A durable workflow runtime: a store, an engine and a scheduler with worker threads.
#[pyclass(module = "ledgerflow", frozen)]
pub struct Runtime {
    /// `None` once closed: the store's files are let go of.
    inner: RwLock<Option<Arc<ScheduledRuntime>>>,
    /// Where the store lives (kept for `repr` after closing).
    location: String,
}

fn run_id(text: &str) -> PyResult<RunId> {
    text.parse::<RunId>().map_err(|_| {
        exception(
            ledgerflow::ErrorKind::InvalidInput,
            format!("invalid run id {text:?}: expected a UUID"),
        )
    })
}

fn state_to_py<'py>(py: Python<'py>, state: &RunState) -> PyResult<Bound<'py, PyAny>> {
    let value = serde_json::to_value(state)
        .map_err(|e| exception(ledgerflow::ErrorKind::Internal, e.to_string()))?;
    to_py(py, &value)
}

/// The built-in log workflow's spec, as the runtime's error type.
fn logs_spec() -> Result<WorkflowSpec, ledgerflow::SchedulerError> {
    crate::logs::spec()
        .map_err(|e| ledgerflow::SchedulerError::Engine(ledgerflow::Error::Internal(e.to_string())))
}

fn seconds(timeout_s: f64) -> PyResult<Duration> {
    Duration::try_from_secs_f64(timeout_s).map_err(|_| {
        PyValueError::new_err(format!(
            "timeout_s must be a finite number of seconds >= 0, not {timeout_s}"
        ))
    })
}

/// `(workflow_id, version)` from a `Workflow` or a `(id, version)` tuple.
fn workflow_key(workflow: &Bound<'_, PyAny>) -> PyResult<(String, u32)> {
    if let (Ok(id), Ok(version)) = (workflow.getattr("id"), workflow.getattr("version")) {
        return Ok((id.extract()?, version.extract()?));
    }
    workflow.extract::<(String, u32)>().map_err(|_| {
        PyValueError::new_err("workflow must be a ledgerflow.Workflow or an (id, version) tuple")
    })
}

impl Runtime {
    fn new(runtime: ScheduledRuntime) -> Self {
        Runtime {
            location: runtime.store_choice().to_string(),
            inner: RwLock::new(Some(Arc::new(runtime))),
        }
    }

    /// Runs `op` on the run `run_id` names without the GIL; the state it returns, as a dict.
    fn on_run<'py, E: Kinded + Send>(
        &self,
        py: Python<'py>,
        run_id: &str,
        op: impl FnOnce(&ScheduledRuntime, RunId) -> Result<RunState, E> + Send,
    ) -> PyResult<Bound<'py, PyAny>> {
        let rt = self.rt()?;
        let id = self::run_id(run_id)?;
        let state = py.detach(|| op(&rt, id)).map_err(to_py_err)?;
        state_to_py(py, &state)
    }

    /// The runtime, unless it was closed.
    fn rt(&self) -> PyResult<Arc<ScheduledRuntime>> {
        self.inner
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
            .ok_or_else(|| {
                exception(
                    ledgerflow::ErrorKind::Closed,
                    format!("the runtime on {} is closed", self.location),
                )
            })
    }
}

#[pymethods]
impl Runtime {
    /// Opens (creating if missing) the store at `location`: a directory, or `sled:PATH`.
    /// `durability`: `"log"` (the default: the store's commit log, fsynced per group of
    /// commits), `"sync"` (sled itself fsynced), or `"none"` (for throwaway data).
    /// `records_per_commit_max`: how many records the steps of one tick may share a
    /// commit (64; 1 commits every step on its own).
    #[staticmethod]
    #[pyo3(signature = (location, *, durability=None, records_per_commit_max=None))]
    fn open(
        py: Python<'_>,
        location: &str,
        durability: Option<&str>,
        records_per_commit_max: Option<u32>,
    ) -> PyResult<Self> {
        let choice: StoreChoice = location.parse().map_err(to_py_err)?;
        // The default sled durability is the commit log (`Durability::Log`).
        let mut config = RuntimeConfig {
            store: choice,
            ..RuntimeConfig::default()
        };
        config.sled.durability = match durability {
            None | Some("log") => config.sled.durability,
            Some("sync") => Durability::Sync,
            Some("none") => Durability::None,
            Some(other) => {
                return Err(exception(
                    ledgerflow::ErrorKind::InvalidInput,
                    format!("unknown durability {other:?}: log, sync or none"),
                ))
            }
        };
        if let Some(max) = records_per_commit_max {
            if max == 0 {
                return Err(exception(
                    ledgerflow::ErrorKind::InvalidInput,
                    "records_per_commit_max must be at least 1".into(),
                ));
            }
            config.engine.records_per_commit_max = max;
        }
        let runtime = py
            .detach(|| {
                ScheduledRuntime::builder()
                    .config(config)
                    .register(logs_spec()?)
                    .start()
            })
            .map_err(to_py_err)?;
        Ok(Runtime::new(runtime))
    }

    /// A runtime on the in-memory store: nothing survives the process.
    #[staticmethod]
    fn in_memory(py: Python<'_>) -> PyResult<Self> {
        let runtime = py
            .detach(|| {
                ScheduledRuntime::builder()
                    .register(logs_spec()?)
                    .memory()
                    .start()
            })
            .map_err(to_py_err)?;
        Ok(Runtime::new(runtime))
    }

    /// Where the store lives (`sled:PATH` or `memory:`).
    #[getter]
    fn location(&self) -> String {
        self.location.clone()
    }

    /// Registers a workflow: `workflow.id`, `.version`, `.entry` and `.nodes` (node name
    /// to a callable `handler(ctx) -> plan`).
    fn register(&self, workflow: &Bound<'_, PyAny>) -> PyResult<()> {
        let rt = self.rt()?;
        let (id, version) = workflow_key(workflow)?;
        let entry: String = workflow.getattr("entry")?.extract()?;
        let nodes = workflow.getattr("nodes")?;
        let nodes = nodes.cast::<PyDict>()?;
        let mut builder = WorkflowSpec::builder(id, version).entry(entry);
        for (name, handler) in nodes.iter() {
            if !handler.is_callable() {
                return Err(PyValueError::new_err(format!(
                    "node {name} is not callable"
                )));
            }
            builder = builder.node(name.extract::<String>()?, PyNode::new(handler.unbind()));
        }
        let spec = builder
            .build()
            .map_err(|e| exception(ledgerflow::ErrorKind::InvalidInput, e.to_string()))?;
        rt.register(spec);
        Ok(())
    }

    /// Registers `handler(call) -> result` for the custom effect `kind`. The call is a
    /// dict (`run_id`, `kind`, `payload`, `idempotency_key`, `attempt`); return the result,
    /// `ledgerflow.waiting(key)` or `ledgerflow.failed(error, retryable)`. An exception is a
    /// retryable failure.
    fn register_effect(&self, kind: &str, handler: &Bound<'_, PyAny>) -> PyResult<()> {
        let rt = self.rt()?;
        if !handler.is_callable() {
            return Err(PyValueError::new_err("an effect handler must be callable"));
        }
        rt.register_effect(kind, PyEffect::new(handler.clone().unbind()))
            .map_err(to_py_err)
    }

    /// Starts a run and runs it until it waits, ends or is handed to the workers; its state.
    #[pyo3(signature = (workflow, input=None))]
    fn run<'py>(
        &self,
        py: Python<'py>,
        workflow: &Bound<'py, PyAny>,
        input: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let rt = self.rt()?;
        let (workflow_id, version) = workflow_key(workflow)?;
        let key = WorkflowKey {
            workflow_id,
            version,
        };
        let input = match input {
            Some(input) => to_json(input, "input")?,
            None => Value::Null,
        };
        let state = py.detach(|| rt.run(key, input)).map_err(to_py_err)?;
        state_to_py(py, &state)
    }

    /// Answers what the run waits for (a person's answer, an event) with `payload`.
    fn respond<'py>(
        &self,
        py: Python<'py>,
        run_id: &str,
        payload: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let payload = to_json(payload, "payload")?;
        self.on_run(py, run_id, |rt, id| rt.respond(id, payload))
    }

    /// Delivers `payload` to `wait_key`: the waiting run resumes, or the event is queued
    /// in the key's inbox. `{"resumed": state}` or `{"queued": inbox_seq}`.
    fn deliver<'py>(
        &self,
        py: Python<'py>,
        wait_key: &str,
        payload: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let rt = self.rt()?;
        let payload = to_json(payload, "payload")?;
        let delivered = py
            .detach(|| rt.deliver(wait_key, payload))
            .map_err(to_py_err)?;
        let out = PyDict::new(py);
        match delivered {
            Delivered::Resumed(state) => out.set_item("resumed", state_to_py(py, &state)?)?,
            Delivered::Queued(seq) => out.set_item("queued", seq)?,
        }
        Ok(out.into_any())
    }

    /// Waits until the run has ended (completed, failed, cancelled); its final state.
    #[pyo3(signature = (run_id, timeout_s=AWAIT_DEFAULT_S))]
    fn await_end<'py>(
        &self,
        py: Python<'py>,
        run_id: &str,
        timeout_s: f64,
    ) -> PyResult<Bound<'py, PyAny>> {
        let timeout = seconds(timeout_s)?;
        self.on_run(py, run_id, |rt, id| rt.await_end(id, timeout))
    }

    /// Waits until the run waits (or has ended); its state.
    #[pyo3(signature = (run_id, timeout_s=AWAIT_DEFAULT_S))]
    fn await_waiting<'py>(
        &self,
        py: Python<'py>,
        run_id: &str,
        timeout_s: f64,
    ) -> PyResult<Bound<'py, PyAny>> {
        let timeout = seconds(timeout_s)?;
        self.on_run(py, run_id, |rt, id| rt.await_waiting(id, timeout))
    }

    /// The run's current state.
    fn load<'py>(&self, py: Python<'py>, run_id: &str) -> PyResult<Bound<'py, PyAny>> {
        self.on_run(py, run_id, |rt, id| rt.engine().load(id))
    }

    /// Pauses the run (a waiting run's timer still fires, but it resumes only once unpaused).
    fn pause<'py>(&self, py: Python<'py>, run_id: &str) -> PyResult<Bound<'py, PyAny>> {
        self.on_run(py, run_id, |rt, id| rt.pause(id))
    }

    /// Unpauses the run and carries it on.
    fn unpause<'py>(&self, py: Python<'py>, run_id: &str) -> PyResult<Bound<'py, PyAny>> {
        self.on_run(py, run_id, |rt, id| rt.unpause(id))
    }

    /// Cancels the run and its children; the run's state afterwards.
    #[pyo3(signature = (run_id, reason="cancelled from Python"))]
    fn cancel<'py>(
        &self,
        py: Python<'py>,
        run_id: &str,
        reason: &str,
    ) -> PyResult<Bound<'py, PyAny>> {
        self.on_run(py, run_id, |rt, id| rt.cancel(id, reason).map(|o| o.state))
    }

    /// A new run from the run's state right after record `seq` (time travel); its id.
    fn fork(&self, py: Python<'_>, run_id: &str, seq: u64) -> PyResult<String> {
        let rt = self.rt()?;
        let id = self::run_id(run_id)?;
        let fork = py.detach(|| rt.engine().fork(id, seq)).map_err(to_py_err)?;
        rt.enqueue(fork).map_err(to_py_err)?;
        Ok(fork.to_string())
    }

    /// Bookmarks the run at its current record under `name`.
    #[pyo3(signature = (run_id, name, description="", tags=Vec::new()))]
    fn create_snapshot<'py>(
        &self,
        py: Python<'py>,
        run_id: &str,
        name: &str,
        description: &str,
        tags: Vec<String>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let rt = self.rt()?;
        let id = self::run_id(run_id)?;
        let tags: Vec<&str> = tags.iter().map(String::as_str).collect();
        let snapshot = py
            .detach(|| rt.engine().create_snapshot(id, name, description, &tags))
            .map_err(to_py_err)?;
        to_py(py, &snapshot_json(&snapshot))
    }

    /// Snapshots, by run then name, optionally of one run or with one tag.
    #[pyo3(signature = (run_id=None, tag=None, limit=100))]
    fn list_snapshots<'py>(
        &self,
        py: Python<'py>,
        run_id: Option<&str>,
        tag: Option<String>,
        limit: usize,
    ) -> PyResult<Bound<'py, PyAny>> {
        let rt = self.rt()?;
        let filter = SnapshotFilter {
            run_id: run_id.map(self::run_id).transpose()?,
            tag,
            name_contains: None,
        };
        let found = py
            .detach(|| rt.engine().list_snapshots(&filter, limit))
            .map_err(to_py_err)?;
        to_py(py, &Value::Array(found.iter().map(snapshot_json).collect()))
    }

    /// The run's state as it was at the snapshot `name`.
    fn snapshot_state<'py>(
        &self,
        py: Python<'py>,
        run_id: &str,
        name: &str,
    ) -> PyResult<Bound<'py, PyAny>> {
        self.on_run(py, run_id, |rt, id| rt.engine().snapshot_state(id, name))
    }

    /// Up to `limit` of the run's ledger records from `from_seq`, as their export lines.
    #[pyo3(signature = (run_id, from_seq=1, limit=1000))]
    fn records<'py>(
        &self,
        py: Python<'py>,
        run_id: &str,
        from_seq: u64,
        limit: usize,
    ) -> PyResult<Bound<'py, PyAny>> {
        let rt = self.rt()?;
        let id = self::run_id(run_id)?;
        let records = py
            .detach(|| rt.engine().records(id, from_seq, limit))
            .map_err(to_py_err)?;
        let lines: Vec<Value> = records
            .iter()
            .map(ledgerflow::ledger::record_json)
            .collect();
        to_py(py, &Value::Array(lines))
    }

    /// Runs matching the filters, newest first: `{"runs": [...], "next_cursor": str | None}`.
    #[pyo3(signature = (status=None, workflow_id=None, cursor=None, limit=100))]
    fn query_runs<'py>(
        &self,
        py: Python<'py>,
        status: Option<&str>,
        workflow_id: Option<String>,
        cursor: Option<String>,
        limit: usize,
    ) -> PyResult<Bound<'py, PyAny>> {
        let rt = self.rt()?;
        let status = status
            .map(|s| {
                serde_json::from_value::<RunStatus>(json!(s)).map_err(|_| {
                    exception(
                        ledgerflow::ErrorKind::InvalidInput,
                        format!("unknown status {s:?}: running, waiting, completed, failed or cancelled"),
                    )
                })
            })
            .transpose()?;
        let query = RunQuery {
            status,
            workflow_id,
            newest_first: true,
            ..RunQuery::default()
        };
        let page = py
            .detach(|| rt.engine().query_runs(&query, cursor.as_deref(), limit))
            .map_err(to_py_err)?;
        let runs = page
            .runs
            .iter()
            .map(|s| serde_json::to_value(s).unwrap_or(Value::Null))
            .collect();
        to_py(
            py,
            &json!({ "runs": Value::Array(runs), "next_cursor": page.next_cursor }),
        )
    }

    /// Up to `limit` events of the store's feed after `cursor` (from the start when
    /// `None`): `{"events": [...], "next_cursor": str, "has_more": bool}`.
    #[pyo3(signature = (cursor=None, limit=100))]
    fn read_events<'py>(
        &self,
        py: Python<'py>,
        cursor: Option<&str>,
        limit: usize,
    ) -> PyResult<Bound<'py, PyAny>> {
        let rt = self.rt()?;
        let cursor = match cursor {
            Some(text) => text
                .parse::<FeedCursor>()
                .map_err(|e| exception(ledgerflow::ErrorKind::InvalidInput, e.to_string()))?,
            None => rt.engine().cursor_from_start(),
        };
        let page = py
            .detach(|| rt.engine().read_events(&cursor, limit))
            .map_err(to_py_err)?;
        let events: Vec<Value> = page
            .events
            .iter()
            .map(|e| json!({ "feed_seq": e.feed_seq, "run_id": e.run_id.to_string(), "seq": e.seq, "kind": e.kind, "at_ms": e.at_ms }))
            .collect();
        to_py(
            py,
            &json!({ "events": events, "next_cursor": page.next_cursor.to_string(), "has_more": page.has_more }),
        )
    }

    /// Verifies one run (its chain, and that replaying it gives its state) or, with no run,
    /// the whole store (every chain, the indexes, the global log). A dict of what was
    /// checked; damage raises `CorruptError`.
    #[pyo3(signature = (run_id=None))]
    fn verify<'py>(&self, py: Python<'py>, run_id: Option<&str>) -> PyResult<Bound<'py, PyAny>> {
        let rt = self.rt()?;
        let out = match run_id {
            Some(text) => {
                let id = self::run_id(text)?;
                let state = py
                    .detach(|| rt.engine().verify_run(id))
                    .map_err(to_py_err)?;
                json!({ "run_id": text, "records": state.head.seq, "ok": true })
            }
            None => {
                let report = py.detach(|| rt.store().check()).map_err(to_py_err)?;
                json!({
                    "ok": report.orphaned_inboxes.is_empty(),
                    "runs": report.runs,
                    "records": report.records,
                    "log_leaves": report.log_leaves,
                    "orphaned_inboxes": report.orphaned_inboxes.iter().map(|(k, n)| json!({"wait_key": k, "events": n})).collect::<Vec<_>>(),
                })
            }
        };
        to_py(py, &out)
    }

    /// Appends `entry` (JSON) to the named append-only log in one durable commit: a
    /// hash-chained record of the log's run. Returns the record's seq (0 when it was
    /// queued behind an entry being appended).
    fn append_log(&self, py: Python<'_>, name: &str, entry: &Bound<'_, PyAny>) -> PyResult<u64> {
        let rt = self.rt()?;
        let entry = to_json(entry, "entry")?;
        py.detach(|| crate::logs::append(&rt, name, entry))
            .map_err(to_py_err)
    }

    /// Every entry of the named log, in order.
    fn read_log<'py>(&self, py: Python<'py>, name: &str) -> PyResult<Bound<'py, PyAny>> {
        let rt = self.rt()?;
        let entries = py
            .detach(|| crate::logs::read(rt.engine(), name))
            .map_err(to_py_err)?;
        to_py(py, &Value::Array(entries))
    }

    /// The names of every log in the store.
    fn log_names(&self, py: Python<'_>) -> PyResult<Vec<String>> {
        let rt = self.rt()?;
        py.detach(|| crate::logs::names(rt.engine()))
            .map_err(to_py_err)
    }

    /// The run id that holds the named log (export or verify it like any run).
    #[staticmethod]
    fn log_run_id(name: &str) -> String {
        crate::logs::run_id(name).to_string()
    }

    /// Counts of runs by status.
    fn count_by_status<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let rt = self.rt()?;
        let counts = py
            .detach(|| rt.engine().count_by_status())
            .map_err(to_py_err)?;
        let out = PyDict::new(py);
        for (status, n) in counts {
            out.set_item(status.to_string(), n)?;
        }
        Ok(out.into_any())
    }

    /// Drains the workers, stops the threads and closes the store (everything durable).
    /// Reads keep working; writes raise `ClosedError`. Idempotent.
    fn stop(&self, py: Python<'_>) -> PyResult<()> {
        let rt = self.rt()?;
        py.detach(|| rt.stop()).map_err(to_py_err)
    }

    /// Stops the runtime (see `stop`) and lets go of the store, so another runtime or
    /// process can open it; every later call raises `ClosedError`. What leaving a `with`
    /// block does. Idempotent.
    fn close(&self, py: Python<'_>) -> PyResult<()> {
        let taken = self.inner.write().unwrap_or_else(|p| p.into_inner()).take();
        let Some(rt) = taken else {
            return Ok(());
        };
        // Dropped without the GIL: the workers may need it to finish a Python handler.
        py.detach(move || {
            let stopped = rt.stop();
            drop(rt);
            stopped
        })
        .map_err(to_py_err)
    }

    fn __enter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    fn __exit__(
        &self,
        py: Python<'_>,
        _exc_type: Option<&Bound<'_, PyAny>>,
        _exc: Option<&Bound<'_, PyAny>>,
        _tb: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<bool> {
        self.close(py)?;
        Ok(false)
    }

    fn __repr__(&self) -> String {
        format!("Runtime({})", self.location)
    }
}

fn snapshot_json(s: &ledgerflow::Snapshot) -> Value {
    json!({
        "run_id": s.run_id.to_string(),
        "name": s.name,
        "seq": s.seq,
        "record_hash": s.record_hash.to_string(),
        "description": s.description,
        "tags": s.tags,
        "created_at_ms": s.created_at_ms,
    })
}
