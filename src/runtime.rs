//! `ScheduledRuntime`: the zero-config facade. Opens the embedded sled store (or a memory
//! store), starts the scheduler with the system clock, and stops both cleanly.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use ledgerflow_kernel::{Clock, Engine, EngineConfig, MemoryStore, Store, WorkflowSpec};
use ledgerflow_scheduler::{Error, Scheduler, SchedulerConfig};
use ledgerflow_sled::{SledConfig, SledStore};

use crate::SystemClock;

/// The directory [`ScheduledRuntime::open_default`] uses: `./ledgerflow-data`.
pub const DEFAULT_DATA_DIR: &str = "ledgerflow-data";

/// Where a runtime keeps its data.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StoreChoice {
    /// The embedded sled store in this directory (created if missing).
    Sled(PathBuf),
    /// The in-memory store: nothing survives the process.
    Memory,
}

/// Everything a runtime can be configured with; every field has a default.
#[derive(Clone, Debug)]
pub struct RuntimeConfig {
    /// Where data lives. Default: sled in [`DEFAULT_DATA_DIR`].
    pub store: StoreChoice,
    /// The sled store's settings (durability `Sync` by default).
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
            sled: SledConfig::default(),
            engine: EngineConfig::default(),
            scheduler: SchedulerConfig::default(),
        }
    }
}

/// A store, an engine and a running scheduler in one value. Derefs to the [`Scheduler`],
/// whose methods (`run`, `respond`, `deliver`, `await_run`, `pause`, `cancel`, `stats`,
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
    sled: Option<Arc<SledStore>>,
}

impl std::fmt::Debug for ScheduledRuntime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScheduledRuntime")
            .field("sled", &self.sled)
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
    pub fn with_config(config: RuntimeConfig, clock: Arc<dyn Clock>) -> Result<Self, Error> {
        let (store, sled): (Arc<dyn Store>, Option<Arc<SledStore>>) = match &config.store {
            StoreChoice::Memory => (Arc::new(MemoryStore::with_limits(config.sled.limits)), None),
            StoreChoice::Sled(dir) => {
                let sled = Arc::new(
                    SledStore::open_with(dir, config.sled)
                        .map_err(ledgerflow_kernel::Error::from)?,
                );
                (Arc::clone(&sled) as Arc<dyn Store>, Some(sled))
            }
        };
        let engine = Arc::new(Engine::with_config(store, clock, config.engine));
        let scheduler = Scheduler::start(engine, config.scheduler)?;
        Ok(ScheduledRuntime { scheduler, sled })
    }

    /// Registers a workflow spec under its (id, version).
    pub fn register(&self, spec: WorkflowSpec) -> Arc<WorkflowSpec> {
        self.scheduler.engine().register(spec)
    }

    /// The sled store, when the runtime uses one (for snapshots, artifacts, `check`).
    pub fn sled(&self) -> Option<&Arc<SledStore>> {
        self.sled.as_ref()
    }

    /// Drains the scheduler, stops its threads, and makes everything durable. The data
    /// stays readable through the engine; further work is refused.
    pub fn stop(&self) -> Result<(), Error> {
        self.scheduler.stop();
        if let Some(sled) = &self.sled {
            sled.close().map_err(ledgerflow_kernel::Error::from)?;
        }
        Ok(())
    }
}

impl std::ops::Deref for ScheduledRuntime {
    type Target = Scheduler;

    fn deref(&self) -> &Scheduler {
        &self.scheduler
    }
}
