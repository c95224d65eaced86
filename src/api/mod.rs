//! The execution query API for the React UI: HTTP functions served the same by the Functions
//! host (`handler`) and by `serve`. Pure parsing and formatting (`params`, `rows`) are kept apart
//! from the handlers that read the store (`executions`, `execution_data`) and from who may read
//! what (`auth`).

pub mod auth;
pub mod execution_data;
pub mod executions;
pub mod metrics;
pub mod params;
pub mod rows;

use crate::host::protocol::HttpResponse;
use crate::store::StoreError;

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

/// Runs an API handler body and turns its error into the one JSON error shape.
pub fn respond(result: Result<HttpResponse, ApiError>) -> HttpResponse {
    result.unwrap_or_else(HttpResponse::from)
}
