//! `bifrost-workers ensure`: the database and every container, created when missing
//! (idempotent), each with its partition key, default TTL and indexing policy.
//!
//! The indexing policies are the same as the deployment's (`infra/modules/cosmos.bicep`, where
//! each is explained), checked against that file by a test, so a database made by `ensure` and
//! one made by Bicep agree.
//!
//! In short:
//! - `executions`: everything is range-indexed except the free-form `inputData` and
//!   `errorMessage` (never filtered on, they only cost write RUs); composite indexes for the
//!   list's `ORDER BY startedAt DESC, id DESC` and the reconciliation's `completedAt, id`, since
//!   Cosmos rejects a multi-key ORDER BY without its composite index.
//! - `execution_data`: only what the log and variables reads filter or sort on (`executionId`,
//!   `type`, `sequence`, `version`, `timestamp`, `level`); messages, data and results are the
//!   bulk of every write and never filtered on. Composites for `sequence, id` and `version DESC,
//!   id DESC`.
//! - `entities`: everything except the per-workflow `workflows` map of the metrics documents.
//! - `deadletters`: everything except the dead-lettered payloads (`documents`, `rawPayload`).
//! - `leases`: the service default (the Functions trigger owns its documents).

use azure_data_cosmos::models::{ContainerProperties, IndexingPolicy};
use serde_json::{json, Value};

use super::errors::connect_error;
use super::settings::CosmosSettings;
use super::{bounded, connect};
use crate::store::{Container, StoreError};

/// What `ensure` did to one resource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ensured {
    pub resource: String,
    pub created: bool,
}

/// Creates database and containers when missing (409 = already there). Idempotent.
pub async fn ensure(settings: &CosmosSettings) -> Result<Vec<Ensured>, StoreError> {
    let client = connect(settings).await?;
    let mut done = Vec::new();
    let created = bounded("creating the database", async {
        match client.create_database(&settings.database, None).await {
            Ok(_) => Ok(true),
            Err(e) if e.status().is_conflict() => Ok(false),
            Err(e) => Err(connect_error(settings, e)),
        }
    })
    .await?;
    done.push(Ensured {
        resource: format!("database {}", settings.database),
        created,
    });
    let database = client.database_client(settings.database.as_str());
    for container in Container::ALL {
        let mut properties =
            ContainerProperties::new(container.name(), container.partition_key_path().into());
        if let Some(policy) = indexing_policy(container) {
            let policy: IndexingPolicy = serde_json::from_value(policy)
                .map_err(|e| StoreError::Backend(format!("indexing policy of {container}: {e}")))?;
            properties = properties.with_indexing_policy(policy);
        }
        if let Some(ttl) = container.default_ttl() {
            let ttl =
                u32::try_from(ttl).map_err(|_| StoreError::Backend("TTL too large".into()))?;
            properties = properties.with_default_ttl(ttl);
        }
        let created = bounded(&format!("creating container {container}"), async {
            match database.create_container(properties, None).await {
                Ok(_) => Ok(true),
                Err(e) if e.status().is_conflict() => Ok(false),
                Err(e) => Err(connect_error(settings, e)),
            }
        })
        .await?;
        done.push(Ensured {
            resource: format!("container {container}"),
            created,
        });
    }
    Ok(done)
}

/// The indexing policy as Cosmos JSON (`IndexingPolicy` deserializes it); `None`: the default.
pub fn indexing_policy(container: Container) -> Option<Value> {
    let paths =
        |paths: &[&str]| -> Vec<Value> { paths.iter().map(|p| json!({"path": p})).collect() };
    let composite = |keys: &[(&str, &str)]| -> Value {
        Value::Array(
            keys.iter()
                .map(|(path, order)| json!({"path": path, "order": order}))
                .collect(),
        )
    };
    Some(match container {
        Container::Executions => json!({
            "indexingMode": "consistent",
            "automatic": true,
            "includedPaths": paths(&["/*"]),
            "excludedPaths": paths(&["/inputData/*", "/errorMessage/?", "/\"_etag\"/?"]),
            "compositeIndexes": [
                composite(&[("/startedAt", "descending"), ("/id", "descending")]),
                composite(&[("/completedAt", "descending"), ("/id", "descending")]),
            ],
        }),
        Container::ExecutionData => json!({
            "indexingMode": "consistent",
            "automatic": true,
            "includedPaths": paths(&[
                "/executionId/?", "/type/?", "/sequence/?", "/version/?", "/timestamp/?", "/level/?",
            ]),
            "excludedPaths": paths(&["/*"]),
            "compositeIndexes": [
                composite(&[("/sequence", "ascending"), ("/id", "ascending")]),
                composite(&[("/version", "descending"), ("/id", "descending")]),
            ],
        }),
        Container::Entities => json!({
            "indexingMode": "consistent",
            "automatic": true,
            "includedPaths": paths(&["/*"]),
            "excludedPaths": paths(&["/workflows/*", "/\"_etag\"/?"]),
        }),
        Container::DeadLetters => json!({
            "indexingMode": "consistent",
            "automatic": true,
            "includedPaths": paths(&["/*"]),
            "excludedPaths": paths(&["/documents/*", "/rawPayload/?"]),
        }),
        Container::Leases => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use azure_data_cosmos::models::IndexingPolicy;

    #[test]
    fn every_policy_is_valid_cosmos_json() {
        for container in Container::ALL {
            let Some(policy) = indexing_policy(container) else {
                continue;
            };
            let policy: IndexingPolicy = serde_json::from_value(policy).unwrap();
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

    /// The `path`/`order` values of a policy in document order (included, excluded, composite).
    fn flatten(policy: &Value) -> Vec<String> {
        let mut out = Vec::new();
        for key in ["includedPaths", "excludedPaths"] {
            for entry in policy[key].as_array().into_iter().flatten() {
                out.push(entry["path"].as_str().unwrap().to_owned());
            }
        }
        for index in policy["compositeIndexes"].as_array().into_iter().flatten() {
            for key in index.as_array().unwrap() {
                out.push(key["path"].as_str().unwrap().to_owned());
                out.push(key["order"].as_str().unwrap().to_owned());
            }
        }
        out
    }

    /// The same values from the container's `indexingPolicy` block in the Bicep module (its
    /// quoted `path:` and `order:` values, in order); `None` when the container sets none.
    fn bicep_policy(bicep: &str, container: &str) -> Option<Vec<String>> {
        let start = bicep.find(&format!("id: '{container}'"))?;
        let block = &bicep[start..];
        let block = &block[..block.find("\nresource ").unwrap_or(block.len())];
        let policy = &block[block.find("indexingPolicy:")?..];
        let mut out = Vec::new();
        for line in policy.lines() {
            let line = line.trim();
            for key in ["path: '", "order: '"] {
                if let Some(value) = line.strip_prefix(key) {
                    out.push(value.trim_end_matches('\'').to_owned());
                }
            }
        }
        Some(out)
    }

    #[test]
    fn policies_match_the_deployment() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/infra/modules/cosmos.bicep");
        let bicep = std::fs::read_to_string(path).unwrap();
        for container in Container::ALL {
            assert_eq!(
                indexing_policy(container).as_ref().map(flatten),
                bicep_policy(&bicep, container.name()),
                "{container}: ensure and infra/modules/cosmos.bicep disagree"
            );
        }
    }
}
