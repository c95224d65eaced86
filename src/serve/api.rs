//! Serve mode's HTTP surface: the registry's HTTP functions under `/api/{route}`, called with the
//! same `HttpRequest` they get from the Functions host (the console owns `GET /`).

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::{RawPathParams, Request, State};
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use axum::Router;

use crate::runtime::function::{FunctionSpec, Trigger};
use crate::runtime::{AppContext, Handler, HttpHandler};
use crate::runtime::{HttpRequest, HttpResponse};

/// Request bodies the query API accepts in serve mode.
const MAX_REQUEST_BYTES: usize = 16 * 1024 * 1024;

#[derive(Clone)]
struct Route {
    ctx: AppContext,
    function: &'static str,
    methods: &'static [&'static str],
    handler: Arc<dyn HttpHandler>,
}

pub fn router(ctx: AppContext, functions: &[FunctionSpec]) -> Router {
    let mut router = Router::new();
    for spec in functions {
        if let (Trigger::Http(trigger), Handler::Http(handler)) = (&spec.trigger, &spec.handler) {
            let route = Route {
                ctx: ctx.clone(),
                function: spec.name,
                methods: trigger.methods,
                handler: handler.clone(),
            };
            router = router.route(
                &format!("/api/{}", trigger.route),
                any(call).with_state(route),
            );
        }
    }
    router.fallback(|| async { to_response(HttpResponse::error(404, "no such route")) })
}

async fn call(State(route): State<Route>, params: RawPathParams, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let method = parts.method.as_str().to_ascii_uppercase();
    if !route
        .methods
        .iter()
        .any(|m| m.eq_ignore_ascii_case(&method))
    {
        return to_response(HttpResponse::error(
            405,
            format!("method {method} not allowed"),
        ));
    }
    let body = match axum::body::to_bytes(body, MAX_REQUEST_BYTES).await {
        Ok(bytes) => bytes,
        Err(_) => {
            return to_response(HttpResponse::error(
                413,
                format!("request body over {MAX_REQUEST_BYTES} bytes"),
            ))
        }
    };
    let query = parts
        .uri
        .query()
        .map(|q| {
            // Repeated keys are comma-joined, as the Functions host does.
            let mut map: BTreeMap<String, String> = BTreeMap::new();
            for (key, value) in form_urlencoded::parse(q.as_bytes()) {
                map.entry(key.into_owned())
                    .and_modify(|existing| {
                        existing.push(',');
                        existing.push_str(&value);
                    })
                    .or_insert_with(|| value.into_owned());
            }
            map
        })
        .unwrap_or_default();
    let mut headers: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (name, value) in &parts.headers {
        if let Ok(value) = value.to_str() {
            headers
                .entry(name.as_str().to_owned())
                .or_default()
                .push(value.to_owned());
        }
    }
    let request = HttpRequest {
        method,
        url: parts.uri.to_string(),
        query,
        headers,
        params: params
            .iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect(),
        body: (!body.is_empty()).then(|| String::from_utf8_lossy(&body).into_owned()),
    };
    let response = route.handler.handle(&route.ctx, request).await;
    tracing::debug!(
        function = route.function,
        status = response.status,
        "served"
    );
    to_response(response)
}

fn to_response(response: HttpResponse) -> Response {
    let status = StatusCode::from_u16(response.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut out = (status, response.body).into_response();
    for (name, value) in &response.headers {
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(value),
        ) {
            out.headers_mut().insert(name, value);
        }
    }
    out
}
