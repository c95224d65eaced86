//! `migrate`: legacy Azure Table/Blob Storage executions → the document store (any `Store`).
//!
//! - `connection`, `signing` (from `storage_account`): connection strings, SharedKey/SharedKeyLite;
//! - `client`: the small Table/Blob REST reader (paging, backoff);
//! - `log_source`: each execution's `ExecutionLogs` rows, per execution or from a one-pass spool;
//! - `mapping`: legacy rows and blobs → documents (pure);
//! - `plan`: one execution read and compared with the target; `checkpoint`: resumable progress;
//! - `runner`: the paged, parallel run, memberships, metrics backfill, summary; `verify`: the
//!   same walk, comparing only; `scan`: what both share (options, source rows, parallel
//!   planning, memberships); `progress`: bar/lines.

pub mod checkpoint;
pub mod client;
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
