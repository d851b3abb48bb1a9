//! History: a run's state at a seq, forks and their lineage, and verifying a run
//! against its ledger.

use super::*;

impl Engine {
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
    ///
    /// ```
    /// # use std::sync::Arc;
    /// # use ledgerflow_kernel::{Effect, Engine, ManualClock, MemoryStore, RunStatus, StepContext, StepPlan, WorkflowSpec};
    /// # use serde_json::json;
    /// # let engine = Engine::new(Arc::new(MemoryStore::new()), Arc::new(ManualClock::new(0)));
    /// # engine.register(
    /// #     WorkflowSpec::builder("pay", 1)
    /// #         .node("wait", |_: &mut StepContext<'_>| {
    /// #             StepPlan::effect(Effect::wait_event("invoice-7").result_key("paid")).then_next("done")
    /// #         })
    /// #         .node("done", |ctx: &mut StepContext<'_>| StepPlan::complete(ctx.var("paid").cloned().unwrap_or_default()))
    /// #         .entry("wait")
    /// #         .build()
    /// #         .expect("the entry node exists"),
    /// # );
    /// let run = engine.run(("pay", 1), json!({}))?.run_id; // waits on "invoice-7"
    /// let fork = engine.fork(run, 2)?;                     // from the `waiting` record
    /// let waiting = engine.tick(fork)?;
    /// let key = waiting.waiting.and_then(|w| w.wait_key).expect("the fork waits too");
    /// assert_eq!(key, format!("fork:{fork}:invoice-7"));
    /// assert_eq!(engine.verify_lineage(fork)?, (run, 2));
    /// # Ok::<(), ledgerflow_kernel::Error>(())
    /// ```
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
