//! ledgerflow's scheduler: worker threads that tick runs, a timer thread that fires due
//! `wait_until` timers from the store's timer index (sleeping until the next one, never
//! polling), event delivery through the durable inbox, and operator control (pause,
//! unpause, cancel with cascade to child runs, await).
//!
//! ```
//! use std::sync::Arc;
//! use std::time::Duration;
//! use ledgerflow_kernel::{Effect, Engine, ManualClock, MemoryStore, RunStatus, StepContext, StepPlan, WorkflowSpec};
//! use ledgerflow_scheduler::{Scheduler, SchedulerConfig};
//! use serde_json::json;
//!
//! let clock = ManualClock::new(0);
//! let engine = Arc::new(Engine::new(Arc::new(MemoryStore::new()), Arc::new(clock.clone())));
//! engine.register(
//!     WorkflowSpec::builder("nap", 1)
//!         .node("sleep", |_: &mut StepContext<'_>| StepPlan::effect(Effect::wait_until(1_000)).then_next("done"))
//!         .node("done", |_: &mut StepContext<'_>| StepPlan::complete(json!("rested")))
//!         .entry("sleep")
//!         .build()?,
//! );
//! let scheduler = Scheduler::start(Arc::clone(&engine), SchedulerConfig::default())?;
//! let run = scheduler.run(("nap", 1), json!({}))?;
//! assert_eq!(run.status, RunStatus::Waiting);
//! clock.set_ms(1_000);
//! scheduler.wake(); // the manual clock moved: look at the timers again
//! let done = scheduler.await_end(run.run_id, Duration::from_secs(10))?;
//! assert_eq!(done.output, Some(json!("rested")));
//! scheduler.stop();
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod scheduler;
mod system_clock;

pub use ledgerflow_kernel::{WorkflowKey, WorkflowRegistry};
pub use scheduler::{Error, Scheduler, SchedulerConfig, Stats};
pub use system_clock::SystemClock;
