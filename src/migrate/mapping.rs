//! Legacy rows and blobs → documents (pure: no I/O, no clock; `now` is an argument).
//!
//! Decisions (the whole mapping is in docs/migration.md):
//! - a missing property means null (the Python SDK never writes `None`);
//! - scopes become `GLOBAL` / `org-{uuid}`; ids are the legacy `ExecutionId`, log ids are
//!   `log-{executionId}-{sequence}` with `sequence` 1-based in `RowKey` order, so a rerun upserts
//!   the same documents;
//! - timestamps are canonicalized to `…Z` UTC (naive legacy strings are UTC);
//! - `InputData` is parsed JSON, `{}` when unparsable (as the legacy API does); `Result` is JSON
//!   when it parses, else the raw string;
//! - `ttl` is what is left of the execution's 14 days, counted from `StartedAt`.

use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

use super::client::Entity;
pub use super::entities::row::{boolean, integer, text, timestamp, RowError};
use crate::model::{
    rows, ExecutionDataDoc, ExecutionDoc, ExecutionDocType, ExecutionStatus, LogDoc, ResultDoc,
    Scope, StateDoc, Timestamp, VariablesDoc, EXECUTION_TTL_SECONDS, MAX_DOCUMENT_BYTES,
};

/// The legacy blob container of results and variables.
pub const BLOB_CONTAINER: &str = "execution-data";
/// Result blob names in the order the legacy readers try them, with the `resultType` each means.
pub const RESULT_BLOBS: [(&str, &str); 3] = [
    ("result.json", "json"),
    ("result.html", "html"),
    ("result.txt", "text"),
];
pub const VARIABLES_BLOB: &str = "variables.json";

/// One `Entities` `execution:*` row, typed.
#[derive(Debug, Clone, PartialEq)]
pub struct LegacyExecution {
    /// Without `ttl` (see [`remaining_ttl`]).
    pub doc: ExecutionDoc,
    /// The inline `Result` property (≤ 1 KB in legacy data).
    pub inline_result: Option<String>,
    /// Rows written 2025-10-14 … 10-17 carried the run's logs and variables as JSON-string
    /// columns (`Logs`: `[{timestamp, level, message, data}]`; `Variables`: an object).
    pub inline_logs: Option<String>,
    pub inline_variables: Option<String>,
    /// The other columns of that era (`ErrorType`, `ErrorDetails`, `StateSnapshots`,
    /// `IntegrationCalls`), kept as the execution's `state` document so nothing is lost.
    pub legacy_state: Option<Value>,
}

pub fn execution_from_row(row: &Entity) -> Result<LegacyExecution, RowError> {
    const TABLE: &str = "Entities";
    let fail = |reason: String| RowError::new(TABLE, row, reason);
    let partition_key = text(row, "PartitionKey").ok_or_else(|| fail("no PartitionKey".into()))?;
    let row_key = text(row, "RowKey").unwrap_or_default();
    let scope = Scope::from_legacy_org_id(&partition_key).map_err(|e| fail(e.to_string()))?;
    // `execution:{9999999999999 - startedAt ms}_{executionId}`
    let (reverse_ms, id_from_key) = row_key
        .strip_prefix("execution:")
        .and_then(|rest| rest.split_once('_'))
        .map(|(reverse, id)| (reverse.parse::<i64>().ok(), Some(id.to_owned())))
        .unwrap_or((None, None));
    let execution_id = text(row, "ExecutionId")
        .or(id_from_key)
        .filter(|id| !id.trim().is_empty())
        .ok_or_else(|| fail("no ExecutionId".into()))?;
    if execution_id.contains(['/', '\\', '?', '#']) || execution_id.len() > 255 {
        return Err(fail(format!(
            "ExecutionId {execution_id:?} is not a valid document id"
        )));
    }
    let status_text = text(row, "Status").ok_or_else(|| fail("no Status".into()))?;
    let status: ExecutionStatus = status_text
        .parse()
        .map_err(|e: crate::model::StatusError| fail(e.to_string()))?;
    // StartedAt is the truth; the RowKey's reverse timestamp is only a fallback (it is off by the
    // writer's UTC offset on dev machines).
    let started_at = match timestamp(row, "StartedAt").map_err(fail)? {
        Some(t) => t,
        None => reverse_ms
            .and_then(|reverse| Timestamp::from_epoch_millis(9_999_999_999_999 - reverse))
            .ok_or_else(|| fail("no StartedAt and no timestamp in the RowKey".into()))?,
    };
    let input_data = text(row, "InputData")
        .and_then(|raw| serde_json::from_str::<Value>(&raw).ok())
        .unwrap_or_else(|| json!({}));
    let doc = ExecutionDoc {
        id: execution_id.clone(),
        doc_type: ExecutionDocType::Execution,
        scope,
        execution_id,
        workflow_name: text(row, "WorkflowName").unwrap_or_else(|| "Unknown".into()),
        form_id: text(row, "FormId"),
        executed_by: text(row, "ExecutedBy").unwrap_or_default(),
        executed_by_name: text(row, "ExecutedByName").unwrap_or_default(),
        status,
        input_data,
        duration_ms: integer(row, "DurationMs").map_err(fail)?,
        started_at,
        completed_at: timestamp(row, "CompletedAt").map_err(fail)?,
        error_message: text(row, "ErrorMessage"),
        result_in_blob: boolean(row, "ResultInBlob").map_err(fail)?.unwrap_or(false),
        ttl: None,
    };
    Ok(LegacyExecution {
        inline_result: text(row, "Result"),
        inline_logs: text(row, "Logs"),
        inline_variables: text(row, "Variables"),
        legacy_state: legacy_state(row),
        doc,
    })
}

/// `{errorType, errorDetails, stateSnapshots, integrationCalls}` from the 2025-10 columns that
/// have no field of their own (JSON columns parsed, kept as text when they do not parse), or
/// `None` when the row has none of them.
fn legacy_state(row: &Entity) -> Option<Value> {
    let mut state = Map::new();
    for (column, field, is_json) in [
        ("ErrorType", "errorType", false),
        ("ErrorDetails", "errorDetails", true),
        ("StateSnapshots", "stateSnapshots", true),
        ("IntegrationCalls", "integrationCalls", true),
    ] {
        let Some(raw) = text(row, column) else {
            continue;
        };
        let value = if is_json {
            serde_json::from_str(&raw).unwrap_or(Value::String(raw))
        } else {
            Value::String(raw)
        };
        state.insert(field.into(), value);
    }
    (!state.is_empty()).then_some(Value::Object(state))
}

/// The execution's `state` document holding [`LegacyExecution::legacy_state`].
pub fn legacy_state_doc(
    execution_id: &str,
    at: Timestamp,
    state: Value,
    ttl: Option<i64>,
) -> Value {
    Value::Object(to_object(&ExecutionDataDoc::State(StateDoc {
        id: "state".into(),
        execution_id: execution_id.to_owned(),
        timestamp: at,
        version: 1,
        state,
        ttl,
    })))
}

/// Seconds left of the execution's 14 days at `now`; `None` when already expired.
pub fn remaining_ttl(started_at: Timestamp, now: Timestamp) -> Option<i64> {
    let age = now.epoch_seconds() - started_at.epoch_seconds();
    let left = EXECUTION_TTL_SECONDS - age.max(0);
    (left > 0).then_some(left)
}

/// `ExecutionLogs` rows of one execution → `log` documents, `sequence` 1.. in `RowKey` order.
/// The legacy log id and source are kept beside the documented fields.
pub fn log_docs(
    execution_id: &str,
    rows: &[Entity],
    ttl: Option<i64>,
) -> Result<Vec<Value>, RowError> {
    const TABLE: &str = "ExecutionLogs";
    let mut sorted: Vec<&Entity> = rows.iter().collect();
    sorted.sort_by_key(|row| text(row, "RowKey").unwrap_or_default());
    sorted
        .into_iter()
        .enumerate()
        .map(|(index, row)| {
            let sequence = index as u64 + 1;
            let row_key = text(row, "RowKey").unwrap_or_default();
            // `{isoformat}Z-{seq:04d}`: the time is everything before the last `-`.
            let from_key = row_key.rsplit_once('-').map(|(time, _)| time.to_owned());
            let timestamp = text(row, "CreatedAt")
                .or(from_key)
                .ok_or_else(|| RowError::new(TABLE, row, "no CreatedAt and no time in the RowKey"))
                .and_then(|raw| {
                    Timestamp::parse(&raw).map_err(|e| RowError::new(TABLE, row, e.to_string()))
                })?;
            let doc = LogDoc {
                id: LogDoc::id_for(execution_id, sequence),
                execution_id: execution_id.to_owned(),
                timestamp,
                level: text(row, "Level").unwrap_or_else(|| "INFO".into()),
                message: text(row, "Message").unwrap_or_default(),
                data: None,
                sequence,
                ttl,
            };
            let mut value = to_object(&ExecutionDataDoc::Log(doc));
            if let Some(source) = text(row, "Source") {
                value.insert("source".into(), Value::String(source));
            }
            if let Some(id) = text(row, "ExecutionLogId") {
                value.insert("legacyLogId".into(), Value::String(id));
            }
            Ok(Value::Object(value))
        })
        .collect()
}

/// The archive of an execution's logs that the legacy engine wrote at completion.
pub const LOGS_ARCHIVE_BLOB: &str = "logs.json";
/// The `Entities` column that held the logs before the archive blob (2025-10-14 … 10-17).
pub const LOGS_COLUMN: &str = "Logs column";

/// An execution's log archive (the `logs.json` blob, or the older `Logs` column: `origin`) →
/// `log` documents, `sequence` 1.. in archive order. Runs from before 2025-10-28 have no
/// `ExecutionLogs` rows, so the archive is the only copy of their logs. Each entry is
/// `{timestamp (naive UTC), level (lowercase), message, source | data}`; the level is
/// upper-cased as the API and UI expect, an entry without a readable time takes the previous
/// entry's (or the execution's start), and a bare string entry is a message.
pub fn archived_log_docs(
    execution_id: &str,
    origin: &str,
    bytes: &[u8],
    started_at: Timestamp,
    ttl: Option<i64>,
) -> Result<Vec<Value>, String> {
    let entries: Vec<Value> =
        serde_json::from_slice(bytes).map_err(|e| format!("{origin} is not a JSON array: {e}"))?;
    let mut last_time = started_at;
    let mut docs = Vec::with_capacity(entries.len());
    for (index, entry) in entries.into_iter().enumerate() {
        let sequence = index as u64 + 1;
        let (timestamp, level, message, source, data) = match &entry {
            Value::Object(fields) => (
                fields
                    .get("timestamp")
                    .and_then(Value::as_str)
                    .and_then(|t| Timestamp::parse(t).ok()),
                fields.get("level").and_then(Value::as_str),
                match fields.get("message") {
                    Some(Value::String(message)) => message.clone(),
                    Some(other) => other.to_string(),
                    None => String::new(),
                },
                fields.get("source").and_then(Value::as_str),
                fields
                    .get("data")
                    .filter(|d| !d.is_null() && d.as_object().is_none_or(|o| !o.is_empty()))
                    .cloned(),
            ),
            Value::String(message) => (None, None, message.clone(), None, None),
            other => (None, None, other.to_string(), None, None),
        };
        let timestamp = timestamp.unwrap_or(last_time);
        last_time = timestamp;
        let doc = LogDoc {
            id: LogDoc::id_for(execution_id, sequence),
            execution_id: execution_id.to_owned(),
            timestamp,
            level: level.unwrap_or("info").to_uppercase(),
            message,
            data,
            sequence,
            ttl,
        };
        let mut value = to_object(&ExecutionDataDoc::Log(doc));
        if let Some(source) = source {
            value.insert("source".into(), Value::String(source.to_owned()));
        }
        value.insert("legacyArchive".into(), Value::String(origin.into()));
        docs.push(Value::Object(value));
    }
    Ok(docs)
}

/// Where a result came from.
#[derive(Debug, Clone, Copy)]
pub enum ResultSource<'a> {
    /// The row's `Result` property.
    Inline(&'a str),
    /// A blob `{executionId}/{name}` (one of [`RESULT_BLOBS`]).
    Blob { name: &'a str, bytes: &'a [u8] },
}

/// The `result` document: inline when the document fits in Cosmos' 2 MB, else a `blobRef` to the
/// legacy blob, which stays where it is.
pub fn result_doc(
    execution_id: &str,
    at: Timestamp,
    source: ResultSource<'_>,
    ttl: Option<i64>,
) -> Value {
    let (raw, blob_name, blob_type) = match source {
        ResultSource::Inline(raw) => (Some(raw.to_owned()), None, None),
        ResultSource::Blob { name, bytes } => {
            let kind = RESULT_BLOBS
                .iter()
                .find(|(blob, _)| *blob == name)
                .map(|(_, kind)| *kind)
                .unwrap_or("text");
            (
                String::from_utf8(bytes.to_vec()).ok(),
                Some(name),
                Some(kind),
            )
        }
    };
    let size = match source {
        ResultSource::Inline(raw) => raw.len(),
        ResultSource::Blob { bytes, .. } => bytes.len(),
    } as u64;
    let blob_ref = blob_name.map(|name| format!("{BLOB_CONTAINER}/{execution_id}/{name}"));
    if let Some(raw) = raw {
        let value = serde_json::from_str::<Value>(&raw).unwrap_or(Value::String(raw));
        let doc = ResultDoc {
            id: ResultDoc::ID.to_owned(),
            execution_id: execution_id.to_owned(),
            timestamp: at,
            result_type: blob_type
                .map(str::to_owned)
                .unwrap_or_else(|| rows::result_type_of(&value).unwrap_or("text").to_owned()),
            result: Some(value),
            result_size: size,
            blob_ref: None,
            ttl,
        };
        let inline = Value::Object(to_object(&ExecutionDataDoc::Result(doc)));
        if inline.to_string().len() <= MAX_DOCUMENT_BYTES {
            return inline;
        }
    }
    // Too large for a document (or not UTF-8): reference the blob instead of copying it.
    Value::Object(to_object(&ExecutionDataDoc::Result(ResultDoc {
        id: ResultDoc::ID.to_owned(),
        execution_id: execution_id.to_owned(),
        timestamp: at,
        result: None,
        result_type: blob_type.unwrap_or("text").to_owned(),
        result_size: size,
        blob_ref,
        ttl,
    })))
}

/// `variables.json` → the version-1 `variables` document. Over 2 MB it stays a blob
/// (`variables: null`, `blobRef` set) so nothing is lost.
pub fn variables_doc(execution_id: &str, at: Timestamp, bytes: &[u8], ttl: Option<i64>) -> Value {
    let text = String::from_utf8_lossy(bytes);
    let variables =
        serde_json::from_str::<Value>(&text).unwrap_or_else(|_| Value::String(text.into_owned()));
    let mut doc = to_object(&ExecutionDataDoc::Variables(VariablesDoc {
        id: VariablesDoc::id_for(1),
        execution_id: execution_id.to_owned(),
        timestamp: at,
        version: 1,
        variables,
        ttl,
    }));
    if Value::Object(doc.clone()).to_string().len() > MAX_DOCUMENT_BYTES {
        doc.insert("variables".into(), Value::Null);
        doc.insert(
            "blobRef".into(),
            Value::String(format!("{BLOB_CONTAINER}/{execution_id}/{VARIABLES_BLOB}")),
        );
    }
    Value::Object(doc)
}

fn to_object<T: serde::Serialize>(doc: &T) -> Map<String, Value> {
    match serde_json::to_value(doc) {
        Ok(Value::Object(map)) => map,
        // The document types are structs of strings, numbers and JSON values: always objects.
        _ => Map::new(),
    }
}

/// A document as compared and checksummed: without `ttl` (it counts down between runs) and the
/// store's system properties (`_etag`, `_ts`, ...), keys sorted at every level.
pub fn comparable(doc: &Value) -> Value {
    match doc {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map
                .keys()
                .filter(|k| k.as_str() != "ttl" && !k.starts_with('_'))
                .collect();
            keys.sort();
            Value::Object(
                keys.into_iter()
                    .map(|k| (k.clone(), sorted(&map[k])))
                    .collect(),
            )
        }
        other => sorted(other),
    }
}

fn sorted(value: &Value) -> Value {
    match value {
        Value::Object(map) => {
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            Value::Object(
                entries
                    .into_iter()
                    .map(|(k, v)| (k.clone(), sorted(v)))
                    .collect(),
            )
        }
        Value::Array(items) => Value::Array(items.iter().map(sorted).collect()),
        other => other.clone(),
    }
}

/// SHA-256 (hex) of one execution's documents in comparable form, data documents by id.
pub fn checksum(execution: &Value, data: &[Value]) -> String {
    let mut data: Vec<Value> = data.iter().map(comparable).collect();
    data.sort_by(|a, b| a["id"].as_str().cmp(&b["id"].as_str()));
    let mut hasher = Sha256::new();
    hasher.update(comparable(execution).to_string().as_bytes());
    for doc in &data {
        hasher.update(b"\n");
        hasher.update(doc.to_string().as_bytes());
    }
    hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::migrate::entities::row::row;

    const ORG: &str = "0f4a6f6c-1111-4c2e-9a57-3d2b8f1f0a01";

    #[test]
    fn sparse_org_row_with_naive_times_and_json_strings() {
        let mapped = execution_from_row(&row(json!({
            "PartitionKey": ORG,
            "RowKey": "execution:8204625692630_00000000-0000-0000-0000-00000000b1f0",
            "ExecutionId": "00000000-0000-0000-0000-00000000b1f0", "WorkflowName": "user_onboarding",
            "ExecutedBy": "d75b", "ExecutedByName": "jack", "Status": "Success",
            "InputData": "{\"first_name\": \"Ada\", \"n\": 0}", "StartedAt": "2026-11-22T19:05:07.369578",
            "ResultInBlob": false, "CompletedAt": "2026-11-22T19:05:07", "DurationMs": 1234,
            "Result": "{\"success\": true}", "Timestamp": "2026-11-22T19:05:07.5Z",
            "odata.etag": "W/\"x\""
        })))
        .unwrap();
        let doc = &mapped.doc;
        assert_eq!(doc.scope.to_string(), format!("org-{ORG}"));
        assert_eq!(doc.id, "00000000-0000-0000-0000-00000000b1f0");
        assert_eq!(doc.input_data, json!({"first_name": "Ada", "n": 0}));
        assert_eq!(doc.started_at.canonical(), "2026-11-22T19:05:07.369578Z");
        assert_eq!(
            doc.completed_at.unwrap().canonical(),
            "2026-11-22T19:05:07.000000Z"
        );
        assert_eq!(doc.duration_ms, Some(1234));
        assert_eq!(doc.form_id, None);
        assert_eq!(doc.error_message, None);
        assert_eq!(mapped.inline_result.as_deref(), Some("{\"success\": true}"));
    }

    #[test]
    fn running_row_without_optional_fields_and_started_at_from_the_row_key() {
        // 9999999999999 - 1763651045000 (2025-11-20T15:04:05Z)
        let mapped = execution_from_row(&row(json!({
            "PartitionKey": "GLOBAL", "RowKey": "execution:8236348954999_abc", "Status": "Running",
            "InputData": "not json", "DurationMs": "17"
        })))
        .unwrap();
        assert_eq!(mapped.doc.id, "abc");
        assert_eq!(mapped.doc.scope, Scope::Global);
        assert_eq!(
            mapped.doc.started_at.canonical(),
            "2025-11-20T15:04:05.000000Z"
        );
        assert_eq!(mapped.doc.input_data, json!({}));
        assert_eq!(mapped.doc.duration_ms, Some(17));
        assert_eq!(mapped.doc.workflow_name, "Unknown");
    }

    #[test]
    fn bad_rows_are_errors_naming_the_row() {
        let err = execution_from_row(&row(json!({
            "PartitionKey": "GLOBAL", "RowKey": "execution:1_x", "ExecutionId": "x",
            "Status": "Exploded", "StartedAt": "2025-11-20T15:04:05"
        })))
        .unwrap_err();
        assert_eq!(err.row_key, "execution:1_x");
        assert!(err.reason.contains("Exploded"), "{err}");
        let err = execution_from_row(&row(json!({
            "PartitionKey": "acme", "RowKey": "execution:1_x", "Status": "Success",
            "StartedAt": "2025-11-20T15:04:05"
        })))
        .unwrap_err();
        assert!(err.reason.contains("acme"), "{err}");
        let err = execution_from_row(&row(json!({
            "PartitionKey": "GLOBAL", "RowKey": "execution:1_x", "Status": "Success",
            "StartedAt": "yesterday"
        })))
        .unwrap_err();
        assert!(err.reason.contains("StartedAt"), "{err}");
        let err = execution_from_row(&row(json!({
            "PartitionKey": "GLOBAL", "RowKey": "execution:1_x", "Status": "Success",
            "StartedAt": "2025-11-20T15:04:05", "DurationMs": "fast"
        })))
        .unwrap_err();
        assert!(err.reason.contains("DurationMs"), "{err}");
    }

    #[test]
    fn ttl_counts_down_from_started_at() {
        let started = Timestamp::parse("2025-11-20T00:00:00").unwrap();
        let now = Timestamp::parse("2025-11-21T00:00:00").unwrap();
        assert_eq!(
            remaining_ttl(started, now),
            Some(EXECUTION_TTL_SECONDS - 86_400)
        );
        let late = Timestamp::parse("2025-12-04T00:00:00").unwrap();
        assert_eq!(remaining_ttl(started, late), None);
        // Clock skew: a start in the future gets the full 14 days, not more.
        assert_eq!(remaining_ttl(now, started), Some(EXECUTION_TTL_SECONDS));
    }

    #[test]
    fn the_2025_10_error_and_state_columns_are_kept_as_state() {
        let with = row(json!({
            "ErrorType": "InternalError", "ErrorDetails": "{\"exception\": \"KeyError\"}",
            "StateSnapshots": "not json", "Logs": "[]"
        }));
        assert_eq!(
            legacy_state(&with),
            Some(json!({
                "errorType": "InternalError",
                "errorDetails": {"exception": "KeyError"},
                "stateSnapshots": "not json"
            }))
        );
        assert_eq!(legacy_state(&row(json!({"Status": "Success"}))), None);
    }

    #[test]
    fn a_logs_archive_becomes_log_documents_in_file_order() {
        let started = Timestamp::parse("2025-10-20T09:00:00").unwrap();
        let archive = json!([
            {"timestamp": "2025-10-20T09:00:01.250000", "level": "info", "message": "start", "source": "workflow"},
            {"timestamp": "2025-10-20T09:00:02", "level": "warning", "message": {"n": 1}, "data": {"k": 2}},
            {"level": "error", "message": "no time: keeps the previous one"},
            "a bare line"
        ]);
        let docs = archived_log_docs(
            "e1",
            LOGS_ARCHIVE_BLOB,
            archive.to_string().as_bytes(),
            started,
            Some(9),
        )
        .unwrap();
        let view: Vec<_> = docs
            .iter()
            .map(|d| {
                (
                    d["id"].as_str().unwrap(),
                    d["sequence"].as_u64().unwrap(),
                    d["timestamp"].as_str().unwrap(),
                    d["level"].as_str().unwrap(),
                    d["message"].as_str().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            view,
            vec![
                (
                    "log-e1-00000001",
                    1,
                    "2025-10-20T09:00:01.250000Z",
                    "INFO",
                    "start"
                ),
                (
                    "log-e1-00000002",
                    2,
                    "2025-10-20T09:00:02.000000Z",
                    "WARNING",
                    "{\"n\":1}"
                ),
                (
                    "log-e1-00000003",
                    3,
                    "2025-10-20T09:00:02.000000Z",
                    "ERROR",
                    "no time: keeps the previous one"
                ),
                (
                    "log-e1-00000004",
                    4,
                    "2025-10-20T09:00:02.000000Z",
                    "INFO",
                    "a bare line"
                ),
            ]
        );
        assert_eq!(docs[0]["source"], "workflow");
        assert_eq!(docs[0]["legacyArchive"], "logs.json");
        assert_eq!(docs[1]["data"], json!({"k": 2}));
        assert_eq!(docs[3]["ttl"], 9);
        let not_a_list = archived_log_docs("e1", LOGS_COLUMN, b"{\"a\": 1}", started, None);
        assert!(not_a_list.is_err_and(|e| e.starts_with("Logs column is not a JSON array")));
        assert!(archived_log_docs("e1", LOGS_ARCHIVE_BLOB, b"", started, None).is_err());
    }

    #[test]
    fn logs_get_a_gap_free_sequence_in_row_key_order() {
        let rows = vec![
            row(
                json!({"PartitionKey": "e1", "RowKey": "2025-11-20T15:04:06.005000Z-0001",
                "ExecutionLogId": "b", "Level": "DEBUG", "Message": "second", "Source": "workflow",
                "CreatedAt": "2025-11-20T15:04:06.005000Z"}),
            ),
            row(
                json!({"PartitionKey": "e1", "RowKey": "2025-11-20T15:04:06.001000Z-0001",
                "ExecutionLogId": "a", "Level": "INFO", "Message": "first"}),
            ),
            row(
                json!({"PartitionKey": "e1", "RowKey": "2025-11-20T15:04:06.005000Z-0002",
                "Message": "third"}),
            ),
        ];
        let docs = log_docs("e1", &rows, Some(60)).unwrap();
        let seq: Vec<_> = docs
            .iter()
            .map(|d| {
                (
                    d["sequence"].as_u64().unwrap(),
                    d["message"].as_str().unwrap(),
                )
            })
            .collect();
        assert_eq!(seq, vec![(1, "first"), (2, "second"), (3, "third")]);
        assert_eq!(docs[0]["id"], "log-e1-00000001");
        assert_eq!(docs[0]["type"], "log");
        assert_eq!(docs[0]["timestamp"], "2025-11-20T15:04:06.001000Z");
        assert_eq!(docs[0]["level"], "INFO");
        assert_eq!(docs[0]["legacyLogId"], "a");
        assert_eq!(docs[1]["source"], "workflow");
        assert_eq!(docs[2]["level"], "INFO");
        assert_eq!(docs[2]["timestamp"], "2025-11-20T15:04:06.005000Z");
        assert_eq!(docs[2]["ttl"], 60);
        let bad = vec![row(json!({"PartitionKey": "e1", "RowKey": "garbage"}))];
        assert!(log_docs("e1", &bad, None).is_err());
    }

    #[test]
    fn results_inline_typed_and_blob_referenced_over_two_megabytes() {
        let at = Timestamp::parse("2025-11-20T15:04:06Z").unwrap();
        let doc = result_doc("e1", at, ResultSource::Inline("{\"ok\": true}"), None);
        assert_eq!(doc["result"], json!({"ok": true}));
        assert_eq!(doc["resultType"], "json");
        assert_eq!(doc["resultSize"], 12);
        assert_eq!(doc["type"], "result");
        let html = result_doc("e1", at, ResultSource::Inline("<b>hi</b>"), None);
        assert_eq!(
            (html["result"].as_str(), html["resultType"].as_str()),
            (Some("<b>hi</b>"), Some("html"))
        );
        let small_blob = result_doc(
            "e1",
            at,
            ResultSource::Blob {
                name: "result.txt",
                bytes: b"plain",
            },
            None,
        );
        assert_eq!(small_blob["result"], "plain");
        assert_eq!(small_blob["resultType"], "text");
        let big = vec![b'x'; MAX_DOCUMENT_BYTES + 1];
        let doc = result_doc(
            "e1",
            at,
            ResultSource::Blob {
                name: "result.html",
                bytes: &big,
            },
            Some(5),
        );
        assert_eq!(doc["result"], Value::Null);
        assert_eq!(doc["blobRef"], "execution-data/e1/result.html");
        assert_eq!(doc["resultType"], "html");
        assert_eq!(doc["resultSize"], big.len() as u64);
        assert_eq!(doc["ttl"], 5);
    }

    #[test]
    fn variables_parse_or_stay_in_the_blob() {
        let at = Timestamp::parse("2025-11-20T15:04:06Z").unwrap();
        let doc = variables_doc("e1", at, b"{\n  \"counter\": 2\n}", None);
        assert_eq!(doc["variables"], json!({"counter": 2}));
        assert_eq!(doc["id"], "variables-snapshot-v1");
        assert_eq!(doc["type"], "variables");
        let big = format!("\"{}\"", "y".repeat(MAX_DOCUMENT_BYTES));
        let doc = variables_doc("e1", at, big.as_bytes(), None);
        assert_eq!(doc["variables"], Value::Null);
        assert_eq!(doc["blobRef"], "execution-data/e1/variables.json");
    }

    #[test]
    fn checksum_ignores_ttl_system_properties_and_key_order() {
        let a = json!({"id": "e", "status": "Success", "ttl": 5, "_etag": "x", "inputData": {"b": 1, "a": 2}});
        let b = json!({"inputData": {"a": 2, "b": 1}, "status": "Success", "id": "e", "ttl": 9});
        let logs = [json!({"id": "log-2"}), json!({"id": "log-1"})];
        let reversed = [json!({"id": "log-1"}), json!({"id": "log-2"})];
        assert_eq!(checksum(&a, &logs), checksum(&b, &reversed));
        let tampered = json!({"id": "e", "status": "Failed", "inputData": {"a": 2, "b": 1}});
        assert_ne!(checksum(&a, &logs), checksum(&tampered, &logs));
        assert_ne!(checksum(&a, &logs), checksum(&a, &logs[..1]));
    }
}
