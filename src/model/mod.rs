//! Pure types: documents, scope, status, timestamps. No I/O here.

mod documents;
mod entities;
mod raw;
pub mod rows;
mod scope;
mod status;
mod time;

pub use documents::*;
pub use entities::*;
pub use raw::{is_syntax_error, JsonString, RawDocument};
pub use scope::{Scope, ScopeError};
pub use status::{ExecutionStatus, StatusError};
pub use time::{Timestamp, TimestampError};
