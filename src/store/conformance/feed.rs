//! Checks of the change feed: order within a partition, latest version only, resuming from a
//! persisted position, deletes not delivered, runs of expired documents stepped over.

use serde_json::json;

use super::support::*;
use crate::clock::ManualClock;
use crate::store::{Container, FeedPosition, StoreError};

pub(super) async fn change_feed_order_dedupe_and_resume(store: Dyn) {
    let c = Container::ExecutionData;
    let log = |e: &str, s: u64| json!({"id": format!("{e}-{s}"), "executionId": e, "type": "log", "sequence": s});
    let empty = store
        .read_change_feed(c, &FeedPosition::Beginning, 100)
        .await
        .unwrap();
    assert!(empty.documents.is_empty());
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

    // Order is guaranteed within a partition (Cosmos orders changes per partition only).
    let everything = per_partition(&[("a", &["a-1", "a-2", "a-3"]), ("b", &["b-1", "b-2", "b-3"])]);
    // One read may return the changes of only some partitions (Cosmos reads one physical
    // partition per request); reading on until caught up returns them all.
    let (feed, _) = drain(&store, c, FeedPosition::Beginning, 100).await;
    assert_eq!(by_partition(&feed), everything);
    feed.iter().for_each(assert_system_properties);
    for docs in by_partition_docs(&feed).values() {
        let lsns: Vec<i64> = docs.iter().filter_map(|d| d["_lsn"].as_i64()).collect();
        assert!(lsns.windows(2).all(|w| w[0] < w[1]), "{lsns:?}");
    }
    // The documents are what a point read returns.
    let read = store.read(c, "b", "b-2").await.unwrap().unwrap();
    let in_feed = feed.iter().find(|d| d["id"] == "b-2").unwrap();
    assert_eq!(in_feed, &read.body);
    // `Now` taken before the writes sees all of them.
    let (from_now, _) = drain(
        &store,
        c,
        FeedPosition::Continuation(now.continuation.clone()),
        100,
    )
    .await;
    assert_eq!(by_partition(&from_now), everything);
    // `Now` taken after them sees none, but sees what comes next.
    let later = store
        .read_change_feed(c, &FeedPosition::Now, 100)
        .await
        .unwrap();
    assert!(later.documents.is_empty());

    // Resume in small steps from persisted tokens: exactly the rest, in order.
    for page_size in [1, 4, 5, 6] {
        let (stepped, _) = drain(&store, c, FeedPosition::Beginning, page_size).await;
        assert_eq!(by_partition(&stepped), everything, "page size {page_size}");
    }
    let first_two = store
        .read_change_feed(c, &FeedPosition::Beginning, 2)
        .await
        .unwrap();
    assert!(!first_two.documents.is_empty() && first_two.documents.len() <= 2);
    let persisted = first_two.continuation.clone();
    let (rest, caught_up) = drain(&store, c, FeedPosition::Continuation(persisted), 100).await;
    let mut resumed = first_two.documents.clone();
    resumed.extend(rest);
    assert_eq!(
        by_partition(&resumed),
        everything,
        "nothing lost or repeated"
    );
    if let Some(pending) = store.pending_changes(c, &caught_up).await.unwrap() {
        assert_eq!(pending, 0);
    }
    if let Some(pending) = store
        .pending_changes(c, &first_two.continuation)
        .await
        .unwrap()
    {
        assert_eq!(pending, 4);
    }

    // Latest version: a document updated twice shows once, at its newest position and state.
    let mut updated = log("a", 1);
    updated["message"] = json!("first edit");
    store.upsert(c, updated.clone(), None).await.unwrap();
    updated["message"] = json!("second edit");
    let newest = store.upsert(c, updated, None).await.unwrap();
    let page = store
        .read_change_feed(c, &FeedPosition::Continuation(caught_up.clone()), 100)
        .await
        .unwrap();
    assert_eq!(feed_ids(&page.documents), ["a-1"]);
    assert_eq!(page.documents[0]["message"], "second edit");
    assert_eq!(page.documents[0], newest.body);
    if let Some(pending) = store.pending_changes(c, &caught_up).await.unwrap() {
        assert_eq!(pending, 1);
    }
    // From the beginning it is listed once too, now after the others of its partition.
    let (all, _) = drain(&store, c, FeedPosition::Beginning, 3).await;
    assert_eq!(
        by_partition(&all),
        per_partition(&[("a", &["a-2", "a-3", "a-1"]), ("b", &["b-1", "b-2", "b-3"])])
    );
    // `later` (taken before the edits) sees exactly the edited document.
    let (since_later, _) =
        drain(&store, c, FeedPosition::Continuation(later.continuation), 1).await;
    assert_eq!(feed_ids(&since_later), ["a-1"]);

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
    // Deletes are not delivered; the position after them still only sees newer writes.
    let before_delete = store
        .read_change_feed(c, &FeedPosition::Now, 1)
        .await
        .unwrap();
    assert!(store.delete(c, "b", "b-3", None).await.unwrap());
    let after_delete = store
        .read_change_feed(c, &FeedPosition::Now, 1)
        .await
        .unwrap();
    let (none, _) = drain(
        &store,
        c,
        FeedPosition::Continuation(before_delete.continuation),
        10,
    )
    .await;
    assert!(none.is_empty());
    store.upsert(c, log("c", 1), None).await.unwrap();
    let (next, _) = drain(
        &store,
        c,
        FeedPosition::Continuation(after_delete.continuation),
        10,
    )
    .await;
    assert_eq!(feed_ids(&next), ["c-1"]);

    for garbage in ["garbage", "", "-1"] {
        assert!(
            matches!(
                store
                    .read_change_feed(c, &FeedPosition::Continuation(garbage.into()), 10)
                    .await,
                Err(StoreError::BadContinuation)
            ),
            "{garbage:?}"
        );
    }
}

/// `upsert_all` (how `simulate` writes its logs): every document written, an existing one
/// replaced, each readable with its system properties and in the feed in write order.
pub(super) async fn upsert_all_writes_every_document_in_order(store: Dyn) {
    let c = Container::ExecutionData;
    let log = |e: &str, s: u64, text: &str| json!({"id": format!("{e}-{s}"), "executionId": e, "type": "log", "sequence": s, "message": text});
    store.upsert(c, log("a", 1, "old"), None).await.unwrap();
    let batch = vec![
        log("a", 1, "new"),
        log("b", 1, "b1"),
        log("a", 2, "a2"),
        log("b", 2, "b2"),
    ];
    store.upsert_all(c, batch).await.unwrap();
    let replaced = store.read(c, "a", "a-1").await.unwrap().unwrap();
    assert_eq!(replaced.body["message"], "new");
    assert_system_properties(&replaced.body);
    let (feed, _) = drain(&store, c, FeedPosition::Beginning, 100).await;
    assert_eq!(
        by_partition(&feed),
        per_partition(&[("a", &["a-1", "a-2"]), ("b", &["b-1", "b-2"])])
    );
    feed.iter().for_each(assert_system_properties);
    let in_feed = feed.iter().find(|d| d["id"] == "b-2").unwrap();
    assert_eq!(
        in_feed,
        &store.read(c, "b", "b-2").await.unwrap().unwrap().body
    );
    // An invalid document fails the call (SQLite writes none of the batch then, Cosmos DB
    // stops at it).
    let invalid = vec![json!({"id": "no-partition"})];
    assert!(store.upsert_all(c, invalid).await.is_err());
}

pub(super) async fn change_feed_steps_over_expired_documents(store: Dyn, clock: &ManualClock) {
    let data = Container::ExecutionData;
    let start = store
        .read_change_feed(data, &FeedPosition::Now, 10)
        .await
        .unwrap();
    for i in 0..30 {
        let doc = json!({"id": format!("short-{i:02}"), "executionId": "e", "ttl": 5});
        store.upsert(data, doc, None).await.unwrap();
    }
    store
        .upsert(data, json!({"id": "kept", "executionId": "e"}), None)
        .await
        .unwrap();
    for i in 0..3 {
        let doc = json!({"id": format!("late-{i}"), "executionId": "e", "ttl": 5});
        store.upsert(data, doc, None).await.unwrap();
    }
    clock.advance_secs(6);
    // A run of expired documents longer than a page neither stalls the feed nor hides what
    // follows it; pages may come back empty while the position moves on.
    let (documents, end) = drain(
        &store,
        data,
        FeedPosition::Continuation(start.continuation),
        4,
    )
    .await;
    assert_eq!(feed_ids(&documents), ["kept"]);
    let again = store
        .read_change_feed(data, &FeedPosition::Continuation(end.clone()), 4)
        .await
        .unwrap();
    assert!(again.documents.is_empty());
    assert_eq!(again.continuation, end);
    // The end is past the trailing expired documents too, so they are not re-read every poll.
    if let Some(pending) = store.pending_changes(data, &end).await.unwrap() {
        assert_eq!(pending, 0);
    }
    let fresh = store
        .upsert(data, json!({"id": "fresh", "executionId": "e"}), None)
        .await
        .unwrap();
    let next = store
        .read_change_feed(data, &FeedPosition::Continuation(end), 1)
        .await
        .unwrap();
    assert_eq!(next.documents, [fresh.body]);
}
