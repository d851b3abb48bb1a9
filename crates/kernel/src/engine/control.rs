//! Operator control: pause, unpause, cancel (idempotent), and the runs a cascade
//! reaches.

use super::*;

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

/// What a cascading cancel did (see [`Engine::cancel_cascade`]).
#[derive(Clone, Debug, PartialEq)]
pub struct CascadeOutcome {
    /// What cancelling the run itself did.
    pub root: CancelOutcome,
    /// The descendants this call cancelled (ones that had ended already are left out).
    pub children_cancelled: Vec<RunId>,
}

/// How many times a cancel is tried again after losing a race with a step of the run
/// (cancel is idempotent, so trying again is always right; each loss means the run moved
/// on, so a handful of tries is plenty).
const CANCEL_RETRIES: usize = 16;

impl Engine {
    /// Pauses the run: no step runs until [`Engine::unpause`]. Waits still end (their
    /// payload is recorded) but the run does not move on. Pausing a paused run does
    /// nothing; pausing an ended run is an error.
    pub fn pause(&self, run_id: RunId) -> Result<RunState, Error> {
        self.pause_by(run_id, None)
    }

    /// [`Engine::pause`], recording `by` (who asked: an operator's or token's name) in the
    /// `paused` record.
    pub fn pause_by(&self, run_id: RunId, by: Option<&str>) -> Result<RunState, Error> {
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
        self.commit(
            Some(&state),
            run_id,
            None,
            Step::of(Event::Paused {
                by: by.map(str::to_owned),
            }),
        )
    }

    /// Unpauses the run and ticks it. Unpausing a run that is not paused does nothing.
    pub fn unpause(&self, run_id: RunId) -> Result<RunState, Error> {
        self.unpause_by(run_id, None)
    }

    /// [`Engine::unpause`], recording `by` in the `unpaused` record.
    pub fn unpause_by(&self, run_id: RunId, by: Option<&str>) -> Result<RunState, Error> {
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
        self.drive(
            state,
            Some(Step::of(Event::Unpaused {
                by: by.map(str::to_owned),
            })),
        )
    }

    /// Cancels the run. Idempotent: cancelling an ended run (completed, failed or already
    /// cancelled) writes nothing and returns the record that ended it.
    pub fn cancel(&self, run_id: RunId, reason: &str) -> Result<CancelOutcome, Error> {
        self.cancel_by(run_id, reason, None)
    }

    /// [`Engine::cancel`], recording `by` in the `cancelled` record.
    pub fn cancel_by(
        &self,
        run_id: RunId,
        reason: &str,
        by: Option<&str>,
    ) -> Result<CancelOutcome, Error> {
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
            by: by.map(str::to_owned),
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

    /// Cancels the run and every descendant (children, their children, …), as an
    /// operator means it: the descendants are listed first (more than `runs_max` is
    /// `LimitExceeded` and nothing is cancelled), then the run is cancelled, then each
    /// descendant, parents before children, with the reason "parent run … cancelled:
    /// `reason`". Idempotent like [`Engine::cancel`]; a cancel that loses a race with a
    /// step of the run is tried again.
    ///
    /// ```
    /// # use std::sync::Arc;
    /// # use ledgerflow_kernel::{Effect, Engine, ManualClock, MemoryStore, RunStatus, StepContext, StepPlan, WorkflowSpec};
    /// # use serde_json::json;
    /// let engine = Engine::new(Arc::new(MemoryStore::new()), Arc::new(ManualClock::new(0)));
    /// engine.register(
    ///     WorkflowSpec::builder("wait", 1)
    ///         .node("w", |_: &mut StepContext<'_>| {
    ///             StepPlan::effect(Effect::wait_event("never")).then_next("w")
    ///         })
    ///         .entry("w")
    ///         .build()
    ///         .expect("the entry node exists"),
    /// );
    /// let run = engine.run(("wait", 1), json!({}))?.run_id;
    /// let outcome = engine.cancel_cascade(run, "duplicate", 1_000)?;
    /// assert_eq!(outcome.root.state.status, RunStatus::Cancelled);
    /// assert!(outcome.children_cancelled.is_empty());
    /// # Ok::<(), ledgerflow_kernel::Error>(())
    /// ```
    pub fn cancel_cascade(
        &self,
        run_id: RunId,
        reason: &str,
        runs_max: usize,
    ) -> Result<CascadeOutcome, Error> {
        self.cancel_cascade_with(run_id, reason, None, runs_max, |_| ())
    }

    /// [`Engine::cancel_cascade`], recording `by` in every `cancelled` record and holding
    /// the value `claim(run_id)` returns while each run is cancelled: how a scheduler is
    /// each run's one owner for its cancel.
    pub fn cancel_cascade_with<G>(
        &self,
        run_id: RunId,
        reason: &str,
        by: Option<&str>,
        runs_max: usize,
        claim: impl Fn(RunId) -> G,
    ) -> Result<CascadeOutcome, Error> {
        let descendants = self.descendants(run_id, runs_max)?;
        let cancel = |run: RunId, reason: &str| {
            let _owner = claim(run);
            let mut tries = 0;
            loop {
                match self.cancel_by(run, reason, by) {
                    Err(e) if e.is_conflict() && tries < CANCEL_RETRIES => tries += 1,
                    other => return other,
                }
            }
        };
        let root = cancel(run_id, reason)?;
        let child_reason = format!("parent run {run_id} cancelled: {reason}");
        let mut children_cancelled = Vec::new();
        for child in descendants {
            if cancel(child, &child_reason)?.changed {
                children_cancelled.push(child);
            }
        }
        Ok(CascadeOutcome {
            root,
            children_cancelled,
        })
    }
}
