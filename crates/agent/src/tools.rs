//! `tool_calls`: running the tools a model asked for — Rust functions in a registry
//! (local), a tool worker over HTTP (remote), or the host answering later (passthrough) —
//! and the results the ledger keeps, one per call, failures included.

use std::collections::BTreeMap;
use std::sync::{mpsc, Arc};
use std::time::Duration;

use ledgerflow_kernel::{EffectCall, EffectHandler, EffectOutcome, RunId};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::error::{AgentError, ErrorCode};
use crate::http::JsonClient;
use crate::llm::{empty_object_schema, outcome, ToolCall, ToolSpec};
use crate::secret::Secret;

/// The prefix of the wait key a passthrough `tool_calls` waits on; the rest is the
/// effect's idempotency key.
pub const PASSTHROUGH_PREFIX: &str = "tools:";

/// Why one tool call failed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ToolFailure {
    /// `unknown_tool`, `tool_failed`, `timeout`, `result_too_large`, …
    pub code: ErrorCode,
    /// What went wrong.
    pub message: String,
}

/// The result of one tool call: its output, or why it failed. A failed call does not
/// fail the run: the model is told (see [`crate::Message::tool`]) and decides.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ToolResult {
    /// The call it answers.
    pub id: String,
    /// The tool.
    pub name: String,
    /// The tool's output, if it succeeded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<Value>,
    /// Why it failed, if it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ToolFailure>,
}

impl ToolResult {
    /// Call `call` succeeded with `output`.
    pub fn ok(call: &ToolCall, output: Value) -> ToolResult {
        ToolResult {
            id: call.id.clone(),
            name: call.name.clone(),
            output: Some(output),
            error: None,
        }
    }

    /// Call `call` failed.
    pub fn failed(call: &ToolCall, code: ErrorCode, message: impl Into<String>) -> ToolResult {
        ToolResult {
            id: call.id.clone(),
            name: call.name.clone(),
            output: None,
            error: Some(ToolFailure {
                code,
                message: message.into(),
            }),
        }
    }
}

/// The `tool_calls` effect's result: `{"results": [...]}`, one per call, in call order.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ToolResults {
    /// One result a call.
    pub results: Vec<ToolResult>,
}

impl ToolResults {
    /// The results a `tool_calls` stored in `vars` (its result value).
    pub fn from_value(value: &Value) -> Result<ToolResults, AgentError> {
        serde_json::from_value(value.clone()).map_err(|e| {
            AgentError::new(
                ErrorCode::InvalidRequest,
                format!("not a tool_calls result: {e}"),
            )
        })
    }

    /// Checks that these results answer `calls`: one each, same ids, same order.
    pub fn check_answers(&self, calls: &[ToolCall]) -> Result<(), AgentError> {
        let ids = |ids: Vec<&str>| ids.join(", ");
        let given: Vec<&str> = self.results.iter().map(|r| r.id.as_str()).collect();
        let asked: Vec<&str> = calls.iter().map(|c| c.id.as_str()).collect();
        if given != asked {
            return Err(AgentError::new(
                ErrorCode::InvalidSubmission,
                format!(
                    "results for calls [{}] do not answer the calls [{}]",
                    ids(given),
                    ids(asked)
                ),
            ));
        }
        Ok(())
    }
}

/// The `tool_calls` effect's payload.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct ToolCallsPayload {
    pub(crate) calls: Vec<ToolCall>,
}

/// What a tool is told about the call it runs.
#[derive(Clone, Debug)]
pub struct ToolContext {
    /// The run that asked.
    pub run_id: RunId,
    /// `<effect idempotency key>/<call id>`: the same on every attempt and after a
    /// crash; pass it to anything that can deduplicate.
    pub idempotency_key: String,
}

type ToolFn = dyn Fn(&Value, &ToolContext) -> Result<Value, String> + Send + Sync;

struct Tool {
    spec: ToolSpec,
    timeout: Duration,
    run: Arc<ToolFn>,
}

/// Rust functions the model may call, by name (local tools).
///
/// ```
/// use ledgerflow_agent::ToolRegistry;
/// use serde_json::json;
///
/// let tools = ToolRegistry::new().tool(
///     "add",
///     "Adds a and b",
///     json!({"type": "object", "properties": {"a": {"type": "number"}, "b": {"type": "number"}}}),
///     |args, _| Ok(json!(args["a"].as_f64().unwrap_or(0.0) + args["b"].as_f64().unwrap_or(0.0))),
/// );
/// assert_eq!(tools.specs()[0].name, "add");
/// ```
#[derive(Clone)]
pub struct ToolRegistry {
    tools: BTreeMap<String, Arc<Tool>>,
    timeout: Duration,
    result_bytes_max: usize,
}

impl Default for ToolRegistry {
    fn default() -> Self {
        ToolRegistry::new()
    }
}

impl ToolRegistry {
    /// No tools; each call may take 30 s and return up to 1 MiB of JSON.
    pub fn new() -> ToolRegistry {
        ToolRegistry {
            tools: BTreeMap::new(),
            timeout: Duration::from_secs(30),
            result_bytes_max: 1 << 20,
        }
    }

    /// Registers tool `name` (replacing one of that name). `run` gets the call's arguments
    /// and returns its output, or an error the model is told of (`tool_failed`).
    pub fn tool(
        mut self,
        name: impl Into<String>,
        description: impl Into<String>,
        parameters: Value,
        run: impl Fn(&Value, &ToolContext) -> Result<Value, String> + Send + Sync + 'static,
    ) -> ToolRegistry {
        let name = name.into();
        let parameters = if parameters.is_null() {
            empty_object_schema()
        } else {
            parameters
        };
        let tool = Tool {
            spec: ToolSpec {
                name: name.clone(),
                description: description.into(),
                parameters,
            },
            timeout: self.timeout,
            run: Arc::new(run),
        };
        self.tools.insert(name, Arc::new(tool));
        self
    }

    /// How long each tool registered after this may run before its call fails with
    /// `timeout` (the tool's thread is left to finish on its own; its result is dropped).
    pub fn timeout(mut self, timeout: Duration) -> ToolRegistry {
        self.timeout = timeout;
        self
    }

    /// Most bytes of one call's output (as JSON); a larger one fails the call with
    /// `result_too_large`. The engine's own `value_bytes_max` bounds the whole result.
    pub fn result_bytes_max(mut self, bytes: usize) -> ToolRegistry {
        self.result_bytes_max = bytes;
        self
    }

    /// The tools, to offer to the model (`ChatRequest::tools`).
    pub fn specs(&self) -> Vec<ToolSpec> {
        self.tools.values().map(|t| t.spec.clone()).collect()
    }

    /// Runs `calls` one after another, as a `tool_calls` effect with idempotency key `key`
    /// of run `run_id` does: one result a call, in call order. What a passthrough host
    /// calls to answer a run's calls with Rust tools of its own.
    pub fn run(&self, run_id: RunId, key: &str, calls: &[ToolCall]) -> Vec<ToolResult> {
        calls
            .iter()
            .map(|c| {
                let context = ToolContext {
                    run_id,
                    idempotency_key: format!("{key}/{}", c.id),
                };
                self.run_one(c, context)
            })
            .collect()
    }

    fn run_one(&self, call: &ToolCall, context: ToolContext) -> ToolResult {
        let Some(tool) = self.tools.get(&call.name).cloned() else {
            return ToolResult::failed(
                call,
                ErrorCode::UnknownTool,
                format!("no tool is named {:?}", call.name),
            );
        };
        let span = tracing::info_span!("tool", name = %call.name, call_id = %call.id);
        let _entered = span.enter();
        let (send, receive) = mpsc::channel();
        let arguments = call.arguments.clone();
        let run = Arc::clone(&tool.run);
        let spawned = std::thread::Builder::new()
            .name(format!("tool-{}", call.name))
            .spawn(move || {
                let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    run(&arguments, &context)
                }))
                .unwrap_or_else(|_| Err("the tool panicked".to_owned()));
                let _ = send.send(result);
            });
        if let Err(e) = spawned {
            return ToolResult::failed(call, ErrorCode::ToolFailed, format!("no thread: {e}"));
        }
        match receive.recv_timeout(tool.timeout) {
            Ok(Ok(output)) => {
                let size = output.to_string().len();
                if size > self.result_bytes_max {
                    ToolResult::failed(
                        call,
                        ErrorCode::ResultTooLarge,
                        format!(
                            "the output is {size} bytes, over the bound of {}",
                            self.result_bytes_max
                        ),
                    )
                } else {
                    ToolResult::ok(call, output)
                }
            }
            Ok(Err(message)) => ToolResult::failed(call, ErrorCode::ToolFailed, message),
            Err(_) => ToolResult::failed(
                call,
                ErrorCode::Timeout,
                format!("no result within {} ms", tool.timeout.as_millis()),
            ),
        }
    }
}

/// A tool worker over HTTP: `POST url` with `{"run_id", "idempotency_key", "calls":
/// [{"id", "name", "arguments"}]}` and the `Idempotency-Key` header; it answers 200 with
/// `{"results": [{"id", "name", "output"} | {"id", "name", "error": {"code", "message"}}]}`,
/// one per call in call order (docs/agent.md).
#[derive(Clone)]
pub struct RemoteTools {
    url: String,
    client: JsonClient,
}

impl std::fmt::Debug for RemoteTools {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteTools")
            .field("url", &crate::secret::url_for_messages(&self.url))
            .field("client", &self.client)
            .finish()
    }
}

/// Most bytes of a tool worker's answer read.
const WORKER_ANSWER_BYTES_MAX: u64 = 16 << 20;

impl RemoteTools {
    /// The worker at `url`; calls time out after 60 s.
    pub fn new(url: impl Into<String>) -> RemoteTools {
        RemoteTools {
            url: url.into(),
            client: JsonClient::new(Duration::from_secs(60), WORKER_ANSWER_BYTES_MAX),
        }
    }

    /// Sends `token` as the bearer token.
    pub fn token(self, token: Secret) -> RemoteTools {
        RemoteTools {
            client: self.client.with_token(token),
            ..self
        }
    }

    /// How long one request may take (all its calls).
    pub fn timeout(self, timeout: Duration) -> RemoteTools {
        RemoteTools {
            client: self.client.with_timeout(timeout),
            ..self
        }
    }

    fn run(&self, run_id: RunId, key: &str, calls: &[ToolCall]) -> Result<Value, AgentError> {
        let body = json!({ "run_id": run_id.to_string(), "idempotency_key": key, "calls": calls });
        let answer = self.client.post(&self.url, key, &body)?;
        let results = ToolResults::from_value(&answer).map_err(|e| {
            AgentError::new(
                ErrorCode::MalformedResponse,
                format!(
                    "the tool worker's answer is not {{\"results\": [...]}} ({}): {}",
                    e.message,
                    self.client.quote(&answer.to_string())
                ),
            )
        })?;
        results.check_answers(calls).map_err(|e| {
            AgentError::new(
                ErrorCode::MalformedResponse,
                format!("the tool worker's {}", e.message),
            )
        })?;
        Ok(answer)
    }
}

/// Where `tool_calls` effects run.
#[derive(Clone)]
pub enum ToolBackend {
    /// Rust functions in this process.
    Local(ToolRegistry),
    /// A tool worker over HTTP.
    Remote(RemoteTools),
    /// The host runs them: the run waits on `tools:<idempotency key>` until the host
    /// delivers `{"results": [...]}` there (see [`passthrough_wait_key`]).
    Passthrough,
}

/// The wait key a passthrough `tool_calls` with idempotency key `key` waits on.
pub fn passthrough_wait_key(key: &str) -> String {
    format!("{PASSTHROUGH_PREFIX}{key}")
}

/// The effect handler of `tool_calls`.
#[derive(Clone)]
pub struct ToolCallsHandler {
    backend: ToolBackend,
}

impl ToolCallsHandler {
    /// The handler that runs calls on `backend`.
    pub fn new(backend: ToolBackend) -> ToolCallsHandler {
        ToolCallsHandler { backend }
    }

    fn calls(call: &EffectCall<'_>) -> Result<Vec<ToolCall>, AgentError> {
        let payload: ToolCallsPayload =
            serde_json::from_value(call.payload.clone()).map_err(|e| {
                AgentError::new(
                    ErrorCode::InvalidRequest,
                    format!("the tool_calls payload is not {{\"calls\": [...]}}: {e}"),
                )
            })?;
        Ok(payload.calls)
    }
}

impl EffectHandler for ToolCallsHandler {
    fn handle(&self, call: &EffectCall<'_>) -> EffectOutcome {
        let span = tracing::info_span!(
            "tool_calls",
            run_id = %call.run_id,
            idempotency_key = call.idempotency_key,
            attempt = call.attempt,
        );
        let _entered = span.enter();
        let calls = match ToolCallsHandler::calls(call) {
            Ok(calls) => calls,
            Err(e) => return outcome(Err(e)),
        };
        match &self.backend {
            ToolBackend::Local(registry) => {
                let results = registry.run(call.run_id, call.idempotency_key, &calls);
                outcome(serde_json::to_value(ToolResults { results }).map_err(|e| {
                    AgentError::new(ErrorCode::ToolFailed, format!("unstorable results: {e}"))
                }))
            }
            ToolBackend::Remote(worker) => {
                outcome(worker.run(call.run_id, call.idempotency_key, &calls))
            }
            ToolBackend::Passthrough => EffectOutcome::Waiting {
                wait_key: passthrough_wait_key(call.idempotency_key),
            },
        }
    }
}
