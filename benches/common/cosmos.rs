//! Shared by the benches' Cosmos halves: the SDK's in-memory emulator on a local port, with the
//! database and containers created, and a store opened on it.

use std::sync::Arc;

use bifrost_workers::clock::SystemClock;
use bifrost_workers::store::{Store, StoreUrl};

use bifrost_test_support::cosmos_emulator::{self, Emulator};

/// A running emulator (stops when dropped), the store URL of `database` on it, and a store.
pub async fn start(database: &str) -> (Emulator, String, Arc<dyn Store>) {
    let emulator = cosmos_emulator::start().await.expect("cosmos emulator");
    let url = emulator.store_url(database);
    let parsed: StoreUrl = url.parse().expect("store url");
    let StoreUrl::Cosmos(settings) = &parsed else {
        panic!("not a Cosmos URL: {url}");
    };
    bifrost_workers::store::cosmos::ensure(settings)
        .await
        .expect("create the database and containers");
    let store = bifrost_workers::store::open(&parsed, Arc::new(SystemClock))
        .await
        .expect("open the Cosmos store");
    (emulator, url, store)
}
