//! What the checks share: the documents they write, reading ids back, following every page of
//! a query or the change feed, and the system properties every document carries.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::{json, Value};

use crate::store::{Container, FeedPosition, Query, Store};

pub(super) type Dyn = Arc<dyn Store>;

pub(super) const ORG: &str = "org-0f4a6f6c-1111-4c2e-9a57-3d2b8f1f0a01";

pub(super) fn exec(scope: &str, id: &str, n: i64, status: &str) -> Value {
    json!({"id": id, "type": "execution", "scope": scope, "n": n, "status": status,
           "startedAt": format!("2025-01-01T00:00:{:02}.000000Z", n % 60)})
}

pub(super) fn id_of(doc: &Value) -> String {
    doc["id"]
        .as_str()
        .expect("documents have string ids")
        .to_owned()
}

pub(super) async fn ids_in(
    store: &Dyn,
    container: Container,
    pk: &str,
    query: &Query,
) -> Vec<String> {
    let page = store.query(container, pk, query).await.unwrap();
    assert!(page.continuation.is_none(), "expected a single page");
    page.items.iter().map(id_of).collect()
}

pub(super) async fn ids(store: &Dyn, query: &Query) -> Vec<String> {
    ids_in(store, Container::Executions, "GLOBAL", query).await
}

/// Every page of `query`, following continuations; checks page sizes on the way.
pub(super) async fn all_pages(
    store: &Dyn,
    container: Container,
    pk: &str,
    query: Query,
) -> Vec<Value> {
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
pub(super) fn assert_system_properties(doc: &Value) {
    assert!(doc["_etag"].is_string(), "{doc}");
    assert!(doc["_ts"].is_i64(), "{doc}");
    assert!(doc.get("_lsn").is_none_or(Value::is_i64), "{doc}");
}

pub(super) fn feed_ids(documents: &[Value]) -> Vec<String> {
    documents.iter().map(id_of).collect()
}

/// Change-feed documents grouped by partition (`executionId`), in feed order within each.
pub(super) fn by_partition_docs(documents: &[Value]) -> BTreeMap<String, Vec<Value>> {
    let mut groups: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    for doc in documents {
        let pk = doc["executionId"].as_str().unwrap_or_default().to_owned();
        groups.entry(pk).or_default().push(doc.clone());
    }
    groups
}

pub(super) fn by_partition(documents: &[Value]) -> BTreeMap<String, Vec<String>> {
    by_partition_docs(documents)
        .into_iter()
        .map(|(pk, docs)| (pk, feed_ids(&docs)))
        .collect()
}

pub(super) fn per_partition(groups: &[(&str, &[&str])]) -> BTreeMap<String, Vec<String>> {
    groups
        .iter()
        .map(|(pk, ids)| (pk.to_string(), ids.iter().map(|s| s.to_string()).collect()))
        .collect()
}

/// Reads the feed from `from` to its current end in pages of `page_size`.
pub(super) async fn drain(
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
