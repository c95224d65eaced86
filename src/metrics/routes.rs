//! `GET /api/metrics` (the legacy dashboard shape) and `GET /api/metrics/daily?days=N` (trend
//! charts), both read from the daily documents, never from a scan of executions. Scoped like
//! every other route; a platform admin may add `?scope=all` for the sum over every scope.

use std::collections::BTreeMap;

use async_trait::async_trait;
use chrono::{Duration, NaiveDate};
use schemars::JsonSchema;
use serde::Serialize;
use serde_json::json;

use super::{ledger, summary};
use crate::model::{ExecutionDoc, MetricsDoc, Scope, Timestamp, WorkflowMetrics};
use crate::runtime::auth::{resolve_caller, Caller};
use crate::runtime::{
    respond, ApiError, AppContext, HttpHandler, HttpRequest, HttpResponse, Operation, Parameter,
};
use crate::store::{query_all, Container, FilterOp, Query, Store};

pub const DASHBOARD_DAYS: i64 = 30;
pub const DEFAULT_DAILY_DAYS: usize = 30;
pub const MAX_DAILY_DAYS: usize = 365;
const RECENT_FAILURES: usize = 10;
/// Live gauges (running, pending) are counted up to this many per scope.
const GAUGE_CAP: usize = 10_000;

pub struct GetMetrics;
pub struct GetDailyMetrics;

/// `GET /api/metrics`: the legacy dashboard over the last 30 days.
#[derive(Debug, Clone, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Dashboard {
    /// Workflows seen in the window (the legacy API counted workflow files on disk).
    pub workflow_count: usize,
    /// Always 0: data providers are not execution data.
    pub data_provider_count: u64,
    /// Always 0: forms are not execution data.
    pub form_count: u64,
    pub execution_stats: ExecutionStats,
    /// The 10 newest Failed executions.
    pub recent_failures: Vec<RecentFailure>,
    /// The scope counted: the legacy org id (uuid or GLOBAL), or `all`.
    pub scope: String,
    pub window: DashboardWindow,
}

/// Terminal executions counted, by status: the first fields of both the dashboard's
/// `executionStats` and each daily point.
#[derive(Debug, Clone, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct StatusCounts {
    pub total_executions: u64,
    pub success_count: u64,
    pub failed_count: u64,
    pub timeout_count: u64,
    pub completed_with_errors_count: u64,
    pub cancelled_count: u64,
}

impl From<&MetricsDoc> for StatusCounts {
    fn from(doc: &MetricsDoc) -> Self {
        StatusCounts {
            total_executions: doc.total_executions,
            success_count: doc.success_count,
            failed_count: doc.failed_count,
            timeout_count: doc.timeout_count,
            completed_with_errors_count: doc.completed_with_errors_count,
            cancelled_count: doc.cancelled_count,
        }
    }
}

/// The legacy `executionStats`.
#[derive(Debug, Clone, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExecutionStats {
    #[serde(flatten)]
    pub counts: StatusCounts,
    /// Executions Running now (a live count, up to 10,000 per scope).
    pub running_count: u64,
    /// Executions Pending now (a live count, up to 10,000 per scope).
    pub pending_count: u64,
    /// round(success / (success + failed) · 100, 1); 0 when neither.
    pub success_rate: f64,
    /// round(mean duration / 1000, 2); 0 when no duration was reported.
    pub avg_duration_seconds: f64,
    pub p50_duration_ms: Option<i64>,
    pub p95_duration_ms: Option<i64>,
}

#[derive(Debug, Clone, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RecentFailure {
    pub execution_id: String,
    pub workflow_name: String,
    pub error_message: Option<String>,
    pub started_at: Timestamp,
}

/// The UTC days the dashboard counted.
#[derive(Debug, Clone, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DashboardWindow {
    /// First day, YYYY-MM-DD.
    pub from: String,
    /// Last day (today, UTC), YYYY-MM-DD.
    pub to: String,
    /// Daily documents summed (at most 30 per scope).
    pub daily_documents_read: usize,
}

/// `GET /api/metrics/daily`: one point per UTC day, oldest first, ending today.
#[derive(Debug, Clone, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DailyMetrics {
    /// The legacy org id (uuid or GLOBAL), or `all`.
    pub scope: String,
    pub days: Vec<DailyPoint>,
}

/// One day: every terminal execution counted once, on the UTC date of its `completedAt`.
#[derive(Debug, Clone, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DailyPoint {
    /// YYYY-MM-DD.
    pub date: String,
    #[serde(flatten)]
    pub counts: StatusCounts,
    pub total_duration_ms: i64,
    pub avg_duration_ms: i64,
    /// From a histogram with buckets 2^(1/8) wide: within ±4.5% of the exact percentile.
    pub p50_duration_ms: Option<i64>,
    pub p95_duration_ms: Option<i64>,
    /// Per workflow name.
    pub workflows: BTreeMap<String, WorkflowMetrics>,
    /// The day is final: its executions are about to expire and the document no longer changes.
    pub sealed: bool,
}

/// `?scope=all`, shared by both routes.
fn scope_parameter() -> Parameter {
    Parameter::query::<String>(
        "scope",
        "`all` (platform administrators only): the sum over every scope. Absent: the request's scope.",
    )
}

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
pub fn execution_stats(total: &MetricsDoc, running: u64, pending: u64) -> ExecutionStats {
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
    ExecutionStats {
        counts: total.into(),
        running_count: running,
        pending_count: pending,
        success_rate,
        avg_duration_seconds: avg_seconds,
        p50_duration_ms: total.p50_duration_ms,
        p95_duration_ms: total.p95_duration_ms,
    }
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
                let recent_failures = failures
                    .into_iter()
                    .map(|f| RecentFailure {
                        execution_id: f.execution_id,
                        workflow_name: f.workflow_name,
                        error_message: f.error_message,
                        started_at: f.started_at,
                    })
                    .collect();
                Ok(HttpResponse::private_json(
                    200,
                    &Dashboard {
                        // Workflows, forms and data providers are not execution data: the
                        // legacy API counted files on disk. Here: workflows seen in the window.
                        workflow_count: total.workflows.len(),
                        data_provider_count: 0,
                        form_count: 0,
                        execution_stats: execution_stats(&total, running, pending),
                        recent_failures,
                        scope: label,
                        window: DashboardWindow {
                            from: from.format("%Y-%m-%d").to_string(),
                            to: today.format("%Y-%m-%d").to_string(),
                            daily_documents_read: documents_read,
                        },
                    },
                ))
            }
            .await,
        )
    }

    fn operation(&self) -> Operation {
        Operation::new("metrics", "Dashboard (legacy shape)")
            .description("The last 30 UTC days from at most 30 daily documents, plus live counts of Running and Pending executions and the newest failures.")
            .principal()
            .parameter(scope_parameter())
            .ok::<Dashboard>("The dashboard figures.")
            .errors(&[400])
            .store_errors()
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
                let series: Vec<DailyPoint> = from
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
                    &DailyMetrics {
                        scope: label,
                        days: series,
                    },
                ))
            }
            .await,
        )
    }

    fn operation(&self) -> Operation {
        Operation::new("metrics", "Daily metrics (trend charts)")
            .description("One point per UTC day from the daily documents, oldest first and ending today; days without executions are zeros.")
            .principal()
            .parameter(Parameter::query::<u64>(
                "days",
                "How many days, ending today: 1 to 365 (default 30).",
            ))
            .parameter(scope_parameter())
            .ok::<DailyMetrics>("The daily series.")
            .errors(&[400])
            .store_errors()
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

fn daily_point(doc: &MetricsDoc) -> DailyPoint {
    DailyPoint {
        date: doc.date.clone(),
        counts: doc.into(),
        total_duration_ms: doc.total_duration_ms,
        avg_duration_ms: doc.avg_duration_ms,
        p50_duration_ms: doc.p50_duration_ms,
        p95_duration_ms: doc.p95_duration_ms,
        workflows: doc.workflows.clone(),
        sealed: doc.sealed,
    }
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
        let stats = serde_json::to_value(execution_stats(&doc, 1, 0)).unwrap();
        assert_eq!(stats["successRate"], 66.7);
        assert_eq!(stats["avgDurationSeconds"], 1.24);
        assert_eq!(stats["runningCount"], 1);
        let empty = execution_stats(&summary::empty("GLOBAL", "w"), 0, 0);
        assert_eq!(empty.success_rate, 0.0);
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
