//! Request parameters, parsed and validated before anything touches the store. Pure.
//!
//! Every malformed value is a 400 with a message naming the parameter; nothing here can panic on
//! input, and nothing a caller sends ever becomes query text (values are bound by the store).

use std::collections::BTreeMap;

use base64::Engine;
use chrono::NaiveDate;
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::Value;

use crate::model::{ExecutionStatus, Timestamp};
use crate::runtime::http::parse_limit;
use crate::runtime::{ApiError, Parameter};

pub const DEFAULT_LIST_LIMIT: usize = 25;
/// The legacy cap: larger values are lowered to it, as the legacy API did.
pub const MAX_LIST_LIMIT: usize = 1000;
pub const DEFAULT_LOG_LIMIT: usize = 5000;
pub const MAX_LOG_LIMIT: usize = 5000;
/// Execution ids are uuids in practice; anything longer than this is not an id.
/// Free-text filters (workflow names, user ids) longer than this cannot match anything real.
pub const MAX_FILTER_CHARS: usize = 256;
const MAX_TOKEN_CHARS: usize = 4096;
/// Prefix of our wrapped continuation tokens, so a legacy Table Storage token fails clearly.
const TOKEN_PREFIX: &str = "c1.";

/// `GET /api/executions` (and the `POST /api/executions/query` body).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ListFilters {
    pub workflow_name: Option<String>,
    pub statuses: Vec<ExecutionStatus>,
    /// Inclusive lower bound on `startedAt`.
    pub started_from: Option<Timestamp>,
    /// Upper bound on `startedAt`: inclusive for a date-time, the whole day for a bare date.
    pub started_until: Option<UpperBound>,
    pub executed_by: Option<String>,
    pub limit: usize,
    /// The store's own token, unwrapped.
    pub continuation: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpperBound {
    Inclusive(Timestamp),
    Exclusive(Timestamp),
}

/// The list filters: query parameters of `GET /api/executions` and, by the same names, the
/// fields of the `POST /api/executions/query` body. The one list of names the parsers accept.
pub fn list_parameters() -> [Parameter; 7] {
    [
        Parameter::query::<String>("workflowName", "Only executions of this workflow (exact name)."),
        Parameter::query::<String>(
            "status",
            "One status or a comma-separated list of them, any case: Pending, Running, Success (or completed), Failed, Timeout, CompletedWithErrors, Cancelling, Cancelled.",
        ),
        Parameter::query::<String>(
            "startDate",
            "Only executions started at or after this date (YYYY-MM-DD) or date-time (RFC 3339).",
        ),
        Parameter::query::<String>(
            "endDate",
            "Only executions started at or before this date-time, or on or before this date (the whole day).",
        ),
        Parameter::query::<String>("executedBy", "Only executions started by this user id."),
        Parameter::query::<u64>(
            "limit",
            "Page size, 1 or more (default 25; values over 1000 are lowered to 1000).",
        ),
        Parameter::query::<String>(
            "continuationToken",
            "The previous page's continuationToken, for the next page of the same query.",
        ),
    ]
}

/// The body of `POST /api/executions/query`: the list parameters as JSON fields (its schema;
/// `parse_list_body` reads it with field-by-field messages).
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ListQueryBody {
    pub workflow_name: Option<String>,
    /// One status, a comma-separated list, or an array of them.
    pub status: Option<OneOrMany>,
    pub start_date: Option<String>,
    pub end_date: Option<String>,
    pub executed_by: Option<String>,
    /// A number, or a string holding one.
    pub limit: Option<NumberOrText>,
    pub continuation_token: Option<String>,
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum NumberOrText {
    Number(u64),
    Text(String),
}

/// `afterSequence` and `limit` of `GET /api/executions/{id}/logs`.
pub fn log_parameters() -> [Parameter; 2] {
    [
        Parameter::query::<u64>(
            "afterSequence",
            "Only logs with a greater sequence (default 0: from the first). A client that reconnects passes the last sequence it holds.",
        ),
        Parameter::query::<u64>(
            "limit",
            "Page size, 1 or more (default and maximum 5000); a full page sets X-Next-After-Sequence.",
        ),
    ]
}

/// Parses list parameters from the query string. Unknown keys are ignored (clients add cache
/// busters and the host may add `code`).
pub fn parse_list_query(query: &BTreeMap<String, String>) -> Result<ListFilters, ApiError> {
    let get = |key: &str| query.get(key).map(String::as_str);
    let started_from = get("startDate")
        .map(|raw| parse_date("startDate", raw))
        .transpose()?
        .map(|(ts, _)| ts);
    let started_until = get("endDate")
        .map(|raw| parse_date("endDate", raw))
        .transpose()?
        .map(
            |(ts, date_only)| match (date_only, ts.0.date_naive().succ_opt()) {
                (true, Some(next)) => UpperBound::Exclusive(midnight(next)),
                _ => UpperBound::Inclusive(ts),
            },
        );
    if let (Some(from), Some(until)) = (started_from, started_until) {
        let empty = match until {
            UpperBound::Inclusive(t) => from > t,
            UpperBound::Exclusive(t) => from >= t,
        };
        if empty {
            return Err(ApiError::bad_request("startDate is after endDate"));
        }
    }
    Ok(ListFilters {
        workflow_name: get("workflowName")
            .map(|v| text_filter("workflowName", v))
            .transpose()?,
        statuses: get("status")
            .map(parse_statuses)
            .transpose()?
            .unwrap_or_default(),
        started_from,
        started_until,
        executed_by: get("executedBy")
            .map(|v| text_filter("executedBy", v))
            .transpose()?,
        limit: parse_limit("limit", get("limit"), DEFAULT_LIST_LIMIT, MAX_LIST_LIMIT)?,
        continuation: get("continuationToken")
            .filter(|t| !t.is_empty() && *t != "null")
            .map(unwrap_token)
            .transpose()?,
    })
}

/// The same parameters as a JSON object body (`POST /api/executions/query`). Unknown keys are
/// refused here: a body is written on purpose, and a typo silently widening a query is worse.
pub fn parse_list_body(body: Option<&str>) -> Result<ListFilters, ApiError> {
    let body = body
        .map(str::trim)
        .filter(|b| !b.is_empty())
        .unwrap_or("{}");
    let json: Value = serde_json::from_str(body)
        .map_err(|e| ApiError::bad_request(format!("request body is not valid JSON: {e}")))?;
    let Value::Object(object) = json else {
        return Err(ApiError::bad_request("request body must be a JSON object"));
    };
    let mut query = BTreeMap::new();
    for (key, value) in object {
        let allowed = list_parameters();
        if !allowed.iter().any(|p| p.name == key) {
            let names: Vec<&str> = allowed.iter().map(|p| p.name).collect();
            return Err(ApiError::bad_request(format!(
                "unknown field {:?}; allowed: {}",
                key.chars().take(64).collect::<String>(),
                names.join(", ")
            )));
        }
        let text = match value {
            Value::Null => continue,
            Value::String(s) => s,
            Value::Number(n) => n.to_string(),
            Value::Array(items) if key == "status" => items
                .iter()
                .map(|item| {
                    item.as_str().map(str::to_owned).ok_or_else(|| {
                        ApiError::bad_request("status must be a string or a list of strings")
                    })
                })
                .collect::<Result<Vec<_>, _>>()?
                .join(","),
            _ => {
                return Err(ApiError::bad_request(format!(
                    "{key} must be a string{}",
                    if key == "limit" { " or a number" } else { "" }
                )))
            }
        };
        query.insert(key, text);
    }
    parse_list_query(&query)
}

/// The legacy status words: lower-cased, then `completed` → `Success` and the stored names.
/// Unlike the legacy API an unknown word is a 400, not a silently empty list.
pub fn parse_status(word: &str) -> Result<ExecutionStatus, ApiError> {
    let lower = word.trim().to_ascii_lowercase();
    let mapped = match lower.as_str() {
        "completed" => Some(ExecutionStatus::Success),
        _ => ExecutionStatus::ALL
            .into_iter()
            .find(|s| s.as_str().eq_ignore_ascii_case(&lower)),
    };
    mapped.ok_or_else(|| {
        ApiError::bad_request(format!(
            "unknown status {:?}; expected one of completed, {}",
            word.chars().take(64).collect::<String>(),
            ExecutionStatus::ALL.map(|s| s.as_str()).join(", ")
        ))
    })
}

/// One status or a comma-separated list of them.
fn parse_statuses(raw: &str) -> Result<Vec<ExecutionStatus>, ApiError> {
    let mut statuses = Vec::new();
    for word in raw.split(',').filter(|w| !w.trim().is_empty()) {
        let status = parse_status(word)?;
        if !statuses.contains(&status) {
            statuses.push(status);
        }
    }
    if statuses.is_empty() {
        return Err(ApiError::bad_request("status is empty"));
    }
    Ok(statuses)
}

/// `afterSequence`: logs with a greater sequence are returned (0 = from the start).
pub fn parse_after_sequence(raw: Option<&str>) -> Result<u64, ApiError> {
    match raw.map(str::trim) {
        None | Some("") => Ok(0),
        Some(raw) => raw.parse::<u64>().map_err(|_| {
            ApiError::bad_request(format!(
                "afterSequence must be a non-negative integer, got {:?}",
                raw.chars().take(32).collect::<String>()
            ))
        }),
    }
}

fn text_filter(name: &str, raw: &str) -> Result<String, ApiError> {
    if raw.is_empty() {
        return Err(ApiError::bad_request(format!("{name} is empty")));
    }
    if raw.chars().count() > MAX_FILTER_CHARS {
        return Err(ApiError::bad_request(format!(
            "{name} is longer than {MAX_FILTER_CHARS} characters"
        )));
    }
    if raw.chars().any(char::is_control) {
        return Err(ApiError::bad_request(format!(
            "{name} contains control characters"
        )));
    }
    Ok(raw.to_owned())
}

/// A date or date-time; the flag says it was a bare date.
fn parse_date(name: &str, raw: &str) -> Result<(Timestamp, bool), ApiError> {
    let raw = raw.trim();
    if let Ok(date) = NaiveDate::parse_from_str(raw, "%Y-%m-%d") {
        return Ok((midnight(date), true));
    }
    Timestamp::parse(raw).map(|ts| (ts, false)).map_err(|_| {
        ApiError::bad_request(format!(
            "{name} must be an ISO 8601 date or date-time, got {:?}",
            raw.chars().take(64).collect::<String>()
        ))
    })
}

fn midnight(date: NaiveDate) -> Timestamp {
    Timestamp(date.and_time(chrono::NaiveTime::MIN).and_utc())
}

/// Wraps the store's continuation into the opaque, URL-safe token the API hands out.
pub fn wrap_token(store_token: &str) -> String {
    format!(
        "{TOKEN_PREFIX}{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(store_token)
    )
}

fn unwrap_token(token: &str) -> Result<String, ApiError> {
    let malformed = || ApiError::bad_request("continuationToken is malformed");
    if token.len() > MAX_TOKEN_CHARS {
        return Err(malformed());
    }
    let encoded = token.strip_prefix(TOKEN_PREFIX).ok_or_else(malformed)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(encoded)
        .map_err(|_| malformed())?;
    String::from_utf8(bytes).map_err(|_| malformed())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn defaults() {
        let f = parse_list_query(&BTreeMap::new()).unwrap();
        assert_eq!(f.limit, DEFAULT_LIST_LIMIT);
        assert!(f.statuses.is_empty() && f.continuation.is_none());
    }

    #[test]
    fn legacy_status_words_map_to_stored_names() {
        for (word, status) in [
            ("completed", ExecutionStatus::Success),
            ("Success", ExecutionStatus::Success),
            ("failed", ExecutionStatus::Failed),
            ("completedwitherrors", ExecutionStatus::CompletedWithErrors),
            ("TIMEOUT", ExecutionStatus::Timeout),
            ("running", ExecutionStatus::Running),
        ] {
            assert_eq!(parse_status(word).unwrap(), status, "{word}");
        }
        let many = parse_list_query(&query(&[("status", "failed,timeout,failed")])).unwrap();
        assert_eq!(
            many.statuses,
            vec![ExecutionStatus::Failed, ExecutionStatus::Timeout]
        );
    }

    #[test]
    fn bad_values_are_400_naming_the_parameter() {
        for (key, value, needle) in [
            ("limit", "abc", "limit"),
            ("limit", "-1", "limit"),
            ("limit", "0", "limit"),
            ("limit", "1.5", "limit"),
            ("status", "bogus", "status"),
            ("status", ",", "status"),
            ("startDate", "yesterday", "startDate"),
            ("endDate", "2026-13-01", "endDate"),
            (
                "continuationToken",
                "eyJQYXJ0aXRpb25LZXkiOiAi",
                "continuationToken",
            ),
            ("continuationToken", "c1.***", "continuationToken"),
            ("workflowName", "", "workflowName"),
            ("executedBy", "a\u{1}", "executedBy"),
        ] {
            let err = parse_list_query(&query(&[(key, value)])).unwrap_err();
            assert_eq!(err.status, 400, "{key}={value}");
            assert!(err.message.contains(needle), "{}", err.message);
        }
        let long = "x".repeat(MAX_FILTER_CHARS + 1);
        assert_eq!(
            parse_list_query(&query(&[("workflowName", &long)]))
                .unwrap_err()
                .status,
            400
        );
        let reversed = parse_list_query(&query(&[
            ("startDate", "2026-11-02"),
            ("endDate", "2026-11-01"),
        ]));
        assert!(reversed.unwrap_err().message.contains("after"));
    }

    #[test]
    fn huge_limits_are_capped_like_the_legacy_api() {
        let f = parse_list_query(&query(&[("limit", "99999999999999999999")]));
        // Too large for u64: not a number we can read, so a 400 rather than a silent cap.
        assert_eq!(f.unwrap_err().status, 400);
        let f = parse_list_query(&query(&[("limit", "5000")])).unwrap();
        assert_eq!(f.limit, MAX_LIST_LIMIT);
    }

    #[test]
    fn a_bare_end_date_covers_the_whole_day() {
        let f = parse_list_query(&query(&[("endDate", "2026-11-22")])).unwrap();
        assert_eq!(
            f.started_until,
            Some(UpperBound::Exclusive(
                Timestamp::parse("2026-11-23T00:00:00Z").unwrap()
            ))
        );
        let f = parse_list_query(&query(&[("endDate", "2026-11-22T23:59:59.999Z")])).unwrap();
        assert!(matches!(f.started_until, Some(UpperBound::Inclusive(_))));
    }

    #[test]
    fn tokens_round_trip_and_null_means_first_page() {
        let token = wrap_token("{\"k\":[\"2026\",\"id\"],\"q\":\"abc\"}");
        let f = parse_list_query(&query(&[("continuationToken", &token)])).unwrap();
        assert_eq!(
            f.continuation.as_deref(),
            Some("{\"k\":[\"2026\",\"id\"],\"q\":\"abc\"}")
        );
        let f = parse_list_query(&query(&[("continuationToken", "null")])).unwrap();
        assert!(f.continuation.is_none());
    }

    #[test]
    fn body_form_takes_the_same_fields_and_refuses_unknown_ones() {
        let f = parse_list_body(Some(r#"{"status":["failed","timeout"],"limit":20}"#)).unwrap();
        assert_eq!(f.limit, 20);
        assert_eq!(f.statuses.len(), 2);
        assert_eq!(parse_list_body(None).unwrap().limit, DEFAULT_LIST_LIMIT);
        for bad in [
            r#"{"n":20}"#,
            "[1]",
            "{",
            r#"{"limit":{"a":1}}"#,
            r#"{"status":[1]}"#,
        ] {
            assert_eq!(parse_list_body(Some(bad)).unwrap_err().status, 400, "{bad}");
        }
    }

    #[test]
    fn the_body_schema_has_exactly_the_list_parameters() {
        let schema = schemars::schema_for!(ListQueryBody);
        let fields: Vec<&String> = schema
            .get("properties")
            .and_then(Value::as_object)
            .unwrap()
            .keys()
            .collect();
        let names: Vec<String> = list_parameters().iter().map(|p| p.name.into()).collect();
        assert_eq!(fields, names.iter().collect::<Vec<_>>());
        // And the body parser takes every one of them.
        let body = serde_json::to_string(
            &names
                .iter()
                .map(|n| (n.clone(), Value::Null))
                .collect::<serde_json::Map<_, _>>(),
        )
        .unwrap();
        assert!(parse_list_body(Some(&body)).is_ok());
    }

    #[test]
    fn after_sequence() {
        assert_eq!(parse_after_sequence(None).unwrap(), 0);
        assert_eq!(parse_after_sequence(Some("42")).unwrap(), 42);
        assert_eq!(parse_after_sequence(Some("-1")).unwrap_err().status, 400);
        assert_eq!(parse_after_sequence(Some("x")).unwrap_err().status, 400);
    }
}
