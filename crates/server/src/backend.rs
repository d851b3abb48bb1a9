//! What the server serves: an application's live scheduler (embedded), or a store no
//! application holds (standalone), and the operator actions on either.

use std::ops::Deref;
use std::sync::Arc;

use ledgerflow_kernel::{CancelOutcome, Delivered, Engine, RunId, RunState, WorkflowKey};
use ledgerflow_scheduler::Scheduler;
use serde_json::Value;

use crate::error::{ApiError, ApiResult};

/// The application's scheduler, held by whatever derefs to it (`Arc<ScheduledRuntime>`).
pub type LiveScheduler = Arc<dyn Deref<Target = Scheduler> + Send + Sync>;

/// What the server works on.
#[derive(Clone)]
pub enum Backend {
    /// An application's scheduler, mounted in its process: actions go through the
    /// scheduler, whose workers carry runs on with the application's workflow code.
    Live(LiveScheduler),
    /// A store no application holds: the server records resumptions and operator actions
    /// (the engine runs no steps, as the command line does); the application that has the
    /// workflow code carries the runs on when it next opens the store. Starting runs is
    /// not supported.
    Store(Arc<Engine>),
}

impl Backend {
    /// The live scheduler of an application.
    pub fn live<R>(runtime: Arc<R>) -> Backend
    where
        R: Deref<Target = Scheduler> + Send + Sync + 'static,
    {
        Backend::Live(runtime)
    }

    /// A store no application holds, opened by the caller. The engine should run no
    /// steps (`EngineConfig::steps_per_tick_max = 0`): the server has no workflow code.
    pub fn store(engine: Arc<Engine>) -> Backend {
        Backend::Store(engine)
    }

    /// The engine, for reads.
    pub fn engine(&self) -> &Engine {
        match self {
            Backend::Live(s) => s.engine(),
            Backend::Store(e) => e,
        }
    }

    /// `live` or `store`.
    pub fn mode(&self) -> &'static str {
        match self {
            Backend::Live(_) => "live",
            Backend::Store(_) => "store",
        }
    }

    /// The scheduler, when there is one.
    pub fn scheduler(&self) -> Option<&Scheduler> {
        match self {
            Backend::Live(s) => Some(s),
            Backend::Store(_) => None,
        }
    }

    /// Starts a run of a registered workflow (live only).
    pub fn start(&self, workflow: WorkflowKey, input: Value) -> ApiResult<RunState> {
        match self {
            Backend::Live(s) => Ok(s.run(workflow, input)?),
            Backend::Store(_) => Err(ApiError::new(
                axum::http::StatusCode::CONFLICT,
                "not_supported",
                "this server holds a store, not an application: it has no workflow code to \
                 start runs with; start runs through the application's server",
            )),
        }
    }

    /// Answers what the run waits for, recording `by`.
    pub fn respond(&self, run: RunId, payload: Value, by: Option<&str>) -> ApiResult<RunState> {
        Ok(match self {
            Backend::Live(s) => s.respond_by(run, payload, by)?,
            Backend::Store(e) => e.respond_by(run, payload, by)?,
        })
    }

    /// Delivers an event to a wait key, recording `by` when it resumes a run.
    pub fn deliver(&self, key: &str, payload: Value, by: Option<&str>) -> ApiResult<Delivered> {
        Ok(match self {
            Backend::Live(s) => s.deliver_by(key, payload, by)?,
            Backend::Store(e) => e.deliver_with(key, payload, by, |_| ())?,
        })
    }

    /// Pauses the run, recording `by`.
    pub fn pause(&self, run: RunId, by: Option<&str>) -> ApiResult<RunState> {
        Ok(match self {
            Backend::Live(s) => s.pause_by(run, by)?,
            Backend::Store(e) => e.pause_by(run, by)?,
        })
    }

    /// Unpauses the run, recording `by`.
    pub fn unpause(&self, run: RunId, by: Option<&str>) -> ApiResult<RunState> {
        Ok(match self {
            Backend::Live(s) => s.unpause_by(run, by)?,
            Backend::Store(e) => e.unpause_by(run, by)?,
        })
    }

    /// Cancels the run and its descendants, recording `by`.
    pub fn cancel(&self, run: RunId, reason: &str, by: Option<&str>) -> ApiResult<CancelOutcome> {
        Ok(match self {
            Backend::Live(s) => s.cancel_by(run, reason, by)?,
            Backend::Store(e) => {
                // The scheduler's default bound on a cascade, for the same refusal.
                let max = ledgerflow_scheduler::SchedulerConfig::default().cascade_runs_max;
                e.cancel_cascade_with(run, reason, by, max, |_| ())?.root
            }
        })
    }

    /// Forks the run at `seq`; the new run is handed to the workers when live.
    pub fn fork(&self, run: RunId, seq: u64) -> ApiResult<RunId> {
        let fork = self.engine().fork(run, seq)?;
        if let Backend::Live(s) = self {
            s.enqueue(fork)?;
        }
        Ok(fork)
    }
}
