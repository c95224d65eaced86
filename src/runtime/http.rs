//! What every HTTP function speaks, whichever way the request arrived (the Functions host's
//! payload or `serve`'s own listener): the request, the response, the one error shape
//! `{"error": …}`, and the timer trigger's `TimerInfo`.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::json;

use crate::model::Timestamp;
use crate::store::StoreError;

/// The timer trigger's `TimerInfo`. Every field is optional on the wire (`ScheduleStatus` is null
/// without the monitor); bad timestamps are ignored rather than failing a scheduled run.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TimerInfo {
    pub is_past_due: bool,
    pub last: Option<Timestamp>,
    pub next: Option<Timestamp>,
}

/// An HTTP request as every HTTP function sees it, whichever way it arrived (host payload or
/// serve mode's own listener).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HttpRequest {
    pub method: String,
    pub url: String,
    pub query: BTreeMap<String, String>,
    /// Lower-cased header names; the host sends arrays of values.
    pub headers: BTreeMap<String, Vec<String>>,
    /// Route parameters (`{id}` in `executions/{id}`).
    pub params: BTreeMap<String, String>,
    pub body: Option<String>,
}

impl HttpRequest {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .get(&name.to_ascii_lowercase())
            .and_then(|values| values.first())
            .map(String::as_str)
    }
}

/// An HTTP response; in payload mode it travels as `Outputs.res`.
#[derive(Debug, Clone, PartialEq)]
pub struct HttpResponse {
    pub status: u16,
    /// In order; header values are strings because the host writes them with `ToString()`.
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl HttpResponse {
    pub fn json(status: u16, body: &impl Serialize) -> Self {
        let body = serde_json::to_string(body).unwrap_or_else(|e| {
            json!({ "error": format!("serializing response: {e}") }).to_string()
        });
        HttpResponse {
            status,
            headers: vec![("Content-Type".to_owned(), "application/json".to_owned())],
            body,
        }
    }

    pub fn with_header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    /// The one error shape of every HTTP function: `{"error": message}`.
    pub fn error(status: u16, message: impl Into<String>) -> Self {
        HttpResponse::json(
            status,
            &ErrorBody {
                error: message.into(),
            },
        )
    }
    /// Answers with `no-store`: every body here depends on who asked.
    pub fn private_json(status: u16, body: &impl Serialize) -> Self {
        HttpResponse::json(status, body).with_header("Cache-Control", "no-store")
    }
}

/// The body of every error answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct ErrorBody {
    /// What is wrong, for a person to read (names the parameter at fault).
    pub error: String,
}

/// A request that cannot be answered: the status and the message of `{"error": message}`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{status}: {message}")]
pub struct ApiError {
    pub status: u16,
    pub message: String,
}

impl ApiError {
    pub fn new(status: u16, message: impl Into<String>) -> Self {
        ApiError {
            status,
            message: message.into(),
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(400, message)
    }

    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(401, message)
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(403, message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(404, message)
    }
}

impl From<StoreError> for ApiError {
    /// Store failures the caller caused (a stale token) are 400; the store being down is 503 so
    /// clients retry; anything else is a 500 whose detail goes to the log, not to the caller.
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::BadContinuation => {
                ApiError::bad_request("continuationToken is not valid for this query")
            }
            StoreError::Unavailable(detail) => {
                tracing::warn!(%detail, "store unavailable");
                ApiError::new(503, "the store is temporarily unavailable; retry shortly")
            }
            other => {
                tracing::error!(error = %other, "store error while serving a request");
                ApiError::new(500, "internal error reading the store")
            }
        }
    }
}

impl From<ApiError> for HttpResponse {
    fn from(error: ApiError) -> Self {
        HttpResponse::error(error.status, error.message)
    }
}

/// A positive integer page size; values above `max` are lowered to it.
pub fn parse_limit(
    name: &str,
    raw: Option<&str>,
    default: usize,
    max: usize,
) -> Result<usize, ApiError> {
    let Some(raw) = raw.map(str::trim) else {
        return Ok(default);
    };
    match raw.parse::<u64>() {
        Ok(0) => Err(ApiError::bad_request(format!("{name} must be at least 1"))),
        Ok(n) => Ok(usize::try_from(n).unwrap_or(usize::MAX).min(max)),
        Err(_) => Err(ApiError::bad_request(format!(
            "{name} must be a positive integer, got {:?}",
            raw.chars().take(32).collect::<String>()
        ))),
    }
}

/// Runs an API handler body and turns its error into the one JSON error shape.
pub fn respond(result: Result<HttpResponse, ApiError>) -> HttpResponse {
    result.unwrap_or_else(HttpResponse::from)
}
