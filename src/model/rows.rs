//! Documents → the legacy JSON shapes the React UI reads (docs/api.md). Pure, and the one place
//! each shape is built: the query API and the live stream both use these.

use serde_json::{json, Map, Value};

use crate::model::{ExecutionDoc, LogDoc};

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
/// the legacy API did; the detail fills them in.
pub fn execution_row(doc: &ExecutionDoc) -> Map<String, Value> {
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
    let row = json!({
        "executionId": doc.execution_id,
        "workflowName": or_unknown(&doc.workflow_name),
        "orgId": doc.scope.legacy_org_id(),
        "formId": doc.form_id,
        "executedBy": doc.executed_by,
        "executedByName": executed_by_name,
        "status": doc.status,
        "inputData": if doc.input_data.is_null() { json!({}) } else { doc.input_data.clone() },
        "result": null,
        "resultType": null,
        "errorMessage": doc.error_message,
        "durationMs": doc.duration_ms,
        "startedAt": doc.started_at,
        "completedAt": doc.completed_at,
        "logs": null,
        "variables": null,
    });
    match row {
        Value::Object(map) => map,
        _ => Map::new(),
    }
}

/// One log line as the live stream (`executionLogs`) carries it.
pub fn stream_log_entry(doc: &LogDoc) -> Value {
    json!({
        "id": doc.id,
        "sequence": doc.sequence,
        "timestamp": doc.timestamp,
        "level": doc.level,
        "message": doc.message,
        "data": doc.data,
    })
}

/// A log line a member may not read, where a gap-free `sequence` is promised (the members'
/// stream and `/logs`): its place, time and level, never its message or data.
pub fn redacted_log_entry(doc: &LogDoc) -> Value {
    json!({
        "id": doc.id,
        "sequence": doc.sequence,
        "timestamp": doc.timestamp,
        "level": doc.level,
        "redacted": true,
    })
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
pub fn log_entry(doc: &LogDoc) -> Value {
    let mut entry = stream_log_entry(doc);
    if let Value::Object(map) = &mut entry {
        map.insert("executionLogId".to_owned(), json!(doc.id));
    }
    entry
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
    use crate::model::{ExecutionStatus, Scope, Timestamp};

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
        let row = execution_row(&doc());
        assert_eq!(row.len(), 16);
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
        let row = execution_row(&global);
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
        let entry = redacted_log_entry(&log);
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
