//! Committing steps: what a step is, the steps a tick carries to its next commit, the
//! commit itself (inbox and wait-key races), and the one rule for failures after a
//! call's own commit.

use super::*;

/// Events of one step, plus inbox changes and a key to drain after committing.
pub(super) struct Step {
    pub(super) events: Vec<Event>,
    pub(super) inbox: Vec<IndexChange>,
    pub(super) emitted_to: Option<String>,
    /// Child runs this step starts: each child's `started` step, committed before the
    /// step (after the steps carried before it, which the child's parent link cites);
    /// the children are driven once the step is committed.
    pub(super) children: Vec<(RunId, Step)>,
    /// Values the events hold by reference: written just before the commit of the step.
    pub(super) artifacts: Vec<NewArtifact>,
}

impl Step {
    pub(super) fn of(event: Event) -> Self {
        Step {
            events: vec![event],
            inbox: Vec::new(),
            emitted_to: None,
            children: Vec::new(),
            artifacts: Vec::new(),
        }
    }

    /// The step with the artifacts its values were offloaded to.
    pub(super) fn with_artifacts(mut self, artifacts: Vec<NewArtifact>) -> Self {
        self.artifacts.extend(artifacts);
        self
    }

    /// A step of no events: what commits the steps a run carries and nothing more.
    pub(super) fn none() -> Self {
        Step {
            events: Vec::new(),
            inbox: Vec::new(),
            emitted_to: None,
            children: Vec::new(),
            artifacts: Vec::new(),
        }
    }

    /// Whether nothing outside the run depends on this step being durable before the
    /// next one is planned: a node that moved on, or an effect's completion (the effect
    /// ran; a crash before the commit runs it again with the same idempotency key, as a
    /// crash just after it ran always could). Waits, ends, effect requests, children and
    /// emitted events are committed before anything follows them.
    pub(super) fn stays_inside(&self) -> bool {
        self.inbox.is_empty()
            && self.emitted_to.is_none()
            && self.children.is_empty()
            && self
                .events
                .iter()
                .all(|e| matches!(e, Event::Advanced { .. } | Event::EffectCompleted { .. }))
    }
}

/// Steps of a run folded onto its committed state but not committed yet: sealed records
/// (each hashed once, here) that the next commit writes before its own.
pub(super) struct Carried {
    /// The state after the carried records.
    pub(super) state: RunState,
    pub(super) records: Vec<Record>,
    /// Index changes the carried steps made (an inbox entry a resume consumed).
    pub(super) inbox: Vec<IndexChange>,
    /// Artifacts the carried records cite, written before their commit.
    pub(super) artifacts: Vec<NewArtifact>,
}

/// A run being driven: the state the store holds and the steps carried past it.
pub(super) struct Driven {
    pub(super) run_id: RunId,
    /// `None` for a run whose start is carried.
    pub(super) base: Option<RunState>,
    pub(super) carried: Option<Carried>,
    /// Whether this call has committed a change to the run already.
    pub(super) committed: bool,
}

impl Driven {
    /// The run's state with the carried steps applied: what the next step is planned on.
    pub(super) fn state(&self) -> Option<&RunState> {
        self.carried
            .as_ref()
            .map(|c| &c.state)
            .or(self.base.as_ref())
    }

    /// The seq of the state the store holds (0 before the run's first commit).
    pub(super) fn base_seq(&self) -> u64 {
        self.base.as_ref().map_or(0, |s| s.head.seq)
    }

    /// The artifacts the carried steps planned: what a value they hold by reference reads
    /// from until they are committed.
    pub(super) fn carried_artifacts(&self) -> &[NewArtifact] {
        self.carried.as_ref().map_or(&[], |c| &c.artifacts)
    }

    /// How many records the run carries.
    pub(super) fn carried_records(&self) -> usize {
        self.carried.as_ref().map_or(0, |c| c.records.len())
    }

    /// Folds `step`, taken at `at_ms`, onto the run's state and carries it to the next
    /// commit.
    pub(super) fn carry(&mut self, step: Step, at_ms: i64) -> Result<(), String> {
        let (state, records) = append(self.state(), self.run_id, &step.events, at_ms)?;
        match &mut self.carried {
            Some(carried) => {
                carried.state = state;
                carried.records.extend(records);
                carried.inbox.extend(step.inbox);
                carried.artifacts.extend(step.artifacts);
            }
            None => {
                self.carried = Some(Carried {
                    state,
                    records,
                    inbox: step.inbox,
                    artifacts: step.artifacts,
                })
            }
        }
        Ok(())
    }
}

/// How many times a commit is retried when the inbox of the key it waits on fills
/// between reading it and committing. Each retry consumes an event, so 3 is plenty.
pub(super) const INBOX_RACE_RETRIES: usize = 3;

/// The key the last of `events` leaves the run waiting on, if any. A synchronous child's
/// start is a wait too: on the key its result is queued to, which may already hold it (a
/// worker can run the child to its end before the parent's step is committed).
pub(super) fn waits_on_key(events: &[Event]) -> Option<String> {
    match events.last()? {
        Event::Waiting { wait, .. } => wait.wait_key.clone(),
        Event::EffectWaiting { wait_key, .. } => Some(wait_key.clone()),
        Event::SubworkflowStarted {
            child_run_id,
            mode: SubworkflowMode::Sync,
            ..
        } => Some(wait_keys::child(*child_run_id)),
        _ => None,
    }
}

/// The failure to record instead of a wait on a key another run holds.
pub(super) fn wait_key_failure(events: &[Event], message: String) -> Event {
    let failure = RunFailure {
        code: FailureCode::WaitKeyInUse,
        message: message.clone(),
    };
    match events.first() {
        Some(Event::Waiting { node, vars, .. }) => Event::Failed {
            node: Some(node.clone()),
            vars: vars.clone(),
            failure,
        },
        Some(Event::EffectWaiting {
            idempotency_key, ..
        }) => Event::EffectFailed {
            idempotency_key: idempotency_key.clone(),
            error: message,
            retryable: false,
        },
        _ => Event::Failed {
            node: None,
            vars: None,
            failure,
        },
    }
}

impl Engine {
    /// Commits the steps `run` carries, if any; the run's state after them.
    pub(super) fn flush(&self, mut run: Driven) -> Result<RunState, Error> {
        let Some(carried) = run.carried.take() else {
            return run.base.ok_or(Error::Internal(format!(
                "run {} driven with no state and no start",
                run.run_id
            )));
        };
        self.commit(run.base.as_ref(), run.run_id, Some(carried), Step::none())
            .or_else(|e| self.after_commit(run.committed, run.run_id, run.base_seq(), e))
    }

    /// Commits the steps `run` carries, if any, and goes on driving it from there.
    pub(super) fn commit_carried(&self, run: Driven) -> Result<Driven, Error> {
        if run.carried.is_none() {
            return Ok(run);
        }
        let run_id = run.run_id;
        Ok(Driven {
            run_id,
            base: Some(self.flush(run)?),
            carried: None,
            committed: true,
        })
    }

    /// A failure while driving `run`: the steps it carries are committed first (an
    /// effect that ran, a resume), then the failure is answered as [`Engine::after_commit`]
    /// says.
    pub(super) fn fail_driven(&self, run: Driven, e: Error) -> Result<RunState, Error> {
        let committed = run.committed || run.carried.is_some();
        let state = self.flush(run)?;
        self.after_commit(committed, state.run_id, state.head.seq, e)
    }

    /// What a failure inside [`Engine::drive`] means for its caller. Before the call's
    /// first commit it is the call's error. After it, a conflict means another owner is
    /// advancing the run, so the latest state is the answer; any other failure is
    /// [`Error::AfterCommit`], so the caller knows its change stands and must not repeat it.
    /// `seq` is the run's head as this call last committed it.
    pub(super) fn after_commit(
        &self,
        committed: bool,
        run_id: RunId,
        seq: u64,
        e: Error,
    ) -> Result<RunState, Error> {
        if !committed {
            return Err(e);
        }
        if e.is_conflict() {
            return self.load(run_id);
        }
        Err(Error::AfterCommit {
            run_id,
            seq,
            source: Box::new(e),
        })
    }

    /// Commits a step, after the steps `carried` past `old` (the state the store holds).
    /// If the step leaves the run waiting on a key whose inbox holds an event, the oldest
    /// event is consumed in the same commit. If another run holds the key, the run fails
    /// instead.
    ///
    /// The artifacts the steps cite are written first. They are content-addressed and
    /// written idempotently, so a crash or a lost race between them and the commit leaves
    /// only bytes nothing cites (the next attempt writes the same ones again), never a
    /// reference without its bytes.
    pub(super) fn commit(
        &self,
        old: Option<&RunState>,
        run_id: RunId,
        carried: Option<Carried>,
        mut step: Step,
    ) -> Result<RunState, Error> {
        let (from, carried_records, carried_inbox) = match carried {
            Some(c) => {
                self.put_artifacts(&c.artifacts)?;
                (Some(c.state), c.records, c.inbox)
            }
            None => (old.cloned(), Vec::new(), Vec::new()),
        };
        self.put_artifacts(&step.artifacts)?;
        for _ in 0..INBOX_RACE_RETRIES {
            let now_ms = self.clock.now_ms();
            let mut events = step.events.clone();
            let mut index = carried_inbox.clone();
            index.extend(step.inbox.iter().cloned());
            if let Some(wait_key) = waits_on_key(&events) {
                // The oldest entry this commit does not consume already: a resume carried
                // into it may have taken the one at the front.
                let taken: Vec<u64> = index
                    .iter()
                    .filter_map(|change| match change {
                        IndexChange::InboxConsume { wait_key: key, seq } if *key == wait_key => {
                            Some(*seq)
                        }
                        _ => None,
                    })
                    .collect();
                let queued = self.store.inbox(&wait_key, taken.len() + 1)?;
                if let Some(entry) = queued.into_iter().find(|e| !taken.contains(&e.seq)) {
                    index.push(IndexChange::InboxConsume {
                        wait_key: wait_key.clone(),
                        seq: entry.seq,
                    });
                    events.push(Event::Resumed {
                        wait_key,
                        payload: entry.payload,
                        inbox_seq: Some(entry.seq),
                        by: None,
                    });
                }
            }
            let mut records = carried_records.clone();
            let new = match (&from, events.is_empty()) {
                (Some(state), true) => state.clone(),
                (_, _) => {
                    let (new, own) =
                        append(from.as_ref(), run_id, &events, now_ms).map_err(Error::Internal)?;
                    records.extend(own);
                    new
                }
            };
            let notify_parent = self.parent_notice(old, &new)?;
            if let Some((wait_key, result)) = &notify_parent {
                index.push(IndexChange::InboxPush {
                    wait_key: wait_key.clone(),
                    payload: result.clone(),
                });
            }
            let mut commit = Commit::between(old, new.clone(), records, now_ms).sealed_by_fold();
            commit.index.extend(index);
            let span = tracing::info_span!(
                "commit",
                %run_id,
                seq = new.head.seq,
                records = commit.records.len(),
            );
            match span.in_scope(|| self.store.commit(commit)) {
                Ok(()) => {
                    let observers = self
                        .observers
                        .read()
                        .unwrap_or_else(|p| p.into_inner())
                        .clone();
                    for observer in observers {
                        observer(&new);
                    }
                    if let Some((wait_key, _)) = notify_parent {
                        self.wake_waiter(&wait_key);
                    }
                    return Ok(new);
                }
                Err(store::Error::InboxNotEmpty { .. }) => continue,
                Err(store::Error::WaitKeyTaken { wait_key, holder }) => {
                    let message =
                        format!("wait_key {wait_key:?} is already waited on by run {holder}");
                    step = Step::of(wait_key_failure(&step.events, message));
                }
                Err(e) => return Err(e.into()),
            }
        }
        Err(Error::Store(store::Error::Conflict {
            run_id,
            expected_seq: old.map_or(0, |s| s.head.seq),
            actual_seq: self.store.load(run_id)?.map_or(0, |s| s.head.seq),
        }))
    }

    /// When `new` ends a synchronous child, the parent's wait_key and the child's result,
    /// to be queued in the same commit. Skipped when the parent has already ended.
    pub(super) fn parent_notice(
        &self,
        old: Option<&RunState>,
        new: &RunState,
    ) -> Result<Option<(String, Value)>, Error> {
        let ended_now = new.status.is_terminal() && !old.is_some_and(|o| o.status.is_terminal());
        let Some(link) = new.parent.as_ref().filter(|_| ended_now) else {
            return Ok(None);
        };
        let (Some(wait_key), Some(result)) = (link.wait_key.clone(), new.child_result()) else {
            return Ok(None);
        };
        let parent_ended = self
            .store
            .load(link.run_id)?
            .is_none_or(|p| p.status.is_terminal());
        Ok((!parent_ended).then_some((wait_key, result)))
    }
}
