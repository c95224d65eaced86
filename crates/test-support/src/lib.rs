//! What bifrost-workers' tests and benches share, in one place (a workspace dev-dependency, never
//! part of the shipped binary).
//!
//! - `cosmos_emulator`: a Cosmos DB-compatible HTTP server on a real socket.

pub mod cosmos_emulator;
