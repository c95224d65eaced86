//! `DailyRollup`: the hourly timer (`0 0 * * * *`) that repairs daily documents from the
//! executions (anything a lost batch or a bug left wrong, logging each difference), seals days
//! before their executions expire, and deletes markers of expired executions.
//!
//! Cost per scope and run: one live-aggregate query per reconciled day (today and yesterday
//! every hour; every unsealed day of the last 13 at the 00:00 UTC run), one marker query per
//! reconciled day, and writes only where something was wrong.

use async_trait::async_trait;
use chrono::{Duration, NaiveDate, Timelike};

use super::ledger;
use super::reconcile::{self, SEAL_AFTER_DAYS};
use crate::functions::{AppContext, FunctionError, TimerHandler};
use crate::host::protocol::TimerInfo;
use crate::model::Timestamp;
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
        let span = tracing::info_span!("rollup", %scope);
        let _guard = span.enter();
        let unsealed = reconcile::unsealed_days(store, &scope).await?;
        let mut days = days_to_reconcile(now);
        // Days due for sealing get a last reconciliation first, while their executions exist.
        days.extend(unsealed.iter().filter(|d| **d == seal_through));
        days.sort();
        days.dedup();
        for day in days {
            let repair = reconcile::reconcile_day(store, now, &scope, day).await?;
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
            if reconcile::seal_day(store, now, &scope, &text).await? {
                logs.push(format!("DailyRollup: {scope} {text}: sealed"));
            }
        }
        let removed = reconcile::delete_stale_markers(store, now, &scope).await?;
        if removed > 0 {
            logs.push(format!(
                "DailyRollup: {scope}: {removed} expired markers deleted"
            ));
        }
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
