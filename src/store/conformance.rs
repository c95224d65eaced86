//! One behaviour suite for every `Store` backend. Each check takes the store under test (and,
//! where time matters, the `ManualClock` it was built with); each backend's tests call them all,
//! so SQLite and Cosmos are held to the same contract. Every check starts from an empty store.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use base64::Engine;
use serde_json::{json, Value};

use super::{Container, FeedPosition, FilterOp, Query, Store, StoreError};
use crate::clock::ManualClock;
use crate::model::{EXECUTION_TTL_SECONDS, MAX_DOCUMENT_BYTES};

type Dyn = Arc<dyn Store>;

const ORG: &str = "org-0f4a6f6c-1111-4c2e-9a57-3d2b8f1f0a01";

fn exec(scope: &str, id: &str, n: i64, status: &str) -> Value {
    json!({"id": id, "type": "execution", "scope": scope, "n": n, "status": status,
           "startedAt": format!("2025-01-01T00:00:{:02}.000000Z", n % 60)})
}

fn id_of(doc: &Value) -> String {
    doc["id"]
        .as_str()
        .expect("documents have string ids")
        .to_owned()
}

async fn ids_in(store: &Dyn, container: Container, pk: &str, query: &Query) -> Vec<String> {
    let page = store.query(container, pk, query).await.unwrap();
    assert!(page.continuation.is_none(), "expected a single page");
    page.items.iter().map(id_of).collect()
}

async fn ids(store: &Dyn, query: &Query) -> Vec<String> {
    ids_in(store, Container::Executions, "GLOBAL", query).await
}

/// Every page of `query`, following continuations; checks page sizes on the way.
async fn all_pages(store: &Dyn, container: Container, pk: &str, query: Query) -> Vec<Value> {
    let mut items = Vec::new();
    let mut query = query;
    for _ in 0..10_000 {
        let page = store.query(container, pk, &query).await.unwrap();
        assert!(page.items.len() <= query.limit);
        items.extend(page.items);
        match page.continuation {
            Some(next) => query.continuation = Some(next),
            None => return items,
        }
    }
    panic!("pagination does not end");
}

/// `_etag` and `_ts` everywhere; `_lsn` where the backend has it (SQLite always; Cosmos only
/// in the real service's change-feed documents), and then an integer.
fn assert_system_properties(doc: &Value) {
    assert!(doc["_etag"].is_string(), "{doc}");
    assert!(doc["_ts"].is_i64(), "{doc}");
    assert!(doc.get("_lsn").is_none_or(Value::is_i64), "{doc}");
}

pub async fn crud_and_etags(store: Dyn) {
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

pub async fn patches(store: Dyn) {
    use super::{Field, PatchOp};
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

pub async fn invalid_and_oversized_documents(store: Dyn) {
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
        .upsert(c, exec(ORG, "other", 1, "Success"), None)
        .await
        .unwrap();
    store
        .upsert(
            c,
            json!({"id": "tricky", "scope": "GLOBAL", "n": 99, "status": "x' OR '1'='1",
                   "data": {"kind": "nested", "flag": true, "ratio": 0.5}}),
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
        "Success' --",
        "%",
        "*",
    ] {
        assert!(
            ids(&store, &q(FilterOp::Eq(json!(evil)))).await.is_empty(),
            "{evil}"
        );
        assert!(
            ids(&store, &q(FilterOp::In(vec![json!(evil)])))
                .await
                .is_empty(),
            "{evil}"
        );
        assert!(
            ids_in(&store, c, evil, &Query::new(10)).await.is_empty(),
            "partition key {evil}"
        );
    }
    assert_eq!(
        ids(&store, &q(FilterOp::Eq(json!("x' OR '1'='1")))).await,
        ["tricky"]
    );
    // Still all there after the injection attempts.
    assert_eq!(ids(&store, &Query::new(100)).await.len(), 6);

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
    let float = Query::new(100)
        .filter("n", FilterOp::Gt(json!(2.5)))
        .order_by("n", false);
    assert_eq!(ids(&store, &float).await, ["e3", "e4", "tricky"]);
    // Strings compare as strings (the canonical timestamps sort like time).
    let since = Query::new(100)
        .filter(
            "startedAt",
            FilterOp::Ge(json!("2025-01-01T00:00:03.000000Z")),
        )
        .order_by("n", false);
    assert_eq!(ids(&store, &since).await, ["e3", "e4"]);
    let defined = Query::new(100)
        .filter("startedAt", FilterOp::Defined(false))
        .order_by("n", false);
    assert_eq!(ids(&store, &defined).await, ["tricky"]);
    let defined = Query::new(100)
        .filter("startedAt", FilterOp::Defined(true))
        .order_by("n", false);
    assert_eq!(ids(&store, &defined).await, ["e0", "e1", "e2", "e3", "e4"]);
    // Nested paths, booleans and floats.
    for (filter, expected) in [
        (FilterOp::Eq(json!("nested")), vec!["tricky"]),
        (FilterOp::Ne(json!("nested")), vec![]),
        (FilterOp::Defined(true), vec!["tricky"]),
    ] {
        let query = Query::new(100).filter("data.kind", filter);
        assert_eq!(ids(&store, &query).await, expected);
    }
    let flag = Query::new(100).filter("data.flag", FilterOp::Eq(json!(true)));
    assert_eq!(ids(&store, &flag).await, ["tricky"]);
    let flag = Query::new(100).filter("data.flag", FilterOp::Eq(json!(false)));
    assert!(ids(&store, &flag).await.is_empty());
    let ratio = Query::new(100).filter("data.ratio", FilterOp::Eq(json!(0.5)));
    assert_eq!(ids(&store, &ratio).await, ["tricky"]);
    // Values of another type never match: no coercion between strings, numbers and booleans.
    for (path, value) in [
        ("n", json!("1")),
        ("n", json!(true)),
        ("status", json!(0)),
        ("data.flag", json!(1)),
        ("data.flag", json!("true")),
        ("data", json!("nested")),
    ] {
        let query = Query::new(100).filter(path, FilterOp::Eq(value.clone()));
        assert!(ids(&store, &query).await.is_empty(), "{path} = {value}");
    }
    let query = Query::new(100)
        .filter("status", FilterOp::Lt(json!(5)))
        .order_by("n", false);
    assert!(ids(&store, &query).await.is_empty(), "string < number");
    // Null: equal means absent or null; range comparisons with null match nothing.
    let missing = Query::new(100).filter("data", FilterOp::Eq(Value::Null));
    assert_eq!(ids(&store, &missing).await.len(), 5);
    let present = Query::new(100).filter("data", FilterOp::Ne(Value::Null));
    assert_eq!(ids(&store, &present).await, ["tricky"]);
    let nothing = Query::new(100).filter("n", FilterOp::Gt(Value::Null));
    assert!(ids(&store, &nothing).await.is_empty());
    let mixed = Query::new(100)
        .filter("n", FilterOp::In(vec![json!("0"), json!(1), json!(99.0)]))
        .order_by("n", false);
    assert_eq!(ids(&store, &mixed).await, ["e1", "tricky"]);
    // `id` and the system properties are queryable like fields.
    let by_id = Query::new(100).filter("id", FilterOp::In(vec![json!("e2"), json!("e4")]));
    assert_eq!(ids(&store, &by_id).await, ["e2", "e4"]);
    let by_ts = Query::new(100)
        .filter("_ts", FilterOp::Gt(json!(0)))
        .order_by("_ts", false);
    assert_eq!(ids(&store, &by_ts).await.len(), 6);

    // The other partition is never visible.
    let all = ids(&store, &Query::new(100).order_by("n", false)).await;
    assert!(!all.contains(&"other".to_owned()));
    assert_eq!(all.len(), 6);
    assert_eq!(ids_in(&store, c, ORG, &Query::new(100)).await, ["other"]);
    let page = store.query(c, "GLOBAL", &Query::new(100)).await.unwrap();
    page.items.iter().for_each(assert_system_properties);
    assert!(matches!(
        store.query(c, "GLOBAL", &Query::new(0)).await,
        Err(StoreError::InvalidQuery(_))
    ));
}

pub async fn ordering_with_ties(store: Dyn) {
    let c = Container::Executions;
    // Written in an order unrelated to the expected one.
    let rows = [
        ("d", 2, "b"),
        ("a", 1, "a"),
        ("f", 2, "a"),
        ("c", 1, "b"),
        ("e", 3, "a"),
        ("b", 2, "b"),
        ("g", 1, "a"),
    ];
    for (id, n, group) in rows {
        let mut doc = exec("GLOBAL", id, n, "Success");
        doc["group"] = json!(group);
        store.upsert(c, doc, None).await.unwrap();
    }
    // No order field: lacking it, documents are left out.
    store
        .upsert(c, json!({"id": "z", "scope": "GLOBAL"}), None)
        .await
        .unwrap();
    // Ties on `n` are broken by id, in the direction of the last key.
    assert_eq!(
        ids(&store, &Query::new(100).order_by("n", false)).await,
        ["a", "c", "g", "b", "d", "f", "e"]
    );
    assert_eq!(
        ids(&store, &Query::new(100).order_by("n", true)).await,
        ["e", "f", "d", "b", "g", "c", "a"]
    );
    // Mixed directions: group ascending, then n descending (so ids descending).
    assert_eq!(
        ids(
            &store,
            &Query::new(100).order_by("group", false).order_by("n", true)
        )
        .await,
        ["e", "f", "g", "a", "d", "b", "c"]
    );
    assert_eq!(
        ids(
            &store,
            &Query::new(100).order_by("group", true).order_by("n", false)
        )
        .await,
        ["c", "b", "d", "a", "g", "f", "e"]
    );
    // Without order-by, every document comes back, by id.
    assert_eq!(
        ids(&store, &Query::new(100)).await,
        ["a", "b", "c", "d", "e", "f", "g", "z"]
    );
}

pub async fn pagination_is_complete_and_stable(store: Dyn) {
    let c = Container::Executions;
    // 57 documents with many ties on the order fields.
    let mut expected: Vec<(i64, String, String)> = Vec::new();
    for i in 0..57 {
        let id = format!("p{i:03}");
        let group = ["x", "y", "z"][i % 3].to_owned();
        let mut doc = exec("GLOBAL", &id, (i % 7) as i64, "Success");
        doc["group"] = json!(group);
        store.upsert(c, doc, None).await.unwrap();
        expected.push(((i % 7) as i64, group, id));
    }
    // Documents in other partitions and without the order field stay out of every page.
    store
        .upsert(c, exec(ORG, "p000", 0, "Success"), None)
        .await
        .unwrap();
    store
        .upsert(c, json!({"id": "p999", "scope": "GLOBAL"}), None)
        .await
        .unwrap();

    let mut by_n = expected.clone();
    by_n.sort_by(|a, b| (a.0, &a.2).cmp(&(b.0, &b.2)));
    let ascending: Vec<String> = by_n.iter().map(|e| e.2.clone()).collect();
    let descending: Vec<String> = ascending.iter().rev().cloned().collect();
    let mut mixed = expected.clone();
    mixed.sort_by(|a, b| a.1.cmp(&b.1).then((b.0, &b.2).cmp(&(a.0, &a.2))));
    let mixed: Vec<String> = mixed.iter().map(|e| e.2.clone()).collect();

    let cases = [
        (Query::new(1).order_by("n", false), ascending.clone()),
        (Query::new(1).order_by("n", true), descending),
        (
            Query::new(1).order_by("group", false).order_by("n", true),
            mixed,
        ),
        (Query::new(1), {
            let mut by_id = ascending.clone();
            by_id.push("p999".into());
            by_id.sort();
            by_id
        }),
    ];
    for (query, want) in cases {
        for page_size in [1, 2, 5, 7, 56, 57, 58, 100] {
            let mut query = query.clone();
            query.limit = page_size;
            let got: Vec<String> = all_pages(&store, c, "GLOBAL", query.clone())
                .await
                .iter()
                .map(id_of)
                .collect();
            assert_eq!(got, want, "page size {page_size}, {query:?}");
            let unique: BTreeSet<&String> = got.iter().collect();
            assert_eq!(unique.len(), got.len(), "duplicates");
        }
    }
    // Exactly one page when everything fits: no trailing empty page.
    let page = store
        .query(c, "GLOBAL", &Query::new(57).order_by("n", false))
        .await
        .unwrap();
    assert_eq!(page.items.len(), 57);
    assert!(page.continuation.is_none());
    let first = store
        .query(c, "GLOBAL", &Query::new(56).order_by("n", false))
        .await
        .unwrap();
    let token = first.continuation.expect("a 57th document follows");

    // Tokens that are not base64, not JSON, or JSON of the wrong shape.
    let mut bad: Vec<String> = ["", "not-base64!", "eyJ4IjoxfQ", "e30", "bnVsbA", "W10"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    // A real token with a character changed or cut short.
    let mut flipped = token.clone().into_bytes();
    let middle = flipped.len() / 2;
    flipped[middle] = if flipped[middle] == b'A' { b'B' } else { b'A' };
    bad.push(String::from_utf8(flipped).unwrap());
    bad.push(token[..token.len() / 2].to_owned());
    bad.push(format!("{token}x"));
    // Valid base64 JSON that was never issued (re-encoded with forged fields, if it is JSON).
    let engine = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    if let Some(Value::Object(mut fields)) = engine
        .decode(&token)
        .ok()
        .and_then(|bytes| serde_json::from_slice::<Value>(&bytes).ok())
    {
        for (key, forged) in [
            ("k", json!([[1, 2]])),
            ("k", json!([])),
            ("k", json!([null])),
            ("id", json!(5)),
        ] {
            let original = fields.insert(key.to_owned(), forged);
            bad.push(engine.encode(Value::Object(fields.clone()).to_string()));
            if let Some(original) = original {
                fields.insert(key.to_owned(), original);
            }
        }
        for key in ["k", "id"] {
            let mut without = fields.clone();
            without.remove(key);
            bad.push(engine.encode(Value::Object(without).to_string()));
        }
    }
    for bad in bad {
        let query = Query::new(5).order_by("n", false).after(Some(bad.clone()));
        assert!(
            matches!(
                store.query(c, "GLOBAL", &query).await,
                Err(StoreError::BadContinuation)
            ),
            "{bad:?}"
        );
    }
    // The genuine token still works and yields the rest.
    let rest = store
        .query(
            c,
            "GLOBAL",
            &Query::new(56).order_by("n", false).after(Some(token)),
        )
        .await
        .unwrap();
    assert_eq!(
        rest.items.iter().map(id_of).collect::<Vec<_>>(),
        [ascending[56].clone()]
    );
    assert!(rest.continuation.is_none());
}

pub async fn partition_isolation(store: Dyn) {
    let c = Container::Executions;
    for scope in ["GLOBAL", ORG] {
        for i in 0..3 {
            store
                .upsert(c, exec(scope, &format!("shared-{i}"), i, scope), None)
                .await
                .unwrap();
        }
    }
    store
        .upsert(c, exec(ORG, "org-only", 9, ORG), None)
        .await
        .unwrap();
    for scope in ["GLOBAL", ORG] {
        let docs = all_pages(&store, c, scope, Query::new(2).order_by("n", false)).await;
        assert!(docs
            .iter()
            .all(|d| d["scope"] == scope && d["status"] == scope));
        assert_eq!(docs.len(), if scope == ORG { 4 } else { 3 });
        let read = store.read(c, scope, "shared-1").await.unwrap().unwrap();
        assert_eq!(read.body["scope"], scope);
    }
    assert!(store.read(c, "GLOBAL", "org-only").await.unwrap().is_none());
    // A filter on the partition key field cannot reach across partitions.
    let across = Query::new(10).filter("scope", FilterOp::Eq(json!(ORG)));
    assert!(ids(&store, &across).await.is_empty());
    // ETags and deletes are per partition too.
    let global = store.read(c, "GLOBAL", "shared-0").await.unwrap().unwrap();
    assert!(matches!(
        store.delete(c, ORG, "shared-0", Some(&global.etag)).await,
        Err(StoreError::PreconditionFailed { .. })
    ));
    assert!(!store.delete(c, ORG, "org-missing", None).await.unwrap());
    assert!(store.delete(c, ORG, "shared-0", None).await.unwrap());
    assert!(store.read(c, "GLOBAL", "shared-0").await.unwrap().is_some());
    // Containers are separate namespaces.
    assert!(store
        .read(Container::Entities, "GLOBAL", "shared-0")
        .await
        .unwrap()
        .is_none());
    assert!(
        ids_in(&store, Container::Entities, "GLOBAL", &Query::new(10))
            .await
            .is_empty()
    );
}

fn feed_ids(documents: &[Value]) -> Vec<String> {
    documents.iter().map(id_of).collect()
}

/// Change-feed documents grouped by partition (`executionId`), in feed order within each.
fn by_partition_docs(documents: &[Value]) -> BTreeMap<String, Vec<Value>> {
    let mut groups: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    for doc in documents {
        let pk = doc["executionId"].as_str().unwrap_or_default().to_owned();
        groups.entry(pk).or_default().push(doc.clone());
    }
    groups
}

fn by_partition(documents: &[Value]) -> BTreeMap<String, Vec<String>> {
    by_partition_docs(documents)
        .into_iter()
        .map(|(pk, docs)| (pk, feed_ids(&docs)))
        .collect()
}

fn per_partition(groups: &[(&str, &[&str])]) -> BTreeMap<String, Vec<String>> {
    groups
        .iter()
        .map(|(pk, ids)| (pk.to_string(), ids.iter().map(|s| s.to_string()).collect()))
        .collect()
}

/// Reads the feed from `from` to its current end in pages of `page_size`.
async fn drain(
    store: &Dyn,
    container: Container,
    from: FeedPosition,
    page_size: usize,
) -> (Vec<Value>, String) {
    let mut position = from;
    let mut documents = Vec::new();
    for _ in 0..10_000 {
        let page = store
            .read_change_feed(container, &position, page_size)
            .await
            .unwrap();
        assert!(page.documents.len() <= page_size);
        let done = page.documents.is_empty()
            && position == FeedPosition::Continuation(page.continuation.clone());
        documents.extend(page.documents);
        position = FeedPosition::Continuation(page.continuation.clone());
        if done {
            return (documents, page.continuation);
        }
    }
    panic!("the change feed does not end");
}

pub async fn change_feed_order_dedupe_and_resume(store: Dyn) {
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
pub async fn ttl_fields_are_validated_and_kept(store: Dyn) {
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

pub async fn change_feed_steps_over_expired_documents(store: Dyn, clock: &ManualClock) {
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

pub async fn concurrent_writers_and_optimistic_concurrency(store: Dyn) {
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
pub async fn transactional_batch_is_all_or_nothing(store: Dyn) {
    use super::{BatchOperation as Op, BatchOutcome, MAX_BATCH_OPERATIONS};
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
