//! `migrate`: legacy Azure Table/Blob Storage → the document store (any `Store`): executions
//! with their logs, results and variables, and every other legacy record (organizations,
//! users, roles, forms, config, OAuth connections, branding).
//!
//! - `connection`, `signing` (from `storage_account`): connection strings, SharedKey/SharedKeyLite;
//! - `client`: the small Table/Blob REST reader (paging, backoff);
//! - `log_source`: each execution's `ExecutionLogs` rows, per execution or from a one-pass spool;
//! - `mapping`: execution rows and blobs → documents (pure);
//! - `entities`: the other rows → entity documents (pure, one module per kind);
//! - `plan`: one execution read and compared with the target; `entity_plan`: the same for the
//!   entity documents; `checkpoint`: resumable progress;
//! - `runner`: the paged, parallel run, the entities, metrics backfill, summary; `verify`: the
//!   same walk, comparing only; `scan`: what both share (options, source rows, parallel
//!   planning); `progress`: bar/lines.

pub mod checkpoint;
pub mod client;
pub mod entities;
pub mod entity_plan;
pub mod log_source;
pub mod mapping;
pub mod plan;
pub mod progress;
pub mod runner;
pub mod scan;
pub mod verify;

// The account plumbing is shared with the Azure blob store.
pub use crate::storage_account::{connection, signing};

pub use client::StorageClient;
pub use connection::StorageAccount;
pub use runner::{migrate, Summary};
pub use scan::MigrateOptions;
pub use verify::{verify, VerifyReport};
