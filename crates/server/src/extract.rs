//! Reading requests: JSON bodies (content type, size, syntax checked, errors as
//! [`ApiError`]), query parameters checked against the ones a route knows, run ids, and
//! who the caller is.

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use ledgerflow_kernel::RunId;
use serde::de::DeserializeOwned;

use crate::auth::{Caller, Role};
use crate::error::ApiError;

/// A JSON request body of type `T`: `Content-Type: application/json` (415 otherwise),
/// within the server's body limit (413), valid JSON of the expected shape (400
/// `invalid_json`, naming what was wrong). An empty body reads as `{}`.
pub struct JsonBody<T>(pub T);

impl<S, T> FromRequest<S> for JsonBody<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let content_type = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(|v| {
                v.split(';')
                    .next()
                    .unwrap_or_default()
                    .trim()
                    .to_ascii_lowercase()
            });
        let bytes = Bytes::from_request(req, state).await.map_err(|e| {
            if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "body_too_large",
                    "the request body is larger than the server's limit (--body-bytes-max)",
                )
            } else {
                ApiError::new(e.status(), "invalid_input", e.body_text())
            }
        })?;
        let text: &[u8] = if bytes.iter().all(u8::is_ascii_whitespace) {
            b"{}"
        } else {
            match content_type.as_deref() {
                Some("application/json") => &bytes,
                other => {
                    return Err(ApiError::new(
                        StatusCode::UNSUPPORTED_MEDIA_TYPE,
                        "unsupported_media_type",
                        format!(
                            "the body must be JSON with Content-Type: application/json, not {}",
                            other.unwrap_or("no content type")
                        ),
                    ))
                }
            }
        };
        serde_json::from_slice(text).map(JsonBody).map_err(|e| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_json",
                format!("invalid request body: {e}"),
            )
        })
    }
}

/// The query parameters of a request, each at most once.
pub struct Params(HashMap<String, String>);

impl<S: Send + Sync> FromRequestParts<S> for Params {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        let mut out = HashMap::new();
        let query = parts.uri.query().unwrap_or_default();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            let name = decode(name)?;
            let value = decode(value)?;
            if out.insert(name.clone(), value).is_some() {
                return Err(ApiError::invalid(format!(
                    "query parameter {name:?} is given twice"
                )));
            }
        }
        Ok(Params(out))
    }
}

/// Percent-decodes one query component (`+` is a space).
fn decode(text: &str) -> Result<String, ApiError> {
    let bad = || ApiError::invalid(format!("query text {text:?} is not valid percent-encoding"));
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = bytes.get(i + 1..i + 3).ok_or_else(bad)?;
                let hex = std::str::from_utf8(hex).map_err(|_| bad())?;
                out.push(u8::from_str_radix(hex, 16).map_err(|_| bad())?);
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).map_err(|_| bad())
}

impl Params {
    /// Refuses any parameter not in `known`, naming it and the ones the route takes.
    pub fn only(&self, known: &[&str]) -> Result<(), ApiError> {
        match self.0.keys().find(|k| !known.contains(&k.as_str())) {
            Some(name) => Err(ApiError::invalid(format!(
                "unknown query parameter {name:?}; this endpoint takes: {}",
                if known.is_empty() {
                    "none".to_owned()
                } else {
                    known.join(", ")
                }
            ))),
            None => Ok(()),
        }
    }

    /// The parameter's text.
    pub fn text(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }

    /// The parameter parsed, or a 400 naming it.
    pub fn parse<T: std::str::FromStr>(
        &self,
        name: &str,
        what: &str,
    ) -> Result<Option<T>, ApiError> {
        match self.text(name) {
            None => Ok(None),
            Some(text) => text.parse().map(Some).map_err(|_| {
                ApiError::invalid(format!("query parameter {name}={text:?} is not {what}"))
            }),
        }
    }

    /// A `true`/`false` parameter.
    pub fn flag(&self, name: &str) -> Result<bool, ApiError> {
        Ok(self.parse::<bool>(name, "true or false")?.unwrap_or(false))
    }
}

/// A run id from a path segment (400 naming it when it is not a UUID).
pub fn run_id(text: &str) -> Result<RunId, ApiError> {
    text.parse()
        .map_err(|_| ApiError::invalid(format!("{text:?} is not a run id (a UUID)")))
}

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        // The auth layer puts the caller in every /api request; a route outside it that
        // asks for one gets nobody with any right.
        parts
            .extensions
            .get::<Caller>()
            .cloned()
            .ok_or_else(|| ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", "no caller"))
    }
}

/// The caller of a route that changes something: must have the `operate` role.
pub struct Operator(pub Caller);

impl<S: Send + Sync> FromRequestParts<S> for Operator {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let caller = Caller::from_request_parts(parts, state).await?;
        if caller.role < Role::Operate {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "forbidden",
                format!(
                    "token {:?} has the read role; this action needs operate",
                    caller.name.as_deref().unwrap_or("")
                ),
            ));
        }
        Ok(Operator(caller))
    }
}
