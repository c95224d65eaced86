//! Between rows and documents: a stored body and its columns as the document callers see (the
//! system properties `_etag`, `_ts` and `_lsn` live in columns, not in the body), the point read
//! of a live document, and rusqlite's errors as `StoreError`s (busy and locked are transient).

use rusqlite::{params, Connection, OptionalExtension};
use serde_json::Value;

use crate::store::{Container, ETag, StoreError, StoredDocument};

pub(super) fn backend(e: rusqlite::Error) -> StoreError {
    use rusqlite::ErrorCode;
    match e.sqlite_error_code() {
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => {
            StoreError::Unavailable(e.to_string())
        }
        // The path is named by `space::explain`, which every store call goes through.
        Some(ErrorCode::DiskFull) => StoreError::NoSpace {
            path: String::new(),
        },
        _ => StoreError::Backend(e.to_string()),
    }
}

pub(super) fn insert_system_properties(value: &mut Value, etag: &str, ts: i64, lsn: i64) {
    if let Value::Object(map) = value {
        map.insert("_etag".into(), Value::String(etag.to_owned()));
        map.insert("_ts".into(), Value::from(ts));
        map.insert("_lsn".into(), Value::from(lsn));
    }
}

/// A stored body as returned to callers: parsed, with its system properties.
pub(super) fn with_system_properties(
    body: &str,
    etag: &str,
    ts: i64,
    lsn: i64,
) -> Result<Value, StoreError> {
    let mut value: Value = serde_json::from_str(body)
        .map_err(|e| StoreError::Backend(format!("stored body is not JSON: {e}")))?;
    insert_system_properties(&mut value, etag, ts, lsn);
    Ok(value)
}

/// A stored body as JSON text with its system properties appended (bodies never hold them: the
/// store drops sent-in copies), without parsing it.
pub(super) fn text_with_system_properties(
    body: &str,
    etag: &str,
    ts: i64,
    lsn: i64,
) -> Result<String, StoreError> {
    let object = body.trim_end();
    let Some(open) = object.strip_suffix('}') else {
        return Err(StoreError::Backend(
            "stored body is not a JSON object".into(),
        ));
    };
    let etag = serde_json::to_string(etag).map_err(|e| StoreError::Backend(e.to_string()))?;
    let mut text = String::with_capacity(body.len() + etag.len() + 48);
    text.push_str(open);
    if !open.trim_end().ends_with('{') {
        text.push(',');
    }
    text.push_str("\"_etag\":");
    text.push_str(&etag);
    text.push_str(",\"_ts\":");
    text.push_str(&ts.to_string());
    text.push_str(",\"_lsn\":");
    text.push_str(&lsn.to_string());
    text.push('}');
    Ok(text)
}

/// The live (present and unexpired at `now_ms`) document `id` of a partition.
pub(super) fn read_live(
    conn: &Connection,
    container: Container,
    pk: &str,
    id: &str,
    now_ms: i64,
) -> Result<Option<StoredDocument>, StoreError> {
    let row: Option<(String, String, i64, i64)> = conn
        .prepare_cached(
            "SELECT body, etag, ts, lsn FROM documents
             WHERE container = ?1 AND pk = ?2 AND id = ?3
             AND (expires_at IS NULL OR expires_at > ?4)",
        )
        .map_err(backend)?
        .query_row(params![container.name(), pk, id, now_ms], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
        })
        .optional()
        .map_err(backend)?;
    row.map(|(body, etag, ts, lsn)| {
        Ok(StoredDocument {
            body: with_system_properties(&body, &etag, ts, lsn)?,
            etag: ETag(etag),
        })
    })
    .transpose()
}
