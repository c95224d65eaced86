//! One behaviour suite for every `Store` backend. Each check takes the store under test (and,
//! where time matters, the `ManualClock` it was built with); each backend's tests call them all.

use std::collections::BTreeSet;
use std::sync::Arc;

use serde_json::{json, Value};

use super::{Container, FeedPosition, FilterOp, Query, Store, StoreError};
use crate::clock::ManualClock;

type Dyn = Arc<dyn Store>;

fn exec(scope: &str, id: &str, n: i64, status: &str) -> Value {
    json!({"id": id, "type": "execution", "scope": scope, "n": n, "status": status,
           "startedAt": format!("2025-01-01T00:00:{:02}.000000Z", n % 60)})
}

pub async fn crud_and_etags(store: Dyn) {
    let c = Container::Executions;
    assert!(store.read(c, "GLOBAL", "a").await.unwrap().is_none());
    let created = store
        .create(c, exec("GLOBAL", "a", 1, "Running"))
        .await
        .unwrap();
    assert_eq!(created.body["_etag"], json!(created.etag.0));
    assert!(created.body["_ts"].is_i64() && created.body["_lsn"].is_i64());
    assert!(matches!(
        store.create(c, exec("GLOBAL", "a", 1, "Running")).await,
        Err(StoreError::Conflict { .. })
    ));
    let read = store.read(c, "GLOBAL", "a").await.unwrap().unwrap();
    assert_eq!(read.etag, created.etag);
    assert_eq!(read.body["n"], 1);

    // Replace with the current ETag works; with a stale one it is a precondition failure.
    let replaced = store
        .replace(c, exec("GLOBAL", "a", 2, "Success"), Some(&created.etag))
        .await
        .unwrap();
    assert_ne!(replaced.etag, created.etag);
    assert!(matches!(
        store
            .replace(c, exec("GLOBAL", "a", 3, "Failed"), Some(&created.etag))
            .await,
        Err(StoreError::PreconditionFailed { .. })
    ));
    assert!(matches!(
        store
            .upsert(c, exec("GLOBAL", "a", 3, "Failed"), Some(&created.etag))
            .await,
        Err(StoreError::PreconditionFailed { .. })
    ));
    assert!(matches!(
        store
            .upsert(
                c,
                exec("GLOBAL", "missing", 3, "Failed"),
                Some(&created.etag)
            )
            .await,
        Err(StoreError::PreconditionFailed { .. })
    ));
    assert!(matches!(
        store
            .replace(c, exec("GLOBAL", "missing", 3, "Failed"), None)
            .await,
        Err(StoreError::NotFound { .. })
    ));
    let upserted = store
        .upsert(c, exec("GLOBAL", "a", 4, "Failed"), Some(&replaced.etag))
        .await
        .unwrap();
    assert_eq!(
        store.read(c, "GLOBAL", "a").await.unwrap().unwrap().body["n"],
        4
    );

    // Same id in another partition is another document.
    store
        .create(
            c,
            exec(
                "org-0f4a6f6c-1111-4c2e-9a57-3d2b8f1f0a01",
                "a",
                9,
                "Running",
            ),
        )
        .await
        .unwrap();
    assert_eq!(
        store.read(c, "GLOBAL", "a").await.unwrap().unwrap().body["n"],
        4
    );

    assert!(matches!(
        store.delete(c, "GLOBAL", "a", Some(&created.etag)).await,
        Err(StoreError::PreconditionFailed { .. })
    ));
    assert!(store
        .delete(c, "GLOBAL", "a", Some(&upserted.etag))
        .await
        .unwrap());
    assert!(!store.delete(c, "GLOBAL", "a", None).await.unwrap());
    assert!(store.read(c, "GLOBAL", "a").await.unwrap().is_none());
}

pub async fn invalid_and_oversized_documents(store: Dyn) {
    let c = Container::Executions;
    for bad in [
        json!([1]),
        json!({"scope": "GLOBAL"}),
        json!({"id": "x"}),
        json!({"id": 5, "scope": "GLOBAL"}),
    ] {
        assert!(
            matches!(
                store.upsert(c, bad.clone(), None).await,
                Err(StoreError::InvalidDocument { .. })
            ),
            "{bad}"
        );
    }
    let near = json!({"id": "big", "scope": "GLOBAL", "pad": "x".repeat(1_900_000)});
    store.upsert(c, near.clone(), None).await.unwrap();
    let read = store.read(c, "GLOBAL", "big").await.unwrap().unwrap();
    assert_eq!(read.body["pad"], near["pad"]);
    let over = json!({"id": "huge", "scope": "GLOBAL", "pad": "x".repeat(2_100_000)});
    assert!(matches!(
        store.upsert(c, over, None).await,
        Err(StoreError::TooLarge { .. })
    ));
    // System properties sent back in are not stored as data.
    let mut echoed = read.body.clone();
    echoed["_etag"] = json!("\"forged\"");
    let stored = store.upsert(c, echoed, None).await.unwrap();
    assert_ne!(stored.body["_etag"], "\"forged\"");
}

async fn ids(store: &Dyn, query: &Query) -> Vec<String> {
    store
        .query(Container::Executions, "GLOBAL", query)
        .await
        .unwrap()
        .items
        .iter()
        .map(|d| d["id"].as_str().unwrap().to_owned())
        .collect()
}

pub async fn queries_with_parameters(store: Dyn) {
    let c = Container::Executions;
    for (i, status) in ["Success", "Failed", "Success", "Running", "Success"]
        .iter()
        .enumerate()
    {
        store
            .upsert(c, exec("GLOBAL", &format!("e{i}"), i as i64, status), None)
            .await
            .unwrap();
    }
    store
        .upsert(
            c,
            exec(
                "org-0f4a6f6c-1111-4c2e-9a57-3d2b8f1f0a01",
                "other",
                1,
                "Success",
            ),
            None,
        )
        .await
        .unwrap();
    store
        .upsert(
            c,
            json!({"id": "tricky", "scope": "GLOBAL", "n": 99, "status": "x' OR '1'='1"}),
            None,
        )
        .await
        .unwrap();

    let q = |op| Query::new(100).filter("status", op).order_by("n", false);
    assert_eq!(
        ids(&store, &q(FilterOp::Eq(json!("Success")))).await,
        ["e0", "e2", "e4"]
    );
    assert_eq!(
        ids(&store, &q(FilterOp::Ne(json!("Success")))).await,
        ["e1", "e3", "tricky"]
    );
    assert_eq!(
        ids(
            &store,
            &q(FilterOp::In(vec![json!("Failed"), json!("Running")]))
        )
        .await,
        ["e1", "e3"]
    );
    assert!(ids(&store, &q(FilterOp::In(vec![]))).await.is_empty());
    // Injection-looking values are just values.
    for evil in [
        "' OR 1=1 --",
        "Success'); DROP TABLE documents; --",
        "\" OR \"\"=\"",
    ] {
        assert!(
            ids(&store, &q(FilterOp::Eq(json!(evil)))).await.is_empty(),
            "{evil}"
        );
    }
    assert_eq!(
        ids(&store, &q(FilterOp::Eq(json!("x' OR '1'='1")))).await,
        ["tricky"]
    );
    let range = Query::new(100)
        .filter("n", FilterOp::Ge(json!(1)))
        .filter("n", FilterOp::Lt(json!(4)))
        .order_by("n", true);
    assert_eq!(ids(&store, &range).await, ["e3", "e2", "e1"]);
    let le_gt = Query::new(100)
        .filter("n", FilterOp::Gt(json!(0)))
        .filter("n", FilterOp::Le(json!(1)))
        .order_by("n", false);
    assert_eq!(ids(&store, &le_gt).await, ["e1"]);
    let defined = Query::new(100)
        .filter("startedAt", FilterOp::Defined(false))
        .order_by("n", false);
    assert_eq!(ids(&store, &defined).await, ["tricky"]);
    // The other partition is never visible.
    let all = ids(&store, &Query::new(100).order_by("n", false)).await;
    assert!(!all.contains(&"other".to_owned()));
    assert_eq!(all.len(), 6);
    assert!(matches!(
        store.query(c, "GLOBAL", &Query::new(0)).await,
        Err(StoreError::InvalidQuery(_))
    ));
}

pub async fn pagination_is_complete_and_stable(store: Dyn) {
    let c = Container::Executions;
    // 57 documents with many ties on the order field.
    for i in 0..57 {
        store
            .upsert(
                c,
                exec("GLOBAL", &format!("p{i:03}"), i % 7, "Success"),
                None,
            )
            .await
            .unwrap();
    }
    for descending in [false, true] {
        let full = ids(&store, &Query::new(1000).order_by("n", descending)).await;
        assert_eq!(full.len(), 57);
        for page_size in [1, 5, 7, 56, 57, 100] {
            let mut seen = Vec::new();
            let mut token = None;
            let mut pages = 0;
            loop {
                let query = Query::new(page_size)
                    .order_by("n", descending)
                    .after(token.clone());
                let page = store.query(c, "GLOBAL", &query).await.unwrap();
                assert!(page.items.len() <= page_size);
                seen.extend(
                    page.items
                        .iter()
                        .map(|d| d["id"].as_str().unwrap().to_owned()),
                );
                pages += 1;
                assert!(pages <= 60, "pagination does not end");
                match page.continuation {
                    Some(next) => token = Some(next),
                    None => break,
                }
            }
            assert_eq!(seen, full, "page size {page_size}, descending {descending}");
        }
    }
    for bad in ["", "not-base64!", "eyJ4IjoxfQ", "e30"] {
        let query = Query::new(5)
            .order_by("n", false)
            .after(Some(bad.to_owned()));
        assert!(
            matches!(
                store.query(c, "GLOBAL", &query).await,
                Err(StoreError::BadContinuation)
            ),
            "{bad:?}"
        );
    }
}

fn feed_ids(documents: &[Value]) -> Vec<String> {
    documents
        .iter()
        .map(|d| d["id"].as_str().unwrap().to_owned())
        .collect()
}

pub async fn change_feed_order_dedupe_and_resume(store: Dyn) {
    let c = Container::ExecutionData;
    let log = |e: &str, s: u64| json!({"id": format!("{e}-{s}"), "executionId": e, "type": "log", "sequence": s});
    let now = store
        .read_change_feed(c, &FeedPosition::Now, 100)
        .await
        .unwrap();
    assert!(now.documents.is_empty());
    for s in 1..=3 {
        store.upsert(c, log("a", s), None).await.unwrap();
        store.upsert(c, log("b", s), None).await.unwrap();
    }
    // Another container's writes are not in this feed.
    store
        .upsert(
            Container::Executions,
            exec("GLOBAL", "x", 1, "Running"),
            None,
        )
        .await
        .unwrap();

    let page = store
        .read_change_feed(c, &FeedPosition::Beginning, 100)
        .await
        .unwrap();
    assert_eq!(
        feed_ids(&page.documents),
        ["a-1", "b-1", "a-2", "b-2", "a-3", "b-3"]
    );
    assert!(page
        .documents
        .iter()
        .all(|d| d["_lsn"].is_i64() && d["_etag"].is_string()));
    let from_now = store
        .read_change_feed(
            c,
            &FeedPosition::Continuation(now.continuation.clone()),
            100,
        )
        .await
        .unwrap();
    assert_eq!(from_now.documents.len(), 6);

    // Resume in small steps from persisted tokens: exactly the rest, in order.
    let mut position = FeedPosition::Beginning;
    let mut stepped = Vec::new();
    loop {
        let page = store.read_change_feed(c, &position, 4).await.unwrap();
        if page.documents.is_empty() {
            break;
        }
        stepped.extend(feed_ids(&page.documents));
        position = FeedPosition::Continuation(page.continuation);
    }
    assert_eq!(
        stepped,
        feed_ids(
            &store
                .read_change_feed(c, &FeedPosition::Beginning, 100)
                .await
                .unwrap()
                .documents
        )
    );
    let FeedPosition::Continuation(caught_up) = position else {
        panic!("never advanced")
    };
    assert_eq!(
        store
            .pending_changes(c, &caught_up)
            .await
            .unwrap()
            .unwrap_or(0),
        0
    );

    // Latest version: a document updated twice shows once, at its newest position and state.
    let mut updated = log("a", 1);
    updated["message"] = json!("first edit");
    store.upsert(c, updated.clone(), None).await.unwrap();
    updated["message"] = json!("second edit");
    store.upsert(c, updated, None).await.unwrap();
    let page = store
        .read_change_feed(c, &FeedPosition::Continuation(caught_up.clone()), 100)
        .await
        .unwrap();
    assert_eq!(feed_ids(&page.documents), ["a-1"]);
    assert_eq!(page.documents[0]["message"], "second edit");
    assert_eq!(
        store
            .pending_changes(c, &caught_up)
            .await
            .unwrap()
            .unwrap_or(1),
        1
    );
    // Nothing new: the position stays.
    let idle = store
        .read_change_feed(
            c,
            &FeedPosition::Continuation(page.continuation.clone()),
            100,
        )
        .await
        .unwrap();
    assert!(idle.documents.is_empty());
    assert_eq!(idle.continuation, page.continuation);
    assert!(matches!(
        store
            .read_change_feed(c, &FeedPosition::Continuation("garbage".into()), 10)
            .await,
        Err(StoreError::BadContinuation)
    ));
}

pub async fn ttl_expires_documents(store: Dyn, clock: &ManualClock) {
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
    store
        .upsert(
            Container::Entities,
            json!({"id": "m", "scope": "GLOBAL", "ttl": 10}),
            None,
        )
        .await
        .unwrap();
    let before = store
        .read_change_feed(data, &FeedPosition::Beginning, 100)
        .await
        .unwrap();
    assert_eq!(before.documents.len(), 3);

    clock.advance_secs(11);
    assert!(store.read(data, "e", "short").await.unwrap().is_none());
    assert!(store.read(data, "e", "default").await.unwrap().is_some());
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
        .map(|d| d["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        live,
        BTreeSet::from(["default".to_owned(), "forever".to_owned()])
    );
    let feed = store
        .read_change_feed(data, &FeedPosition::Beginning, 100)
        .await
        .unwrap();
    assert_eq!(feed_ids(&feed.documents), ["default", "forever"]);
    // An expired id can be created again.
    store.create(data, doc("short", Some(10))).await.unwrap();

    clock.advance_secs(crate::model::EXECUTION_TTL_SECONDS);
    assert!(store.read(data, "e", "default").await.unwrap().is_none());
    assert!(store.read(data, "e", "forever").await.unwrap().is_some());
    let purged = store.purge_expired().await.unwrap();
    // Cosmos removes expired items itself (purge is a no-op there); embedded stores sweep.
    if store.backend() == "sqlite" {
        assert_eq!(purged, 2);
    }
    assert_eq!(
        store
            .query(data, "e", &Query::new(100))
            .await
            .unwrap()
            .items
            .len(),
        1
    );
}
