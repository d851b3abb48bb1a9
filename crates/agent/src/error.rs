//! The typed failure of an agent effect: a stable code, a message that never holds a
//! secret, and whether trying again might succeed (the engine's retry policy decides when).

use std::fmt;

use serde::{Deserialize, Serialize};

/// What kind of failure an [`AgentError`] or a tool's [`crate::ToolFailure`] is. The code
/// is the first word of the effect's error in the ledger (`malformed_response: …`), so
/// an auditor or a dashboard can group failures without parsing prose.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// No answer within the timeout. Retryable.
    Timeout,
    /// The peer could not be reached (refused, reset, no such host). Retryable.
    Connect,
    /// HTTP 429: the peer asks to slow down. Retryable.
    RateLimited,
    /// HTTP 5xx. Retryable.
    ServerError,
    /// Another HTTP status (a 4xx: a bad request, a wrong key): trying again would fail
    /// the same way. Not retryable.
    HttpStatus,
    /// The peer answered 2xx with a body that is not the documented JSON. Not retryable.
    MalformedResponse,
    /// The effect's payload is not a valid request (a node built it wrong). Not
    /// retryable.
    InvalidRequest,
    /// A tool call named a tool no registry or worker has.
    UnknownTool,
    /// A tool ran and reported failure.
    ToolFailed,
    /// A result over its byte bound.
    ResultTooLarge,
    /// A passthrough submission that does not answer the calls it was asked for.
    InvalidSubmission,
    /// A person declined the call (an approval the agent loop asked for).
    Declined,
}

impl ErrorCode {
    /// The code as it appears in records: `snake_case`.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::Timeout => "timeout",
            ErrorCode::Connect => "connect",
            ErrorCode::RateLimited => "rate_limited",
            ErrorCode::ServerError => "server_error",
            ErrorCode::HttpStatus => "http_status",
            ErrorCode::MalformedResponse => "malformed_response",
            ErrorCode::InvalidRequest => "invalid_request",
            ErrorCode::UnknownTool => "unknown_tool",
            ErrorCode::ToolFailed => "tool_failed",
            ErrorCode::ResultTooLarge => "result_too_large",
            ErrorCode::InvalidSubmission => "invalid_submission",
            ErrorCode::Declined => "declined",
        }
    }

    /// Whether a failure of this kind may succeed when tried again.
    pub fn retryable(self) -> bool {
        matches!(
            self,
            ErrorCode::Timeout
                | ErrorCode::Connect
                | ErrorCode::RateLimited
                | ErrorCode::ServerError
        )
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A failed `llm_call` or `tool_calls` effect. Its text (`code: message`) is what the
/// ledger's `effect_failed` record keeps, so it never holds a secret: API keys are
/// redacted from every message built from a peer's answer.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct AgentError {
    /// What kind of failure.
    pub code: ErrorCode,
    /// What went wrong, for a person.
    pub message: String,
    /// How long the peer asked to be left alone before the next attempt (its
    /// `Retry-After`), if it said; the engine waits at least this long.
    pub retry_after_ms: Option<u64>,
}

impl AgentError {
    /// A failure of kind `code`.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> AgentError {
        AgentError {
            code,
            message: message.into(),
            retry_after_ms: None,
        }
    }

    /// The same failure, to be tried again no sooner than `ms` from now.
    pub fn retry_after_ms(mut self, ms: Option<u64>) -> AgentError {
        self.retry_after_ms = ms;
        self
    }

    /// Whether trying again may succeed.
    pub fn retryable(&self) -> bool {
        self.code.retryable()
    }
}
