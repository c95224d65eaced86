//! serve mode's built-in SignalR hub: a small Azure SignalR Service (serverless mode) on the
//! serve listener. It answers the client side (`POST /client/negotiate?hub=`, the WebSocket at
//! `/client/?hub=&id=` with the JSON hub protocol) and the REST subset the sender uses
//! (`/api/hubs/{hub}/…`), with the service's JWT checks (HS256 with the access key, `aud` = the
//! URL). So `RestSender` and the negotiate function run the same code here as against Azure.

mod connection;
pub mod protocol;
pub mod state;
#[cfg(test)]
mod tests;

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

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

use self::protocol::{parse_rest_path, PayloadMessage, RestCall};
use self::state::{HubState, Record};
use crate::realtime::connection_string::ConnectionString;
use crate::realtime::jwt;

/// Limits of the built-in hub; the defaults are ASP.NET Core's.
#[derive(Debug, Clone)]
pub struct HubLimits {
    /// Records waiting for one client before it counts as too slow and is disconnected.
    pub queue_capacity: usize,
    pub keep_alive: Duration,
    pub client_timeout: Duration,
    pub handshake_timeout: Duration,
    /// How long a negotiated connection may wait for its WebSocket.
    pub negotiate_ttl: Duration,
}

impl Default for HubLimits {
    fn default() -> Self {
        HubLimits {
            queue_capacity: 1024,
            keep_alive: Duration::from_secs(15),
            client_timeout: Duration::from_secs(30),
            handshake_timeout: Duration::from_secs(15),
            negotiate_ttl: Duration::from_secs(60),
        }
    }
}

/// REST bodies the hub accepts (the service's limit).
const MAX_REST_BODY_BYTES: usize = 1024 * 1024;

#[derive(Debug, Clone)]
pub struct Hub {
    connection: ConnectionString,
    limits: HubLimits,
    state: HubState,
}

fn epoch_seconds() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
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
        }
    }

    /// The connection string a `RestSender` uses to reach this hub.
    pub fn connection_string(&self) -> &ConnectionString {
        &self.connection
    }

    pub fn connection_count(&self) -> usize {
        self.state.connection_count()
    }

    pub fn router(self) -> Router {
        let hub = Arc::new(self);
        Router::new()
            .route("/client/negotiate", post(negotiate))
            .route("/client", any(websocket))
            .route("/client/", any(websocket))
            .route("/api/hubs/{*rest}", any(rest))
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
        jwt::verify(
            token,
            &self.connection.access_key,
            audiences,
            epoch_seconds(),
        )
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
    if let Err(response) = hub.authorize(&headers, None, &[&hub.client_audience(&name)]) {
        return response.into_response();
    }
    let connection_id = uuid::Uuid::new_v4().simple().to_string();
    let version = query.negotiate_version.unwrap_or(0).min(1);
    // v1 separates the secret token (the WebSocket `id`) from the public id used for groups.
    let token = if version >= 1 {
        uuid::Uuid::new_v4().to_string()
    } else {
        connection_id.clone()
    };
    hub.state
        .negotiated(&name, &token, &connection_id, hub.limits.negotiate_ttl);
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
        Ok(upgrade) => upgrade,
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
    let (connection_id, queue) = match hub.state.connect(&name, id, hub.limits.queue_capacity) {
        Ok(claimed) => claimed,
        Err(e @ state::ClaimError::Unknown) => return error(StatusCode::NOT_FOUND, e.to_string()),
        Err(e @ state::ClaimError::AlreadyConnected) => {
            return error(StatusCode::CONFLICT, e.to_string())
        }
    };
    let hub = hub.clone();
    upgrade.on_upgrade(move |socket| async move {
        let span = tracing::info_span!("signalr_connection", connection_id = %connection_id);
        let task = tokio::spawn(tracing::Instrument::instrument(
            connection::run(
                socket,
                queue,
                hub.state.clone(),
                connection_id.clone(),
                hub.limits.clone(),
            ),
            span,
        ));
        hub.state.set_abort(&connection_id, task.abort_handle());
        let _ = task.await;
        hub.state.disconnect(&connection_id);
    })
}

async fn rest(
    State(hub): State<Arc<Hub>>,
    Path(_rest): Path<String>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
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
    let record = |body: &Bytes| -> Result<Record, Refusal> {
        if body.len() > MAX_REST_BODY_BYTES {
            return Err(Refusal(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("body over {MAX_REST_BODY_BYTES} bytes"),
            ));
        }
        let message =
            PayloadMessage::parse(body).map_err(|e| Refusal(StatusCode::BAD_REQUEST, e))?;
        Ok(Arc::from(protocol::invocation_record(
            &message.target,
            message.arguments(),
        )))
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
        RestCall::SendToGroup { group } => match record(&body) {
            Ok(record) => {
                hub.state.send_to_group(&name, &group, &record);
                StatusCode::ACCEPTED.into_response()
            }
            Err(refusal) => refusal.into_response(),
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
            found(hub.state.close(&name, &connection), StatusCode::OK)
        }
    }
}
