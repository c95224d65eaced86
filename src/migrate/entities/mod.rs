//! The legacy rows that are not executions → `entities` documents (pure): organizations,
//! users (with their memberships and roles), roles, forms (with their roles), config,
//! integration and GitHub settings, OAuth connections (both generations) and branding.
//!
//! - `row`: typed reads of one legacy row (shared with the execution mapping), ids, scopes;
//! - `secrets`: what may be a plaintext secret, so it is never copied;
//! - `catalog`: every row kind and its fate, and the queries that read the source;
//! - one module per kind: `organizations`, `users`, `roles`, `forms`, `config`, `oauth`,
//!   `branding`; `document`: what each returns;
//! - `assemble`: the whole source → one document per (scope, id) and the summary's source side;
//! - `summary`: the per-kind summary.

pub mod assemble;
pub mod branding;
pub mod catalog;
pub mod config;
pub mod document;
pub mod forms;
pub mod oauth;
pub mod organizations;
pub mod roles;
pub mod row;
pub mod secrets;
pub mod summary;
pub mod users;

pub use assemble::{map_source, Mapping, Source};
pub use document::EntityDocument;
pub use summary::{EntitySummary, KindTally};
