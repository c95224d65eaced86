//! `DailyRollup`: the hourly timer (`0 0 * * * *`) that repairs daily documents from the
//! executions (anything a lost batch or a bug left wrong, logging each difference), seals days
//! before their executions expire, and deletes markers of expired executions.
//!
//! Cost per scope and run: one live-aggregate query per reconciled day (today and yesterday
//! every hour; every unsealed day of the last 13 at the 00:00 UTC run), one marker query per
//! reconciled day, and writes only where something was wrong.

use async_trait::async_trait;
use chrono::{Duration, NaiveDate, Timelike};
use tracing::Instrument;

use super::ledger;
use super::reconcile::{self, SEAL_AFTER_DAYS};
use crate::model::Timestamp;
use crate::runtime::TimerInfo;
use crate::runtime::{AppContext, FunctionError, TimerHandler};
use crate::store::Store;

pub const SCHEDULE: &str = "0 0 * * * *";

pub struct DailyRollup;

#[async_trait]
impl TimerHandler for DailyRollup {
    async fn handle(
        &self,
        ctx: &AppContext,
        _timer: TimerInfo,
    ) -> Result<Vec<String>, FunctionError> {
        Ok(run(ctx.store.as_ref(), ctx.clock.now()).await?)
    }
}

/// Days to reconcile now: today and yesterday every hour, and at the 00:00 UTC run every day
/// young enough that none of its executions can have expired (with or without a document, so a
/// day whose batches were all lost is rebuilt too).
fn days_to_reconcile(now: Timestamp) -> Vec<NaiveDate> {
    let today = now.0.date_naive();
    let first = if now.0.hour() == 0 {
        today - Duration::days(SEAL_AFTER_DAYS)
    } else {
        today - Duration::days(1)
    };
    first.iter_days().take_while(|d| *d <= today).collect()
}

/// Reconciles, seals and cleans one scope, appending what it changed to `logs`.
async fn rollup_scope(
    store: &dyn Store,
    now: Timestamp,
    scope: &str,
    seal_through: NaiveDate,
    logs: &mut Vec<String>,
) -> Result<(), crate::store::StoreError> {
    let unsealed = reconcile::unsealed_days(store, scope).await?;
    let mut days = days_to_reconcile(now);
    // Days due for sealing get a last reconciliation first, while their executions exist.
    days.extend(unsealed.iter().filter(|d| **d == seal_through));
    days.sort();
    days.dedup();
    for day in days {
        let repair = reconcile::reconcile_day(store, now, scope, day).await?;
        if let Some((before, after)) = &repair.rewritten {
            tracing::warn!(
                %day,
                before_total = before.total_executions,
                after_total = after.total_executions,
                before_success = before.success_count,
                after_success = after.success_count,
                markers_fixed = repair.markers_fixed,
                "daily metrics repaired"
            );
            logs.push(format!(
                "DailyRollup: {scope} {day}: repaired total {} -> {}, success {} -> {}, failed {} -> {}, duration {} -> {} ms ({} markers fixed)",
                before.total_executions, after.total_executions,
                before.success_count, after.success_count,
                before.failed_count, after.failed_count,
                before.total_duration_ms, after.total_duration_ms,
                repair.markers_fixed
            ));
        } else if repair.markers_fixed > 0 {
            logs.push(format!(
                "DailyRollup: {scope} {day}: {} markers fixed, totals were right",
                repair.markers_fixed
            ));
        }
    }
    for day in unsealed.iter().filter(|d| **d <= seal_through) {
        let text = day.format("%Y-%m-%d").to_string();
        if reconcile::seal_day(store, now, scope, &text).await? {
            logs.push(format!("DailyRollup: {scope} {text}: sealed"));
        }
    }
    let removed = reconcile::delete_stale_markers(store, now, scope).await?;
    if removed > 0 {
        logs.push(format!(
            "DailyRollup: {scope}: {removed} expired markers deleted"
        ));
    }
    Ok(())
}

/// One rollup pass over every scope with metrics; returns log lines for the host.
pub async fn run(
    store: &dyn Store,
    now: Timestamp,
) -> Result<Vec<String>, crate::store::StoreError> {
    let mut logs = Vec::new();
    let today = now.0.date_naive();
    let seal_through = today - Duration::days(SEAL_AFTER_DAYS);
    for scope in ledger::known_scopes(store).await? {
        let scope = scope.to_string();
        // The span is attached to the future, never entered across an await.
        let span = tracing::info_span!("rollup", %scope);
        rollup_scope(store, now, &scope, seal_through, &mut logs)
            .instrument(span)
            .await?;
    }
    if logs.is_empty() {
        logs.push("DailyRollup: all daily metrics match their executions".to_owned());
    }
    Ok(logs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hourly_runs_check_two_days_midnight_runs_all_complete_ones() {
        let at = |s: &str| Timestamp::parse(s).unwrap();
        let d = |s: &str| NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap();
        assert_eq!(
            days_to_reconcile(at("2026-11-23T05:00:00Z")),
            [d("2026-11-22"), d("2026-11-23")]
        );
        let midnight = days_to_reconcile(at("2026-11-23T00:00:00Z"));
        assert_eq!(midnight.first(), Some(&d("2026-11-10")));
        assert_eq!(midnight.last(), Some(&d("2026-11-23")));
        assert_eq!(midnight.len(), 14);
    }
}

/// The retention story end to end on the real store with a moving clock: executions counted by
/// the change feed, the day sealed before they expire, the executions purged by TTL, and the
/// day still served by the dashboard API afterwards.
#[cfg(test)]
mod retention_tests {
    use std::sync::Arc;

    use serde_json::{json, Value};

    use super::*;
    use crate::clock::{Clock, ManualClock};
    use crate::metrics::aggregate::MetricsAggregate;
    use crate::metrics::routes::{GetDailyMetrics, GetMetrics};
    use crate::runtime::HttpRequest;
    use crate::runtime::{AppContext, BatchHandler, HttpHandler};
    use crate::store::{sqlite::SqliteStore, Container, FeedPosition};

    const ORG: &str = "org-0f4a6f6c-1111-4c2e-9a57-3d2b8f1f0a01";

    fn admin_request(query: &[(&str, &str)]) -> HttpRequest {
        let principal = bifrost_test_support::principal::admin("admin");
        HttpRequest {
            method: "GET".into(),
            url: "http://localhost/api/metrics".into(),
            query: query
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            headers: [
                ("x-ms-client-principal".to_owned(), vec![principal]),
                (
                    "x-organization-id".to_owned(),
                    vec![ORG.trim_start_matches("org-").to_owned()],
                ),
            ]
            .into_iter()
            .collect(),
            params: Default::default(),
            body: None,
        }
    }

    async fn daily(ctx: &AppContext, date: &str) -> Value {
        let response = GetDailyMetrics
            .handle(ctx, admin_request(&[("days", "30")]))
            .await;
        assert_eq!(response.status, 200, "{}", response.body);
        let body: Value = serde_json::from_str(&response.body).unwrap();
        body["days"]
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["date"] == date)
            .cloned()
            .unwrap_or_else(|| panic!("{date} not in {body}"))
    }

    #[tokio::test]
    async fn sealed_history_outlives_the_executions() {
        let dir = tempfile::tempdir().unwrap();
        let clock = Arc::new(ManualClock::new(
            Timestamp::parse("2026-11-01T12:00:00Z").unwrap(),
        ));
        let store = Arc::new(SqliteStore::open(&dir.path().join("t.db"), clock.clone()).unwrap());
        let ctx = AppContext::standalone(store.clone(), clock.clone(), dir.path());
        for (i, status) in ["Success", "Success", "Failed", "Timeout"]
            .iter()
            .enumerate()
        {
            store
                .upsert(
                    Container::Executions,
                    json!({
                        "id": format!("e{i}"), "type": "execution", "scope": ORG,
                        "executionId": format!("e{i}"), "workflowName": "w", "executedBy": "u",
                        "status": status, "startedAt": "2026-11-01T11:00:00Z",
                        "completedAt": "2026-11-01T11:30:00Z", "durationMs": 1000 * (i as i64 + 1),
                    }),
                    None,
                )
                .await
                .unwrap();
        }
        let feed = store
            .read_change_feed(Container::Executions, &FeedPosition::Beginning, 100)
            .await
            .unwrap();
        let held = crate::runtime::batch::TestBatch::of(&feed.documents);
        let documents = held.documents();
        MetricsAggregate
            .handle(&ctx, &crate::runtime::Batch::new(&documents, 0))
            .await
            .unwrap();
        let day = daily(&ctx, "2026-11-01").await;
        assert_eq!(day["totalExecutions"], 4);
        assert_eq!(day["sealed"], false);

        // Day 13 after: the rollup reconciles the day one last time and seals it.
        clock.advance_secs(13 * 86_400);
        let logs = run(store.as_ref(), clock.now()).await.unwrap();
        assert!(
            logs.iter().any(|l| l.contains("2026-11-01: sealed")),
            "{logs:?}"
        );
        // Day 15: the executions have expired and are purged.
        clock.advance_secs(2 * 86_400);
        assert!(store.purge_expired().await.unwrap() >= 4);
        assert!(store
            .read(Container::Executions, ORG, "e0")
            .await
            .unwrap()
            .is_none());
        // Another rollup changes nothing: the sealed day is final.
        run(store.as_ref(), clock.now()).await.unwrap();

        let day = daily(&ctx, "2026-11-01").await;
        assert_eq!(day["totalExecutions"], 4, "{day}");
        assert_eq!(day["successCount"], 2);
        assert_eq!(day["failedCount"], 1);
        assert_eq!(day["timeoutCount"], 1);
        assert_eq!(day["avgDurationMs"], 2500);
        assert_eq!(day["sealed"], true);
        let response = GetMetrics.handle(&ctx, admin_request(&[])).await;
        let body: Value = serde_json::from_str(&response.body).unwrap();
        assert_eq!(body["executionStats"]["totalExecutions"], 4, "{body}");
        assert_eq!(body["executionStats"]["successRate"], 66.7);
    }
}
