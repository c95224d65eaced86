//! What a function is, in both modes: its declaration (name, trigger, retry policy) and its code
//! (one of three handler traits over an `AppContext`). The list of every function is
//! `crate::registry`; the adapters derive function.json files, host routes and pumps from it.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use super::batch::{Batch, UnreadableBatch};
use super::context::AppContext;
use super::http::{HttpRequest, HttpResponse, TimerInfo};
use super::operation::Operation;
use crate::realtime::SinkError;
use crate::store::{Container, StoreError};

/// App setting holding the Cosmos DB connection (string, or `__accountEndpoint` identity prefix).
pub const COSMOS_CONNECTION_SETTING: &str = "CosmosDbConnection";
pub const COSMOS_DATABASE: &str = "bifrost";
pub const LEASE_CONTAINER: &str = "leases";

#[derive(Debug, Clone)]
pub struct FunctionSpec {
    pub name: &'static str,
    pub trigger: Trigger,
    pub retry: Option<RetryPolicy>,
    pub handler: Handler,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Trigger {
    CosmosDb(CosmosTrigger),
    Timer(TimerTrigger),
    Http(HttpTrigger),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CosmosTrigger {
    /// The `Data` key of the batch.
    pub binding: &'static str,
    pub container: Container,
    /// The host polls again only this long after draining the feed (default 5 s, far too slow
    /// for live logs).
    pub feed_poll_delay_ms: u32,
    pub max_items_per_invocation: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimerTrigger {
    pub binding: &'static str,
    /// NCRONTAB with seconds: `{second} {minute} {hour} {day} {month} {day-of-week}`, UTC.
    pub schedule: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpTrigger {
    pub binding: &'static str,
    /// Route under `/api`, with `{param}` segments (the same syntax for the host and axum).
    pub route: &'static str,
    pub methods: &'static [&'static str],
}

/// Function-level retry (`exponentialBackoff`). The Cosmos trigger only redelivers a failed
/// batch when this is set; otherwise it checkpoints past it.
///
/// Not a `crate::retry::Backoff`, on purpose: this is a declaration the Functions host carries
/// out (serve's pump only mirrors it), so it has exactly the host's fields. `maxRetryCount`
/// counts retries, not attempts; intervals are whole `hh:mm:ss` timespans; and the host has no
/// jitter and no `Retry-After`, which a `Backoff` could hold but function.json could not say.
/// The waits are the same doubling rule (`crate::retry::exponential`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    pub max_retry_count: u32,
    pub minimum_interval: Duration,
    pub maximum_interval: Duration,
}

impl RetryPolicy {
    /// Delay before retry number `retry` (1-based), as the host computes it: doubling from the
    /// minimum, capped at the maximum.
    pub fn delay_before(&self, retry: u32) -> Duration {
        crate::retry::exponential(self.minimum_interval, self.maximum_interval, retry)
    }
}

/// Retry for change-feed functions: ~1+2+4+8+16 s of retries pauses the partition for at most
/// half a minute before the batch is dead-lettered.
pub const CHANGE_FEED_RETRY: RetryPolicy = RetryPolicy {
    max_retry_count: 5,
    minimum_interval: Duration::from_secs(1),
    maximum_interval: Duration::from_secs(16),
};

#[derive(Debug, thiserror::Error)]
pub enum FunctionError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Sink(#[from] SinkError),
    /// A document is not JSON: no attempt can read it, so the batch is dead-lettered at once.
    #[error(transparent)]
    Unreadable(#[from] UnreadableBatch),
}

/// A change-feed function: gets a batch of documents as JSON text (decoding each once into its
/// own view, `Batch::decode`), returns log lines for the host.
#[async_trait]
pub trait BatchHandler: Send + Sync {
    async fn handle(
        &self,
        ctx: &AppContext,
        batch: &Batch<'_>,
    ) -> Result<Vec<String>, FunctionError>;
}

#[async_trait]
pub trait TimerHandler: Send + Sync {
    async fn handle(
        &self,
        ctx: &AppContext,
        timer: TimerInfo,
    ) -> Result<Vec<String>, FunctionError>;
}

/// An HTTP function always answers: errors are responses (`{"error": …}` with a status).
#[async_trait]
pub trait HttpHandler: Send + Sync {
    async fn handle(&self, ctx: &AppContext, request: HttpRequest) -> HttpResponse;

    /// What it takes and answers, for the OpenAPI document: every status `handle` can give, with
    /// the type of its body. Required, so no route exists undescribed.
    fn operation(&self) -> Operation;
}

#[derive(Clone)]
pub enum Handler {
    Batch(Arc<dyn BatchHandler>),
    Timer(Arc<dyn TimerHandler>),
    Http(Arc<dyn HttpHandler>),
}

impl std::fmt::Debug for Handler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Handler::Batch(_) => "Handler::Batch",
            Handler::Timer(_) => "Handler::Timer",
            Handler::Http(_) => "Handler::Http",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_caps() {
        let p = CHANGE_FEED_RETRY;
        assert_eq!(p.delay_before(1), Duration::from_secs(1));
        assert_eq!(p.delay_before(3), Duration::from_secs(4));
        assert_eq!(p.delay_before(10), Duration::from_secs(16));
    }
}
