//! `verify`: walk the same source as the run and only compare: every migratable execution
//! and entity document against the target, field by field (executions also by checksum), and
//! the target's executions and entity documents the source does not have. Writes nothing.

use anyhow::Context;
use std::sync::Arc;

use super::client::{Continuation, Entity, StorageClient};
use super::entities::map_source;
use super::entity_plan;
use super::mapping;
use super::plan::Planned;
use super::scan::{
    execution_filter, plan_context, plan_rows, read_ahead, row_key_pair, MigrateOptions,
};
use crate::blobs::BlobStore;
use crate::clock::Clock;
use crate::model::{Scope, Timestamp};
use crate::store::{Container, Store};

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VerifyReport {
    pub source_executions: u64,
    pub matching: u64,
    pub skipped_expired: u64,
    pub skipped_before_since: u64,
    pub source_log_documents: u64,
    /// Target executions newer than every source execution: written after the move, not compared.
    pub target_newer_than_source: u64,
    /// Entity documents the source makes, and how many of them the target holds unchanged.
    pub entity_documents: u64,
    pub entity_matching: u64,
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
        out.push_str(&format!(
            "  source entity documents: {}\n",
            self.entity_documents
        ));
        out.push_str(&format!(
            "  entity documents matching in target: {}\n",
            self.entity_matching
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

/// Compares every migratable source execution and entity document with the target: the same
/// documents, field by field, and for executions the same checksum. Writes nothing.
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
    verify_entities(client, &store, options, &mut report).await?;
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

/// The entity documents, compared field by field (values that may be secrets only said to
/// differ), and the target's entity documents the source does not make.
async fn verify_entities(
    client: &StorageClient,
    store: &Arc<dyn Store>,
    options: &MigrateOptions,
    report: &mut VerifyReport,
) -> anyhow::Result<()> {
    let source = entity_plan::read_source(client, options).await?;
    let compared = entity_plan::plan(store, map_source(&source), options)
        .await
        .context("reading the target's entity documents")?;
    report.entity_documents = compared.source_ids.len() as u64;
    report.entity_matching = report.entity_documents - compared.differences.len() as u64;
    report.unmigratable.extend(compared.summary.failed);
    report.mismatches.extend(compared.differences);
    report.mismatches.extend(
        entity_plan::target_extras(store.as_ref(), &compared.source_ids)
            .await
            .context("listing the target's entity documents")?,
    );
    Ok(())
}
