//! Document validation shared by every backend, so a document one store refuses is refused by
//! all of them the same way (and before a Cosmos request is spent on it).

use serde_json::Value;

use super::containers::Container;
use super::contract::string_field;
use super::error::StoreError;
use crate::model::MAX_DOCUMENT_BYTES;

/// System properties a backend assigns; sent-in copies are dropped, never stored as data.
pub const SYSTEM_PROPERTIES: [&str; 6] = ["_etag", "_ts", "_lsn", "_rid", "_self", "_attachments"];

/// A validated document ready to write.
pub struct ValidDocument {
    pub pk: String,
    pub id: String,
    /// The document as written (system properties removed).
    pub doc: Value,
    /// Its serialized form, measured against the size limit.
    pub body: String,
    /// Seconds until expiry; `None` never expires.
    pub ttl: Option<i64>,
}

pub fn validate(container: Container, doc: Value) -> Result<ValidDocument, StoreError> {
    let invalid = |reason: String| StoreError::InvalidDocument {
        container: container.name(),
        reason,
    };
    let Value::Object(mut map) = doc else {
        return Err(invalid("a document must be a JSON object".into()));
    };
    for key in SYSTEM_PROPERTIES {
        map.remove(key);
    }
    let doc = Value::Object(map);
    let id = string_field(&doc, "id")
        .filter(|id| !id.is_empty())
        .ok_or_else(|| invalid("missing string \"id\"".into()))?
        .to_owned();
    let pk_field = container.partition_key_field();
    let pk = string_field(&doc, pk_field)
        .ok_or_else(|| invalid(format!("missing string partition key \"{pk_field}\"")))?
        .to_owned();
    // Cosmos honours a document's `ttl` only when the container has TTL on, and there rejects
    // anything but a positive integer or -1.
    let ttl = match (container.default_ttl(), doc.get("ttl")) {
        (None, _) => None,
        (Some(default), None | Some(Value::Null)) => Some(default),
        (Some(_), Some(value)) => match value.as_i64() {
            Some(-1) => None,
            Some(seconds) if seconds > 0 => Some(seconds),
            _ => {
                return Err(invalid(format!(
                    "\"ttl\" must be a positive integer or -1, not {value}"
                )))
            }
        },
    };
    let body = doc.to_string();
    if body.len() > MAX_DOCUMENT_BYTES {
        return Err(StoreError::TooLarge {
            size: body.len(),
            max: MAX_DOCUMENT_BYTES,
        });
    }
    Ok(ValidDocument {
        pk,
        id,
        doc,
        body,
        ttl,
    })
}

/// Validates a document of a one-partition batch: as `validate`, and in `partition_key`.
pub fn validate_in_partition(
    container: Container,
    partition_key: &str,
    doc: Value,
) -> Result<ValidDocument, StoreError> {
    let valid = validate(container, doc)?;
    if valid.pk != partition_key {
        return Err(StoreError::InvalidDocument {
            container: container.name(),
            reason: format!(
                "batch for partition {partition_key:?} holds a document of partition {:?}",
                valid.pk
            ),
        });
    }
    Ok(valid)
}
