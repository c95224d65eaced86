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

/// Where a version of an execution sits in its partition's history. Change-feed documents
/// carry `_lsn` (Cosmos and SQLite); query results carry it on SQLite only, `_ts` (seconds)
/// everywhere. Versions are compared by `_lsn` when both sides have it, else by `_ts`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Position {
    pub lsn: Option<i64>,
    pub ts: Option<i64>,
}

impl Position {
    pub fn of(document: &Value) -> Position {
        Position {
            lsn: document.get("_lsn").and_then(Value::as_i64),
            ts: document.get("_ts").and_then(Value::as_i64),
        }
    }

    /// Whether a delivery at `self` may replace what a marker at `applied` reflects. Equal
    /// `_lsn`s are the same version (a redelivery): not newer. By `_ts` alone (one-second
    /// resolution) an equal time may be a newer version, so it counts as newer; when it is in
    /// fact the same version its contribution is equal and nothing changes. Unknown positions
    /// apply: refusing them could leave metrics stale, and the rollup repairs any harm.
    pub fn is_newer_than(&self, applied: &Position) -> bool {
        match (self.lsn, applied.lsn, self.ts, applied.ts) {
            (Some(new), Some(old), _, _) => new > old,
            (_, _, Some(new), Some(old)) => new >= old,
            _ => true,
        }
    }

    /// Whether `self` is certainly an older version than `applied` (reconciliation must not
    /// go back past what the change feed applied after it read the source).
    pub fn is_older_than(&self, applied: &Position) -> bool {
        match (self.lsn, applied.lsn, self.ts, applied.ts) {
            (Some(new), Some(old), _, _) => new < old,
            (_, _, Some(new), Some(old)) => new < old,
            _ => false,
        }
    }
}

/// The marker document: the applied contribution (none when the execution does not count,
/// e.g. while it runs) and the position of the execution version it reflects.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Marker {
    pub id: String,
    #[serde(rename = "type")]
    pub doc_type: String,
    pub scope: String,
    pub execution_id: String,
    pub contribution: Option<Contribution>,
    #[serde(default)]
    pub source: Position,
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
        source: Position,
        updated_at: Timestamp,
    ) -> Self {
        Marker {
            id: Self::id_for(execution_id),
            doc_type: MARKER_TYPE.to_owned(),
            scope: scope.to_owned(),
            execution_id: execution_id.to_owned(),
            contribution,
            source,
            updated_at,
        }
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
        let lsn = |l: i64, t: i64| Position {
            lsn: Some(l),
            ts: Some(t),
        };
        let ts = |t: i64| Position {
            lsn: None,
            ts: Some(t),
        };
        assert!(lsn(5, 100).is_newer_than(&lsn(4, 100)));
        assert!(!lsn(4, 100).is_newer_than(&lsn(4, 100)), "a redelivery");
        assert!(!lsn(3, 101).is_newer_than(&lsn(4, 100)), "lsn wins over ts");
        // Without an lsn on one side (a marker written by reconciliation), time decides.
        assert!(lsn(9, 101).is_newer_than(&ts(100)));
        assert!(lsn(9, 100).is_newer_than(&ts(100)));
        assert!(!lsn(9, 99).is_newer_than(&ts(100)));
        assert!(Position::default().is_newer_than(&lsn(4, 100)));
        assert!(ts(99).is_older_than(&lsn(4, 100)));
        assert!(!ts(100).is_older_than(&lsn(4, 100)));
        assert!(!Position::default().is_older_than(&lsn(4, 100)));
        assert_eq!(Position::of(&json!({"_lsn": 7, "_ts": 9})), lsn(7, 9));
    }
}
