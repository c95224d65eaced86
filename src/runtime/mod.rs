//! The runtime core: what both run modes share and no feature owns. The request and response
//! types of HTTP functions, what a function is (`function`) and what an HTTP function answers
//! (`operation`, gathered into the OpenAPI document by `openapi`), the context it runs in,
//! invocation of a change-feed batch with retry and dead-letter, the caller's identity and scope
//! (`auth`), settings (`config`), the HTTP server both adapters run on (`server`) and shutdown.
//! It imports the store and model layers, never a feature or an adapter.

pub mod auth;
pub mod batch;
pub mod config;
pub mod context;
pub mod deadletter;
pub mod function;
pub mod http;
pub mod invoke;
pub mod memory;
pub mod observed;
pub mod openapi;
pub mod operation;
pub mod server;
pub mod shutdown;
pub mod status;

pub use batch::{Batch, BatchSummary, Decoded, Delivered, DocumentFacts, Skipped};
pub use context::AppContext;
pub use function::{BatchHandler, FunctionError, FunctionSpec, Handler, HttpHandler, TimerHandler};
pub use http::{respond, ApiError, ErrorBody, HttpRequest, HttpResponse, TimerInfo};
pub use operation::{Operation, Parameter};
pub use status::{Dependency, Failing, FailureKind, PumpStatus, RuntimeStatus};
