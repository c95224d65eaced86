//! The live aggregate (what the daily documents must equal) and the repairs that make them so:
//! reconcile a day against its executions, seal it before they expire, clean up old markers.

use std::collections::BTreeMap;

use chrono::{Duration, NaiveDate};
use serde_json::json;

use super::contribution::{Contribution, Marker, Position, MARKER_TYPE};
use super::ledger::{self, Update};
use super::summary;
use crate::model::{ExecutionDoc, MetricsDoc, Timestamp, EXECUTION_TTL_SECONDS};
use crate::store::{query_all, BatchOperation, Container, FilterOp, Query, Store, StoreError};

const PAGE: usize = 1000;
/// A day is sealed this many days after it ends at the latest... precisely: during day D+13,
/// before any of D's executions (TTL 14 days from their last write) can expire.
pub const SEAL_AFTER_DAYS: i64 = EXECUTION_TTL_SECONDS / 86_400 - 1;
/// Markers are kept one day longer than the executions they describe.
pub const MARKER_RETENTION_DAYS: i64 = EXECUTION_TTL_SECONDS / 86_400 + 1;

pub fn day_bounds(day: NaiveDate) -> (String, String) {
    let start = Timestamp(day.and_time(chrono::NaiveTime::MIN).and_utc());
    let end = Timestamp(
        (day + Duration::days(1))
            .and_time(chrono::NaiveTime::MIN)
            .and_utc(),
    );
    (start.canonical(), end.canonical())
}

/// The contributions of `day` read from the executions themselves, by execution id.
pub async fn live_contributions(
    store: &dyn Store,
    scope: &str,
    day: NaiveDate,
) -> Result<BTreeMap<String, (Contribution, Position)>, StoreError> {
    let (start, end) = day_bounds(day);
    let query = Query::new(PAGE)
        .filter("type", FilterOp::Eq(json!("execution")))
        .filter("completedAt", FilterOp::Ge(json!(start)))
        .filter("completedAt", FilterOp::Lt(json!(end)));
    let day_text = day.format("%Y-%m-%d").to_string();
    let mut contributions = BTreeMap::new();
    for item in query_all(store, Container::Executions, scope, query).await? {
        let position = Position::of(&item);
        let Ok(execution) = serde_json::from_value::<ExecutionDoc>(item) else {
            continue;
        };
        if let Some(contribution) = Contribution::of(&execution) {
            if contribution.day == day_text {
                contributions.insert(execution.execution_id.clone(), (contribution, position));
            }
        }
    }
    Ok(contributions)
}

/// What the day's document must hold: the aggregate over its executions, computed now.
pub async fn live_aggregate(
    store: &dyn Store,
    scope: &str,
    day: NaiveDate,
) -> Result<MetricsDoc, StoreError> {
    let day_text = day.format("%Y-%m-%d").to_string();
    let live = live_contributions(store, scope, day).await?;
    Ok(summary::from_contributions(
        scope,
        &day_text,
        live.values().map(|(c, _)| c),
    ))
}

/// Markers that currently claim `day`.
async fn markers_of_day(
    store: &dyn Store,
    scope: &str,
    day: &str,
) -> Result<Vec<(Marker, crate::store::ETag)>, StoreError> {
    let query = Query::new(PAGE)
        .filter("type", FilterOp::Eq(json!(MARKER_TYPE)))
        .filter("contribution.day", FilterOp::Eq(json!(day)));
    let mut markers = Vec::new();
    for item in query_all(store, Container::Entities, scope, query).await? {
        let etag = item["_etag"]
            .as_str()
            .map(|e| crate::store::ETag(e.to_owned()));
        if let (Ok(marker), Some(etag)) = (serde_json::from_value::<Marker>(item), etag) {
            markers.push((marker, etag));
        }
    }
    Ok(markers)
}

#[derive(Debug, Default, Clone, PartialEq)]
pub struct Repair {
    /// Markers corrected to match their executions.
    pub markers_fixed: usize,
    /// The document before and after, when it had to be rewritten.
    pub rewritten: Option<(MetricsDoc, MetricsDoc)>,
}

/// Makes `day`'s document equal the live aggregate: first each marker of the day is set to its
/// execution's contribution (never going back past a newer version the change feed already
/// applied), then the document is recomputed from the markers under an ETag, so a concurrent
/// change-feed write makes it start over instead of being overwritten.
pub async fn reconcile_day(
    store: &dyn Store,
    now: Timestamp,
    scope: &str,
    day: NaiveDate,
) -> Result<Repair, StoreError> {
    let day_text = day.format("%Y-%m-%d").to_string();
    let live = live_contributions(store, scope, day).await?;
    let mut updates: Vec<Update> = live
        .iter()
        .map(|(id, (contribution, position))| Update {
            execution_id: id.clone(),
            contribution: Some(contribution.clone()),
            position: *position,
        })
        .collect();
    // Markers claiming the day for executions that no longer belong to it.
    for (marker, _) in markers_of_day(store, scope, &day_text).await? {
        if live.contains_key(&marker.execution_id) {
            continue;
        }
        let current = store
            .read(Container::Executions, scope, &marker.execution_id)
            .await?;
        let (contribution, position) = match current {
            Some(doc) => {
                let position = Position::of(&doc.body);
                let execution = serde_json::from_value::<ExecutionDoc>(doc.body).ok();
                (execution.as_ref().and_then(Contribution::of), position)
            }
            None => (None, marker.source),
        };
        updates.push(Update {
            execution_id: marker.execution_id.clone(),
            contribution,
            position,
        });
    }
    let applied = ledger::apply(store, now, scope, &updates, true).await?;
    let mut repair = Repair {
        markers_fixed: applied.changed,
        rewritten: None,
    };

    for _ in 0..30 {
        let stored = store
            .read(Container::Entities, scope, &MetricsDoc::id_for(&day_text))
            .await?;
        let markers = markers_of_day(store, scope, &day_text).await?;
        let expected = summary::from_contributions(
            scope,
            &day_text,
            markers.iter().filter_map(|(m, _)| m.contribution.as_ref()),
        );
        let current = match &stored {
            Some(doc) => serde_json::from_value::<MetricsDoc>(doc.body.clone()).ok(),
            None => None,
        };
        if let Some(current) = &current {
            if current.sealed || summary::same_metrics(current, &expected) {
                return Ok(repair);
            }
        } else if expected.total_executions == 0 {
            return Ok(repair);
        }
        let mut fixed = expected.clone();
        summary::touch(&mut fixed, now);
        let body = serde_json::to_value(&fixed)
            .map_err(|e| StoreError::Backend(format!("serializing metrics: {e}")))?;
        let written = match &stored {
            Some(doc) => store
                .replace(Container::Entities, body, Some(&doc.etag))
                .await
                .map(|_| ()),
            None => store.create(Container::Entities, body).await.map(|_| ()),
        };
        match written {
            Ok(()) => {
                repair.rewritten = Some((
                    current.unwrap_or_else(|| summary::empty(scope, &day_text)),
                    fixed,
                ));
                return Ok(repair);
            }
            Err(StoreError::PreconditionFailed { .. } | StoreError::Conflict { .. }) => continue,
            Err(e) => return Err(e),
        }
    }
    Err(StoreError::Unavailable(format!(
        "metrics {day_text} of {scope}: kept conflicting with other writers"
    )))
}

/// Marks the day sealed (its document is final from now on) and deletes its markers.
pub async fn seal_day(
    store: &dyn Store,
    now: Timestamp,
    scope: &str,
    day: &str,
) -> Result<bool, StoreError> {
    let id = MetricsDoc::id_for(day);
    for _ in 0..30 {
        let stored = store.read(Container::Entities, scope, &id).await?;
        let (mut doc, etag) = match stored {
            Some(s) => match serde_json::from_value::<MetricsDoc>(s.body) {
                Ok(doc) => (doc, Some(s.etag)),
                Err(e) => {
                    return Err(StoreError::InvalidDocument {
                        container: Container::Entities.name(),
                        reason: format!("metrics {day} of {scope}: {e}"),
                    })
                }
            },
            None => (summary::empty(scope, day), None),
        };
        if doc.sealed {
            return Ok(false);
        }
        doc.sealed = true;
        summary::touch(&mut doc, now);
        let body = serde_json::to_value(&doc)
            .map_err(|e| StoreError::Backend(format!("serializing metrics: {e}")))?;
        let written = match &etag {
            Some(etag) => store.replace(Container::Entities, body, Some(etag)).await,
            None => store.create(Container::Entities, body).await,
        };
        match written {
            Ok(_) => {
                let markers = markers_of_day(store, scope, day).await?;
                delete_markers(store, scope, markers).await?;
                return Ok(true);
            }
            Err(StoreError::PreconditionFailed { .. } | StoreError::Conflict { .. }) => continue,
            Err(e) => return Err(e),
        }
    }
    Err(StoreError::Unavailable(format!(
        "sealing {day} of {scope}: kept conflicting with other writers"
    )))
}

async fn delete_markers(
    store: &dyn Store,
    scope: &str,
    markers: Vec<(Marker, crate::store::ETag)>,
) -> Result<usize, StoreError> {
    let mut deleted = 0;
    for chunk in markers.chunks(crate::store::MAX_BATCH_OPERATIONS) {
        let operations = chunk
            .iter()
            .map(|(marker, etag)| BatchOperation::Delete {
                id: marker.id.clone(),
                if_match: Some(etag.clone()),
            })
            .collect();
        match store.batch(Container::Entities, scope, operations).await {
            Ok(_) => deleted += chunk.len(),
            // A marker changed meanwhile: leave this chunk to the next run.
            Err(StoreError::PreconditionFailed { .. }) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(deleted)
}

/// Deletes markers not written for `MARKER_RETENTION_DAYS`: their executions have expired.
pub async fn delete_stale_markers(
    store: &dyn Store,
    now: Timestamp,
    scope: &str,
) -> Result<usize, StoreError> {
    let cutoff = now.plus_millis(-MARKER_RETENTION_DAYS * 86_400_000);
    let query = Query::new(PAGE)
        .filter("type", FilterOp::Eq(json!(MARKER_TYPE)))
        .filter("updatedAt", FilterOp::Lt(json!(cutoff.canonical())));
    let mut markers = Vec::new();
    for item in query_all(store, Container::Entities, scope, query).await? {
        let etag = item["_etag"]
            .as_str()
            .map(|e| crate::store::ETag(e.to_owned()));
        if let (Ok(marker), Some(etag)) = (serde_json::from_value::<Marker>(item), etag) {
            markers.push((marker, etag));
        }
    }
    delete_markers(store, scope, markers).await
}

/// Unsealed daily documents of a scope, by date.
pub async fn unsealed_days(store: &dyn Store, scope: &str) -> Result<Vec<NaiveDate>, StoreError> {
    let query = ledger::daily_documents_from(
        Query::new(PAGE).filter("sealed", FilterOp::Eq(json!(false))),
        "0000-00-00",
    );
    let mut days = Vec::new();
    for item in query_all(store, Container::Entities, scope, query).await? {
        if let Some(date) = item["date"]
            .as_str()
            .and_then(|d| NaiveDate::parse_from_str(d, "%Y-%m-%d").ok())
        {
            days.push(date);
        }
    }
    days.sort();
    Ok(days)
}
