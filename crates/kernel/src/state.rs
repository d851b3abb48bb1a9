//! `RunState`, the projection of a run's ledger, and the types it is made of.

use std::fmt;

use ledgerflow_ledger::{canonical_json, Hash};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::{Continuation, Effect, RunId};

/// Where a run is in its life. `paused` is a separate flag on [`RunState`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    /// Has a node to run (or an effect to finish).
    Running,
    /// Waits for an event, a person, a time or a job.
    Waiting,
    /// Finished with an output.
    Completed,
    /// Finished with a failure.
    Failed,
    /// Stopped by an operator.
    Cancelled,
}

impl RunStatus {
    /// Every status, in a fixed order.
    pub const ALL: [RunStatus; 5] = [
        RunStatus::Running,
        RunStatus::Waiting,
        RunStatus::Completed,
        RunStatus::Failed,
        RunStatus::Cancelled,
    ];

    /// Completed, failed and cancelled runs never change again.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            RunStatus::Completed | RunStatus::Failed | RunStatus::Cancelled
        )
    }

    /// The lowercase name used in records and on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Running => "running",
            RunStatus::Waiting => "waiting",
            RunStatus::Completed => "completed",
            RunStatus::Failed => "failed",
            RunStatus::Cancelled => "cancelled",
        }
    }
}

impl fmt::Display for RunStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a run waits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WaitReason {
    /// An event delivered to a wait_key (`wait_event`).
    Event,
    /// A time (`wait_until`).
    Until,
    /// A person's answer (`ask_user`).
    User,
    /// An external job started by an effect handler.
    Job,
    /// A child workflow.
    Subworkflow,
    /// The next attempt of a failed effect.
    Retry,
}

/// What a waiting run waits for, and where it goes when the wait ends.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WaitState {
    /// The key an event must be delivered to (none for a pure timer).
    pub wait_key: Option<String>,
    /// Why it waits.
    pub reason: WaitReason,
    /// When the wait ends by itself, in milliseconds since the Unix epoch.
    pub until_ms: Option<i64>,
    /// The question, for `ask_user`.
    pub prompt: Option<String>,
    /// The offered answers, for `ask_user` (empty: free text).
    pub choices: Vec<String>,
    /// Where in `vars` the payload that ends the wait is stored.
    pub result_key: Option<String>,
    /// Where the run goes after the wait.
    pub then: Continuation,
}

/// A custom effect that was requested and has not finished: after a crash it is run again
/// with the same idempotency key.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PendingEffect {
    /// The effect.
    pub effect: Effect,
    /// `<run id>:<seq of the effect_requested record>`.
    pub idempotency_key: String,
    /// Where the run goes after the effect.
    pub then: Continuation,
    /// The attempt about to run, from 1.
    pub attempt: u32,
}

/// Why a run failed, as a machine-readable code and a message for people.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunFailure {
    /// What kind of failure.
    pub code: FailureCode,
    /// What went wrong.
    pub message: String,
}

/// The kinds of run failure.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureCode {
    /// A node handler returned `StepPlan::fail`.
    NodeFailed,
    /// A node handler panicked.
    HandlerPanicked,
    /// A plan or the run named a node the spec does not have.
    UnknownNode,
    /// A custom effect kind with no registered handler.
    UnknownEffect,
    /// A built-in effect whose payload is malformed.
    InvalidEffect,
    /// An effect kind this engine does not run yet.
    UnsupportedEffect,
    /// An effect handler reported failure.
    EffectFailed,
    /// The run tried to wait on a wait_key another run already waits on.
    WaitKeyInUse,
    /// A node or effect produced a value over the engine's `value_bytes_max`.
    ValueTooLarge,
    /// A configured bound was exceeded (vars size, wait_key length, subworkflow depth).
    LimitExceeded,
}

/// The last record of a run's ledger.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LedgerHead {
    /// Seq of the last record; 0 before the first. Also the run's version for optimistic
    /// concurrency: every change appends at least one record.
    pub seq: u64,
    /// Hash of the last record.
    pub hash: Hash,
}

/// The link from a child run to the run that started it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParentLink {
    /// The parent run.
    pub run_id: RunId,
    /// The seq of the parent's record that started the child.
    pub seq: u64,
    /// For a synchronous subworkflow: the key the parent waits on. The child's ending
    /// record queues its result there in the same commit, so the parent cannot miss it.
    pub wait_key: Option<String>,
    /// How deep the child is: 1 for a child of a top-level run.
    pub depth: u32,
    /// The parent's last record (seq and hash) when the child was created: the child's
    /// first record cites it, so a verifier with both ledgers checks the lineage. Absent
    /// in runs started before it was recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<LedgerHead>,
}

/// How a parent relates to a subworkflow it starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SubworkflowMode {
    /// The parent waits; the child's end resumes it with the child's result.
    Sync,
    /// The parent carries on with the child's run id.
    Async,
}

/// The state of one run: a projection of its ledger. Replaying the ledger from seq 1
/// reproduces it exactly (see [`crate::replay`]). A value read from the engine is a
/// snapshot; changing it changes nothing stored.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunState {
    /// The run.
    pub run_id: RunId,
    /// The workflow it runs.
    pub workflow_id: String,
    /// The workflow version it started on and always resumes on.
    pub workflow_version: u32,
    /// Where it is in its life.
    pub status: RunStatus,
    /// Paused by an operator: no step runs until unpaused.
    pub paused: bool,
    /// The node to run next, or the node the run waits or ended at.
    pub node: Option<String>,
    /// The run's variables.
    pub vars: Map<String, Value>,
    /// What it waits for, when waiting.
    pub waiting: Option<WaitState>,
    /// A custom effect requested and not yet finished.
    pub pending_effect: Option<PendingEffect>,
    /// The output, when completed.
    pub output: Option<Value>,
    /// The failure, when failed.
    pub failure: Option<RunFailure>,
    /// The reason given, when cancelled.
    pub cancel_reason: Option<String>,
    /// The seq of the record that ended the run, when terminal.
    pub ended_seq: Option<u64>,
    /// The run that started this one, if any.
    pub parent: Option<ParentLink>,
    /// When the run started (ms since the Unix epoch).
    pub created_at_ms: i64,
    /// When its last record was written.
    pub updated_at_ms: i64,
    /// Its last ledger record. Not covered by [`RunState::state_hash`], which the record
    /// itself carries.
    pub head: LedgerHead,
}

/// Domain separation prefix of the state hash input.
const STATE_DOMAIN: &[u8] = b"ledgerflow.state.v1\0";

impl RunState {
    /// blake3 over `ledgerflow.state.v1\0` and the canonical JSON of this state without
    /// its `head` member. Each record carries the state hash of the state it produced.
    pub fn state_hash(&self) -> Hash {
        let mut value = match serde_json::to_value(self) {
            Ok(value) => value,
            // Serializing plain data with string keys cannot fail; hash a marker if it did.
            Err(_) => return Hash::of_domain(STATE_DOMAIN, b"unserializable"),
        };
        if let Value::Object(members) = &mut value {
            members.remove("head");
        }
        Hash::of_domain(STATE_DOMAIN, &canonical_json(&value))
    }

    /// How deep in a tree of subworkflows the run is: 0 for a top-level run.
    pub fn depth(&self) -> u32 {
        self.parent.as_ref().map_or(0, |p| p.depth)
    }

    /// What a synchronous parent receives when this run ends: `{"status": "completed",
    /// "output": …}`, `{"status": "failed", "failure": {"code", "message"}}` or
    /// `{"status": "cancelled", "reason": …}`. `None` while the run has not ended.
    pub fn child_result(&self) -> Option<serde_json::Value> {
        use serde_json::json;
        match self.status {
            RunStatus::Completed => {
                Some(json!({ "status": "completed", "run_id": self.run_id, "output": self.output }))
            }
            RunStatus::Failed => {
                Some(json!({ "status": "failed", "run_id": self.run_id, "failure": self.failure }))
            }
            RunStatus::Cancelled => Some(
                json!({ "status": "cancelled", "run_id": self.run_id, "reason": self.cancel_reason }),
            ),
            RunStatus::Running | RunStatus::Waiting => None,
        }
    }

    /// Has steps to run now: running and not paused.
    pub fn is_runnable(&self) -> bool {
        self.status == RunStatus::Running && !self.paused
    }

    /// Waiting on a timer due at `due_at_ms` (which has not fired)?
    pub fn waits_until(&self, due_at_ms: i64) -> bool {
        self.status == RunStatus::Waiting
            && self.waiting.as_ref().and_then(|w| w.until_ms) == Some(due_at_ms)
    }

    /// The key `respond` answers: the run waits for a person (`ask_user`) or for an event
    /// (`wait_event`). A child workflow's result, an external job, an effect's retry or a
    /// timer is not an answer, so those waits have none.
    pub fn respond_key(&self) -> Option<&str> {
        let wait = self
            .waiting
            .as_ref()
            .filter(|_| self.status == RunStatus::Waiting)?;
        match wait.reason {
            WaitReason::User | WaitReason::Event => wait.wait_key.as_deref(),
            WaitReason::Until | WaitReason::Job | WaitReason::Subworkflow | WaitReason::Retry => {
                None
            }
        }
    }

    /// What the run waits for, in words: for messages that say why something cannot be
    /// done, and for operators.
    pub fn waits_for(&self) -> String {
        let Some(wait) = self
            .waiting
            .as_ref()
            .filter(|_| self.status == RunStatus::Waiting)
        else {
            return match self.status {
                RunStatus::Running if self.paused => "nothing: it is running (paused)".into(),
                status if status.is_terminal() => format!("nothing: it has ended ({status})"),
                status => format!("nothing: it is {status}"),
            };
        };
        let key = wait.wait_key.as_deref().unwrap_or("");
        let until = wait
            .until_ms
            .map(|at| format!(" (until {at} ms)"))
            .unwrap_or_default();
        match wait.reason {
            WaitReason::User => format!("a person's answer on {key:?}{until}"),
            WaitReason::Event => format!("an event on {key:?}{until}"),
            WaitReason::Until => format!("a timer due at {} ms", wait.until_ms.unwrap_or(0)),
            WaitReason::Job => format!("an external job to report on {key:?}{until}"),
            WaitReason::Subworkflow => format!("its child workflow's result on {key:?}"),
            WaitReason::Retry => format!("the retry of a failed effect{until}"),
        }
    }

    /// Waiting on `wait_key`?
    pub fn waits_on(&self, wait_key: &str) -> bool {
        self.waiting.as_ref().and_then(|w| w.wait_key.as_deref()) == Some(wait_key)
    }
}
