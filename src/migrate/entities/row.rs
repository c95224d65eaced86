//! Typed reads of one legacy Table row, as the Python SDK wrote it: a missing property means
//! `None` (the SDK never writes one that is `None`), strings are strings, `bool` is Edm.Boolean,
//! `int` Edm.Int32. The execution mapping (`migrate::mapping`) reads its rows with these too.

use serde_json::{Map, Value};

use crate::model::{Scope, Timestamp};

/// One Table Storage row as the service returned it (`minimalmetadata` JSON).
pub type Row = Map<String, Value>;

/// A source row that cannot be migrated, with enough to find it. The reason never quotes a
/// property that may hold a secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{table} row ({partition_key:?}, {row_key:?}): {reason}")]
pub struct RowError {
    pub table: &'static str,
    pub partition_key: String,
    pub row_key: String,
    pub reason: String,
}

impl RowError {
    pub fn new(table: &'static str, row: &Row, reason: impl Into<String>) -> Self {
        RowError {
            table,
            partition_key: text(row, "PartitionKey").unwrap_or_default(),
            row_key: text(row, "RowKey").unwrap_or_default(),
            reason: reason.into(),
        }
    }
}

/// A string property (missing or null = `None`; other JSON types as their text).
pub fn text(row: &Row, name: &str) -> Option<String> {
    match row.get(name)? {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        other => Some(other.to_string()),
    }
}

/// An integer property: `Edm.Int32` (JSON number), `Edm.Int64` (annotated string), or a numeric
/// string (the legacy parser tolerated those). An `Edm.Double` (what SDKs other than Python's
/// write for a JavaScript number with a fraction) is rounded: a duration off by half a
/// millisecond is better than a skipped execution.
pub fn integer(row: &Row, name: &str) -> Result<Option<i64>, String> {
    match row.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => n
            .as_i64()
            .or_else(|| {
                n.as_f64()
                    .filter(|f| f.is_finite() && f.abs() < 9.0e15)
                    .map(|f| f.round() as i64)
            })
            .map(Some)
            .ok_or_else(|| format!("{name} is not an integer: {n}")),
        Some(Value::String(s)) => s
            .trim()
            .parse::<i64>()
            .map(Some)
            .map_err(|_| format!("{name} is not an integer: {s:?}")),
        Some(other) => Err(format!("{name} is not an integer: {other}")),
    }
}

pub fn boolean(row: &Row, name: &str) -> Result<Option<bool>, String> {
    match row.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(Value::String(s)) if s.eq_ignore_ascii_case("true") => Ok(Some(true)),
        Some(Value::String(s)) if s.eq_ignore_ascii_case("false") => Ok(Some(false)),
        Some(other) => Err(format!("{name} is not a boolean: {other}")),
    }
}

/// A timestamp property (the legacy wrote naive `isoformat()` UTC strings).
pub fn timestamp(row: &Row, name: &str) -> Result<Option<Timestamp>, String> {
    text(row, name)
        .map(|raw| Timestamp::parse(&raw).map_err(|e| format!("{name}: {e}")))
        .transpose()
}

/// A column holding `json.dumps(...)` text, parsed. The error names the column and where the
/// text stops being JSON, never the text itself (a settings column may hold secrets).
pub fn json_column(row: &Row, name: &str) -> Result<Option<Value>, String> {
    text(row, name)
        .map(|raw| {
            serde_json::from_str(&raw).map_err(|e| {
                format!(
                    "{name} is not JSON (line {}, column {})",
                    e.line(),
                    e.column()
                )
            })
        })
        .transpose()
}

/// The document id of a row: its RowKey with the first `:` replaced by `-`. Cosmos DB refuses
/// `/`, `\`, `?` and `#` in ids (and more than 255 characters), so such keys are errors.
pub fn document_id(row_key: &str) -> Result<String, String> {
    let id = row_key.replacen(':', "-", 1);
    if id.is_empty() {
        return Err("empty RowKey".into());
    }
    if id.chars().count() > 255 {
        return Err("RowKey is longer than a document id may be (255 characters)".into());
    }
    if let Some(bad) = id
        .chars()
        .find(|c| matches!(c, '/' | '\\' | '?' | '#') || c.is_control())
    {
        return Err(format!(
            "RowKey contains {bad:?}, which a document id may not contain"
        ));
    }
    Ok(id)
}

/// The scope of a row's PartitionKey: `GLOBAL` or an org uuid (`SYSTEM` and anything else are
/// no scope).
pub fn scope_of(table: &'static str, row: &Row) -> Result<Scope, RowError> {
    let partition_key = text(row, "PartitionKey").unwrap_or_default();
    Scope::from_legacy_org_id(&partition_key).map_err(|e| RowError::new(table, row, e.to_string()))
}

/// Properties the service adds to every row: keys, its own timestamp and ETag, type
/// annotations.
fn is_system_property(name: &str) -> bool {
    matches!(name, "PartitionKey" | "RowKey" | "Timestamp") || name.contains("odata.")
}

/// The row's properties that are neither system properties nor `known`, sorted: what a mapping
/// drops (and the summary reports).
pub fn unknown_properties(row: &Row, known: &[&str]) -> Vec<String> {
    let mut names: Vec<String> = row
        .keys()
        .filter(|name| !is_system_property(name) && !known.contains(&name.as_str()))
        .cloned()
        .collect();
    names.sort();
    names
}

#[cfg(test)]
pub(crate) fn row(value: Value) -> Row {
    match value {
        Value::Object(map) => map,
        _ => panic!("a row is a JSON object"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn int64_annotated_and_double_integers() {
        let r = row(json!({"DurationMs@odata.type": "Edm.Int64", "DurationMs": "3000000000"}));
        assert_eq!(integer(&r, "DurationMs").unwrap(), Some(3_000_000_000));
        let double = row(json!({"DurationMs@odata.type": "Edm.Double", "DurationMs": 1234.5}));
        assert_eq!(integer(&double, "DurationMs").unwrap(), Some(1235));
        let huge = row(json!({"DurationMs": 1.0e300}));
        assert!(integer(&huge, "DurationMs").is_err());
    }

    #[test]
    fn json_errors_do_not_quote_the_text() {
        let r = row(json!({"Settings": "{\"client_secret\": hunter2}"}));
        let err = json_column(&r, "Settings").unwrap_err();
        assert!(err.starts_with("Settings is not JSON (line 1"), "{err}");
        assert!(!err.contains("hunter2"), "{err}");
        assert_eq!(json_column(&r, "Missing").unwrap(), None);
        let ok = row(json!({"Settings": "{\"a\": [1, 2]}"}));
        assert_eq!(
            json_column(&ok, "Settings").unwrap(),
            Some(json!({"a": [1, 2]}))
        );
    }

    #[test]
    fn ids_replace_the_first_colon_and_refuse_what_cosmos_refuses() {
        assert_eq!(document_id("org:0f4a").unwrap(), "org-0f4a");
        assert_eq!(
            document_id("systemconfig:globalkey:k1").unwrap(),
            "systemconfig-globalkey:k1"
        );
        assert_eq!(document_id("github").unwrap(), "github");
        for bad in [
            "user:a/b@x.com",
            "user:a#b@x.com",
            "user:a?b",
            "user:a\\b",
            "",
        ] {
            assert!(document_id(bad).is_err(), "{bad:?}");
        }
        assert!(document_id(&format!("form:{}", "f".repeat(255))).is_err());
    }

    #[test]
    fn unknown_properties_leave_out_keys_annotations_and_the_known() {
        let r = row(json!({
            "PartitionKey": "GLOBAL", "RowKey": "org:1", "Timestamp": "t", "odata.etag": "W/x",
            "Name": "A", "CreatedAt@odata.type": "Edm.String", "etag": "W/\"stale\"", "TenantId": "t1"
        }));
        assert_eq!(unknown_properties(&r, &["Name"]), ["TenantId", "etag"]);
    }
}
