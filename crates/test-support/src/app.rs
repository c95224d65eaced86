//! A server inside the test process, on a loopback port of its own: the test builds its app
//! knowing the address (`bind_loopback`), then hands `InProcess::spawn` the function that serves
//! the listener until a shutdown future completes (serve mode's `App::run` has that shape).
//! Clients reach it over real sockets, as they reach a spawned binary. It stops when dropped.
//!
//! This crate does not depend on bifrost-workers: the library's unit tests use it too, and a
//! dependency back on the library would make `cargo test --lib` build the library twice.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// How long a stopping server gets to finish in-flight work.
const STOP_TIMEOUT: Duration = Duration::from_secs(15);

/// A listener on a free loopback port, and its address.
pub async fn bind_loopback() -> (TcpListener, SocketAddr) {
    let listener = TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
        .await
        .expect("bind a loopback port");
    let address = listener.local_addr().expect("the bound address");
    (listener, address)
}

/// Completes when the server should stop (`InProcess::stop`, or the handle dropped).
pub struct Shutdown(oneshot::Receiver<()>);

impl Future for Shutdown {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        Pin::new(&mut self.0).poll(cx).map(|_| ())
    }
}

/// A server running on the current tokio runtime (use a multi-thread runtime when the test
/// itself blocks on other things while it serves).
pub struct InProcess {
    /// `http://127.0.0.1:PORT`
    pub base: String,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<Result<(), String>>>,
}

impl InProcess {
    /// Serves `listener` with `serve(listener, shutdown)` in a task of its own.
    pub fn spawn<Serving, Error>(
        listener: TcpListener,
        serve: impl FnOnce(TcpListener, Shutdown) -> Serving,
    ) -> InProcess
    where
        Serving: Future<Output = Result<(), Error>> + Send + 'static,
        Error: std::fmt::Display,
    {
        let address = listener.local_addr().expect("the bound address");
        let (stop, stopped) = oneshot::channel();
        let serving = serve(listener, Shutdown(stopped));
        let task = tokio::spawn(async move { serving.await.map_err(|e| e.to_string()) });
        InProcess {
            base: format!("http://{address}"),
            stop: Some(stop),
            task: Some(task),
        }
    }

    /// Asks the server to stop and waits for it (up to `STOP_TIMEOUT`); what it returned.
    pub async fn stop(mut self) -> Result<(), String> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let Some(task) = self.task.take() else {
            return Ok(());
        };
        match tokio::time::timeout(STOP_TIMEOUT, task).await {
            Ok(Ok(result)) => result,
            Ok(Err(join)) => Err(format!("the server task failed: {join}")),
            Err(_) => Err(format!("the server did not stop within {STOP_TIMEOUT:?}")),
        }
    }
}

impl Drop for InProcess {
    fn drop(&mut self) {
        // Not stopped with `stop`: end it at once (a drop cannot wait).
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// Answers every connection with one line until shut down.
    async fn greet(listener: TcpListener, shutdown: Shutdown) -> Result<(), String> {
        tokio::select! {
            _ = shutdown => Ok(()),
            _ = async {
                while let Ok((mut stream, _)) = listener.accept().await {
                    let _ = stream.write_all(b"hello\n").await;
                }
            } => Err("the listener failed".to_owned()),
        }
    }

    #[tokio::test]
    async fn serves_on_its_port_until_stopped() {
        let (listener, address) = bind_loopback().await;
        let server = InProcess::spawn(listener, greet);
        assert_eq!(server.base, format!("http://{address}"));
        let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
        let mut line = String::new();
        stream.read_to_string(&mut line).await.unwrap();
        assert_eq!(line, "hello\n");
        assert_eq!(server.stop().await, Ok(()));
    }

    #[tokio::test]
    async fn a_failing_server_reports_why_on_stop() {
        let (listener, _) = bind_loopback().await;
        let server = InProcess::spawn(listener, |_, _| async { Err::<(), _>("no store") });
        assert_eq!(server.stop().await, Err("no store".to_owned()));
    }
}
