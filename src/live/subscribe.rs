//! The real-time HTTP functions: `POST /api/negotiate` (where and with which token a client
//! connects) and the group subscriptions `POST /api/executions/{id}/subscribe` and
//! `POST /api/history/subscribe`, authorized like the query API. Clients of a serverless SignalR
//! service cannot join groups themselves, so this is the only way in.
//!
//! A subscription is the caller's, never a connection's: negotiate binds every connection to the
//! caller's user id (the token's `nameid`), and subscribe adds that user to the group (the
//! service's user-group call), which reaches exactly that user's connections, open now or
//! later, for `SUBSCRIPTION_TTL`. So no caller can put anyone else's connection into a group.
//! The `{connectionId}` body the UI sends is still accepted (checked, and otherwise unused).
//!
//! An execution subscription goes to the group of the caller's audience (members or admins),
//! and takes the user out of the other one, so a caller whose role changed gets one stream, the
//! one it may now see.

use std::time::Duration;

use async_trait::async_trait;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::realtime::groups::{self, Audience};
use crate::realtime::{ClientConnection, SinkError};
use crate::runtime::auth::{
    authenticate, execution_id_param, execution_id_parameter, find_execution, Caller,
};
use crate::runtime::{AppContext, HttpHandler, HttpRequest, HttpResponse, Operation};

/// How long a subscription lasts: the lifetime of the negotiate token, so access is checked
/// again at least as often as a client needs a new token. The UI subscribes again on every
/// reconnect and before this runs out.
pub const SUBSCRIPTION_TTL: Duration = Duration::from_secs(3600);

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
        SinkError::Send(detail) => {
            tracing::warn!(%detail, "SignalR service call failed");
            HttpResponse::error(
                502,
                "the SignalR service did not accept the request; retry shortly",
            )
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
            .description("Where the SignalR client connects and its token, which binds the connection to the caller's user id (nameid). 503 when no SignalR service is configured, whoever asks, so the UI can fall back to polling.")
            .principal()
            .ok::<ClientConnection>("The client URL and access token.")
            .errors(&[503])
            .store_errors()
    }
}

/// The body of both subscribe routes (optional).
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SubscribeBody {
    /// Accepted for older clients and checked for form, but it selects nothing: the
    /// subscription is the caller's and reaches all of the caller's connections.
    pub connection_id: Option<String>,
}

/// The caller joined a group.
#[derive(Debug, Clone, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Subscription {
    /// `execution:{id}` (members), `execution-admin:{id}` (platform admins) or `history:{scope}`.
    pub group: String,
    /// Whose connections receive the group: the caller's (the negotiate token's `nameid`).
    pub user_id: String,
    /// Seconds the subscription lasts; subscribe again before then (and after a reconnect).
    pub expires_in_seconds: u64,
}

/// What both subscribe routes answer.
fn subscribe_operation(summary: &'static str) -> Operation {
    Operation::new("live", summary)
        .principal()
        .optional_body::<SubscribeBody>("Optional; `connectionId` is accepted and unused.")
        .ok::<Subscription>("The caller's connections are in the group.")
        .errors(&[400, 404, 502, 503])
        .store_errors()
}

/// The optional `{connectionId}` body, or the 400 saying what is wrong with it. An empty body is
/// fine; a connection id, when given, must look like one.
pub fn parse_subscribe_body(body: Option<&str>) -> Result<Option<String>, HttpResponse> {
    let text = body.unwrap_or_default();
    if text.trim().is_empty() {
        return Ok(None);
    }
    let parsed: SubscribeBody = serde_json::from_str(text).map_err(|e| {
        HttpResponse::error(
            400,
            format!("body must be empty or {{\"connectionId\": \"…\"}}: {e}"),
        )
    })?;
    let Some(id) = parsed.connection_id else {
        return Ok(None);
    };
    let id = id.trim();
    if id.is_empty()
        || id.chars().count() > MAX_CONNECTION_ID_CHARS
        || id.chars().any(char::is_control)
    {
        return Err(HttpResponse::error(
            400,
            "connectionId must be a non-empty SignalR connection id",
        ));
    }
    Ok(Some(id.to_owned()))
}

async fn checked_caller(ctx: &AppContext, request: &HttpRequest) -> Result<Caller, HttpResponse> {
    parse_subscribe_body(request.body.as_deref())?;
    authenticate(ctx, request).await
}

/// Adds the caller to `group` (after taking it out of `instead_of`, the group of the other
/// audience, so it never holds both).
async fn subscribe(
    ctx: &AppContext,
    caller: &Caller,
    group: String,
    instead_of: Option<String>,
) -> HttpResponse {
    let user = caller.user_id.as_str();
    let done = async {
        if let Some(other) = &instead_of {
            ctx.sink.remove_user_from_group(other, user).await?;
        }
        ctx.sink
            .add_user_to_group(&group, user, SUBSCRIPTION_TTL)
            .await
    };
    match done.await {
        Ok(()) => {
            tracing::debug!(%group, user, "user subscribed");
            HttpResponse::json(
                200,
                &Subscription {
                    group,
                    user_id: user.to_owned(),
                    expires_in_seconds: SUBSCRIPTION_TTL.as_secs(),
                },
            )
        }
        Err(e) => sink_error(e),
    }
}

#[async_trait]
impl HttpHandler for SubscribeExecution {
    async fn handle(&self, ctx: &AppContext, request: HttpRequest) -> HttpResponse {
        let caller = match checked_caller(ctx, &request).await {
            Ok(caller) => caller,
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
        let (mine, other) = if caller.is_platform_admin {
            (Audience::Admins, Audience::Members)
        } else {
            (Audience::Members, Audience::Admins)
        };
        subscribe(
            ctx,
            &caller,
            groups::execution(mine, &execution.id),
            Some(groups::execution(other, &execution.id)),
        )
        .await
    }

    fn operation(&self) -> Operation {
        subscribe_operation("Follow one execution live")
            .description("Adds the caller to the execution's group for its audience: members to execution:{id} (admin-only log lines as {id, sequence, timestamp, level, redacted: true}, no variables or state), platform admins to execution-admin:{id} (everything). executionLogs, executionResult and executionUpdate go to both; executionVariables and executionState to admins only. Another scope's execution is 404.")
            .parameter(execution_id_parameter())
    }
}

#[async_trait]
impl HttpHandler for SubscribeHistory {
    async fn handle(&self, ctx: &AppContext, request: HttpRequest) -> HttpResponse {
        let caller = match checked_caller(ctx, &request).await {
            Ok(caller) => caller,
            Err(response) => return response,
        };
        // The request's scope (X-Organization-Id for admins, the caller's organization otherwise).
        subscribe(ctx, &caller, groups::history(&caller.scope), None).await
    }

    fn operation(&self) -> Operation {
        subscribe_operation("Follow the execution list live").description(
            "Adds the caller to history:{scope} of the request's scope: executionHistoryUpdate messages carrying list rows.",
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
            Some("abc".to_owned())
        );
        for empty in [None, Some(""), Some("{}"), Some(r#"{"other":1}"#)] {
            assert_eq!(parse_subscribe_body(empty).unwrap(), None, "{empty:?}");
        }
        for bad in [
            Some("[]"),
            Some("{"),
            Some(r#"{"connectionId":""}"#),
            Some(r#"{"connectionId":42}"#),
        ] {
            let response = parse_subscribe_body(bad).unwrap_err();
            assert_eq!(response.status, 400);
            assert!(response.body.contains("connectionId"));
        }
    }
}
