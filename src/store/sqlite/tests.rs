//! The SQLite backend's own tests (the behaviour every backend shares is `store::conformance`):
//! opening and versioning the file, busy and locked files, the SQL a query renders and the
//! indexes its plan uses, continuation tokens and feed positions, several stores on one file.

use super::schema::SCHEMA_VERSION;
use super::sql::render_query;
use super::*;
use crate::clock::{ManualClock, SystemClock};
use crate::model::Timestamp;
use crate::store::keyset;
use crate::store::query::FilterOp;
use serde_json::json;

fn clock() -> Arc<ManualClock> {
    Arc::new(ManualClock::new(
        Timestamp::parse("2025-01-01T00:00:00Z").unwrap(),
    ))
}

fn fresh() -> (tempfile::TempDir, Arc<ManualClock>, Arc<dyn Store>) {
    let dir = tempfile::tempdir().unwrap();
    let clock = clock();
    let store = SqliteStore::open(&dir.path().join("t.db"), clock.clone()).unwrap();
    (dir, clock, Arc::new(store))
}

#[test]
fn open_creates_parent_directories_wal_and_schema_version() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nested/deeper/store.db");
    let store = SqliteStore::open(&path, clock()).unwrap();
    let writer = store.writer.lock().unwrap();
    let mode: String = writer
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
    let version: i64 = writer
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(version, SCHEMA_VERSION);
    drop(writer);
    drop(store);
    // A file from a newer build is refused rather than misread.
    Connection::open(&path)
        .unwrap()
        .execute_batch("PRAGMA user_version = 99")
        .unwrap();
    assert!(matches!(
        SqliteStore::open(&path, clock()),
        Err(StoreError::Backend(_))
    ));
}

#[test]
fn busy_and_locked_are_transient() {
    let error = |code| rusqlite::Error::SqliteFailure(rusqlite::ffi::Error::new(code), None);
    assert!(backend(error(rusqlite::ffi::SQLITE_BUSY)).is_transient());
    assert!(backend(error(rusqlite::ffi::SQLITE_LOCKED)).is_transient());
    assert!(!backend(error(rusqlite::ffi::SQLITE_CORRUPT)).is_transient());
}

#[test]
fn a_locked_file_reports_unavailable_not_a_hang() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.db");
    let store = SqliteStore::open(&path, clock()).unwrap();
    let other = Connection::open(&path).unwrap();
    other.execute_batch("BEGIN IMMEDIATE").unwrap();
    // Shorten the wait so the test is quick; production waits BUSY_TIMEOUT.
    store
        .writer
        .lock()
        .unwrap()
        .busy_timeout(std::time::Duration::from_millis(50))
        .unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let result = runtime.block_on(store.upsert(Container::Leases, json!({"id": "x"}), None));
    assert!(
        matches!(result, Err(StoreError::Unavailable(_))),
        "{result:?}"
    );
    other.execute_batch("ROLLBACK").unwrap();
    runtime
        .block_on(store.upsert(Container::Leases, json!({"id": "x"}), None))
        .unwrap();
}

#[test]
fn query_sql_binds_every_value() {
    let evil = "x'); DROP TABLE documents; --";
    let query = Query::new(10)
        .filter("status", FilterOp::Eq(json!(evil)))
        .filter("n", FilterOp::In(vec![json!(1), json!(evil), json!(null)]))
        .order_by("data.startedAt", true)
        .order_by("n", false);
    let rendered = render_query(Container::Executions, evil, &query, 0).unwrap();
    assert!(!rendered.sql.contains("DROP"), "{}", rendered.sql);
    assert!(rendered
        .sql
        .contains("json_extract(body, '$.data.startedAt')"));
    let placeholders = rendered.sql.matches('?').count();
    assert_eq!(placeholders, rendered.args.len(), "{}", rendered.sql);
    // Array and object values have no SQL form: refused, not stringified.
    let nested = Query::new(1).filter("n", FilterOp::Eq(json!({"a": 1})));
    assert!(matches!(
        render_query(Container::Executions, "p", &nested, 0),
        Err(StoreError::InvalidQuery(_))
    ));
}

/// The execution list must walk `documents_by_started_at` in order, not sort the partition:
/// that is what keeps a page at a few milliseconds over 50,000 executions.
#[test]
fn the_execution_list_uses_the_started_at_index() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("plan.db");
    let _store = SqliteStore::open(&path, clock()).unwrap();
    let connection = Connection::open(&path).unwrap();
    for continuation in [None, Some("page-2")] {
        let mut query = Query::new(25)
            .filter("type", FilterOp::Eq(json!("execution")))
            .filter("status", FilterOp::Eq(json!("Failed")))
            .order_by("startedAt", true);
        let fingerprint = render_query(Container::Executions, "GLOBAL", &query, 0)
            .unwrap()
            .fingerprint;
        if continuation.is_some() {
            query.continuation = Some(keyset::encode(
                &fingerprint,
                vec![json!("2026-11-01T00:00:00.000000Z")],
                "id-9",
            ));
        }
        let rendered = render_query(Container::Executions, "GLOBAL", &query, 0).unwrap();
        let mut statement = connection
            .prepare(&format!("EXPLAIN QUERY PLAN {}", rendered.sql))
            .unwrap();
        let plan: Vec<String> = statement
            .query_map(rusqlite::params_from_iter(rendered.args.iter()), |row| {
                row.get::<_, String>(3)
            })
            .unwrap()
            .map(Result::unwrap)
            .collect();
        let plan = plan.join(" | ");
        assert!(plan.contains("documents_by_started_at"), "{plan}");
        assert!(!plan.contains("TEMP B-TREE"), "{plan}");
    }
}

#[test]
fn status_filters_use_the_status_index() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("plan.db");
    let _store = SqliteStore::open(&path, clock()).unwrap();
    let connection = Connection::open(&path).unwrap();
    let query = Query::new(1000)
        .filter("type", FilterOp::Eq(json!("execution")))
        .filter("status", FilterOp::Eq(json!("Running")));
    let rendered = render_query(Container::Executions, "GLOBAL", &query, 0).unwrap();
    let plan: Vec<String> = connection
        .prepare(&format!("EXPLAIN QUERY PLAN {}", rendered.sql))
        .unwrap()
        .query_map(rusqlite::params_from_iter(rendered.args.iter()), |row| {
            row.get::<_, String>(3)
        })
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert!(plan.join(" ").contains("documents_by_status"), "{plan:?}");
}

#[tokio::test]
async fn continuation_tokens_are_tied_to_their_query() {
    let (_dir, _clock, store) = fresh();
    let c = Container::Executions;
    for i in 0..5 {
        let doc = json!({"id": format!("d{i}"), "scope": "GLOBAL", "n": i, "m": i});
        store.upsert(c, doc, None).await.unwrap();
    }
    let by_n = Query::new(2).order_by("n", false);
    let token = store.query(c, "GLOBAL", &by_n).await.unwrap().continuation;
    assert!(token.is_some());
    // Same shape, other field / other direction / other partition / other filter value.
    for other in [
        Query::new(2).order_by("m", false),
        Query::new(2).order_by("n", true),
        Query::new(2)
            .filter("n", FilterOp::Ge(json!(0)))
            .order_by("n", false),
    ] {
        assert!(matches!(
            store.query(c, "GLOBAL", &other.after(token.clone())).await,
            Err(StoreError::BadContinuation)
        ));
    }
    assert!(matches!(
        store
            .query(c, "other", &by_n.clone().after(token.clone()))
            .await,
        Err(StoreError::BadContinuation)
    ));
    // The page size may change between pages.
    let rest = store
        .query(
            c,
            "GLOBAL",
            &Query::new(10).order_by("n", false).after(token),
        )
        .await
        .unwrap();
    assert_eq!(rest.items.len(), 3);
}

#[tokio::test]
async fn feed_positions_the_file_never_issued_are_refused() {
    let (_dir, _clock, store) = fresh();
    let c = Container::Leases;
    store.upsert(c, json!({"id": "a"}), None).await.unwrap();
    for bad in ["999999", "-1", "1.5", "", "abc"] {
        assert!(
            matches!(
                store
                    .read_change_feed(c, &FeedPosition::Continuation(bad.into()), 10)
                    .await,
                Err(StoreError::BadContinuation)
            ),
            "{bad:?}"
        );
    }
    let page = store
        .read_change_feed(c, &FeedPosition::Beginning, 0)
        .await
        .unwrap();
    assert!(page.documents.is_empty());
    assert_eq!(page.continuation, "0");
}

#[tokio::test]
async fn positions_survive_reopen_and_are_never_reused() {
    let (dir, clock, store) = fresh();
    let c = Container::ExecutionData;
    let doc = |id: &str| json!({"id": id, "executionId": "e"});
    store.upsert(c, doc("a"), None).await.unwrap();
    let newest = store.upsert(c, doc("b"), None).await.unwrap();
    let position = newest.body["_lsn"].as_i64().unwrap();
    // Deleting the newest document must not let its position be handed out again.
    store.delete(c, "e", "b", None).await.unwrap();
    let now = store
        .read_change_feed(c, &FeedPosition::Now, 10)
        .await
        .unwrap();
    assert_eq!(now.continuation, position.to_string());
    drop(store);
    let reopened = SqliteStore::open(&dir.path().join("t.db"), clock).unwrap();
    assert!(reopened.read(c, "e", "a").await.unwrap().is_some());
    let next = reopened.upsert(c, doc("c"), None).await.unwrap();
    assert!(next.body["_lsn"].as_i64().unwrap() > position);
    let page = reopened
        .read_change_feed(c, &FeedPosition::Continuation(now.continuation), 10)
        .await
        .unwrap();
    assert_eq!(page.documents.len(), 1);
    assert_eq!(page.documents[0]["id"], "c");
    assert_eq!(page.continuation, next.body["_lsn"].to_string());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_stores_on_one_file_write_concurrently_and_the_feed_sees_each_once() {
    const WRITERS: usize = 8;
    const PER_WRITER: usize = 100;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("shared.db");
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    // Two stores = two sets of connections, which is what a second process amounts to.
    let first: Arc<dyn Store> = Arc::new(SqliteStore::open(&path, clock.clone()).unwrap());
    let second: Arc<dyn Store> = Arc::new(SqliteStore::open(&path, clock.clone()).unwrap());
    let mut tasks = Vec::new();
    for writer in 0..WRITERS {
        let store = if writer % 2 == 0 {
            first.clone()
        } else {
            second.clone()
        };
        tasks.push(tokio::spawn(async move {
            for i in 0..PER_WRITER {
                let doc =
                    json!({"id": format!("w{writer}-{i}"), "executionId": format!("e{writer}")});
                store
                    .upsert(Container::ExecutionData, doc, None)
                    .await
                    .unwrap();
            }
        }));
    }
    // Plain OS threads through a third store, as `simulate` would write from its own runtime.
    let third = Arc::new(SqliteStore::open(&path, clock).unwrap());
    let threads: Vec<_> = (0..2)
        .map(|t| {
            let store = third.clone();
            std::thread::spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .build()
                    .unwrap();
                for i in 0..PER_WRITER {
                    let doc = json!({"id": format!("t{t}-{i}"), "executionId": format!("t{t}")});
                    runtime
                        .block_on(store.upsert(Container::ExecutionData, doc, None))
                        .unwrap();
                }
            })
        })
        .collect();
    let total = (WRITERS + 2) * PER_WRITER;
    // Read the feed while the writes happen, through one of the stores.
    let mut seen = Vec::new();
    let mut last_lsn = 0;
    let mut position = FeedPosition::Beginning;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while seen.len() < total {
        assert!(
            std::time::Instant::now() < deadline,
            "feed stalled at {}",
            seen.len()
        );
        let page = second
            .read_change_feed(Container::ExecutionData, &position, 64)
            .await
            .unwrap();
        for doc in &page.documents {
            let lsn = doc["_lsn"].as_i64().unwrap();
            assert!(lsn > last_lsn, "feed went backwards");
            last_lsn = lsn;
            seen.push(doc["id"].as_str().unwrap().to_owned());
        }
        position = FeedPosition::Continuation(page.continuation);
        tokio::time::sleep(std::time::Duration::from_millis(2)).await;
    }
    for task in tasks {
        task.await.unwrap();
    }
    for thread in threads {
        thread.join().unwrap();
    }
    let rest = second
        .read_change_feed(Container::ExecutionData, &position, 64)
        .await
        .unwrap();
    assert!(rest.documents.is_empty(), "more than {total} changes");
    let unique: std::collections::BTreeSet<_> = seen.iter().collect();
    assert_eq!(seen.len(), total);
    assert_eq!(unique.len(), total, "duplicates in the feed");
    let stored = first
        .query(Container::ExecutionData, "t1", &Query::new(1000))
        .await
        .unwrap();
    assert_eq!(stored.items.len(), PER_WRITER);
}

/// The default (read + conditional replace) patch, over a store whose own patch is not used.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_modify_write_retries_lost_races_and_honours_if_match() {
    use std::sync::Arc;
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(crate::clock::ManualClock::new(
        crate::model::Timestamp::from_epoch_millis(1_700_000_000_000).unwrap(),
    ));
    let store: Arc<dyn Store> =
        Arc::new(SqliteStore::open(&dir.path().join("t.db"), clock).unwrap());
    let c = Container::Entities;
    let created = store
        .create(c, json!({"id": "m", "scope": "GLOBAL", "total": 0}))
        .await
        .unwrap();
    let mut tasks = Vec::new();
    for _ in 0..4 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            for _ in 0..5 {
                let ops = [crate::store::patch::PatchOp::Increment(
                    crate::store::Field::new("total").unwrap(),
                    1,
                )];
                crate::store::read_modify_write(store.as_ref(), c, "GLOBAL", "m", &ops, None)
                    .await
                    .unwrap();
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let read = store.read(c, "GLOBAL", "m").await.unwrap().unwrap();
    assert_eq!(read.body["total"], 20, "an increment was lost");
    let ops = [crate::store::patch::PatchOp::Increment(
        crate::store::Field::new("total").unwrap(),
        1,
    )];
    assert!(matches!(
        crate::store::read_modify_write(
            store.as_ref(),
            c,
            "GLOBAL",
            "m",
            &ops,
            Some(&created.etag)
        )
        .await,
        Err(StoreError::PreconditionFailed { .. })
    ));
    assert!(matches!(
        crate::store::read_modify_write(store.as_ref(), c, "GLOBAL", "nope", &ops, None).await,
        Err(StoreError::NotFound { .. })
    ));
    let patched =
        crate::store::read_modify_write(store.as_ref(), c, "GLOBAL", "m", &ops, Some(&read.etag))
            .await
            .unwrap();
    assert_eq!(patched.body["total"], 21);
}

/// A feed reader learns of commits without polling: this store's own at once, and those of
/// another writer on the same file (another process, here a second store with its own
/// connections) through the watcher's `PRAGMA data_version` check, after a quiet spell (the
/// watcher asleep until the WAL file is written, or backed off to its longest interval) soon.
#[tokio::test]
async fn commits_are_signalled_from_this_store_at_once_and_from_other_writers_soon() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.db");
    let store = SqliteStore::open(&path, clock()).unwrap();
    let mut commits = store.commit_signal().expect("SQLite tells of commits");
    commits.borrow_and_update();
    let doc = |id: &str| json!({"id": id, "executionId": "e", "type": "log"});

    store
        .upsert(Container::ExecutionData, doc("mine"), None)
        .await
        .unwrap();
    assert!(
        commits.has_changed().unwrap(),
        "a commit of this store is signalled before the write returns"
    );
    commits.borrow_and_update();
    // The watcher sees that commit too (it reads on a connection of its own), once.
    tokio::time::timeout(std::time::Duration::from_secs(2), commits.changed())
        .await
        .expect("the watcher sees the data version move")
        .unwrap();

    // Quiet: nothing is signalled while nobody writes.
    tokio::time::sleep(commits::STAY_QUICK_FOR + commits::MAX_WATCH_INTERVAL * 5).await;
    assert!(!commits.has_changed().unwrap(), "a signal without a commit");

    let other = SqliteStore::open(&path, clock()).unwrap();
    let written = std::time::Instant::now();
    other
        .upsert(Container::ExecutionData, doc("theirs"), None)
        .await
        .unwrap();
    tokio::time::timeout(std::time::Duration::from_secs(2), commits.changed())
        .await
        .expect("another writer's commit is signalled")
        .unwrap();
    assert!(
        written.elapsed() < std::time::Duration::from_millis(500),
        "seen after {:?}",
        written.elapsed()
    );
}
