//! The real-time HTTP functions: `POST /api/negotiate` (where and with which token a client
//! connects) and the group subscriptions `POST /api/executions/{id}/subscribe` and
//! `POST /api/history/subscribe` (`{connectionId}`), authorized like the query API. Clients of a
//! serverless SignalR service cannot join groups themselves, so this is the only way in.

use async_trait::async_trait;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{execution_group, history_group};
use crate::realtime::{ClientConnection, SinkError};
use crate::runtime::auth::{
    authenticate, execution_id_param, execution_id_parameter, find_execution, Caller,
};
use crate::runtime::{AppContext, HttpHandler, HttpRequest, HttpResponse, Operation};

/// SignalR connection ids are short tokens; anything longer is not one.
const MAX_CONNECTION_ID_CHARS: usize = 256;

pub struct Negotiate;
pub struct SubscribeExecution;
pub struct SubscribeHistory;

fn sink_error(error: SinkError) -> HttpResponse {
    match error {
        SinkError::NotConfigured => HttpResponse::error(
            503,
            "real-time updates are not configured (no SignalR service); poll the query API instead",
        ),
        SinkError::UnknownConnection(id) => HttpResponse::error(
            404,
            format!("no SignalR connection {id:?}: connect (negotiate) first, and subscribe again after a reconnect"),
        ),
        SinkError::Send(detail) => {
            tracing::warn!(%detail, "SignalR service call failed");
            HttpResponse::error(502, "the SignalR service did not accept the request; retry shortly")
        }
    }
}

#[async_trait]
impl HttpHandler for Negotiate {
    async fn handle(&self, ctx: &AppContext, request: HttpRequest) -> HttpResponse {
        // Unconfigured first: the UI's polling fallback must not depend on who asks.
        if let Err(e @ SinkError::NotConfigured) = ctx.sink.client_connection(None) {
            return sink_error(e);
        }
        let caller = match authenticate(ctx, &request).await {
            Ok(caller) => caller,
            Err(response) => return response,
        };
        match ctx.sink.client_connection(Some(&caller.user_id)) {
            Ok(connection) => {
                HttpResponse::json(200, &connection).with_header("Cache-Control", "no-store")
            }
            Err(e) => sink_error(e),
        }
    }

    fn operation(&self) -> Operation {
        Operation::new("live", "Negotiate a SignalR connection")
            .description("Where the SignalR client connects and its token. 503 when no SignalR service is configured, whoever asks, so the UI can fall back to polling.")
            .principal()
            .ok::<ClientConnection>("The client URL and access token.")
            .errors(&[503])
            .store_errors()
    }
}

/// The body of both subscribe routes.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SubscribeBody {
    /// The caller's own SignalR connection (`connection.connectionId` after `start()`).
    pub connection_id: String,
}

/// A connection joined a group.
#[derive(Debug, Clone, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Subscription {
    /// `execution:{id}` or `history:{scope}`.
    pub group: String,
    pub connection_id: String,
}

/// What both subscribe routes answer.
fn subscribe_operation(summary: &'static str) -> Operation {
    Operation::new("live", summary)
        .principal()
        .body::<SubscribeBody>("The connection to add.")
        .ok::<Subscription>("The connection is in the group.")
        .errors(&[400, 404, 502, 503])
        .store_errors()
}

/// The `{connectionId}` body, or the 400 saying what is wrong with it.
pub fn parse_subscribe_body(body: Option<&str>) -> Result<String, HttpResponse> {
    let text = body.unwrap_or_default();
    let parsed: SubscribeBody = serde_json::from_str(text).map_err(|e| {
        HttpResponse::error(
            400,
            format!("body must be {{\"connectionId\": \"…\"}}: {e}"),
        )
    })?;
    let id = parsed.connection_id.trim();
    if id.is_empty()
        || id.chars().count() > MAX_CONNECTION_ID_CHARS
        || id.chars().any(char::is_control)
    {
        return Err(HttpResponse::error(
            400,
            "connectionId must be a non-empty SignalR connection id",
        ));
    }
    Ok(id.to_owned())
}

async fn caller_and_connection(
    ctx: &AppContext,
    request: &HttpRequest,
) -> Result<(Caller, String), HttpResponse> {
    let connection_id = parse_subscribe_body(request.body.as_deref())?;
    let caller = authenticate(ctx, request).await?;
    Ok((caller, connection_id))
}

async fn subscribe(ctx: &AppContext, group: String, connection_id: &str) -> HttpResponse {
    match ctx.sink.add_to_group(&group, connection_id).await {
        Ok(()) => {
            tracing::debug!(%group, connection_id, "connection subscribed");
            HttpResponse::json(
                200,
                &Subscription {
                    connection_id: connection_id.to_owned(),
                    group,
                },
            )
        }
        Err(e) => sink_error(e),
    }
}

#[async_trait]
impl HttpHandler for SubscribeExecution {
    async fn handle(&self, ctx: &AppContext, request: HttpRequest) -> HttpResponse {
        let (caller, connection_id) = match caller_and_connection(ctx, &request).await {
            Ok(found) => found,
            Err(response) => return response,
        };
        // Another scope's execution is "not found", never "forbidden" (ids cannot be probed).
        let execution = match execution_id_param(request.params.get("id").map(String::as_str)) {
            Ok(id) => find_execution(ctx, &caller, id).await,
            Err(e) => Err(e),
        };
        let execution = match execution {
            Ok(execution) => execution,
            Err(e) => return e.into(),
        };
        subscribe(ctx, execution_group(&execution.id), &connection_id).await
    }

    fn operation(&self) -> Operation {
        subscribe_operation("Follow one execution live")
            .description("Adds the connection to execution:{id}: executionLogs, executionVariables, executionState, executionResult and executionUpdate messages. Another scope's execution is 404.")
            .parameter(execution_id_parameter())
    }
}

#[async_trait]
impl HttpHandler for SubscribeHistory {
    async fn handle(&self, ctx: &AppContext, request: HttpRequest) -> HttpResponse {
        let (caller, connection_id) = match caller_and_connection(ctx, &request).await {
            Ok(found) => found,
            Err(response) => return response,
        };
        // The request's scope (X-Organization-Id for admins, the caller's organization otherwise).
        subscribe(ctx, history_group(&caller.scope), &connection_id).await
    }

    fn operation(&self) -> Operation {
        subscribe_operation("Follow the execution list live").description(
            "Adds the connection to history:{scope} of the request's scope: executionHistoryUpdate messages carrying list rows.",
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subscribe_bodies_are_checked() {
        assert_eq!(
            parse_subscribe_body(Some(r#"{"connectionId":" abc "}"#)).unwrap(),
            "abc"
        );
        for bad in [
            None,
            Some(""),
            Some("[]"),
            Some(r#"{"connectionId":""}"#),
            Some(r#"{"id":"x"}"#),
        ] {
            let response = parse_subscribe_body(bad).unwrap_err();
            assert_eq!(response.status, 400);
            assert!(response.body.contains("connectionId"));
        }
    }
}
