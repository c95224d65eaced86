//! Applying contribution changes to the store: markers and daily documents of one scope, written
//! together in one transactional batch under ETag preconditions, retried on conflict.
//!
//! Cost per batch chunk (≤ `CHUNK` executions of one scope): one point read per marker, one per
//! affected day (usually one), and one batch write holding the markers of newer versions and the
//! days whose sums changed. A redelivered or stale version costs its marker read and nothing else.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use serde_json::json;

use super::contribution::{Contribution, Marker, Position};
use super::summary;
use crate::model::{MetricsDoc, Scope, Timestamp};
use crate::retry::{retry, Backoff, Jitter};
use crate::store::{BatchOperation, Container, ETag, FilterOp, Query, Store, StoreError};

/// Executions per batch: each may touch its marker and two days, and a Cosmos batch holds at
/// most 100 operations (30 markers + up to 60 days).
pub const CHUNK: usize = 30;
/// When another writer changed a marker or day between our read and our write, read and try
/// again: up to 30 attempts, 2–4 ms apart at first, doubling to 64–128 ms, the random half
/// spreading racing handler instances apart so they do not collide again in step.
const ON_CONFLICT: Backoff = Backoff {
    attempts: 30,
    base: Duration::from_millis(4),
    cap: Duration::from_millis(128),
    jitter: Jitter::Equal,
};

/// The document the registry of scopes with metrics lives in (partition `GLOBAL`), so the
/// hourly rollup and all-scope dashboards know which partitions to visit.
pub const SCOPES_DOC_ID: &str = "metrics-scopes";

/// One execution's state as delivered (or as found by reconciliation).
#[derive(Debug, Clone, PartialEq)]
pub struct Update {
    pub execution_id: String,
    pub contribution: Option<Contribution>,
    pub position: Position,
}

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ApplyReport {
    /// Executions whose contribution changed.
    pub changed: usize,
    /// Deliveries that were duplicates or older than what was applied.
    pub unchanged: usize,
    /// Days whose document was written.
    pub days_written: BTreeSet<String>,
    /// Contribution changes refused because their day was sealed.
    pub sealed_skips: usize,
    /// Write conflicts retried.
    pub conflicts: u32,
}

/// Applies the updates of one scope, in chunks. With `force`, positions are ignored and the
/// marker is set whenever the contribution differs (reconciliation against the source).
pub async fn apply(
    store: &dyn Store,
    now: Timestamp,
    scope: &str,
    updates: &[Update],
    force: bool,
) -> Result<ApplyReport, StoreError> {
    let mut report = ApplyReport::default();
    for chunk in updates.chunks(CHUNK) {
        apply_chunk(store, now, scope, chunk, force, &mut report).await?;
    }
    Ok(report)
}

async fn apply_chunk(
    store: &dyn Store,
    now: Timestamp,
    scope: &str,
    chunk: &[Update],
    force: bool,
    report: &mut ApplyReport,
) -> Result<(), StoreError> {
    let outcome = retry(
        &ON_CONFLICT,
        |e| is_write_race(e).into(),
        |_, _| report.conflicts += 1,
        || try_chunk(store, now, scope, chunk, force),
    )
    .await?;
    report.changed += outcome.changed;
    report.unchanged += outcome.unchanged;
    report.sealed_skips += outcome.sealed_skips;
    report.days_written.extend(outcome.days_written);
    Ok(())
}

/// Another writer got there between our read and our write: read again and recompute.
fn is_write_race(error: &StoreError) -> bool {
    matches!(
        error,
        StoreError::PreconditionFailed { .. } | StoreError::Conflict { .. }
    )
}

#[derive(Default)]
struct ChunkOutcome {
    changed: usize,
    unchanged: usize,
    sealed_skips: usize,
    days_written: BTreeSet<String>,
}

async fn try_chunk(
    store: &dyn Store,
    now: Timestamp,
    scope: &str,
    chunk: &[Update],
    force: bool,
) -> Result<ChunkOutcome, StoreError> {
    let mut outcome = ChunkOutcome::default();
    let mut operations = Vec::new();
    let mut days: BTreeMap<String, (MetricsDoc, Option<ETag>)> = BTreeMap::new();
    let mut transitions = Vec::new();

    for update in chunk {
        let marker_id = Marker::id_for(&update.execution_id);
        let stored = store.read(Container::Entities, scope, &marker_id).await?;
        let (previous, applied_position, marker_etag) = match &stored {
            Some(doc) => match serde_json::from_value::<Marker>(doc.body.clone()) {
                Ok(marker) => (marker.contribution, marker.source, Some(doc.etag.clone())),
                // An unreadable marker is replaced; reconciliation repairs the day it skewed.
                Err(_) => (None, Position::default(), Some(doc.etag.clone())),
            },
            None => (None, Position::default(), None),
        };
        let write_marker = if force {
            // Reconciliation read the source a moment ago; never undo a newer version the
            // change feed applied since.
            previous != update.contribution && !update.position.is_older_than(&applied_position)
        } else {
            // Every newer version moves the marker, even when its contribution is the same:
            // an older version delivered later must still be recognised as older.
            update.position.is_newer_than(&applied_position)
        };
        if !write_marker {
            outcome.unchanged += 1;
            continue;
        }
        let marker = Marker::new(
            scope,
            &update.execution_id,
            update.contribution.clone(),
            update.position,
            now,
        );
        let marker = serde_json::to_value(&marker)
            .map_err(|e| StoreError::Backend(format!("serializing a marker: {e}")))?;
        operations.push(match marker_etag {
            Some(etag) => BatchOperation::Replace {
                doc: marker,
                if_match: Some(etag),
            },
            None => BatchOperation::Create(marker),
        });
        if previous == update.contribution {
            outcome.unchanged += 1;
            continue;
        }
        for contribution in previous.iter().chain(update.contribution.iter()) {
            if !days.contains_key(&contribution.day) {
                let day = read_day(store, scope, &contribution.day).await?;
                days.insert(contribution.day.clone(), day);
            }
        }
        transitions.push((previous, update.contribution.clone()));
        outcome.changed += 1;
    }
    if operations.is_empty() {
        return Ok(outcome);
    }

    let mut touched = BTreeSet::new();
    for (previous, next) in &transitions {
        for (contribution, sign) in [(previous, -1), (next, 1)] {
            let Some(contribution) = contribution else {
                continue;
            };
            let Some((doc, _)) = days.get_mut(&contribution.day) else {
                continue;
            };
            if doc.sealed {
                outcome.sealed_skips += 1;
                continue;
            }
            summary::apply(doc, contribution, sign);
            touched.insert(contribution.day.clone());
        }
    }
    for day in &touched {
        if let Some((doc, etag)) = days.get_mut(day) {
            summary::touch(doc, now);
            let body = serde_json::to_value(&*doc)
                .map_err(|e| StoreError::Backend(format!("serializing metrics: {e}")))?;
            operations.push(match etag {
                Some(etag) => BatchOperation::Replace {
                    doc: body,
                    if_match: Some(etag.clone()),
                },
                None => BatchOperation::Create(body),
            });
        }
    }
    store.batch(Container::Entities, scope, operations).await?;
    outcome.days_written = touched;
    Ok(outcome)
}

/// A day's document and its ETag, or a new empty one (no ETag) when none exists yet.
async fn read_day(
    store: &dyn Store,
    scope: &str,
    day: &str,
) -> Result<(MetricsDoc, Option<ETag>), StoreError> {
    match store
        .read(Container::Entities, scope, &MetricsDoc::id_for(day))
        .await?
    {
        Some(stored) => match serde_json::from_value::<MetricsDoc>(stored.body) {
            Ok(doc) => Ok((doc, Some(stored.etag))),
            Err(e) => Err(StoreError::InvalidDocument {
                container: Container::Entities.name(),
                reason: format!("metrics document for {day} in {scope} is unreadable: {e}"),
            }),
        },
        None => Ok((summary::empty(scope, day), None)),
    }
}

/// Every scope that has metrics, from the registry document.
pub async fn known_scopes(store: &dyn Store) -> Result<Vec<Scope>, StoreError> {
    let Some(doc) = store
        .read(Container::Entities, Scope::GLOBAL, SCOPES_DOC_ID)
        .await?
    else {
        return Ok(Vec::new());
    };
    Ok(doc.body["scopes"]
        .as_array()
        .map(|scopes| {
            scopes
                .iter()
                .filter_map(|s| s.as_str().and_then(|s| Scope::parse(s).ok()))
                .collect()
        })
        .unwrap_or_default())
}

/// Adds scopes to the registry (one read; a write only when one is new).
pub async fn register_scopes(
    store: &dyn Store,
    scopes: &BTreeSet<String>,
) -> Result<(), StoreError> {
    retry(
        &ON_CONFLICT,
        |e| is_write_race(e).into(),
        |_, _| {},
        || register_once(store, scopes),
    )
    .await
}

/// One read, and a write when a scope is new, under the read's ETag.
async fn register_once(store: &dyn Store, scopes: &BTreeSet<String>) -> Result<(), StoreError> {
    let stored = store
        .read(Container::Entities, Scope::GLOBAL, SCOPES_DOC_ID)
        .await?;
    let mut known: BTreeSet<String> = stored
        .as_ref()
        .and_then(|d| d.body["scopes"].as_array())
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    if scopes.is_subset(&known) {
        return Ok(());
    }
    known.extend(scopes.iter().cloned());
    let doc = json!({
        "id": SCOPES_DOC_ID, "type": "metricsScopes", "scope": Scope::GLOBAL, "scopes": known,
    });
    match &stored {
        Some(existing) => store
            .replace(Container::Entities, doc, Some(&existing.etag))
            .await
            .map(drop),
        None => store.create(Container::Entities, doc).await.map(drop),
    }
}

/// `query` narrowed to the daily documents from `date` on, by id range: an index seek on every
/// backend (the `id` is always indexed), unlike a filter on `type`, which would also visit the
/// partition's per-execution markers.
pub fn daily_documents_from(query: Query, date: &str) -> Query {
    query
        .filter("id", FilterOp::Ge(json!(MetricsDoc::id_for(date))))
        // `~` sorts after every digit: the end of the `metrics-daily-` range.
        .filter("id", FilterOp::Lt(json!("metrics-daily-~")))
}
