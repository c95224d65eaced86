//! The migration run: page through the legacy `Entities` execution rows in key order, plan each
//! execution in parallel (bounded), write what differs, checkpoint per page; then memberships and
//! the metrics backfill. `verify` walks the same source and only compares.

use anyhow::Context;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use super::checkpoint::{odata_string, Checkpoint};
use super::client::{Continuation, Entity, StorageClient, MAX_PAGE};
use super::log_source::{LogReadMode, LogSource, LogSpool};
use super::mapping::{self, comparable};
use super::plan::{self, PlanContext, Planned, TargetState};
use super::progress::{Progress, RowCounter};
use crate::blobs::BlobStore;
use crate::clock::Clock;
use crate::model::{MembershipDoc, Scope, Timestamp};
use crate::store::{Container, Store};

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

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Summary {
    pub executions_read: u64,
    pub migrated: u64,
    pub updated: u64,
    pub unchanged: u64,
    pub skipped_expired: u64,
    pub skipped_before_since: u64,
    pub documents_written: u64,
    pub blobs_copied: u64,
    pub log_documents: u64,
    pub memberships_written: u64,
    pub memberships_unchanged: u64,
    pub metrics_days: Vec<(String, String)>,
    /// Rows reported and skipped, with the reason.
    pub failed: Vec<String>,
    /// Set when the run stopped early (source or target unavailable): resume with `--resume`.
    pub stopped: Option<String>,
}

impl Summary {
    pub fn render(&self, dry_run: bool) -> String {
        let verb = if dry_run { "would be " } else { "" };
        let mut out = String::from("migration summary\n");
        let mut line = |key: &str, value: String| out.push_str(&format!("  {key}: {value}\n"));
        line("executions read", self.executions_read.to_string());
        line(&format!("{verb}migrated"), self.migrated.to_string());
        line(&format!("{verb}updated"), self.updated.to_string());
        line("unchanged", self.unchanged.to_string());
        line("skipped expired", self.skipped_expired.to_string());
        line(
            "skipped before --since",
            self.skipped_before_since.to_string(),
        );
        line("failed", self.failed.len().to_string());
        line(
            &format!("documents {verb}written"),
            self.documents_written.to_string(),
        );
        line(
            &format!("blobs {verb}copied"),
            self.blobs_copied.to_string(),
        );
        line("log documents in source", self.log_documents.to_string());
        line(
            &format!("memberships {verb}written"),
            self.memberships_written.to_string(),
        );
        line(
            "memberships unchanged",
            self.memberships_unchanged.to_string(),
        );
        line(
            &format!("metrics days {verb}rebuilt"),
            self.metrics_days.len().to_string(),
        );
        for reason in &self.failed {
            out.push_str(&format!("failed: {reason}\n"));
        }
        if let Some(stopped) = &self.stopped {
            out.push_str(&format!("stopped early: {stopped}\n"));
        }
        out
    }
}

/// The filter for the execution rows of every partition (or one, with `--scope`).
fn execution_filter(scope: Option<&Scope>, resume: Option<String>) -> String {
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

/// How many execution rows the filter matches (only keys are transferred), for the progress ETA.
async fn count_rows(client: &StorageClient, filter: &str) -> anyhow::Result<u64> {
    let mut count = 0;
    let mut next: Option<Continuation> = None;
    loop {
        let page = client
            .query_page(
                "Entities",
                filter,
                Some("PartitionKey,RowKey"),
                MAX_PAGE,
                next.as_ref(),
            )
            .await?;
        count += page.entities.len() as u64;
        match page.next {
            Some(continuation) => next = Some(continuation),
            None => return Ok(count),
        }
    }
}

/// Runs `work` over `items`, at most `limit` at a time, results in input order.
async fn bounded<I, T, F, Fut>(items: Vec<I>, limit: usize, work: F) -> Vec<Result<T, String>>
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
struct ReadAhead {
    logs: LogSource,
    blob_names: Option<Arc<std::collections::HashSet<String>>>,
}

async fn read_ahead(client: &StorageClient, options: &MigrateOptions) -> anyhow::Result<ReadAhead> {
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

fn plan_context(
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
async fn plan_rows(
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

fn row_key_pair(row: &Entity) -> (String, String) {
    (
        mapping::text(row, "PartitionKey").unwrap_or_default(),
        mapping::text(row, "RowKey").unwrap_or_default(),
    )
}

pub async fn migrate(
    client: &StorageClient,
    store: Arc<dyn Store>,
    blobs: Option<Arc<dyn BlobStore>>,
    clock: &dyn Clock,
    options: &MigrateOptions,
) -> anyhow::Result<Summary> {
    let checkpoint_id = Checkpoint::id_for(
        client.account_name(),
        options.scope.as_ref(),
        options.since.as_ref(),
    );
    let source = format!(
        "account {} scope {} since {}",
        client.account_name(),
        options
            .scope
            .as_ref()
            .map(Scope::to_string)
            .unwrap_or_else(|| "all".into()),
        options
            .since
            .map(|t| t.canonical())
            .unwrap_or_else(|| "any".into())
    );
    let stored = Checkpoint::load(store.as_ref(), &checkpoint_id).await?;
    let mut checkpoint = match stored {
        Some(stored) if options.resume => stored,
        // A fresh run restarts the positions but keeps the metrics days still owed.
        stored => {
            let mut fresh = Checkpoint::new(checkpoint_id.clone(), source, clock.now());
            if let Some(stored) = stored {
                fresh.pending_metrics_days = stored.pending_metrics_days;
            }
            fresh
        }
    };
    if options.resume {
        tracing::info!(checkpoint = %checkpoint_id, partitions = checkpoint.partitions.len(), "resuming");
    }
    let mut summary = Summary::default();

    if !checkpoint.executions_done() {
        let filter = execution_filter(options.scope.as_ref(), checkpoint.resume_filter());
        let total = count_rows(client, &filter).await?;
        let ahead = match read_ahead(client, options).await {
            Ok(ahead) => ahead,
            // Nothing is written yet: the rerun (or --resume) reads it again.
            Err(e) => {
                summary.stopped = Some(format!("{e:#} (run again with --resume)"));
                return Ok(summary);
            }
        };
        let ctx = plan_context(client, ahead, &store, blobs, clock, options);
        let mut progress = Progress::new(total, options.progress_interval);
        let mut next: Option<Continuation> = None;
        loop {
            let page = match client
                .query_page("Entities", &filter, None, options.page_size, next.as_ref())
                .await
            {
                Ok(page) => page,
                // Everything before this page is written and checkpointed: say so, and how to go on.
                Err(e) => {
                    summary.stopped = Some(format!("{e} (run again with --resume)"));
                    progress.finish();
                    return Ok(summary);
                }
            };
            let keys: Vec<(String, String)> = page.entities.iter().map(row_key_pair).collect();
            let committed = run_page(
                &ctx,
                store.as_ref(),
                &mut checkpoint,
                page.entities,
                options,
                &mut summary,
            )
            .await?;
            checkpoint.commit_page(&keys[..committed], clock.now());
            if !options.dry_run && committed > 0 {
                checkpoint.save(store.as_ref()).await?;
            }
            progress.advance(committed as u64);
            if summary.stopped.is_some() {
                progress.finish();
                return Ok(summary);
            }
            match page.next {
                Some(continuation) => next = Some(continuation),
                None => break,
            }
        }
        progress.finish();
        checkpoint.finish_executions(clock.now());
        if !options.dry_run {
            checkpoint.save(store.as_ref()).await?;
        }
    }

    if !checkpoint.memberships_done {
        migrate_memberships(client, store.as_ref(), options.dry_run, &mut summary).await?;
        checkpoint.memberships_done = true;
        if !options.dry_run {
            checkpoint.save(store.as_ref()).await?;
        }
    }

    backfill_metrics(
        store.as_ref(),
        clock,
        &mut checkpoint,
        options.dry_run,
        &mut summary,
    )
    .await?;
    Ok(summary)
}

/// Rebuilds the daily metrics of every (scope, day) the run wrote executions for, with the same
/// repair the hourly rollup runs. Each day leaves the checkpoint once rebuilt, so a failure
/// leaves the rest owed to the next run.
async fn backfill_metrics(
    store: &dyn Store,
    clock: &dyn Clock,
    checkpoint: &mut Checkpoint,
    dry_run: bool,
    summary: &mut Summary,
) -> anyhow::Result<()> {
    let owed: Vec<(String, String)> = checkpoint
        .pending_metrics_days
        .iter()
        .flat_map(|(scope, days)| days.iter().map(move |day| (scope.clone(), day.clone())))
        .collect();
    for (scope_text, day_text) in owed {
        if !dry_run {
            let scope = Scope::parse(&scope_text)?;
            let day = chrono::NaiveDate::parse_from_str(&day_text, "%Y-%m-%d")?;
            crate::metrics::rebuild_day(store, &scope, day, clock.now())
                .await
                .with_context(|| format!("rebuilding the metrics of {scope_text} on {day_text}"))?;
            if let Some(days) = checkpoint.pending_metrics_days.get_mut(&scope_text) {
                days.remove(&day_text);
            }
            checkpoint
                .pending_metrics_days
                .retain(|_, days| !days.is_empty());
            checkpoint.save(store).await?;
        }
        summary.metrics_days.push((scope_text, day_text));
    }
    Ok(())
}

/// Plans a page, records its metrics days, writes it; returns how many leading rows are done
/// (all of them, unless the source or target became unavailable).
async fn run_page(
    ctx: &PlanContext,
    store: &dyn Store,
    checkpoint: &mut Checkpoint,
    rows: Vec<Entity>,
    options: &MigrateOptions,
    summary: &mut Summary,
) -> anyhow::Result<usize> {
    let count = rows.len();
    let planned = plan_rows(ctx, rows, options.parallelism).await;
    // Rows before the first unavailable one are committed; the rest are retried on resume.
    let mut committed = count;
    let mut plans = Vec::new();
    for (index, result) in planned.into_iter().enumerate() {
        match result {
            Ok(Planned::Plan(plan)) => plans.push(plan),
            Ok(Planned::Expired) => summary.skipped_expired += 1,
            Ok(Planned::BeforeSince) => summary.skipped_before_since += 1,
            Ok(Planned::BadRow(reason)) => summary.failed.push(reason),
            Ok(Planned::Unavailable(reason)) | Err(reason) => {
                summary.stopped = Some(format!("{reason} (run again with --resume)"));
                committed = index;
                break;
            }
        }
        summary.executions_read += 1;
    }

    let mut new_days = false;
    for plan in &plans {
        for (scope, day) in &plan.metrics_days {
            new_days |= checkpoint
                .pending_metrics_days
                .entry(scope.to_string())
                .or_default()
                .insert(day.clone());
        }
    }
    if options.dry_run {
        for plan in &plans {
            count_plan(summary, plan);
        }
        return Ok(committed);
    }
    if new_days {
        // Before writing: a run that dies mid-page still backfills these days on resume.
        checkpoint.save(store).await?;
    }
    let written = bounded(plans, options.parallelism, |plan| {
        let store = ctx.store.clone();
        let blobs = ctx.blobs.clone();
        async move {
            let result = plan::apply_plan(store.as_ref(), blobs.as_deref(), &plan).await;
            (plan, result)
        }
    })
    .await;
    for result in written {
        match result {
            Ok((plan, Ok(()))) => count_plan(summary, &plan),
            Ok((plan, Err(e))) => {
                // The page is not checkpointed: resume rewrites it (upserts are idempotent).
                summary.stopped = Some(format!(
                    "writing execution {}: {e} (run again with --resume)",
                    plan.execution_id
                ));
                committed = 0;
            }
            Err(reason) => {
                summary.stopped = Some(reason);
                committed = 0;
            }
        }
    }
    Ok(committed)
}

fn count_plan(summary: &mut Summary, plan: &plan::ExecutionPlan) {
    summary.log_documents += plan.log_documents as u64;
    summary.documents_written += plan.writes.len() as u64;
    summary.blobs_copied += plan.blob_copies.len() as u64;
    match plan.state {
        TargetState::New => summary.migrated += 1,
        TargetState::Changed => summary.updated += 1,
        TargetState::Unchanged => summary.unchanged += 1,
    }
}

/// The legacy `userperm` rows as membership documents, and the rows that cannot be mapped.
async fn read_memberships(
    client: &StorageClient,
) -> anyhow::Result<(Vec<MembershipDoc>, Vec<String>)> {
    let rows = client
        .query_all(
            "Relationships",
            "PartitionKey eq 'GLOBAL' and RowKey ge 'userperm:' and RowKey lt 'userperm;'",
        )
        .await?;
    let (docs, errors) = mapping::memberships(&rows);
    Ok((docs, errors.iter().map(ToString::to_string).collect()))
}

async fn migrate_memberships(
    client: &StorageClient,
    store: &dyn Store,
    dry_run: bool,
    summary: &mut Summary,
) -> anyhow::Result<()> {
    let (docs, errors) = read_memberships(client).await?;
    summary.failed.extend(errors);
    for mut doc in docs {
        let scope = Scope::Global.to_string();
        let existing = store.read(Container::Entities, &scope, &doc.id).await?;
        if let Some(existing) = &existing {
            // Admin rights are granted outside the legacy tables: never revoke them here.
            if let Ok(current) = serde_json::from_value::<MembershipDoc>(existing.body.clone()) {
                doc.is_platform_admin |= current.is_platform_admin;
            }
        }
        let value = serde_json::to_value(&doc)?;
        if existing.is_some_and(|e| comparable(&e.body) == comparable(&value)) {
            summary.memberships_unchanged += 1;
            continue;
        }
        if !dry_run {
            plan::apply(store, &[(Container::Entities, value)]).await?;
        }
        summary.memberships_written += 1;
    }
    Ok(())
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VerifyReport {
    pub source_executions: u64,
    pub matching: u64,
    pub skipped_expired: u64,
    pub skipped_before_since: u64,
    pub source_log_documents: u64,
    /// Target executions newer than every source execution: written after the move, not compared.
    pub target_newer_than_source: u64,
    /// Source rows that cannot be migrated (migrate reports them too).
    pub unmigratable: Vec<String>,
    /// One line per difference.
    pub mismatches: Vec<String>,
}

impl VerifyReport {
    pub fn render(&self) -> String {
        let mut out = String::from("verify summary\n");
        out.push_str(&format!(
            "  source executions: {}\n",
            self.source_executions
        ));
        out.push_str(&format!("  matching in target: {}\n", self.matching));
        out.push_str(&format!(
            "  mismatched: {}\n",
            self.source_executions - self.matching
        ));
        out.push_str(&format!(
            "  source log documents: {}\n",
            self.source_log_documents
        ));
        out.push_str(&format!(
            "  target executions newer than the source (not compared): {}\n",
            self.target_newer_than_source
        ));
        out.push_str(&format!("  skipped expired: {}\n", self.skipped_expired));
        out.push_str(&format!(
            "  skipped before --since: {}\n",
            self.skipped_before_since
        ));
        out.push_str(&format!(
            "  unmigratable source rows: {}\n",
            self.unmigratable.len()
        ));
        for line in &self.unmigratable {
            out.push_str(&format!("unmigratable: {line}\n"));
        }
        for line in &self.mismatches {
            out.push_str(&format!("mismatch: {line}\n"));
        }
        out
    }
}

/// Compares every migratable source execution (and membership) with the target: the same
/// documents, field by field, and the same checksum. Writes nothing.
pub async fn verify(
    client: &StorageClient,
    store: Arc<dyn Store>,
    blobs: Option<Arc<dyn BlobStore>>,
    clock: &dyn Clock,
    options: &MigrateOptions,
) -> anyhow::Result<VerifyReport> {
    let ahead = read_ahead(client, options).await?;
    let ctx = plan_context(client, ahead, &store, blobs, clock, options);
    let filter = execution_filter(options.scope.as_ref(), None);
    let mut report = VerifyReport::default();
    let mut source = SourceExecutions::default();
    let mut next: Option<Continuation> = None;
    loop {
        let page = client
            .query_page("Entities", &filter, None, options.page_size, next.as_ref())
            .await?;
        page.entities.iter().for_each(|row| source.add(row));
        let planned = plan_rows(&ctx, page.entities, options.parallelism).await;
        for result in planned {
            match result {
                Ok(Planned::Plan(plan)) => {
                    report.source_executions += 1;
                    report.source_log_documents += plan.log_documents as u64;
                    if plan.differences.is_empty() {
                        report.matching += 1;
                    } else {
                        for difference in &plan.differences {
                            report.mismatches.push(format!(
                                "{} {} (source checksum {}): {difference}",
                                plan.scope,
                                plan.execution_id,
                                &plan.checksum[..16]
                            ));
                        }
                    }
                }
                Ok(Planned::Expired) => report.skipped_expired += 1,
                Ok(Planned::BeforeSince) => report.skipped_before_since += 1,
                Ok(Planned::BadRow(reason)) => report.unmigratable.push(reason),
                Ok(Planned::Unavailable(reason)) | Err(reason) => {
                    anyhow::bail!("cannot verify: {reason}")
                }
            }
        }
        match page.next {
            Some(continuation) => next = Some(continuation),
            None => break,
        }
    }
    verify_target_extras(store.as_ref(), options.scope.as_ref(), &source, &mut report).await?;
    verify_memberships(client, store.as_ref(), &mut report).await?;
    Ok(report)
}

/// Every execution id the source holds (migratable or not), and its newest start time.
#[derive(Debug, Default)]
struct SourceExecutions {
    ids: std::collections::HashSet<String>,
    newest_start: Option<Timestamp>,
}

impl SourceExecutions {
    fn add(&mut self, row: &Entity) {
        match mapping::execution_from_row(row) {
            Ok(legacy) => {
                let started = legacy.doc.started_at;
                self.newest_start = Some(self.newest_start.map_or(started, |t| t.max(started)));
                self.ids.insert(legacy.doc.execution_id);
            }
            // An unmappable row: keep whatever id it names, so its target copy (if any) is not
            // reported twice.
            Err(_) => {
                let (_, row_key) = row_key_pair(row);
                let id = mapping::text(row, "ExecutionId")
                    .or_else(|| row_key.split_once('_').map(|(_, id)| id.to_owned()));
                self.ids.extend(id);
            }
        }
    }
}

/// Target executions (in the verified scope) that the source does not have: left over from an
/// earlier source, planted, or migrated from a different account. Executions started after the
/// newest source execution were written by the new system and are only counted.
async fn verify_target_extras(
    store: &dyn Store,
    scope: Option<&Scope>,
    source: &SourceExecutions,
    report: &mut VerifyReport,
) -> anyhow::Result<()> {
    let scope_text = scope.map(Scope::to_string);
    let mut position = crate::store::FeedPosition::Beginning;
    loop {
        let page = store
            .read_change_feed(Container::Executions, &position, 1000)
            .await
            .context("listing the target executions")?;
        if page.documents.is_empty() {
            return Ok(());
        }
        for doc in &page.documents {
            let (Some(id), Some(doc_scope)) = (doc["id"].as_str(), doc["scope"].as_str()) else {
                continue;
            };
            if doc["type"] != "execution"
                || scope_text.as_deref().is_some_and(|s| s != doc_scope)
                || source.ids.contains(id)
            {
                continue;
            }
            let started = doc["startedAt"]
                .as_str()
                .and_then(|t| Timestamp::parse(t).ok());
            match (started, source.newest_start) {
                (Some(started), Some(newest)) if started > newest => {
                    report.target_newer_than_source += 1
                }
                _ => report.mismatches.push(format!(
                    "{doc_scope} {id}: execution in target but not in the source"
                )),
            }
        }
        position = crate::store::FeedPosition::Continuation(page.continuation);
    }
}

async fn verify_memberships(
    client: &StorageClient,
    store: &dyn Store,
    report: &mut VerifyReport,
) -> anyhow::Result<()> {
    let (docs, errors) = read_memberships(client).await?;
    report.unmigratable.extend(errors);
    for doc in docs {
        let existing = store
            .read(Container::Entities, Scope::GLOBAL, &doc.id)
            .await?;
        let Some(existing) = existing else {
            report
                .mismatches
                .push(format!("membership {}: missing in target", doc.id));
            continue;
        };
        match serde_json::from_value::<MembershipDoc>(existing.body) {
            Ok(current)
                if current.org_scopes == doc.org_scopes && current.user_id == doc.user_id => {}
            Ok(current) => report.mismatches.push(format!(
                "membership {}: source scopes {:?} ≠ target {:?}",
                doc.id,
                doc.org_scopes
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>(),
                current
                    .org_scopes
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
            )),
            Err(e) => report
                .mismatches
                .push(format!("membership {}: unreadable in target: {e}", doc.id)),
        }
    }
    Ok(())
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
