//! Deployment artifacts derived from the registry: `function.json` files, `host.json` and
//! `local.settings.json.example` (`function_json`), the names manifest the infra test reads
//! (`manifest`), and the deployable folder and zip (`package`).

pub mod function_json;
pub mod manifest;
pub mod package;
