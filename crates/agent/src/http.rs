//! The one HTTP call both remote peers make (the chat-completions provider and the remote
//! tool worker): a JSON POST with a timeout, the effect's idempotency key as a header, and
//! its failures sorted into retryable (timeouts, refused connections, 429, 5xx) and not
//! (other statuses, a malformed body), with secrets scrubbed from every message.

use std::time::Duration;

use serde_json::Value;

use crate::error::{AgentError, ErrorCode};
use crate::secret::{url_for_messages, Secret};

/// The header that carries the effect's idempotency key, the same on every attempt and
/// after a crash, so a peer that deduplicates answers a repeat once.
pub const IDEMPOTENCY_HEADER: &str = "Idempotency-Key";

/// Most bytes of a peer's error body quoted in a message.
const QUOTED_BODY_MAX: usize = 300;

/// The longest `Retry-After` honoured: a peer asking for more is retried after this.
const RETRY_AFTER_MS_MAX: u64 = 10 * 60 * 1_000;

/// The wait a response asks for: `retry-after-ms` (milliseconds, as OpenAI and Azure
/// send it) or `retry-after` in seconds; an HTTP date is not read (the policy's backoff
/// applies).
fn retry_after_ms(headers: &ureq::http::HeaderMap) -> Option<u64> {
    let number = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<f64>().ok())
            .filter(|v| v.is_finite() && *v >= 0.0)
    };
    let ms = number("retry-after-ms").or_else(|| number("retry-after").map(|s| s * 1_000.0))?;
    Some((ms.ceil() as u64).min(RETRY_AFTER_MS_MAX))
}

/// A blocking JSON client for one peer: its timeout, its bearer token, the most bytes of
/// an answer it reads.
#[derive(Clone)]
pub(crate) struct JsonClient {
    agent: ureq::Agent,
    timeout: Duration,
    /// The bearer token, if the peer needs one (scrubbed from every message too).
    token: Option<Secret>,
    /// Most bytes of a response body read.
    body_bytes_max: u64,
}

impl std::fmt::Debug for JsonClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JsonClient")
            .field("timeout", &self.timeout)
            .field("token", &self.token)
            .finish_non_exhaustive()
    }
}

impl JsonClient {
    pub(crate) fn new(timeout: Duration, body_bytes_max: u64) -> Self {
        let agent = ureq::Agent::config_builder()
            .timeout_global(Some(timeout))
            .http_status_as_error(false)
            .build()
            .new_agent();
        JsonClient {
            agent,
            timeout,
            token: None,
            body_bytes_max,
        }
    }

    /// The same client sending `token` as its bearer token.
    pub(crate) fn with_token(self, token: Secret) -> Self {
        JsonClient {
            token: Some(token),
            ..self
        }
    }

    /// The same client with calls that time out after `timeout`.
    pub(crate) fn with_timeout(self, timeout: Duration) -> Self {
        JsonClient {
            token: self.token,
            ..JsonClient::new(timeout, self.body_bytes_max)
        }
    }

    fn scrub(&self, text: &str) -> String {
        match &self.token {
            Some(token) => token.scrub(text),
            None => text.to_owned(),
        }
    }

    /// POSTs `body` to `url` and returns the JSON answer of a 2xx response.
    pub(crate) fn post(
        &self,
        url: &str,
        idempotency_key: &str,
        body: &Value,
    ) -> Result<Value, AgentError> {
        let shown = url_for_messages(url);
        let mut request = self
            .agent
            .post(url)
            .header("Content-Type", "application/json")
            .header(IDEMPOTENCY_HEADER, idempotency_key);
        if let Some(token) = &self.token {
            request = request.header("Authorization", format!("Bearer {}", token.expose()));
        }
        let mut response = request
            .send(body.to_string().as_bytes())
            .map_err(|e| self.transport_error(&shown, e))?;
        let status = response.status().as_u16();
        let asked_wait = retry_after_ms(response.headers());
        let text = response
            .body_mut()
            .with_config()
            .limit(self.body_bytes_max)
            .read_to_string()
            .map_err(|e| match e {
                ureq::Error::BodyExceedsLimit(limit) => AgentError::new(
                    ErrorCode::ResultTooLarge,
                    format!("{shown} answered HTTP {status} with a body over {limit} bytes"),
                ),
                e => self.transport_error(&shown, e),
            })?;
        if !(200..300).contains(&status) {
            let code = match status {
                429 => ErrorCode::RateLimited,
                408 => ErrorCode::Timeout,
                500..=599 => ErrorCode::ServerError,
                _ => ErrorCode::HttpStatus,
            };
            return Err(AgentError::new(
                code,
                format!("{shown} answered HTTP {status}: {}", self.quote(&text)),
            )
            .retry_after_ms(asked_wait));
        }
        serde_json::from_str(&text).map_err(|e| {
            AgentError::new(
                ErrorCode::MalformedResponse,
                format!(
                    "{shown} answered HTTP {status} with a body that is not JSON ({e}): {}",
                    self.quote(&text)
                ),
            )
        })
    }

    /// The start of a peer's body, secrets scrubbed, for a message.
    pub(crate) fn quote(&self, text: &str) -> String {
        let mut end = text.len().min(QUOTED_BODY_MAX);
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        let more = if end < text.len() { "…" } else { "" };
        format!("{:?}{more}", self.scrub(&text[..end]))
    }

    fn transport_error(&self, shown: &str, e: ureq::Error) -> AgentError {
        let code = match &e {
            ureq::Error::Timeout(_) => ErrorCode::Timeout,
            ureq::Error::Io(io) if io.kind() == std::io::ErrorKind::TimedOut => ErrorCode::Timeout,
            ureq::Error::BadUri(_) | ureq::Error::RequireHttpsOnly(_) => ErrorCode::InvalidRequest,
            _ => ErrorCode::Connect,
        };
        AgentError::new(code, self.scrub(&format!("calling {shown}: {e}")))
    }
}
