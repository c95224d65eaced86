//! `GET /api/deadletters` and `POST /api/deadletters/replay`: the dead-letter tools over HTTP,
//! for platform admins only. They run inside the process that serves the functions, so a
//! replayed `LogStream` batch reaches the same real-time transport (serve mode's built-in hub
//! has no address a separate command could send to). The function list is handed over by the
//! registry, as for the API document.

use async_trait::async_trait;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::deadletters::{
    replay, replay_targets, select, DeadLetterSummary, ReplayReport, Selection, SelectionError,
};
use crate::runtime::auth::resolve_caller;
use crate::runtime::function::FunctionSpec;
use crate::runtime::operation::Parameter;
use crate::runtime::{
    respond, ApiError, AppContext, HttpHandler, HttpRequest, HttpResponse, Operation,
};

/// Longest function name or dead-letter id accepted.
const MAX_NAME_CHARS: usize = 256;

pub struct ListDeadLetters {
    functions: fn() -> Vec<FunctionSpec>,
}

pub struct ReplayDeadLetters {
    functions: fn() -> Vec<FunctionSpec>,
}

impl ListDeadLetters {
    pub fn new(functions: fn() -> Vec<FunctionSpec>) -> Self {
        ListDeadLetters { functions }
    }
}

impl ReplayDeadLetters {
    pub fn new(functions: fn() -> Vec<FunctionSpec>) -> Self {
        ReplayDeadLetters { functions }
    }
}

#[derive(Debug, Clone, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeadLetterList {
    pub dead_letters: Vec<DeadLetterSummary>,
}

/// Which dead letters to replay; without either, all of them.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ReplayRequest {
    /// Only this change-feed function's.
    pub function: Option<String>,
    /// Only this record (`{function}-{batchId}`, its batch id or a part id).
    pub id: Option<String>,
}

async fn require_admin(ctx: &AppContext, request: &HttpRequest) -> Result<(), ApiError> {
    let caller = resolve_caller(ctx, request).await?;
    if caller.is_platform_admin {
        Ok(())
    } else {
        Err(ApiError::forbidden("dead letters are for platform admins"))
    }
}

fn checked(name: &str, value: Option<String>) -> Result<Option<String>, ApiError> {
    match value.as_deref().map(str::trim) {
        None => Ok(None),
        Some("") => Err(ApiError::bad_request(format!("{name} must not be empty"))),
        Some(v) if v.chars().count() > MAX_NAME_CHARS || v.chars().any(char::is_control) => Err(
            ApiError::bad_request(format!("{name} is not a function name or dead-letter id")),
        ),
        Some(v) => Ok(Some(v.to_owned())),
    }
}

fn selection_error(error: SelectionError) -> ApiError {
    match error {
        SelectionError::UnknownFunction(..) => ApiError::bad_request(error.to_string()),
        SelectionError::Store(e) => e.into(),
    }
}

#[async_trait]
impl HttpHandler for ListDeadLetters {
    async fn handle(&self, ctx: &AppContext, request: HttpRequest) -> HttpResponse {
        respond(
            async {
                require_admin(ctx, &request).await?;
                let selection = Selection {
                    function: checked("function", request.query.get("function").cloned())?,
                    id: None,
                };
                let targets = replay_targets(&(self.functions)());
                let records = select(ctx.store.as_ref(), &targets, &selection)
                    .await
                    .map_err(selection_error)?;
                Ok(HttpResponse::private_json(
                    200,
                    &DeadLetterList {
                        dead_letters: records.iter().map(DeadLetterSummary::of).collect(),
                    },
                ))
            }
            .await,
        )
    }

    fn operation(&self) -> Operation {
        Operation::new("ops", "List dead letters")
            .description("Platform admins only. The batches that failed every attempt and wait for a replay, oldest first.")
            .principal()
            .parameter(Parameter::query::<String>(
                "function",
                "Only this change-feed function's (LogStream, ExecutionUpdates, MetricsAggregate).",
            ))
            .ok::<DeadLetterList>("The dead letters.")
            .errors(&[400])
            .store_errors()
    }
}

#[async_trait]
impl HttpHandler for ReplayDeadLetters {
    async fn handle(&self, ctx: &AppContext, request: HttpRequest) -> HttpResponse {
        respond(
            async {
                require_admin(ctx, &request).await?;
                let body: ReplayRequest = match request.body.as_deref().map(str::trim) {
                    None | Some("") => ReplayRequest::default(),
                    Some(text) => serde_json::from_str(text).map_err(|e| {
                        ApiError::bad_request(format!(
                            "body must be {{\"function\"?: \"…\", \"id\"?: \"…\"}}: {e}"
                        ))
                    })?,
                };
                let selection = Selection {
                    function: checked("function", body.function)?,
                    id: checked("id", body.id)?,
                };
                let targets = replay_targets(&(self.functions)());
                let records = select(ctx.store.as_ref(), &targets, &selection)
                    .await
                    .map_err(selection_error)?;
                if records.is_empty() && selection.id.is_some() {
                    return Err(ApiError::not_found(
                        "no such dead letter (it may have been replayed already)",
                    ));
                }
                // Payloads kept verbatim need the host-protocol decoder: the command has it.
                let report: ReplayReport = replay(ctx, &targets, &records, None).await;
                Ok(HttpResponse::private_json(200, &report))
            }
            .await,
        )
    }

    fn operation(&self) -> Operation {
        let mut operation = Operation::new("ops", "Replay dead letters")
            .description("Platform admins only. Runs each selected dead letter through its function again (documents at their current version; safe to repeat) and removes it once that succeeded. A failed replay keeps the record. Undecodable payloads kept verbatim are skipped here: `bifrost-workers deadletters replay` decodes them.")
            .principal()
            .body::<ReplayRequest>("What to replay; an empty body or `{}` replays everything.")
            .ok::<ReplayReport>("What was done with each dead letter.")
            .errors(&[400, 404])
            .store_errors();
        if let Some(body) = operation.request_body.as_mut() {
            body.required = false;
        }
        operation
    }
}
