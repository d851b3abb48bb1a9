//! Agent effects for ledgerflow: `llm_call` (a model answers a conversation) and
//! `tool_calls` (the tools it asked for run), in three modes — local (an in-process
//! model and Rust tools), remote (an OpenAI-compatible server; tools passed through to
//! the host or run by a tool worker over HTTP) and hybrid (a remote model, local tools).
//!
//! Both are ordinary custom effects of the engine, so each call is recorded for
//! provenance: the request (messages, model, parameters, tools) in the `effect_requested`
//! record with its idempotency key, before it is sent; the response (content, tool calls,
//! finish reason, token usage, model, latency) in `effect_completed`; large bodies as
//! artifacts, by digest. A call that completed is never made again, on resume or after a
//! crash; one requested but not completed at a crash is made again with the same
//! idempotency key (the HTTP peers get it as the `Idempotency-Key` header). Failures are
//! typed ([`ErrorCode`]): timeouts, refused connections, 429 and 5xx are retried by the
//! engine's retry policy on durable timers; other statuses and malformed answers fail
//! the run with the code in its record. API keys ([`Secret`]) travel only in headers.
//!
//! ```
//! use ledgerflow_agent::{AgentEffects, ChatRequest, Message};
//! use ledgerflow_kernel::{Effect, StepPlan};
//!
//! let ask = ChatRequest::new("gpt-4o-mini", vec![Message::user("Summarise the order")]);
//! let plan = StepPlan::effect(Effect::llm_call(&ask).result_key("answer")).then_next("act");
//! # let _ = plan;
//! ```

mod agent_loop;
mod config;
mod error;
mod http;
mod llm;
mod openai;
mod secret;
pub mod stub;
mod tools;

pub use agent_loop::AgentLoop;
pub use config::{
    default_agent_retry, passthrough_submission, AgentConfig, AgentEffects, Mode, LLM_CALL,
    TOOL_CALLS,
};
pub use error::{AgentError, ErrorCode};
pub use http::IDEMPOTENCY_HEADER;
pub use llm::{
    CallContext, ChatRequest, LlmCallHandler, LlmProvider, LlmResponse, Message, Role, ToolCall,
    ToolSpec, Usage,
};
pub use openai::OpenAiCompatible;
pub use secret::Secret;
pub use tools::{
    passthrough_wait_key, RemoteTools, ToolBackend, ToolCallsHandler, ToolContext, ToolFailure,
    ToolRegistry, ToolResult, ToolResults, PASSTHROUGH_PREFIX,
};
