//! The built-in remote provider: an OpenAI-compatible chat-completions server over HTTP
//! (OpenAI, vLLM, llama.cpp's server, Ollama, LiteLLM, …), translating the ledger's
//! request and response forms to and from the wire's.

use std::time::Duration;

use serde_json::{json, Map, Value};

use crate::error::{AgentError, ErrorCode};
use crate::http::JsonClient;
use crate::llm::{CallContext, ChatRequest, LlmProvider, LlmResponse, Role, ToolCall, Usage};
use crate::secret::Secret;

/// Most bytes of a chat-completions answer read (a larger one is `result_too_large`).
const ANSWER_BYTES_MAX: u64 = 16 << 20;

/// A chat-completions endpoint: `POST {base_url}/chat/completions` with a bearer key.
///
/// ```
/// use std::time::Duration;
/// use ledgerflow_agent::{OpenAiCompatible, Secret};
///
/// let provider = OpenAiCompatible::new("https://api.openai.com/v1")
///     .api_key(Secret::new("sk-…"))
///     .timeout(Duration::from_secs(60));
/// assert_eq!(provider.base_url(), "https://api.openai.com/v1");
/// ```
#[derive(Clone)]
pub struct OpenAiCompatible {
    base_url: String,
    client: JsonClient,
}

impl std::fmt::Debug for OpenAiCompatible {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenAiCompatible")
            .field("base_url", &crate::secret::url_for_messages(&self.base_url))
            .field("client", &self.client)
            .finish()
    }
}

impl OpenAiCompatible {
    /// The server at `base_url` (up to the version: `https://api.openai.com/v1`), no key,
    /// calls that time out after 120 s.
    pub fn new(base_url: impl Into<String>) -> OpenAiCompatible {
        OpenAiCompatible {
            base_url: base_url.into().trim_end_matches('/').to_owned(),
            client: JsonClient::new(Duration::from_secs(120), ANSWER_BYTES_MAX),
        }
    }

    /// Sends `key` as the bearer token.
    pub fn api_key(self, key: Secret) -> OpenAiCompatible {
        OpenAiCompatible {
            client: self.client.with_token(key),
            ..self
        }
    }

    /// How long one call may take before it fails as `timeout` (retryable).
    pub fn timeout(self, timeout: Duration) -> OpenAiCompatible {
        OpenAiCompatible {
            client: self.client.with_timeout(timeout),
            ..self
        }
    }

    /// The server's base URL.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }
}

/// The request in the wire's form: tool calls' arguments as JSON text, tools as functions,
/// parameters at the top level (never overriding `model`, `messages` or `tools`).
pub(crate) fn wire_request(request: &ChatRequest) -> Value {
    let messages: Vec<Value> = request
        .messages
        .iter()
        .map(|m| {
            let mut message = json!({ "role": m.role, "content": m.content });
            if !m.tool_calls.is_empty() {
                message["tool_calls"] = m
                    .tool_calls
                    .iter()
                    .map(|c| {
                        let arguments = match &c.arguments {
                            Value::String(text) => text.clone(),
                            other => other.to_string(),
                        };
                        json!({ "id": c.id, "type": "function",
                                "function": { "name": c.name, "arguments": arguments } })
                    })
                    .collect();
            }
            if m.role == Role::Tool {
                message["tool_call_id"] = json!(m.tool_call_id);
            }
            message
        })
        .collect();
    let mut body = Map::new();
    for (name, value) in &request.parameters {
        body.insert(name.clone(), value.clone());
    }
    body.insert("model".into(), json!(request.model));
    body.insert("messages".into(), Value::Array(messages));
    if !request.tools.is_empty() {
        let tools = request
            .tools
            .iter()
            .map(|t| json!({ "type": "function", "function": t }))
            .collect();
        body.insert("tools".into(), Value::Array(tools));
    }
    Value::Object(body)
}

fn malformed(what: &str) -> AgentError {
    AgentError::new(
        ErrorCode::MalformedResponse,
        format!("the chat-completions answer {what}"),
    )
}

/// The response from the wire's answer: the first choice's message.
pub(crate) fn parse_answer(answer: &Value) -> Result<LlmResponse, AgentError> {
    let choice = answer
        .get("choices")
        .and_then(Value::as_array)
        .and_then(|c| c.first())
        .ok_or_else(|| malformed("has no choices[0]"))?;
    let message = choice
        .get("message")
        .filter(|m| m.is_object())
        .ok_or_else(|| malformed("has no choices[0].message object"))?;
    let content = match message.get("content") {
        None | Some(Value::Null) => None,
        Some(Value::String(text)) => Some(text.clone()),
        Some(_) => {
            return Err(malformed(
                "has a choices[0].message.content that is not text",
            ))
        }
    };
    let tool_calls = match message.get("tool_calls") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(calls)) => calls
            .iter()
            .map(parse_tool_call)
            .collect::<Result<_, _>>()?,
        Some(_) => return Err(malformed("has tool_calls that are not an array")),
    };
    let count = |field: &str| {
        answer
            .get("usage")
            .and_then(|u| u.get(field))
            .and_then(Value::as_u64)
            .unwrap_or(0)
    };
    Ok(LlmResponse {
        content,
        tool_calls,
        finish_reason: choice
            .get("finish_reason")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned(),
        usage: Usage {
            prompt_tokens: count("prompt_tokens"),
            completion_tokens: count("completion_tokens"),
            total_tokens: count("total_tokens"),
        },
        model: answer
            .get("model")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned(),
        provider: "openai-compatible".into(),
        latency_ms: 0,
    })
}

fn parse_tool_call(call: &Value) -> Result<ToolCall, AgentError> {
    let text = |v: Option<&Value>, what: &str| {
        v.and_then(Value::as_str)
            .map(str::to_owned)
            .ok_or_else(|| malformed(&format!("has a tool call without a string {what}")))
    };
    let function = call.get("function");
    let name = text(function.and_then(|f| f.get("name")), "function.name")?;
    let arguments = match function.and_then(|f| f.get("arguments")) {
        None | Some(Value::Null) => Value::Object(Map::new()),
        // The wire carries arguments as JSON text; kept as JSON when it is JSON.
        Some(Value::String(raw)) => {
            serde_json::from_str(raw).unwrap_or_else(|_| Value::String(raw.clone()))
        }
        Some(other) => other.clone(),
    };
    Ok(ToolCall {
        id: text(call.get("id"), "id")?,
        name,
        arguments,
    })
}

impl LlmProvider for OpenAiCompatible {
    fn name(&self) -> &str {
        "openai-compatible"
    }

    fn complete(
        &self,
        request: &ChatRequest,
        call: &CallContext,
    ) -> Result<LlmResponse, AgentError> {
        let url = format!("{}/chat/completions", self.base_url);
        let answer = self
            .client
            .post(&url, &call.idempotency_key, &wire_request(request))?;
        parse_answer(&answer).map_err(|e| {
            AgentError::new(
                e.code,
                format!("{}: {}", e.message, self.client.quote(&answer.to_string())),
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::llm::Message;

    #[test]
    fn requests_and_answers_translate_both_ways() {
        let request = ChatRequest::new(
            "m",
            vec![
                Message::user("hi"),
                Message {
                    role: Role::Assistant,
                    content: None,
                    tool_calls: vec![ToolCall {
                        id: "c1".into(),
                        name: "f".into(),
                        arguments: json!({"x": 1}),
                    }],
                    tool_call_id: None,
                },
            ],
        )
        .parameter("temperature", 0.0)
        .parameter("model", "not this");
        let wire = wire_request(&request);
        assert_eq!(wire["model"], "m");
        assert_eq!(wire["temperature"], 0.0);
        assert_eq!(
            wire["messages"][1]["tool_calls"][0]["function"]["arguments"],
            "{\"x\":1}"
        );
        let answer = json!({
            "model": "m-2024", "choices": [{ "finish_reason": "tool_calls", "message": {
                "role": "assistant", "content": null, "tool_calls": [
                    { "id": "c2", "type": "function", "function": { "name": "g", "arguments": "{\"y\":2}" } },
                    { "id": "c3", "type": "function", "function": { "name": "h", "arguments": "not json" } }
                ] } }],
            "usage": { "prompt_tokens": 5, "completion_tokens": 7, "total_tokens": 12 }
        });
        let response = parse_answer(&answer).expect("an answer");
        assert_eq!(response.tool_calls[0].arguments, json!({"y": 2}));
        assert_eq!(response.tool_calls[1].arguments, json!("not json"));
        assert_eq!(response.usage.total_tokens, 12);
        assert_eq!(response.model, "m-2024");
        for bad in [
            json!({}),
            json!({"choices": []}),
            json!({"choices": [{"message": 1}]}),
        ] {
            let e = parse_answer(&bad).expect_err("malformed");
            assert_eq!(e.code, ErrorCode::MalformedResponse, "{bad}");
        }
    }
}
