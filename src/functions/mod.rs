//! The functions themselves: pure logic over a `Store` and a `MessageSink`, with no knowledge of
//! whether the Functions host or `serve` invoked them.

pub mod execution_updates;
pub mod health;
pub mod log_stream;
pub mod subscribe;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use serde::Serialize;
use serde_json::Value;

use crate::clock::Clock;
use crate::host::protocol::{HttpRequest, HttpResponse, TimerInfo};
use crate::model::Timestamp;
use crate::realtime::{MessageSink, SinkError};
use crate::store::{Store, StoreError};

/// The common end of the change-feed → SignalR functions: warn about documents that could not be
/// read (not fatal: they stay in the store and the query API serves them), send the messages
/// (a failure fails the batch, so it is retried), and summarize for the host log.
pub async fn publish(
    ctx: &AppContext,
    function: &str,
    documents: usize,
    (messages, skipped): (Vec<crate::realtime::HubMessage>, Vec<String>),
) -> Result<Vec<String>, FunctionError> {
    for reason in &skipped {
        tracing::warn!(function, %reason, "skipped an unreadable document");
    }
    ctx.sink.send(&messages).await?;
    let mut logs = vec![format!(
        "{function}: {documents} documents, {} messages",
        messages.len()
    )];
    logs.extend(
        skipped
            .into_iter()
            .map(|r| format!("{function} skipped {r}")),
    );
    Ok(logs)
}

/// What every function may use.
#[derive(Debug, Clone)]
pub struct AppContext {
    pub store: Arc<dyn Store>,
    pub blobs: Arc<dyn crate::blobs::BlobStore>,
    pub sink: Arc<dyn MessageSink>,
    pub clock: Arc<dyn Clock>,
    pub status: Arc<RuntimeStatus>,
}

impl AppContext {
    /// A context on the given store and clock, with blobs under `blob_dir` and real-time
    /// messages going to `sink`.
    pub fn new(
        store: Arc<dyn Store>,
        blobs: Arc<dyn crate::blobs::BlobStore>,
        sink: Arc<dyn MessageSink>,
        clock: Arc<dyn Clock>,
        mode: &'static str,
    ) -> Self {
        let status = Arc::new(RuntimeStatus::new(mode, clock.now()));
        AppContext {
            store,
            blobs,
            sink,
            clock,
            status,
        }
    }

    /// In-process tests and benches: a store on `clock`, blobs under `dir/blobs`, no real-time.
    pub fn standalone(store: Arc<dyn Store>, clock: Arc<dyn Clock>, dir: &std::path::Path) -> Self {
        Self::new(
            store,
            Arc::new(crate::blobs::DirBlobs::new(dir.join("blobs"))),
            Arc::new(crate::realtime::NullSink),
            clock,
            "standalone",
        )
    }
}

#[derive(Debug, thiserror::Error)]
pub enum FunctionError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Sink(#[from] SinkError),
}

/// A change-feed function: gets a batch, returns log lines for the host.
#[async_trait]
pub trait BatchHandler: Send + Sync {
    async fn handle(
        &self,
        ctx: &AppContext,
        documents: &[Value],
    ) -> Result<Vec<String>, FunctionError>;
}

#[async_trait]
pub trait TimerHandler: Send + Sync {
    async fn handle(
        &self,
        ctx: &AppContext,
        timer: TimerInfo,
    ) -> Result<Vec<String>, FunctionError>;
}

/// An HTTP function always answers: errors are responses (`{"error": …}` with a status).
#[async_trait]
pub trait HttpHandler: Send + Sync {
    async fn handle(&self, ctx: &AppContext, request: HttpRequest) -> HttpResponse;
}

#[derive(Clone)]
pub enum Handler {
    Batch(Arc<dyn BatchHandler>),
    Timer(Arc<dyn TimerHandler>),
    Http(Arc<dyn HttpHandler>),
}

impl std::fmt::Debug for Handler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Handler::Batch(_) => "Handler::Batch",
            Handler::Timer(_) => "Handler::Timer",
            Handler::Http(_) => "Handler::Http",
        })
    }
}

/// Live state of the process, for `GET /api/health`.
#[derive(Debug)]
pub struct RuntimeStatus {
    pub mode: &'static str,
    pub started_at: Timestamp,
    pumps: Mutex<BTreeMap<String, PumpStatus>>,
}

/// Progress of one serve-mode change-feed pump.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PumpStatus {
    pub container: String,
    pub continuation: Option<String>,
    pub batches: u64,
    pub documents: u64,
    pub dead_lettered_batches: u64,
    pub failed_attempts: u64,
    pub last_error: Option<String>,
    pub last_batch_at: Option<Timestamp>,
    pub last_batch_size: Option<u64>,
    /// Seconds between the newest document's write (`_ts`) and the processing of its batch.
    pub lag_seconds: Option<i64>,
}

impl RuntimeStatus {
    pub fn new(mode: &'static str, started_at: Timestamp) -> Self {
        RuntimeStatus {
            mode,
            started_at,
            pumps: Mutex::new(BTreeMap::new()),
        }
    }

    pub fn update_pump(&self, function: &str, update: impl FnOnce(&mut PumpStatus)) {
        let mut pumps = self.pumps.lock().unwrap_or_else(|p| p.into_inner());
        update(pumps.entry(function.to_owned()).or_default());
    }

    pub fn pumps(&self) -> BTreeMap<String, PumpStatus> {
        self.pumps.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}
