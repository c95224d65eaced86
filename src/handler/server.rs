//! The HTTP server the Functions host talks to: `GET /` for readiness and `POST /{FunctionName}`
//! per invocation. Every reply is `200` + a full JSON object unless failing the invocation is the
//! only way to get a batch redelivered (then `500` + JSON; the host retries under the policy).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::json;
use tower_http::limit::RequestBodyLimitLayer;
use tracing::Instrument;

use super::documents;
use super::protocol::{self, Invocation, InvocationReply};
use crate::runtime::deadletter::DeadLetterPayload;
use crate::runtime::function::{CosmosTrigger, FunctionSpec, Trigger};
use crate::runtime::invoke::{self, Attempt, BatchOutcome};
use crate::runtime::HttpResponse;
use crate::runtime::{AppContext, FailureKind, Handler};

/// Far above the largest batch the host sends (`maxItemsPerInvocation` × document size, doubled
/// by escaping); axum's 2 MB default would fail big batches with a non-retried 413.
pub const MAX_INVOCATION_BYTES: usize = 512 * 1024 * 1024;

#[derive(Clone)]
pub struct HandlerState {
    pub ctx: AppContext,
    pub functions: Arc<Vec<FunctionSpec>>,
}

/// What the readiness probe may send: nothing.
const MAX_PROBE_BODY_BYTES: usize = 4 * 1024;

/// The host's routes, each with its body limit (an invocation's is `MAX_INVOCATION_BYTES`).
pub fn router(state: HandlerState) -> Router {
    Router::new()
        .route(
            "/",
            get(ready).layer(RequestBodyLimitLayer::new(MAX_PROBE_BODY_BYTES)),
        )
        .route(
            "/{function}",
            post(invoke_function).layer(RequestBodyLimitLayer::new(MAX_INVOCATION_BYTES)),
        )
        .fallback(not_found)
        .with_state(state)
}

/// The host's readiness probe and health ping: any response counts, so answer at once.
async fn ready() -> Json<serde_json::Value> {
    Json(json!({ "status": "ready" }))
}

async fn not_found() -> Response {
    reply(
        StatusCode::NOT_FOUND,
        &InvocationReply::failed("no such route: the host calls POST /{FunctionName}", vec![]),
    )
}

fn reply(status: StatusCode, body: &InvocationReply) -> Response {
    (
        status,
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        body.to_bytes(),
    )
        .into_response()
}

fn invocation_id(headers: &HeaderMap) -> String {
    headers
        .get("x-azure-functions-invocationid")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string())
}

async fn invoke_function(
    State(state): State<HandlerState>,
    Path(name): Path<String>,
    request: Request,
) -> Response {
    let invocation_id = invocation_id(request.headers());
    let Some(spec) = state.functions.iter().find(|f| f.name == name).cloned() else {
        let known: Vec<_> = state.functions.iter().map(|f| f.name).collect();
        return reply(
            StatusCode::NOT_FOUND,
            &InvocationReply::failed(
                format!("no function named {name:?}; this handler serves {known:?}"),
                vec![],
            ),
        );
    };
    let span = tracing::info_span!("invocation", function = spec.name, %invocation_id);
    async move {
        let started = Instant::now();
        let body = match read_body(request.into_body()).await {
            Ok(bytes) => bytes,
            Err(e) => {
                let message = format!(
                    "could not read the invocation body (limit {MAX_INVOCATION_BYTES} bytes): {e}"
                );
                tracing::error!(%message);
                // Nothing was read, so nothing can be dead-lettered: fail so the host retries.
                return reply(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    &InvocationReply::failed(message, vec![]),
                );
            }
        };
        let bytes = body.len();
        let response = dispatch(&state.ctx, &spec, body, &invocation_id).await;
        if bytes >= RELEASE_AFTER_BYTES {
            // glibc keeps what a big batch freed in its arenas (and raises its mmap threshold
            // after the first big free, so the next big batch lands in the heap too): give it
            // back, so a 60 MB batch does not leave the process 60 MB larger.
            crate::runtime::memory::release_free_memory();
        }
        tracing::info!(
            elapsed_ms = started.elapsed().as_millis() as u64,
            bytes,
            "invocation done"
        );
        response
    }
    .instrument(span)
    .await
}

/// Bodies from this size on give their memory back to the system once they are handled.
const RELEASE_AFTER_BYTES: usize = 4 * 1024 * 1024;

/// The size the last invocation body had, up to `BODY_RESERVE_LIMIT`: what the next one starts
/// with, since a function's batches are about the same size from one to the next.
static RECENT_BODY_BYTES: AtomicUsize = AtomicUsize::new(0);
/// Bodies larger than this grow from here by doubling, whatever came before: a rare huge batch
/// must not make every later invocation reserve its size.
const BODY_RESERVE_LIMIT: usize = 1024 * 1024;

/// The whole body in one buffer, grown in place as frames arrive (the host sends it chunked, so
/// its length is unknown up front): about one body of memory, where collecting the frames and
/// joining them would briefly take two. It starts at the last body's size, so a 70 KB batch in
/// 16 KB frames is copied once, not three more times while the buffer doubles.
async fn read_body(body: axum::body::Body) -> Result<Vec<u8>, String> {
    use futures_util::StreamExt;
    let mut frames = body.into_data_stream();
    let mut bytes = Vec::with_capacity(RECENT_BODY_BYTES.load(Ordering::Relaxed));
    while let Some(frame) = frames.next().await {
        let frame = frame.map_err(|e| e.to_string())?;
        if bytes.len() + frame.len() > MAX_INVOCATION_BYTES {
            return Err("length limit exceeded".to_owned());
        }
        bytes.extend_from_slice(&frame);
    }
    RECENT_BODY_BYTES.store(bytes.len().min(BODY_RESERVE_LIMIT), Ordering::Relaxed);
    Ok(bytes)
}

async fn dispatch(
    ctx: &AppContext,
    spec: &FunctionSpec,
    body: Vec<u8>,
    invocation_id: &str,
) -> Response {
    match (&spec.trigger, &spec.handler) {
        (Trigger::CosmosDb(trigger), Handler::Batch(handler)) => {
            let (outcome, count) = match documents::decode_batch(&body, trigger.binding) {
                Ok(decoded) => {
                    // The documents are out: the body's memory is not needed while they run.
                    drop(body);
                    // Without a RetryContext the host will not redeliver: treat it as the last attempt.
                    let attempt = match decoded.retry {
                        Some(ctx) => Attempt {
                            retry_count: ctx.retry_count.max(0) as u64,
                            is_last: ctx.is_last_attempt(),
                        },
                        None => Attempt {
                            retry_count: 0,
                            is_last: true,
                        },
                    };
                    let documents = decoded.documents();
                    let outcome = invoke::run_batch(
                        ctx,
                        spec.name,
                        handler.as_ref(),
                        &documents,
                        attempt,
                        invocation_id,
                    )
                    .await;
                    (outcome, documents.len())
                }
                Err(e) => {
                    // Redelivery cannot fix a payload we cannot read; keep it verbatim instead.
                    let error = format!("undecodable batch: {e}");
                    tracing::error!(%error, bytes = body.len());
                    // Never reached run_batch: count the failed attempt here.
                    ctx.status
                        .failed(spec.name, FailureKind::Batch, &error, ctx.clock.now());
                    let raw = String::from_utf8_lossy(&body).into_owned();
                    let outcome = invoke::dead_letter(
                        ctx,
                        spec.name,
                        invocation_id,
                        &error,
                        1,
                        DeadLetterPayload::Raw(raw),
                        0,
                    )
                    .await;
                    (outcome, 0)
                }
            };
            record_batch(ctx, spec.name, trigger, count, &outcome);
            match outcome {
                BatchOutcome::Succeeded { logs } => {
                    reply(StatusCode::OK, &InvocationReply::with_logs(logs))
                }
                BatchOutcome::DeadLettered { logs, error } => {
                    reply(StatusCode::OK, &InvocationReply::failed(error, logs))
                }
                BatchOutcome::Retry { error } => reply(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    &InvocationReply::failed(error, vec![]),
                ),
            }
        }
        (Trigger::Timer(trigger), Handler::Timer(handler)) => {
            let timer = match Invocation::parse(&body)
                .and_then(|inv| protocol::decode_timer(&inv, trigger.binding))
            {
                Ok(timer) => timer,
                Err(e) => {
                    // A scheduled run carries no data to lose; report and let the next run happen.
                    return reply(
                        StatusCode::OK,
                        &InvocationReply::failed(
                            format!("undecodable timer invocation: {e}"),
                            vec![],
                        ),
                    );
                }
            };
            match handler.handle(ctx, timer).await {
                Ok(logs) => reply(StatusCode::OK, &InvocationReply::with_logs(logs)),
                Err(e) => reply(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    &InvocationReply::failed(e.to_string(), vec![]),
                ),
            }
        }
        (Trigger::Http(trigger), Handler::Http(handler)) => {
            let response = match Invocation::parse(&body)
                .and_then(|inv| protocol::decode_http(&inv, trigger.binding))
            {
                Ok(request) => {
                    let method_allowed = trigger
                        .methods
                        .iter()
                        .any(|m| m.eq_ignore_ascii_case(&request.method));
                    if method_allowed {
                        handler.handle(ctx, request).await
                    } else {
                        HttpResponse::error(405, format!("method {} not allowed", request.method))
                    }
                }
                Err(e) => HttpResponse::error(400, format!("undecodable HTTP invocation: {e}")),
            };
            let logs = vec![format!("{}: {}", spec.name, response.status)];
            let mut reply_body = InvocationReply::http("res", &response, logs);
            if response.status >= 400 {
                reply_body.error = serde_json::from_str::<serde_json::Value>(&response.body)
                    .ok()
                    .and_then(|v| v.get("error").and_then(|e| e.as_str()).map(str::to_owned));
            }
            reply(StatusCode::OK, &reply_body)
        }
        _ => reply(
            StatusCode::INTERNAL_SERVER_ERROR,
            &InvocationReply::failed(
                format!(
                    "function {} has a handler that does not match its trigger",
                    spec.name
                ),
                vec![],
            ),
        ),
    }
}

/// Custom-handler mode: bind first so the host's readiness probe is answered at once, then open
/// the store and serve until SIGTERM.
pub async fn run(port: u16, config: crate::runtime::config::RuntimeConfig) -> anyhow::Result<()> {
    use anyhow::Context;

    // The host always dials 127.0.0.1 (not `localhost`, which may resolve to ::1 only).
    let address = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let listener = tokio::net::TcpListener::bind(address)
        .await
        .with_context(|| format!("cannot listen on {address} (FUNCTIONS_CUSTOMHANDLER_PORT)"))?;
    let state = HandlerState {
        ctx: config.open_context("handler").await?,
        functions: Arc::new(crate::registry::registry()),
    };
    // Known to health before their first batch (their dead letters are counted from the start).
    for spec in state.functions.iter() {
        if let Trigger::CosmosDb(trigger) = &spec.trigger {
            state
                .ctx
                .status
                .register(spec.name, trigger.container.name());
        }
    }
    tracing::info!(%address, store = %config.store, "custom handler ready");
    crate::runtime::server::serve(
        listener,
        router(state),
        crate::runtime::server::ServerLimits::default(),
        crate::runtime::shutdown::wait_for_signal(),
    )
    .await
    .context("custom handler server failed")
}

/// The host owns the change feed in this mode; health shows what reached this process.
/// `run_batch` already counted the attempt's failure or success.
fn record_batch(
    ctx: &AppContext,
    function: &str,
    trigger: &CosmosTrigger,
    documents: usize,
    outcome: &BatchOutcome,
) {
    ctx.status.register(function, trigger.container.name());
    let now = ctx.clock.now();
    match outcome {
        BatchOutcome::Succeeded { .. } => {
            ctx.status.batch_done(function, documents, false, now);
            ctx.status.advanced(function, None, now);
        }
        BatchOutcome::DeadLettered { .. } => {
            ctx.status.batch_done(function, documents, true, now);
            ctx.status.advanced(function, None, now);
        }
        BatchOutcome::Retry { .. } => {}
    }
}
