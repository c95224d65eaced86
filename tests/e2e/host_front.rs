//! The Functions host's HTTP triggers, played by the test process: plain HTTP requests on a
//! real socket (what the official SignalR client and `fetch` send) become payload-mode
//! invocations of the spawned `handler`, and each `Outputs.res` becomes the HTTP response, as
//! the host does it. Only the routes a client of the real-time contract uses are mapped.

use std::collections::BTreeMap;

use axum::body::Bytes;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// A running front; stops when dropped.
pub(crate) struct HostFront {
    /// `http://127.0.0.1:PORT`: what clients are given as the Function App's address.
    pub base: String,
    /// The worker invoked, changed when the host restarts it.
    handler: std::sync::Arc<std::sync::Mutex<String>>,
    server: tokio::task::JoinHandle<()>,
}

/// The function a route names and its route parameters (the registry's routes).
fn function_of(method: &Method, path: &str) -> Option<(&'static str, BTreeMap<String, String>)> {
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    let id = |value: &str| BTreeMap::from([("id".to_owned(), value.to_owned())]);
    match (method, segments.as_slice()) {
        (&Method::POST, ["api", "negotiate"]) => Some(("Negotiate", BTreeMap::new())),
        (&Method::POST, ["api", "executions", execution, "subscribe"]) => {
            Some(("SubscribeExecution", id(execution)))
        }
        (&Method::GET, ["api", "executions", execution, "logs"]) => {
            Some(("GetExecutionLogs", id(execution)))
        }
        _ => None,
    }
}

impl HostFront {
    /// A front for the `handler` at `handler_base`.
    pub(crate) async fn start(handler_base: &str) -> HostFront {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("address"));
        let handler = std::sync::Arc::new(std::sync::Mutex::new(handler_base.to_owned()));
        let (target, front) = (handler.clone(), base.clone());
        let app = axum::Router::new().fallback(
            move |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| {
                let (handler, front) = (target.lock().unwrap().clone(), front.clone());
                async move { invoke(&handler, &front, method, uri, headers, body).await }
            },
        );
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        HostFront {
            base,
            handler,
            server,
        }
    }

    /// Invokes the worker at `handler_base` from now on (the host restarted it).
    pub(crate) fn retarget(&self, handler_base: &str) {
        *self.handler.lock().unwrap() = handler_base.to_owned();
    }
}

impl Drop for HostFront {
    fn drop(&mut self) {
        self.server.abort();
    }
}

async fn invoke(
    handler: &str,
    front: &str,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Some((function, params)) = function_of(&method, uri.path()) else {
        return (StatusCode::NOT_FOUND, "no such function").into_response();
    };
    let query: BTreeMap<String, String> =
        form_urlencoded::parse(uri.query().unwrap_or_default().as_bytes())
            .into_owned()
            .collect();
    let header_lists: BTreeMap<String, Vec<String>> = headers
        .iter()
        .filter_map(|(name, value)| Some((name.to_string(), vec![value.to_str().ok()?.to_owned()])))
        .collect();
    let request = json!({
        "Url": format!("{front}{uri}"),
        "Method": method.as_str(),
        "Query": query,
        "Params": params,
        "Headers": header_lists,
        "Body": (!body.is_empty()).then(|| String::from_utf8_lossy(&body).into_owned()),
        "Identities": [],
    });
    let invocation = json!({
        "Data": {"req": request},
        "Metadata": {"sys": {"MethodName": function}},
    });
    let (status, _, reply) =
        crate::handler::invoke(handler, function, invocation.to_string().into_bytes()).await;
    let res = &reply["Outputs"]["res"];
    if status != 200 || !res.is_object() {
        return (
            StatusCode::BAD_GATEWAY,
            format!("{function} answered {status}: {reply}"),
        )
            .into_response();
    }
    let mut response = res["body"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
        .into_response();
    *response.status_mut() = res["statusCode"]
        .as_u64()
        .and_then(|code| StatusCode::from_u16(code as u16).ok())
        .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    for (name, value) in res["headers"].as_object().into_iter().flatten() {
        if let (Ok(name), Some(Ok(value))) = (
            axum::http::HeaderName::try_from(name.as_str()),
            value.as_str().map(axum::http::HeaderValue::from_str),
        ) {
            response.headers_mut().insert(name, value);
        }
    }
    response
}
