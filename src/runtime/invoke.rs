//! Running one batch of a change-feed function, the same way in both modes: success, a failure
//! worth retrying, or — on the last attempt — a dead letter and success, so one poison batch never
//! blocks its partition and is never lost.

use crate::model::RawDocument;
use crate::runtime::batch::{array_text, Batch};
use crate::runtime::deadletter::{self, DeadLetter, DeadLetterPayload};
use crate::runtime::{AppContext, BatchHandler, FailureKind, FunctionError};

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
    documents: &[RawDocument<'_>],
    attempt: Attempt,
    invocation_id: &str,
) -> BatchOutcome {
    let started = ctx.clock.now();
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
    documents: &[RawDocument<'_>],
    attempt: Attempt,
    invocation_id: &str,
) -> BatchOutcome {
    let count = documents.len();
    let batch = Batch::new(documents, attempt.retry_count);
    let result = handler.handle(ctx, &batch).await;
    // From the function's own views when it read the batch (it logged `batch received` then).
    let summary = batch.summary();
    let now = ctx.clock.now().0.timestamp();
    ctx.status.update_pump(function, |s| {
        s.last_batch_size = Some(count as u64);
        s.lag_seconds = summary.lag_seconds(now);
    });
    match result {
        Ok(logs) => BatchOutcome::Succeeded { logs },
        Err(FunctionError::Unreadable(unreadable)) => {
            // Redelivery cannot fix text that is not JSON; keep it verbatim instead.
            let error = format!("undecodable batch: {unreadable}");
            tracing::error!(%error);
            dead_letter(
                ctx,
                function,
                invocation_id,
                &error,
                1,
                DeadLetterPayload::Raw(array_text(documents)),
                count,
            )
            .await
        }
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
                DeadLetterPayload::Documents(
                    documents.iter().map(|d| d.json().to_owned()).collect(),
                ),
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
