//! What every function may use (`AppContext`), and the live state of the process that
//! `GET /api/health` reports (`RuntimeStatus`).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use serde::Serialize;

use crate::blobs::BlobStore;
use crate::clock::Clock;
use crate::model::Timestamp;
use crate::realtime::MessageSink;
use crate::store::Store;

/// What every function may use.
#[derive(Debug, Clone)]
pub struct AppContext {
    pub store: Arc<dyn Store>,
    pub blobs: Arc<dyn BlobStore>,
    pub sink: Arc<dyn MessageSink>,
    pub clock: Arc<dyn Clock>,
    pub status: Arc<RuntimeStatus>,
}

impl AppContext {
    /// A context on the given store and clock, with blobs under `blob_dir` and real-time
    /// messages going to `sink`.
    pub fn new(
        store: Arc<dyn Store>,
        blobs: Arc<dyn BlobStore>,
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

/// Live state of the process, for `GET /api/health`.
#[derive(Debug)]
pub struct RuntimeStatus {
    pub mode: &'static str,
    pub started_at: Timestamp,
    pumps: Mutex<BTreeMap<String, PumpStatus>>,
}

/// Progress of one change-feed function's deliveries.
#[derive(Debug, Clone, Default, Serialize, schemars::JsonSchema)]
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
