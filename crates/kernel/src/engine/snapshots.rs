//! Snapshots (bookmarks) through the engine: made at a run's head with the clock's time,
//! read back, listed, and replayed to the state they mark.

use super::*;
use crate::{Snapshot, SnapshotFilter};

impl Engine {
    /// Bookmarks the run at its current ledger head under `name` (unique within the run),
    /// with a description and tags to search by. Returns the stored snapshot.
    ///
    /// ```
    /// # use std::sync::Arc;
    /// # use ledgerflow_kernel::{Effect, Engine, ManualClock, MemoryStore, StepContext, StepPlan, WorkflowSpec};
    /// # use serde_json::json;
    /// # let engine = Engine::new(Arc::new(MemoryStore::new()), Arc::new(ManualClock::new(0)));
    /// # engine.register(
    /// #     WorkflowSpec::builder("review", 1)
    /// #         .node("ask", |_: &mut StepContext<'_>| {
    /// #             StepPlan::effect(Effect::ask_user("Approve?", &["yes", "no"]).result_key("answer")).then_complete(json!("done"))
    /// #         })
    /// #         .entry("ask")
    /// #         .build()
    /// #         .expect("the entry node exists"),
    /// # );
    /// let run = engine.run(("review", 1), json!({}))?.run_id; // waits for a person
    /// let snapshot = engine.create_snapshot(run, "before-approval", "", &["review"])?;
    /// engine.respond(run, json!("yes"))?;
    /// let then = engine.snapshot_state(run, "before-approval")?;
    /// assert_eq!(then.head.seq, snapshot.seq);
    /// let fork = engine.fork(run, snapshot.seq)?; // try again from there
    /// # let _ = fork;
    /// # Ok::<(), ledgerflow_kernel::Error>(())
    /// ```
    pub fn create_snapshot(
        &self,
        run_id: RunId,
        name: &str,
        description: &str,
        tags: &[&str],
    ) -> Result<Snapshot, Error> {
        let state = self.load(run_id)?;
        let snapshot = Snapshot {
            run_id,
            name: name.to_owned(),
            seq: state.head.seq,
            record_hash: state.head.hash,
            description: description.to_owned(),
            tags: tags.iter().map(|t| (*t).to_owned()).collect(),
            created_at_ms: self.clock.now_ms(),
        };
        self.store.create_snapshot(&snapshot)?;
        Ok(snapshot)
    }

    /// The run's snapshot named `name` ([`store::Error::NotFound`] if there is none).
    pub fn snapshot(&self, run_id: RunId, name: &str) -> Result<Snapshot, Error> {
        self.store.snapshot(run_id, name)?.ok_or_else(|| {
            Error::Store(store::Error::NotFound(format!(
                "snapshot {name:?} of run {run_id}"
            )))
        })
    }

    /// Up to `limit` snapshots matching `filter`, by run then name.
    pub fn list_snapshots(
        &self,
        filter: &SnapshotFilter,
        limit: usize,
    ) -> Result<Vec<Snapshot>, Error> {
        Ok(self.store.list_snapshots(filter, limit)?)
    }

    /// The run's state as it was at the snapshot, by replaying its ledger up to the
    /// snapshot's seq; the record there must have the hash the snapshot recorded.
    pub fn snapshot_state(&self, run_id: RunId, name: &str) -> Result<RunState, Error> {
        let snapshot = self.snapshot(run_id, name)?;
        let state = self.state_at(run_id, snapshot.seq)?;
        if state.head.hash != snapshot.record_hash {
            return Err(Error::Store(store::Error::Corrupt(format!(
                "snapshot {name:?} of run {run_id}: record {} hash differs from the snapshot's",
                snapshot.seq
            ))));
        }
        Ok(state)
    }
}
