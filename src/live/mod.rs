//! The live stream: change feeds → SignalR messages (`LogStream` for `execution_data`,
//! `ExecutionUpdates` for `executions`), and the HTTP functions a client uses to join it
//! (`Negotiate`, `SubscribeExecution`, `SubscribeHistory`).
//!
//! Who sees what is the query API's rule, enforced by groups (`realtime::groups`): members and
//! admins of an execution are in different groups and get different messages, so nothing
//! depends on the client.

pub mod execution_updates;
pub mod log_stream;
pub mod subscribe;

pub use execution_updates::ExecutionUpdates;
pub use log_stream::LogStream;
pub use subscribe::{Negotiate, SubscribeExecution, SubscribeHistory};

use crate::realtime::HubMessage;
use crate::runtime::{AppContext, FunctionError};

/// The common end of the change-feed → SignalR functions: warn about documents that could not be
/// read (not fatal: they stay in the store and the query API serves them), send the messages
/// (a failure fails the batch, so it is retried), and summarize for the host log.
pub async fn publish(
    ctx: &AppContext,
    function: &str,
    documents: usize,
    (messages, skipped): (Vec<HubMessage>, Vec<String>),
) -> Result<Vec<String>, FunctionError> {
    for reason in &skipped {
        tracing::warn!(function, %reason, "skipped an unreadable document");
    }
    ctx.sink.send(&messages).await?;
    let mut logs = vec![format!(
        "{function}: {documents} documents, {} messages",
        messages.len()
    )];
    logs.extend(
        skipped
            .into_iter()
            .map(|r| format!("{function} skipped {r}")),
    );
    Ok(logs)
}
