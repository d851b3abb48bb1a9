//! `llm_call`: the request a node makes of a model, the response the ledger keeps, the
//! provider port (in-process models and the HTTP client alike), and the effect handler
//! that runs a provider and times it.

use std::sync::Arc;
use std::time::Instant;

use ledgerflow_kernel::{EffectCall, EffectHandler, EffectOutcome, RunId};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::error::{AgentError, ErrorCode};

/// Who wrote a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Instructions for the model.
    System,
    /// The person (or the host on their behalf).
    User,
    /// The model.
    Assistant,
    /// A tool's result, answering one of the model's tool calls.
    Tool,
}

/// One message of a conversation.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Message {
    /// Who wrote it.
    pub role: Role,
    /// Its text (none for an assistant message that only calls tools).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
    /// The tools an assistant message calls.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tool_calls: Vec<ToolCall>,
    /// For a tool message: the call it answers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_call_id: Option<String>,
}

impl Message {
    fn text(role: Role, content: impl Into<String>) -> Message {
        Message {
            role,
            content: Some(content.into()),
            tool_calls: Vec::new(),
            tool_call_id: None,
        }
    }

    /// A system message.
    pub fn system(content: impl Into<String>) -> Message {
        Message::text(Role::System, content)
    }

    /// A user message.
    pub fn user(content: impl Into<String>) -> Message {
        Message::text(Role::User, content)
    }

    /// The model's answer, as the next turn of the conversation.
    pub fn assistant(response: &LlmResponse) -> Message {
        Message {
            role: Role::Assistant,
            content: response.content.clone(),
            tool_calls: response.tool_calls.clone(),
            tool_call_id: None,
        }
    }

    /// A tool's result, answering call `result.id`: its output as JSON text, or its
    /// failure (`error: code: message`), which the model reads and can act on.
    pub fn tool(result: &crate::ToolResult) -> Message {
        let content = match (&result.output, &result.error) {
            (_, Some(failure)) => format!("error: {}: {}", failure.code, failure.message),
            (Some(output), None) => output.to_string(),
            (None, None) => "null".to_owned(),
        };
        Message {
            role: Role::Tool,
            content: Some(content),
            tool_calls: Vec::new(),
            tool_call_id: Some(result.id.clone()),
        }
    }
}

/// A tool the model may call: its name, what it does, and a JSON Schema of its arguments.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ToolSpec {
    /// The name calls use.
    pub name: String,
    /// What it does, for the model.
    #[serde(default)]
    pub description: String,
    /// A JSON Schema of its arguments (an object schema).
    #[serde(default = "empty_object_schema")]
    pub parameters: Value,
}

pub(crate) fn empty_object_schema() -> Value {
    serde_json::json!({ "type": "object", "properties": {} })
}

/// One call of a tool the model asked for.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ToolCall {
    /// The model's id of the call; the result answers it.
    pub id: String,
    /// The tool.
    pub name: String,
    /// Its arguments: the JSON the model wrote (a string if the model's text was not
    /// JSON, so a tool can say what was wrong with it).
    #[serde(default)]
    pub arguments: Value,
}

/// What a node asks a model: the `llm_call` effect's payload.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ChatRequest {
    /// The model (for an OpenAI-compatible server, its model name).
    pub model: String,
    /// The conversation so far.
    pub messages: Vec<Message>,
    /// The tools the model may call.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tools: Vec<ToolSpec>,
    /// Sampling and other parameters, passed to the provider as they are
    /// (`temperature`, `max_tokens`, `seed`, …).
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub parameters: Map<String, Value>,
}

impl ChatRequest {
    /// A request of `model` with `messages`, no tools, no parameters.
    pub fn new(model: impl Into<String>, messages: Vec<Message>) -> ChatRequest {
        ChatRequest {
            model: model.into(),
            messages,
            tools: Vec::new(),
            parameters: Map::new(),
        }
    }

    /// Offers `tools` to the model.
    pub fn tools(mut self, tools: Vec<ToolSpec>) -> ChatRequest {
        self.tools = tools;
        self
    }

    /// Sets parameter `name` (e.g. `temperature`).
    pub fn parameter(mut self, name: impl Into<String>, value: impl Into<Value>) -> ChatRequest {
        self.parameters.insert(name.into(), value.into());
        self
    }
}

/// Tokens a call used, as the provider counted them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    /// Tokens of the request.
    pub prompt_tokens: u64,
    /// Tokens of the answer.
    pub completion_tokens: u64,
    /// Both.
    pub total_tokens: u64,
}

/// What the model answered: the `llm_call` effect's result, kept in the ledger.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LlmResponse {
    /// The answer's text, if any.
    #[serde(default)]
    pub content: Option<String>,
    /// The tools the model calls, if any.
    #[serde(default)]
    pub tool_calls: Vec<ToolCall>,
    /// Why the model stopped (`stop`, `tool_calls`, `length`, …).
    #[serde(default)]
    pub finish_reason: String,
    /// Tokens used.
    #[serde(default)]
    pub usage: Usage,
    /// The model that answered, as the provider names it.
    #[serde(default)]
    pub model: String,
    /// The provider (`openai-compatible`, or a local provider's name).
    #[serde(default)]
    pub provider: String,
    /// How long the call took, measured by the handler around the provider.
    #[serde(default)]
    pub latency_ms: u64,
}

impl LlmResponse {
    /// A plain text answer from `model` (for local providers and tests).
    pub fn text(model: impl Into<String>, content: impl Into<String>) -> LlmResponse {
        LlmResponse {
            content: Some(content.into()),
            tool_calls: Vec::new(),
            finish_reason: "stop".into(),
            usage: Usage::default(),
            model: model.into(),
            provider: String::new(),
            latency_ms: 0,
        }
    }

    /// An answer from `model` that calls `calls`.
    pub fn calling(model: impl Into<String>, calls: Vec<ToolCall>) -> LlmResponse {
        LlmResponse {
            content: None,
            tool_calls: calls,
            finish_reason: "tool_calls".into(),
            usage: Usage::default(),
            model: model.into(),
            provider: String::new(),
            latency_ms: 0,
        }
    }

    /// The response an `llm_call` stored in `vars` (its result value).
    pub fn from_value(value: &Value) -> Result<LlmResponse, AgentError> {
        serde_json::from_value(value.clone()).map_err(|e| {
            AgentError::new(
                ErrorCode::InvalidRequest,
                format!("not an llm_call result: {e}"),
            )
        })
    }
}

/// What a provider is told about the call it makes.
#[derive(Clone, Debug)]
pub struct CallContext {
    /// The run that asked.
    pub run_id: RunId,
    /// The effect's idempotency key: the same on every attempt and after a crash. Send it
    /// to a provider that deduplicates (the HTTP provider sends `Idempotency-Key`).
    pub idempotency_key: String,
    /// Which attempt this is, from 1.
    pub attempt: u32,
}

/// A model: in-process (any `Fn(&ChatRequest, &CallContext) -> Result<LlmResponse,
/// AgentError>`) or remote ([`crate::OpenAiCompatible`]). Runs on a scheduler thread and
/// may block.
pub trait LlmProvider: Send + Sync {
    /// The provider's name, kept in each response (`provider`).
    fn name(&self) -> &str {
        "local"
    }

    /// Answers `request`.
    fn complete(
        &self,
        request: &ChatRequest,
        call: &CallContext,
    ) -> Result<LlmResponse, AgentError>;
}

impl<F> LlmProvider for F
where
    F: Fn(&ChatRequest, &CallContext) -> Result<LlmResponse, AgentError> + Send + Sync,
{
    fn complete(
        &self,
        request: &ChatRequest,
        call: &CallContext,
    ) -> Result<LlmResponse, AgentError> {
        self(request, call)
    }
}

/// The effect handler of `llm_call`: parses the request, runs the provider, stamps the
/// response with the provider's name and the call's latency. A failure becomes the
/// effect's failure (`code: message`), retried by the engine's policy when retryable.
#[derive(Clone)]
pub struct LlmCallHandler {
    provider: Arc<dyn LlmProvider>,
}

impl LlmCallHandler {
    /// The handler that asks `provider`.
    pub fn new(provider: Arc<dyn LlmProvider>) -> LlmCallHandler {
        LlmCallHandler { provider }
    }

    fn call(&self, call: &EffectCall<'_>) -> Result<Value, AgentError> {
        let request: ChatRequest = serde_json::from_value(call.payload.clone()).map_err(|e| {
            AgentError::new(
                ErrorCode::InvalidRequest,
                format!("the llm_call payload is not a chat request: {e}"),
            )
        })?;
        let context = CallContext {
            run_id: call.run_id,
            idempotency_key: call.idempotency_key.to_owned(),
            attempt: call.attempt,
        };
        let started = Instant::now();
        let mut response = self.provider.complete(&request, &context)?;
        response.latency_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        if response.provider.is_empty() {
            response.provider = self.provider.name().to_owned();
        }
        serde_json::to_value(&response).map_err(|e| {
            AgentError::new(
                ErrorCode::MalformedResponse,
                format!("the response cannot be stored: {e}"),
            )
        })
    }
}

/// An agent handler's outcome for the engine.
pub(crate) fn outcome(result: Result<Value, AgentError>) -> EffectOutcome {
    match result {
        Ok(value) => EffectOutcome::Completed(value),
        Err(e) => match e.retry_after_ms.filter(|_| e.retryable()) {
            Some(after_ms) => EffectOutcome::RetryAfter {
                error: e.to_string(),
                after_ms,
            },
            None => EffectOutcome::Failed {
                retryable: e.retryable(),
                error: e.to_string(),
            },
        },
    }
}

impl EffectHandler for LlmCallHandler {
    fn handle(&self, call: &EffectCall<'_>) -> EffectOutcome {
        let span = tracing::info_span!(
            "llm_call",
            run_id = %call.run_id,
            idempotency_key = call.idempotency_key,
            attempt = call.attempt,
            provider = self.provider.name(),
        );
        let _entered = span.enter();
        let result = self.call(call);
        if let Err(e) = &result {
            tracing::warn!(
                code = e.code.as_str(),
                retryable = e.retryable(),
                "llm_call failed"
            );
        }
        outcome(result)
    }
}
