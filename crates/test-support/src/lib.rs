//! What bifrost-workers' tests and benches share, in one place (a workspace dev-dependency, never
//! part of the shipped binary). It does not depend on the library, so the library's own unit
//! tests can use it without building the library a second time:
//!
//! - `process`: the real binary as a child process (`serve`, `handler`, one-shot commands) with
//!   bounded waits, killed on drop; `binary!()` names the one cargo built.
//! - `app`: a server in the test process (serve mode's `App`), on a loopback port of its own.
//! - `principal`: the `X-MS-CLIENT-PRINCIPAL` header of a member or an administrator.
//! - `ports`: free loopback ports.
//! - `cosmos_emulator`: a Cosmos DB-compatible HTTP server on a real socket.
//! - `azurite`: the legacy Table/Blob account (Azurite) and its seeding script.
//! - `signalr`: the official `@microsoft/signalr` client for Node and browsers.
//! - `npm`, `python`: pinned packages installed once under the target directory.
//! - `tools`: what a test does without a tool (`require`: fail under CI, skip elsewhere) and
//!   the system programs `.ci/run` installs.
//! - `bench`: the benchmarks' report sections and quantiles.
//! - `paths`: the repository and the tools directory.

pub mod app;
pub mod azurite;
pub mod bench;
pub mod cosmos_emulator;
pub mod npm;
pub mod paths;
pub mod ports;
pub mod principal;
pub mod process;
pub mod procfs;
pub mod python;
pub mod signalr;
pub mod tools;
