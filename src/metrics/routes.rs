//! `GET /api/metrics` (the legacy dashboard shape) and `GET /api/metrics/daily?days=N` (trend
//! charts), both read from the daily documents, never from a scan of executions. Scoped like
//! every other route; a platform admin may add `?scope=all` for the sum over every scope.

use std::collections::BTreeMap;

use async_trait::async_trait;
use chrono::{Duration, NaiveDate};
use serde_json::{json, Value};

use super::{ledger, summary};
use crate::model::{ExecutionDoc, MetricsDoc, Scope};
use crate::runtime::auth::{resolve_caller, Caller};
use crate::runtime::{respond, ApiError, AppContext, HttpHandler, HttpRequest, HttpResponse};
use crate::store::{query_all, Container, FilterOp, Query, Store};

pub const DASHBOARD_DAYS: i64 = 30;
pub const DEFAULT_DAILY_DAYS: usize = 30;
pub const MAX_DAILY_DAYS: usize = 365;
const RECENT_FAILURES: usize = 10;
/// Live gauges (running, pending) are counted up to this many per scope.
const GAUGE_CAP: usize = 10_000;

pub struct GetMetrics;
pub struct GetDailyMetrics;

/// The scopes a request covers: the caller's, or every scope for `?scope=all` from an admin.
async fn scopes_of(
    ctx: &AppContext,
    caller: &Caller,
    request: &HttpRequest,
) -> Result<(String, Vec<Scope>), ApiError> {
    match request.query.get("scope").map(String::as_str) {
        None | Some("") => Ok((caller.scope.legacy_org_id(), vec![caller.scope.clone()])),
        Some(all) if all.eq_ignore_ascii_case("all") => {
            if !caller.is_platform_admin {
                return Err(ApiError::forbidden(
                    "only platform administrators may read metrics of all scopes",
                ));
            }
            Ok(("all".to_owned(), ledger::known_scopes(ctx.store.as_ref()).await?))
        }
        Some(other) => Err(ApiError::bad_request(format!(
            "scope must be \"all\" or absent (pick one organization with X-Organization-Id), got {:?}",
            other.chars().take(64).collect::<String>()
        ))),
    }
}

/// Daily documents of `scope` from `from` on, by date.
async fn daily_documents(
    store: &dyn Store,
    scope: &Scope,
    from: NaiveDate,
) -> Result<BTreeMap<String, MetricsDoc>, ApiError> {
    let query = ledger::daily_documents_from(Query::new(400), &from.format("%Y-%m-%d").to_string());
    let mut days = BTreeMap::new();
    for item in query_all(store, Container::Entities, &scope.to_string(), query).await? {
        match serde_json::from_value::<MetricsDoc>(item) {
            Ok(doc) => {
                days.insert(doc.date.clone(), doc);
            }
            Err(e) => tracing::error!(%scope, error = %e, "unreadable metrics document"),
        }
    }
    Ok(days)
}

async fn count_status(store: &dyn Store, scope: &Scope, status: &str) -> Result<u64, ApiError> {
    let mut query = Query::new(1000)
        .filter("type", FilterOp::Eq(json!("execution")))
        .filter("status", FilterOp::Eq(json!(status)));
    let mut count = 0;
    loop {
        let page = store
            .query(Container::Executions, &scope.to_string(), &query)
            .await?;
        count += page.items.len();
        match page.continuation {
            Some(next) if count < GAUGE_CAP => query.continuation = Some(next),
            _ => return Ok(count as u64),
        }
    }
}

async fn recent_failures(store: &dyn Store, scope: &Scope) -> Result<Vec<ExecutionDoc>, ApiError> {
    let query = Query::new(RECENT_FAILURES)
        .filter("type", FilterOp::Eq(json!("execution")))
        .filter("status", FilterOp::Eq(json!("Failed")))
        .order_by("startedAt", true);
    let page = store
        .query(Container::Executions, &scope.to_string(), &query)
        .await?;
    Ok(page
        .items
        .into_iter()
        .filter_map(|item| serde_json::from_value(item).ok())
        .collect())
}

/// `round(x, digits)` as Python rounds for display (half away from zero is close enough here).
fn round_to(value: f64, digits: i32) -> f64 {
    let factor = 10f64.powi(digits);
    (value * factor).round() / factor
}

/// The legacy `executionStats` from a summed document and the live gauges.
pub fn execution_stats(total: &MetricsDoc, running: u64, pending: u64) -> Value {
    let decided = total.success_count + total.failed_count;
    let success_rate = if decided == 0 {
        0.0
    } else {
        round_to(total.success_count as f64 / decided as f64 * 100.0, 1)
    };
    let avg_seconds = if total.duration_count == 0 {
        0.0
    } else {
        round_to(
            total.total_duration_ms as f64 / total.duration_count as f64 / 1000.0,
            2,
        )
    };
    json!({
        "totalExecutions": total.total_executions,
        "successCount": total.success_count,
        "failedCount": total.failed_count,
        "timeoutCount": total.timeout_count,
        "completedWithErrorsCount": total.completed_with_errors_count,
        "cancelledCount": total.cancelled_count,
        "runningCount": running,
        "pendingCount": pending,
        "successRate": success_rate,
        "avgDurationSeconds": avg_seconds,
        "p50DurationMs": total.p50_duration_ms,
        "p95DurationMs": total.p95_duration_ms,
    })
}

#[async_trait]
impl HttpHandler for GetMetrics {
    async fn handle(&self, ctx: &AppContext, request: HttpRequest) -> HttpResponse {
        respond(
            async {
                let caller = resolve_caller(ctx, &request).await?;
                let (label, scopes) = scopes_of(ctx, &caller, &request).await?;
                let today = ctx.clock.now().0.date_naive();
                let from = today - Duration::days(DASHBOARD_DAYS - 1);
                let mut total = summary::empty(&label, "window");
                let (mut running, mut pending) = (0, 0);
                let mut failures = Vec::new();
                let mut documents_read = 0;
                for scope in &scopes {
                    let days = daily_documents(ctx.store.as_ref(), scope, from).await?;
                    documents_read += days.len();
                    for doc in days.values() {
                        summary::merge(&mut total, doc);
                    }
                    running += count_status(ctx.store.as_ref(), scope, "Running").await?;
                    pending += count_status(ctx.store.as_ref(), scope, "Pending").await?;
                    failures.extend(recent_failures(ctx.store.as_ref(), scope).await?);
                }
                failures.sort_by_key(|f| std::cmp::Reverse(f.started_at));
                failures.truncate(RECENT_FAILURES);
                let recent: Vec<Value> = failures
                    .iter()
                    .map(|f| {
                        json!({
                            "executionId": f.execution_id,
                            "workflowName": f.workflow_name,
                            "errorMessage": f.error_message,
                            "startedAt": f.started_at,
                        })
                    })
                    .collect();
                Ok(HttpResponse::private_json(
                    200,
                    &json!({
                        // Workflows, forms and data providers are not execution data: the
                        // legacy API counted files on disk. Here: workflows seen in the window.
                        "workflowCount": total.workflows.len(),
                        "dataProviderCount": 0,
                        "formCount": 0,
                        "executionStats": execution_stats(&total, running, pending),
                        "recentFailures": recent,
                        "scope": label,
                        "window": {
                            "from": from.format("%Y-%m-%d").to_string(),
                            "to": today.format("%Y-%m-%d").to_string(),
                            "dailyDocumentsRead": documents_read,
                        },
                    }),
                ))
            }
            .await,
        )
    }
}

#[async_trait]
impl HttpHandler for GetDailyMetrics {
    async fn handle(&self, ctx: &AppContext, request: HttpRequest) -> HttpResponse {
        respond(
            async {
                let caller = resolve_caller(ctx, &request).await?;
                let days = parse_days(request.query.get("days").map(String::as_str))?;
                let (label, scopes) = scopes_of(ctx, &caller, &request).await?;
                let today = ctx.clock.now().0.date_naive();
                let from = today - Duration::days(days as i64 - 1);
                let mut by_date: BTreeMap<String, MetricsDoc> = BTreeMap::new();
                for scope in &scopes {
                    for (date, doc) in daily_documents(ctx.store.as_ref(), scope, from).await? {
                        let entry = by_date.entry(date.clone()).or_insert_with(|| MetricsDoc {
                            sealed: true,
                            ..summary::empty(&label, &date)
                        });
                        summary::merge(entry, &doc);
                        // A sum is final only when every scope's day is.
                        entry.sealed &= doc.sealed;
                    }
                }
                let series: Vec<Value> = from
                    .iter_days()
                    .take(days)
                    .map(|date| {
                        let date = date.format("%Y-%m-%d").to_string();
                        let doc = by_date
                            .remove(&date)
                            .unwrap_or_else(|| summary::empty(&label, &date));
                        daily_point(&doc)
                    })
                    .collect();
                Ok(HttpResponse::private_json(
                    200,
                    &json!({ "scope": label, "days": series }),
                ))
            }
            .await,
        )
    }
}

fn parse_days(raw: Option<&str>) -> Result<usize, ApiError> {
    let days = crate::runtime::http::parse_limit("days", raw, DEFAULT_DAILY_DAYS, usize::MAX)?;
    if days > MAX_DAILY_DAYS {
        return Err(ApiError::bad_request(format!(
            "days must be at most {MAX_DAILY_DAYS}, got {days}"
        )));
    }
    Ok(days)
}

fn daily_point(doc: &MetricsDoc) -> Value {
    json!({
        "date": doc.date,
        "totalExecutions": doc.total_executions,
        "successCount": doc.success_count,
        "failedCount": doc.failed_count,
        "timeoutCount": doc.timeout_count,
        "completedWithErrorsCount": doc.completed_with_errors_count,
        "cancelledCount": doc.cancelled_count,
        "totalDurationMs": doc.total_duration_ms,
        "avgDurationMs": doc.avg_duration_ms,
        "p50DurationMs": doc.p50_duration_ms,
        "p95DurationMs": doc.p95_duration_ms,
        "workflows": doc.workflows,
        "sealed": doc.sealed,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn legacy_rates_and_averages() {
        let mut doc = summary::empty("GLOBAL", "w");
        doc.success_count = 2;
        doc.failed_count = 1;
        doc.total_executions = 4;
        doc.total_duration_ms = 3710;
        doc.duration_count = 3;
        let stats = execution_stats(&doc, 1, 0);
        assert_eq!(stats["successRate"], 66.7);
        assert_eq!(stats["avgDurationSeconds"], 1.24);
        assert_eq!(stats["runningCount"], 1);
        let empty = execution_stats(&summary::empty("GLOBAL", "w"), 0, 0);
        assert_eq!(empty["successRate"], 0.0);
    }

    #[test]
    fn days_parameter() {
        assert_eq!(parse_days(None).unwrap(), 30);
        assert_eq!(parse_days(Some("365")).unwrap(), 365);
        for bad in ["0", "366", "x", "-1"] {
            assert_eq!(parse_days(Some(bad)).unwrap_err().status, 400, "{bad}");
        }
    }
}
