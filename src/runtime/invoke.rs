//! Running one batch of a change-feed function, the same way in both modes: success, a failure
//! worth retrying, or — on the last attempt — a dead letter and success, so one poison batch never
//! blocks its partition and is never lost.

use serde_json::Value;

use crate::runtime::deadletter::{self, DeadLetter, DeadLetterPayload};
use crate::runtime::{AppContext, BatchHandler, FailureKind};

/// How many distinct execution ids a log line names before it only counts them.
const LOGGED_EXECUTION_IDS: usize = 20;

/// What the logs and `GET /api/health` say about a batch: its size, the executions it touches and
/// the write time of its newest document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchSummary {
    pub documents: usize,
    /// Distinct `executionId`s (or the `id` of `execution` documents), first seen first, at most
    /// `LOGGED_EXECUTION_IDS`.
    pub execution_ids: Vec<String>,
    pub distinct_executions: usize,
    /// Largest `_ts` (epoch seconds) in the batch.
    pub newest_write: Option<i64>,
}

impl BatchSummary {
    pub fn of(documents: &[Value]) -> Self {
        let mut seen = std::collections::HashSet::new();
        let mut execution_ids = Vec::new();
        let mut newest_write: Option<i64> = None;
        for doc in documents {
            let id = doc.get("executionId").and_then(Value::as_str).or_else(|| {
                (doc.get("type").and_then(Value::as_str) == Some("execution"))
                    .then(|| doc.get("id").and_then(Value::as_str))
                    .flatten()
            });
            if let Some(id) = id {
                if seen.insert(id) && execution_ids.len() < LOGGED_EXECUTION_IDS {
                    execution_ids.push(id.to_owned());
                }
            }
            if let Some(ts) = doc.get("_ts").and_then(Value::as_i64) {
                newest_write = Some(newest_write.map_or(ts, |cur| cur.max(ts)));
            }
        }
        BatchSummary {
            documents: documents.len(),
            execution_ids,
            distinct_executions: seen.len(),
            newest_write,
        }
    }

    /// Seconds from the newest write to `now` (epoch seconds), never negative.
    pub fn lag_seconds(&self, now: i64) -> Option<i64> {
        self.newest_write.map(|ts| (now - ts).max(0))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Attempt {
    /// 0 on the first attempt.
    pub retry_count: u64,
    pub is_last: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub enum BatchOutcome {
    Succeeded {
        logs: Vec<String>,
    },
    /// Fail the invocation so the batch is delivered again.
    Retry {
        error: String,
    },
    DeadLettered {
        logs: Vec<String>,
        error: String,
    },
}

pub async fn run_batch(
    ctx: &AppContext,
    function: &str,
    handler: &dyn BatchHandler,
    documents: &[Value],
    attempt: Attempt,
    invocation_id: &str,
) -> BatchOutcome {
    let count = documents.len();
    let summary = BatchSummary::of(documents);
    // The enclosing span (invocation or pump) names the function and the invocation.
    tracing::info!(
        documents = count,
        executions = summary.distinct_executions,
        execution_ids = ?summary.execution_ids,
        retry_count = attempt.retry_count,
        "batch received"
    );
    let started = ctx.clock.now();
    let now = started.0.timestamp();
    ctx.status.update_pump(function, |s| {
        s.last_batch_size = Some(count as u64);
        s.lag_seconds = summary.lag_seconds(now);
    });
    ctx.status.attempt_started(function, started);
    let outcome = run_attempt(ctx, function, handler, documents, attempt, invocation_id).await;
    // Every failed attempt counts, the last one of a dead-lettered batch too.
    match &outcome {
        BatchOutcome::Succeeded { .. } => {
            ctx.status
                .succeeded(function, FailureKind::Batch, ctx.clock.now())
        }
        BatchOutcome::Retry { error } | BatchOutcome::DeadLettered { error, .. } => ctx
            .status
            .failed(function, FailureKind::Batch, error, ctx.clock.now()),
    }
    outcome
}

async fn run_attempt(
    ctx: &AppContext,
    function: &str,
    handler: &dyn BatchHandler,
    documents: &[Value],
    attempt: Attempt,
    invocation_id: &str,
) -> BatchOutcome {
    let count = documents.len();
    match handler.handle(ctx, documents).await {
        Ok(logs) => BatchOutcome::Succeeded { logs },
        Err(e) if !attempt.is_last => {
            tracing::warn!(function, retry_count = attempt.retry_count, error = %e, "batch failed; will be retried");
            BatchOutcome::Retry {
                error: e.to_string(),
            }
        }
        Err(e) => {
            let error = e.to_string();
            dead_letter(
                ctx,
                function,
                invocation_id,
                &error,
                attempt.retry_count + 1,
                DeadLetterPayload::Documents(documents.to_vec()),
                count,
            )
            .await
        }
    }
}

/// Writes a dead letter and reports the outcome; if even that fails, asks for a retry.
pub async fn dead_letter(
    ctx: &AppContext,
    function: &str,
    invocation_id: &str,
    error: &str,
    attempts: u64,
    payload: DeadLetterPayload,
    count: usize,
) -> BatchOutcome {
    let letter = DeadLetter {
        function,
        invocation_id,
        reason: error,
        attempts,
    };
    match deadletter::record(ctx.store.as_ref(), ctx.clock.as_ref(), &letter, payload).await {
        Ok(ids) => {
            tracing::error!(function, documents = count, dead_letter = ?ids, %error, "batch dead-lettered");
            BatchOutcome::DeadLettered {
                logs: vec![format!(
                    "{function}: {count} documents dead-lettered as {} after {attempts} attempts: {error}",
                    ids.join(", ")
                )],
                error: error.to_owned(),
            }
        }
        Err(store_error) => {
            tracing::error!(function, %error, %store_error, "dead-letter write failed");
            BatchOutcome::Retry {
                error: format!("{error}; and writing the dead letter failed: {store_error}"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn summary_names_each_execution_once_and_the_newest_write() {
        let docs = vec![
            json!({"id": "l1", "executionId": "e1", "_ts": 100}),
            json!({"id": "l2", "executionId": "e2", "_ts": 300}),
            json!({"id": "l3", "executionId": "e1", "_ts": 200}),
            json!({"id": "e3", "type": "execution", "scope": "GLOBAL"}),
            json!({"id": "other"}),
        ];
        let summary = BatchSummary::of(&docs);
        assert_eq!(summary.documents, 5);
        assert_eq!(summary.execution_ids, ["e1", "e2", "e3"]);
        assert_eq!(summary.distinct_executions, 3);
        assert_eq!(summary.newest_write, Some(300));
        assert_eq!(summary.lag_seconds(305), Some(5));
        assert_eq!(summary.lag_seconds(250), Some(0));
        assert_eq!(BatchSummary::of(&[]).lag_seconds(1), None);
    }

    #[test]
    fn summary_caps_the_logged_ids_but_counts_them_all() {
        let docs: Vec<_> = (0..50)
            .map(|i| json!({"executionId": format!("e{i}")}))
            .collect();
        let summary = BatchSummary::of(&docs);
        assert_eq!(summary.execution_ids.len(), LOGGED_EXECUTION_IDS);
        assert_eq!(summary.distinct_executions, 50);
    }
}
