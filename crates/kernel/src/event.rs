//! Ledger events and the fold that turns them into `RunState`: the one function used both
//! to advance a live run and to replay a ledger, so the two cannot disagree.

use ledgerflow_ledger::{ChainVerifier, Hash, Record, RecordDraft};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::state::{
    LedgerHead, ParentLink, PendingEffect, RunFailure, SubworkflowMode, WaitReason, WaitState,
};
use crate::{Continuation, Effect, RunId, RunState, RunStatus};

/// How a step changed the run's `vars`: an RFC 7386 JSON merge patch, or the whole new
/// `vars` when that is smaller or a patch cannot express the change (a `null` value).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VarsChange {
    /// Merge patch against the previous vars.
    Patch(Value),
    /// The new vars, whole.
    Set(Map<String, Value>),
}

/// One ledger record's meaning. The record `kind` is the variant name in snake_case and
/// the record `body` its fields (see `docs/ledger-format.md`, "Record kinds").
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(
    tag = "kind",
    content = "body",
    rename_all = "snake_case",
    deny_unknown_fields
)]
pub enum Event {
    /// A run began at `node` with `vars`.
    Started {
        /// The workflow.
        workflow_id: String,
        /// Its version.
        workflow_version: u32,
        /// The entry node.
        node: String,
        /// The input.
        vars: Map<String, Value>,
        /// The parent run, for a child run.
        parent: Option<ParentLink>,
    },
    /// A run forked from another run's state at a seq: the first record of the fork,
    /// citing the parent record's hash so the lineage can be verified.
    Forked {
        /// The run forked from.
        from_run_id: RunId,
        /// The seq forked at.
        from_seq: u64,
        /// The hash of the parent's record at that seq.
        from_record_hash: Hash,
        /// The workflow.
        workflow_id: String,
        /// Its version.
        workflow_version: u32,
        /// Running or waiting, as the parent was at that seq.
        status: RunStatus,
        /// The node.
        node: Option<String>,
        /// The vars.
        vars: Map<String, Value>,
        /// The wait (its wait_key made the fork's own).
        waiting: Option<Box<WaitState>>,
        /// A pending effect (with an idempotency key of the fork's own).
        pending_effect: Option<Box<PendingEffect>>,
    },
    /// `node` ran and chose `next`.
    Advanced {
        /// The node that ran.
        node: String,
        /// Its change to vars.
        vars: Option<VarsChange>,
        /// The node to run next.
        next: String,
    },
    /// `node` ran and the run now waits.
    Waiting {
        /// The node that ran.
        node: String,
        /// Its change to vars.
        vars: Option<VarsChange>,
        /// What the run waits for.
        wait: WaitState,
    },
    /// `node` ran and asked for a custom effect, which is about to be performed.
    EffectRequested {
        /// The node that ran.
        node: String,
        /// Its change to vars.
        vars: Option<VarsChange>,
        /// The effect.
        effect: Effect,
        /// Key handed to the effect handler.
        idempotency_key: String,
        /// Where the run goes after the effect.
        then: Continuation,
    },
    /// The pending effect finished with `result`.
    EffectCompleted {
        /// The effect's key.
        idempotency_key: String,
        /// Its result.
        result: Value,
    },
    /// The pending effect started a job; the run waits for its result on `wait_key`.
    EffectWaiting {
        /// The effect's key.
        idempotency_key: String,
        /// Where the result will be delivered.
        wait_key: String,
    },
    /// An attempt of the pending effect failed; the next one runs at `retry_at_ms`.
    EffectRetryScheduled {
        /// The effect's key.
        idempotency_key: String,
        /// The attempt that failed.
        attempt: u32,
        /// Its error.
        error: String,
        /// When the next attempt runs.
        retry_at_ms: i64,
    },
    /// The pending effect failed; the run fails.
    EffectFailed {
        /// The effect's key.
        idempotency_key: String,
        /// What went wrong.
        error: String,
        /// Whether the handler thought a retry could succeed.
        retryable: bool,
    },
    /// `node` ran and emitted an event to `wait_key`, queued in the same commit.
    EventEmitted {
        /// The node that ran.
        node: String,
        /// Its change to vars.
        vars: Option<VarsChange>,
        /// The key the event was sent to.
        wait_key: String,
        /// The event payload.
        payload: Value,
        /// Where the run goes next.
        then: Continuation,
    },
    /// `node` ran and started a child run.
    SubworkflowStarted {
        /// The node that ran.
        node: String,
        /// Its change to vars.
        vars: Option<VarsChange>,
        /// The child run.
        child_run_id: RunId,
        /// The child's workflow.
        workflow_id: String,
        /// Its version.
        workflow_version: u32,
        /// Whether the parent waits for the child.
        mode: SubworkflowMode,
        /// Where the child's result (sync) or run id (async) goes.
        result_key: Option<String>,
        /// Where the run goes after.
        then: Continuation,
    },
    /// An event or answer ended the wait.
    Resumed {
        /// The key it was delivered to.
        wait_key: String,
        /// What was delivered.
        payload: Value,
        /// The inbox entry consumed, when the event arrived before the wait.
        inbox_seq: Option<u64>,
        /// Who delivered it (the API token's name), when one is known.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        by: Option<String>,
    },
    /// The wait's time came.
    TimerFired {
        /// The due time.
        due_at_ms: i64,
    },
    /// The run completed.
    Completed {
        /// The node that ran.
        node: String,
        /// Its change to vars.
        vars: Option<VarsChange>,
        /// The output.
        output: Value,
    },
    /// The run failed.
    Failed {
        /// The node that ran, if the failure came from one.
        node: Option<String>,
        /// Its change to vars.
        vars: Option<VarsChange>,
        /// Why.
        failure: RunFailure,
    },
    /// An operator paused the run.
    Paused {
        /// The operator who did it (the API token's name), when one is known.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        by: Option<String>,
    },
    /// An operator unpaused the run.
    Unpaused {
        /// The operator who did it (the API token's name), when one is known.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        by: Option<String>,
    },
    /// An operator cancelled the run.
    Cancelled {
        /// The reason given.
        reason: String,
        /// The operator who did it (the API token's name), when one is known.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        by: Option<String>,
    },
}

/// A record that cannot be applied to the state before it.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum ReplayError {
    /// The chain itself is broken.
    #[error(transparent)]
    Chain(#[from] ledgerflow_ledger::ChainError),
    /// The record's kind or body is not an event this version knows.
    #[error("run {run_id} seq {seq}: undecodable {kind:?} record: {reason}")]
    Undecodable {
        /// The run.
        run_id: RunId,
        /// The record.
        seq: u64,
        /// Its kind.
        kind: String,
        /// What was wrong.
        reason: String,
    },
    /// The event does not fit the state it follows.
    #[error("run {run_id} seq {seq}: {reason}")]
    Invalid {
        /// The run.
        run_id: RunId,
        /// The record.
        seq: u64,
        /// What did not fit.
        reason: String,
    },
    /// Applying the record gives a state whose hash differs from the one it carries.
    #[error(
        "run {run_id} seq {seq}: replayed state hash {replayed} differs from recorded {recorded}"
    )]
    StateMismatch {
        /// The run.
        run_id: RunId,
        /// The record.
        seq: u64,
        /// The hash the record carries.
        recorded: Hash,
        /// The hash of the replayed state.
        replayed: Hash,
    },
    /// No records.
    #[error("no records to replay")]
    Empty,
}

impl ReplayError {
    /// The seq of the record that failed, if one did.
    pub fn seq(&self) -> Option<u64> {
        match self {
            ReplayError::Chain(e) => Some(e.seq),
            ReplayError::Undecodable { seq, .. }
            | ReplayError::Invalid { seq, .. }
            | ReplayError::StateMismatch { seq, .. } => Some(*seq),
            ReplayError::Empty => None,
        }
    }
}

impl Event {
    /// The record kind and body of this event.
    pub fn to_kind_body(&self) -> (String, Value) {
        match serde_json::to_value(self) {
            Ok(Value::Object(mut members)) => {
                let kind = match members.remove("kind") {
                    Some(Value::String(kind)) => kind,
                    _ => String::new(),
                };
                let body = members.remove("body").unwrap_or(Value::Null);
                (kind, body)
            }
            // An adjacently tagged enum of plain data always serializes to an object.
            _ => (String::new(), Value::Null),
        }
    }

    /// Decodes the event a record carries.
    pub fn from_record(record: &Record) -> Result<Event, ReplayError> {
        let mut members = Map::new();
        members.insert("kind".into(), Value::String(record.kind().to_owned()));
        members.insert("body".into(), record.body().clone());
        serde_json::from_value(Value::Object(members)).map_err(|e| ReplayError::Undecodable {
            run_id: record.run_id(),
            seq: record.seq(),
            kind: record.kind().to_owned(),
            reason: e.to_string(),
        })
    }
}

/// Where an event is applied: which run, at which seq and time.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ApplyAt {
    pub run_id: RunId,
    pub seq: u64,
    pub at_ms: i64,
}

/// Applies `event` to `state` (`None` before the first record). Errors name what did not
/// fit; a live engine never produces such an event, so an error means a corrupt ledger.
pub(crate) fn apply(
    state: Option<RunState>,
    event: &Event,
    at: ApplyAt,
) -> Result<RunState, String> {
    let mut state = match (state, event) {
        (
            None,
            Event::Started {
                workflow_id,
                workflow_version,
                node,
                vars,
                parent,
            },
        ) => RunState {
            run_id: at.run_id,
            workflow_id: workflow_id.clone(),
            workflow_version: *workflow_version,
            status: RunStatus::Running,
            paused: false,
            node: Some(node.clone()),
            vars: vars.clone(),
            waiting: None,
            pending_effect: None,
            output: None,
            failure: None,
            cancel_reason: None,
            ended_seq: None,
            parent: parent.clone(),
            created_at_ms: at.at_ms,
            updated_at_ms: at.at_ms,
            head: LedgerHead {
                seq: 0,
                hash: Hash::GENESIS,
            },
        },
        (
            None,
            Event::Forked {
                workflow_id,
                workflow_version,
                status,
                node,
                vars,
                waiting,
                pending_effect,
                ..
            },
        ) => {
            if status.is_terminal() || (*status == RunStatus::Waiting) != waiting.is_some() {
                return Err(format!(
                    "a fork cannot start {status} with wait {waiting:?}"
                ));
            }
            RunState {
                run_id: at.run_id,
                workflow_id: workflow_id.clone(),
                workflow_version: *workflow_version,
                status: *status,
                paused: false,
                node: node.clone(),
                vars: vars.clone(),
                waiting: waiting.as_deref().cloned(),
                pending_effect: pending_effect.as_deref().cloned(),
                output: None,
                failure: None,
                cancel_reason: None,
                ended_seq: None,
                parent: None,
                created_at_ms: at.at_ms,
                updated_at_ms: at.at_ms,
                head: LedgerHead {
                    seq: 0,
                    hash: Hash::GENESIS,
                },
            }
        }
        (None, _) => return Err("first record is not `started` or `forked`".into()),
        (Some(_), Event::Started { .. } | Event::Forked { .. }) => {
            return Err("`started` or `forked` after the first record".into())
        }
        (Some(state), _) => state,
    };
    state.updated_at_ms = at.at_ms;
    let require = |ok: bool, what: &str| if ok { Ok(()) } else { Err(what.to_owned()) };
    match event {
        Event::Started { .. } | Event::Forked { .. } => {}
        Event::Advanced { node, vars, next } => {
            require(
                state.status == RunStatus::Running,
                "advanced while not running",
            )?;
            step_from(&mut state, node, vars.as_ref())?;
            state.node = Some(next.clone());
        }
        Event::Waiting { node, vars, wait } => {
            require(
                state.status == RunStatus::Running,
                "waiting while not running",
            )?;
            step_from(&mut state, node, vars.as_ref())?;
            state.status = RunStatus::Waiting;
            state.waiting = Some(wait.clone());
        }
        Event::EffectRequested {
            node,
            vars,
            effect,
            idempotency_key,
            then,
        } => {
            require(
                state.status == RunStatus::Running,
                "effect requested while not running",
            )?;
            step_from(&mut state, node, vars.as_ref())?;
            state.pending_effect = Some(PendingEffect {
                effect: effect.clone(),
                idempotency_key: idempotency_key.clone(),
                then: then.clone(),
                attempt: 1,
            });
        }
        Event::EffectCompleted {
            idempotency_key,
            result,
        } => {
            let pending = take_pending(&mut state, idempotency_key)?;
            continue_with(
                &mut state,
                pending.effect.result_key.as_deref(),
                result,
                &pending.then,
                at,
            );
        }
        Event::EffectWaiting {
            idempotency_key,
            wait_key,
        } => {
            let pending = take_pending(&mut state, idempotency_key)?;
            state.status = RunStatus::Waiting;
            state.waiting = Some(WaitState {
                wait_key: Some(wait_key.clone()),
                reason: WaitReason::Job,
                until_ms: None,
                prompt: None,
                choices: Vec::new(),
                result_key: pending.effect.result_key,
                then: pending.then,
            });
        }
        Event::EffectRetryScheduled {
            idempotency_key,
            attempt,
            retry_at_ms,
            ..
        } => {
            let pending = state
                .pending_effect
                .as_mut()
                .filter(|p| &p.idempotency_key == idempotency_key)
                .ok_or_else(|| format!("no pending effect with key {idempotency_key:?}"))?;
            require(pending.attempt == *attempt, "retry of another attempt")?;
            pending.attempt += 1;
            state.status = RunStatus::Waiting;
            state.waiting = Some(WaitState {
                wait_key: None,
                reason: WaitReason::Retry,
                until_ms: Some(*retry_at_ms),
                prompt: None,
                choices: Vec::new(),
                result_key: None,
                // Back to the node that asked, whose effect is still pending.
                then: Continuation::Next(state.node.clone().unwrap_or_default()),
            });
        }
        Event::EffectFailed {
            idempotency_key,
            error,
            ..
        } => {
            take_pending(&mut state, idempotency_key)?;
            end(&mut state, RunStatus::Failed, at);
            state.failure = Some(RunFailure {
                code: crate::FailureCode::EffectFailed,
                message: error.clone(),
            });
        }
        Event::EventEmitted {
            node, vars, then, ..
        } => {
            require(
                state.status == RunStatus::Running,
                "event emitted while not running",
            )?;
            step_from(&mut state, node, vars.as_ref())?;
            continue_with(&mut state, None, &Value::Null, then, at);
        }
        Event::SubworkflowStarted {
            node,
            vars,
            child_run_id,
            mode,
            result_key,
            then,
            ..
        } => {
            require(
                state.status == RunStatus::Running,
                "subworkflow started while not running",
            )?;
            step_from(&mut state, node, vars.as_ref())?;
            match mode {
                SubworkflowMode::Async => {
                    let child = Value::String(child_run_id.to_string());
                    continue_with(&mut state, result_key.as_deref(), &child, then, at);
                }
                SubworkflowMode::Sync => {
                    state.status = RunStatus::Waiting;
                    state.waiting = Some(WaitState {
                        wait_key: Some(crate::wait_keys::child(*child_run_id)),
                        reason: WaitReason::Subworkflow,
                        until_ms: None,
                        prompt: None,
                        choices: Vec::new(),
                        result_key: result_key.clone(),
                        then: then.clone(),
                    });
                }
            }
        }
        Event::Resumed {
            wait_key, payload, ..
        } => {
            require(
                state.waits_on(wait_key),
                "resumed on a key the run does not wait on",
            )?;
            let wait = state.waiting.take().ok_or("resumed while not waiting")?;
            continue_with(
                &mut state,
                wait.result_key.as_deref(),
                payload,
                &wait.then,
                at,
            );
        }
        Event::TimerFired { due_at_ms } => {
            let wait = state
                .waiting
                .take()
                .ok_or("timer fired while not waiting")?;
            require(
                wait.until_ms == Some(*due_at_ms),
                "timer fired for another due time",
            )?;
            continue_with(
                &mut state,
                wait.result_key.as_deref(),
                &Value::from(*due_at_ms),
                &wait.then,
                at,
            );
        }
        Event::Completed { node, vars, output } => {
            require(
                state.status == RunStatus::Running,
                "completed while not running",
            )?;
            step_from(&mut state, node, vars.as_ref())?;
            end(&mut state, RunStatus::Completed, at);
            state.output = Some(output.clone());
        }
        Event::Failed {
            node,
            vars,
            failure,
        } => {
            require(!state.status.is_terminal(), "failed after the run ended")?;
            if let Some(node) = node {
                step_from(&mut state, node, vars.as_ref())?;
            }
            state.waiting = None;
            state.pending_effect = None;
            end(&mut state, RunStatus::Failed, at);
            state.failure = Some(failure.clone());
        }
        Event::Paused { .. } => {
            require(
                !state.status.is_terminal() && !state.paused,
                "paused twice or after end",
            )?;
            state.paused = true;
        }
        Event::Unpaused { .. } => {
            require(state.paused, "unpaused while not paused")?;
            state.paused = false;
        }
        Event::Cancelled { reason, .. } => {
            require(!state.status.is_terminal(), "cancelled after the run ended")?;
            state.waiting = None;
            state.pending_effect = None;
            end(&mut state, RunStatus::Cancelled, at);
            state.cancel_reason = Some(reason.clone());
        }
    }
    Ok(state)
}

/// Checks that a step ran the run's current node and applies its vars change.
fn step_from(state: &mut RunState, node: &str, vars: Option<&VarsChange>) -> Result<(), String> {
    if state.node.as_deref() != Some(node) {
        return Err(format!(
            "step ran node {node:?} but the run is at {:?}",
            state.node
        ));
    }
    if state.pending_effect.is_some() {
        return Err("step ran while an effect is pending".into());
    }
    if let Some(change) = vars {
        state.vars = apply_vars_change(&state.vars, change)?;
    }
    Ok(())
}

fn take_pending(state: &mut RunState, key: &str) -> Result<PendingEffect, String> {
    match state.pending_effect.take() {
        Some(pending) if pending.idempotency_key == key => Ok(pending),
        _ => Err(format!("no pending effect with key {key:?}")),
    }
}

/// Stores `result` at `result_key` and moves the run on as `then` says.
fn continue_with(
    state: &mut RunState,
    result_key: Option<&str>,
    result: &Value,
    then: &Continuation,
    at: ApplyAt,
) {
    if let Some(key) = result_key {
        state.vars.insert(key.to_owned(), result.clone());
    }
    match then {
        Continuation::Next(node) => {
            state.status = RunStatus::Running;
            state.node = Some(node.clone());
        }
        Continuation::Complete(output) => {
            end(state, RunStatus::Completed, at);
            state.output = Some(output.clone());
        }
    }
}

fn end(state: &mut RunState, status: RunStatus, at: ApplyAt) {
    state.status = status;
    state.ended_seq = Some(at.seq);
}

/// The change from `old` to `new` vars, or `None` if equal.
pub(crate) fn vars_change(
    old: &Map<String, Value>,
    new: &Map<String, Value>,
) -> Option<VarsChange> {
    if old == new {
        return None;
    }
    let patch = merge_patch(old, new);
    let patch_ok = apply_merge_patch(old, &patch) == *new;
    let patch_len = serde_json::to_vec(&patch)
        .map(|v| v.len())
        .unwrap_or(usize::MAX);
    let set_len = serde_json::to_vec(new)
        .map(|v| v.len())
        .unwrap_or(usize::MAX);
    if patch_ok && patch_len < set_len {
        Some(VarsChange::Patch(Value::Object(patch)))
    } else {
        Some(VarsChange::Set(new.clone()))
    }
}

fn apply_vars_change(
    old: &Map<String, Value>,
    change: &VarsChange,
) -> Result<Map<String, Value>, String> {
    match change {
        VarsChange::Set(new) => Ok(new.clone()),
        VarsChange::Patch(Value::Object(patch)) => Ok(apply_merge_patch(old, patch)),
        VarsChange::Patch(_) => Err("vars patch is not an object".into()),
    }
}

fn merge_patch(old: &Map<String, Value>, new: &Map<String, Value>) -> Map<String, Value> {
    let mut patch = Map::new();
    for key in old.keys() {
        if !new.contains_key(key) {
            patch.insert(key.clone(), Value::Null);
        }
    }
    for (key, value) in new {
        match (old.get(key), value) {
            (Some(old_value), _) if old_value == value => {}
            (Some(Value::Object(old_obj)), Value::Object(new_obj)) => {
                patch.insert(key.clone(), Value::Object(merge_patch(old_obj, new_obj)));
            }
            _ => {
                patch.insert(key.clone(), value.clone());
            }
        }
    }
    patch
}

fn apply_merge_patch(old: &Map<String, Value>, patch: &Map<String, Value>) -> Map<String, Value> {
    let mut out = old.clone();
    for (key, value) in patch {
        match value {
            Value::Null => {
                out.remove(key);
            }
            Value::Object(inner) => {
                let base = match out.get(key) {
                    Some(Value::Object(existing)) => existing.clone(),
                    _ => Map::new(),
                };
                out.insert(key.clone(), Value::Object(apply_merge_patch(&base, inner)));
            }
            other => {
                out.insert(key.clone(), other.clone());
            }
        }
    }
    out
}

/// Seals `events` as the next records of the run whose state is `state` (`None` for a new
/// run), returning the new state and the records. The same [`apply`] replay uses.
pub(crate) fn append(
    state: Option<&RunState>,
    run_id: RunId,
    events: &[Event],
    at_ms: i64,
) -> Result<(RunState, Vec<Record>), String> {
    let mut current = state.cloned();
    let mut head = state.map_or(
        LedgerHead {
            seq: 0,
            hash: Hash::GENESIS,
        },
        |s| s.head,
    );
    let mut records = Vec::with_capacity(events.len());
    for event in events {
        let seq = head.seq + 1;
        let mut next = apply(current.take(), event, ApplyAt { run_id, seq, at_ms })?;
        let (kind, body) = event.to_kind_body();
        let record = RecordDraft {
            run_id,
            seq,
            at_ms,
            kind,
            body,
            state_hash: next.state_hash(),
        }
        .seal(head.hash);
        head = LedgerHead {
            seq,
            hash: record.hash(),
        };
        next.head = head;
        records.push(record);
        current = Some(next);
    }
    current
        .map(|state| (state, records))
        .ok_or_else(|| "no events to append".to_owned())
}

/// Folds records into the state they produce, checking the chain, each event against the
/// state before it, and each record's state hash.
#[derive(Clone, Debug, Default)]
pub struct Replayer {
    chain: ChainVerifier,
    state: Option<RunState>,
}

impl Replayer {
    /// Starts from nothing: the first record must be seq 1.
    pub fn new() -> Self {
        Replayer::default()
    }

    /// Starts from a state the run had (a stored snapshot): the next record must follow
    /// its head.
    pub fn after(state: RunState) -> Self {
        Replayer {
            chain: ChainVerifier::after(ledgerflow_ledger::ChainHead {
                run_id: state.run_id,
                seq: state.head.seq,
                hash: state.head.hash,
            }),
            state: Some(state),
        }
    }

    /// Applies the next record.
    pub fn push(&mut self, record: &Record) -> Result<(), ReplayError> {
        self.chain.push(record)?;
        let event = Event::from_record(record)?;
        let at = ApplyAt {
            run_id: record.run_id(),
            seq: record.seq(),
            at_ms: record.at_ms(),
        };
        let mut next =
            apply(self.state.take(), &event, at).map_err(|reason| ReplayError::Invalid {
                run_id: record.run_id(),
                seq: record.seq(),
                reason,
            })?;
        let replayed = next.state_hash();
        if replayed != record.state_hash() {
            return Err(ReplayError::StateMismatch {
                run_id: record.run_id(),
                seq: record.seq(),
                recorded: record.state_hash(),
                replayed,
            });
        }
        next.head = LedgerHead {
            seq: record.seq(),
            hash: record.hash(),
        };
        self.state = Some(next);
        Ok(())
    }

    /// The state so far.
    pub fn state(&self) -> Option<&RunState> {
        self.state.as_ref()
    }

    /// The final state.
    pub fn finish(self) -> Result<RunState, ReplayError> {
        self.state.ok_or(ReplayError::Empty)
    }
}

/// Replays a run's ledger read from `store` in pages of the store's `read_items_max`: up to
/// and including `up_to_seq`, or every record with `None`. A ledger that ends before
/// `up_to_seq` is `StoreCorrupt`. The one place that pages through a stored ledger.
pub fn replay_stored(
    store: &dyn crate::Store,
    run_id: RunId,
    up_to_seq: Option<u64>,
) -> Result<RunState, crate::Error> {
    let page = store.limits().read_items_max.max(1);
    let mut replayer = Replayer::new();
    let mut next_seq = 1u64;
    loop {
        let want = match up_to_seq {
            Some(last) if next_seq > last => break,
            Some(last) => usize::try_from(last - next_seq + 1)
                .unwrap_or(usize::MAX)
                .min(page),
            None => page,
        };
        let records = store.read_records(run_id, next_seq, want)?;
        if records.is_empty() && up_to_seq.is_some() {
            return Err(crate::store::Error::Corrupt(format!(
                "run {run_id}: ledger ends before seq {}",
                up_to_seq.unwrap_or_default()
            ))
            .into());
        }
        for record in &records {
            replayer.push(record)?;
        }
        next_seq += records.len() as u64;
        if up_to_seq.is_none() && records.len() < want {
            break;
        }
    }
    Ok(replayer.finish()?)
}

/// Replays a run's whole ledger from seq 1 into the state it produces.
pub fn replay<'a>(records: impl IntoIterator<Item = &'a Record>) -> Result<RunState, ReplayError> {
    let mut replayer = Replayer::new();
    for record in records {
        replayer.push(record)?;
    }
    replayer.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn map(value: Value) -> Map<String, Value> {
        match value {
            Value::Object(m) => m,
            _ => Map::new(),
        }
    }

    #[test]
    fn vars_change_round_trips_including_nulls() {
        let cases = [
            (json!({}), json!({"a": 1})),
            (
                json!({"a": {"b": 1, "c": 2}, "big": "x".repeat(100)}),
                json!({"a": {"b": 1}, "big": "x".repeat(100)}),
            ),
            (json!({"a": 1}), json!({"a": null})),
            (json!({"a": {"b": null}}), json!({"a": {"b": 2}})),
            (json!({"a": [1, 2]}), json!({})),
        ];
        for (old, new) in cases {
            let (old, new) = (map(old), map(new));
            let change = vars_change(&old, &new).expect("vars differ");
            assert_eq!(
                apply_vars_change(&old, &change),
                Ok(new.clone()),
                "{change:?}"
            );
        }
        assert_eq!(
            vars_change(&map(json!({"a": 1})), &map(json!({"a": 1}))),
            None
        );
    }

    #[test]
    fn small_edit_of_large_vars_is_a_patch() {
        let old = map(json!({"doc": "x".repeat(1000), "n": 1}));
        let new = map(json!({"doc": "x".repeat(1000), "n": 2}));
        assert_eq!(
            vars_change(&old, &new),
            Some(VarsChange::Patch(json!({"n": 2})))
        );
    }

    #[test]
    fn event_kind_body_round_trips() {
        let event = Event::Cancelled {
            reason: "ops".into(),
            by: None,
        };
        let (kind, body) = event.to_kind_body();
        assert_eq!(kind, "cancelled");
        assert_eq!(body, json!({"reason": "ops"}));
        // Who did it is in the body only when known: records without it hash as before.
        let by = Event::Cancelled {
            reason: "ops".into(),
            by: Some("alice".into()),
        };
        let (_, body) = by.to_kind_body();
        assert_eq!(body, json!({"reason": "ops", "by": "alice"}));
        let (kind, body) = Event::Paused { by: None }.to_kind_body();
        assert_eq!((kind.as_str(), body), ("paused", json!({})));
    }
}

/// Events the kernel's unit tests build runs from.
#[cfg(test)]
pub(crate) mod fixtures {
    use super::Event;

    /// The `started` event of a run of workflow `w` version 1 at node `a`, with no vars.
    pub(crate) fn started() -> Event {
        Event::Started {
            workflow_id: "w".into(),
            workflow_version: 1,
            node: "a".into(),
            vars: serde_json::Map::new(),
            parent: None,
        }
    }
}
