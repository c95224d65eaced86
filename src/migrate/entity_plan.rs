//! The entity documents (organizations, users, roles, forms, config, OAuth connections,
//! branding): read from the three legacy tables, mapped (`entities`), compared with the
//! target. The run writes what differs (nothing on a rerun); `--verify` reports the
//! differences and the target's entity documents the source does not have.

use std::collections::BTreeSet;
use std::sync::Arc;

use anyhow::Context;
use serde_json::Value;

use super::client::{ReadError, StorageClient};
use super::entities::catalog::source_queries;
use super::entities::secrets::is_sensitive_name;
use super::entities::users::keep_granted_admin;
use super::entities::{map_source, EntityDocument, EntitySummary, Mapping, Source};
use super::mapping::comparable;
use super::plan::{self, field_differences};
use super::progress::{Progress, RowCounter};
use super::scan::{bounded, MigrateOptions};
use crate::model::EntityKind;
use crate::store::{Container, FeedPosition, Store, StoreError};

/// Every row of the source's entity kinds (a table that does not exist reads as empty).
pub async fn read_source(
    client: &StorageClient,
    options: &MigrateOptions,
) -> anyhow::Result<Source> {
    let counter = RowCounter::new("reading legacy entity rows", options.progress_interval);
    let mut source = Source::default();
    for (table, filter) in source_queries() {
        let rows = match client.query_all(table, &filter).await {
            Ok(rows) => rows,
            Err(ReadError::Status { status: 404, .. }) => Vec::new(),
            Err(e) => return Err(e).with_context(|| format!("reading the legacy {table} table")),
        };
        counter.add(rows.len() as u64);
        source.table_mut(table).extend(rows);
    }
    counter.finish();
    Ok(source)
}

/// The mapped source compared with the target.
#[derive(Debug, Default)]
pub struct EntityPlan {
    pub summary: EntitySummary,
    /// Documents that differ from the target (or are missing there).
    pub writes: Vec<Value>,
    /// One line per difference: `kind scope id: …`.
    pub differences: Vec<String>,
    /// Every (scope, id) the source makes, for the target's extras.
    pub source_ids: BTreeSet<(String, String)>,
}

/// How a mapped document stands against its target copy.
enum Standing {
    Missing,
    Differs(String),
    Same,
    /// The source withholds a value the operator has since completed in the target.
    Resolved,
}

/// Compares every mapped document with the target (point reads, `parallelism` at a time).
pub async fn plan(
    store: &Arc<dyn Store>,
    mapping: Mapping,
    options: &MigrateOptions,
) -> Result<EntityPlan, StoreError> {
    let Mapping { documents, summary } = mapping;
    let mut entity_plan = EntityPlan {
        summary,
        source_ids: documents
            .iter()
            .map(|d| (d.scope.to_string(), d.id.clone()))
            .collect(),
        ..EntityPlan::default()
    };
    let mut progress = Progress::new(
        "entity documents",
        documents.len() as u64,
        options.progress_interval,
    );
    let standings = bounded(documents, options.parallelism, |doc| {
        let store = store.clone();
        async move {
            let current = store
                .read(Container::Entities, &doc.scope.to_string(), &doc.id)
                .await
                .map(|stored| stored.map(|s| s.body));
            (doc, current)
        }
    })
    .await;
    for joined in standings {
        let (mut doc, current) = joined.map_err(StoreError::Backend)?;
        progress.advance(1);
        let current = current?;
        if keep_granted_admin(&mut doc.body, current.as_ref()) {
            entity_plan.summary.kept.push(format!(
                "{}: isPlatformAdmin granted in the target, not revoked",
                doc.name()
            ));
        }
        let standing = standing(&doc, current.as_ref());
        let tally = entity_plan.summary.tally(doc.kind);
        match standing {
            Standing::Same => tally.unchanged += 1,
            Standing::Resolved => {
                tally.unchanged += 1;
                entity_plan.summary.resolved.push(format!(
                    "{}: completed in the target since, left as it is",
                    doc.name()
                ));
            }
            Standing::Missing | Standing::Differs(_) => {
                tally.written += 1;
                let what = match standing {
                    Standing::Differs(fields) => fields,
                    _ => "missing in target".into(),
                };
                entity_plan
                    .differences
                    .push(format!("{}: {what}", doc.name()));
                entity_plan.writes.push(doc.body);
            }
        }
    }
    progress.finish();
    Ok(entity_plan)
}

fn standing(doc: &EntityDocument, current: Option<&Value>) -> Standing {
    let Some(current) = current else {
        return Standing::Missing;
    };
    if comparable(current) == comparable(&doc.body) {
        return Standing::Same;
    }
    if withholds(&doc.body) && !withholds(current) {
        return Standing::Resolved;
    }
    Standing::Differs(field_differences(&doc.body, current, |field| {
        matches!(field, "value" | "settings") || is_sensitive_name(field)
    }))
}

/// Whether a config or integration document lacks a value the source withheld.
fn withholds(doc: &Value) -> bool {
    doc["valueRedacted"] == true
        || doc["redactedSettings"]
            .as_array()
            .is_some_and(|members| !members.is_empty())
}

/// The run's entity step: read, map, compare, write what differs (nothing with `--dry-run`).
pub async fn migrate_entities(
    client: &StorageClient,
    store: &Arc<dyn Store>,
    options: &MigrateOptions,
) -> anyhow::Result<EntitySummary> {
    let source = read_source(client, options).await?;
    let entity_plan = plan(store, map_source(&source), options)
        .await
        .context("reading the target's entity documents")?;
    if !options.dry_run && !entity_plan.writes.is_empty() {
        let writes: Vec<(Container, Value)> = entity_plan
            .writes
            .into_iter()
            .map(|doc| (Container::Entities, doc))
            .collect();
        plan::apply(store.as_ref(), &writes)
            .await
            .context("writing entity documents")?;
    }
    Ok(entity_plan.summary)
}

/// `kind scope id: in target but not in the source` for every entity document of the target
/// (any partition) the source does not make: left from an earlier source, planted, or
/// written by hand.
pub async fn target_extras(
    store: &dyn Store,
    source_ids: &BTreeSet<(String, String)>,
) -> Result<Vec<String>, StoreError> {
    let mut extras = Vec::new();
    let mut position = FeedPosition::Beginning;
    loop {
        let page = store
            .read_change_feed(Container::Entities, &position, 1000)
            .await?;
        if page.documents.is_empty() {
            return Ok(extras);
        }
        for doc in &page.documents {
            let (Some(id), Some(scope), Some(kind)) = (
                doc["id"].as_str(),
                doc["scope"].as_str(),
                doc["type"].as_str().and_then(EntityKind::from_type),
            ) else {
                continue;
            };
            if !source_ids.contains(&(scope.to_owned(), id.to_owned())) {
                extras.push(format!(
                    "{kind} {scope} {id}: in target but not in the source"
                ));
            }
        }
        position = FeedPosition::Continuation(page.continuation);
    }
}
