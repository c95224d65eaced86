//! Operations: what an operator asks of a running system (`GET /api/health`).

pub mod health;

pub use health::Health;
