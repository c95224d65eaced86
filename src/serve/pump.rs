//! Serve mode's change-feed pump: what the Functions host's Cosmos trigger does in Azure, over
//! the store's own change feed. One pump per change-feed function; its checkpoint lives in the
//! `leases` container and is handed to its saver (`checkpoint`, which writes it in the
//! background) only after the batch succeeded or was dead-lettered, so a crash redelivers
//! (at-least-once) and never skips. On a store that tells of its commits
//! (SQLite) the pump sleeps until the next commit; on one that does not (Cosmos DB) it polls
//! every `poll_interval`, the `feedPollDelay` of Azure's trigger.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use crate::model::RawDocument;
use crate::runtime::function::RetryPolicy;
use crate::runtime::invoke::{self, Attempt, BatchOutcome};
use crate::runtime::shutdown::sleep_unless_shutdown;
use crate::runtime::{AppContext, BatchHandler, FailureKind};
use crate::store::{Container, FeedPosition, StoreError};

use super::checkpoint;

pub struct Pump {
    pub function: &'static str,
    pub container: Container,
    pub handler: Arc<dyn BatchHandler>,
    pub retry: RetryPolicy,
    pub poll_interval: Duration,
    pub max_items: usize,
}

/// How long to wait after a store error before polling again.
const ERROR_BACKOFF: Duration = Duration::from_secs(1);

impl Pump {
    /// Where this pump's feed continues: its saved checkpoint, or the beginning on first start.
    pub async fn load_position(&self, ctx: &AppContext) -> Result<FeedPosition, StoreError> {
        checkpoint::load(ctx, self.function).await
    }

    /// Waits for the next commit (or `poll_interval` without commit notices); `true` when
    /// shutdown was requested instead.
    async fn wait_for_changes(
        &self,
        commits: &mut Option<watch::Receiver<u64>>,
        shutdown: &mut watch::Receiver<bool>,
    ) -> bool {
        let Some(receiver) = commits else {
            return sleep_unless_shutdown(shutdown, self.poll_interval).await;
        };
        if *shutdown.borrow() {
            return true;
        }
        tokio::select! {
            changed = receiver.changed() => {
                if changed.is_err() {
                    // The store stopped telling (it is closing): fall back to polling.
                    *commits = None;
                }
                *shutdown.borrow()
            }
            _ = shutdown.changed() => true,
        }
    }

    /// Runs the pump from `position` (what `load_position` read) until shutdown.
    pub async fn run(
        self,
        ctx: AppContext,
        mut position: FeedPosition,
        mut shutdown: watch::Receiver<bool>,
    ) {
        ctx.status.register(self.function, self.container.name());
        tracing::info!(
            function = self.function,
            ?position,
            "change-feed pump started"
        );
        let saved = match &position {
            FeedPosition::Continuation(c) => Some(c.clone()),
            _ => None,
        };
        ctx.status
            .advanced(self.function, saved.clone(), ctx.clock.now());
        let checkpoint = checkpoint::Saver::start(
            ctx.clone(),
            self.function,
            self.container,
            saved,
            shutdown.clone(),
        );

        let mut commits = ctx.store.commit_signal();
        // Whether the last pages carried changes (so going idle ends a burst).
        let mut busy = false;
        loop {
            if *shutdown.borrow() {
                break;
            }
            // Seen before reading: a commit from now on wakes the next wait.
            if let Some(receiver) = commits.as_mut() {
                receiver.borrow_and_update();
            }
            let page = match ctx
                .store
                .read_change_feed_text(self.container, &position, self.max_items)
                .await
            {
                Ok(page) => {
                    ctx.status
                        .succeeded(self.function, FailureKind::ChangeFeed, ctx.clock.now());
                    page
                }
                Err(e) => {
                    tracing::warn!(function = self.function, error = %e, "reading the change feed failed");
                    ctx.status.failed(
                        self.function,
                        FailureKind::ChangeFeed,
                        &format!("reading the change feed failed: {e}"),
                        ctx.clock.now(),
                    );
                    if sleep_unless_shutdown(&mut shutdown, ERROR_BACKOFF).await {
                        break;
                    }
                    continue;
                }
            };

            if !page.documents.is_empty() {
                let count = page.documents.len();
                let Some(outcome) = self.deliver(&ctx, page.documents, &mut shutdown).await else {
                    // Shut down between retries: the checkpoint stays, the batch comes again.
                    break;
                };
                let dead_lettered = matches!(outcome, BatchOutcome::DeadLettered { .. });
                ctx.status
                    .batch_done(self.function, count, dead_lettered, ctx.clock.now());
            }

            // Saved in the background: the next page is read without waiting for the write.
            checkpoint.save(&page.continuation);
            let caught_up = position == FeedPosition::Continuation(page.continuation.clone());
            position = FeedPosition::Continuation(page.continuation);
            if caught_up && busy {
                // A burst is over: what its batches held goes back to the system.
                crate::runtime::memory::release_free_memory();
            }
            busy = !caught_up;
            if caught_up && self.wait_for_changes(&mut commits, &mut shutdown).await {
                break;
            }
        }
        checkpoint.finish().await;
        tracing::info!(function = self.function, "change-feed pump stopped");
    }

    /// Runs the batch under the retry policy; `None` if shutdown interrupted the retries.
    async fn deliver(
        &self,
        ctx: &AppContext,
        texts: Vec<String>,
        shutdown: &mut watch::Receiver<bool>,
    ) -> Option<BatchOutcome> {
        let documents: Vec<RawDocument> = texts.iter().map(|t| RawDocument::new(t)).collect();
        let max_retries = u64::from(self.retry.max_retry_count);
        let mut retry_count = 0;
        loop {
            let invocation_id = uuid::Uuid::new_v4().to_string();
            let attempt = Attempt {
                retry_count,
                is_last: retry_count >= max_retries,
            };
            let outcome = invoke::run_batch(
                ctx,
                self.function,
                self.handler.as_ref(),
                &documents,
                attempt,
                &invocation_id,
            )
            .await;
            match &outcome {
                BatchOutcome::Retry { .. } => {
                    // run_batch counted the failed attempt.
                    retry_count = (retry_count + 1).min(max_retries);
                    let delay = self.retry.delay_before(retry_count as u32);
                    if sleep_unless_shutdown(shutdown, delay).await {
                        return None;
                    }
                }
                BatchOutcome::Succeeded { logs } | BatchOutcome::DeadLettered { logs, .. } => {
                    for line in logs {
                        tracing::info!(function = self.function, "{line}");
                    }
                    return Some(outcome);
                }
            }
        }
    }
}
