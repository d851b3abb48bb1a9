//! One config for both agent effects: the execution mode (local, remote, hybrid), the
//! provider and the tool backend, and the effect constructors nodes use.

use std::sync::Arc;

use ledgerflow_kernel::{Effect, RetryPolicy};
use serde_json::json;

use crate::error::{AgentError, ErrorCode};
use crate::llm::{ChatRequest, LlmCallHandler, LlmProvider, ToolCall};
use crate::tools::{ToolBackend, ToolCallsHandler, ToolRegistry, ToolResult, ToolResults};
use crate::OpenAiCompatible;

/// The effect kind of a model call.
pub const LLM_CALL: &str = "llm_call";
/// The effect kind of a batch of tool calls.
pub const TOOL_CALLS: &str = "tool_calls";

/// Where the model and the tools run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// An in-process model and Rust tools.
    Local,
    /// An OpenAI-compatible server; tools passed through to the host (the run waits for
    /// their results) or run by a remote tool worker.
    Remote,
    /// An OpenAI-compatible server and Rust tools in this process.
    Hybrid,
}

impl std::str::FromStr for Mode {
    type Err = AgentError;

    fn from_str(text: &str) -> Result<Mode, AgentError> {
        match text {
            "local" => Ok(Mode::Local),
            "remote" => Ok(Mode::Remote),
            "hybrid" => Ok(Mode::Hybrid),
            other => Err(AgentError::new(
                ErrorCode::InvalidRequest,
                format!("agent mode {other:?}: use local, remote or hybrid"),
            )),
        }
    }
}

/// The agent effects' configuration: which provider answers `llm_call`, where
/// `tool_calls` run. Register it on an engine or runtime builder with [`handlers`]
/// (`AgentConfig::handlers`).
///
/// ```
/// use ledgerflow_agent::{AgentConfig, LlmResponse, Mode, ToolRegistry};
///
/// let model = |_: &_, _: &_| Ok(LlmResponse::text("echo", "hello"));
/// let config = AgentConfig::local(model, ToolRegistry::new());
/// assert_eq!(config.mode(), Mode::Local);
/// ```
///
/// [`handlers`]: AgentConfig::handlers
#[derive(Clone)]
pub struct AgentConfig {
    mode: Mode,
    provider: Arc<dyn LlmProvider>,
    tools: ToolBackend,
}

impl AgentConfig {
    /// Local: `model` in this process, `tools` as Rust functions.
    pub fn local(model: impl LlmProvider + 'static, tools: ToolRegistry) -> AgentConfig {
        AgentConfig {
            mode: Mode::Local,
            provider: Arc::new(model),
            tools: ToolBackend::Local(tools),
        }
    }

    /// Remote: the model at `endpoint`; tool calls passed through to the host (the run
    /// waits on `tools:<key>` for `{"results": [...]}`); see [`AgentConfig::tools`] for a
    /// remote tool worker instead.
    pub fn remote(endpoint: OpenAiCompatible) -> AgentConfig {
        AgentConfig {
            mode: Mode::Remote,
            provider: Arc::new(endpoint),
            tools: ToolBackend::Passthrough,
        }
    }

    /// Hybrid: the model at `endpoint`, `tools` as Rust functions in this process.
    pub fn hybrid(endpoint: OpenAiCompatible, tools: ToolRegistry) -> AgentConfig {
        AgentConfig {
            mode: Mode::Hybrid,
            provider: Arc::new(endpoint),
            tools: ToolBackend::Local(tools),
        }
    }

    /// Runs tool calls on `backend` instead (e.g. a [`crate::RemoteTools`] worker).
    pub fn tools(mut self, backend: ToolBackend) -> AgentConfig {
        self.tools = backend;
        self
    }

    /// The mode it was made for.
    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// The effect handlers to register: `(LLM_CALL, …)` and `(TOOL_CALLS, …)`.
    ///
    /// ```ignore
    /// let (llm, tools) = config.handlers();
    /// builder.register_effect(LLM_CALL, llm).register_effect(TOOL_CALLS, tools)
    /// ```
    pub fn handlers(&self) -> (LlmCallHandler, ToolCallsHandler) {
        (
            LlmCallHandler::new(Arc::clone(&self.provider)),
            ToolCallsHandler::new(self.tools.clone()),
        )
    }
}

/// The retry policy `llm_call` and `tool_calls` get unless they set their own: 5 attempts, waiting
/// 0.5 s, 1 s, 2 s, 4 s (less up to 20% jitter), each on a durable timer.
pub fn default_agent_retry() -> RetryPolicy {
    RetryPolicy {
        attempts_max: 5,
        initial_backoff_ms: 500,
        max_backoff_ms: 30_000,
        multiplier: 2.0,
        jitter: 0.2,
    }
}

/// The agent effects as constructors on [`Effect`]: `Effect::llm_call(request)`,
/// `Effect::tool_calls(calls)` with this trait in scope.
pub trait AgentEffects {
    /// Ask a model: the result is an [`crate::LlmResponse`] (as JSON). Retried on
    /// timeouts, refused connections, 429 and 5xx by [`default_agent_retry`] unless
    /// `.retry(…)` says otherwise.
    fn llm_call(request: &ChatRequest) -> Effect;

    /// Run tool calls: the result is [`ToolResults`] (as JSON), one per call. A remote
    /// tool worker's timeouts, refused connections, 429 and 5xx are retried by
    /// [`default_agent_retry`] unless `.retry(…)` says otherwise; a failed call is a
    /// result, not a failure.
    fn tool_calls(calls: &[ToolCall]) -> Effect;
}

impl AgentEffects for Effect {
    fn llm_call(request: &ChatRequest) -> Effect {
        let payload = serde_json::to_value(request).unwrap_or_else(|_| json!({}));
        Effect::custom(LLM_CALL, payload).retry(default_agent_retry())
    }

    fn tool_calls(calls: &[ToolCall]) -> Effect {
        Effect::custom(TOOL_CALLS, json!({ "calls": calls })).retry(default_agent_retry())
    }
}

/// The value a host delivers to a passthrough `tool_calls` wait key: `results` checked
/// to answer `calls` (one each, same ids, same order).
pub fn passthrough_submission(
    calls: &[ToolCall],
    results: Vec<ToolResult>,
) -> Result<serde_json::Value, AgentError> {
    let results = ToolResults { results };
    results.check_answers(calls)?;
    serde_json::to_value(results)
        .map_err(|e| AgentError::new(ErrorCode::InvalidSubmission, e.to_string()))
}
