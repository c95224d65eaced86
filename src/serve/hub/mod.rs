//! serve mode's built-in SignalR hub: a small Azure SignalR Service (serverless mode) on the
//! serve listener. It answers the client side (`POST /client/negotiate?hub=`, the WebSocket at
//! `/client/?hub=&id=` with the JSON hub protocol) and the REST subset the sender uses
//! (`/api/hubs/{hub}/…`: sends, connection and user group membership, existence checks, close),
//! with the service's JWT checks (HS256 with the access key, `aud` = the URL). A connection is
//! bound to the user id (`nameid`) of the token it negotiated with, as on the service, so a user
//! added to a group reaches exactly that user's connections. So `RestSender` and the negotiate
//! function run the same code here as against Azure. serve's own functions skip the REST API and
//! deliver in process (`HubSink`), through the same operations the REST routes call.

mod connection;
mod operations;
pub mod protocol;
mod sink;
pub mod state;
#[cfg(test)]
mod tests;

use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;
use serde_json::value::RawValue;
use tower_http::limit::RequestBodyLimitLayer;

pub use self::operations::HubError;
use self::protocol::{parse_rest_path, PayloadMessage, RestCall};
pub use self::sink::HubSink;
use self::state::{HubState, QueueBudget, Record};
use crate::realtime::connection_string::ConnectionString;
use crate::realtime::jwt;

/// Limits of the built-in hub; the timeouts are ASP.NET Core's defaults.
#[derive(Debug, Clone)]
pub struct HubLimits {
    /// What may wait for one client (records and bytes) before it counts as too slow and is
    /// closed with a reason.
    pub queue: QueueBudget,
    pub keep_alive: Duration,
    pub client_timeout: Duration,
    pub handshake_timeout: Duration,
    /// How long a negotiated connection may wait for its WebSocket.
    pub negotiate_ttl: Duration,
}

impl Default for HubLimits {
    fn default() -> Self {
        HubLimits {
            queue: QueueBudget {
                records: 1024,
                bytes: 4 * 1024 * 1024,
            },
            keep_alive: Duration::from_secs(15),
            client_timeout: Duration::from_secs(30),
            handshake_timeout: Duration::from_secs(15),
            negotiate_ttl: Duration::from_secs(60),
        }
    }
}

/// REST bodies the hub accepts (the service's limit).
pub const MAX_REST_BODY_BYTES: usize = 1024 * 1024;
/// A client negotiate has an empty body.
pub const MAX_NEGOTIATE_BODY_BYTES: usize = 4 * 1024;
/// The largest WebSocket message a client may send (a handshake, a ping, a close: all tiny).
const MAX_CLIENT_MESSAGE_BYTES: usize = protocol::MAX_CLIENT_RECORD_BYTES;
/// The socket read buffer per connection. The WebSocket library zero-fills its whole read
/// buffer before every read attempt, and a connection's task tries a read each time it sends
/// (it waits for the client and its queue at once): with the default 128 KiB that zeroing was
/// 6% of `serve`'s CPU under load (`perf`), for clients that only ever send a few bytes. A larger
/// message still arrives whole (the buffer grows for it).
const CLIENT_READ_BUFFER_BYTES: usize = 4 * 1024;

#[derive(Debug, Clone)]
pub struct Hub {
    connection: ConnectionString,
    limits: HubLimits,
    state: HubState,
    /// Shared by every clone (the router's, serve's, the sink's): see `Hub::shut_down`.
    shutting_down: Arc<AtomicBool>,
}

fn error(status: StatusCode, message: impl Into<String>) -> Response {
    Refusal(status, message.into()).into_response()
}

/// A refused request: its status and the message of `{"error": …}` (small, unlike a `Response`).
#[derive(Debug)]
struct Refusal(StatusCode, String);

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        (self.0, Json(json!({ "error": self.1 }))).into_response()
    }
}

impl Hub {
    /// A hub reachable at `endpoint` (`http://host:port`) with a fresh random access key.
    pub fn new(endpoint: &str, limits: HubLimits) -> Self {
        let access_key = format!(
            "{}{}",
            uuid::Uuid::new_v4().simple(),
            uuid::Uuid::new_v4().simple()
        );
        Hub {
            connection: ConnectionString {
                endpoint: endpoint.trim_end_matches('/').to_owned(),
                access_key,
            },
            limits,
            state: HubState::default(),
            shutting_down: Arc::default(),
        }
    }

    /// The connection string a `RestSender` uses to reach this hub.
    pub fn connection_string(&self) -> &ConnectionString {
        &self.connection
    }

    pub fn connection_count(&self) -> usize {
        self.state.connection_count()
    }

    /// The hub's routes, each with its body limit.
    pub fn router(self) -> Router {
        let hub = Arc::new(self);
        Router::new()
            .route(
                "/client/negotiate",
                post(negotiate).layer(RequestBodyLimitLayer::new(MAX_NEGOTIATE_BODY_BYTES)),
            )
            .route("/client", any(websocket))
            .route("/client/", any(websocket))
            .route(
                "/api/hubs/{*rest}",
                any(rest).layer(RequestBodyLimitLayer::new(MAX_REST_BODY_BYTES)),
            )
            .with_state(hub)
    }

    /// Checks `Authorization: Bearer` (or, for browser WebSockets only, `access_token=`).
    fn authorize(
        &self,
        headers: &HeaderMap,
        query_token: Option<&str>,
        audiences: &[&str],
    ) -> Result<jwt::Claims, Refusal> {
        let bearer = headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                v.strip_prefix("Bearer ")
                    .or_else(|| v.strip_prefix("bearer "))
            });
        let Some(token) = bearer.or(query_token) else {
            return Err(Refusal(
                StatusCode::UNAUTHORIZED,
                "missing access token".into(),
            ));
        };
        jwt::verify(token, &self.connection.access_key, audiences)
            .map_err(|e| Refusal(StatusCode::UNAUTHORIZED, e.to_string()))
    }

    fn client_audience(&self, hub: &str) -> String {
        format!("{}/client/?hub={hub}", self.connection.endpoint)
    }
}

#[derive(Debug, Deserialize)]
struct ClientQuery {
    hub: Option<String>,
    id: Option<String>,
    access_token: Option<String>,
    #[serde(rename = "negotiateVersion")]
    negotiate_version: Option<u32>,
}

async fn negotiate(
    State(hub): State<Arc<Hub>>,
    Query(query): Query<ClientQuery>,
    headers: HeaderMap,
) -> Response {
    let Some(name) = query.hub.as_deref().filter(|h| !h.is_empty()) else {
        return error(StatusCode::BAD_REQUEST, "missing ?hub=");
    };
    let name = name.to_ascii_lowercase();
    let claims = match hub.authorize(&headers, None, &[&hub.client_audience(&name)]) {
        Ok(claims) => claims,
        Err(response) => return response.into_response(),
    };
    let connection_id = uuid::Uuid::new_v4().simple().to_string();
    let version = query.negotiate_version.unwrap_or(0).min(1);
    // v1 separates the secret token (the WebSocket `id`) from the public id used for groups.
    let token = if version >= 1 {
        uuid::Uuid::new_v4().to_string()
    } else {
        connection_id.clone()
    };
    // The connection belongs to the token's user: user group memberships reach it.
    hub.state.negotiated(
        &name,
        &token,
        &connection_id,
        claims.nameid.as_deref(),
        hub.limits.negotiate_ttl,
    );
    let mut body = json!({
        "negotiateVersion": version,
        "connectionId": connection_id,
        "availableTransports": [{ "transport": "WebSockets", "transferFormats": ["Text"] }],
    });
    if version >= 1 {
        body["connectionToken"] = json!(token);
    }
    Json(body).into_response()
}

async fn websocket(
    State(hub): State<Arc<Hub>>,
    Query(query): Query<ClientQuery>,
    headers: HeaderMap,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    let upgrade = match upgrade {
        Ok(upgrade) => upgrade
            .max_message_size(MAX_CLIENT_MESSAGE_BYTES)
            .max_frame_size(MAX_CLIENT_MESSAGE_BYTES)
            .read_buffer_size(CLIENT_READ_BUFFER_BYTES),
        Err(rejection) => return error(rejection.status(), rejection.body_text()),
    };
    let (Some(name), Some(id)) = (query.hub.as_deref(), query.id.as_deref()) else {
        return error(
            StatusCode::BAD_REQUEST,
            "missing ?hub= or ?id= (negotiate first)",
        );
    };
    let name = name.to_ascii_lowercase();
    if let Err(response) = hub.authorize(
        &headers,
        query.access_token.as_deref(),
        &[&hub.client_audience(&name)],
    ) {
        return response.into_response();
    }
    let (connection_id, outbox) = match hub.state.connect(&name, id, hub.limits.queue) {
        Ok(claimed) => claimed,
        Err(e @ state::ClaimError::Unknown) => return error(StatusCode::NOT_FOUND, e.to_string()),
        Err(e @ state::ClaimError::AlreadyConnected) => {
            return error(StatusCode::CONFLICT, e.to_string())
        }
    };
    let hub = hub.clone();
    // Not upgraded after all (the client went away): the connection must not linger.
    let forget = Forget(hub.state.clone(), connection_id.clone());
    upgrade.on_upgrade(move |socket| async move {
        let span = tracing::info_span!("signalr_connection", connection_id = %connection_id);
        tracing::Instrument::instrument(
            connection::run(
                socket,
                outbox,
                hub.state.clone(),
                connection_id.clone(),
                hub.limits.clone(),
            ),
            span,
        )
        .await;
        drop(forget);
    })
}

/// Forgets a connection when dropped: after its task, or when the upgrade never happened.
struct Forget(HubState, String);

impl Drop for Forget {
    fn drop(&mut self) {
        self.0.disconnect(&self.1);
    }
}

#[derive(Debug, Deserialize)]
struct RestQuery {
    /// Seconds a user stays in a group (`PUT …/users/{user}/groups/{group}`).
    ttl: Option<String>,
    /// Why a connection is closed (`DELETE …/connections/{id}`).
    reason: Option<String>,
}

async fn rest(
    State(hub): State<Arc<Hub>>,
    Path(_rest): Path<String>,
    method: Method,
    uri: Uri,
    Query(query): Query<RestQuery>,
    headers: HeaderMap,
    body: axum::body::Body,
) -> Response {
    let path = uri.path();
    let Some(after) = path.strip_prefix("/api/hubs/") else {
        return error(StatusCode::NOT_FOUND, "no such REST API");
    };
    // `aud` is the request URL without the query (the docs); the SDK adds the query, accept both.
    let audience = format!("{}{path}", hub.connection.endpoint);
    let with_query = match uri.query() {
        Some(q) => format!("{audience}?{q}"),
        None => audience.clone(),
    };
    if let Err(response) = hub.authorize(&headers, None, &[&audience, &with_query]) {
        return response.into_response();
    }
    let (name, call) = match parse_rest_path(method.as_str(), after) {
        Ok(parsed) => parsed,
        Err(e) => return error(StatusCode::NOT_FOUND, e.to_string()),
    };
    let body = match read_body(body).await {
        Ok(body) => body,
        Err(refusal) => return refusal.into_response(),
    };
    let record = |body: &Bytes| -> Result<Record, Refusal> {
        let message =
            PayloadMessage::parse(body).map_err(|e| Refusal(StatusCode::BAD_REQUEST, e))?;
        Ok(Arc::from(message.record()))
    };
    let found = |yes: bool, ok: StatusCode| {
        if yes {
            ok.into_response()
        } else {
            error(StatusCode::NOT_FOUND, "no such connection or group")
        }
    };
    match call {
        RestCall::SendToAll => match record(&body) {
            Ok(record) => {
                hub.state.send_to_all(&name, &record);
                StatusCode::ACCEPTED.into_response()
            }
            Err(refusal) => refusal.into_response(),
        },
        RestCall::SendToGroup { group } => match PayloadMessage::parse(&body) {
            Ok(message) => match hub.send_to_group(
                &name,
                &group,
                &message.target,
                message.arguments.map(RawValue::get),
            ) {
                Ok(_) => StatusCode::ACCEPTED.into_response(),
                Err(e) => unavailable(e),
            },
            Err(e) => error(StatusCode::BAD_REQUEST, e),
        },
        RestCall::SendToConnection { connection } => match record(&body) {
            Ok(record) => found(
                hub.state
                    .send_to_connection(&name, &connection, &record)
                    .is_some(),
                StatusCode::ACCEPTED,
            ),
            Err(refusal) => refusal.into_response(),
        },
        RestCall::AddToGroup { group, connection } => found(
            hub.state.add_to_group(&name, &group, &connection),
            StatusCode::OK,
        ),
        RestCall::RemoveFromGroup { group, connection } => found(
            hub.state.remove_from_group(&name, &group, &connection),
            StatusCode::OK,
        ),
        RestCall::RemoveFromAllGroups { connection } => found(
            hub.state.remove_from_all_groups(&name, &connection),
            StatusCode::OK,
        ),
        RestCall::ConnectionExists { connection } => {
            found(hub.state.exists(&name, &connection), StatusCode::OK)
        }
        RestCall::GroupExists { group } => {
            found(hub.state.group_exists(&name, &group), StatusCode::OK)
        }
        RestCall::CloseConnection { connection } => {
            let reason = query
                .reason
                .as_deref()
                .filter(|r| !r.is_empty())
                .unwrap_or("closed by the server");
            found(hub.state.close(&name, &connection, reason), StatusCode::OK)
        }
        RestCall::SendToUser { user } => match record(&body) {
            Ok(record) => {
                hub.state.send_to_user(&name, &user, &record);
                StatusCode::ACCEPTED.into_response()
            }
            Err(refusal) => refusal.into_response(),
        },
        RestCall::AddUserToGroup { group, user } => {
            let ttl = match query.ttl.as_deref().map(str::parse::<u64>) {
                None => None,
                Some(Ok(seconds)) => Some(Duration::from_secs(seconds)),
                Some(Err(_)) => {
                    return error(
                        StatusCode::BAD_REQUEST,
                        "ttl must be a whole number of seconds",
                    )
                }
            };
            match hub.add_user_to_group(&name, &group, &user, ttl) {
                Ok(()) => StatusCode::OK.into_response(),
                Err(e) => unavailable(e),
            }
        }
        RestCall::RemoveUserFromGroup { group, user } => {
            match hub.remove_user_from_group(&name, &group, &user) {
                Ok(()) => StatusCode::NO_CONTENT.into_response(),
                Err(e) => unavailable(e),
            }
        }
        RestCall::RemoveUserFromAllGroups { user } => {
            hub.state.remove_user_from_all_groups(&name, &user);
            StatusCode::NO_CONTENT.into_response()
        }
        RestCall::UserInGroup { group, user } => found(
            hub.state.user_in_group(&name, &group, &user),
            StatusCode::OK,
        ),
        RestCall::UserExists { user } => found(hub.state.user_exists(&name, &user), StatusCode::OK),
    }
}

/// A hub that is shutting down answers as the service does when it cannot take a call: 503,
/// which `RestSender` retries and then reports.
fn unavailable(e: HubError) -> Response {
    error(StatusCode::SERVICE_UNAVAILABLE, e.to_string())
}

/// The whole request body, or the refusal (over `MAX_REST_BODY_BYTES`, or too slow to arrive).
async fn read_body(body: axum::body::Body) -> Result<Bytes, Refusal> {
    axum::body::to_bytes(body, MAX_REST_BODY_BYTES)
        .await
        .map_err(|e| {
            let status = crate::runtime::server::body_error_status(&e);
            Refusal(status, format!("cannot read the request body: {e}"))
        })
}
