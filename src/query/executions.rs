//! `GET /api/executions`, `POST /api/executions/query` and `GET /api/executions/{id}`.

use async_trait::async_trait;
use schemars::JsonSchema;
use serde::Serialize;
use serde_json::json;

use super::execution_data;
use super::params::{self, ListFilters, ListQueryBody, UpperBound};
use crate::model::rows::{self, ExecutionRow, LogLine};
use crate::model::ExecutionDoc;
use crate::runtime::auth::{execution_id_parameter, resolve_caller, visible_execution, Caller};
use crate::runtime::{
    respond, ApiError, AppContext, HttpHandler, HttpRequest, HttpResponse, Operation,
};
use crate::store::{Container, FilterOp, Query};

pub struct ListExecutions;
pub struct QueryExecutions;
pub struct GetExecution;

/// A page of `GET /api/executions` and `POST /api/executions/query`, newest first.
#[derive(Debug, Clone, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExecutionList {
    pub executions: Vec<ExecutionRow>,
    /// Pass it back for the next page; null on the last page.
    pub continuation_token: Option<String>,
    /// Whether another page follows (the legacy UI reads it; the legacy API never sent it).
    pub has_more: bool,
}

/// What the two list functions share in their description.
fn list_operation(summary: &'static str) -> Operation {
    Operation::new("query", summary)
        .description("Executions of the caller's scope, newest first, every filter applied in the store so pages are full.")
        .principal()
        .ok::<ExecutionList>("One page of execution rows.")
        .errors(&[400])
        .store_errors()
}

#[async_trait]
impl HttpHandler for ListExecutions {
    async fn handle(&self, ctx: &AppContext, request: HttpRequest) -> HttpResponse {
        respond(
            async {
                let caller = resolve_caller(ctx, &request).await?;
                let filters = params::parse_list_query(&request.query)?;
                list(ctx, &caller, filters).await
            }
            .await,
        )
    }

    fn operation(&self) -> Operation {
        list_operation("List executions").parameters(params::list_parameters())
    }
}

#[async_trait]
impl HttpHandler for QueryExecutions {
    async fn handle(&self, ctx: &AppContext, request: HttpRequest) -> HttpResponse {
        respond(
            async {
                let caller = resolve_caller(ctx, &request).await?;
                let filters = params::parse_list_body(request.body.as_deref())?;
                list(ctx, &caller, filters).await
            }
            .await,
        )
    }

    fn operation(&self) -> Operation {
        list_operation("List executions (filters in the body)").body::<ListQueryBody>(
            "The list parameters as fields; unknown fields are refused. An empty body is the first page, unfiltered.",
        )
    }
}

#[async_trait]
impl HttpHandler for GetExecution {
    async fn handle(&self, ctx: &AppContext, request: HttpRequest) -> HttpResponse {
        respond(
            async {
                let (caller, execution) = visible_execution(ctx, &request).await?;
                detail(ctx, &caller, &execution).await
            }
            .await,
        )
    }

    fn operation(&self) -> Operation {
        Operation::new("query", "One execution")
            .description("The execution row with its result, the first 5000 logs and (for platform administrators) the latest variables. Members get no DEBUG or TRACEBACK lines here, as in the legacy API.")
            .principal()
            .parameter(execution_id_parameter())
            .ok::<ExecutionRow>("The execution with result, logs and variables filled in.")
            .errors(&[400, 404])
            .store_errors()
    }
}

/// The store query for a list request: every filter is pushed down, so a page is never short
/// because rows were dropped after reading.
pub fn list_query(filters: &ListFilters) -> Query {
    let mut query = Query::new(filters.limit)
        .filter("type", FilterOp::Eq(json!("execution")))
        .order_by("startedAt", true)
        .after(filters.continuation.clone());
    if let Some(name) = &filters.workflow_name {
        query = query.filter("workflowName", FilterOp::Eq(json!(name)));
    }
    match filters.statuses.as_slice() {
        [] => {}
        [one] => query = query.filter("status", FilterOp::Eq(json!(one))),
        many => {
            query = query.filter(
                "status",
                FilterOp::In(many.iter().map(|s| json!(s)).collect()),
            )
        }
    }
    if let Some(from) = filters.started_from {
        query = query.filter("startedAt", FilterOp::Ge(json!(from.canonical())));
    }
    match filters.started_until {
        Some(UpperBound::Inclusive(t)) => {
            query = query.filter("startedAt", FilterOp::Le(json!(t.canonical())))
        }
        Some(UpperBound::Exclusive(t)) => {
            query = query.filter("startedAt", FilterOp::Lt(json!(t.canonical())))
        }
        None => {}
    }
    if let Some(user) = &filters.executed_by {
        query = query.filter("executedBy", FilterOp::Eq(json!(user)));
    }
    query
}

async fn list(
    ctx: &AppContext,
    caller: &Caller,
    filters: ListFilters,
) -> Result<HttpResponse, ApiError> {
    let scope = caller.scope.to_string();
    let page = ctx
        .store
        .query(Container::Executions, &scope, &list_query(&filters))
        .await?;
    let mut executions = Vec::with_capacity(page.items.len());
    for item in page.items {
        match serde_json::from_value::<ExecutionDoc>(item) {
            Ok(doc) => executions.push(rows::execution_row(&doc)),
            Err(e) => tracing::error!(%scope, error = %e, "unreadable execution document skipped"),
        }
    }
    let continuation_token = page.continuation.as_deref().map(params::wrap_token);
    Ok(HttpResponse::private_json(
        200,
        &ExecutionList {
            executions,
            has_more: continuation_token.is_some(),
            continuation_token,
        },
    ))
}

async fn detail(
    ctx: &AppContext,
    caller: &Caller,
    execution: &ExecutionDoc,
) -> Result<HttpResponse, ApiError> {
    let id = &execution.execution_id;
    let mut row = rows::execution_row(execution);
    let (result, result_type) = execution_data::load_result(ctx, id).await?;
    row.result = result;
    row.result_type = result_type;
    // The legacy detail leaves hidden lines out (its logs promise no gap-free sequence).
    let logs = execution_data::load_logs(
        ctx,
        caller,
        id,
        0,
        params::DEFAULT_LOG_LIMIT,
        execution_data::HiddenLines::Drop,
    )
    .await?;
    row.logs = Some(
        logs.entries
            .into_iter()
            .filter_map(|line| match line {
                LogLine::Whole(entry) => Some(entry),
                LogLine::Redacted(_) => None,
            })
            .collect(),
    );
    if caller.is_platform_admin {
        row.variables = Some(execution_data::load_variables(ctx, id).await?);
    }
    Ok(HttpResponse::private_json(200, &row))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{ExecutionStatus, Timestamp};

    #[test]
    fn every_filter_is_pushed_into_the_store_query() {
        let filters = ListFilters {
            workflow_name: Some("w".into()),
            statuses: vec![ExecutionStatus::Failed, ExecutionStatus::Timeout],
            started_from: Some(Timestamp::parse("2026-11-01").unwrap()),
            started_until: Some(UpperBound::Exclusive(
                Timestamp::parse("2026-11-02").unwrap(),
            )),
            executed_by: Some("u".into()),
            limit: 10,
            continuation: Some("t".into()),
        };
        let query = list_query(&filters);
        let fields: Vec<&str> = query.filters.iter().map(|f| f.field.path()).collect();
        assert_eq!(
            fields,
            [
                "type",
                "workflowName",
                "status",
                "startedAt",
                "startedAt",
                "executedBy"
            ]
        );
        assert_eq!(
            query.filters[3].op,
            FilterOp::Ge(json!("2026-11-01T00:00:00.000000Z"))
        );
        assert_eq!(
            query.filters[4].op,
            FilterOp::Lt(json!("2026-11-02T00:00:00.000000Z"))
        );
        assert_eq!(query.limit, 10);
        assert_eq!(query.continuation.as_deref(), Some("t"));
        assert!(query.order_by[0].descending);
    }
}
