//! Operations: what a running system tells about itself: its health (`GET /api/health`) and its
//! API (`GET /api/openapi.json`).

pub mod api_document;
pub mod health;

pub use api_document::ApiDocument;
pub use health::Health;
