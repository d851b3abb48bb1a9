//! The engine: starts, ticks, resumes, pauses and cancels runs over a `Store` and a
//! `Clock`, committing every step atomically with its ledger records and index changes.

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

/// Engine errors: what the caller asked for could not be done, and nothing was changed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No run with this id in the store.
    #[error("run {run_id} not found")]
    RunNotFound {
        /// The id asked for.
        run_id: RunId,
    },
    /// The run's (workflow id, version) has no registered spec.
    #[error("workflow {workflow_id:?} version {version} is not registered")]
    WorkflowNotRegistered {
        /// The workflow.
        workflow_id: String,
        /// The version.
        version: u32,
    },
    /// The input is not a JSON object (or null).
    #[error("invalid input: {reason}")]
    InvalidInput {
        /// What was wrong.
        reason: String,
    },
    /// The run is not waiting.
    #[error("run {run_id} is not waiting (status {status})")]
    NotWaiting {
        /// The run.
        run_id: RunId,
        /// Its status.
        status: RunStatus,
    },
    /// The run waits on another key (or on a timer only).
    #[error("run {run_id} does not wait on {got:?} (it waits on {expected:?})")]
    WaitKeyMismatch {
        /// The run.
        run_id: RunId,
        /// The key it waits on, if any.
        expected: Option<String>,
        /// The key given.
        got: String,
    },
    /// A JSON value is larger than [`EngineConfig::value_bytes_max`].
    #[error("{what} is {bytes} bytes, over the limit of {max}")]
    ValueTooLarge {
        /// What was too large.
        what: String,
        /// Its serialized size.
        bytes: usize,
        /// The limit.
        max: usize,
    },
    /// A JSON value nests deeper than [`EngineConfig::value_depth_max`].
    #[error("{what} nests at least {depth} levels deep, over the limit of {max}")]
    ValueTooDeep {
        /// What was too deep.
        what: String,
        /// How deep it was found to nest before looking further stopped (arrays and
        /// objects inside each other): at least this deep.
        depth: usize,
        /// The limit.
        max: usize,
    },
    /// A configured bound was exceeded (wait_key length, subworkflow depth, …).
    #[error("{what} is over the limit of {max}")]
    LimitExceeded {
        /// What was too large or too deep.
        what: String,
        /// The limit.
        max: u64,
    },
    /// `respond` on a run that is not waiting for an answer: it waits for something else
    /// (a timer, a child workflow, an external job, a retry) or does not wait.
    #[error("run {run_id} is not waiting for an answer: it waits for {waits_for}; respond answers ask_user and wait_event waits only")]
    NotAnswerable {
        /// The run.
        run_id: RunId,
        /// Its status.
        status: RunStatus,
        /// What it waits for, in words.
        waits_for: String,
    },
    /// The run has ended; it can no longer be changed.
    #[error("run {run_id} has ended ({status})")]
    RunTerminal {
        /// The run.
        run_id: RunId,
        /// Its final status.
        status: RunStatus,
    },
    /// A handler was registered for a kind the kernel handles itself.
    #[error("effect kind {kind:?} is built in and cannot be given a handler")]
    BuiltinEffectKind {
        /// The kind.
        kind: String,
    },
    /// Delivery kept racing with other resumers of the same key.
    #[error("delivery to {wait_key:?} kept conflicting with concurrent resumers")]
    DeliveryContended {
        /// The key.
        wait_key: String,
    },
    /// Replaying the run's ledger failed.
    #[error(transparent)]
    Replay(#[from] crate::ReplayError),
    /// A feed cursor that is not one.
    #[error(transparent)]
    InvalidCursor(#[from] crate::ParseCursorError),
    /// A feed or query cursor minted by another store.
    #[error("cursor {cursor} belongs to another store")]
    CursorFromAnotherStore {
        /// The cursor given.
        cursor: String,
    },
    /// A fork's first record cites a parent record that does not match.
    #[error("run {run_id}: lineage does not verify: {reason}")]
    LineageMismatch {
        /// The fork.
        run_id: RunId,
        /// What did not match.
        reason: String,
    },
    /// Replaying the ledger gives a state different from the stored one.
    #[error("run {run_id}: replayed ledger differs from the stored state")]
    ReplayMismatch {
        /// The run.
        run_id: RunId,
    },
    /// The store failed (including version conflicts).
    #[error(transparent)]
    Store(#[from] store::Error),
    /// The call's own change (a resume, a timer, an unpause) was committed at `seq`, but
    /// running the steps after it failed. The change stands: do not repeat it. The run is
    /// left as its last committed step left it, for the next tick (or a scheduler's
    /// recovery) to continue.
    #[error("run {run_id}: the change was committed at seq {seq}, but the steps after it failed: {source}")]
    AfterCommit {
        /// The run.
        run_id: RunId,
        /// The seq of the run's last committed record when the failure happened.
        seq: u64,
        /// What failed.
        source: Box<Error>,
    },
    /// An engine bug: an event it produced does not apply. Nothing was written.
    #[error("internal error: {0}")]
    Internal(String),
}

impl Error {
    /// What kind of failure this is: one flat answer whatever the nesting.
    pub fn kind(&self) -> crate::ErrorKind {
        use crate::ErrorKind as K;
        match self {
            Error::RunNotFound { .. } => K::NotFound,
            Error::WorkflowNotRegistered { .. } => K::NotRegistered,
            Error::InvalidInput { .. }
            | Error::BuiltinEffectKind { .. }
            | Error::InvalidCursor(_)
            | Error::CursorFromAnotherStore { .. } => K::InvalidInput,
            Error::NotWaiting { .. }
            | Error::WaitKeyMismatch { .. }
            | Error::RunTerminal { .. }
            | Error::NotAnswerable { .. } => K::InvalidState,
            Error::ValueTooLarge { .. }
            | Error::ValueTooDeep { .. }
            | Error::LimitExceeded { .. } => K::LimitExceeded,
            Error::DeliveryContended { .. } => K::Conflict,
            Error::Replay(_) | Error::LineageMismatch { .. } | Error::ReplayMismatch { .. } => {
                K::Corrupt
            }
            Error::Store(e) => e.kind(),
            Error::AfterCommit { .. } => K::AfterCommit,
            Error::Internal(_) => K::Internal,
        }
    }

    /// Whether this is a lost race: another writer changed the run first and nothing of
    /// this call was written, so it can be tried again.
    pub fn is_conflict(&self) -> bool {
        matches!(self, Error::Store(e) if e.is_conflict())
    }
}

/// Engine settings.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct EngineConfig {
    /// Most steps one `tick` runs before returning a still-running run, so a workflow
    /// that loops forever cannot hold a worker forever. Default 1,000. With 0 the engine
    /// runs no steps at all and needs no registered specs: it records resumptions and
    /// operator actions for a process that has the workflow code to carry on later.
    pub steps_per_tick_max: u32,
    /// JSON values (a var, a payload, an effect's result or payload, an output) whose
    /// serialized size is over this are stored as artifacts, and state and records hold
    /// an [`ArtifactRef`] instead. Node and effect handlers still see the whole value.
    /// Default 8 KiB: keeps run states and records small, so commits stay cheap.
    pub artifact_threshold_bytes: usize,
    /// Largest JSON value accepted at all. Default 16 MiB.
    pub value_bytes_max: usize,
    /// Deepest nesting of arrays and objects in any JSON value that enters a run (input,
    /// payloads, vars a handler sets, effect results, outputs): `1` is 0 deep, `[1]` 1,
    /// `{"a": [1]}` 2. Default 64 — far more than real data needs, and far enough under
    /// the recursion limits of JSON readers (128 in serde_json) that every record, state
    /// and export stays readable. A value over it is refused at the door (an error for a
    /// caller, a `limit_exceeded` failure for a handler's value), so one run's bad value
    /// can never make other runs unreadable.
    pub value_depth_max: usize,
    /// Largest `vars` of a run, as stored (large values are artifact references), in JSON
    /// bytes. Default 128 KiB, so a run state fits the sled store's value limit.
    pub vars_bytes_max: usize,
    /// Most records one commit of a tick carries. Steps that stay inside the run (a node
    /// that moves on, an effect's completion) are committed with the next step that must
    /// be durable, or at the end of the tick; a tick commits what it carries once it
    /// reaches this many records. Default 64: a commit then holds at most about 64 ×
    /// `vars_bytes_max` (8 MiB), far under a store's commit size limits, while a long
    /// tick still pays one commit per 64 steps. With 1 every step is its own commit.
    pub records_per_commit_max: u32,
    /// Longest wait_key, in bytes. Default 512.
    pub wait_key_bytes_max: usize,
    /// Deepest nesting of subworkflows (a top-level run is depth 0). Default 8.
    pub subworkflow_depth_max: u32,
    /// Retry policy of effects that set none. Default `None`: a failure fails the run.
    pub default_retry: Option<crate::RetryPolicy>,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            steps_per_tick_max: 1_000,
            artifact_threshold_bytes: 8 << 10,
            value_bytes_max: 16 << 20,
            value_depth_max: 64,
            vars_bytes_max: 128 << 10,
            records_per_commit_max: 64,
            wait_key_bytes_max: 512,
            subworkflow_depth_max: 8,
            default_retry: None,
        }
    }
}

/// What `cancel` did.
#[derive(Clone, Debug, PartialEq)]
pub struct CancelOutcome {
    /// The run's state afterwards.
    pub state: RunState,
    /// The record that ended the run: the new `cancelled` record, or the earlier record
    /// that had already ended it.
    pub record: Record,
    /// False when the run had already ended and nothing was written.
    pub changed: bool,
}

/// What `deliver` did with an event.
#[derive(Clone, Debug, PartialEq)]
pub enum Delivered {
    /// A run waited on the key and was resumed; its state after resuming.
    Resumed(Box<RunState>),
    /// No run waited; the event is queued in the key's inbox at this seq.
    Queued(u64),
}

/// What [`Engine::advance`] did.
#[derive(Clone, Debug, PartialEq)]
pub struct Advanced {
    /// The run's state afterwards.
    pub state: RunState,
    /// The due time of the timer this call fired, if it fired one.
    pub timer_fired_due_at_ms: Option<i64>,
    /// When it fired (the clock's time as the call fired it): the timer's lag is this
    /// minus the due time.
    pub timer_fired_at_ms: Option<i64>,
}

/// The records of one run, read in bounded pages: see [`Engine::ledger`].
pub struct LedgerReader<'a> {
    engine: &'a Engine,
    run_id: RunId,
    next_seq: u64,
    page: std::vec::IntoIter<Record>,
    done: bool,
}

impl std::fmt::Debug for LedgerReader<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LedgerReader")
            .field("run_id", &self.run_id)
            .field("next_seq", &self.next_seq)
            .finish_non_exhaustive()
    }
}

impl Iterator for LedgerReader<'_> {
    type Item = Result<Record, Error>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(record) = self.page.next() {
                self.next_seq = record.seq() + 1;
                return Some(Ok(record));
            }
            if self.done {
                return None;
            }
            let page_len = self.engine.store.limits().read_items_max.max(1);
            match self.engine.records(self.run_id, self.next_seq, page_len) {
                Ok(records) => {
                    self.done = records.len() < page_len;
                    self.page = records.into_iter();
                }
                Err(e) => {
                    self.done = true;
                    return Some(Err(e));
                }
            }
        }
    }
}

/// Events of one step, plus inbox changes and a key to drain after committing.
struct Step {
    events: Vec<Event>,
    inbox: Vec<IndexChange>,
    emitted_to: Option<String>,
    /// Child runs started by this step, driven once the step is committed.
    children: Vec<RunId>,
}

impl Step {
    fn of(event: Event) -> Self {
        Step {
            events: vec![event],
            inbox: Vec::new(),
            emitted_to: None,
            children: Vec::new(),
        }
    }

    /// A step of no events: what commits the steps a run carries and nothing more.
    fn none() -> Self {
        Step {
            events: Vec::new(),
            inbox: Vec::new(),
            emitted_to: None,
            children: Vec::new(),
        }
    }

    /// Whether nothing outside the run depends on this step being durable before the
    /// next one is planned: a node that moved on, or an effect's completion (the effect
    /// ran; a crash before the commit runs it again with the same idempotency key, as a
    /// crash just after it ran always could). Waits, ends, effect requests, children and
    /// emitted events are committed before anything follows them.
    fn stays_inside(&self) -> bool {
        self.inbox.is_empty()
            && self.emitted_to.is_none()
            && self.children.is_empty()
            && self
                .events
                .iter()
                .all(|e| matches!(e, Event::Advanced { .. } | Event::EffectCompleted { .. }))
    }
}

/// Steps of a run folded onto its committed state but not committed yet: sealed records
/// (each hashed once, here) that the next commit writes before its own.
struct Carried {
    /// The state after the carried records.
    state: RunState,
    records: Vec<Record>,
    /// Index changes the carried steps made (an inbox entry a resume consumed).
    inbox: Vec<IndexChange>,
}

/// A run being driven: the state the store holds and the steps carried past it.
struct Driven {
    run_id: RunId,
    /// `None` for a run whose start is carried.
    base: Option<RunState>,
    carried: Option<Carried>,
    /// Whether this call has committed a change to the run already.
    committed: bool,
}

impl Driven {
    /// The run's state with the carried steps applied: what the next step is planned on.
    fn state(&self) -> Option<&RunState> {
        self.carried
            .as_ref()
            .map(|c| &c.state)
            .or(self.base.as_ref())
    }

    /// The seq of the state the store holds (0 before the run's first commit).
    fn base_seq(&self) -> u64 {
        self.base.as_ref().map_or(0, |s| s.head.seq)
    }

    /// How many records the run carries.
    fn carried_records(&self) -> usize {
        self.carried.as_ref().map_or(0, |c| c.records.len())
    }

    /// Folds `step`, taken at `at_ms`, onto the run's state and carries it to the next
    /// commit.
    fn carry(&mut self, step: Step, at_ms: i64) -> Result<(), String> {
        let (state, records) = append(self.state(), self.run_id, &step.events, at_ms)?;
        let carried = self.carried.get_or_insert_with(|| Carried {
            state: state.clone(),
            records: Vec::new(),
            inbox: Vec::new(),
        });
        carried.state = state;
        carried.records.extend(records);
        carried.inbox.extend(step.inbox);
        Ok(())
    }
}

/// A number in `[0, 1)` derived from an effect's key and attempt: the jitter of its retry,
/// reproducible rather than random so that tests and reruns see the same waits.
fn jitter_unit(idempotency_key: &str, attempt: u32) -> f64 {
    let mut input = idempotency_key.as_bytes().to_vec();
    input.extend_from_slice(&attempt.to_be_bytes());
    let digest = ledgerflow_ledger::Hash::of_domain(b"ledgerflow.jitter.v1\0", &input);
    let mut word = [0u8; 8];
    word.copy_from_slice(&digest.as_bytes()[..8]);
    (u64::from_be_bytes(word) >> 11) as f64 / (1u64 << 53) as f64
}

/// A node's request that fails the run (with a code) rather than the caller.
type PlanFailure = (FailureCode, String);

/// The id of the child a parent starts at `seq`: derived, not random, so that a step
/// retried after a crash finds the child it already created instead of making another.
fn child_run_id(parent: RunId, seq: u64) -> RunId {
    let mut input = Vec::with_capacity(24);
    input.extend_from_slice(parent.as_bytes());
    input.extend_from_slice(&seq.to_be_bytes());
    let digest = ledgerflow_ledger::Hash::of_domain(b"ledgerflow.child.v1\0", &input);
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest.as_bytes()[..16]);
    bytes[6] = (bytes[6] & 0x0f) | 0x80; // UUID version 8 (custom)
    bytes[8] = (bytes[8] & 0x3f) | 0x80; // RFC 4122 variant
    RunId::from_bytes(bytes)
}

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

/// How many times a commit is retried when the inbox of the key it waits on fills
/// between reading it and committing. Each retry consumes an event, so 3 is plenty.
const INBOX_RACE_RETRIES: usize = 3;
/// How many times `deliver` retries after losing a race with another resumer.
const DELIVER_RETRIES: usize = 8;

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

    /// Registers the handler of a custom effect kind, replacing any earlier one.
    pub fn register_effect(
        &self,
        kind: impl Into<String>,
        handler: impl EffectHandler + 'static,
    ) -> Result<(), Error> {
        let kind = kind.into();
        if Effect::custom(kind.clone(), Value::Null).is_builtin() {
            return Err(Error::BuiltinEffectKind { kind });
        }
        self.effects
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(kind, Arc::new(handler));
        Ok(())
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

    /// The run's current state.
    pub fn load(&self, run_id: RunId) -> Result<RunState, Error> {
        self.store
            .load(run_id)?
            .ok_or(Error::RunNotFound { run_id })
    }

    /// Up to `limit` of the run's records from `from_seq` on.
    pub fn records(
        &self,
        run_id: RunId,
        from_seq: u64,
        limit: usize,
    ) -> Result<Vec<Record>, Error> {
        let records = self.store.read_records(run_id, from_seq, limit)?;
        if records.is_empty() && self.store.load(run_id)?.is_none() {
            return Err(Error::RunNotFound { run_id });
        }
        Ok(records)
    }

    /// Every record of the run from `from_seq` on, read in pages of the store's
    /// `read_items_max`: for exporting a whole ledger without paging by hand. Each item is
    /// one record or the error that stopped the reading.
    ///
    /// ```
    /// # use std::sync::Arc;
    /// # use ledgerflow_kernel::{Engine, ManualClock, MemoryStore, StepContext, StepPlan, WorkflowSpec};
    /// # use serde_json::json;
    /// # let engine = Engine::new(Arc::new(MemoryStore::new()), Arc::new(ManualClock::new(0)));
    /// # engine.register(WorkflowSpec::builder("w", 1)
    /// #     .node("a", |_: &mut StepContext<'_>| StepPlan::complete(json!(1))).entry("a").build()?);
    /// let run = engine.start(("w", 1), json!({}))?;
    /// engine.tick(run)?;
    /// let ledger = engine.ledger(run, 1).collect::<Result<Vec<_>, _>>()?;
    /// assert_eq!(ledger.len(), 2);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn ledger(&self, run_id: RunId, from_seq: u64) -> LedgerReader<'_> {
        LedgerReader {
            engine: self,
            run_id,
            next_seq: from_seq.max(1),
            page: Vec::new().into_iter(),
            done: false,
        }
    }

    /// Creates a run of a registered workflow with `input` (a JSON object, or null for
    /// none) as its vars. Records `started`; call [`Engine::tick`] to run it.
    pub fn start(&self, workflow: impl Into<WorkflowKey>, input: Value) -> Result<RunId, Error> {
        self.start_inner(workflow.into(), input, None)
    }

    /// Starts a run and ticks it (see [`Engine::tick`]): `start`, then `tick`, with the
    /// `started` record committed together with the steps after it (one commit where the
    /// two calls make two). Returns the run's state; a run that could not be started
    /// leaves nothing behind.
    ///
    /// ```
    /// # use std::sync::Arc;
    /// # use ledgerflow_kernel::{Engine, ManualClock, MemoryStore, RunStatus, StepContext, StepPlan, WorkflowSpec};
    /// # use serde_json::json;
    /// let engine = Engine::new(Arc::new(MemoryStore::new()), Arc::new(ManualClock::new(0)));
    /// engine.register(
    ///     WorkflowSpec::builder("hello", 1)
    ///         .node("greet", |_: &mut StepContext<'_>| StepPlan::complete(json!("hi")))
    ///         .entry("greet")
    ///         .build()
    ///         .expect("the entry node exists"),
    /// );
    /// let state = engine.run(("hello", 1), json!({})).expect("registered");
    /// assert_eq!(state.status, RunStatus::Completed);
    /// assert_eq!(engine.records(state.run_id, 1, 10).expect("records").len(), 2);
    /// ```
    pub fn run(&self, workflow: impl Into<WorkflowKey>, input: Value) -> Result<RunState, Error> {
        self.run_as(RunId::new_v4(), workflow, input)
    }

    /// [`Engine::run`] with the id the caller chose for the new run (a scheduler claims
    /// the id first, so that it is the run's one owner from its first commit). An id the
    /// store already holds is a conflict, and nothing changes.
    pub fn run_as(
        &self,
        run_id: RunId,
        workflow: impl Into<WorkflowKey>,
        input: Value,
    ) -> Result<RunState, Error> {
        let started = self.started_event(run_id, workflow.into(), input, None)?;
        self.drive_from(run_id, None, Some(Step::of(started)))
    }

    /// Starts a child run of `parent` (which must exist and not have ended). The child
    /// records its parent, is listed by [`Store::children`], and is cancelled with it.
    pub fn start_child(
        &self,
        parent: RunId,
        workflow: impl Into<WorkflowKey>,
        input: Value,
    ) -> Result<RunId, Error> {
        let parent_state = self.load(parent)?;
        if parent_state.status.is_terminal() {
            return Err(Error::RunTerminal {
                run_id: parent,
                status: parent_state.status,
            });
        }
        let depth = parent_state.depth() + 1;
        if depth > self.config.subworkflow_depth_max {
            return Err(Error::LimitExceeded {
                what: format!("subworkflow depth {depth}"),
                max: u64::from(self.config.subworkflow_depth_max),
            });
        }
        let link = ParentLink {
            run_id: parent,
            seq: parent_state.head.seq,
            wait_key: None,
            depth,
            after: Some(parent_state.head),
        };
        self.start_inner(workflow.into(), input, Some(link))
    }

    fn start_inner(
        &self,
        workflow: WorkflowKey,
        input: Value,
        parent: Option<ParentLink>,
    ) -> Result<RunId, Error> {
        let run_id = RunId::new_v4();
        self.start_with_id(run_id, workflow, input, parent)?;
        Ok(run_id)
    }

    fn start_with_id(
        &self,
        run_id: RunId,
        workflow: WorkflowKey,
        input: Value,
        parent: Option<ParentLink>,
    ) -> Result<(), Error> {
        let event = self.started_event(run_id, workflow, input, parent)?;
        self.commit(None, run_id, None, Step::of(event))?;
        Ok(())
    }

    /// The `started` event of a new run: its workflow checked, its input checked and its
    /// large values stored as artifacts.
    fn started_event(
        &self,
        run_id: RunId,
        workflow: WorkflowKey,
        input: Value,
        parent: Option<ParentLink>,
    ) -> Result<Event, Error> {
        let spec = self.spec(&workflow)?;
        let vars = match input {
            Value::Object(vars) => vars,
            Value::Null => Map::new(),
            other => {
                return Err(Error::InvalidInput {
                    reason: format!("input must be a JSON object, got {}", json_type(&other)),
                })
            }
        };
        let vars = vars
            .into_iter()
            .map(|(key, value)| {
                Ok((
                    key.clone(),
                    self.offload(Some(run_id), value, &format!("input var {key:?}"))?,
                ))
            })
            .collect::<Result<Map<String, Value>, Error>>()?;
        self.check_vars_len(&vars)?;
        let event = Event::Started {
            workflow_id: spec.workflow_id().to_owned(),
            workflow_version: spec.version(),
            node: spec.entry_node().to_owned(),
            vars,
            parent,
        };
        Ok(event)
    }

    /// Runs the run's steps until it waits, ends, is paused, or
    /// [`EngineConfig::steps_per_tick_max`] steps have run (then the run is returned still
    /// running: tick it again, or let a scheduler, which requeues it, do so). A run that
    /// cannot step is returned as it is. A conflict on the first step (another owner
    /// stepped the run first) is an error and nothing was written; after this call's first
    /// commit, a conflict returns the run's latest state instead: another owner is
    /// advancing it.
    pub fn tick(&self, run_id: RunId) -> Result<RunState, Error> {
        let state = self.load(run_id)?;
        self.drive(state, None)
    }

    /// Does whatever is due for the run now: consumes the oldest event queued for the key
    /// it waits on, fires its timer if due, and runs its steps. What a scheduler's worker
    /// calls for a run handed to it; a run with nothing to do is returned as it is.
    pub fn advance(&self, run_id: RunId) -> Result<Advanced, Error> {
        let state = self.load(run_id)?;
        let done = |state, fired: Option<(i64, i64)>| Advanced {
            state,
            timer_fired_due_at_ms: fired.map(|(due, _)| due),
            timer_fired_at_ms: fired.map(|(_, at)| at),
        };
        if state.status != RunStatus::Waiting {
            return Ok(done(self.drive(state, None)?, None));
        }
        let wait = state.waiting.as_ref();
        if let Some(wait_key) = wait.and_then(|w| w.wait_key.clone()) {
            if let Some(entry) = self.store.inbox(&wait_key, 1)?.into_iter().next() {
                return Ok(done(self.consume_inbox(state, &wait_key, entry)?, None));
            }
        }
        let now_ms = self.clock.now_ms();
        match wait.and_then(|w| w.until_ms) {
            Some(due_at_ms) if due_at_ms <= now_ms => Ok(done(
                self.fire_timer_of(state, due_at_ms)?,
                Some((due_at_ms, now_ms)),
            )),
            _ => Ok(done(state, None)),
        }
    }

    /// Runs the run's steps (see [`Engine::tick`]). `first` is a step the caller decided
    /// (a resume, a fired timer, an unpause) and has not committed: it goes into the
    /// commit of the steps that follow it. From the call's first commit on, its work
    /// stands whatever follows.
    ///
    /// Steps that touch nothing outside the run (a node that moves on, an effect's
    /// completion, a resume) are folded and carried, not committed one by one: the next
    /// step that must be durable before anything follows it (a wait, an end, an effect
    /// request, a child, an emitted event) commits them all in one commit, and so does the
    /// end of the tick. A crash before that commit loses only steps no one was told of;
    /// the next tick plans them again from the same state.
    fn drive(&self, state: RunState, first: Option<Step>) -> Result<RunState, Error> {
        self.drive_from(state.run_id, Some(state), first)
    }

    /// [`Engine::drive`] from `base`, the state the store holds (`None` for a run whose
    /// `first` step is its start).
    fn drive_from(
        &self,
        run_id: RunId,
        base: Option<RunState>,
        first: Option<Step>,
    ) -> Result<RunState, Error> {
        let mut run = Driven {
            run_id,
            base,
            carried: None,
            committed: false,
        };
        if let Some(step) = first {
            run.carry(step, self.clock.now_ms())
                .map_err(Error::Internal)?;
        }
        let runnable = run.state().is_some_and(RunState::is_runnable);
        if !runnable || self.config.steps_per_tick_max == 0 {
            return self.flush(run);
        }
        let spec = match run.state().map(|state| self.spec_of(state)) {
            Some(Ok(spec)) => spec,
            Some(Err(e)) => return self.fail_driven(run, e),
            None => return self.flush(run),
        };
        let mut children = Vec::new();
        for _ in 0..self.config.steps_per_tick_max {
            let Some(state) = run.state().filter(|s| s.is_runnable()) else {
                break;
            };
            let step = match &state.pending_effect {
                Some(_) => self.run_pending_effect(state),
                None => self.run_node(&spec, state),
            };
            let step = match step {
                Ok(step) => step,
                Err(e) => return self.fail_driven(run, e),
            };
            if step.stays_inside() {
                if let Err(e) = run.carry(step, self.clock.now_ms()) {
                    return self.fail_driven(run, Error::Internal(e));
                }
                if run.carried_records() >= self.config.records_per_commit_max as usize {
                    run = Driven {
                        run_id,
                        committed: true,
                        base: Some(self.flush(run)?),
                        carried: None,
                    };
                }
                continue;
            }
            let emitted_to = step.emitted_to.clone();
            children.extend(step.children.iter().copied());
            match self.commit(run.base.as_ref(), run_id, run.carried.take(), step) {
                Ok(new) => run.base = Some(new),
                Err(e) => return self.after_commit(run.committed, run_id, run.base_seq(), e),
            };
            run.committed = true;
            if let Some(wait_key) = emitted_to {
                self.wake_waiter(&wait_key);
            }
        }
        let state = self.flush(run)?;
        let over_budget = state.is_runnable();
        let handoff = self.handoff();
        for child in &children {
            self.follow_up(*child);
        }
        match handoff {
            Some(handoff) => {
                if over_budget {
                    handoff(state.run_id);
                }
                Ok(state)
            }
            // Inline children have run; a synchronous child's end resumed the parent
            // through the inbox, so the parent is read again.
            None if !children.is_empty() => self.load(state.run_id),
            None => Ok(state),
        }
    }

    /// Commits the steps `run` carries, if any; the run's state after them.
    fn flush(&self, mut run: Driven) -> Result<RunState, Error> {
        let Some(carried) = run.carried.take() else {
            return run.base.ok_or(Error::Internal(format!(
                "run {} driven with no state and no start",
                run.run_id
            )));
        };
        self.commit(run.base.as_ref(), run.run_id, Some(carried), Step::none())
            .or_else(|e| self.after_commit(run.committed, run.run_id, run.base_seq(), e))
    }

    /// A failure while driving `run`: the steps it carries are committed first (an
    /// effect that ran, a resume), then the failure is answered as [`Engine::after_commit`]
    /// says.
    fn fail_driven(&self, run: Driven, e: Error) -> Result<RunState, Error> {
        let committed = run.committed || run.carried.is_some();
        let state = self.flush(run)?;
        self.after_commit(committed, state.run_id, state.head.seq, e)
    }

    /// What a failure inside [`Engine::drive`] means for its caller. Before the call's
    /// first commit it is the call's error. After it, a conflict means another owner is
    /// advancing the run, so the latest state is the answer; any other failure is
    /// [`Error::AfterCommit`], so the caller knows its change stands and must not repeat it.
    /// `seq` is the run's head as this call last committed it.
    fn after_commit(
        &self,
        committed: bool,
        run_id: RunId,
        seq: u64,
        e: Error,
    ) -> Result<RunState, Error> {
        if !committed {
            return Err(e);
        }
        if e.is_conflict() {
            return self.load(run_id);
        }
        Err(Error::AfterCommit {
            run_id,
            seq,
            source: Box::new(e),
        })
    }

    /// Runs the current node's handler and turns its plan into events.
    fn run_node(&self, spec: &WorkflowSpec, state: &RunState) -> Result<Step, Error> {
        let node = state.node.clone().unwrap_or_default();
        let fail = |vars, code, message: String| {
            Step::of(Event::Failed {
                node: Some(node.clone()),
                vars,
                failure: RunFailure { code, message },
            })
        };
        let Some(handler) = spec.node(&node) else {
            let message = format!("node {node:?} is not in workflow {:?}", spec.workflow_id());
            return Ok(fail(None, FailureCode::UnknownNode, message));
        };
        let before = self.resolve_vars(&state.vars)?;
        let mut vars = before.clone();
        let now_ms = self.clock.now_ms();
        let plan = catch_unwind(AssertUnwindSafe(|| {
            handler.run(&mut StepContext {
                run_id: state.run_id,
                node_id: &node,
                now_ms,
                vars: &mut vars,
            })
        }));
        let plan = match plan {
            Ok(plan) => plan,
            Err(panic) => {
                let message = format!("node {node:?} panicked: {}", panic_message(&panic));
                return Ok(fail(None, FailureCode::HandlerPanicked, message));
            }
        };
        let vars = match self.offload_vars(state, &before, vars) {
            Ok(vars) => vars,
            Err(Error::ValueTooLarge { what, bytes, max }) => {
                let message =
                    format!("node {node:?} set {what} of {bytes} bytes, over the limit of {max}");
                return Ok(fail(None, FailureCode::ValueTooLarge, message));
            }
            Err(e @ Error::ValueTooDeep { .. }) => {
                let message = format!("node {node:?} set {e}");
                return Ok(fail(None, FailureCode::LimitExceeded, message));
            }
            Err(e) => return Err(e),
        };
        if vars != state.vars {
            if let Err(e) = self.check_vars_len(&vars) {
                return Ok(fail(
                    None,
                    FailureCode::LimitExceeded,
                    format!("node {node:?}: {e}"),
                ));
            }
        }
        let change = vars_change(&state.vars, &vars);
        let plan = match self.offload_plan(Some(state.run_id), plan) {
            Ok(plan) => plan,
            Err(Error::ValueTooLarge { what, bytes, max }) => {
                let message = format!(
                    "node {node:?} returned {what} of {bytes} bytes, over the limit of {max}"
                );
                return Ok(fail(change, FailureCode::ValueTooLarge, message));
            }
            Err(e @ Error::ValueTooDeep { .. }) => {
                let message = format!("node {node:?} returned {e}");
                return Ok(fail(change, FailureCode::LimitExceeded, message));
            }
            Err(e) => return Err(e),
        };
        let unknown = |target: &str| {
            format!(
                "node {node:?} names node {target:?}, which is not in workflow {:?}",
                spec.workflow_id()
            )
        };
        Ok(match plan {
            StepPlan::Next(next) if spec.node(&next).is_none() => {
                fail(change, FailureCode::UnknownNode, unknown(&next))
            }
            StepPlan::Next(next) => Step::of(Event::Advanced {
                node,
                vars: change,
                next,
            }),
            StepPlan::Complete(output) => Step::of(Event::Completed {
                node,
                vars: change,
                output,
            }),
            StepPlan::Fail(message) => fail(change, FailureCode::NodeFailed, message),
            StepPlan::Effect {
                then: Continuation::Next(next),
                ..
            } if spec.node(&next).is_none() => {
                fail(change, FailureCode::UnknownNode, unknown(&next))
            }
            StepPlan::Effect { effect, then } => {
                match self.plan_effect(state, &node, change.clone(), effect, then)? {
                    Ok(step) => step,
                    Err((code, message)) => fail(change, code, message),
                }
            }
        })
    }

    /// Refuses vars over [`EngineConfig::vars_bytes_max`] as stored.
    fn check_vars_len(&self, vars: &Map<String, Value>) -> Result<(), Error> {
        let bytes = serde_json::to_vec(vars).map_or(usize::MAX, |v| v.len());
        if bytes > self.config.vars_bytes_max {
            return Err(Error::LimitExceeded {
                what: format!("vars of {bytes} bytes"),
                max: self.config.vars_bytes_max as u64,
            });
        }
        Ok(())
    }

    /// Refuses a wait_key over [`EngineConfig::wait_key_bytes_max`].
    fn check_wait_key_len(&self, wait_key: &str) -> Result<(), Error> {
        let max = self.config.wait_key_bytes_max;
        if wait_key.len() > max {
            return Err(Error::LimitExceeded {
                what: format!("wait_key of {} bytes", wait_key.len()),
                max: max as u64,
            });
        }
        Ok(())
    }

    /// Stores `value` as an artifact of the run if it is over the artifact threshold, and
    /// returns what state and records should hold: the value itself or its reference.
    fn offload(&self, run_id: Option<RunId>, value: Value, what: &str) -> Result<Value, Error> {
        if ArtifactRef::from_value(&value).is_some() {
            return Ok(value);
        }
        self.check_depth(&value, what)?;
        // The artifact's bytes are the value's canonical JSON (docs/ledger-format.md), so
        // anyone holding the value can recompute its digest.
        let bytes = ledgerflow_ledger::canonical_json(&value);
        if bytes.len() > self.config.value_bytes_max {
            return Err(Error::ValueTooLarge {
                what: what.to_owned(),
                bytes: bytes.len(),
                max: self.config.value_bytes_max,
            });
        }
        if bytes.len() <= self.config.artifact_threshold_bytes {
            return Ok(value);
        }
        let artifact = self
            .store
            .put_artifact(&bytes, "application/json", run_id)?;
        Ok(artifact.to_value())
    }

    /// Refuses a value nesting deeper than [`EngineConfig::value_depth_max`].
    fn check_depth(&self, value: &Value, what: &str) -> Result<(), Error> {
        let max = self.config.value_depth_max;
        match depth_over(value, max) {
            Some(depth) => Err(Error::ValueTooDeep {
                what: what.to_owned(),
                depth,
                max,
            }),
            None => Ok(()),
        }
    }

    /// The value an artifact reference stands for (other values as they are).
    pub fn resolve(&self, value: &Value) -> Result<Value, Error> {
        let Some(artifact) = ArtifactRef::from_value(value) else {
            return Ok(value.clone());
        };
        let bytes = self.store.get_artifact(&artifact.digest)?.ok_or_else(|| {
            Error::Store(store::Error::NotFound(format!(
                "artifact {}",
                artifact.digest
            )))
        })?;
        serde_json::from_slice(&bytes).map_err(|e| {
            Error::Store(store::Error::Corrupt(format!(
                "artifact {} is not JSON: {e}",
                artifact.digest
            )))
        })
    }

    fn resolve_vars(&self, vars: &Map<String, Value>) -> Result<Map<String, Value>, Error> {
        vars.iter()
            .map(|(k, v)| Ok((k.clone(), self.resolve(v)?)))
            .collect()
    }

    /// The vars to store after a node ran: unchanged values keep their stored form (an
    /// artifact reference stays a reference), changed ones are offloaded if large.
    fn offload_vars(
        &self,
        state: &RunState,
        before: &Map<String, Value>,
        after: Map<String, Value>,
    ) -> Result<Map<String, Value>, Error> {
        after
            .into_iter()
            .map(|(key, value)| {
                let stored = match (before.get(&key), state.vars.get(&key)) {
                    (Some(old), Some(stored)) if *old == value => stored.clone(),
                    _ => self.offload(Some(state.run_id), value, &format!("var {key:?}"))?,
                };
                Ok((key, stored))
            })
            .collect()
    }

    /// Offloads the large values a plan carries: an output, an effect's payload.
    fn offload_plan(&self, run_id: Option<RunId>, plan: StepPlan) -> Result<StepPlan, Error> {
        let then = |then: Continuation| -> Result<Continuation, Error> {
            Ok(match then {
                Continuation::Complete(output) => {
                    Continuation::Complete(self.offload(run_id, output, "the output")?)
                }
                next => next,
            })
        };
        Ok(match plan {
            StepPlan::Complete(output) => {
                StepPlan::Complete(self.offload(run_id, output, "the output")?)
            }
            StepPlan::Effect {
                mut effect,
                then: cont,
            } => {
                if matches!(
                    effect.kind.as_str(),
                    kind::WAIT_EVENT | kind::WAIT_UNTIL | kind::ASK_USER
                ) {
                    self.check_depth(&effect.payload, "the effect payload")?;
                } else {
                    effect.payload = self.offload(run_id, effect.payload, "the effect payload")?;
                }
                StepPlan::Effect {
                    effect,
                    then: then(cont)?,
                }
            }
            other => other,
        })
    }

    /// Turns an effect into the events of the step that requested it. The outer error is
    /// the caller's (storage); the inner one fails the run.
    fn plan_effect(
        &self,
        state: &RunState,
        node: &str,
        vars: Option<crate::VarsChange>,
        effect: Effect,
        then: Continuation,
    ) -> Result<Result<Step, PlanFailure>, Error> {
        if effect.kind == kind::START_SUBWORKFLOW {
            return self.plan_subworkflow(state, node, vars, &effect, then);
        }
        Ok(self.plan_other_effect(state, node, vars, effect, then))
    }

    /// Creates the child run of a `start_subworkflow` effect and returns the parent's step.
    fn plan_subworkflow(
        &self,
        state: &RunState,
        node: &str,
        vars: Option<crate::VarsChange>,
        effect: &Effect,
        then: Continuation,
    ) -> Result<Result<Step, PlanFailure>, Error> {
        let invalid = |what: String| {
            Ok(Err((
                FailureCode::InvalidEffect,
                format!("start_subworkflow effect: {what}"),
            )))
        };
        let payload = match self.resolve(&effect.payload) {
            Ok(payload) => payload,
            Err(e) => return invalid(e.to_string()),
        };
        let Some(workflow_id) = non_empty_str(&payload, "workflow_id") else {
            return invalid("needs a non-empty string workflow_id".into());
        };
        let Some(version) = payload
            .get("version")
            .and_then(Value::as_u64)
            .and_then(|v| u32::try_from(v).ok())
        else {
            return invalid("needs an integer version".into());
        };
        let mode = match payload.get("mode").and_then(Value::as_str) {
            None | Some("sync") => SubworkflowMode::Sync,
            Some("async") => SubworkflowMode::Async,
            Some(other) => {
                return invalid(format!("mode must be \"sync\" or \"async\", not {other:?}"))
            }
        };
        let key = WorkflowKey {
            workflow_id: workflow_id.clone(),
            version,
        };
        if self.spec(&key).is_err() {
            return invalid(format!(
                "workflow {workflow_id:?} version {version} is not registered"
            ));
        }
        let depth = state.depth() + 1;
        if depth > self.config.subworkflow_depth_max {
            let max = self.config.subworkflow_depth_max;
            return Ok(Err((
                FailureCode::LimitExceeded,
                format!("subworkflow depth {depth} is over the limit of {max}"),
            )));
        }
        let seq = state.head.seq + 1;
        let child = child_run_id(state.run_id, seq);
        let link = ParentLink {
            run_id: state.run_id,
            seq,
            wait_key: (mode == SubworkflowMode::Sync).then(|| wait_keys::child(child)),
            depth,
            after: Some(state.head),
        };
        let input = payload.get("input").cloned().unwrap_or(Value::Null);
        match self.start_with_id(child, key, input, Some(link)) {
            Ok(()) => {}
            // Created before a crash, by the same step: carry on with it.
            Err(Error::Store(store::Error::Conflict {
                expected_seq: 0, ..
            })) => {}
            Err(Error::InvalidInput { reason }) => return invalid(reason),
            Err(Error::ValueTooLarge { what, bytes, max }) => {
                return Ok(Err((
                    FailureCode::ValueTooLarge,
                    format!("subworkflow {what} is {bytes} bytes, over {max}"),
                )))
            }
            Err(e @ Error::ValueTooDeep { .. }) => {
                return Ok(Err((
                    FailureCode::LimitExceeded,
                    format!("subworkflow {e}"),
                )))
            }
            Err(e) => return Err(e),
        }
        let mut step = Step::of(Event::SubworkflowStarted {
            node: node.to_owned(),
            vars,
            child_run_id: child,
            workflow_id,
            workflow_version: version,
            mode,
            result_key: effect.result_key.clone(),
            then,
        });
        step.children.push(child);
        Ok(Ok(step))
    }

    /// Turns any effect but `start_subworkflow` into the events of its step.
    fn plan_other_effect(
        &self,
        state: &RunState,
        node: &str,
        vars: Option<crate::VarsChange>,
        effect: Effect,
        then: Continuation,
    ) -> Result<Step, PlanFailure> {
        let seq = state.head.seq + 1;
        let resolved = self
            .resolve(&effect.payload)
            .map_err(|e| (FailureCode::InvalidEffect, e.to_string()))?;
        let payload = &resolved;
        let invalid = |what: &str| {
            (
                FailureCode::InvalidEffect,
                format!("{} effect: {what}", effect.kind),
            )
        };
        let wait = |wait_key, reason, until_ms, prompt, choices| WaitState {
            wait_key,
            reason,
            until_ms,
            prompt,
            choices,
            result_key: effect.result_key.clone(),
            then: then.clone(),
        };
        let waiting = |wait| Event::Waiting {
            node: node.to_owned(),
            vars: vars.clone(),
            wait,
        };
        match effect.kind.as_str() {
            kind::WAIT_EVENT => {
                let key = non_empty_str(payload, "wait_key")
                    .ok_or_else(|| invalid("needs a non-empty string wait_key"))?;
                self.check_wait_key_len(&key)
                    .map_err(|e| (FailureCode::LimitExceeded, e.to_string()))?;
                Ok(Step::of(waiting(wait(
                    Some(key),
                    WaitReason::Event,
                    None,
                    None,
                    Vec::new(),
                ))))
            }
            kind::ASK_USER => {
                let prompt = payload
                    .get("prompt")
                    .and_then(Value::as_str)
                    .ok_or_else(|| invalid("needs a string prompt"))?;
                let choices = match payload.get("choices") {
                    None | Some(Value::Null) => Vec::new(),
                    Some(Value::Array(items)) => items
                        .iter()
                        .map(|c| c.as_str().map(str::to_owned))
                        .collect::<Option<Vec<_>>>()
                        .ok_or_else(|| invalid("choices must be strings"))?,
                    Some(_) => return Err(invalid("choices must be an array of strings")),
                };
                let key = match payload.get("wait_key") {
                    None | Some(Value::Null) => wait_keys::ask(state.run_id, seq),
                    Some(_) => non_empty_str(payload, "wait_key")
                        .ok_or_else(|| invalid("wait_key must be a non-empty string"))?,
                };
                self.check_wait_key_len(&key)
                    .map_err(|e| (FailureCode::LimitExceeded, e.to_string()))?;
                let w = wait(
                    Some(key),
                    WaitReason::User,
                    None,
                    Some(prompt.to_owned()),
                    choices,
                );
                Ok(Step::of(waiting(w)))
            }
            kind::WAIT_UNTIL => {
                let at_ms = payload
                    .get("at_ms")
                    .and_then(Value::as_i64)
                    .ok_or_else(|| invalid("needs an integer at_ms"))?;
                let mut step = Step::of(waiting(wait(
                    None,
                    WaitReason::Until,
                    Some(at_ms),
                    None,
                    Vec::new(),
                )));
                if at_ms <= self.clock.now_ms() {
                    step.events.push(Event::TimerFired { due_at_ms: at_ms });
                }
                Ok(step)
            }
            kind::EMIT_EVENT => {
                let key = non_empty_str(payload, "wait_key")
                    .ok_or_else(|| invalid("needs a non-empty string wait_key"))?;
                self.check_wait_key_len(&key)
                    .map_err(|e| (FailureCode::LimitExceeded, e.to_string()))?;
                let event_payload = payload.get("payload").cloned().unwrap_or(Value::Null);
                Ok(Step {
                    events: vec![Event::EventEmitted {
                        node: node.to_owned(),
                        vars,
                        wait_key: key.clone(),
                        payload: event_payload.clone(),
                        then,
                    }],
                    inbox: vec![IndexChange::InboxPush {
                        wait_key: key.clone(),
                        payload: event_payload,
                    }],
                    emitted_to: Some(key),
                    children: Vec::new(),
                })
            }
            custom => {
                if !self
                    .effects
                    .read()
                    .unwrap_or_else(|p| p.into_inner())
                    .contains_key(custom)
                {
                    return Err((
                        FailureCode::UnknownEffect,
                        format!("no effect handler is registered for kind {custom:?}"),
                    ));
                }
                Ok(Step::of(Event::EffectRequested {
                    node: node.to_owned(),
                    vars,
                    idempotency_key: format!("{}:{seq}", state.run_id),
                    effect,
                    then,
                }))
            }
        }
    }

    /// Runs the handler of the run's pending custom effect.
    fn run_pending_effect(&self, state: &RunState) -> Result<Step, Error> {
        let Some(pending) = &state.pending_effect else {
            return Err(Error::Internal("no pending effect to run".into()));
        };
        let payload = self.resolve(&pending.effect.payload)?;
        let key = pending.idempotency_key.clone();
        let handler = self
            .effects
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&pending.effect.kind)
            .cloned();
        let outcome = match handler {
            None => EffectOutcome::Failed {
                error: format!(
                    "no effect handler is registered for kind {:?}",
                    pending.effect.kind
                ),
                retryable: false,
            },
            Some(handler) => {
                let call = EffectCall {
                    run_id: state.run_id,
                    kind: &pending.effect.kind,
                    payload: &payload,
                    idempotency_key: &key,
                    attempt: pending.attempt,
                };
                catch_unwind(AssertUnwindSafe(|| handler.handle(&call))).unwrap_or_else(|panic| {
                    EffectOutcome::Failed {
                        error: format!("effect handler panicked: {}", panic_message(&panic)),
                        retryable: false,
                    }
                })
            }
        };
        Ok(Step::of(match outcome {
            EffectOutcome::Completed(result) => {
                match self.offload(Some(state.run_id), result, "the effect result") {
                    Ok(result) => Event::EffectCompleted {
                        idempotency_key: key,
                        result,
                    },
                    Err(e @ (Error::ValueTooLarge { .. } | Error::ValueTooDeep { .. })) => {
                        Event::EffectFailed {
                            idempotency_key: key,
                            error: e.to_string(),
                            retryable: false,
                        }
                    }
                    Err(e) => return Err(e),
                }
            }
            EffectOutcome::Waiting { wait_key } => Event::EffectWaiting {
                idempotency_key: key,
                wait_key,
            },
            EffectOutcome::Failed { error, retryable } => {
                let policy = pending.effect.retry.or(self.config.default_retry);
                match policy.filter(|p| retryable && pending.attempt < p.attempts_max) {
                    Some(policy) => {
                        let unit = jitter_unit(&key, pending.attempt);
                        let wait_ms = policy.backoff_ms(pending.attempt, unit);
                        let wait_ms = i64::try_from(wait_ms).unwrap_or(i64::MAX);
                        Event::EffectRetryScheduled {
                            idempotency_key: key,
                            attempt: pending.attempt,
                            error,
                            retry_at_ms: self.clock.now_ms().saturating_add(wait_ms),
                        }
                    }
                    None => Event::EffectFailed {
                        idempotency_key: key,
                        error,
                        retryable,
                    },
                }
            }
        }))
    }

    /// Commits a step, after the steps `carried` past `old` (the state the store holds).
    /// If the step leaves the run waiting on a key whose inbox holds an event, the oldest
    /// event is consumed in the same commit. If another run holds the key, the run fails
    /// instead.
    fn commit(
        &self,
        old: Option<&RunState>,
        run_id: RunId,
        carried: Option<Carried>,
        mut step: Step,
    ) -> Result<RunState, Error> {
        let (from, carried_records, carried_inbox) = match carried {
            Some(c) => (Some(c.state), c.records, c.inbox),
            None => (old.cloned(), Vec::new(), Vec::new()),
        };
        for _ in 0..INBOX_RACE_RETRIES {
            let now_ms = self.clock.now_ms();
            let mut events = step.events.clone();
            let mut index = carried_inbox.clone();
            index.extend(step.inbox.iter().cloned());
            if let Some(wait_key) = waits_on_key(&events) {
                if let Some(entry) = self.store.inbox(&wait_key, 1)?.into_iter().next() {
                    index.push(IndexChange::InboxConsume {
                        wait_key: wait_key.clone(),
                        seq: entry.seq,
                    });
                    events.push(Event::Resumed {
                        wait_key,
                        payload: entry.payload,
                        inbox_seq: Some(entry.seq),
                    });
                }
            }
            let mut records = carried_records.clone();
            let new = match (&from, events.is_empty()) {
                (Some(state), true) => state.clone(),
                (_, _) => {
                    let (new, own) =
                        append(from.as_ref(), run_id, &events, now_ms).map_err(Error::Internal)?;
                    records.extend(own);
                    new
                }
            };
            let notify_parent = self.parent_notice(old, &new)?;
            if let Some((wait_key, result)) = &notify_parent {
                index.push(IndexChange::InboxPush {
                    wait_key: wait_key.clone(),
                    payload: result.clone(),
                });
            }
            let mut commit = Commit::between(old, new.clone(), records, now_ms).sealed_by_fold();
            commit.index.extend(index);
            match self.store.commit(commit) {
                Ok(()) => {
                    let observers = self
                        .observers
                        .read()
                        .unwrap_or_else(|p| p.into_inner())
                        .clone();
                    for observer in observers {
                        observer(&new);
                    }
                    if let Some((wait_key, _)) = notify_parent {
                        self.wake_waiter(&wait_key);
                    }
                    return Ok(new);
                }
                Err(store::Error::InboxNotEmpty { .. }) => continue,
                Err(store::Error::WaitKeyTaken { wait_key, holder }) => {
                    let message =
                        format!("wait_key {wait_key:?} is already waited on by run {holder}");
                    step = Step::of(wait_key_failure(&step.events, message));
                }
                Err(e) => return Err(e.into()),
            }
        }
        Err(Error::Store(store::Error::Conflict {
            run_id,
            expected_seq: old.map_or(0, |s| s.head.seq),
            actual_seq: self.store.load(run_id)?.map_or(0, |s| s.head.seq),
        }))
    }

    /// When `new` ends a synchronous child, the parent's wait_key and the child's result,
    /// to be queued in the same commit. Skipped when the parent has already ended.
    fn parent_notice(
        &self,
        old: Option<&RunState>,
        new: &RunState,
    ) -> Result<Option<(String, Value)>, Error> {
        let ended_now = new.status.is_terminal() && !old.is_some_and(|o| o.status.is_terminal());
        let Some(link) = new.parent.as_ref().filter(|_| ended_now) else {
            return Ok(None);
        };
        let (Some(wait_key), Some(result)) = (link.wait_key.clone(), new.child_result()) else {
            return Ok(None);
        };
        let parent_ended = self
            .store
            .load(link.run_id)?
            .is_none_or(|p| p.status.is_terminal());
        Ok((!parent_ended).then_some((wait_key, result)))
    }

    /// Ends a wait with `payload` delivered to `wait_key`, then ticks the run (unless it
    /// is paused). A key the run does not wait on is an error and changes nothing.
    pub fn resume(&self, run_id: RunId, wait_key: &str, payload: Value) -> Result<RunState, Error> {
        let state = self.load(run_id)?;
        if state.status.is_terminal() {
            return Err(Error::RunTerminal {
                run_id,
                status: state.status,
            });
        }
        if state.status != RunStatus::Waiting {
            return Err(Error::NotWaiting {
                run_id,
                status: state.status,
            });
        }
        if !state.waits_on(wait_key) {
            return Err(Error::WaitKeyMismatch {
                run_id,
                expected: state.waiting.as_ref().and_then(|w| w.wait_key.clone()),
                got: wait_key.to_owned(),
            });
        }
        self.require_spec(&state)?;
        let payload = self.offload(Some(run_id), payload, "the resume payload")?;
        let event = Event::Resumed {
            wait_key: wait_key.to_owned(),
            payload,
            inbox_seq: None,
        };
        self.drive(state, Some(Step::of(event)))
    }

    /// Answers what the run waits for — a person's answer (`ask_user`) or an event
    /// (`wait_event`) — with `payload`, finding the wait_key itself, then ticks it (see
    /// [`Engine::resume`]). Any other wait (a timer, a child workflow's result, an
    /// external job, a retry) is not an answer: [`Error::NotAnswerable`], naming what the
    /// run waits for, and nothing changes.
    pub fn respond(&self, run_id: RunId, payload: Value) -> Result<RunState, Error> {
        let state = self.load(run_id)?;
        let Some(key) = state.respond_key().map(str::to_owned) else {
            return Err(Error::NotAnswerable {
                run_id,
                status: state.status,
                waits_for: state.waits_for(),
            });
        };
        self.resume(run_id, &key, payload)
    }

    /// Fires the run's timer due at `due_at_ms`, then ticks it (unless paused). A timer
    /// that no longer matches the run's wait (already fired, run moved on) does nothing.
    pub fn fire_timer(&self, run_id: RunId, due_at_ms: i64) -> Result<RunState, Error> {
        let state = self.load(run_id)?;
        self.fire_timer_of(state, due_at_ms)
    }

    fn fire_timer_of(&self, state: RunState, due_at_ms: i64) -> Result<RunState, Error> {
        if !state.waits_until(due_at_ms) || due_at_ms > self.clock.now_ms() {
            return Ok(state);
        }
        self.require_spec(&state)?;
        self.drive(state, Some(Step::of(Event::TimerFired { due_at_ms })))
    }

    /// Fires up to `limit` due timers; returns how many fired.
    pub fn fire_due_timers(&self, limit: usize) -> Result<usize, Error> {
        let mut fired = 0;
        for timer in self.store.due_timers(self.clock.now_ms(), None, limit)? {
            if !self
                .fire_timer(timer.run_id, timer.due_at_ms)?
                .waits_until(timer.due_at_ms)
            {
                fired += 1;
            }
        }
        Ok(fired)
    }

    /// Delivers an event to `wait_key`: resumes the run waiting on it, or queues the event
    /// in the key's inbox for the run that will wait on it. Never applies twice: what
    /// decides is the commit that consumed the event. Once the resume is committed the
    /// answer is [`Delivered::Resumed`] (or [`Error::AfterCommit`] if the steps after it
    /// failed), never a retry that could queue the event again.
    pub fn deliver(&self, wait_key: &str, payload: Value) -> Result<Delivered, Error> {
        self.deliver_with(wait_key, payload, |_| ())
    }

    /// [`Engine::deliver`], holding the value `claim(run_id)` returns while the waiting run
    /// is resumed: how a scheduler makes its delivery the run's one owner for that time.
    pub fn deliver_with<G>(
        &self,
        wait_key: &str,
        payload: Value,
        claim: impl Fn(RunId) -> G,
    ) -> Result<Delivered, Error> {
        self.check_wait_key_len(wait_key)?;
        let payload = self.offload(None, payload, "the event payload")?;
        for _ in 0..DELIVER_RETRIES {
            match self
                .store
                .deliver(wait_key, payload.clone(), self.clock.now_ms())?
            {
                Delivery::Queued(seq) => return Ok(Delivered::Queued(seq)),
                Delivery::Waiter(run_id) => {
                    let _owner = claim(run_id);
                    match self.resume(run_id, wait_key, payload.clone()) {
                        Ok(state) => return Ok(Delivered::Resumed(Box::new(state))),
                        // Another resumer won the race before this resume committed
                        // anything; look again.
                        Err(e) if e.is_conflict() => continue,
                        Err(Error::WaitKeyMismatch { .. })
                        | Err(Error::NotWaiting { .. })
                        | Err(Error::RunTerminal { .. }) => continue,
                        Err(e) => return Err(e),
                    }
                }
            }
        }
        Err(Error::DeliveryContended {
            wait_key: wait_key.to_owned(),
        })
    }

    /// Makes sure the run waiting on `wait_key` (if any) consumes the event just queued
    /// for it (an emitted event, a child's result): hands the run off, or drains the inbox
    /// here. Best effort: the commit that queued the event has already succeeded and the
    /// event is durable in the inbox, so a failure here (the waiting run's workflow not
    /// registered in this process, a lost race) must not be reported as the committed
    /// step's failure. The event is delivered by the next drain: a scheduler drains every
    /// inbox at start-up, and a run that starts waiting consumes it.
    fn wake_waiter(&self, wait_key: &str) {
        match self.handoff() {
            Some(handoff) => {
                if let Ok(Some(run_id)) = self.store.waiting_on(wait_key) {
                    handoff(run_id);
                }
            }
            None => {
                let _ = self.drain_inbox(wait_key);
            }
        }
    }

    /// If a run waits on `wait_key` and its inbox holds an event, resumes the run with the
    /// oldest one. Returns whether a run was resumed.
    pub fn drain_inbox(&self, wait_key: &str) -> Result<bool, Error> {
        let Some(run_id) = self.store.waiting_on(wait_key)? else {
            return Ok(false);
        };
        let Some(entry) = self.store.inbox(wait_key, 1)?.into_iter().next() else {
            return Ok(false);
        };
        let state = self.load(run_id)?;
        if !state.waits_on(wait_key) {
            return Ok(false);
        }
        self.consume_inbox(state, wait_key, entry)?;
        Ok(true)
    }

    /// Resumes `state`, which waits on `wait_key`, with the key's oldest inbox `entry`,
    /// consuming it in the same commit; then runs the steps that follow.
    fn consume_inbox(
        &self,
        state: RunState,
        wait_key: &str,
        entry: store::InboxEntry,
    ) -> Result<RunState, Error> {
        self.require_spec(&state)?;
        let event = Event::Resumed {
            wait_key: wait_key.to_owned(),
            payload: entry.payload,
            inbox_seq: Some(entry.seq),
        };
        let step = Step {
            events: vec![event],
            inbox: vec![IndexChange::InboxConsume {
                wait_key: wait_key.to_owned(),
                seq: entry.seq,
            }],
            emitted_to: None,
            children: Vec::new(),
        };
        self.drive(state, Some(step))
    }

    /// Pauses the run: no step runs until [`Engine::unpause`]. Waits still end (their
    /// payload is recorded) but the run does not move on. Pausing a paused run does
    /// nothing; pausing an ended run is an error.
    pub fn pause(&self, run_id: RunId) -> Result<RunState, Error> {
        let state = self.load(run_id)?;
        if state.status.is_terminal() {
            return Err(Error::RunTerminal {
                run_id,
                status: state.status,
            });
        }
        if state.paused {
            return Ok(state);
        }
        self.commit(Some(&state), run_id, None, Step::of(Event::Paused {}))
    }

    /// Unpauses the run and ticks it. Unpausing a run that is not paused does nothing.
    pub fn unpause(&self, run_id: RunId) -> Result<RunState, Error> {
        let state = self.load(run_id)?;
        if state.status.is_terminal() {
            return Err(Error::RunTerminal {
                run_id,
                status: state.status,
            });
        }
        if !state.paused {
            return Ok(state);
        }
        self.require_spec(&state)?;
        self.drive(state, Some(Step::of(Event::Unpaused {})))
    }

    /// Cancels the run. Idempotent: cancelling an ended run (completed, failed or already
    /// cancelled) writes nothing and returns the record that ended it.
    pub fn cancel(&self, run_id: RunId, reason: &str) -> Result<CancelOutcome, Error> {
        let state = self.load(run_id)?;
        if state.status.is_terminal() {
            let seq = state.ended_seq.unwrap_or(state.head.seq);
            let record = self
                .store
                .read_records(run_id, seq, 1)?
                .into_iter()
                .next()
                .ok_or_else(|| {
                    Error::Store(store::Error::Corrupt(format!(
                        "run {run_id}: ending record {seq} is missing"
                    )))
                })?;
            return Ok(CancelOutcome {
                state,
                record,
                changed: false,
            });
        }
        let event = Event::Cancelled {
            reason: reason.to_owned(),
        };
        let state = self.commit(Some(&state), run_id, None, Step::of(event))?;
        let record = self
            .store
            .read_records(run_id, state.head.seq, 1)?
            .into_iter()
            .next()
            .ok_or_else(|| {
                Error::Store(store::Error::Corrupt(format!(
                    "run {run_id}: cancel record missing after commit"
                )))
            })?;
        Ok(CancelOutcome {
            state,
            record,
            changed: true,
        })
    }

    /// Up to `limit` runs matching `query`, from the index that answers it best (parent,
    /// then workflow, status, created or updated time, then all runs), continuing after
    /// `cursor` if given. Each call reads at most the store's `read_items_max` index
    /// entries, so a page can be short and still have a next cursor.
    pub fn query_runs(
        &self,
        query: &RunQuery,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<RunPage, Error> {
        self.store.check_limit(limit)?;
        let plan = query.plan();
        let store_id = self.store.store_id();
        let mut position = match cursor {
            Some(text) => Some(plan.position(&store_id, text).map_err(
                |problem| match problem {
                    CursorProblem::OtherStore => Error::CursorFromAnotherStore {
                        cursor: text.chars().take(120).collect(),
                    },
                    CursorProblem::OtherQuery => Error::InvalidInput {
                        reason: format!("cursor {text:?} belongs to another query"),
                    },
                    CursorProblem::Malformed => Error::InvalidInput {
                        reason: format!("{text:?} is not a query cursor"),
                    },
                },
            )?),
            None => None,
        };
        let budget = self.store.limits().read_items_max.max(1);
        let page_len = limit.clamp(1, budget);
        let mut runs = Vec::new();
        let mut scanned = 0;
        loop {
            let batch = self.scan_index(&plan, position, page_len)?;
            let exhausted = batch.len() < page_len;
            for entry in batch {
                scanned += 1;
                position = Some(entry);
                let run_id = match entry {
                    Position::Run(id) | Position::Versioned(_, id) | Position::Timed(_, id) => id,
                };
                if let Some(state) = self.store.load(run_id)? {
                    if query.matches(&state) {
                        runs.push(state);
                    }
                }
                if runs.len() == limit {
                    break;
                }
            }
            if exhausted && runs.len() < limit {
                return Ok(RunPage {
                    runs,
                    next_cursor: None,
                });
            }
            if runs.len() == limit || scanned >= budget {
                let next_cursor = position.map(|p| plan.cursor(&store_id, p));
                return Ok(RunPage { runs, next_cursor });
            }
        }
    }

    fn scan_index(
        &self,
        plan: &Plan,
        after: Option<Position>,
        limit: usize,
    ) -> Result<Vec<Position>, Error> {
        let after_run = |p: Option<Position>| match p {
            Some(Position::Run(id)) => Some(id),
            _ => None,
        };
        Ok(match plan {
            Plan::Children(parent) => self
                .store
                .children(*parent, after_run(after), limit)?
                .into_iter()
                .map(Position::Run)
                .collect(),
            Plan::Status(status) => self
                .store
                .list_runs(Some(*status), after_run(after), limit)?
                .into_iter()
                .map(Position::Run)
                .collect(),
            Plan::All => self
                .store
                .list_runs(None, after_run(after), limit)?
                .into_iter()
                .map(Position::Run)
                .collect(),
            Plan::Workflow(workflow_id, version) => {
                let after = match after {
                    Some(Position::Versioned(v, id)) => Some((v, id)),
                    _ => None,
                };
                self.store
                    .runs_by_workflow(workflow_id, *version, after, limit)?
                    .into_iter()
                    .map(|(v, id)| Position::Versioned(v, id))
                    .collect()
            }
            Plan::Time(field, from, to) => {
                let after = match after {
                    Some(Position::Timed(at, id)) => Some((at, id)),
                    _ => None,
                };
                self.store
                    .runs_by_time(*field, *from, *to, after, limit)?
                    .into_iter()
                    .map(|(at, id)| Position::Timed(at, id))
                    .collect()
            }
            Plan::TimeDesc(field, from, to) => {
                let before = match after {
                    Some(Position::Timed(at, id)) => Some((at, id)),
                    _ => None,
                };
                self.store
                    .runs_by_time_desc(*field, *from, *to, before, limit)?
                    .into_iter()
                    .map(|(at, id)| Position::Timed(at, id))
                    .collect()
            }
        })
    }

    /// How many runs have each status.
    pub fn count_by_status(&self) -> Result<Vec<(RunStatus, u64)>, Error> {
        Ok(self.store.count_by_status()?)
    }

    /// A cursor at the start of the store's event feed.
    pub fn cursor_from_start(&self) -> FeedCursor {
        FeedCursor {
            store_id: self.store.store_id(),
            feed_seq: 0,
        }
    }

    /// A cursor after the last event committed so far: reading from it returns only what
    /// happens next.
    pub fn cursor_now(&self) -> Result<FeedCursor, Error> {
        Ok(FeedCursor {
            store_id: self.store.store_id(),
            feed_seq: self.store.feed_head()?,
        })
    }

    /// A cursor `count` events before the end of the feed: reading from it returns the
    /// last `count` events (or all, if there are fewer).
    pub fn cursor_tail(&self, count: u64) -> Result<FeedCursor, Error> {
        let head = self.store.feed_head()?;
        Ok(FeedCursor {
            store_id: self.store.store_id(),
            feed_seq: head.saturating_sub(count),
        })
    }

    /// Up to `limit` events after `cursor`, in commit order, and the cursor to read on
    /// from. Only acknowledged (durable, in the default mode) commits are returned. A limit
    /// over the store's maximum is `LimitTooLarge`; a cursor from another store is refused.
    pub fn read_events(&self, cursor: &FeedCursor, limit: usize) -> Result<FeedPage, Error> {
        if cursor.store_id != self.store.store_id() {
            return Err(Error::CursorFromAnotherStore {
                cursor: cursor.to_string(),
            });
        }
        let events = self.store.read_feed(cursor.feed_seq, limit)?;
        let last = events.last().map_or(cursor.feed_seq, |e| e.feed_seq);
        let has_more = last < self.store.feed_head()?;
        Ok(FeedPage {
            events,
            next_cursor: FeedCursor {
                store_id: cursor.store_id,
                feed_seq: last,
            },
            has_more,
        })
    }

    /// The run's state right after record `seq`, by replaying its ledger up to there.
    pub fn state_at(&self, run_id: RunId, seq: u64) -> Result<RunState, Error> {
        let head = self.load(run_id)?.head.seq;
        if seq == 0 || seq > head {
            return Err(Error::InvalidInput {
                reason: format!("run {run_id} has records 1..={head}, not {seq}"),
            });
        }
        replay_stored(self.store.as_ref(), run_id, Some(seq))
    }

    /// Time travel: a new run that starts from `run_id`'s state right after record `seq`
    /// (running or waiting; an ended state cannot be forked). Its first record, `forked`,
    /// cites the parent's run id, seq and record hash. A wait_key becomes the fork's own
    /// (`fork:<new run id>:<key>`), as does a pending effect's idempotency key. The parent
    /// is not changed. Tick the fork to run it.
    pub fn fork(&self, run_id: RunId, seq: u64) -> Result<RunId, Error> {
        let at = self.state_at(run_id, seq)?;
        if at.status.is_terminal() {
            return Err(Error::InvalidInput {
                reason: format!(
                    "run {run_id} had ended ({}) at seq {seq}; fork an earlier seq",
                    at.status
                ),
            });
        }
        self.require_spec(&at)?;
        let fork_id = RunId::new_v4();
        let waiting = at.waiting.map(|mut wait| {
            wait.wait_key = wait.wait_key.map(|key| wait_keys::fork(fork_id, &key));
            wait
        });
        let pending_effect = at.pending_effect.map(|mut pending| {
            pending.idempotency_key = format!("{fork_id}:1");
            pending
        });
        let event = Event::Forked {
            from_run_id: run_id,
            from_seq: seq,
            from_record_hash: at.head.hash,
            workflow_id: at.workflow_id,
            workflow_version: at.workflow_version,
            status: at.status,
            node: at.node,
            vars: at.vars,
            waiting: waiting.map(Box::new),
            pending_effect: pending_effect.map(Box::new),
        };
        self.commit(None, fork_id, None, Step::of(event))?;
        Ok(fork_id)
    }

    /// Checks a fork's lineage: its first record is `forked`, the parent's chain verifies
    /// up to the cited seq, the record there has the cited hash, and replaying the parent
    /// to that seq gives the vars and node the fork started with. Returns the parent run
    /// and seq.
    pub fn verify_lineage(&self, fork: RunId) -> Result<(RunId, u64), Error> {
        let mismatch = |reason: String| Error::LineageMismatch {
            run_id: fork,
            reason,
        };
        let first = self
            .store
            .read_records(fork, 1, 1)?
            .into_iter()
            .next()
            .ok_or(Error::RunNotFound { run_id: fork })?;
        let Event::Forked {
            from_run_id,
            from_seq,
            from_record_hash,
            vars,
            node,
            ..
        } = Event::from_record(&first)?
        else {
            return Err(mismatch(format!(
                "first record is {:?}, not a fork",
                first.kind()
            )));
        };
        let parent = self
            .state_at(from_run_id, from_seq)
            .map_err(|e| mismatch(format!("parent {from_run_id} up to seq {from_seq}: {e}")))?;
        if parent.head.hash != from_record_hash {
            return Err(mismatch(format!(
                "parent record {from_seq} has hash {}, the fork cites {from_record_hash}",
                parent.head.hash
            )));
        }
        if parent.vars != vars || parent.node != node {
            return Err(mismatch(format!(
                "the fork's starting state differs from the parent's at seq {from_seq}"
            )));
        }
        Ok((from_run_id, from_seq))
    }

    /// Every descendant of the run (children, their children, …), parents before their
    /// children, read from the children index in pages. More than `runs_max` is
    /// `LimitExceeded`, before anything is returned to act on.
    pub fn descendants(&self, run_id: RunId, runs_max: usize) -> Result<Vec<RunId>, Error> {
        let page = self.store.limits().read_items_max.max(1);
        let mut found = Vec::new();
        let mut next = 0;
        let mut parent = run_id;
        loop {
            let mut after = None;
            loop {
                let children = self.store.children(parent, after, page)?;
                found.extend(&children);
                if found.len() > runs_max {
                    return Err(Error::LimitExceeded {
                        what: format!("the descendants of run {run_id}"),
                        max: runs_max as u64,
                    });
                }
                if children.len() < page {
                    break;
                }
                after = children.last().copied();
            }
            let Some(child) = found.get(next) else {
                return Ok(found);
            };
            parent = *child;
            next += 1;
        }
    }

    /// Reads the run's whole ledger in pages, verifies the chain, replays it, and checks the
    /// result equals the stored state. Returns the stored state.
    pub fn verify_run(&self, run_id: RunId) -> Result<RunState, Error> {
        let stored = self.load(run_id)?;
        if replay_stored(self.store.as_ref(), run_id, None)? != stored {
            return Err(Error::ReplayMismatch { run_id });
        }
        Ok(stored)
    }
}

/// The key the last of `events` leaves the run waiting on, if any.
fn waits_on_key(events: &[Event]) -> Option<String> {
    match events.last()? {
        Event::Waiting { wait, .. } => wait.wait_key.clone(),
        Event::EffectWaiting { wait_key, .. } => Some(wait_key.clone()),
        _ => None,
    }
}

/// The failure to record instead of a wait on a key another run holds.
fn wait_key_failure(events: &[Event], message: String) -> Event {
    let failure = RunFailure {
        code: FailureCode::WaitKeyInUse,
        message: message.clone(),
    };
    match events.first() {
        Some(Event::Waiting { node, vars, .. }) => Event::Failed {
            node: Some(node.clone()),
            vars: vars.clone(),
            failure,
        },
        Some(Event::EffectWaiting {
            idempotency_key, ..
        }) => Event::EffectFailed {
            idempotency_key: idempotency_key.clone(),
            error: message,
            retryable: false,
        },
        _ => Event::Failed {
            node: None,
            vars: None,
            failure,
        },
    }
}

/// How deep `value` nests, if deeper than `max` (stops looking once it is): arrays and
/// objects inside each other, a scalar being 0 deep. Iterative, so no input can exhaust
/// the stack.
fn depth_over(value: &Value, max: usize) -> Option<usize> {
    let mut stack = vec![(value, 0usize)];
    while let Some((value, depth)) = stack.pop() {
        let children: Box<dyn Iterator<Item = &Value>> = match value {
            Value::Array(items) => Box::new(items.iter()),
            Value::Object(fields) => Box::new(fields.values()),
            _ => continue,
        };
        let depth = depth + 1;
        if depth > max {
            return Some(depth);
        }
        stack.extend(children.map(|child| (child, depth)));
    }
    None
}

fn non_empty_str(payload: &Value, field: &str) -> Option<String> {
    payload
        .get(field)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn panic_message(panic: &Box<dyn std::any::Any + Send>) -> String {
    if let Some(text) = panic.downcast_ref::<&str>() {
        (*text).to_owned()
    } else if let Some(text) = panic.downcast_ref::<String>() {
        text.clone()
    } else {
        "non-string panic payload".to_owned()
    }
}
