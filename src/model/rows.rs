//! Documents → the legacy JSON shapes the React UI reads (docs/api.md). Pure, and the one place
//! each shape is built: the query API and the live stream both use these.

use schemars::JsonSchema;
use serde::Serialize;
use serde_json::{json, Value};

use crate::model::{ExecutionDoc, ExecutionStatus, LogDoc, Timestamp};

/// Log levels only platform administrators see (legacy `get_execution_logs`).
pub const ADMIN_ONLY_LEVELS: [&str; 2] = ["DEBUG", "TRACEBACK"];

pub fn is_admin_only_level(level: &str) -> bool {
    ADMIN_ONLY_LEVELS
        .iter()
        .any(|hidden| hidden.eq_ignore_ascii_case(level))
}

/// The 16-key camelCase execution shape: a row of `GET /api/executions` and, unchanged, the
/// `executionHistoryUpdate` the live stream sends to `history:{scope}`, so a UI can merge a live
/// row into a fetched list. Lists leave `result`, `resultType`, `logs` and `variables` null, as
/// the legacy API did; the detail (`GET /api/executions/{id}`) fills them in.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExecutionRow {
    pub execution_id: String,
    /// `Unknown` when the engine recorded none.
    pub workflow_name: String,
    /// The legacy organization id: the organization's uuid, or `GLOBAL`.
    pub org_id: String,
    pub form_id: Option<String>,
    pub executed_by: String,
    /// The executor's display name; `executedBy` (or `Unknown`) when none was recorded.
    pub executed_by_name: String,
    pub status: ExecutionStatus,
    /// The workflow's input; `{}` when none was recorded.
    pub input_data: Value,
    /// Detail only: the result (any JSON value), null while there is none.
    pub result: Value,
    /// Detail only: `json`, `html` or `text`; null while there is no result.
    pub result_type: Option<String>,
    pub error_message: Option<String>,
    pub duration_ms: Option<i64>,
    pub started_at: Timestamp,
    pub completed_at: Option<Timestamp>,
    /// Detail only: the first page of logs, in `sequence` order.
    pub logs: Option<Vec<LogEntry>>,
    /// Detail only, and only for platform administrators: the latest variables snapshot.
    pub variables: Option<Value>,
}

pub fn execution_row(doc: &ExecutionDoc) -> ExecutionRow {
    let or_unknown = |s: &str| {
        if s.is_empty() {
            "Unknown".to_owned()
        } else {
            s.to_owned()
        }
    };
    let executed_by_name = if doc.executed_by_name.is_empty() {
        or_unknown(&doc.executed_by)
    } else {
        doc.executed_by_name.clone()
    };
    ExecutionRow {
        execution_id: doc.execution_id.clone(),
        workflow_name: or_unknown(&doc.workflow_name),
        org_id: doc.scope.legacy_org_id(),
        form_id: doc.form_id.clone(),
        executed_by: doc.executed_by.clone(),
        executed_by_name,
        status: doc.status,
        input_data: if doc.input_data.is_null() {
            json!({})
        } else {
            doc.input_data.clone()
        },
        result: Value::Null,
        result_type: None,
        error_message: doc.error_message.clone(),
        duration_ms: doc.duration_ms,
        started_at: doc.started_at,
        completed_at: doc.completed_at,
        logs: None,
        variables: None,
    }
}

/// One log line: as the live stream (`executionLogs`) carries it, and with the legacy
/// `executionLogId` (the same value as `id`) on `/logs` and in the detail.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LogEntry {
    pub id: String,
    /// 1-based and gap-free per execution: the order and the dedupe key.
    pub sequence: u64,
    pub timestamp: Timestamp,
    pub level: String,
    pub message: String,
    pub data: Option<Value>,
    /// The legacy name of `id` (query API only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub execution_log_id: Option<String>,
}

impl LogEntry {
    fn of(doc: &LogDoc, execution_log_id: Option<String>) -> Self {
        LogEntry {
            id: doc.id.clone(),
            sequence: doc.sequence,
            timestamp: doc.timestamp,
            level: doc.level.clone(),
            message: doc.message.clone(),
            data: doc.data.clone(),
            execution_log_id,
        }
    }
}

/// One log line as the live stream (`executionLogs`) carries it, in this key order; the strings
/// and `data` are whatever serializes them (values, or their JSON text as delivered).
#[derive(Debug, Serialize)]
pub struct StreamLogEntry<'a, S: Serialize, M: Serialize, D: Serialize> {
    pub id: S,
    pub sequence: u64,
    pub timestamp: &'a Timestamp,
    pub level: S,
    pub message: M,
    pub data: D,
    /// Set when the stream cut the line to fit a message (the query API has it whole).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub truncated: bool,
}

/// A log line a member may not read, where a gap-free `sequence` is promised (the members'
/// stream and `/logs`): its place, time and level, never its message or data.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RedactedLogEntry {
    pub id: String,
    pub sequence: u64,
    pub timestamp: Timestamp,
    /// `DEBUG` or `TRACEBACK` (in the writer's casing).
    pub level: String,
    /// Always `true`: the line exists, its content is for platform administrators only.
    pub redacted: bool,
}

pub fn redacted_log_entry(doc: &LogDoc) -> RedactedLogEntry {
    RedactedLogEntry {
        id: doc.id.clone(),
        sequence: doc.sequence,
        timestamp: doc.timestamp,
        level: doc.level.clone(),
        redacted: true,
    }
}

/// One line of a gap-free page: whole, or a placeholder for a line the reader may not see.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
#[serde(untagged)]
pub enum LogLine {
    Whole(LogEntry),
    Redacted(RedactedLogEntry),
}

/// Who reads a log line, and so which shape it takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reader {
    /// Platform administrators: every line whole.
    Admin,
    /// Everyone else: admin-only lines as `redacted_log_entry`.
    Member,
}

impl Reader {
    pub fn of(is_platform_admin: bool) -> Reader {
        if is_platform_admin {
            Reader::Admin
        } else {
            Reader::Member
        }
    }

    /// Whether this reader gets `doc` whole (else as a placeholder, or not at all).
    pub fn sees(self, doc: &LogDoc) -> bool {
        self == Reader::Admin || !is_admin_only_level(&doc.level)
    }
}

/// One log line for `/logs` and the detail: the stream's fields plus the legacy
/// `executionLogId` name for the id.
pub fn log_entry(doc: &LogDoc) -> LogEntry {
    LogEntry::of(doc, Some(doc.id.clone()))
}

/// The legacy `resultType` of a result value: `json` for objects and arrays, `html` for a string
/// that looks like markup, `text` otherwise (numbers and booleans too, as legacy answered);
/// `None` when there is no result. The one rule: the API and the migration both use it.
pub fn result_type_of(result: &Value) -> Option<&'static str> {
    match result {
        Value::Null => None,
        Value::Object(_) | Value::Array(_) => Some("json"),
        Value::String(s) => {
            let trimmed = s.trim();
            Some(if trimmed.starts_with('<') && trimmed.contains('>') {
                "html"
            } else {
                "text"
            })
        }
        Value::Number(_) | Value::Bool(_) => Some("text"),
    }
}

/// A stored result body (inline or from a blob) as the API returns it: JSON when it parses and
/// the stored type says JSON, the raw text otherwise (HTML and text results stay strings).
pub fn decode_result_text(text: &str, stored_type: &str) -> Value {
    if stored_type.eq_ignore_ascii_case("json") || stored_type.is_empty() {
        if let Ok(value) = serde_json::from_str::<Value>(text) {
            return value;
        }
    }
    Value::String(text.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Scope;

    fn doc() -> ExecutionDoc {
        serde_json::from_value(json!({
            "id": "e1", "type": "execution", "scope": "org-0f4a6f6c-1111-4c2e-9a57-3d2b8f1f0a01",
            "executionId": "e1", "workflowName": "", "executedBy": "u1",
            "status": "Failed", "startedAt": "2026-11-22T19:05:07.496999",
        }))
        .unwrap()
    }

    #[test]
    fn rows_have_the_sixteen_legacy_keys_with_fallbacks() {
        let row = serde_json::to_value(execution_row(&doc())).unwrap();
        let row = row.as_object().unwrap();
        let keys: Vec<&str> = row.keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            [
                "executionId",
                "workflowName",
                "orgId",
                "formId",
                "executedBy",
                "executedByName",
                "status",
                "inputData",
                "result",
                "resultType",
                "errorMessage",
                "durationMs",
                "startedAt",
                "completedAt",
                "logs",
                "variables"
            ],
            "the legacy key order"
        );
        assert_eq!(row["workflowName"], "Unknown");
        assert_eq!(row["executedByName"], "u1");
        assert_eq!(row["orgId"], "0f4a6f6c-1111-4c2e-9a57-3d2b8f1f0a01");
        assert_eq!(row["inputData"], json!({}));
        assert_eq!(row["startedAt"], "2026-11-22T19:05:07.496999Z");
        assert!(row["logs"].is_null() && row["result"].is_null());
        let mut global = doc();
        global.scope = Scope::Global;
        global.status = ExecutionStatus::Success;
        global.completed_at = Some(Timestamp::parse("2026-11-22T19:05:08Z").unwrap());
        let row = serde_json::to_value(execution_row(&global)).unwrap();
        assert_eq!(row["orgId"], "GLOBAL");
        assert_eq!(row["status"], "Success");
        assert_eq!(row["completedAt"], "2026-11-22T19:05:08.000000Z");
    }

    #[test]
    fn result_types_follow_the_legacy_rules() {
        assert_eq!(result_type_of(&json!({"a": 1})), Some("json"));
        assert_eq!(result_type_of(&json!([1])), Some("json"));
        assert_eq!(result_type_of(&json!("  <table></table>")), Some("html"));
        assert_eq!(result_type_of(&json!("plain")), Some("text"));
        assert_eq!(result_type_of(&json!(42)), Some("text"));
        assert_eq!(result_type_of(&json!(true)), Some("text"));
        assert_eq!(result_type_of(&Value::Null), None);
        assert_eq!(decode_result_text("{\"a\":1}", "json"), json!({"a": 1}));
        assert_eq!(decode_result_text("<b>x</b>", "html"), json!("<b>x</b>"));
        assert_eq!(decode_result_text("not json", "json"), json!("not json"));
    }

    #[test]
    fn placeholders_keep_the_place_and_nothing_else() {
        let log: LogDoc = serde_json::from_value(json!({
            "id": "e1-log-3", "executionId": "e1", "type": "log", "sequence": 3,
            "timestamp": "2026-11-22T19:05:07Z", "level": "DEBUG",
            "message": "apiKey=secret", "data": {"apiKey": "secret"},
        }))
        .unwrap();
        let entry = serde_json::to_value(redacted_log_entry(&log)).unwrap();
        assert_eq!(
            entry,
            json!({"id": "e1-log-3", "sequence": 3, "timestamp": "2026-11-22T19:05:07.000000Z",
                   "level": "DEBUG", "redacted": true})
        );
        assert!(!entry.to_string().contains("secret"));
        assert!(Reader::Admin.sees(&log));
        assert!(!Reader::Member.sees(&log));
        assert_eq!(Reader::of(false), Reader::Member);
    }

    #[test]
    fn debug_and_traceback_are_admin_only_in_any_case() {
        for level in ["DEBUG", "debug", "Traceback"] {
            assert!(is_admin_only_level(level));
        }
        for level in ["INFO", "WARNING", "ERROR"] {
            assert!(!is_admin_only_level(level));
        }
    }
}
