//! A Cosmos DB-compatible HTTP server for tests: the in-memory emulator that ships inside
//! `azure_data_cosmos_driver` (feature `__internal_in_memory_emulator`, a dev-dependency, so it
//! never reaches the shipped binary), served over real sockets by hyper, HTTP/1.1 and h2c
//! (docs/cosmos.md).
//!
//! Used in-process by the store's conformance tests, by the e2e tests (the spawned binary talks
//! to it), and stand-alone via `cargo run --example cosmos-emulator`.
//!
//! Gaps of the emulator (so tests do not rely on them): TTL is stored but never enforced;
//! `If-Modified-Since` (change feed from a point in time) is ignored; keys are not checked;
//! request charges follow a simple size-based model, not the service's; 429s happen only with
//! `start_throttled` and containers created with provisioned throughput.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::str::FromStr;
use std::sync::Arc;

use azure_core::http::{Method, Request, Url};
use azure_data_cosmos_driver::in_memory_emulator::{
    ConsistencyLevel, InMemoryEmulatorHttpClient, VirtualAccountConfig, VirtualRegion,
};
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;

/// The well-known emulator key (the emulator accepts any key).
pub const EMULATOR_KEY: &str =
    "C2y6yDjf5/R+ob0N8A7Cgv30VRDJIWEHLM+4QDU5DE2nQ9nDuVTqobD4b8mGGyPMbIZnqyMsEcaGQy67XIw/Jw==";

/// A running emulator; stops when dropped.
pub struct Emulator {
    /// `http://127.0.0.1:PORT/`
    pub endpoint: String,
    task: tokio::task::JoinHandle<()>,
}

impl Emulator {
    /// The store URL for a database of this emulator (key URL-encoded).
    pub fn store_url(&self, database: &str) -> String {
        let rest = self.endpoint.trim_start_matches("http://");
        let key: String = form_urlencoded::byte_serialize(EMULATOR_KEY.as_bytes()).collect();
        format!("cosmos+http://{rest}?key={key}&database={database}")
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        self.task.abort();
    }
}

type Response = hyper::Response<Full<Bytes>>;

fn plain(status: u16, text: String) -> Response {
    let mut response = hyper::Response::new(Full::new(Bytes::from(text)));
    *response.status_mut() =
        hyper::StatusCode::from_u16(status).unwrap_or(hyper::StatusCode::INTERNAL_SERVER_ERROR);
    response
}

async fn handle(
    emulator: Arc<InMemoryEmulatorHttpClient>,
    base: Arc<String>,
    request: hyper::Request<hyper::body::Incoming>,
) -> Result<Response, Infallible> {
    let (parts, body) = request.into_parts();
    let body = match body.collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(e) => return Ok(plain(400, format!("reading the body: {e}"))),
    };
    let path = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/");
    let url: Url = match format!("{base}{path}").parse() {
        Ok(url) => url,
        Err(e) => return Ok(plain(400, format!("bad url: {e}"))),
    };
    let Ok(method) = Method::from_str(parts.method.as_str()) else {
        return Ok(plain(405, format!("method {} not supported", parts.method)));
    };
    let mut forwarded = Request::new(url, method);
    for (name, value) in &parts.headers {
        if let Ok(value) = value.to_str() {
            forwarded.insert_header(name.as_str().to_ascii_lowercase(), value.to_owned());
        }
    }
    forwarded.set_body(body.to_vec());
    match emulator.execute_request(&forwarded).await {
        Ok(response) => {
            let (status, headers, body) = response.deconstruct();
            let bytes = body.collect().await.unwrap_or_default();
            let mut out = hyper::Response::builder().status(u16::from(status));
            for (name, value) in headers.iter() {
                out = out.header(name.as_str(), value.as_str());
            }
            Ok(out
                .body(Full::new(Bytes::from(bytes.to_vec())))
                .unwrap_or_else(|e| plain(500, e.to_string())))
        }
        Err(e) => Ok(plain(
            503,
            serde_json::json!({"code": "ServiceUnavailable", "message": e.to_string()}).to_string(),
        )),
    }
}

/// Starts an emulator on `addr` (port 0 = a free one) in the current tokio runtime.
pub async fn start_on(addr: SocketAddr) -> std::io::Result<Emulator> {
    start_with(addr, false).await
}

/// An emulator that enforces provisioned throughput: containers created with
/// `x-ms-offer-throughput` answer 429 (sub-status 3200) with `x-ms-retry-after-ms` once a
/// partition's per-second budget is spent.
pub async fn start_throttled() -> std::io::Result<Emulator> {
    start_with(SocketAddr::from(([127, 0, 0, 1], 0)), true).await
}

async fn start_with(addr: SocketAddr, throttling: bool) -> std::io::Result<Emulator> {
    let listener = TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    let base = format!("http://{}:{}", local.ip(), local.port());
    // The SDK follows the account's advertised region endpoint, so it must be this listener.
    let url = Url::parse(&base).map_err(std::io::Error::other)?;
    let config = VirtualAccountConfig::new(vec![VirtualRegion::new("East US", url)])
        .map_err(|e| std::io::Error::other(e.to_string()))?
        .with_consistency(ConsistencyLevel::Session)
        .with_throttling_enabled(throttling);
    let emulator = Arc::new(InMemoryEmulatorHttpClient::new(config));
    let shared_base = Arc::new(base.clone());
    let task = tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let (emulator, base) = (emulator.clone(), shared_base.clone());
            tokio::spawn(async move {
                let service =
                    service_fn(move |request| handle(emulator.clone(), base.clone(), request));
                // HTTP/1.1 and h2c: the SDK speaks HTTP/2 with prior knowledge to emulator hosts.
                let _ = auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    Ok(Emulator {
        endpoint: format!("{base}/"),
        task,
    })
}

/// Starts an emulator on a free loopback port.
pub async fn start() -> std::io::Result<Emulator> {
    start_on(SocketAddr::from(([127, 0, 0, 1], 0))).await
}
