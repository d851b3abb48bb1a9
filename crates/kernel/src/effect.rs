//! Effects: the IO a node asks for, the built-in kinds, and the handler port for the rest.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::RunId;

/// Built-in effect kinds handled by the kernel itself.
pub mod kind {
    /// Wait for an event delivered to a wait_key. Payload: `{"wait_key": "..."}`.
    pub const WAIT_EVENT: &str = "wait_event";
    /// Wait until a time. Payload: `{"at_ms": 1700000000000}`.
    pub const WAIT_UNTIL: &str = "wait_until";
    /// Ask a person and wait for the answer. Payload:
    /// `{"prompt": "...", "choices": ["yes", "no"], "wait_key": "optional"}`.
    pub const ASK_USER: &str = "ask_user";
    /// Start a child workflow. Payload: `{"workflow_id", "version", "input", "mode"}`.
    pub const START_SUBWORKFLOW: &str = "start_subworkflow";
    /// Deliver an event to a wait_key. Payload: `{"wait_key": "...", "payload": ...}`.
    pub const EMIT_EVENT: &str = "emit_event";
}

/// A request for IO made by a node: a kind, a JSON payload, where in `vars` to put the
/// result (`None` discards it), and how to retry a custom effect that fails.
///
/// ```
/// use ledgerflow_kernel::{Effect, RetryPolicy, StepPlan};
/// use serde_json::json;
///
/// // Built-in: wait for a person's answer, then go on at `refund`.
/// let ask = StepPlan::effect(Effect::ask_user("Refund $40?", &["yes", "no"]).result_key("answer"))
///     .then_next("refund");
/// // Custom: run by the handler registered for "charge_card", retried on failure, with
/// // the same idempotency key on every attempt.
/// let charge = Effect::custom("charge_card", json!({ "cents": 4000 }))
///     .result_key("receipt")
///     .retry(RetryPolicy::exponential(5));
/// assert!(!charge.is_builtin());
/// # let _ = ask;
/// ```
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Effect {
    /// The effect kind: one of [`kind`] or a name an effect handler is registered under.
    pub kind: String,
    /// The arguments.
    pub payload: Value,
    /// The `vars` key the result is stored under.
    pub result_key: Option<String>,
    /// How to retry a retryable failure; `None` uses the engine's default policy.
    pub retry: Option<RetryPolicy>,
}

/// When and how often a failed custom effect is tried again. Each retry waits on a durable
/// timer (not a thread sleep) and each attempt is a ledger record.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct RetryPolicy {
    /// Attempts in all, the first included (1: never retry).
    pub attempts_max: u32,
    /// Wait before the second attempt.
    pub initial_backoff_ms: u64,
    /// Longest wait between attempts.
    pub max_backoff_ms: u64,
    /// Each wait is the previous one times this.
    pub multiplier: f64,
    /// Up to this fraction of each wait is taken off at random (0: none, 1: up to all),
    /// so that many runs failing together do not retry together.
    pub jitter: f64,
}

impl RetryPolicy {
    /// `attempts_max` attempts, waiting 1 s, 2 s, 4 s, … up to 60 s, with 20% jitter.
    pub fn exponential(attempts_max: u32) -> Self {
        RetryPolicy {
            attempts_max,
            initial_backoff_ms: 1_000,
            max_backoff_ms: 60_000,
            multiplier: 2.0,
            jitter: 0.2,
        }
    }

    /// The wait after failed attempt `attempt` (1-based); `unit` in `[0, 1)` picks the
    /// jitter (the engine derives it from the idempotency key, so it is reproducible).
    pub fn backoff_ms(&self, attempt: u32, unit: f64) -> u64 {
        let exponent = i32::try_from(attempt.saturating_sub(1)).unwrap_or(i32::MAX);
        let raw = self.initial_backoff_ms as f64 * self.multiplier.max(1.0).powi(exponent);
        let capped = raw.min(self.max_backoff_ms as f64);
        let jitter = self.jitter.clamp(0.0, 1.0) * unit.clamp(0.0, 1.0);
        (capped * (1.0 - jitter)).max(0.0) as u64
    }
}

impl Effect {
    /// A custom effect handled by the effect handler registered for `kind`.
    pub fn custom(kind: impl Into<String>, payload: Value) -> Self {
        Effect {
            kind: kind.into(),
            payload,
            result_key: None,
            retry: None,
        }
    }

    /// Start a child run of workflow (`workflow_id`, `version`) with `input`. In `sync`
    /// mode the parent waits and the result is `{"status": "completed", "output": …}`,
    /// `{"status": "failed", "failure": …}` or `{"status": "cancelled", …}`; in `async`
    /// mode the parent carries on and the result is the child's run id.
    pub fn start_subworkflow(
        workflow_id: impl Into<String>,
        version: u32,
        input: Value,
        mode: crate::SubworkflowMode,
    ) -> Self {
        let mode = match mode {
            crate::SubworkflowMode::Sync => "sync",
            crate::SubworkflowMode::Async => "async",
        };
        Effect::custom(
            kind::START_SUBWORKFLOW,
            json!({ "workflow_id": workflow_id.into(), "version": version, "input": input, "mode": mode }),
        )
    }

    /// Retries a retryable failure of this effect as `policy` says.
    pub fn retry(mut self, policy: RetryPolicy) -> Self {
        self.retry = Some(policy);
        self
    }

    /// Wait for an event delivered to `wait_key`; its payload becomes the result.
    pub fn wait_event(wait_key: impl Into<String>) -> Self {
        Effect::custom(kind::WAIT_EVENT, json!({ "wait_key": wait_key.into() }))
    }

    /// Wait until `at_ms` (milliseconds since the Unix epoch); the result is `at_ms`.
    pub fn wait_until(at_ms: i64) -> Self {
        Effect::custom(kind::WAIT_UNTIL, json!({ "at_ms": at_ms }))
    }

    /// Ask a person `prompt`, optionally offering `choices`; the answer becomes the result.
    /// The wait_key is chosen by the engine (`ask:<run id>:<seq>`).
    pub fn ask_user(prompt: impl Into<String>, choices: &[&str]) -> Self {
        Effect::custom(
            kind::ASK_USER,
            json!({ "prompt": prompt.into(), "choices": choices }),
        )
    }

    /// Deliver `payload` to whatever run waits (or will wait) on `wait_key`.
    pub fn emit_event(wait_key: impl Into<String>, payload: Value) -> Self {
        Effect::custom(
            kind::EMIT_EVENT,
            json!({ "wait_key": wait_key.into(), "payload": payload }),
        )
    }

    /// Stores the result under `key` in the run's `vars`.
    pub fn result_key(mut self, key: impl Into<String>) -> Self {
        self.result_key = Some(key.into());
        self
    }

    /// True for kinds the kernel handles itself.
    pub fn is_builtin(&self) -> bool {
        matches!(
            self.kind.as_str(),
            kind::WAIT_EVENT
                | kind::WAIT_UNTIL
                | kind::ASK_USER
                | kind::START_SUBWORKFLOW
                | kind::EMIT_EVENT
        )
    }
}

/// What an effect handler is given.
#[derive(Debug)]
pub struct EffectCall<'a> {
    /// The run that asked.
    pub run_id: RunId,
    /// The effect kind.
    pub kind: &'a str,
    /// The effect's payload.
    pub payload: &'a Value,
    /// Stable across retries and crashes: derived from the run id and the seq of the
    /// record that requested the effect. Pass it to the outside world to deduplicate.
    pub idempotency_key: &'a str,
    /// Which attempt this is, from 1.
    pub attempt: u32,
}

/// What an effect handler returns.
#[derive(Clone, Debug, PartialEq)]
pub enum EffectOutcome {
    /// Done; the value becomes the effect's result.
    Completed(Value),
    /// Started elsewhere: the run waits on `wait_key` until the result is delivered.
    Waiting {
        /// The key the result will be delivered to.
        wait_key: String,
    },
    /// Failed. A non-retryable failure fails the run at once.
    Failed {
        /// What went wrong.
        error: String,
        /// Whether trying again might succeed.
        retryable: bool,
    },
    /// Failed, retryable, and the other side said when to try again (an HTTP
    /// `Retry-After`): the next attempt waits at least `after_ms`, or the retry policy's
    /// backoff if longer, and counts against the policy's attempts as any retry does.
    RetryAfter {
        /// What went wrong.
        error: String,
        /// The least wait before the next attempt.
        after_ms: u64,
    },
}

/// Runs custom effects of one kind. Any `Fn(&EffectCall) -> EffectOutcome` is a handler.
pub trait EffectHandler: Send + Sync {
    /// Performs the effect. May do IO; should pass `call.idempotency_key` to anything that
    /// can deduplicate, because after a crash the same call can be made again.
    fn handle(&self, call: &EffectCall<'_>) -> EffectOutcome;
}

impl<F> EffectHandler for F
where
    F: Fn(&EffectCall<'_>) -> EffectOutcome + Send + Sync,
{
    fn handle(&self, call: &EffectCall<'_>) -> EffectOutcome {
        self(call)
    }
}
