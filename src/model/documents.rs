//! The stored documents, camelCase exactly as the migration plan names them.
//!
//! Unknown fields are ignored on read (never `deny_unknown_fields`): documents arrive from the
//! change feed with Cosmos system properties (`_rid`, `_etag`, `_ts`, `_lsn`, ...) and from older
//! writers with extra fields.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{ExecutionStatus, Scope, Timestamp};

/// Retention of `executions` and `execution_data` documents: 14 days.
pub const EXECUTION_TTL_SECONDS: i64 = 1_209_600;

/// Cosmos DB's document size limit; results above it go to blob storage.
pub const MAX_DOCUMENT_BYTES: usize = 2 * 1024 * 1024;

/// `executions` container (partition `/scope`): one per execution, metadata only.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExecutionDoc {
    pub id: String,
    #[serde(rename = "type")]
    pub doc_type: ExecutionDocType,
    pub scope: Scope,
    pub execution_id: String,
    pub workflow_name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub form_id: Option<String>,
    pub executed_by: String,
    #[serde(default)]
    pub executed_by_name: String,
    pub status: ExecutionStatus,
    #[serde(default)]
    pub input_data: Value,
    #[serde(default)]
    pub duration_ms: Option<i64>,
    pub started_at: Timestamp,
    #[serde(default)]
    pub completed_at: Option<Timestamp>,
    #[serde(default)]
    pub error_message: Option<String>,
    #[serde(default)]
    pub result_in_blob: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl: Option<i64>,
}

/// A single-valued `type` discriminator that (de)serializes as `"execution"`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ExecutionDocType {
    #[default]
    Execution,
}

/// `execution_data` container (partition `/executionId`): everything an execution streams.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum ExecutionDataDoc {
    Log(LogDoc),
    Variables(VariablesDoc),
    State(StateDoc),
    Result(ResultDoc),
}

impl ExecutionDataDoc {
    pub fn execution_id(&self) -> &str {
        match self {
            ExecutionDataDoc::Log(d) => &d.execution_id,
            ExecutionDataDoc::Variables(d) => &d.execution_id,
            ExecutionDataDoc::State(d) => &d.execution_id,
            ExecutionDataDoc::Result(d) => &d.execution_id,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LogDoc {
    pub id: String,
    pub execution_id: String,
    pub timestamp: Timestamp,
    pub level: String,
    pub message: String,
    #[serde(default)]
    pub data: Option<Value>,
    /// 1-based and gap-free per execution, assigned by the writer: the order and the dedupe key.
    pub sequence: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl: Option<i64>,
}

impl LogDoc {
    /// Deterministic id, so a writer that retries a log upserts instead of duplicating it.
    pub fn id_for(execution_id: &str, sequence: u64) -> String {
        format!("log-{execution_id}-{sequence:08}")
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VariablesDoc {
    pub id: String,
    pub execution_id: String,
    pub timestamp: Timestamp,
    pub version: u64,
    pub variables: Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl: Option<i64>,
}

impl VariablesDoc {
    pub fn id_for(version: u64) -> String {
        format!("variables-snapshot-v{version}")
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StateDoc {
    pub id: String,
    pub execution_id: String,
    pub timestamp: Timestamp,
    #[serde(default)]
    pub version: u64,
    pub state: Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResultDoc {
    pub id: String,
    pub execution_id: String,
    pub timestamp: Timestamp,
    /// Inline result; absent when it was over 2 MB and lives in blob storage.
    #[serde(default)]
    pub result: Option<Value>,
    pub result_type: String,
    pub result_size: u64,
    /// `execution-data/{executionId}/result.json` (or .html/.txt) when the result is in blob storage.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blob_ref: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl: Option<i64>,
}

impl ResultDoc {
    pub const ID: &'static str = "result";
}

/// `entities` container: daily metrics per scope (`metrics-daily-{YYYY-MM-DD}`), counting each
/// terminal execution once, on the UTC date of its `completedAt`. Maintained by
/// `crate::metrics`; every field is a function of the executions of that day, so the document
/// equals a live aggregate over them.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MetricsDoc {
    pub id: String,
    #[serde(rename = "type")]
    pub doc_type: String,
    pub scope: String,
    pub date: String,
    pub total_executions: u64,
    pub success_count: u64,
    pub failed_count: u64,
    pub timeout_count: u64,
    #[serde(default)]
    pub completed_with_errors_count: u64,
    #[serde(default)]
    pub cancelled_count: u64,
    /// Sum of `durationMs` over the executions that report one.
    pub total_duration_ms: i64,
    /// How many executions reported a duration (the divisor of the average).
    #[serde(default)]
    pub duration_count: u64,
    pub avg_duration_ms: i64,
    /// Median and 95th percentile from `durationHistogram`: within ±4.5% of the exact value.
    #[serde(default)]
    pub p50_duration_ms: Option<i64>,
    #[serde(default)]
    pub p95_duration_ms: Option<i64>,
    /// Count per duration bucket (bucket = floor(8·log2(ms+1)), so buckets are 9% wide).
    #[serde(default)]
    pub duration_histogram: BTreeMap<String, u64>,
    #[serde(default)]
    pub workflows: BTreeMap<String, WorkflowMetrics>,
    #[serde(default)]
    pub updated_at: Option<Timestamp>,
    /// Set once the day's executions are about to expire: from then on the document is the only
    /// record of the day and is no longer changed.
    #[serde(default)]
    pub sealed: bool,
}

impl MetricsDoc {
    pub const TYPE: &'static str = "metrics";

    pub fn id_for(date: &str) -> String {
        format!("metrics-daily-{date}")
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WorkflowMetrics {
    pub count: u64,
    pub success_count: u64,
    pub failed_count: u64,
    #[serde(default)]
    pub total_duration_ms: i64,
    #[serde(default)]
    pub duration_count: u64,
    pub avg_duration_ms: i64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn execution_doc_matches_the_plan_field_names() {
        let doc: ExecutionDoc = serde_json::from_value(json!({
            "id": "exec-abc-123", "type": "execution", "scope": "GLOBAL",
            "executionId": "exec-abc-123", "workflowName": "create_user", "formId": "form-xyz-456",
            "executedBy": "john@acme.com", "executedByName": "John Doe", "status": "Success",
            "inputData": {"email": "newuser@acme.com"}, "durationMs": 1234,
            "startedAt": "2025-01-26T10:00:00Z", "completedAt": "2025-01-26T10:00:01Z",
            "errorMessage": null, "ttl": 1209600,
            "_rid": "x", "_etag": "\"e\"", "_ts": 1, "_lsn": 7
        }))
        .unwrap();
        assert_eq!(doc.status, ExecutionStatus::Success);
        let back = serde_json::to_value(&doc).unwrap();
        assert_eq!(back["startedAt"], "2025-01-26T10:00:00.000000Z");
        assert_eq!(back["executionId"], "exec-abc-123");
        assert_eq!(back["type"], "execution");
        assert!(back.get("_rid").is_none());
    }

    #[test]
    fn execution_data_is_tagged_by_type() {
        let log: ExecutionDataDoc = serde_json::from_value(json!({
            "id": "log-1", "executionId": "e1", "type": "log", "timestamp": "2025-01-26T10:00:01.234Z",
            "level": "info", "message": "hi", "data": {"k": 1}, "sequence": 1
        }))
        .unwrap();
        assert!(matches!(&log, ExecutionDataDoc::Log(l) if l.sequence == 1));
        assert_eq!(log.execution_id(), "e1");
        let unknown = serde_json::from_value::<ExecutionDataDoc>(json!({"type": "weird"}));
        assert!(unknown.is_err());
    }

    #[test]
    fn deterministic_ids() {
        assert_eq!(LogDoc::id_for("e1", 17), "log-e1-00000017");
        assert_eq!(VariablesDoc::id_for(5), "variables-snapshot-v5");
        assert_eq!(MetricsDoc::id_for("2025-01-26"), "metrics-daily-2025-01-26");
    }
}
