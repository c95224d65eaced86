//! `MetricsAggregate`: the change-feed function on `executions` that keeps daily documents
//! current. Idempotent: see `contribution` and `ledger`.

use std::collections::{BTreeMap, BTreeSet};

use async_trait::async_trait;
use tracing::Instrument;

use super::contribution::{Contribution, Position};
use super::ledger::{self, Update};
use crate::model::ExecutionDoc;
use crate::runtime::{AppContext, Batch, BatchHandler, Delivered, FunctionError};

pub struct MetricsAggregate;

/// The latest delivered version of each execution, grouped by scope. Documents that are not
/// executions are ignored; unreadable ones are logged (they cannot be counted, and the rollup's
/// live aggregate skips them the same way).
pub fn updates_by_scope(
    batch: &Batch<'_>,
    skipped: &mut Vec<String>,
) -> Result<BTreeMap<String, Vec<Update>>, FunctionError> {
    let mut latest: BTreeMap<(String, String), Update> = BTreeMap::new();
    for delivered in batch.read::<Delivered<ExecutionDoc>>(skipped)? {
        if delivered.kind.as_deref() != Some("execution") {
            continue;
        }
        let position = Position {
            lsn: delivered.lsn,
            ts: delivered.ts,
        };
        let execution = match delivered.document {
            Ok(execution) => execution,
            Err(e) => {
                let id = delivered.id.as_deref().unwrap_or("?");
                skipped.push(format!("{id}: {e}"));
                continue;
            }
        };
        let update = Update {
            execution_id: execution.execution_id.clone(),
            contribution: Contribution::of(&execution),
            position,
        };
        let key = (execution.scope.to_string(), execution.execution_id.clone());
        match latest.get(&key) {
            Some(existing) if !position.is_newer_than(&existing.position) => {}
            _ => {
                latest.insert(key, update);
            }
        }
    }
    let mut by_scope: BTreeMap<String, Vec<Update>> = BTreeMap::new();
    for ((scope, _), update) in latest {
        by_scope.entry(scope).or_default().push(update);
    }
    Ok(by_scope)
}

#[async_trait]
impl BatchHandler for MetricsAggregate {
    async fn handle(
        &self,
        ctx: &AppContext,
        batch: &Batch<'_>,
    ) -> Result<Vec<String>, FunctionError> {
        let mut skipped = Vec::new();
        let by_scope = updates_by_scope(batch, &mut skipped)?;
        let mut logs = Vec::new();
        for reason in &skipped {
            tracing::error!(%reason, "execution document not counted");
            logs.push(format!("MetricsAggregate: not counted: {reason}"));
        }
        if by_scope.is_empty() {
            logs.push(format!(
                "MetricsAggregate: {} documents, no executions",
                batch.len()
            ));
            return Ok(logs);
        }
        let scopes: BTreeSet<String> = by_scope.keys().cloned().collect();
        ledger::register_scopes(ctx.store.as_ref(), &scopes).await?;
        let now = ctx.clock.now();
        for (scope, updates) in &by_scope {
            // The span is attached to the future, never entered across an await.
            let span = tracing::info_span!("metrics", %scope, executions = updates.len());
            let report = ledger::apply(ctx.store.as_ref(), now, scope, updates, false)
                .instrument(span.clone())
                .await?;
            if report.sealed_skips > 0 {
                span.in_scope(|| {
                    tracing::warn!(
                        skips = report.sealed_skips,
                        "changes to sealed days were not applied"
                    )
                });
            }
            logs.push(format!(
                "MetricsAggregate: {scope}: {} executions, {} changed, {} unchanged, days {:?}, {} conflicts retried",
                updates.len(),
                report.changed,
                report.unchanged,
                report.days_written,
                report.conflicts
            ));
        }
        Ok(logs)
    }
}
