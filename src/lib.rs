//! bifrost-workers: Bifrost's execution data workers, one library driven either by the Azure
//! Functions host (`handler`, a custom handler) or by its own runtime (`serve`).
//!
//! Dependencies run one way, top to bottom (docs/architecture.md; `tests/layers.rs` checks it):
//!
//! - adapters: `cli`, `handler`, `serve`, `deploy`; nothing imports them;
//! - `registry`: the one index of every function;
//! - features: `live`, `metrics`, `query`, `migrate`, `ops`, `simulate`;
//! - runtime core: `runtime`;
//! - store: `store`, `blobs`, `storage_account`, `realtime` (the services the functions talk to);
//! - model: `model`, `clock`, `retry`.

pub mod blobs;
pub mod cli;
pub mod clock;
pub mod deploy;
pub mod handler;
pub mod live;
pub mod metrics;
pub mod migrate;
pub mod model;
pub mod ops;
pub mod query;
pub mod realtime;
pub mod registry;
pub mod retry;
pub mod runtime;
pub mod serve;
pub mod simulate;
pub mod storage_account;
pub mod store;
