//! Workflow specs: node handlers keyed by node id, and the `StepPlan` each handler returns.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::{Effect, RunId};

/// What a node handler sees: the run's `vars` to read and change, and the step's context.
#[derive(Debug)]
pub struct StepContext<'a> {
    /// The run being stepped.
    pub run_id: RunId,
    /// The node being run.
    pub node_id: &'a str,
    /// The time of this step (the record's `at_ms`), from the engine's clock.
    pub now_ms: i64,
    /// The run's variables. Changes are recorded in the step's ledger record.
    pub vars: &'a mut Map<String, Value>,
}

impl StepContext<'_> {
    /// The variable `key`, if set.
    pub fn var(&self, key: &str) -> Option<&Value> {
        self.vars.get(key)
    }

    /// Sets the variable `key`.
    pub fn set(&mut self, key: impl Into<String>, value: Value) {
        self.vars.insert(key.into(), value);
    }
}

/// Where a run goes after an effect resolves.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Continuation {
    /// Run this node next.
    Next(String),
    /// Complete the run with this output.
    Complete(Value),
}

/// What a node handler decided. Built with [`StepPlan::next`], [`StepPlan::complete`],
/// [`StepPlan::fail`] or [`StepPlan::effect`].
#[derive(Clone, Debug, PartialEq)]
pub enum StepPlan {
    /// Go to another node.
    Next(String),
    /// The run is done, with this output.
    Complete(Value),
    /// The run failed, with this message.
    Fail(String),
    /// Perform an effect, then continue.
    Effect {
        /// The effect to perform.
        effect: Effect,
        /// What to do once it resolves.
        then: Continuation,
    },
}

impl StepPlan {
    /// Go to `node` next.
    pub fn next(node: impl Into<String>) -> Self {
        StepPlan::Next(node.into())
    }

    /// Complete the run with `output`.
    pub fn complete(output: Value) -> Self {
        StepPlan::Complete(output)
    }

    /// Fail the run with `message`.
    pub fn fail(message: impl Into<String>) -> Self {
        StepPlan::Fail(message.into())
    }

    /// Perform `effect`; chain [`EffectPlan::then_next`] or [`EffectPlan::then_complete`].
    pub fn effect(effect: Effect) -> EffectPlan {
        EffectPlan { effect }
    }
}

/// An effect waiting to be told where the run goes after it (see [`StepPlan::effect`]).
#[derive(Clone, Debug, PartialEq)]
#[must_use = "an EffectPlan is not a StepPlan until then_next or then_complete is called"]
pub struct EffectPlan {
    effect: Effect,
}

impl EffectPlan {
    /// After the effect resolves, run `node`.
    pub fn then_next(self, node: impl Into<String>) -> StepPlan {
        StepPlan::Effect {
            effect: self.effect,
            then: Continuation::Next(node.into()),
        }
    }

    /// After the effect resolves, complete the run with `output`.
    pub fn then_complete(self, output: Value) -> StepPlan {
        StepPlan::Effect {
            effect: self.effect,
            then: Continuation::Complete(output),
        }
    }
}

/// A node handler: a function of the run's state that returns a [`StepPlan`]. It must do
/// no IO of its own (IO is an [`Effect`]) and should be deterministic.
pub trait NodeHandler: Send + Sync {
    /// Runs the node.
    fn run(&self, ctx: &mut StepContext<'_>) -> StepPlan;
}

impl<F> NodeHandler for F
where
    F: Fn(&mut StepContext<'_>) -> StepPlan + Send + Sync,
{
    fn run(&self, ctx: &mut StepContext<'_>) -> StepPlan {
        self(ctx)
    }
}

/// Why a spec could not be built.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SpecError {
    /// The workflow id is empty.
    #[error("workflow id is empty")]
    EmptyId,
    /// No entry node was named.
    #[error("workflow {workflow_id:?} has no entry node")]
    NoEntry {
        /// The workflow.
        workflow_id: String,
    },
    /// The entry node names no node of the spec.
    #[error("workflow {workflow_id:?}: entry node {entry:?} is not a node of the spec")]
    EntryMissing {
        /// The workflow.
        workflow_id: String,
        /// The entry node named.
        entry: String,
    },
    /// Two handlers for one node id.
    #[error("workflow {workflow_id:?}: node {node:?} is defined twice")]
    DuplicateNode {
        /// The workflow.
        workflow_id: String,
        /// The node.
        node: String,
    },
}

/// A workflow: its id, version, entry node and node handlers. Code, not data: register it
/// with the engine under (id, version); a run always resumes on the version it started on.
///
/// ```
/// use ledgerflow_kernel::{StepPlan, WorkflowSpec};
/// use serde_json::json;
///
/// let spec = WorkflowSpec::builder("greet", 1)
///     .node("hello", |ctx: &mut ledgerflow_kernel::StepContext<'_>| {
///         ctx.set("greeting", json!("hi"));
///         StepPlan::complete(json!("done"))
///     })
///     .entry("hello")
///     .build()
///     .expect("entry node exists");
/// assert_eq!(spec.entry_node(), "hello");
/// ```
#[derive(Clone)]
pub struct WorkflowSpec {
    workflow_id: String,
    version: u32,
    entry_node: String,
    nodes: BTreeMap<String, Arc<dyn NodeHandler>>,
}

impl fmt::Debug for WorkflowSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WorkflowSpec")
            .field("workflow_id", &self.workflow_id)
            .field("version", &self.version)
            .field("entry_node", &self.entry_node)
            .field("nodes", &self.nodes.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl WorkflowSpec {
    /// Starts building a spec.
    pub fn builder(workflow_id: impl Into<String>, version: u32) -> WorkflowSpecBuilder {
        WorkflowSpecBuilder {
            workflow_id: workflow_id.into(),
            version,
            entry_node: None,
            nodes: BTreeMap::new(),
            duplicate: None,
        }
    }

    /// The workflow id.
    pub fn workflow_id(&self) -> &str {
        &self.workflow_id
    }

    /// The version.
    pub fn version(&self) -> u32 {
        self.version
    }

    /// The node a new run starts at.
    pub fn entry_node(&self) -> &str {
        &self.entry_node
    }

    /// The handler of `node`, if the spec has that node.
    pub fn node(&self, node: &str) -> Option<&Arc<dyn NodeHandler>> {
        self.nodes.get(node)
    }

    /// The node ids, in order.
    pub fn node_ids(&self) -> impl Iterator<Item = &str> {
        self.nodes.keys().map(String::as_str)
    }
}

/// Builds a [`WorkflowSpec`]; see [`WorkflowSpec::builder`].
pub struct WorkflowSpecBuilder {
    workflow_id: String,
    version: u32,
    entry_node: Option<String>,
    nodes: BTreeMap<String, Arc<dyn NodeHandler>>,
    duplicate: Option<String>,
}

impl WorkflowSpecBuilder {
    /// Adds a node.
    pub fn node(mut self, node: impl Into<String>, handler: impl NodeHandler + 'static) -> Self {
        let node = node.into();
        if self.nodes.insert(node.clone(), Arc::new(handler)).is_some() {
            self.duplicate.get_or_insert(node);
        }
        self
    }

    /// Names the entry node.
    pub fn entry(mut self, node: impl Into<String>) -> Self {
        self.entry_node = Some(node.into());
        self
    }

    /// Checks the spec: id set, no node defined twice, entry node present.
    pub fn build(self) -> Result<WorkflowSpec, SpecError> {
        let workflow_id = self.workflow_id;
        if workflow_id.is_empty() {
            return Err(SpecError::EmptyId);
        }
        if let Some(node) = self.duplicate {
            return Err(SpecError::DuplicateNode { workflow_id, node });
        }
        let entry = self.entry_node.ok_or_else(|| SpecError::NoEntry {
            workflow_id: workflow_id.clone(),
        })?;
        if !self.nodes.contains_key(&entry) {
            return Err(SpecError::EntryMissing { workflow_id, entry });
        }
        Ok(WorkflowSpec {
            workflow_id,
            version: self.version,
            entry_node: entry,
            nodes: self.nodes,
        })
    }
}
