//! Checks of time to live: expiry on a clock the test moves, and what every backend can show
//! without waiting for expiry (invalid `ttl` values refused, valid ones kept as written).

use std::collections::BTreeSet;

use serde_json::{json, Value};

use super::support::*;
use crate::clock::ManualClock;
use crate::model::EXECUTION_TTL_SECONDS;
use crate::store::{Container, FeedPosition, Query, StoreError};

pub(super) async fn ttl_expires_documents(store: Dyn, clock: &ManualClock) {
    let data = Container::ExecutionData;
    let doc = |id: &str, ttl: Option<i64>| {
        let mut d = json!({"id": id, "executionId": "e", "type": "log"});
        if let Some(ttl) = ttl {
            d["ttl"] = json!(ttl);
        }
        d
    };
    store
        .upsert(data, doc("default", None), None)
        .await
        .unwrap();
    store
        .upsert(data, doc("short", Some(10)), None)
        .await
        .unwrap();
    store
        .upsert(data, doc("forever", Some(-1)), None)
        .await
        .unwrap();
    let mut null_ttl = doc("null-ttl", None);
    null_ttl["ttl"] = Value::Null;
    store.upsert(data, null_ttl, None).await.unwrap();
    store
        .upsert(
            Container::Entities,
            json!({"id": "m", "scope": "GLOBAL", "ttl": 10}),
            None,
        )
        .await
        .unwrap();
    // Cosmos rejects a ttl that is not a positive integer or -1 where TTL is on.
    for bad in [json!(0), json!(-2), json!("10"), json!(1.5), json!(true)] {
        let mut d = doc("bad-ttl", None);
        d["ttl"] = bad.clone();
        assert!(
            matches!(
                store.upsert(data, d, None).await,
                Err(StoreError::InvalidDocument { .. })
            ),
            "ttl {bad}"
        );
    }
    let before = store
        .read_change_feed(data, &FeedPosition::Beginning, 100)
        .await
        .unwrap();
    assert_eq!(
        feed_ids(&before.documents),
        ["default", "short", "forever", "null-ttl"]
    );

    clock.advance_secs(9);
    assert!(store.read(data, "e", "short").await.unwrap().is_some());
    clock.advance_secs(2);
    assert!(store.read(data, "e", "short").await.unwrap().is_none());
    assert!(store.read(data, "e", "default").await.unwrap().is_some());
    // Expired means gone for conditional writes too.
    assert!(!store.delete(data, "e", "short", None).await.unwrap());
    assert!(matches!(
        store.replace(data, doc("short", Some(10)), None).await,
        Err(StoreError::NotFound { .. })
    ));
    // Containers without TTL ignore a document's ttl, as in Cosmos.
    assert!(store
        .read(Container::Entities, "GLOBAL", "m")
        .await
        .unwrap()
        .is_some());
    let live: BTreeSet<String> = store
        .query(data, "e", &Query::new(100))
        .await
        .unwrap()
        .items
        .iter()
        .map(id_of)
        .collect();
    assert_eq!(
        live,
        BTreeSet::from(["default", "forever", "null-ttl"].map(String::from))
    );
    let feed = store
        .read_change_feed(data, &FeedPosition::Beginning, 100)
        .await
        .unwrap();
    assert_eq!(
        feed_ids(&feed.documents),
        ["default", "forever", "null-ttl"]
    );
    // An expired id can be created again, and a write restarts a document's ttl.
    store.create(data, doc("short", Some(10))).await.unwrap();
    clock.advance_secs(EXECUTION_TTL_SECONDS - 20);
    store
        .upsert(data, doc("default", None), None)
        .await
        .unwrap();

    clock.advance_secs(30);
    assert!(store.read(data, "e", "null-ttl").await.unwrap().is_none());
    assert!(store.read(data, "e", "default").await.unwrap().is_some());
    assert!(store.read(data, "e", "forever").await.unwrap().is_some());
    assert!(store
        .read(Container::Entities, "GLOBAL", "m")
        .await
        .unwrap()
        .is_some());
    let purged = store.purge_expired().await.unwrap();
    // Cosmos removes expired items itself (purge is a no-op there); embedded stores sweep.
    if store.backend() == "sqlite" {
        assert_eq!(purged, 2, "null-ttl and the re-created short");
        assert_eq!(store.purge_expired().await.unwrap(), 0);
    }
    let live: BTreeSet<String> = store
        .query(data, "e", &Query::new(100))
        .await
        .unwrap()
        .items
        .iter()
        .map(id_of)
        .collect();
    assert_eq!(
        live,
        BTreeSet::from(["default", "forever"].map(String::from))
    );
}

/// What every backend can show about TTL without waiting for expiry: invalid `ttl` values are
/// refused where TTL is on, and the field is kept as written. (Expiry itself is checked on
/// backends whose clock the test controls: `ttl_expires_documents`. The Cosmos emulator stores
/// `ttl` but never expires documents, and real Cosmos expires them in the background.)
pub(super) async fn ttl_fields_are_validated_and_kept(store: Dyn) {
    let data = Container::ExecutionData;
    for bad in [json!(0), json!(-2), json!("10"), json!(1.5), json!(true)] {
        let doc = json!({"id": "bad-ttl", "executionId": "e", "ttl": bad.clone()});
        assert!(
            matches!(
                store.upsert(data, doc, None).await,
                Err(StoreError::InvalidDocument { .. })
            ),
            "ttl {bad}"
        );
    }
    assert!(store.read(data, "e", "bad-ttl").await.unwrap().is_none());
    for (id, ttl) in [
        ("short", json!(10)),
        ("forever", json!(-1)),
        ("long", json!(EXECUTION_TTL_SECONDS * 2)),
    ] {
        let written = store
            .upsert(
                data,
                json!({"id": id, "executionId": "e", "ttl": ttl.clone()}),
                None,
            )
            .await
            .unwrap();
        assert_eq!(written.body["ttl"], ttl);
        let read = store.read(data, "e", id).await.unwrap().unwrap();
        assert_eq!(read.body["ttl"], ttl);
    }
    let default = store
        .upsert(data, json!({"id": "default", "executionId": "e"}), None)
        .await
        .unwrap();
    assert!(
        default.body.get("ttl").is_none(),
        "the container default applies"
    );
    // Containers without TTL keep a document's ttl as plain data.
    let kept = store
        .upsert(
            Container::Entities,
            json!({"id": "m", "scope": "GLOBAL", "ttl": 10}),
            None,
        )
        .await
        .unwrap();
    assert_eq!(kept.body["ttl"], 10);
}
