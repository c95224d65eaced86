//! Checks of single documents and writes: create, read, replace, upsert and delete with ETag
//! preconditions; patches; invalid and oversized documents; concurrent writers; the
//! transactional batch.

use serde_json::json;

use super::support::*;
use crate::model::MAX_DOCUMENT_BYTES;
use crate::store::{Container, FeedPosition, Query, StoreError};

pub(super) async fn crud_and_etags(store: Dyn) {
    let c = Container::Executions;
    assert!(store.read(c, "GLOBAL", "a").await.unwrap().is_none());
    let created = store
        .create(c, exec("GLOBAL", "a", 1, "Running"))
        .await
        .unwrap();
    assert_system_properties(&created.body);
    assert_eq!(created.body["_etag"], json!(created.etag.0));
    assert!(
        created.etag.0.starts_with('"') && created.etag.0.ends_with('"'),
        "ETags are quoted, as Cosmos sends them: {}",
        created.etag
    );
    assert!(matches!(
        store.create(c, exec("GLOBAL", "a", 1, "Running")).await,
        Err(StoreError::Conflict { .. })
    ));
    let read = store.read(c, "GLOBAL", "a").await.unwrap().unwrap();
    assert_eq!(read.etag, created.etag);
    assert_eq!(read.body, created.body);
    assert_eq!(read.body["n"], 1);

    // Replace with the current ETag works; with a stale one it is a precondition failure.
    let replaced = store
        .replace(c, exec("GLOBAL", "a", 2, "Success"), Some(&created.etag))
        .await
        .unwrap();
    assert_ne!(replaced.etag, created.etag);
    assert_eq!(replaced.body["status"], "Success");
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
    // A conditional upsert of a document that does not exist cannot match.
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
    assert!(store.read(c, "GLOBAL", "missing").await.unwrap().is_none());
    // The failed writes changed nothing.
    assert_eq!(
        store.read(c, "GLOBAL", "a").await.unwrap().unwrap().etag,
        replaced.etag
    );
    let upserted = store
        .upsert(c, exec("GLOBAL", "a", 4, "Failed"), Some(&replaced.etag))
        .await
        .unwrap();
    assert_eq!(
        store.read(c, "GLOBAL", "a").await.unwrap().unwrap().body["n"],
        4
    );
    // Unconditional writes always win, and every write issues a new ETag.
    let unconditional = store
        .replace(c, exec("GLOBAL", "a", 5, "Failed"), None)
        .await
        .unwrap();
    assert_ne!(unconditional.etag, upserted.etag);
    let upserted = store
        .upsert(
            c,
            exec("GLOBAL", "a", 6, "Failed"),
            Some(&unconditional.etag),
        )
        .await
        .unwrap();
    assert_ne!(upserted.etag, unconditional.etag);

    assert!(matches!(
        store.delete(c, "GLOBAL", "a", Some(&created.etag)).await,
        Err(StoreError::PreconditionFailed { .. })
    ));
    assert!(store.read(c, "GLOBAL", "a").await.unwrap().is_some());
    assert!(store
        .delete(c, "GLOBAL", "a", Some(&upserted.etag))
        .await
        .unwrap());
    assert!(!store.delete(c, "GLOBAL", "a", None).await.unwrap());
    assert!(!store
        .delete(c, "GLOBAL", "a", Some(&upserted.etag))
        .await
        .unwrap());
    assert!(store.read(c, "GLOBAL", "a").await.unwrap().is_none());
    // After a delete the id is free again.
    store
        .create(c, exec("GLOBAL", "a", 7, "Running"))
        .await
        .unwrap();
}

pub(super) async fn patches(store: Dyn) {
    use crate::store::{Field, PatchOp};
    let c = Container::Entities;
    let f = |path: &str| Field::new(path).unwrap();
    let created = store
        .create(c, json!({"id": "m", "scope": "GLOBAL", "total": 1, "byStatus": {"Success": 1}, "note": "x"}))
        .await
        .unwrap();
    let patched = store
        .patch(
            c,
            "GLOBAL",
            "m",
            &[
                PatchOp::Increment(f("total"), 2),
                PatchOp::Set(f("byStatus.Failed"), json!(1)),
                PatchOp::Set(f("updatedAt"), json!("2025-01-01T00:00:00.000000Z")),
                PatchOp::Remove(f("note")),
            ],
            Some(&created.etag),
        )
        .await
        .unwrap();
    assert_ne!(patched.etag, created.etag);
    assert_system_properties(&patched.body);
    assert_eq!(patched.body["total"], 3);
    assert_eq!(patched.body["byStatus"], json!({"Success": 1, "Failed": 1}));
    assert!(patched.body.get("note").is_none());
    let read = store.read(c, "GLOBAL", "m").await.unwrap().unwrap();
    assert_eq!(read.body, patched.body);
    assert_eq!(read.etag, patched.etag);
    // A stale ETag, a missing document, or an operation that cannot apply change nothing.
    let refused = [
        (
            "m",
            vec![PatchOp::Increment(f("total"), 1)],
            Some(&created.etag),
            "stale",
        ),
        (
            "missing",
            vec![PatchOp::Increment(f("total"), 1)],
            None,
            "missing",
        ),
        (
            "m",
            vec![
                PatchOp::Increment(f("total"), 1),
                PatchOp::Remove(f("absent")),
            ],
            None,
            "invalid",
        ),
        (
            "m",
            vec![PatchOp::Set(f("scope"), json!("other"))],
            None,
            "invalid",
        ),
    ];
    for (id, operations, if_match, expected) in refused {
        let outcome = match store.patch(c, "GLOBAL", id, &operations, if_match).await {
            Err(StoreError::PreconditionFailed { .. }) => "stale",
            Err(StoreError::NotFound { .. }) => "missing",
            Err(StoreError::InvalidDocument { .. }) => "invalid",
            other => panic!("{operations:?} on {id}: {other:?}"),
        };
        assert_eq!(outcome, expected, "{operations:?} on {id}");
    }
    let after = store.read(c, "GLOBAL", "m").await.unwrap().unwrap();
    assert_eq!(after.etag, patched.etag, "a refused patch wrote something");
    // Concurrent increments are not lost.
    let mut tasks = Vec::new();
    for _ in 0..4 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            for _ in 0..5 {
                store
                    .patch(
                        c,
                        "GLOBAL",
                        "m",
                        &[PatchOp::Increment(Field::new("total").unwrap(), 1)],
                        None,
                    )
                    .await
                    .unwrap();
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    assert_eq!(
        store.read(c, "GLOBAL", "m").await.unwrap().unwrap().body["total"],
        23
    );
}

pub(super) async fn invalid_and_oversized_documents(store: Dyn) {
    let c = Container::Executions;
    for bad in [
        json!([1]),
        json!("a string"),
        json!(null),
        json!({"scope": "GLOBAL"}),
        json!({"id": "x"}),
        json!({"id": 5, "scope": "GLOBAL"}),
        json!({"id": "x", "scope": 5}),
        json!({"id": "x", "scope": null}),
    ] {
        assert!(
            matches!(
                store.upsert(c, bad.clone(), None).await,
                Err(StoreError::InvalidDocument { .. })
            ),
            "upsert {bad}"
        );
        assert!(
            matches!(
                store.create(c, bad.clone()).await,
                Err(StoreError::InvalidDocument { .. })
            ),
            "create {bad}"
        );
    }
    // The partition key field is the container's: `executionId` here, not `scope`.
    assert!(matches!(
        store
            .upsert(
                Container::ExecutionData,
                json!({"id": "x", "scope": "GLOBAL"}),
                None
            )
            .await,
        Err(StoreError::InvalidDocument { .. })
    ));

    let mib = 1024 * 1024;
    let near = json!({"id": "big", "scope": "GLOBAL", "pad": "x".repeat(mib * 19 / 10)});
    store.upsert(c, near.clone(), None).await.unwrap();
    let read = store.read(c, "GLOBAL", "big").await.unwrap().unwrap();
    assert_eq!(read.body["pad"], near["pad"]);
    let over = json!({"id": "huge", "scope": "GLOBAL", "pad": "x".repeat(mib * 21 / 10)});
    match store.upsert(c, over, None).await {
        Err(StoreError::TooLarge { size, max }) => {
            assert_eq!(max, MAX_DOCUMENT_BYTES);
            assert!(size > max);
        }
        other => panic!("expected TooLarge, got {other:?}"),
    }
    assert!(store.read(c, "GLOBAL", "huge").await.unwrap().is_none());

    // System properties sent back in are not stored as data.
    let mut echoed = read.body.clone();
    echoed["_etag"] = json!("\"forged\"");
    echoed["_ts"] = json!(1);
    echoed["_lsn"] = json!(-5);
    echoed["_rid"] = json!("rid");
    echoed["_self"] = json!("self");
    echoed["_attachments"] = json!("attachments/");
    let stored = store.upsert(c, echoed, None).await.unwrap();
    assert_ne!(stored.body["_etag"], "\"forged\"");
    assert_eq!(stored.body["_etag"], json!(stored.etag.0));
    assert!(stored
        .body
        .get("_lsn")
        .is_none_or(|lsn| lsn.as_i64() > Some(0)));
    let reread = store.read(c, "GLOBAL", "big").await.unwrap().unwrap();
    for key in ["_rid", "_self", "_attachments"] {
        assert!(reread.body.get(key).is_none(), "{key} was stored");
    }
}

pub(super) async fn concurrent_writers_and_optimistic_concurrency(store: Dyn) {
    let c = Container::Entities;
    store
        .create(c, json!({"id": "counter", "scope": "GLOBAL", "value": 0}))
        .await
        .unwrap();
    let mut tasks = Vec::new();
    for task in 0..8 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            // Blind writes of distinct documents…
            for i in 0..25 {
                let doc = json!({"id": format!("t{task}-{i}"), "scope": format!("s{task}")});
                store.upsert(c, doc, None).await.unwrap();
            }
            // …and read-modify-write of a shared one, retrying on a lost race.
            for _ in 0..10 {
                loop {
                    let current = store.read(c, "GLOBAL", "counter").await.unwrap().unwrap();
                    let mut next = current.body.clone();
                    next["value"] = json!(current.body["value"].as_i64().unwrap() + 1);
                    match store.replace(c, next, Some(&current.etag)).await {
                        Ok(_) => break,
                        Err(StoreError::PreconditionFailed { .. }) => continue,
                        Err(e) => panic!("{e}"),
                    }
                }
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let counter = store.read(c, "GLOBAL", "counter").await.unwrap().unwrap();
    assert_eq!(counter.body["value"], 80, "an update was lost");
    for task in 0..8 {
        let docs = all_pages(&store, c, &format!("s{task}"), Query::new(10)).await;
        assert_eq!(docs.len(), 25);
    }
    let (feed, _) = drain(&store, c, FeedPosition::Beginning, 50).await;
    assert_eq!(
        feed.len(),
        8 * 25 + 1,
        "each document once, at its latest version"
    );
    let counter_in_feed = feed.iter().find(|d| d["id"] == "counter").unwrap();
    assert_eq!(counter_in_feed["value"], 80);
}

/// A transactional batch in one partition: all operations or none, ETag preconditions checked
/// inside it, other partitions refused, size limits enforced.
pub(super) async fn transactional_batch_is_all_or_nothing(store: Dyn) {
    use crate::store::{BatchOperation as Op, BatchOutcome, MAX_BATCH_OPERATIONS};
    let c = Container::Entities;
    let first = store
        .create(c, json!({"id": "summary", "scope": ORG, "n": 1}))
        .await
        .unwrap();
    let outcomes = store
        .batch(
            c,
            ORG,
            vec![
                Op::Replace {
                    doc: json!({"id": "summary", "scope": ORG, "n": 2}),
                    if_match: Some(first.etag.clone()),
                },
                Op::Create(json!({"id": "marker-1", "scope": ORG})),
                Op::Upsert {
                    doc: json!({"id": "marker-2", "scope": ORG}),
                    if_match: None,
                },
            ],
        )
        .await
        .unwrap();
    assert_eq!(outcomes.len(), 3);
    let BatchOutcome::Written(summary) = &outcomes[0] else {
        panic!("replace must return the written document");
    };
    assert_ne!(summary.etag, first.etag);
    assert_eq!(summary.body["n"], 2);

    // A stale ETag in the middle fails the whole batch: the create before it is rolled back.
    let stale = store
        .batch(
            c,
            ORG,
            vec![
                Op::Create(json!({"id": "marker-3", "scope": ORG})),
                Op::Replace {
                    doc: json!({"id": "summary", "scope": ORG, "n": 3}),
                    if_match: Some(first.etag.clone()),
                },
            ],
        )
        .await;
    assert!(
        matches!(stale, Err(StoreError::PreconditionFailed { .. })),
        "{stale:?}"
    );
    assert!(store.read(c, ORG, "marker-3").await.unwrap().is_none());
    let current = store.read(c, ORG, "summary").await.unwrap().unwrap();
    assert_eq!(current.body["n"], 2);

    // A create that conflicts fails the batch too; deletes report whether they found anything.
    let conflict = store
        .batch(
            c,
            ORG,
            vec![
                Op::Delete {
                    id: "marker-2".into(),
                    if_match: None,
                },
                Op::Create(json!({"id": "marker-1", "scope": ORG})),
            ],
        )
        .await;
    assert!(
        matches!(conflict, Err(StoreError::Conflict { .. })),
        "{conflict:?}"
    );
    assert!(store.read(c, ORG, "marker-2").await.unwrap().is_some());
    let deleted = store
        .batch(
            c,
            ORG,
            vec![
                Op::Delete {
                    id: "marker-2".into(),
                    if_match: None,
                },
                Op::Delete {
                    id: "never-existed".into(),
                    if_match: None,
                },
            ],
        )
        .await
        .unwrap();
    assert_eq!(
        deleted,
        vec![BatchOutcome::Deleted(true), BatchOutcome::Deleted(false)]
    );

    // Every document must be in the batch's partition; size is 1..=100.
    let foreign = store
        .batch(
            c,
            ORG,
            vec![Op::Create(json!({"id": "x", "scope": "GLOBAL"}))],
        )
        .await;
    assert!(
        matches!(foreign, Err(StoreError::InvalidDocument { .. })),
        "{foreign:?}"
    );
    assert!(store.read(c, "GLOBAL", "x").await.unwrap().is_none());
    let too_many: Vec<Op> = (0..=MAX_BATCH_OPERATIONS)
        .map(|i| Op::Create(json!({"id": format!("m{i}"), "scope": ORG})))
        .collect();
    assert!(matches!(
        store.batch(c, ORG, too_many).await,
        Err(StoreError::InvalidQuery(_))
    ));
    assert!(matches!(
        store.batch(c, ORG, Vec::new()).await,
        Err(StoreError::InvalidQuery(_))
    ));
}
