//! `ScheduledRuntime`: the zero-config facade. Opens the embedded sled store (or a memory
//! store), starts the scheduler with the system clock, and stops both cleanly.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use ledgerflow_kernel::{
    Clock, EffectHandler, Engine, EngineConfig, Store, StoreLimits, WorkflowSpec,
};
use ledgerflow_scheduler::{Error, Scheduler, SchedulerConfig};
use ledgerflow_sled::SledConfig;

use crate::{open_store, OpenMode, StoreChoice, SystemClock};

/// The directory [`ScheduledRuntime::open_default`] uses: `./ledgerflow-data`.
pub const DEFAULT_DATA_DIR: &str = "ledgerflow-data";

/// Everything a runtime can be configured with; every field has a default.
#[derive(Clone, Debug)]
pub struct RuntimeConfig {
    /// Where data lives. Default: sled in [`DEFAULT_DATA_DIR`].
    pub store: StoreChoice,
    /// The store's read and inbox bounds, whichever store it is. Overrides `sled.limits`.
    pub limits: StoreLimits,
    /// The sled store's settings (durability `Log` by default: durable at each step).
    pub sled: SledConfig,
    /// The engine's settings.
    pub engine: EngineConfig,
    /// The scheduler's settings.
    pub scheduler: SchedulerConfig,
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        RuntimeConfig {
            store: StoreChoice::Sled(PathBuf::from(DEFAULT_DATA_DIR)),
            limits: StoreLimits::default(),
            sled: SledConfig::default(),
            engine: EngineConfig::default(),
            scheduler: SchedulerConfig::default(),
        }
    }
}

/// A store, an engine and a running scheduler in one value. Derefs to the [`Scheduler`],
/// whose methods (`run`, `respond`, `deliver`, `await_waiting`, `await_end`, `pause`, `cancel`, `stats`,
/// `subscribe`, …) are the runtime's.
///
/// ```
/// use ledgerflow::{Effect, ScheduledRuntime, StepContext, StepPlan, WorkflowSpec};
/// use serde_json::json;
///
/// let runtime = ScheduledRuntime::in_memory()?;
/// runtime.register(
///     WorkflowSpec::builder("greet", 1)
///         .node("ask", |_: &mut StepContext<'_>| {
///             StepPlan::effect(Effect::ask_user("Name?", &[]).result_key("name")).then_next("hello")
///         })
///         .node("hello", |ctx: &mut StepContext<'_>| {
///             StepPlan::complete(json!(format!("hello, {}", ctx.var("name").and_then(|v| v.as_str()).unwrap_or("?"))))
///         })
///         .entry("ask")
///         .build()?,
/// );
/// let run = runtime.run(("greet", 1), json!({}))?;      // start + tick: now waiting
/// let done = runtime.respond(run.run_id, json!("Ada"))?; // finds the wait_key itself
/// assert_eq!(done.output, Some(json!("hello, Ada")));
/// runtime.stop()?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct ScheduledRuntime {
    scheduler: Scheduler,
    store: StoreChoice,
}

impl std::fmt::Debug for ScheduledRuntime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScheduledRuntime")
            .field("store", &self.store)
            .finish_non_exhaustive()
    }
}

impl ScheduledRuntime {
    /// Sled in `./ledgerflow-data`, defaults everywhere.
    pub fn open_default() -> Result<Self, Error> {
        ScheduledRuntime::with_config(RuntimeConfig::default(), Arc::new(SystemClock))
    }

    /// Sled in `dir`, defaults everywhere.
    pub fn open(dir: impl AsRef<Path>) -> Result<Self, Error> {
        let config = RuntimeConfig {
            store: StoreChoice::Sled(dir.as_ref().to_owned()),
            ..RuntimeConfig::default()
        };
        ScheduledRuntime::with_config(config, Arc::new(SystemClock))
    }

    /// The memory store, defaults everywhere.
    pub fn in_memory() -> Result<Self, Error> {
        let config = RuntimeConfig {
            store: StoreChoice::Memory,
            ..RuntimeConfig::default()
        };
        ScheduledRuntime::with_config(config, Arc::new(SystemClock))
    }

    /// A runtime with every setting and the clock chosen (tests pass a `ManualClock`).
    /// Its threads start at once: register workflows right after (work for a workflow
    /// not registered yet waits for it), or use [`ScheduledRuntime::builder`] to register
    /// before anything runs.
    pub fn with_config(config: RuntimeConfig, clock: Arc<dyn Clock>) -> Result<Self, Error> {
        RuntimeBuilder::new(config, clock).start()
    }

    /// A builder: choose the store and settings, register workflows and effect handlers,
    /// then [`RuntimeBuilder::start`] the threads, so start-up recovery (overdue timers,
    /// runs a restart left running, buffered events) finds every workflow registered.
    ///
    /// ```
    /// use ledgerflow::{ScheduledRuntime, StepContext, StepPlan, WorkflowSpec};
    /// use serde_json::json;
    ///
    /// let runtime = ScheduledRuntime::builder()
    ///     .memory() // or .sled("ledgerflow-data"), the default
    ///     .register(
    ///         WorkflowSpec::builder("hello", 1)
    ///             .node("only", |_: &mut StepContext<'_>| StepPlan::complete(json!("hi")))
    ///             .entry("only")
    ///             .build()?,
    ///     )
    ///     .start()?;
    /// assert!(runtime.wait_recovered(std::time::Duration::from_secs(10)));
    /// assert_eq!(runtime.run(("hello", 1), json!({}))?.output, Some(json!("hi")));
    /// runtime.stop()?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn builder() -> RuntimeBuilder {
        RuntimeBuilder::new(RuntimeConfig::default(), Arc::new(SystemClock))
    }

    /// Registers a workflow spec under its (id, version). Work set aside because it was
    /// not registered (a timer due at start-up, a run left running) is queued at once.
    pub fn register(&self, spec: WorkflowSpec) -> Arc<WorkflowSpec> {
        self.scheduler.engine().register(spec)
    }

    /// Registers the handler of a custom effect kind (an `llm_call`, a tool, anything the
    /// host defines), replacing any earlier one. Built-in kinds are refused.
    pub fn register_effect(
        &self,
        kind: impl Into<String>,
        handler: impl EffectHandler + 'static,
    ) -> Result<(), Error> {
        Ok(self.scheduler.engine().register_effect(kind, handler)?)
    }

    /// The store the runtime writes to (snapshots, artifacts and `check` are on it).
    pub fn store(&self) -> &Arc<dyn Store> {
        self.scheduler.engine().store()
    }

    /// Where the store lives.
    pub fn store_choice(&self) -> &StoreChoice {
        &self.store
    }

    /// Drains the scheduler, stops its threads, and closes the store: everything is
    /// durable, the data stays readable through the engine, and every further write —
    /// through the runtime or its engine — is refused.
    pub fn stop(&self) -> Result<(), Error> {
        self.scheduler.stop();
        self.store()
            .close()
            .map_err(|e| Error::Engine(ledgerflow_kernel::Error::from(e)))
    }
}

/// Registers one effect handler on the engine a builder makes.
type EffectRegistration = Box<dyn FnOnce(&Engine) -> Result<(), ledgerflow_kernel::Error>>;

/// Builds a [`ScheduledRuntime`]: store, settings, clock, workflows and effect handlers
/// first, threads last. From [`ScheduledRuntime::builder`].
pub struct RuntimeBuilder {
    config: RuntimeConfig,
    clock: Arc<dyn Clock>,
    specs: Vec<WorkflowSpec>,
    effects: Vec<EffectRegistration>,
}

impl std::fmt::Debug for RuntimeBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RuntimeBuilder")
            .field("config", &self.config)
            .field("specs", &self.specs.len())
            .field("effects", &self.effects.len())
            .finish_non_exhaustive()
    }
}

impl RuntimeBuilder {
    fn new(config: RuntimeConfig, clock: Arc<dyn Clock>) -> Self {
        RuntimeBuilder {
            config,
            clock,
            specs: Vec::new(),
            effects: Vec::new(),
        }
    }

    /// The embedded sled store in `dir` (created if missing). The default, in
    /// [`DEFAULT_DATA_DIR`].
    pub fn sled(mut self, dir: impl AsRef<Path>) -> Self {
        self.config.store = StoreChoice::Sled(dir.as_ref().to_owned());
        self
    }

    /// The store at `choice` (a [`StoreChoice`], e.g. parsed from `postgres://…` with
    /// feature `postgres`).
    pub fn store(mut self, choice: StoreChoice) -> Self {
        self.config.store = choice;
        self
    }

    /// The in-memory store: nothing survives the process.
    pub fn memory(mut self) -> Self {
        self.config.store = StoreChoice::Memory;
        self
    }

    /// Every setting at once.
    pub fn config(mut self, config: RuntimeConfig) -> Self {
        self.config = config;
        self
    }

    /// The clock (tests pass a `ManualClock`; moving it wakes the timer thread).
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Registers a workflow spec before anything runs.
    pub fn register(mut self, spec: WorkflowSpec) -> Self {
        self.specs.push(spec);
        self
    }

    /// Registers a custom effect handler before anything runs.
    pub fn register_effect(
        mut self,
        kind: impl Into<String>,
        handler: impl EffectHandler + 'static,
    ) -> Self {
        let kind = kind.into();
        self.effects.push(Box::new(move |engine: &Engine| {
            engine.register_effect(kind, handler)
        }));
        self
    }

    /// Registers the agent effects (`llm_call`, `tool_calls`) as `config` says (feature
    /// `agent`).
    #[cfg(feature = "agent")]
    pub fn agent(self, config: &crate::agent::AgentConfig) -> Self {
        let (llm, tools) = config.handlers();
        self.register_effect(crate::agent::LLM_CALL, llm)
            .register_effect(crate::agent::TOOL_CALLS, tools)
    }

    /// Opens the store, registers everything, and starts the scheduler's threads.
    pub fn start(self) -> Result<ScheduledRuntime, Error> {
        let config = self.config;
        let store = open_store(
            &config.store,
            OpenMode::CreateOrOpen,
            config.limits,
            config.sled,
        )
        .map_err(ledgerflow_kernel::Error::from)?;
        let engine = Arc::new(Engine::with_config(store, self.clock, config.engine));
        for spec in self.specs {
            engine.register(spec);
        }
        for register in self.effects {
            register(&engine)?;
        }
        let scheduler = Scheduler::start(engine, config.scheduler)?;
        Ok(ScheduledRuntime {
            scheduler,
            store: config.store,
        })
    }
}

impl std::ops::Deref for ScheduledRuntime {
    type Target = Scheduler;

    fn deref(&self) -> &Scheduler {
        &self.scheduler
    }
}
