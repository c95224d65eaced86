//! CORS for browsers on another origin (the React dev server, a static site), from
//! configuration: only the origins listed with `--cors-origin` (by default the loopback
//! development servers) get CORS headers, answered by `tower-http`'s `CorsLayer` (the Origin
//! echoed with `Allow-Credentials: true`, since the SignalR client fetches negotiate with
//! credentials and browsers refuse `*` for those; preflights answered). A request from any other
//! origin goes past CORS entirely: no CORS header at all, and a preflight is an ordinary
//! `OPTIONS` (405). A page served by this process itself is same-origin and needs none. In Azure
//! the Function App's own CORS settings do this job.

use std::str::FromStr;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, Method};
use axum::middleware::Next;
use axum::response::Response;
use axum::Router;
use tower::ServiceExt;
use tower_http::cors::{AllowHeaders, AllowOrigin, CorsLayer};

/// The default list: the usual development servers on loopback (Create React App / Next on
/// 3000, Vite on 5173).
pub const DEVELOPMENT_ORIGINS: [&str; 4] = [
    "http://localhost:3000",
    "http://127.0.0.1:3000",
    "http://localhost:5173",
    "http://127.0.0.1:5173",
];

/// One allowed origin: `scheme://host[:port]`, no path, as browsers send it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin(String);

impl FromStr for Origin {
    type Err = String;

    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        let raw = raw.trim();
        let bad = |why: &str| {
            format!("{raw:?} is not an origin ({why}); expected scheme://host[:port], e.g. http://localhost:3000")
        };
        let (scheme, rest) = raw.split_once("://").ok_or_else(|| bad("no scheme"))?;
        if !matches!(scheme, "http" | "https") {
            return Err(bad("the scheme must be http or https"));
        }
        if rest.is_empty() || rest.contains(['/', '?', '#', '@', ' ', '*']) {
            return Err(bad("only a host and port may follow the scheme"));
        }
        if let Some((_, port)) = rest.rsplit_once(':').filter(|_| !rest.ends_with(']')) {
            if port.parse::<u16>().is_err() {
                return Err(bad("the port is not a number"));
            }
        }
        // Browsers send the host in lower case.
        Ok(Origin(format!("{scheme}://{}", rest.to_ascii_lowercase())))
    }
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// The origins allowed, as configured, or the development defaults when none is.
pub fn allowed_or_default(configured: &[Origin]) -> Vec<Origin> {
    if configured.is_empty() {
        DEVELOPMENT_ORIGINS
            .iter()
            .map(|o| Origin((*o).to_owned()))
            .collect()
    } else {
        configured.to_vec()
    }
}

#[derive(Clone)]
struct Gate {
    origins: Vec<HeaderValue>,
    with_cors: Router,
}

/// `router` with CORS for `origins` (and only for them).
pub fn apply(router: Router, origins: &[Origin]) -> Router {
    let values: Vec<HeaderValue> = origins
        .iter()
        .filter_map(|o| HeaderValue::from_str(&o.0).ok())
        .collect();
    let cors = CorsLayer::new()
        .allow_origin(AllowOrigin::list(values.clone()))
        .allow_credentials(true)
        .allow_methods([
            Method::GET,
            Method::POST,
            Method::PUT,
            Method::DELETE,
            Method::HEAD,
            Method::OPTIONS,
        ])
        .allow_headers(AllowHeaders::mirror_request())
        .max_age(Duration::from_secs(600));
    let gate = Gate {
        origins: values,
        with_cors: router.clone().layer(cors),
    };
    router.layer(axum::middleware::from_fn_with_state(gate, route))
}

/// A listed origin goes through the CORS layer; everything else goes straight to the routes.
async fn route(State(gate): State<Gate>, request: Request, next: Next) -> Response {
    let listed = request
        .headers()
        .get(header::ORIGIN)
        .is_some_and(|origin| gate.origins.contains(origin));
    if !listed {
        return next.run(request).await;
    }
    match gate.with_cors.oneshot(request).await {
        Ok(response) => response,
        Err(never) => match never {},
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_are_checked_and_normalized() {
        assert_eq!(
            "http://LocalHost:3000"
                .parse::<Origin>()
                .unwrap()
                .to_string(),
            "http://localhost:3000"
        );
        assert!("https://app.example.com".parse::<Origin>().is_ok());
        assert!("http://[::1]:8080".parse::<Origin>().is_ok());
        for bad in [
            "localhost:3000",
            "ftp://x",
            "http://x/path",
            "http://x:port",
            "*",
            "http://*",
            "http://",
        ] {
            assert!(bad.parse::<Origin>().is_err(), "{bad}");
        }
        assert_eq!(allowed_or_default(&[]).len(), DEVELOPMENT_ORIGINS.len());
        let one = vec!["http://a.test".parse::<Origin>().unwrap()];
        assert_eq!(allowed_or_default(&one), one);
    }
}
