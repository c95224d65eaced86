//! The Cosmos database and containers, created idempotently by `bifrost-workers ensure`, with
//! the indexing policy each container's queries need.
//!
//! Why each path is indexed or excluded:
//! - `executions` (/scope, TTL 14 d): the execution list filters and sorts on `status`,
//!   `workflowName`, `executedBy`, `startedAt`, `completedAt`, and pages by keyset with `id` as the
//!   tie-breaker, so everything stays range-indexed (`/*`) except the two large free-form
//!   payloads, `inputData` and `errorMessage`, which are never filtered on and would only
//!   cost write RUs. Composite indexes cover the list's `ORDER BY startedAt DESC, id DESC`
//!   and the metrics reconciliation's `ORDER BY completedAt, id`.
//! - `execution_data` (/executionId, TTL 14 d): log reads filter on `type` and page by
//!   `sequence` (`ORDER BY sequence, id`), variables by `version`; the bodies (`message`,
//!   `data`, `variables`, `result`, `state`) are excluded, as they are the bulk of every write.
//! - `entities` (/scope, no TTL): small metrics and membership documents queried by `type`
//!   and date; indexed as a whole (`/*`), except the per-workflow `breakdown` map.
//! - `leases` (/id) and `deadletters` (/functionName): only point reads and the change feed
//!   (which needs no index), so nothing is indexed (`/*` excluded), which makes writes of
//!   large dead-lettered batches cheaper.

use serde_json::{json, Value};

use crate::store::Container;

/// The indexing policy of a container as Cosmos JSON (`IndexingPolicy` deserializes it).
pub fn indexing_policy(container: Container) -> Value {
    let excluded = |paths: &[&str]| -> Vec<Value> {
        paths
            .iter()
            .map(|p| json!({"path": p}))
            .chain([json!({"path": "/\"_etag\"/?"})])
            .collect()
    };
    let composite = |pairs: &[&[(&str, &str)]]| -> Vec<Value> {
        pairs
            .iter()
            .map(|pair| {
                Value::Array(
                    pair.iter()
                        .map(|(path, order)| json!({"path": path, "order": order}))
                        .collect(),
                )
            })
            .collect()
    };
    match container {
        Container::Executions => json!({
            "indexingMode": "consistent",
            "automatic": true,
            "includedPaths": [{"path": "/*"}],
            "excludedPaths": excluded(&["/inputData/*", "/errorMessage/?"]),
            "compositeIndexes": composite(&[
                &[("/startedAt", "descending"), ("/id", "descending")],
                &[("/status", "ascending"), ("/startedAt", "descending"), ("/id", "descending")],
                &[("/completedAt", "ascending"), ("/id", "ascending")],
            ]),
        }),
        Container::ExecutionData => json!({
            "indexingMode": "consistent",
            "automatic": true,
            "includedPaths": [{"path": "/*"}],
            "excludedPaths": excluded(&["/message/?", "/data/*", "/variables/*", "/result/*", "/state/*"]),
            "compositeIndexes": composite(&[
                &[("/type", "ascending"), ("/sequence", "ascending"), ("/id", "ascending")],
                &[("/sequence", "ascending"), ("/id", "ascending")],
            ]),
        }),
        Container::Entities => json!({
            "indexingMode": "consistent",
            "automatic": true,
            "includedPaths": [{"path": "/*"}],
            "excludedPaths": excluded(&["/breakdown/*"]),
        }),
        Container::Leases | Container::DeadLetters => json!({
            "indexingMode": "consistent",
            "automatic": true,
            "includedPaths": [],
            "excludedPaths": [{"path": "/*"}],
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use azure_data_cosmos::models::IndexingPolicy;

    #[test]
    fn every_policy_is_valid_cosmos_json() {
        for container in Container::ALL {
            let policy: IndexingPolicy =
                serde_json::from_value(indexing_policy(container)).unwrap();
            // Cosmos requires the root path to be either included or excluded.
            let root = |paths: &[azure_data_cosmos::models::PropertyPath]| {
                paths.iter().any(|p| p.path == "/*")
            };
            assert!(
                root(&policy.included_paths) != root(&policy.excluded_paths),
                "{container}"
            );
        }
    }
}
