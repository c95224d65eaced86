//! What the migration run and `verify` share: the options, the source's execution rows (their
//! filter, and what a whole-account scan reads up front: the `ExecutionLogs` spool and the
//! legacy blob names), and planning a page of rows in parallel (bounded, in row order).

use anyhow::Context;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use super::checkpoint::odata_string;
use super::client::{Entity, StorageClient};
use super::log_source::{LogReadMode, LogSource, LogSpool};
use super::mapping;
use super::plan::{self, PlanContext, Planned};
use super::progress::RowCounter;
use crate::blobs::BlobStore;
use crate::clock::Clock;
use crate::model::{Scope, Timestamp};
use crate::store::Store;

#[derive(Debug, Clone)]
pub struct MigrateOptions {
    pub dry_run: bool,
    pub since: Option<Timestamp>,
    pub scope: Option<Scope>,
    pub resume: bool,
    pub keep_expired: bool,
    /// Executions planned and written at once.
    pub parallelism: usize,
    /// Source rows per page (and per checkpoint), at most 1000.
    pub page_size: usize,
    pub progress_interval: Duration,
    /// How the `ExecutionLogs` rows are read.
    pub log_read: LogReadMode,
}

/// The filter for the execution rows of every partition (or one, with `--scope`).
pub(super) fn execution_filter(scope: Option<&Scope>, resume: Option<String>) -> String {
    let mut filter = "RowKey ge 'execution:' and RowKey lt 'execution;'".to_owned();
    if let Some(scope) = scope {
        filter.push_str(&format!(
            " and PartitionKey eq {}",
            odata_string(&scope.legacy_org_id())
        ));
    }
    if let Some(resume) = resume {
        filter.push_str(&format!(" and {resume}"));
    }
    filter
}

/// Runs `work` over `items`, at most `limit` at a time, results in input order.
pub(super) async fn bounded<I, T, F, Fut>(
    items: Vec<I>,
    limit: usize,
    work: F,
) -> Vec<Result<T, String>>
where
    I: Send + 'static,
    T: Send + 'static,
    F: Fn(I) -> Fut,
    Fut: Future<Output = T> + Send + 'static,
{
    let permits = Arc::new(Semaphore::new(limit.max(1)));
    let mut tasks = JoinSet::new();
    let count = items.len();
    for (index, item) in items.into_iter().enumerate() {
        let permit = permits.clone().acquire_owned().await;
        let future = work(item);
        tasks.spawn(async move {
            let _permit = permit;
            (index, future.await)
        });
    }
    let mut results: Vec<Option<Result<T, String>>> = (0..count).map(|_| None).collect();
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok((index, value)) => results[index] = Some(Ok(value)),
            // A panicked task: its slot stays empty and is reported below.
            Err(e) => tracing::error!("migration task failed: {e}"),
        }
    }
    results
        .into_iter()
        .map(|r| r.unwrap_or_else(|| Err("task panicked".into())))
        .collect()
}

/// What a run reads up front: with a whole-account scan, the `ExecutionLogs` table (into the
/// spool) and the names of the legacy blobs, each once.
pub(super) struct ReadAhead {
    logs: LogSource,
    blob_names: Option<Arc<std::collections::HashSet<String>>>,
}

pub(super) async fn read_ahead(
    client: &StorageClient,
    options: &MigrateOptions,
) -> anyhow::Result<ReadAhead> {
    let partial_run = options.scope.is_some() || options.since.is_some();
    if !options.log_read.spools(partial_run) {
        return Ok(ReadAhead {
            logs: LogSource::PerExecution,
            blob_names: None,
        });
    }
    let names = client
        .list_blobs(mapping::BLOB_CONTAINER, options.page_size)
        .await
        .context("listing the legacy blobs")?;
    tracing::info!(blobs = names.len(), "legacy blobs listed");
    let counter = Arc::new(RowCounter::new(
        "reading ExecutionLogs",
        options.progress_interval,
    ));
    let reported = counter.clone();
    let spool = LogSpool::fill(client, move |rows| reported.add(rows))
        .await
        .context("reading the ExecutionLogs table into the local spool")?;
    counter.finish();
    tracing::info!(rows = spool.len(), "ExecutionLogs spooled");
    Ok(ReadAhead {
        logs: LogSource::Spooled(spool),
        blob_names: Some(Arc::new(names.into_iter().collect())),
    })
}

pub(super) fn plan_context(
    client: &StorageClient,
    ahead: ReadAhead,
    store: &Arc<dyn Store>,
    blobs: Option<Arc<dyn BlobStore>>,
    clock: &dyn Clock,
    options: &MigrateOptions,
) -> PlanContext {
    PlanContext {
        client: client.clone(),
        logs: ahead.logs,
        blob_names: ahead.blob_names,
        store: store.clone(),
        blobs,
        now: clock.now(),
        keep_expired: options.keep_expired,
        since: options.since,
        unavailable: Arc::default(),
    }
}

/// Plans a page of execution rows, `parallelism` at a time, in row order.
pub(super) async fn plan_rows(
    ctx: &PlanContext,
    rows: Vec<Entity>,
    parallelism: usize,
) -> Vec<Result<Planned, String>> {
    bounded(rows, parallelism, |row| {
        let ctx = ctx.clone();
        async move { plan::plan_execution(&ctx, &row).await }
    })
    .await
}

pub(super) fn row_key_pair(row: &Entity) -> (String, String) {
    (
        mapping::text(row, "PartitionKey").unwrap_or_default(),
        mapping::text(row, "RowKey").unwrap_or_default(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_cover_every_partition_or_one_scope() {
        assert_eq!(
            execution_filter(None, None),
            "RowKey ge 'execution:' and RowKey lt 'execution;'"
        );
        let org: Scope = "org-0f4a6f6c-1111-4c2e-9a57-3d2b8f1f0a01".parse().unwrap();
        assert_eq!(
            execution_filter(Some(&org), Some("PartitionKey gt 'A'".into())),
            "RowKey ge 'execution:' and RowKey lt 'execution;' and PartitionKey eq '0f4a6f6c-1111-4c2e-9a57-3d2b8f1f0a01' and PartitionKey gt 'A'"
        );
    }

    #[tokio::test]
    async fn bounded_keeps_input_order() {
        let out = bounded(vec![30u64, 10, 20], 2, |ms| async move {
            tokio::time::sleep(Duration::from_millis(ms)).await;
            ms
        })
        .await;
        assert_eq!(out, vec![Ok(30), Ok(10), Ok(20)]);
    }
}
