//! The step loop: starting runs, `tick` and `advance`, the step budget, and running a
//! node's handler into a step.

use super::*;

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

impl Engine {
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
        let started = self.started_step(run_id, workflow.into(), input, None)?;
        self.drive_from(run_id, None, Some(started))
    }

    pub(super) fn start_inner(
        &self,
        workflow: WorkflowKey,
        input: Value,
        parent: Option<ParentLink>,
    ) -> Result<RunId, Error> {
        let run_id = RunId::new_v4();
        self.start_with_id(run_id, workflow, input, parent)?;
        Ok(run_id)
    }

    pub(super) fn start_with_id(
        &self,
        run_id: RunId,
        workflow: WorkflowKey,
        input: Value,
        parent: Option<ParentLink>,
    ) -> Result<(), Error> {
        let started = self.started_step(run_id, workflow, input, parent)?;
        self.commit(None, run_id, None, started)?;
        Ok(())
    }

    /// The step that starts a new run: its `started` event, with the workflow checked,
    /// the input checked and its large values offloaded as artifacts.
    pub(super) fn started_step(
        &self,
        run_id: RunId,
        workflow: WorkflowKey,
        input: Value,
        parent: Option<ParentLink>,
    ) -> Result<Step, Error> {
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
        let mut artifacts = Vec::new();
        let vars = vars
            .into_iter()
            .map(|(key, value)| {
                let what = format!("input var {key:?}");
                Ok((
                    key,
                    self.offload(Some(run_id), value, &what, &mut artifacts)?,
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
        Ok(Step::of(event).with_artifacts(artifacts))
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
    pub(super) fn drive(&self, state: RunState, first: Option<Step>) -> Result<RunState, Error> {
        self.drive_from(state.run_id, Some(state), first)
    }

    /// [`Engine::drive`] from `base`, the state the store holds (`None` for a run whose
    /// `first` step is its start).
    pub(super) fn drive_from(
        &self,
        run_id: RunId,
        base: Option<RunState>,
        first: Option<Step>,
    ) -> Result<RunState, Error> {
        let _tick = tracing::info_span!("tick", %run_id).entered();
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
            let _step = tracing::debug_span!(
                "step",
                %run_id,
                seq = state.head.seq,
                node = state.node.as_deref().unwrap_or(""),
            )
            .entered();
            let planned = run.carried_artifacts();
            let step = match &state.pending_effect {
                Some(_) => self.run_pending_effect(state, planned),
                None => self.next_step(&spec, state, planned),
            };
            let mut step = match step {
                Ok(step) => step,
                Err(e) => return self.fail_driven(run, e),
            };
            if step.stays_inside() {
                if let Err(e) = run.carry(step, self.clock.now_ms()) {
                    return self.fail_driven(run, Error::Internal(e));
                }
                if run.carried_records() >= self.config.records_per_commit_max as usize {
                    run = self.commit_carried(run)?;
                }
                continue;
            }
            let emitted_to = step.emitted_to.clone();
            if !step.children.is_empty() {
                // A child's parent link cites the record before this step: commit what is
                // carried first, so the child never cites a record that is not stored.
                run = self.commit_carried(run)?;
                for (child, started) in step.children.drain(..) {
                    if let Err(e) = self.commit_child(child, started) {
                        return self.after_commit(run.committed, run_id, run.base_seq(), e);
                    }
                    children.push(child);
                }
            }
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

    /// The run's next step: runs the current node's handler and turns its plan into a
    /// [`Step`] — the events, the index changes, the artifacts to write and the children
    /// to start. Reads the run's values (through `planned`, the artifacts of the steps
    /// carried before it, then the store) but writes nothing: the driver persists the
    /// step, or drops it and nothing happened.
    pub(super) fn next_step(
        &self,
        spec: &WorkflowSpec,
        state: &RunState,
        planned: &[NewArtifact],
    ) -> Result<Step, Error> {
        let mut artifacts = Vec::new();
        let step = self.plan_node(spec, state, planned, &mut artifacts)?;
        Ok(step.with_artifacts(artifacts))
    }

    /// [`Engine::next_step`] with the artifacts its values were offloaded to collected in
    /// `artifacts`.
    fn plan_node(
        &self,
        spec: &WorkflowSpec,
        state: &RunState,
        planned: &[NewArtifact],
        artifacts: &mut Vec<NewArtifact>,
    ) -> Result<Step, Error> {
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
        let before = self.resolve_vars(&state.vars, &[planned])?;
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
        let vars = match self.offload_vars(state, &before, vars, artifacts) {
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
        let plan = match self.offload_plan(Some(state.run_id), plan, artifacts) {
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
                let known = [planned, artifacts.as_slice()];
                match self.plan_effect(state, &node, change.clone(), effect, then, &known)? {
                    Ok(step) => step,
                    Err((code, message)) => fail(change, code, message),
                }
            }
        })
    }
}
