//! The deployment names the code depends on, as one JSON document (`bifrost-workers functions
//! --manifest`): database, containers with partition keys and TTLs, settings, the connection
//! settings and hub names the bindings use, and the generated host.json and function.json files.
//! The infra consistency test compares it with `infra/`, `host.json`, `functions/` and
//! `local.settings.json.example`, so a name changed in one place alone fails a test instead of
//! a deployment.

use std::collections::BTreeSet;

use serde_json::{json, Map, Value};

use super::function_json::{function_json, host_json, EXECUTABLE};
use crate::runtime::config::SETTINGS;
use crate::runtime::function::{FunctionSpec, COSMOS_DATABASE, LEASE_CONTAINER};
use crate::store::Container;

/// Binding properties that hold the name of an app setting (not a value).
const CONNECTION_PROPERTIES: &[&str] =
    &["connection", "connectionStringSetting", "leaseConnection"];

pub fn manifest(functions: &[FunctionSpec]) -> Value {
    let rendered: Map<String, Value> = functions
        .iter()
        .map(|spec| (spec.name.to_owned(), function_json(spec)))
        .collect();
    let bindings: Vec<&Value> = rendered
        .values()
        .filter_map(|f| f["bindings"].as_array())
        .flatten()
        .collect();
    let binding_values = |properties: &[&str]| -> BTreeSet<String> {
        bindings
            .iter()
            .flat_map(|b| properties.iter().filter_map(|p| b.get(*p)?.as_str()))
            .map(str::to_owned)
            .collect()
    };
    let containers: Vec<Value> = Container::ALL
        .iter()
        .map(|c| {
            json!({
                "name": c.name(),
                "partitionKey": c.partition_key_path(),
                "defaultTtl": c.default_ttl(),
            })
        })
        .collect();
    let settings: Vec<Value> = SETTINGS
        .iter()
        .map(|s| {
            json!({
                "name": s.name,
                "example": s.example,
                "inLocalSettings": s.in_local_settings,
            })
        })
        .collect();
    json!({
        "executable": EXECUTABLE,
        "packageZip": crate::deploy::package::ZIP_NAME,
        "database": COSMOS_DATABASE,
        "leaseContainer": LEASE_CONTAINER,
        "containers": containers,
        "settings": settings,
        "connectionSettings": binding_values(CONNECTION_PROPERTIES),
        "signalRHubs": binding_values(&["hubName"]),
        "hostJson": host_json(),
        "functions": rendered,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::registry;
    use crate::runtime::function::COSMOS_CONNECTION_SETTING;

    #[test]
    fn lists_every_container_and_the_connection_of_the_cosmos_trigger() {
        let m = manifest(&registry());
        let names: Vec<_> = m["containers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].as_str().unwrap())
            .collect();
        assert_eq!(names.len(), Container::ALL.len());
        assert!(names.contains(&LEASE_CONTAINER));
        assert!(m["connectionSettings"]
            .as_array()
            .unwrap()
            .contains(&json!(COSMOS_CONNECTION_SETTING)));
        assert_eq!(
            m["containers"][0]["defaultTtl"],
            json!(crate::model::EXECUTION_TTL_SECONDS)
        );
    }
}
