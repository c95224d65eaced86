//! Daily metrics that always equal the truth (issue: dashboard architecture).
//!
//! - `contribution`: what one execution adds to its day, and the marker remembering it (pure).
//! - `summary`: daily documents as sums of contributions (pure).
//! - `ledger`: applying contribution changes atomically (markers + days in one batch, ETags).
//! - `reconcile`: the live aggregate, day repair, sealing, marker cleanup.
//! - `aggregate` / `rollup`: the change-feed function and the hourly timer built on them.
//! - `routes`: the dashboard's HTTP functions (`GET /api/metrics`, `GET /api/metrics/daily`).

pub mod aggregate;
pub mod contribution;
pub mod ledger;
#[cfg(test)]
mod properties;
pub mod reconcile;
pub mod rollup;
pub mod routes;
pub mod summary;

pub use aggregate::MetricsAggregate;
pub use ledger::known_scopes;
pub use reconcile::{live_aggregate, reconcile_day};
pub use rollup::DailyRollup;
pub use routes::{GetDailyMetrics, GetMetrics};

use chrono::NaiveDate;

use crate::model::{MetricsDoc, Scope, Timestamp};
use crate::store::{Container, Store, StoreError};

/// Brings one day of one scope in line with its executions and returns the stored document
/// (used by the migration's backfill; the same repair the hourly rollup runs).
pub async fn rebuild_day(
    store: &dyn Store,
    scope: &Scope,
    day: NaiveDate,
    now: Timestamp,
) -> Result<MetricsDoc, StoreError> {
    let scope_text = scope.to_string();
    ledger::register_scopes(store, &[scope_text.clone()].into_iter().collect()).await?;
    reconcile_day(store, now, &scope_text, day).await?;
    let day_text = day.format("%Y-%m-%d").to_string();
    match store
        .read(
            Container::Entities,
            &scope_text,
            &MetricsDoc::id_for(&day_text),
        )
        .await?
    {
        Some(doc) => serde_json::from_value(doc.body).map_err(|e| StoreError::InvalidDocument {
            container: Container::Entities.name(),
            reason: e.to_string(),
        }),
        None => Ok(summary::empty(&scope_text, &day_text)),
    }
}
