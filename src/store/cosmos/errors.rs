//! Cosmos answers as `StoreError`s: the SDK's errors (HTTP status and message) of single
//! operations, of reaching the account at all, and of a batch's failed sub-result. Not found,
//! conflict and precondition failed are part of the contract; throttling, timeouts and
//! transient failures are `Unavailable`, which callers may retry.

use azure_data_cosmos::CosmosError;

use super::batch::Prepared;
use super::settings::CosmosSettings;
use crate::store::{Container, StoreError};

pub(super) fn describe(e: &CosmosError) -> String {
    // The SDK's Display carries status and server message; keep it on one line.
    e.to_string().replace('\n', " ")
}

/// Errors reaching the account at all: one clear line, transient or not.
pub(super) fn connect_error(settings: &CosmosSettings, e: CosmosError) -> StoreError {
    let status = e.status();
    let hint = if status.is_unauthorized() || status.is_forbidden() {
        " (check the key or the identity's data-plane role)"
    } else {
        ""
    };
    StoreError::Backend(format!(
        "cannot reach Cosmos DB account {}: {}{hint}",
        settings.endpoint,
        describe(&e)
    ))
}

/// Maps an item-level failure. Not-found, conflict and precondition are part of the contract;
/// throttling and transient failures are `Unavailable` (callers retry whole batches).
pub(super) fn item_error(container: Container, id: &str, e: CosmosError) -> StoreError {
    let status = e.status();
    let name = container.name();
    if status.is_not_found() {
        StoreError::NotFound {
            container: name,
            id: id.to_owned(),
        }
    } else if status.is_conflict() {
        StoreError::Conflict {
            container: name,
            id: id.to_owned(),
        }
    } else if status.is_precondition_failed() {
        StoreError::PreconditionFailed {
            container: name,
            id: id.to_owned(),
        }
    } else if u16::from(status.status_code()) == 413 {
        StoreError::InvalidDocument {
            container: name,
            reason: format!("Cosmos refused the document as too large: {}", describe(&e)),
        }
    } else if status.is_bad_request() {
        StoreError::InvalidDocument {
            container: name,
            reason: describe(&e),
        }
    } else {
        other_error(e)
    }
}

pub(super) fn other_error(e: CosmosError) -> StoreError {
    let status = e.status();
    if status.is_throttled() || status.is_transient() || status.is_timeout() {
        StoreError::Unavailable(describe(&e))
    } else {
        StoreError::Backend(describe(&e))
    }
}

/// The error of the operation that failed a batch (which Cosmos rolled back).
pub(super) fn batch_failure(
    container: Container,
    op: &Prepared,
    status: u16,
    sub_status: Option<u32>,
) -> StoreError {
    let id = op.id().to_owned();
    let name = container.name();
    match (status, op) {
        (409, _) => StoreError::Conflict { container: name, id },
        (412, _) => StoreError::PreconditionFailed { container: name, id },
        // A conditional upsert of a missing document cannot match its ETag.
        (404, Prepared::Upsert { .. }) => StoreError::PreconditionFailed { container: name, id },
        (404, _) => StoreError::NotFound { container: name, id },
        (413, _) => StoreError::TooLarge {
            size: 0,
            max: crate::model::MAX_DOCUMENT_BYTES,
        },
        (400, _) => StoreError::InvalidDocument {
            container: name,
            reason: format!("Cosmos refused the batch operation on {id:?} (sub-status {sub_status:?})"),
        },
        (429 | 408 | 503, _) => StoreError::Unavailable(format!(
            "batch operation on {id:?} failed with {status}; the batch was rolled back"
        )),
        _ => StoreError::Backend(format!(
            "batch operation on {id:?} failed with {status} (sub-status {sub_status:?}); the batch was rolled back"
        )),
    }
}
