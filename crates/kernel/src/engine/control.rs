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

impl Engine {
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
}
