//! The API's one error shape, `{"code", "message"}` with an HTTP status, and how every
//! library error maps to it.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use ledgerflow_kernel::ErrorKind;
use serde_json::json;

/// An error answer: an HTTP status and a JSON body `{"code": "...", "message": "..."}`.
/// `code` is a stable snake_case name (the library's [`ErrorKind`] names, plus the API's
/// own: `unauthorized`, `forbidden`, `invalid_json`, `unsupported_media_type`,
/// `body_too_large`, `rate_limited`, `not_supported`, `no_route`, `method_not_allowed`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// The HTTP status.
    pub status: StatusCode,
    /// The stable code.
    pub code: &'static str,
    /// What was wrong, for a person.
    pub message: String,
}

impl ApiError {
    /// An error with this status, code and message.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
        }
    }

    /// 400 `invalid_input`.
    pub fn invalid(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, "invalid_input", message)
    }

    /// 404 `not_found`.
    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    /// The status an error of this kind answers with.
    fn status_of(kind: ErrorKind) -> StatusCode {
        match kind {
            ErrorKind::NotFound => StatusCode::NOT_FOUND,
            ErrorKind::InvalidInput | ErrorKind::LimitExceeded => StatusCode::BAD_REQUEST,
            ErrorKind::Conflict | ErrorKind::InvalidState | ErrorKind::Cancelled => {
                StatusCode::CONFLICT
            }
            ErrorKind::NotRegistered => StatusCode::UNPROCESSABLE_ENTITY,
            ErrorKind::Closed => StatusCode::SERVICE_UNAVAILABLE,
            ErrorKind::Timeout => StatusCode::GATEWAY_TIMEOUT,
            // The request was fine; the store or the server was not.
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The answer for a library error of `kind`.
    pub fn of_kind(kind: ErrorKind, message: String) -> ApiError {
        ApiError {
            status: ApiError::status_of(kind),
            code: kind.as_str(),
            message,
        }
    }
}

impl From<ledgerflow_kernel::Error> for ApiError {
    fn from(e: ledgerflow_kernel::Error) -> ApiError {
        ApiError::of_kind(e.kind(), e.to_string())
    }
}

impl From<ledgerflow_kernel::store::Error> for ApiError {
    fn from(e: ledgerflow_kernel::store::Error) -> ApiError {
        ApiError::of_kind(e.kind(), e.to_string())
    }
}

impl From<ledgerflow_scheduler::Error> for ApiError {
    fn from(e: ledgerflow_scheduler::Error) -> ApiError {
        ApiError::of_kind(e.kind(), e.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = Json(json!({ "code": self.code, "message": self.message }));
        (self.status, body).into_response()
    }
}

/// What a handler answers.
pub type ApiResult<T> = Result<T, ApiError>;
