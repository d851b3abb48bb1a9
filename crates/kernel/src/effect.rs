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

/// A request for IO made by a node: a kind, a JSON payload, and where in `vars` to put the
/// result (`None` discards it).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Effect {
    /// The effect kind: one of [`kind`] or a name an effect handler is registered under.
    pub kind: String,
    /// The arguments.
    pub payload: Value,
    /// The `vars` key the result is stored under.
    pub result_key: Option<String>,
}

impl Effect {
    /// A custom effect handled by the effect handler registered for `kind`.
    pub fn custom(kind: impl Into<String>, payload: Value) -> Self {
        Effect {
            kind: kind.into(),
            payload,
            result_key: None,
        }
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
