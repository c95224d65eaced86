//! `GET /api/executions/{id}/logs`, `/variables` and `/result`: the progressive-loading routes,
//! each answered only after the execution itself was found in the caller's scope (the
//! `execution_data` container is partitioned by execution id alone, so that check is the
//! authorization).

use async_trait::async_trait;
use schemars::JsonSchema;
use serde::Serialize;
use serde_json::{json, Value};

use super::params;
use crate::model::rows::{self, LogLine, Reader};
use crate::model::{LogDoc, ResultDoc, VariablesDoc};
use crate::runtime::auth::{execution_id_parameter, visible_execution, Caller};
use crate::runtime::{
    respond, ApiError, AppContext, HttpHandler, HttpRequest, HttpResponse, Operation,
};
use crate::store::{Container, FilterOp, Query};

/// Set on a `/logs` page that stopped at `limit`: the `afterSequence` of the next page.
pub const NEXT_AFTER_SEQUENCE_HEADER: &str = "X-Next-After-Sequence";

pub struct GetExecutionLogs;
pub struct GetExecutionVariables;
pub struct GetExecutionResult;

/// `GET /api/executions/{id}/result`.
#[derive(Debug, Clone, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExecutionResult {
    /// The workflow's result: any JSON value, HTML or text as a string; null while there is none.
    pub result: Value,
    /// `json`, `html` or `text`; null while there is no result.
    pub result_type: Option<String>,
}

/// The latest variables snapshot: the engine's own JSON, `{}` while there is none.
#[derive(Debug, Clone, Serialize, JsonSchema)]
#[serde(transparent)]
pub struct Variables(pub Value);

#[async_trait]
impl HttpHandler for GetExecutionLogs {
    async fn handle(&self, ctx: &AppContext, request: HttpRequest) -> HttpResponse {
        respond(
            async {
                let after = params::parse_after_sequence(
                    request.query.get("afterSequence").map(String::as_str),
                )?;
                let limit = crate::runtime::http::parse_limit(
                    "limit",
                    request.query.get("limit").map(String::as_str),
                    params::DEFAULT_LOG_LIMIT,
                    params::MAX_LOG_LIMIT,
                )?;
                let (caller, execution) = visible_execution(ctx, &request).await?;
                let id = execution.execution_id;
                // The resumable route promises a gap-free `sequence`: hidden lines keep their place.
                let logs =
                    load_logs(ctx, &caller, &id, after, limit, HiddenLines::Placeholder).await?;
                let mut response = HttpResponse::private_json(200, &logs.entries);
                if let Some(next) = logs.next_after_sequence {
                    response = response.with_header(NEXT_AFTER_SEQUENCE_HEADER, &next.to_string());
                }
                Ok(response)
            }
            .await,
        )
    }

    fn operation(&self) -> Operation {
        Operation::new("query", "Logs of one execution")
            .description("Log lines in sequence order, gap-free and resumable: a client that reconnects asks for afterSequence=N and loses nothing. For members a DEBUG or TRACEBACK line is a placeholder {id, sequence, timestamp, level, redacted: true}, without its message or data.")
            .principal()
            .parameter(execution_id_parameter())
            .parameters(params::log_parameters())
            .ok::<Vec<LogLine>>("Up to `limit` log lines after `afterSequence`.")
            .with_header::<u64>(
                NEXT_AFTER_SEQUENCE_HEADER,
                "Set when the page stopped at `limit`: the afterSequence of the next page.",
            )
            .errors(&[400, 404])
            .store_errors()
    }
}

#[async_trait]
impl HttpHandler for GetExecutionVariables {
    async fn handle(&self, ctx: &AppContext, request: HttpRequest) -> HttpResponse {
        respond(
            async {
                let (caller, execution) = visible_execution(ctx, &request).await?;
                let id = execution.execution_id;
                if !caller.is_platform_admin {
                    return Err(ApiError::forbidden(
                        "variables are visible to platform administrators only",
                    ));
                }
                Ok(HttpResponse::private_json(
                    200,
                    &Variables(load_variables(ctx, &id).await?),
                ))
            }
            .await,
        )
    }

    fn operation(&self) -> Operation {
        Operation::new("query", "Variables of one execution")
            .description("Platform administrators only.")
            .principal()
            .parameter(execution_id_parameter())
            .ok::<Variables>("The latest snapshot (highest version).")
            .errors(&[400, 404])
            .store_errors()
    }
}

#[async_trait]
impl HttpHandler for GetExecutionResult {
    async fn handle(&self, ctx: &AppContext, request: HttpRequest) -> HttpResponse {
        respond(
            async {
                let (_, execution) = visible_execution(ctx, &request).await?;
                let id = execution.execution_id;
                let (result, result_type) = load_result(ctx, &id).await?;
                Ok(HttpResponse::private_json(
                    200,
                    &ExecutionResult {
                        result,
                        result_type,
                    },
                ))
            }
            .await,
        )
    }

    fn operation(&self) -> Operation {
        Operation::new("query", "Result of one execution")
            .description("Inline, or read from blob storage when it was over 2 MB.")
            .principal()
            .parameter(execution_id_parameter())
            .ok::<ExecutionResult>("The result and its type.")
            .errors(&[400, 404])
            .store_errors()
    }
}

pub struct LogPage {
    /// The lines in sequence order, shaped for the caller (whole, or a placeholder).
    pub entries: Vec<LogLine>,
    /// Present when the page stopped at its limit and more logs may follow.
    pub next_after_sequence: Option<u64>,
}

/// What a non-admin's page does with a `DEBUG`/`TRACEBACK` line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HiddenLines {
    /// `rows::redacted_log_entry`: the place without the content (`/logs`, gap-free).
    Placeholder,
    /// Left out, as the legacy detail route did.
    Drop,
}

/// Logs after `after_sequence`, in sequence order. Non-admins never see the message or data of
/// a DEBUG/TRACEBACK line: with `Placeholder` it keeps its place as a placeholder; with `Drop`
/// the usual spellings are excluded in the query (so pages stay full) and any other casing after.
pub async fn load_logs(
    ctx: &AppContext,
    caller: &Caller,
    execution_id: &str,
    after_sequence: u64,
    limit: usize,
    hidden: HiddenLines,
) -> Result<LogPage, ApiError> {
    let reader = Reader::of(caller.is_platform_admin);
    let mut query = Query::new(limit)
        .filter("type", FilterOp::Eq(json!("log")))
        .filter("sequence", FilterOp::Gt(json!(after_sequence)))
        .order_by("sequence", false);
    if reader == Reader::Member && hidden == HiddenLines::Drop {
        for level in rows::ADMIN_ONLY_LEVELS {
            for spelling in [level.to_owned(), level.to_ascii_lowercase()] {
                query = query.filter("level", FilterOp::Ne(json!(spelling)));
            }
        }
    }
    let page = ctx
        .store
        .query(Container::ExecutionData, execution_id, &query)
        .await?;
    let more = page.continuation.is_some();
    let mut entries = Vec::with_capacity(page.items.len());
    let mut last_read = None;
    for item in page.items {
        match serde_json::from_value::<LogDoc>(item) {
            Ok(log) => {
                last_read = Some(log.sequence);
                if reader.sees(&log) {
                    entries.push(LogLine::Whole(rows::log_entry(&log)));
                } else if hidden == HiddenLines::Placeholder {
                    entries.push(LogLine::Redacted(rows::redacted_log_entry(&log)));
                }
            }
            Err(e) => {
                tracing::error!(execution_id, error = %e, "unreadable log document skipped")
            }
        }
    }
    Ok(LogPage {
        entries,
        next_after_sequence: last_read.filter(|_| more),
    })
}

/// The latest variables snapshot (highest version), `{}` when there is none.
pub async fn load_variables(ctx: &AppContext, execution_id: &str) -> Result<Value, ApiError> {
    let query = Query::new(1)
        .filter("type", FilterOp::Eq(json!("variables")))
        .order_by("version", true);
    let page = ctx
        .store
        .query(Container::ExecutionData, execution_id, &query)
        .await?;
    match page.items.into_iter().next() {
        None => Ok(json!({})),
        Some(item) => serde_json::from_value::<VariablesDoc>(item)
            .map(|doc| doc.variables)
            .map_err(|e| {
                tracing::error!(execution_id, error = %e, "unreadable variables document");
                ApiError::new(
                    500,
                    "the variables snapshot is stored in an unreadable form",
                )
            }),
    }
}

/// The result and its legacy `resultType`: inline from the `result` document, or read through
/// its `blobRef` when it was too large for a document. `(null, null)` when there is none yet.
pub async fn load_result(
    ctx: &AppContext,
    execution_id: &str,
) -> Result<(Value, Option<String>), ApiError> {
    let Some(stored) = ctx
        .store
        .read(Container::ExecutionData, execution_id, ResultDoc::ID)
        .await?
    else {
        return Ok((Value::Null, None));
    };
    let doc: ResultDoc = serde_json::from_value(stored.body).map_err(|e| {
        tracing::error!(execution_id, error = %e, "unreadable result document");
        ApiError::new(500, "the result is stored in an unreadable form")
    })?;
    let result = match (&doc.blob_ref, doc.result) {
        (Some(blob_ref), _) => {
            let bytes = ctx
                .blobs
                .get(blob_ref)
                .await
                .map_err(|e| {
                    tracing::error!(execution_id, %blob_ref, error = %e, "result blob read failed");
                    ApiError::new(500, format!("cannot read the result blob {blob_ref}"))
                })?
                .ok_or_else(|| {
                    tracing::error!(execution_id, %blob_ref, "result blob missing");
                    ApiError::new(500, format!("the result blob {blob_ref} is missing"))
                })?;
            rows::decode_result_text(&String::from_utf8_lossy(&bytes), &doc.result_type)
        }
        (None, result) => result.unwrap_or(Value::Null),
    };
    let result_type = if doc.result_type.is_empty() {
        rows::result_type_of(&result).map(str::to_owned)
    } else if result.is_null() {
        None
    } else {
        Some(doc.result_type)
    };
    Ok((result, result_type))
}
