//! What every function may use (`AppContext`): the store and the real-time sink (both observed,
//! so health knows when they fail), blobs, the clock and the process status.

use std::sync::Arc;

use super::observed::{observed_store, ObservedSink};
use super::status::RuntimeStatus;
use crate::blobs::BlobStore;
use crate::clock::Clock;
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
    /// messages going to `sink`. Every store and sink call's outcome is recorded in `status`.
    pub fn new(
        store: Arc<dyn Store>,
        blobs: Arc<dyn BlobStore>,
        sink: Arc<dyn MessageSink>,
        clock: Arc<dyn Clock>,
        mode: &'static str,
    ) -> Self {
        let status = Arc::new(RuntimeStatus::new(mode, clock.now()));
        AppContext {
            store: observed_store(store, status.clone(), clock.clone()),
            blobs,
            sink: Arc::new(ObservedSink::new(sink, status.clone(), clock.clone())),
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
