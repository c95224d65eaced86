//! bifrost-workers: Bifrost's execution data workers. One library, driven either by the Azure
//! Functions host (custom handler, `host`) or by its own runtime (`serve`).

pub mod api;
pub mod blobs;
pub mod cli;
pub mod clock;
pub mod config;
pub mod deadletter;
pub mod functions;
pub mod host;
pub mod metrics;
pub mod migrate;
pub mod model;
pub mod package;
pub mod realtime;
pub mod serve;
pub mod simulate;
pub mod storage_account;
pub mod store;
pub mod telemetry;
