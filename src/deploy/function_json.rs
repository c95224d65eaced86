//! Generates the deployable Functions metadata from the registry: `host.json`,
//! `<Name>/function.json` and `local.settings.json.example`.
//!
//! Two layouts of the same files: the app root the host reads (`render`: host.json beside one
//! folder per function, what `package` assembles with the binary), and the repository's
//! (`render_repository`: host.json and local.settings.json.example at the top, the function
//! folders under `functions/`). The checked-in copies are asserted equal to this output by a
//! test, so code and deployment cannot drift.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use crate::runtime::config::SETTINGS;
use crate::runtime::function::{
    FunctionSpec, RetryPolicy, Trigger, COSMOS_CONNECTION_SETTING, COSMOS_DATABASE, LEASE_CONTAINER,
};

/// Cosmos trigger lease timing (ms). Renew well inside expiration so a busy instance never
/// loses its lease; acquire often enough to take over an expired one quickly.
pub const LEASE_ACQUIRE_INTERVAL_MS: u32 = 5_000;
pub const LEASE_EXPIRATION_INTERVAL_MS: u32 = 30_000;
pub const LEASE_RENEW_INTERVAL_MS: u32 = 10_000;

/// The executable name inside the deployed app root.
pub const EXECUTABLE: &str = "bifrost-workers";

fn timespan(duration: std::time::Duration) -> String {
    let secs = duration.as_secs();
    format!(
        "{:02}:{:02}:{:02}",
        secs / 3600,
        (secs / 60) % 60,
        secs % 60
    )
}

fn retry_json(retry: &RetryPolicy) -> Value {
    json!({
        "strategy": "exponentialBackoff",
        "maxRetryCount": retry.max_retry_count,
        "minimumInterval": timespan(retry.minimum_interval),
        "maximumInterval": timespan(retry.maximum_interval),
    })
}

pub fn function_json(spec: &FunctionSpec) -> Value {
    let bindings = match &spec.trigger {
        Trigger::CosmosDb(t) => vec![json!({
            "type": "cosmosDBTrigger",
            "direction": "in",
            "name": t.binding,
            "connection": COSMOS_CONNECTION_SETTING,
            "databaseName": COSMOS_DATABASE,
            "containerName": t.container.name(),
            "leaseContainerName": LEASE_CONTAINER,
            // One lease container serves every function; without a prefix only one would fire.
            "leaseContainerPrefix": format!("{}-", spec.name),
            "createLeaseContainerIfNotExists": false,
            "feedPollDelay": t.feed_poll_delay_ms,
            "maxItemsPerInvocation": t.max_items_per_invocation,
            "startFromBeginning": false,
            // Faster than the defaults (13 s / 60 s / 17 s) so a lease orphaned by a crashed or
            // scaled-in instance is picked up within ~30 s instead of ~75 s (live logs stall
            // meanwhile); still only a few cents of lease-container RU per month.
            "leaseAcquireInterval": LEASE_ACQUIRE_INTERVAL_MS,
            "leaseExpirationInterval": LEASE_EXPIRATION_INTERVAL_MS,
            "leaseRenewInterval": LEASE_RENEW_INTERVAL_MS,
        })],
        Trigger::Timer(t) => vec![json!({
            "type": "timerTrigger",
            "direction": "in",
            "name": t.binding,
            "schedule": t.schedule,
            "runOnStartup": false,
            "useMonitor": true,
        })],
        Trigger::Http(t) => vec![
            json!({
                "type": "httpTrigger",
                "direction": "in",
                "name": t.binding,
                // Authorization is the caller's EasyAuth principal, checked in code.
                "authLevel": "anonymous",
                "route": t.route,
                "methods": t.methods,
            }),
            json!({ "type": "http", "direction": "out", "name": "res" }),
        ],
    };
    let mut function = json!({ "bindings": bindings });
    if let Some(retry) = &spec.retry {
        function["retry"] = retry_json(retry);
    }
    function
}

pub fn host_json() -> Value {
    json!({
        "version": "2.0",
        "customHandler": {
            "description": {
                "defaultExecutablePath": EXECUTABLE,
                "arguments": ["handler"],
            },
            // Payload mode for every function: the negotiate function needs it anyway (extra
            // bindings), it works on every host version, and one code path serves all HTTP
            // functions with the host's request telemetry intact.
            "enableForwardingHttpRequest": false,
            "enableProxyingHttpRequest": false,
        },
        "extensionBundle": {
            "id": "Microsoft.Azure.Functions.ExtensionBundle",
            "version": "[4.*, 5.0.0)",
        },
        "extensions": { "http": { "routePrefix": "api" } },
        // A timeout restarts the whole handler process; 10 min is the Consumption maximum.
        "functionTimeout": "00:10:00",
        "logging": {
            "logLevel": { "default": "Information", "Host.Results": "Information" },
            "applicationInsights": {
                "samplingSettings": { "isEnabled": true, "excludedTypes": "Request;Exception" },
            },
        },
    })
}

pub fn local_settings_example() -> Value {
    let values: serde_json::Map<String, Value> = SETTINGS
        .iter()
        .filter(|s| s.in_local_settings)
        .map(|s| (s.name.to_owned(), Value::String(s.example.to_owned())))
        .collect();
    json!({ "IsEncrypted": false, "Values": values })
}

fn pretty(value: &Value) -> String {
    let mut text = serde_json::to_string_pretty(value).unwrap_or_default();
    text.push('\n');
    text
}

/// The repository folder that holds one folder per function.
pub const FUNCTIONS_DIR: &str = "functions";

/// Every generated file, relative to the app root, with its exact contents.
pub fn render(functions: &[FunctionSpec]) -> BTreeMap<PathBuf, String> {
    let mut files = BTreeMap::new();
    files.insert(PathBuf::from("host.json"), pretty(&host_json()));
    files.insert(
        PathBuf::from("local.settings.json.example"),
        pretty(&local_settings_example()),
    );
    for spec in functions {
        files.insert(
            Path::new(spec.name).join("function.json"),
            pretty(&function_json(spec)),
        );
    }
    files
}

/// The same files as the repository holds them, relative to its root: host.json and
/// local.settings.json.example at the top (where a Functions project keeps them), each
/// `<Name>/function.json` under `functions/`. Only `package`'s app root has the function
/// folders beside host.json, which is what the host needs; the repository keeps one copy of
/// each file, not a second host.json inside `functions/`.
pub fn render_repository(functions: &[FunctionSpec]) -> BTreeMap<PathBuf, String> {
    render(functions)
        .into_iter()
        .map(|(path, contents)| {
            let in_repository = if path.components().count() > 1 {
                Path::new(FUNCTIONS_DIR).join(path)
            } else {
                path
            };
            (in_repository, contents)
        })
        .collect()
}

/// Writes the repository layout under `root`, removing function folders no longer in the
/// registry.
pub fn write(root: &Path, functions: &[FunctionSpec]) -> std::io::Result<Vec<PathBuf>> {
    let functions_dir = root.join(FUNCTIONS_DIR);
    std::fs::create_dir_all(&functions_dir)?;
    for entry in std::fs::read_dir(&functions_dir)? {
        let entry = entry?;
        let stale = entry.path().join("function.json").is_file()
            && !functions
                .iter()
                .any(|f| entry.file_name().to_str() == Some(f.name));
        if stale {
            std::fs::remove_dir_all(entry.path())?;
        }
    }
    let mut written = Vec::new();
    for (relative, contents) in render_repository(functions) {
        let path = root.join(&relative);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(&path, contents)?;
        written.push(path);
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::registry;

    #[test]
    fn cosmos_functions_carry_retry_and_lease_prefix() {
        for spec in registry() {
            let json = function_json(&spec);
            if json["bindings"][0]["type"] == "cosmosDBTrigger" {
                assert_eq!(json["retry"]["strategy"], "exponentialBackoff");
                assert_eq!(
                    json["bindings"][0]["leaseContainerPrefix"],
                    format!("{}-", spec.name)
                );
                assert!(json["bindings"][0].get("dataType").is_none());
            }
        }
    }

    #[test]
    fn live_log_latency_settings_are_deliberate() {
        let functions = registry();
        let log_stream = function_json(crate::registry::find(&functions, "LogStream").unwrap());
        let trigger = &log_stream["bindings"][0];
        // The host's 5 s default alone would break the 100 ms write→screen target.
        assert!(
            trigger["feedPollDelay"].as_u64().unwrap() <= 50,
            "{trigger}"
        );
        assert!(trigger["maxItemsPerInvocation"].as_u64().unwrap() <= 500);
        for spec in &functions {
            let json = function_json(spec);
            let binding = &json["bindings"][0];
            if binding["type"] == "cosmosDBTrigger" {
                let renew = binding["leaseRenewInterval"].as_u64().unwrap();
                let expire = binding["leaseExpirationInterval"].as_u64().unwrap();
                assert!(
                    renew * 2 < expire,
                    "{}: renew well inside expiration",
                    spec.name
                );
                assert!(binding["leaseAcquireInterval"].as_u64().unwrap() < expire);
            }
        }
    }

    #[test]
    fn the_repository_keeps_host_files_on_top_and_functions_in_their_folder() {
        let functions = registry();
        let app = render(&functions);
        let repository = render_repository(&functions);
        assert_eq!(app.len(), repository.len());
        assert_eq!(
            repository[Path::new("host.json")],
            app[Path::new("host.json")]
        );
        assert!(repository.contains_key(Path::new("local.settings.json.example")));
        assert_eq!(
            repository[Path::new("functions/LogStream/function.json")],
            app[Path::new("LogStream/function.json")]
        );
        assert!(!repository.contains_key(Path::new("functions/host.json")));
    }

    #[test]
    fn timespans_are_dotnet_format() {
        assert_eq!(timespan(std::time::Duration::from_secs(16)), "00:00:16");
        assert_eq!(timespan(std::time::Duration::from_secs(3725)), "01:02:05");
    }
}
