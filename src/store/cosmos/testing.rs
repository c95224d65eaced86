//! This backend's test fixtures, for its own tests and the conformance suite: an emulated
//! account (the SDK's in-memory emulator behind `bifrost-test-support`'s hyper front-end, on a
//! real socket, with the containers `ensure` makes), and a real account when `COSMOS_ENDPOINT`
//! and `COSMOS_KEY` are set.

use std::sync::Arc;

use azure_data_cosmos::models::ContainerProperties;
use bifrost_test_support::cosmos_emulator::{self, Emulator};

use super::{connect, ensure, CosmosSettings, CosmosStore};
use crate::store::{Container, Store};

pub(crate) async fn emulated() -> (Emulator, Arc<dyn Store>) {
    let emulator = cosmos_emulator::start().await.unwrap();
    let settings = CosmosSettings::parse(&emulator.store_url("bifrost")).unwrap();
    let done = ensure(&settings).await.unwrap();
    assert!(done.iter().all(|step| step.created), "{done:?}");
    // Idempotent: a second run finds everything in place.
    let again = ensure(&settings).await.unwrap();
    assert!(again.iter().all(|step| !step.created), "{again:?}");
    let store = CosmosStore::open(&settings).await.unwrap();
    (emulator, Arc::new(store))
}

/// A real account, in a fresh database per check, or `None` (with the reason printed).
/// Real Cosmos needs a composite index for every multi-field ORDER BY, so the containers get
/// the production policy plus the suite's own orderings.
pub(crate) async fn real_account() -> Option<(Arc<dyn Store>, CosmosSettings)> {
    let (Ok(endpoint), Ok(key)) = (
        std::env::var("COSMOS_ENDPOINT"),
        std::env::var("COSMOS_KEY"),
    ) else {
        eprintln!(
            "skipped against a real Cosmos DB account: COSMOS_ENDPOINT and COSMOS_KEY are not set"
        );
        return None;
    };
    let database = format!("bifrost-test-{}", uuid::Uuid::new_v4().simple());
    let settings = CosmosSettings::parse(&format!(
        "AccountEndpoint={endpoint};AccountKey={key};Database={database}"
    ))
    .unwrap();
    let client = connect(&settings).await.unwrap();
    client.create_database(&database, None).await.unwrap();
    let db = client.database_client(database.as_str());
    for container in Container::ALL {
        // Everything indexed (the suite filters and sorts on ad-hoc fields), plus a composite
        // index for each of its multi-key orderings (each also serves the reversed order).
        let index = |keys: &[(&str, &str)]| {
            keys.iter()
                .map(|(path, order)| serde_json::json!({"path": path, "order": order}))
                .collect::<Vec<_>>()
        };
        let policy = serde_json::json!({
            "indexingMode": "consistent",
            "automatic": true,
            "includedPaths": [{"path": "/*"}],
            "excludedPaths": [],
            "compositeIndexes": [
                index(&[("/n", "ascending"), ("/id", "ascending")]),
                index(&[("/_ts", "ascending"), ("/id", "ascending")]),
                index(&[("/group", "ascending"), ("/n", "descending"), ("/id", "descending")]),
            ],
        });
        let properties =
            ContainerProperties::new(container.name(), container.partition_key_path().into())
                .with_indexing_policy(serde_json::from_value(policy).unwrap());
        let properties = match container.default_ttl() {
            Some(ttl) => properties.with_default_ttl(ttl as u32),
            None => properties,
        };
        db.create_container(properties, None).await.unwrap();
    }
    let store = CosmosStore::open(&settings).await.unwrap();
    Some((Arc::new(store), settings))
}

pub(crate) async fn drop_database(settings: &CosmosSettings) {
    let client = connect(settings).await.unwrap();
    let _ = client
        .database_client(settings.database.as_str())
        .delete(None)
        .await;
}
