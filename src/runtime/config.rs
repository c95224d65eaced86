//! Configuration: every setting the binary reads, in one list (the source of
//! `local.settings.json.example` and the README table), and the typed, validated runtime config.

use std::sync::Arc;

use crate::clock::{Clock, SystemClock};
use crate::runtime::AppContext;

use crate::realtime::{MessageSink, SinkTarget};
use crate::store::StoreUrl;

#[derive(Debug, Clone, Copy)]
pub struct Setting {
    pub name: &'static str,
    pub description: &'static str,
    pub example: &'static str,
    /// Whether it belongs in `local.settings.json` (the host sets some itself).
    pub in_local_settings: bool,
}

pub const STORE_ENV: &str = "BIFROST_STORE";
pub const DATA_ENV: &str = "BIFROST_DATA";
pub const SIGNALR_ENV: &str = "BIFROST_SIGNALR";
/// The Azure app setting name the SignalR bindings and tooling use.
pub const SIGNALR_CONNECTION_ENV: &str = "AzureSignalRConnectionString";
pub const PORT_ENV: &str = "FUNCTIONS_CUSTOMHANDLER_PORT";
/// Tokio's own setting, which the runtime builder reads.
pub const WORKER_THREADS_ENV: &str = "TOKIO_WORKER_THREADS";

pub const SETTINGS: &[Setting] = &[
    Setting {
        name: "FUNCTIONS_WORKER_RUNTIME",
        description: "Must be `custom` for a custom handler.",
        example: "custom",
        in_local_settings: true,
    },
    Setting {
        name: "AzureWebJobsStorage",
        description: "Storage for the host (timer locks, keys).",
        example: "UseDevelopmentStorage=true",
        in_local_settings: true,
    },
    Setting {
        name: "CosmosDbConnection",
        description: "Cosmos DB connection used by the change-feed triggers (or the `CosmosDbConnection__accountEndpoint` identity form).",
        example: "AccountEndpoint=https://<account>.documents.azure.com:443/;AccountKey=<key>;",
        in_local_settings: true,
    },
    Setting {
        name: STORE_ENV,
        description: "Store the functions read and write: `sqlite:PATH` (default `sqlite:$BIFROST_DATA/bifrost.db`), or Cosmos DB: `cosmos://ACCOUNT.documents.azure.com/?identity=managed`, `cosmos://…/?key=KEY` or an `AccountEndpoint=…;AccountKey=…;` connection string.",
        example: "sqlite:data/bifrost.db",
        in_local_settings: true,
    },
    Setting {
        name: DATA_ENV,
        description: "Directory for the embedded store when `BIFROST_STORE` is not set (default `data`).",
        example: "data",
        in_local_settings: true,
    },
    Setting {
        name: crate::blobs::BLOBS_ENV,
        description: "Where results over 2 MB are read from: `dir:PATH` (default `dir:$BIFROST_DATA/blobs`), `azblob:<storage connection string>`, or `azblob:https://ACCOUNT.blob.core.windows.net` (managed identity).",
        example: "dir:data/blobs",
        in_local_settings: true,
    },
    Setting {
        name: SIGNALR_ENV,
        description: "Where real-time messages go: a SignalR connection string, `hub` (serve mode's built-in hub, its default), `none`, `console` or `journal:PATH` (JSON lines). Overrides `AzureSignalRConnectionString`.",
        example: "none",
        // An override for local runs and tests: deployments set the connection string instead.
        in_local_settings: false,
    },
    Setting {
        name: SIGNALR_CONNECTION_ENV,
        description: "Azure SignalR Service (serverless) connection string `Endpoint=https://<name>.service.signalr.net;AccessKey=<key>;Version=1.0;`: real-time messages and `/api/negotiate` use it.",
        example: "Endpoint=https://<name>.service.signalr.net;AccessKey=<key>;Version=1.0;",
        in_local_settings: true,
    },
    Setting {
        name: WORKER_THREADS_ENV,
        description: "Tokio's number of worker threads (default: one per core, and one in `handler` mode, where the host posts a partition's batches one at a time).",
        example: "1",
        // The defaults fit; a setting for whoever measures otherwise.
        in_local_settings: false,
    },
    Setting {
        name: "RUST_LOG",
        description: "Log filter (tracing EnvFilter syntax), default `info`.",
        example: "info",
        in_local_settings: true,
    },
    Setting {
        name: PORT_ENV,
        description: "Port of `handler` mode; set by the Functions host (default 8080).",
        example: "8080",
        in_local_settings: false,
    },
];

/// Where the store lives: an explicit `--store` URL, or the SQLite file under `--data`.
pub fn store_url(explicit: Option<&StoreUrl>, data_dir: &std::path::Path) -> StoreUrl {
    explicit
        .cloned()
        .unwrap_or_else(|| StoreUrl::Sqlite(data_dir.join("bifrost.db")))
}

/// Which real-time target applies: `--signalr`/`BIFROST_SIGNALR`, else the SignalR connection
/// string setting, else the mode's default.
/// Errors name the setting and what is wrong, never the value (it may hold an access key).
pub fn realtime_target(
    explicit: Option<&str>,
    connection_string: Option<&str>,
    default: SinkTarget,
) -> anyhow::Result<SinkTarget> {
    if let Some(raw) = explicit {
        return raw
            .parse()
            .map_err(|e| anyhow::anyhow!("--signalr / {SIGNALR_ENV}: {e}"));
    }
    match connection_string.filter(|raw| !raw.trim().is_empty()) {
        Some(raw) => raw
            .parse::<crate::realtime::ConnectionString>()
            .map(SinkTarget::SignalR)
            .map_err(|e| {
                anyhow::anyhow!("--signalr-connection-string / {SIGNALR_CONNECTION_ENV}: {e}")
            }),
        None => Ok(default),
    }
}

/// The validated settings of a long-running mode (`handler` or `serve`).
#[derive(Debug, Clone)]
pub struct RuntimeConfig {
    pub store: StoreUrl,
    pub blobs: crate::blobs::BlobLocation,
    pub realtime: SinkTarget,
}

impl RuntimeConfig {
    /// Opens what the functions need (store, real-time sink) on the system clock.
    pub async fn open_context(&self, mode: &'static str) -> anyhow::Result<AppContext> {
        self.open_context_with_sink(mode, None).await
    }

    /// `open_context`, delivering to `sink` instead of opening `realtime` when one is given: a
    /// sink only an adapter can make (serve's in-process hub sink) still gets the context's
    /// health observation.
    pub async fn open_context_with_sink(
        &self,
        mode: &'static str,
        sink: Option<Arc<dyn MessageSink>>,
    ) -> anyhow::Result<AppContext> {
        use anyhow::Context;
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        let store = crate::store::open(&self.store, clock.clone())
            .await
            .with_context(|| format!("opening store {}", self.store))?;
        // Debug builds only, for the fault-injection tests.
        let store = crate::store::faults::maybe_inject(store);
        let sink = match sink {
            Some(sink) => sink,
            None => crate::realtime::open(&self.realtime)
                .await
                .context("opening the real-time sink")?,
        };
        let blobs = self
            .blobs
            .open()
            .with_context(|| format!("opening blob storage {}", self.blobs))?;
        Ok(AppContext::new(store, blobs, sink, clock, mode))
    }
}
