//! The HTTP server both adapters run on (`handler` for the Functions host, `serve` for browsers
//! and the built-in hub's REST callers), with the limits a server facing anyone needs:
//!
//! - **header read timeout**: hyper's HTTP/1 connection closes a connection that has not sent a
//!   whole request head in time. hyper arms that timer as soon as a connection waits for its next
//!   request, so it is also the idle keep-alive timeout.
//! - **body idle timeout**: `tower-http`'s `RequestBodyTimeoutLayer`, between two chunks of a
//!   request body (a steady big upload is fine, a stalled one is cut).
//! - **a connection cap**: at most `max_connections` sockets at once (WebSockets included, for
//!   as long as they live); one over it gets a minimal 503 and is closed at once.
//! - **a file-descriptor budget**: the soft `RLIMIT_NOFILE` is raised to the hard limit at start
//!   and the cap is kept `reserved_fds` below it, so whatever clients do, the store, the pumps
//!   and outgoing calls can still open files and sockets.
//!
//! hyper's own HTTP/1 builder is used, not `hyper_util`'s auto (HTTP/1 + HTTP/2) one: the auto
//! builder's upgrade-capable connection (which WebSockets need) first reads the protocol preface
//! with no timeout at all, so a socket that sends nothing would be held forever. Nothing here
//! serves HTTP/2 (the Functions host and the SignalR client speak HTTP/1.1).

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;
use tower_http::timeout::RequestBodyTimeoutLayer;

/// The limits of one server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServerLimits {
    /// A request head must arrive within this; also how long an idle keep-alive connection stays.
    pub header_read_timeout: Duration,
    /// The longest pause between two chunks of a request body.
    pub body_idle_timeout: Duration,
    /// Sockets served at once (before the file-descriptor budget lowers it).
    pub max_connections: usize,
    /// File descriptors kept free for everything that is not a client socket.
    pub reserved_fds: u64,
}

impl Default for ServerLimits {
    fn default() -> Self {
        ServerLimits {
            header_read_timeout: Duration::from_secs(10),
            body_idle_timeout: Duration::from_secs(30),
            max_connections: 4096,
            reserved_fds: 256,
        }
    }
}

impl ServerLimits {
    /// The cap that fits under `fd_limit` open files: `max_connections`, or what the limit leaves
    /// beside the reserve (which takes at most half of a small limit), at least 1.
    pub fn connection_cap(&self, fd_limit: u64) -> usize {
        let reserve = self.reserved_fds.min(fd_limit / 2);
        let budget = usize::try_from(fd_limit - reserve).unwrap_or(usize::MAX);
        self.max_connections.min(budget).max(1)
    }
}

/// The reply to a connection over the cap: small, complete, and closing.
const REFUSAL: &str = "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\ncontent-length: 59\r\nconnection: close\r\nretry-after: 1\r\n\r\n{\"error\":\"too many connections; retry in a moment, please\"}";

/// Raises the soft limit on open files to the hard limit; returns the soft limit in force.
pub fn raise_fd_limit() -> io::Result<u64> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read or write the struct passed by pointer.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return Err(io::Error::last_os_error());
    }
    if limit.rlim_cur < limit.rlim_max {
        let raised = libc::rlimit {
            rlim_cur: limit.rlim_max,
            rlim_max: limit.rlim_max,
        };
        // SAFETY: as above.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
            limit.rlim_cur = limit.rlim_max;
        } else {
            tracing::warn!(
                soft = limit.rlim_cur,
                hard = limit.rlim_max,
                error = %io::Error::last_os_error(),
                "cannot raise the open-file limit"
            );
        }
    }
    Ok(limit.rlim_cur)
}

/// A client socket that holds its place under the cap until it is dropped, wherever it goes
/// (hyper's connection, or a WebSocket task after an upgrade).
struct Counted {
    stream: TcpStream,
    _permit: OwnedSemaphorePermit,
}

impl AsyncRead for Counted {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for Counted {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
}

/// The status for a request body that could not be read: 413 over the route's limit, 408 when
/// it stalled past the body idle timeout, 400 otherwise (the client broke off).
pub fn body_error_status(error: &(dyn std::error::Error + 'static)) -> StatusCode {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(error) = cause {
        if error.is::<http_body_util::LengthLimitError>() {
            return StatusCode::PAYLOAD_TOO_LARGE;
        }
        if error.is::<tower_http::timeout::TimeoutError>() {
            return StatusCode::REQUEST_TIMEOUT;
        }
        cause = error.source();
    }
    StatusCode::BAD_REQUEST
}

/// tower-http's body limit answers a too-long `Content-Length` itself, in plain text; every
/// error here is JSON `{"error": …}`, so that answer is rewritten.
async fn json_payload_too_large(response: Response) -> Response {
    let plain = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|t| t.as_bytes().starts_with(b"text/plain"));
    if response.status() == StatusCode::PAYLOAD_TOO_LARGE && plain {
        let body = serde_json::json!({ "error": "request body over this route's limit" });
        return (StatusCode::PAYLOAD_TOO_LARGE, axum::Json(body)).into_response();
    }
    response
}

/// How long open connections get to finish their request after shutdown was asked for.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);
/// After an `accept` error (out of file descriptors, mostly), wait this long before the next:
/// the limit frees up as connections close, and a tight loop would only burn the CPU.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(50);

/// Serves `router` on `listener` under `limits` until `shutdown` completes; then stops
/// accepting and gives open requests `DRAIN_TIMEOUT` to finish.
pub async fn serve(
    listener: TcpListener,
    router: axum::Router,
    limits: ServerLimits,
    shutdown: impl Future<Output = ()> + Send,
) -> io::Result<()> {
    let cap = match raise_fd_limit() {
        Ok(fd_limit) => limits.connection_cap(fd_limit),
        Err(e) => {
            tracing::warn!(error = %e, "cannot read the open-file limit; keeping the default connection cap");
            limits.max_connections
        }
    };
    tracing::info!(
        max_connections = cap,
        header_read_timeout = ?limits.header_read_timeout,
        "HTTP server limits"
    );
    let permits = Arc::new(Semaphore::new(cap));
    let router = router
        .layer(axum::middleware::map_response(json_payload_too_large))
        .layer(RequestBodyTimeoutLayer::new(limits.body_idle_timeout));
    let service = TowerToHyperService::new(router);
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .keep_alive(true);
    let (stop, stopping) = watch::channel(false);
    let mut connections = JoinSet::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (stream, _) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    tracing::warn!(error = %e, "accepting a connection failed");
                    tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
                    continue;
                }
            },
            _ = &mut shutdown => break,
        };
        // Reap the connections that ended, so the set only holds live ones.
        while connections.try_join_next().is_some() {}
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            refuse(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let io = TokioIo::new(Counted {
            stream,
            _permit: permit,
        });
        let connection = http.serve_connection(io, service.clone()).with_upgrades();
        let mut stopping = stopping.clone();
        connections.spawn(async move {
            let mut connection = std::pin::pin!(connection);
            let ended = tokio::select! {
                ended = connection.as_mut() => ended,
                _ = async { stopping.wait_for(|stop| *stop).await.map(|_| ()) } => {
                    // Finish the request in flight, then close (idle connections close at once).
                    connection.as_mut().graceful_shutdown();
                    connection.await
                }
            };
            if let Err(e) = ended {
                // A client that went away or timed out is routine: not worth more than debug.
                tracing::debug!(error = %e, "HTTP connection ended with an error");
            }
        });
    }
    drop(listener);
    let _ = stop.send(true);
    let drained = tokio::time::timeout(DRAIN_TIMEOUT, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!("open HTTP connections did not finish within {DRAIN_TIMEOUT:?}");
        connections.abort_all();
    }
    Ok(())
}

/// Over the cap: a 503 the client can read, then close. Written without waiting (a fresh
/// socket's send buffer is empty), so a flood of refusals never holds a file descriptor.
fn refuse(stream: TcpStream) {
    tracing::warn!("connection refused: the connection cap is reached");
    let _ = stream.try_write(REFUSAL.as_bytes());
    let std_stream = stream.into_std();
    if let Ok(stream) = std_stream {
        let _ = stream.shutdown(std::net::Shutdown::Write);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_refusal_is_a_complete_json_503() {
        let (head, body) = REFUSAL.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("HTTP/1.1 503 "));
        let length: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length: "))
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(length, body.len());
        let json: serde_json::Value = serde_json::from_str(body).unwrap();
        assert!(json["error"].is_string());
    }

    /// Over real sockets: two idle connections fill a cap of two; the third is told so and
    /// closed, and once one leaves a new client is served.
    #[tokio::test]
    async fn a_connection_over_the_cap_gets_a_503_and_is_closed() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let router = axum::Router::new().route("/", axum::routing::get(|| async { "ok" }));
        let limits = ServerLimits {
            max_connections: 2,
            ..ServerLimits::default()
        };
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(serve(listener, router, limits, async {
            let _ = stopped.await;
        }));
        let first = TcpStream::connect(address).await.unwrap();
        let _second = TcpStream::connect(address).await.unwrap();
        let mut third = TcpStream::connect(address).await.unwrap();
        let mut answer = String::new();
        tokio::time::timeout(Duration::from_secs(5), third.read_to_string(&mut answer))
            .await
            .expect("the refusal comes at once")
            .unwrap();
        assert_eq!(answer, REFUSAL);
        drop(first);
        let mut served = String::new();
        for _ in 0..50 {
            let mut client = TcpStream::connect(address).await.unwrap();
            client
                .write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                .await
                .unwrap();
            served.clear();
            let _ = client.read_to_string(&mut served).await;
            if served.starts_with("HTTP/1.1 200") {
                break;
            }
            // The freed place is released when the server notices the close.
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(served.starts_with("HTTP/1.1 200"), "{served}");
        let _ = stop.send(());
        server.await.unwrap().unwrap();
    }

    #[test]
    fn the_cap_leaves_the_reserve_free() {
        let limits = ServerLimits::default();
        assert_eq!(limits.connection_cap(1_048_576), 4096);
        assert_eq!(limits.connection_cap(4096), 4096 - 256);
        // A tiny limit: half for clients, half kept.
        assert_eq!(limits.connection_cap(256), 128);
        assert_eq!(limits.connection_cap(1), 1);
        assert_eq!(limits.connection_cap(0), 1);
    }
}
