//! Checks of queries: parameters and their types, ordering with ties, complete and stable
//! pagination with tokens only its own query accepts, partition isolation.

use std::collections::BTreeSet;

use base64::Engine;
use serde_json::{json, Value};

use super::support::*;
use crate::store::{Container, FilterOp, Query, StoreError};

pub(super) async fn queries_with_parameters(store: Dyn) {
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

pub(super) async fn ordering_with_ties(store: Dyn) {
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

pub(super) async fn pagination_is_complete_and_stable(store: Dyn) {
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

pub(super) async fn partition_isolation(store: Dyn) {
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
