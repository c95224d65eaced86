//! Every function, declared once: name, trigger, bindings, retry policy and code. function.json
//! files, host routes and serve-mode pumps are all derived from this list.

use std::sync::Arc;
use std::time::Duration;

use crate::api::execution_data::{GetExecutionLogs, GetExecutionResult, GetExecutionVariables};
use crate::api::executions::{GetExecution, ListExecutions, QueryExecutions};
use crate::api::metrics::{GetDailyMetrics, GetMetrics};
use crate::functions::execution_updates::ExecutionUpdates;
use crate::functions::subscribe::{Negotiate, SubscribeExecution, SubscribeHistory};
use crate::functions::{health::Health, log_stream::LogStream, Handler, HttpHandler};
use crate::metrics::{aggregate::MetricsAggregate, rollup::DailyRollup};
use crate::store::Container;

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
        let factor = 2u32.saturating_pow(retry.saturating_sub(1));
        self.minimum_interval
            .saturating_mul(factor)
            .min(self.maximum_interval)
    }
}

/// Retry for change-feed functions: ~1+2+4+8+16 s of retries pauses the partition for at most
/// half a minute before the batch is dead-lettered.
pub const CHANGE_FEED_RETRY: RetryPolicy = RetryPolicy {
    max_retry_count: 5,
    minimum_interval: Duration::from_secs(1),
    maximum_interval: Duration::from_secs(16),
};

pub fn registry() -> Vec<FunctionSpec> {
    vec![
        FunctionSpec {
            name: "LogStream",
            trigger: Trigger::CosmosDb(CosmosTrigger {
                binding: "documents",
                container: Container::ExecutionData,
                // Live logs: the idle poll wait is most of the write→screen latency (target
                // p99 < 100 ms), so 50 ms; ~$13/month per lease of idle polling (README).
                feed_poll_delay_ms: 50,
                // Bounds one invocation's work and its messages (one per execution per batch).
                max_items_per_invocation: 500,
            }),
            retry: Some(CHANGE_FEED_RETRY),
            handler: Handler::Batch(Arc::new(LogStream)),
        },
        FunctionSpec {
            name: "ExecutionUpdates",
            trigger: Trigger::CosmosDb(CosmosTrigger {
                binding: "documents",
                container: Container::Executions,
                // Status rows can lag a little more than logs; a tenth of the idle RU cost.
                feed_poll_delay_ms: 500,
                max_items_per_invocation: 100,
            }),
            retry: Some(CHANGE_FEED_RETRY),
            handler: Handler::Batch(Arc::new(ExecutionUpdates)),
        },
        FunctionSpec {
            name: "MetricsAggregate",
            trigger: Trigger::CosmosDb(CosmosTrigger {
                binding: "documents",
                container: Container::Executions,
                // Metrics are not latency-critical: the default-ish 1 s poll halves idle RUs.
                feed_poll_delay_ms: 1000,
                max_items_per_invocation: 500,
            }),
            retry: Some(CHANGE_FEED_RETRY),
            handler: Handler::Batch(Arc::new(MetricsAggregate)),
        },
        FunctionSpec {
            name: "DailyRollup",
            trigger: Trigger::Timer(TimerTrigger {
                binding: "rollupTimer",
                schedule: crate::metrics::rollup::SCHEDULE,
            }),
            retry: None,
            handler: Handler::Timer(Arc::new(DailyRollup)),
        },
        FunctionSpec {
            name: "Health",
            trigger: Trigger::Http(HttpTrigger {
                binding: "req",
                route: "health",
                methods: &["get"],
            }),
            retry: None,
            handler: Handler::Http(Arc::new(Health)),
        },
        http("ListExecutions", "executions", &["get"], ListExecutions),
        http("Negotiate", "negotiate", &["post"], Negotiate),
        http(
            "SubscribeExecution",
            "executions/{id}/subscribe",
            &["post"],
            SubscribeExecution,
        ),
        http(
            "SubscribeHistory",
            "history/subscribe",
            &["post"],
            SubscribeHistory,
        ),
        http(
            "QueryExecutions",
            "executions/query",
            &["post"],
            QueryExecutions,
        ),
        http("GetExecution", "executions/{id}", &["get"], GetExecution),
        http(
            "GetExecutionLogs",
            "executions/{id}/logs",
            &["get"],
            GetExecutionLogs,
        ),
        http(
            "GetExecutionVariables",
            "executions/{id}/variables",
            &["get"],
            GetExecutionVariables,
        ),
        http(
            "GetExecutionResult",
            "executions/{id}/result",
            &["get"],
            GetExecutionResult,
        ),
        http("GetMetrics", "metrics", &["get"], GetMetrics),
        http(
            "GetDailyMetrics",
            "metrics/daily",
            &["get"],
            GetDailyMetrics,
        ),
    ]
}

/// An HTTP function with the request bound as `req` (payload mode).
fn http(
    name: &'static str,
    route: &'static str,
    methods: &'static [&'static str],
    handler: impl HttpHandler + 'static,
) -> FunctionSpec {
    FunctionSpec {
        name,
        trigger: Trigger::Http(HttpTrigger {
            binding: "req",
            route,
            methods,
        }),
        retry: None,
        handler: Handler::Http(Arc::new(handler)),
    }
}

pub fn find<'a>(functions: &'a [FunctionSpec], name: &str) -> Option<&'a FunctionSpec> {
    functions.iter().find(|f| f.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_valid_function_folder_names_and_unique() {
        let functions = registry();
        let mut names: Vec<_> = functions
            .iter()
            .map(|f| f.name.to_ascii_lowercase())
            .collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), functions.len());
        for f in &functions {
            let mut chars = f.name.chars();
            assert!(chars.next().is_some_and(|c| c.is_ascii_alphabetic()));
            assert!(chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-'));
            assert!(f.name.len() <= 128 && !f.name.eq_ignore_ascii_case("host"));
        }
    }

    #[test]
    fn every_change_feed_function_has_a_finite_retry_policy() {
        for f in registry() {
            if matches!(f.trigger, Trigger::CosmosDb(_)) {
                let retry = f
                    .retry
                    .expect("cosmos functions need retry, or batches are lost");
                assert!(retry.max_retry_count > 0);
            }
        }
    }

    #[test]
    fn backoff_doubles_and_caps() {
        let p = CHANGE_FEED_RETRY;
        assert_eq!(p.delay_before(1), Duration::from_secs(1));
        assert_eq!(p.delay_before(3), Duration::from_secs(4));
        assert_eq!(p.delay_before(10), Duration::from_secs(16));
    }
}
