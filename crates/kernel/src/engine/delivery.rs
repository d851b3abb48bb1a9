//! Ending waits: resumes, `respond`, timers, `deliver` and inbox drains — the one place
//! that decides whether an event was consumed.

use super::*;

/// What `deliver` did with an event.
#[derive(Clone, Debug, PartialEq)]
pub enum Delivered {
    /// A run waited on the key and was resumed; its state after resuming.
    Resumed(Box<RunState>),
    /// No run waited; the event is queued in the key's inbox at this seq.
    Queued(u64),
}

/// How many times `deliver` retries after losing a race with another resumer.
pub(super) const DELIVER_RETRIES: usize = 8;

impl Engine {
    /// Ends a wait with `payload` delivered to `wait_key`, then ticks the run (unless it
    /// is paused). A key the run does not wait on is an error and changes nothing.
    pub fn resume(&self, run_id: RunId, wait_key: &str, payload: Value) -> Result<RunState, Error> {
        self.resume_by(run_id, wait_key, payload, None)
    }

    /// [`Engine::resume`], recording `by` (who delivered) in the `resumed` record.
    pub fn resume_by(
        &self,
        run_id: RunId,
        wait_key: &str,
        payload: Value,
        by: Option<&str>,
    ) -> Result<RunState, Error> {
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
        let mut artifacts = Vec::new();
        let payload = self.offload(Some(run_id), payload, "the resume payload", &mut artifacts)?;
        let event = Event::Resumed {
            wait_key: wait_key.to_owned(),
            payload,
            inbox_seq: None,
            by: by.map(str::to_owned),
        };
        self.drive(state, Some(Step::of(event).with_artifacts(artifacts)))
    }

    /// Answers what the run waits for — a person's answer (`ask_user`) or an event
    /// (`wait_event`) — with `payload`, finding the wait_key itself, then ticks it (see
    /// [`Engine::resume`]). Any other wait (a timer, a child workflow's result, an
    /// external job, a retry) is not an answer: [`Error::NotAnswerable`], naming what the
    /// run waits for, and nothing changes.
    pub fn respond(&self, run_id: RunId, payload: Value) -> Result<RunState, Error> {
        self.respond_by(run_id, payload, None)
    }

    /// [`Engine::respond`], recording `by` (who answered) in the `resumed` record.
    pub fn respond_by(
        &self,
        run_id: RunId,
        payload: Value,
        by: Option<&str>,
    ) -> Result<RunState, Error> {
        let state = self.load(run_id)?;
        let Some(key) = state.respond_key().map(str::to_owned) else {
            return Err(Error::NotAnswerable {
                run_id,
                status: state.status,
                waits_for: state.waits_for(),
            });
        };
        self.resume_by(run_id, &key, payload, by)
    }

    /// Fires the run's timer due at `due_at_ms`, then ticks it (unless paused). A timer
    /// that no longer matches the run's wait (already fired, run moved on) does nothing.
    pub fn fire_timer(&self, run_id: RunId, due_at_ms: i64) -> Result<RunState, Error> {
        let state = self.load(run_id)?;
        self.fire_timer_of(state, due_at_ms)
    }

    pub(super) fn fire_timer_of(&self, state: RunState, due_at_ms: i64) -> Result<RunState, Error> {
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
    /// use ledgerflow_kernel::Delivered;
    /// // Nobody waits on the key yet: the event is queued, and the run that waits on it
    /// // later consumes it in the commit of its wait.
    /// assert!(matches!(engine.deliver("invoice-7", json!(40))?, Delivered::Queued(1)));
    /// let state = engine.run(("pay", 1), json!({}))?;
    /// assert_eq!(state.output, Some(json!(40)));
    /// # Ok::<(), ledgerflow_kernel::Error>(())
    /// ```
    pub fn deliver(&self, wait_key: &str, payload: Value) -> Result<Delivered, Error> {
        self.deliver_with(wait_key, payload, None, |_| ())
    }

    /// [`Engine::deliver`], recording `by` in the `resumed` record when a waiting run is
    /// resumed (an event queued in the inbox keeps only its payload), and holding the value
    /// `claim(run_id)` returns while the waiting run is resumed: how a scheduler makes its
    /// delivery the run's one owner for that time.
    pub fn deliver_with<G>(
        &self,
        wait_key: &str,
        payload: Value,
        by: Option<&str>,
        claim: impl Fn(RunId) -> G,
    ) -> Result<Delivered, Error> {
        self.check_wait_key_len(wait_key)?;
        let mut artifacts = Vec::new();
        let payload = self.offload(None, payload, "the event payload", &mut artifacts)?;
        // Queued or handed to a waiter, the event cites its artifact: written first.
        self.put_artifacts(&artifacts)?;
        for _ in 0..DELIVER_RETRIES {
            match self
                .store
                .deliver(wait_key, payload.clone(), self.clock.now_ms())?
            {
                Delivery::Queued(seq) => return Ok(Delivered::Queued(seq)),
                Delivery::Waiter(run_id) => {
                    let _owner = claim(run_id);
                    match self.resume_by(run_id, wait_key, payload.clone(), by) {
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
    pub(super) fn wake_waiter(&self, wait_key: &str) {
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
    pub(super) fn consume_inbox(
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
            by: None,
        };
        let step = Step {
            events: vec![event],
            inbox: vec![IndexChange::InboxConsume {
                wait_key: wait_key.to_owned(),
                seq: entry.seq,
            }],
            emitted_to: None,
            children: Vec::new(),
            artifacts: Vec::new(),
        };
        self.drive(state, Some(step))
    }
}
