//! This backend's own tests (the behaviour every backend shares is `store::conformance`):
//! request units, throttling, connection failures, missing containers, the change feed's
//! round-robin over partitions, and feed tokens tied to their container; on the emulator.

use super::testing::emulated;
use super::*;
use azure_data_cosmos::models::ContainerProperties;
use bifrost_test_support::cosmos_emulator;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_units_are_counted() {
    let (_emulator, store) = emulated().await;
    let before = store.request_units().unwrap();
    store
        .upsert(Container::Leases, serde_json::json!({"id": "x"}), None)
        .await
        .unwrap();
    store.read(Container::Leases, "x", "x").await.unwrap();
    assert!(store.request_units().unwrap() > before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttled_writes_wait_for_retry_after_and_succeed() {
    use azure_data_cosmos::models::ThroughputProperties;
    use azure_data_cosmos::options::CreateContainerOptions;
    let emulator = cosmos_emulator::start_throttled().await.unwrap();
    let settings = CosmosSettings::parse(&emulator.store_url("bifrost")).unwrap();
    // Provisioned throughput (ensure creates serverless-style containers without it).
    let client = connect(&settings).await.unwrap();
    client.create_database("bifrost", None).await.unwrap();
    let database = client.database_client("bifrost");
    for container in Container::ALL {
        let properties =
            ContainerProperties::new(container.name(), container.partition_key_path().into());
        let options =
            CreateContainerOptions::default().with_throughput(ThroughputProperties::manual(400));
        database
            .create_container(properties, Some(options))
            .await
            .unwrap();
    }
    let store = Arc::new(CosmosStore::open(&settings).await.unwrap());
    let pad = "x".repeat(6_000);
    let started = std::time::Instant::now();
    let mut tasks = Vec::new();
    for i in 0..12 {
        let (store, pad) = (store.clone(), pad.clone());
        tasks.push(tokio::spawn(async move {
            let doc = serde_json::json!({"id": format!("w{i}"), "scope": "GLOBAL", "pad": pad});
            store.upsert(Container::Entities, doc, None).await
        }));
    }
    for task in tasks {
        task.await
            .unwrap()
            .expect("a throttled write eventually succeeds");
    }
    let elapsed = started.elapsed();
    let reading = store.meter();
    eprintln!(
        "12 writes, {:.1} RU, {} ms, {} retries beyond the SDK's",
        reading.request_units,
        elapsed.as_millis(),
        reading.retries
    );
    // 400 RU/s over 4 partitions: these writes cost several seconds of one partition's
    // budget, so they can only have succeeded by waiting out 429s.
    let partitions = store.handle(Container::Entities).unwrap().feed_ranges as f64;
    let budget_per_second = 400.0 / partitions;
    assert!(
        reading.request_units > 3.0 * budget_per_second,
        "{reading:?}"
    );
    // One window's budget may be spent at once; the rest had to wait for later windows.
    let least = reading.request_units / budget_per_second - 1.0;
    assert!(
        elapsed.as_secs_f64() >= least,
        "{elapsed:?} is too fast for {least:.1} s of throttled budget"
    );
    for i in 0..12 {
        let id = format!("w{i}");
        assert!(store
            .read(Container::Entities, "GLOBAL", &id)
            .await
            .unwrap()
            .is_some());
    }
}

#[tokio::test]
async fn a_closed_port_fails_fast_with_one_line() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let settings =
        CosmosSettings::parse(&format!("cosmos+http://127.0.0.1:{port}/?key=a2V5")).unwrap();
    let started = std::time::Instant::now();
    let error = CosmosStore::open(&settings).await.unwrap_err().to_string();
    assert!(started.elapsed() <= CONNECT_TIMEOUT + Duration::from_secs(2));
    assert!(error.contains("cannot reach Cosmos DB account"), "{error}");
    assert!(!error.contains('\n'), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_containers_name_the_fix() {
    let emulator = cosmos_emulator::start().await.unwrap();
    let settings = CosmosSettings::parse(&emulator.store_url("nothing-here")).unwrap();
    let error = CosmosStore::open(&settings).await.unwrap_err().to_string();
    assert!(error.contains("bifrost-workers ensure"), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_partition_does_not_starve_the_others() {
    let (_emulator, store) = emulated().await;
    let c = Container::ExecutionData;
    let mut position = FeedPosition::Beginning;
    // Eight executions spread over the physical partitions, each with a backlog.
    for e in 0..8 {
        let writes = (0..20)
            .map(|s| {
                let doc =
                    serde_json::json!({"id": format!("e{e}-{s}"), "executionId": format!("e{e}")});
                BatchOperation::Upsert {
                    doc,
                    if_match: None,
                }
            })
            .collect();
        store.batch(c, &format!("e{e}"), writes).await.unwrap();
    }
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..8 {
        let page = store.read_change_feed(c, &position, 1).await.unwrap();
        for doc in &page.documents {
            seen.insert(doc["executionId"].as_str().unwrap().to_owned());
        }
        position = FeedPosition::Continuation(page.continuation);
    }
    // Round-robin over partitions: one-item pages do not drain the first partition first.
    assert!(seen.len() >= 2, "only {seen:?} in 8 pages");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn feed_tokens_are_tied_to_their_container() {
    let (_emulator, store) = emulated().await;
    let page = store
        .read_change_feed(Container::ExecutionData, &FeedPosition::Now, 10)
        .await
        .unwrap();
    let foreign = store
        .read_change_feed(
            Container::Executions,
            &FeedPosition::Continuation(page.continuation),
            10,
        )
        .await;
    assert!(
        matches!(foreign, Err(StoreError::BadContinuation)),
        "{foreign:?}"
    );
}
