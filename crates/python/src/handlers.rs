//! Node handlers and effect handlers written in Python. Each call attaches to the
//! interpreter (the caller released it), converts the run's values to Python and the
//! handler's answer back, and turns an exception into a recorded failure that keeps the
//! traceback text, never a crash of the worker.

use ledgerflow::{
    Continuation, Effect, EffectCall, EffectHandler, EffectOutcome, NodeHandler, StepContext,
    StepPlan,
};
use pyo3::prelude::*;
use pyo3::types::PyDict;
use serde_json::{Map, Value};

use crate::convert::{to_json, to_py};

/// What a Python node handler is given: the run id, the node, the step's time and the
/// run's `vars`, a dict to read and change.
#[pyclass(module = "ledgerflow")]
pub struct Context {
    /// The run's id.
    #[pyo3(get)]
    run_id: String,
    /// The node being run.
    #[pyo3(get)]
    node: String,
    /// The step's time, in ms since the Unix epoch (the engine's clock).
    #[pyo3(get)]
    now_ms: i64,
    /// The run's variables; changes are recorded in the step's ledger record.
    #[pyo3(get)]
    vars: Py<PyDict>,
}

#[pymethods]
impl Context {
    fn __repr__(&self) -> String {
        format!("Context(run_id={:?}, node={:?})", self.run_id, self.node)
    }
}

/// An exception as the text a failure record keeps: its type, message and traceback.
fn exception_text(py: Python<'_>, err: &PyErr) -> String {
    let formatted = py
        .import("traceback")
        .and_then(|tb| {
            let args = (err.get_type(py), err.value(py), err.traceback(py));
            tb.call_method1("format_exception", args)
        })
        .and_then(|lines| lines.extract::<Vec<String>>());
    match formatted {
        Ok(lines) => lines.concat().trim_end().to_owned(),
        Err(_) => err.to_string(),
    }
}

/// A node whose handler is a Python callable `handler(ctx) -> plan`.
pub struct PyNode {
    handler: Py<PyAny>,
}

impl PyNode {
    pub fn new(handler: Py<PyAny>) -> Self {
        PyNode { handler }
    }
}

impl NodeHandler for PyNode {
    fn run(&self, ctx: &mut StepContext<'_>) -> StepPlan {
        let node = ctx.node_id.to_owned();
        Python::attach(|py| match self.call(py, ctx) {
            Ok(plan) => plan,
            Err(e) => StepPlan::fail(format!(
                "node {node:?} raised an exception:\n{}",
                exception_text(py, &e)
            )),
        })
    }
}

impl PyNode {
    fn call(&self, py: Python<'_>, ctx: &mut StepContext<'_>) -> PyResult<StepPlan> {
        let vars = to_py(py, &Value::Object(ctx.vars.clone()))?.cast_into::<PyDict>()?;
        let context = Py::new(
            py,
            Context {
                run_id: ctx.run_id.to_string(),
                node: ctx.node_id.to_owned(),
                now_ms: ctx.now_ms,
                vars: vars.clone().unbind(),
            },
        )?;
        let returned = self.handler.call1(py, (context,))?;
        if let Value::Object(changed) = to_json(vars.as_any(), "ctx.vars")? {
            *ctx.vars = changed;
        }
        let plan = to_json(returned.bind(py), "the returned plan")?;
        parse_plan(plan).map_err(pyo3::exceptions::PyValueError::new_err)
    }
}

/// A plan as the Python helpers build it: `{"next": node}`, `{"complete": output}`,
/// `{"fail": message}`, or `{"effect": {...}, "then": {"next": node} | {"complete": v}}`.
pub fn parse_plan(plan: Value) -> Result<StepPlan, String> {
    let Value::Object(mut fields) = plan else {
        return Err(format!(
            "a node must return a plan (ledgerflow.next, complete, fail or effect), not {plan}"
        ));
    };
    let one =
        |fields: &Map<String, Value>, key: &str| fields.len() == 1 && fields.contains_key(key);
    if one(&fields, "next") {
        return match fields.remove("next") {
            Some(Value::String(node)) => Ok(StepPlan::next(node)),
            other => Err(format!("next needs a node name, not {other:?}")),
        };
    }
    if one(&fields, "complete") {
        return Ok(StepPlan::complete(
            fields.remove("complete").unwrap_or_default(),
        ));
    }
    if one(&fields, "fail") {
        return match fields.remove("fail") {
            Some(Value::String(message)) => Ok(StepPlan::fail(message)),
            other => Err(format!("fail needs a message, not {other:?}")),
        };
    }
    if fields.len() == 2 && fields.contains_key("effect") && fields.contains_key("then") {
        let effect: Effect = serde_json::from_value(fields.remove("effect").unwrap_or_default())
            .map_err(|e| format!("not an effect: {e}"))?;
        let then: Continuation = serde_json::from_value(fields.remove("then").unwrap_or_default())
            .map_err(|e| {
                format!("then must be {{\"next\": node}} or {{\"complete\": value}}: {e}")
            })?;
        return Ok(StepPlan::Effect { effect, then });
    }
    Err(format!(
        "a node must return a plan (ledgerflow.next, complete, fail or effect), not {}",
        Value::Object(fields)
    ))
}

/// A custom effect whose handler is a Python callable `handler(call) -> result`.
pub struct PyEffect {
    handler: Py<PyAny>,
}

impl PyEffect {
    pub fn new(handler: Py<PyAny>) -> Self {
        PyEffect { handler }
    }
}

/// The key that marks an outcome the Python helpers built (`ledgerflow.waiting`,
/// `ledgerflow.failed`); any other value a handler returns is its result.
const OUTCOME_MARKER: &str = "$ledgerflow_outcome";

impl EffectHandler for PyEffect {
    fn handle(&self, call: &EffectCall<'_>) -> EffectOutcome {
        Python::attach(|py| match self.call(py, call) {
            Ok(outcome) => outcome,
            Err(e) => EffectOutcome::Failed {
                error: format!(
                    "effect handler for {:?} raised an exception:\n{}",
                    call.kind,
                    exception_text(py, &e)
                ),
                retryable: true,
            },
        })
    }
}

impl PyEffect {
    fn call(&self, py: Python<'_>, call: &EffectCall<'_>) -> PyResult<EffectOutcome> {
        let described = serde_json::json!({
            "run_id": call.run_id.to_string(),
            "kind": call.kind,
            "payload": call.payload,
            "idempotency_key": call.idempotency_key,
            "attempt": call.attempt,
        });
        let returned = self.handler.call1(py, (to_py(py, &described)?,))?;
        let value = to_json(returned.bind(py), "the effect handler's result")?;
        Ok(parse_outcome(value))
    }
}

fn parse_outcome(value: Value) -> EffectOutcome {
    let marked = value
        .as_object()
        .and_then(|fields| fields.get(OUTCOME_MARKER))
        .and_then(Value::as_str)
        .map(str::to_owned);
    match (marked.as_deref(), value) {
        (Some("waiting"), Value::Object(fields)) => EffectOutcome::Waiting {
            wait_key: fields
                .get("wait_key")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned(),
        },
        (Some("failed"), Value::Object(fields)) => EffectOutcome::Failed {
            error: fields
                .get("error")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned(),
            retryable: fields
                .get("retryable")
                .and_then(Value::as_bool)
                .unwrap_or(true),
        },
        (_, value) => EffectOutcome::Completed(value),
    }
}
