//! The migration run: page through the legacy `Entities` execution rows in key order, plan each
//! execution in parallel (bounded), write what differs, checkpoint per page; then the entity
//! documents (organizations, users, roles, forms, config, OAuth connections, branding) and the
//! metrics backfill.

use anyhow::Context;
use std::sync::Arc;

use super::checkpoint::Checkpoint;
use super::client::{Continuation, Entity, StorageClient, MAX_PAGE};
use super::entities::EntitySummary;
use super::entity_plan::migrate_entities;
use super::plan::{self, PlanContext, Planned, TargetState};
use super::progress::Progress;
use super::scan::{
    bounded, execution_filter, plan_context, plan_rows, read_ahead, row_key_pair, MigrateOptions,
};
use crate::blobs::BlobStore;
use crate::clock::Clock;
use crate::model::Scope;
use crate::store::Store;

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
    pub metrics_days: Vec<(String, String)>,
    /// Rows reported and skipped, with the reason.
    pub failed: Vec<String>,
    /// Set when the run stopped early (source or target unavailable): resume with `--resume`.
    pub stopped: Option<String>,
    /// Organizations, users, roles, forms, config, OAuth connections, branding.
    pub entities: EntitySummary,
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
            &format!("metrics days {verb}rebuilt"),
            self.metrics_days.len().to_string(),
        );
        for reason in &self.failed {
            out.push_str(&format!("failed: {reason}\n"));
        }
        out.push_str(&self.entities.render(dry_run));
        if let Some(stopped) = &self.stopped {
            out.push_str(&format!("stopped early: {stopped}\n"));
        }
        out
    }

    /// Source rows that could not be migrated, executions and entities.
    pub fn failed_rows(&self) -> usize {
        self.failed.len() + self.entities.failed.len()
    }
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
        let mut progress = Progress::new("executions", total, options.progress_interval);
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

    if !checkpoint.entities_done {
        match migrate_entities(client, &store, options).await {
            Ok(entities) => summary.entities = entities,
            // Whatever was written is idempotent: the resume compares again and writes the rest.
            Err(e) => {
                summary.stopped = Some(format!("{e:#} (run again with --resume)"));
                return Ok(summary);
            }
        }
        checkpoint.entities_done = true;
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
