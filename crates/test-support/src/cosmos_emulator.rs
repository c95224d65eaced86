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
//! `start_throttled` and containers created with provisioned throughput, or from a fault plan.
//!
//! Every emulator has a [`Faults`] plan a test can switch while the client runs: per kind of
//! data-plane request (point reads and queries, writes, change-feed reads) a 429 storm with
//! `x-ms-retry-after-ms`, 503s, answers delayed past the client's timeout, or the connection
//! closed in the middle of the response. Faults are injected on the wire, in front of the
//! emulator, so the binary under test runs unchanged (no SDK feature, no test-only code path).

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use azure_core::http::{Method, Request, Url};
use azure_data_cosmos_driver::in_memory_emulator::{
    ConsistencyLevel, InMemoryEmulatorHttpClient, VirtualAccountConfig, VirtualRegion,
};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Frame};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;
use tokio::sync::Notify;

/// The well-known emulator key (the emulator accepts any key).
pub const EMULATOR_KEY: &str =
    "C2y6yDjf5/R+ob0N8A7Cgv30VRDJIWEHLM+4QDU5DE2nQ9nDuVTqobD4b8mGGyPMbIZnqyMsEcaGQy67XIw/Jw==";

/// The kinds of data-plane request a fault is aimed at. Metadata requests (the account,
/// databases, containers, partition key ranges) are never faulted: a client that cannot start
/// is a different test.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Operation {
    /// Point reads, queries and document listings.
    Read,
    /// Creates, upserts, replaces, patches, deletes and transactional batches.
    Write,
    /// Change-feed reads (`A-IM: Incremental feed`).
    ChangeFeed,
}

impl Operation {
    pub const ALL: [Operation; 3] = [Operation::Read, Operation::Write, Operation::ChangeFeed];

    /// The kind of a request by method, path and headers (names lower-case); `None` for
    /// metadata requests.
    pub fn of(method: &str, path: &str, header: impl Fn(&str) -> Option<String>) -> Option<Self> {
        let path = path.split('?').next().unwrap_or(path).trim_end_matches('/');
        let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
        // dbs/{db}/colls/{coll}/docs[/{id}]
        if segments.len() < 5 || segments[0] != "dbs" || segments[2] != "colls" {
            return None;
        }
        if segments[4] != "docs" {
            return None;
        }
        let flag = |name: &str| header(name).is_some_and(|v| v.eq_ignore_ascii_case("true"));
        // `Incremental Feed` (latest version) or `Full-Fidelity Feed`.
        let is_feed = header("a-im").is_some_and(|v| v.to_ascii_lowercase().ends_with("feed"));
        let is_query = flag("x-ms-documentdb-isquery")
            || header("content-type").is_some_and(|v| v.starts_with("application/query+json"));
        match method.to_ascii_uppercase().as_str() {
            "GET" | "HEAD" if is_feed => Some(Operation::ChangeFeed),
            "GET" | "HEAD" => Some(Operation::Read),
            "POST" if is_query => Some(Operation::Read),
            _ => Some(Operation::Write),
        }
    }
}

/// What the front-end does to a request of a faulted kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// 429 (sub-status 3200, request rate too large) with `x-ms-retry-after-ms`; the request
    /// never reaches the emulator.
    Throttle { retry_after: Duration },
    /// 503 ServiceUnavailable; the request never reaches the emulator.
    Unavailable,
    /// The request is carried out, and its answer held back this long (past the client's
    /// per-request timeout, so the client gives up on a request that may have happened).
    Delay(Duration),
    /// The request is carried out; the answer's head and half its body are sent, then the
    /// connection is closed (every request in flight on it fails).
    Reset,
}

#[derive(Default)]
struct FaultState {
    plan: HashMap<Operation, Fault>,
    injected: HashMap<Operation, u64>,
    spared: Vec<IpAddr>,
    /// Data-plane requests from a spared address while a fault was planned for their kind.
    spared_requests: u64,
}

/// The faults an emulator injects now; shared with the test, switched at run time.
#[derive(Clone, Default)]
pub struct Faults {
    state: Arc<Mutex<FaultState>>,
}

impl Faults {
    fn lock(&self) -> std::sync::MutexGuard<'_, FaultState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// From now on every request of `operation` gets `fault`.
    pub fn set(&self, operation: Operation, fault: Fault) {
        self.lock().plan.insert(operation, fault);
    }

    /// Requests of `operation` are answered normally again.
    pub fn clear(&self, operation: Operation) {
        self.lock().plan.remove(&operation);
    }

    pub fn clear_all(&self) {
        self.lock().plan.clear();
    }

    /// Requests from `peer` are never faulted: a client the test needs to keep working (a
    /// writer bound there with the SDK's `AZURE_COSMOS_LOCAL_ADDRESS`, e.g. `127.0.0.2`).
    pub fn spare(&self, peer: IpAddr) {
        self.lock().spared.push(peer);
    }

    /// How many requests from a spared address came while their kind was faulted (and were
    /// answered normally): proof that the sparing is what kept that client working.
    pub fn spared_requests(&self) -> u64 {
        self.lock().spared_requests
    }

    /// How many requests of `operation` got a fault so far.
    pub fn injected(&self, operation: Operation) -> u64 {
        self.lock().injected.get(&operation).copied().unwrap_or(0)
    }

    /// The fault for a request of `operation`, counted as injected.
    fn take(&self, operation: Operation, peer: IpAddr) -> Option<Fault> {
        let mut state = self.lock();
        if state.spared.contains(&peer) {
            if state.plan.contains_key(&operation) {
                state.spared_requests += 1;
            }
            return None;
        }
        let fault = state.plan.get(&operation).copied()?;
        *state.injected.entry(operation).or_default() += 1;
        Some(fault)
    }
}

/// A running emulator; stops when dropped.
pub struct Emulator {
    /// `http://127.0.0.1:PORT/`
    pub endpoint: String,
    faults: Faults,
    task: tokio::task::JoinHandle<()>,
}

impl Emulator {
    /// The fault plan of this emulator (empty at start).
    pub fn faults(&self) -> &Faults {
        &self.faults
    }

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

type Response = hyper::Response<BoxBody<Bytes, std::io::Error>>;

fn full(bytes: Bytes) -> BoxBody<Bytes, std::io::Error> {
    Full::new(bytes).map_err(|never| match never {}).boxed()
}

fn plain(status: u16, text: String) -> Response {
    let mut response = hyper::Response::new(full(Bytes::from(text)));
    *response.status_mut() =
        hyper::StatusCode::from_u16(status).unwrap_or(hyper::StatusCode::INTERNAL_SERVER_ERROR);
    response
}

/// A body that yields its first half, then fails (and has the connection closed): a response
/// cut off in the middle.
struct CutOff {
    first: Option<Bytes>,
    close: Option<Arc<Notify>>,
}

impl hyper::body::Body for CutOff {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        if let Some(first) = self.first.take() {
            return Poll::Ready(Some(Ok(Frame::data(first))));
        }
        if let Some(close) = self.close.take() {
            close.notify_one();
        }
        Poll::Ready(Some(Err(std::io::Error::new(
            std::io::ErrorKind::ConnectionReset,
            "fault plan: connection reset mid-response",
        ))))
    }
}

/// A throttled or unavailable answer as the service sends it.
fn refusal(fault: Fault) -> Option<Response> {
    let (status, sub_status, code, retry_after) = match fault {
        Fault::Throttle { retry_after } => (429, 3200, "TooManyRequests", Some(retry_after)),
        Fault::Unavailable => (503, 0, "ServiceUnavailable", None),
        Fault::Delay(_) | Fault::Reset => return None,
    };
    let body = serde_json::json!({"code": code, "message": "injected by the fault plan"});
    let mut out = hyper::Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .header("x-ms-substatus", sub_status.to_string())
        .header("x-ms-activity-id", "00000000-0000-0000-0000-000000000000");
    if let Some(wait) = retry_after {
        out = out.header("x-ms-retry-after-ms", wait.as_millis().to_string());
    }
    Some(
        out.body(full(Bytes::from(body.to_string())))
            .unwrap_or_else(|e| plain(500, e.to_string())),
    )
}

async fn handle(
    emulator: Arc<InMemoryEmulatorHttpClient>,
    base: Arc<String>,
    faults: Faults,
    (peer, close): (IpAddr, Arc<Notify>),
    request: hyper::Request<hyper::body::Incoming>,
) -> Result<Response, Infallible> {
    let operation = Operation::of(request.method().as_str(), request.uri().path(), |name| {
        request
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    });
    let fault = operation.and_then(|operation| faults.take(operation, peer));
    if let Some(refused) = fault.and_then(refusal) {
        return Ok(refused);
    }
    let response = forward(&emulator, &base, request).await;
    match fault {
        Some(Fault::Delay(by)) => {
            tokio::time::sleep(by).await;
            Ok(response)
        }
        Some(Fault::Reset) => {
            let (parts, body) = response.into_parts();
            let bytes = body
                .collect()
                .await
                .map(|c| c.to_bytes())
                .unwrap_or_default();
            let first = bytes.slice(..bytes.len() / 2);
            let cut = CutOff {
                first: Some(first),
                close: Some(close),
            };
            Ok(hyper::Response::from_parts(parts, cut.boxed()))
        }
        _ => Ok(response),
    }
}

/// The request carried out by the in-memory emulator.
async fn forward(
    emulator: &InMemoryEmulatorHttpClient,
    base: &str,
    request: hyper::Request<hyper::body::Incoming>,
) -> Response {
    let (parts, body) = request.into_parts();
    let body = match body.collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(e) => return plain(400, format!("reading the body: {e}")),
    };
    let path = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/");
    let url: Url = match format!("{base}{path}").parse() {
        Ok(url) => url,
        Err(e) => return plain(400, format!("bad url: {e}")),
    };
    let Ok(method) = Method::from_str(parts.method.as_str()) else {
        return plain(405, format!("method {} not supported", parts.method));
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
            out.body(full(Bytes::from(bytes.to_vec())))
                .unwrap_or_else(|e| plain(500, e.to_string()))
        }
        Err(e) => plain(
            503,
            serde_json::json!({"code": "ServiceUnavailable", "message": e.to_string()}).to_string(),
        ),
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
    let faults = Faults::default();
    let plan = faults.clone();
    let task = tokio::spawn(async move {
        loop {
            let Ok((stream, peer)) = listener.accept().await else {
                continue;
            };
            let (emulator, base, faults) = (emulator.clone(), shared_base.clone(), plan.clone());
            // A `Reset` fault closes the whole connection, as a reset would.
            let close = Arc::new(Notify::new());
            tokio::spawn(async move {
                let closer = close.clone();
                let service = service_fn(move |request| {
                    handle(
                        emulator.clone(),
                        base.clone(),
                        faults.clone(),
                        (peer.ip(), closer.clone()),
                        request,
                    )
                });
                // HTTP/1.1 and h2c: the SDK speaks HTTP/2 with prior knowledge to emulator hosts.
                let builder = auto::Builder::new(TokioExecutor::new());
                let connection = builder.serve_connection(TokioIo::new(stream), service);
                tokio::select! {
                    _ = connection => {}
                    // Dropping the connection drops the socket.
                    _ = close.notified() => {}
                }
            });
        }
    });
    Ok(Emulator {
        endpoint: format!("{base}/"),
        faults,
        task,
    })
}

/// Starts an emulator on a free loopback port.
pub async fn start() -> std::io::Result<Emulator> {
    start_on(SocketAddr::from(([127, 0, 0, 1], 0))).await
}

#[cfg(test)]
mod tests {
    use super::Operation;

    fn kind(method: &str, path: &str, headers: &[(&str, &str)]) -> Option<Operation> {
        Operation::of(method, path, |name| {
            headers
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| (*v).to_owned())
        })
    }

    #[test]
    fn requests_are_told_apart_by_kind() {
        let docs = "/dbs/bifrost/colls/executions/docs";
        assert_eq!(kind("GET", "/", &[]), None);
        assert_eq!(kind("GET", "/dbs/bifrost/colls/executions", &[]), None);
        assert_eq!(
            kind("GET", "/dbs/bifrost/colls/executions/pkranges", &[]),
            None
        );
        assert_eq!(
            kind("GET", &format!("{docs}/e1"), &[]),
            Some(Operation::Read)
        );
        assert_eq!(
            kind("POST", docs, &[("x-ms-documentdb-isquery", "True")]),
            Some(Operation::Read)
        );
        assert_eq!(
            kind("POST", docs, &[("content-type", "application/query+json")]),
            Some(Operation::Read)
        );
        assert_eq!(
            kind("GET", docs, &[("a-im", "Incremental Feed")]),
            Some(Operation::ChangeFeed)
        );
        assert_eq!(kind("POST", docs, &[]), Some(Operation::Write));
        assert_eq!(
            kind("PUT", &format!("{docs}/e1"), &[]),
            Some(Operation::Write)
        );
        assert_eq!(
            kind("PATCH", &format!("{docs}/e1"), &[]),
            Some(Operation::Write)
        );
        assert_eq!(
            kind("DELETE", &format!("{docs}/e1"), &[]),
            Some(Operation::Write)
        );
    }
}
