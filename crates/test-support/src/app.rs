//! Serve mode inside the test process: the library's composition root
//! (`serve::App::build`, then `App::run` on a listener of the test's own) on a loopback port,
//! with the built-in SignalR hub, so a test reaches it over real sockets like the spawned binary
//! and can also use its context (the store) directly. Stops when dropped.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use bifrost_workers::blobs::BlobLocation;
use bifrost_workers::realtime::SinkTarget;
use bifrost_workers::runtime::config::{store_url, RuntimeConfig};
use bifrost_workers::runtime::AppContext;
use bifrost_workers::serve::{App, ServeOptions};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// How long a stopping app gets to finish in-flight work.
const STOP_TIMEOUT: Duration = Duration::from_secs(15);

/// A serve-mode app running on the current tokio runtime (use a multi-thread runtime: the test
/// itself blocks on other things while the app serves).
pub struct InProcessApp {
    /// `http://127.0.0.1:PORT`
    pub base: String,
    /// What its functions share: the store, the sink, the clock.
    pub ctx: AppContext,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<anyhow::Result<()>>>,
}

impl InProcessApp {
    /// Like `serve --data DATA`: the SQLite store and blobs under `data`, the built-in hub.
    pub async fn standalone(data: &Path) -> InProcessApp {
        let config = RuntimeConfig {
            store: store_url(None, data),
            blobs: BlobLocation::Dir(data.join("blobs")),
            realtime: SinkTarget::BuiltInHub,
        };
        InProcessApp::start(config)
            .await
            .unwrap_or_else(|e| panic!("starting serve in process: {e:#}"))
    }

    /// Builds the app on `config`, binds a loopback port and starts serving.
    pub async fn start(config: RuntimeConfig) -> anyhow::Result<InProcessApp> {
        let listener = TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await?;
        let address = listener.local_addr()?;
        let options = ServeOptions {
            listen: address,
            config,
            demo: None,
        };
        let app = App::build(options, address).await?;
        let ctx = app.ctx.clone();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(app.run(listener, async move {
            let _ = stopped.await;
        }));
        Ok(InProcessApp {
            base: format!("http://{address}"),
            ctx,
            stop: Some(stop),
            task: Some(task),
        })
    }

    /// Asks the app to stop and waits for it, up to `STOP_TIMEOUT`; its result.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let Some(task) = self.task.take() else {
            return Ok(());
        };
        match tokio::time::timeout(STOP_TIMEOUT, task).await {
            Ok(joined) => joined?,
            Err(_) => anyhow::bail!("serve did not stop within {STOP_TIMEOUT:?}"),
        }
    }
}

impl Drop for InProcessApp {
    fn drop(&mut self) {
        // Not stopped with `stop`: end it at once (a drop cannot wait for it).
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}
