//! The live web console at `/`: plain HTML, CSS and JavaScript modules embedded in the binary
//! (`assets/`), the official SignalR browser client vendored beside them, and the dev sign-in
//! session routes. Everything the page shows comes from the public API and the live stream; the
//! page has no private back door.
//!
//! Every page response carries a Content-Security-Policy that allows scripts from this origin
//! only: a workflow result is data, and no script in one can run (the page shows HTML results
//! in a sandboxed frame without `allow-scripts`, everything else as text).

mod assets;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;

use super::dev_sign_in::{self, DevIdentity, DevSignIn};
use crate::runtime::AppContext;

/// Scripts from this origin only, no plugins, no framing of the console itself; connections to
/// any HTTP(S)/WebSocket endpoint, since negotiate may hand out an Azure SignalR URL.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; \
style-src 'self'; img-src 'self' data:; connect-src 'self' http: https: ws: wss:; \
frame-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

#[derive(Clone)]
struct Console {
    ctx: AppContext,
    dev: Option<DevSignIn>,
}

/// `GET /`, `GET /console/{asset}` and `GET|POST /console/session`.
pub fn router(ctx: AppContext, dev: Option<DevSignIn>) -> Router {
    let state = Console { ctx, dev };
    Router::new()
        .route("/", get(index))
        .route("/console/session", get(session).post(sign_in))
        .route("/console/{asset}", get(asset))
        .with_state(state)
}

fn secured(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    // Embedded in the binary: a new binary may bring new files under the same names.
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

/// The page. A browser without a dev identity yet gets the initial one (so `serve --demo`
/// opens signed in as a platform admin, without a click).
async fn index(State(console): State<Console>, headers: HeaderMap) -> Response {
    let Some(page) = assets::find("index.html") else {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    let mut response = secured(
        (
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static(page.content_type),
            )],
            page.bytes,
        )
            .into_response(),
    );
    if let Some(dev) = &console.dev {
        if DevIdentity::from_headers(&headers).is_none() {
            response
                .headers_mut()
                .insert(header::SET_COOKIE, dev.initial.set_cookie());
        }
    }
    response
}

async fn asset(Path(name): Path<String>) -> Response {
    match assets::find(&name) {
        Some(found) => secured(
            (
                [(header::CONTENT_TYPE, HeaderValue::from_static(found.content_type))],
                found.bytes,
            )
                .into_response(),
        ),
        None => (
            StatusCode::NOT_FOUND,
            Json(json!({ "error": format!("no console file {:?}", name.chars().take(64).collect::<String>()) })),
        )
            .into_response(),
    }
}

async fn session(State(console): State<Console>, headers: HeaderMap) -> Response {
    let mut response =
        Json(dev_sign_in::session(console.dev.as_ref(), &console.ctx, &headers).await)
            .into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

async fn sign_in(State(console): State<Console>, body: Bytes) -> Response {
    dev_sign_in::sign_in(console.dev.as_ref(), &console.ctx, &body).await
}
