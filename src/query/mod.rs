//! The execution query API for the React UI: HTTP functions served the same by the Functions
//! host (`handler`) and by `serve`. Parsing (`params`) is kept apart from the handlers that read
//! the store (`executions`, `execution_data`); who may read what is `runtime::auth`, the row
//! shapes are `model::rows`.

pub mod execution_data;
pub mod executions;
pub mod params;

#[cfg(test)]
mod fuzz;

pub use execution_data::{GetExecutionLogs, GetExecutionResult, GetExecutionVariables};
pub use executions::{GetExecution, ListExecutions, QueryExecutions};
