//! The engine: starts, ticks, resumes, pauses and cancels runs over a `Store` and a
//! `Clock`, committing every step atomically with its ledger records and index changes.
//! This file holds the `Engine` itself (its parts, registration, hand-offs, specs); each
//! concern has a file of its own:
//!
//! - `tick.rs`: starting runs, `tick` / `advance`, the step loop and its budget, running
//!   a node's handler into a step;
//! - `commit.rs`: steps, the steps a tick carries to its next commit, the commit (inbox
//!   and wait-key races) and the one rule for a failure after a call's own commit;
//! - `effects.rs`: built-in and custom effects, handlers, retries, idempotency keys;
//! - `children.rs`: subworkflows;
//! - `delivery.rs`: resumes, `respond`, timers, `deliver` and inbox drains — where it is
//!   decided whether an event was consumed;
//! - `control.rs`: pause, unpause, cancel, cascades;
//! - `history.rs`: `state_at`, fork, lineage, `verify_run`;
//! - `snapshots.rs`: snapshots (bookmarks) made, listed and replayed;
//! - `read.rs`: loads, records, ledgers, run queries, the event feed;
//! - `values.rs`: limits on values entering a run, artifacts offloaded and resolved;
//! - `config.rs`, `error.rs`: `EngineConfig`, `engine::Error`.
//!
//! The files share the imports below and each other's `pub(super)` items through
//! `use super::*`.

use std::collections::HashMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, RwLock};

use ledgerflow_ledger::Record;
use serde_json::{Map, Value};

use crate::effect::{kind, EffectCall, EffectHandler, EffectOutcome};
use crate::event::{append, replay_stored, vars_change, Event};
use crate::feed::{FeedCursor, FeedPage};
use crate::query::{CursorProblem, Plan, Position, RunPage, RunQuery};
use crate::registry::{WorkflowKey, WorkflowRegistry};
use crate::state::{FailureCode, ParentLink, RunFailure, SubworkflowMode, WaitReason, WaitState};
use crate::store::{self, Commit, Delivery, IndexChange, Store};
use crate::wait_keys;
use crate::{
    ArtifactRef, Clock, Continuation, Effect, RunId, RunState, RunStatus, StepContext, StepPlan,
    WorkflowSpec,
};

mod children;
mod commit;
mod config;
mod control;
mod delivery;
mod effects;
mod error;
mod history;
mod read;
mod snapshots;
mod tick;
mod values;

use self::commit::*;
use self::effects::*;
use self::values::*;

pub use self::config::EngineConfig;
pub use self::control::{CancelOutcome, CascadeOutcome};
pub use self::delivery::Delivered;
pub use self::error::Error;
pub use self::read::LedgerReader;
pub use self::tick::Advanced;

/// A callback told of every acknowledged commit.
type Observer = Arc<dyn Fn(&RunState) + Send + Sync>;

/// Who continues a run that a call made runnable besides the one it was asked about (see
/// [`Engine::hand_off_follow_ups`]).
type Handoff = Arc<dyn Fn(RunId) + Send + Sync>;

/// The workflow engine. Cheap to share behind an `Arc`; every method takes `&self`.
///
/// ```
/// use std::sync::Arc;
/// use ledgerflow_kernel::{Effect, Engine, ManualClock, MemoryStore, RunStatus, StepPlan, WorkflowSpec};
/// use serde_json::json;
///
/// let engine = Engine::new(Arc::new(MemoryStore::new()), Arc::new(ManualClock::new(0)));
/// engine.register(
///     WorkflowSpec::builder("approve", 1)
///         .node("ask", |_: &mut ledgerflow_kernel::StepContext<'_>| {
///             StepPlan::effect(Effect::wait_event("approval-42").result_key("answer"))
///                 .then_next("done")
///         })
///         .node("done", |ctx: &mut ledgerflow_kernel::StepContext<'_>| {
///             StepPlan::complete(ctx.var("answer").cloned().unwrap_or_default())
///         })
///         .entry("ask")
///         .build()?,
/// );
/// let run = engine.start(("approve", 1), json!({}))?;
/// assert_eq!(engine.tick(run)?.status, RunStatus::Waiting);
/// let done = engine.resume(run, "approval-42", json!("yes"))?;
/// assert_eq!(done.output, Some(json!("yes")));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Engine {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    config: EngineConfig,
    workflows: Arc<WorkflowRegistry>,
    observers: RwLock<Vec<Observer>>,
    effects: RwLock<HashMap<String, Arc<dyn EffectHandler>>>,
    handoff: RwLock<Option<Handoff>>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl Engine {
    /// An engine with default settings.
    pub fn new(store: Arc<dyn Store>, clock: Arc<dyn Clock>) -> Self {
        Engine::with_config(store, clock, EngineConfig::default())
    }

    /// An engine with the given settings.
    pub fn with_config(store: Arc<dyn Store>, clock: Arc<dyn Clock>, config: EngineConfig) -> Self {
        Engine {
            store,
            clock,
            config,
            workflows: Arc::new(WorkflowRegistry::new()),
            observers: RwLock::default(),
            effects: RwLock::default(),
            handoff: RwLock::default(),
        }
    }

    /// The store the engine writes to.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// The engine's clock.
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    /// Registers a spec under its (id, version), replacing any spec registered there.
    pub fn register(&self, spec: WorkflowSpec) -> Arc<WorkflowSpec> {
        self.workflows.register(spec)
    }

    /// The engine's workflow registry.
    pub fn registry(&self) -> &Arc<WorkflowRegistry> {
        &self.workflows
    }

    /// Calls `observer` with the new state after every commit this engine makes, once the
    /// store has acknowledged it (durable, for a durable store in its default mode). The
    /// observer runs on the committing thread and must be quick.
    pub fn observe(&self, observer: impl Fn(&RunState) + Send + Sync + 'static) {
        self.observers
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .push(Arc::new(observer));
    }

    /// Hands the runs a call makes runnable, other than by running its own steps, to
    /// `handoff` instead of continuing them on the calling thread: child runs a step
    /// started, the run waiting on a key an event was queued for (an emitted event, a
    /// child's result), and the run itself when [`EngineConfig::steps_per_tick_max`]
    /// ran out. Without it (the default) the engine ticks children and drains inboxes
    /// inline, best effort, and a run over its step budget is returned still running.
    ///
    /// A scheduler sets this to queue each id for a worker: that is how it keeps one owner
    /// per run at a time and every run with work to do scheduled. `handoff` must not
    /// block; it may be called from any thread that commits.
    pub fn hand_off_follow_ups(&self, handoff: impl Fn(RunId) + Send + Sync + 'static) {
        *self.handoff.write().unwrap_or_else(|p| p.into_inner()) = Some(Arc::new(handoff));
    }

    /// Undoes [`Engine::hand_off_follow_ups`]: follow-ups run on the calling thread again
    /// (a scheduler calls this when it stops).
    pub fn stop_handing_off(&self) {
        *self.handoff.write().unwrap_or_else(|p| p.into_inner()) = None;
    }

    fn handoff(&self) -> Option<Handoff> {
        self.handoff
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Continues a run made runnable by a committed step: hands it off, or (without a
    /// hand-off) ticks it here. Best effort: the step that made it runnable is committed,
    /// and a run left running is continued by the next tick or a scheduler's recovery.
    fn follow_up(&self, run_id: RunId) {
        match self.handoff() {
            Some(handoff) => handoff(run_id),
            None => {
                let _ = self.tick(run_id);
            }
        }
    }

    /// The spec registered for (id, version).
    pub fn spec(&self, key: &WorkflowKey) -> Result<Arc<WorkflowSpec>, Error> {
        self.workflows
            .get(key)
            .ok_or_else(|| Error::WorkflowNotRegistered {
                workflow_id: key.workflow_id.clone(),
                version: key.version,
            })
    }

    /// Before a change that is followed by running steps: the run's workflow must be
    /// registered, or nothing is changed. An engine with a step budget of 0 runs no steps
    /// (it only records resumptions and operator actions, as the command-line tool does),
    /// so it needs no specs.
    fn require_spec(&self, state: &RunState) -> Result<(), Error> {
        if self.config.steps_per_tick_max > 0 {
            self.spec_of(state)?;
        }
        Ok(())
    }

    fn spec_of(&self, state: &RunState) -> Result<Arc<WorkflowSpec>, Error> {
        self.spec(&WorkflowKey {
            workflow_id: state.workflow_id.clone(),
            version: state.workflow_version,
        })
    }
}
