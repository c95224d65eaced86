//! What one execution adds to its day's metrics, and the marker that remembers it. Pure.
//!
//! The change feed delivers at least once, in any order across handler instances, and shows
//! each document's latest state. Counting increments per delivery double-counts. Instead each
//! terminal execution has a marker (`metrics-contrib-{executionId}`, same partition as the daily
//! document) holding the contribution already applied and the feed position it came from; a
//! delivery changes the daily documents only by the difference between the new contribution and
//! the marker's, and only when it is newer than the marker. Marker and daily documents are
//! written in one transactional batch, so they never disagree.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::model::{ExecutionDoc, ExecutionStatus, Timestamp};

pub const MARKER_TYPE: &str = "metricsContribution";

/// One terminal execution's share of a daily document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Contribution {
    /// UTC date of `completedAt`, `YYYY-MM-DD`.
    pub day: String,
    pub status: ExecutionStatus,
    pub duration_ms: Option<i64>,
    pub workflow_name: String,
}

impl Contribution {
    /// `None` for executions that do not count (yet): not terminal, or no `completedAt`.
    pub fn of(execution: &ExecutionDoc) -> Option<Contribution> {
        if !execution.status.is_terminal() {
            return None;
        }
        let completed = execution.completed_at?;
        Some(Contribution {
            day: completed.date(),
            status: execution.status,
            // A negative duration is a writer bug; it must not drag averages below zero.
            duration_ms: execution.duration_ms.filter(|ms| *ms >= 0),
            workflow_name: execution.workflow_name.clone(),
        })
    }
}

/// The marker document: the applied contribution (none after an execution left a terminal
/// state) and the feed position of the execution version it reflects.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Marker {
    pub id: String,
    #[serde(rename = "type")]
    pub doc_type: String,
    pub scope: String,
    pub execution_id: String,
    pub contribution: Option<Contribution>,
    /// `_lsn` (or `_ts`) of the execution version applied; older deliveries are ignored.
    pub source_position: Option<i64>,
    /// When the marker was last written: 15 days later its execution has expired and the
    /// rollup deletes it.
    pub updated_at: Timestamp,
}

impl Marker {
    pub fn id_for(execution_id: &str) -> String {
        format!("metrics-contrib-{execution_id}")
    }

    pub fn new(
        scope: &str,
        execution_id: &str,
        contribution: Option<Contribution>,
        source_position: Option<i64>,
        updated_at: Timestamp,
    ) -> Self {
        Marker {
            id: Self::id_for(execution_id),
            doc_type: MARKER_TYPE.to_owned(),
            scope: scope.to_owned(),
            execution_id: execution_id.to_owned(),
            contribution,
            source_position,
            updated_at,
        }
    }
}

/// Where a delivered version sits in its partition's history: `_lsn` when the store gives it
/// (Cosmos and SQLite both do), else `_ts`.
pub fn source_position(document: &Value) -> Option<i64> {
    document
        .get("_lsn")
        .and_then(Value::as_i64)
        .or_else(|| document.get("_ts").and_then(Value::as_i64))
}

/// Whether a delivery at `incoming` may replace what a marker at `applied` reflects. Equal
/// positions are the same version (a redelivery): nothing to do. Unknown positions apply, since
/// refusing them could leave metrics stale forever; the hourly reconciliation corrects any harm.
pub fn is_newer(incoming: Option<i64>, applied: Option<i64>) -> bool {
    match (incoming, applied) {
        (Some(new), Some(old)) => new > old,
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn execution(status: &str, completed: Option<&str>) -> ExecutionDoc {
        serde_json::from_value(json!({
            "id": "e", "type": "execution", "scope": "GLOBAL", "executionId": "e",
            "workflowName": "w", "executedBy": "u", "status": status,
            "startedAt": "2026-11-22T23:59:00Z", "completedAt": completed, "durationMs": 1500,
        }))
        .unwrap()
    }

    #[test]
    fn only_terminal_executions_with_a_completion_time_count() {
        assert_eq!(Contribution::of(&execution("Running", None)), None);
        assert_eq!(Contribution::of(&execution("Cancelling", None)), None);
        assert_eq!(Contribution::of(&execution("Success", None)), None);
        let c = Contribution::of(&execution("Success", Some("2026-11-23T00:00:01Z"))).unwrap();
        // The day is the completion date, not the start date.
        assert_eq!(c.day, "2026-11-23");
        assert_eq!(c.duration_ms, Some(1500));
    }

    #[test]
    fn positions_order_deliveries() {
        assert!(is_newer(Some(5), Some(4)));
        assert!(!is_newer(Some(4), Some(4)));
        assert!(!is_newer(Some(3), Some(4)));
        assert!(is_newer(None, Some(4)));
        assert!(is_newer(Some(1), None));
        assert_eq!(source_position(&json!({"_lsn": 7, "_ts": 9})), Some(7));
        assert_eq!(source_position(&json!({"_ts": 9})), Some(9));
    }
}
