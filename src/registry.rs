//! Every function, declared once: name, trigger, bindings, retry policy and the feature that holds
//! its code. function.json files, host routes and serve-mode pumps are all derived from this list,
//! so a newcomer finds any function's code in one hop from here.

use std::sync::Arc;

use crate::live::{ExecutionUpdates, LogStream, Negotiate, SubscribeExecution, SubscribeHistory};
use crate::metrics::{DailyRollup, GetDailyMetrics, GetMetrics, MetricsAggregate};
use crate::ops::{ApiDocument, Health, ListDeadLetters, ReplayDeadLetters};
use crate::query::{
    GetExecution, GetExecutionLogs, GetExecutionResult, GetExecutionVariables, ListExecutions,
    QueryExecutions,
};
use crate::runtime::function::{
    CosmosTrigger, FunctionSpec, Handler, HttpHandler, HttpTrigger, TimerTrigger, Trigger,
    CHANGE_FEED_RETRY,
};
use crate::store::Container;

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
        // The dead-letter tools replay through the change-feed functions of this very list.
        http(
            "ListDeadLetters",
            "deadletters",
            &["get"],
            ListDeadLetters::new(registry),
        ),
        http(
            "ReplayDeadLetters",
            "deadletters/replay",
            &["post"],
            ReplayDeadLetters::new(registry),
        ),
        // Described from this very list (the registry hands itself over).
        http(
            "GetOpenApi",
            "openapi.json",
            &["get"],
            ApiDocument::new(registry),
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
    fn the_openapi_document_describes_every_http_function() {
        let functions = registry();
        let document =
            crate::runtime::openapi::document(&functions, "test").unwrap_or_else(|e| panic!("{e}"));
        let mut described = 0;
        for f in &functions {
            if let Trigger::Http(http) = &f.trigger {
                for method in http.methods {
                    let operation = &document["paths"][format!("/api/{}", http.route)][method];
                    assert_eq!(operation["operationId"], f.name, "{method} {}", http.route);
                    described += 1;
                }
            }
        }
        let operations: usize = document["paths"]
            .as_object()
            .unwrap()
            .values()
            .map(|item| item.as_object().unwrap().len())
            .sum();
        assert_eq!(operations, described, "no operation without a function");
        // Every schema reference resolves.
        let text = document.to_string();
        for reference in text.split("\"$ref\":\"#/components/schemas/").skip(1) {
            let name = reference.split('"').next().unwrap();
            assert!(
                document["components"]["schemas"].get(name).is_some(),
                "dangling $ref {name}"
            );
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
}
