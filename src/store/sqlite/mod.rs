//! The embedded default store: one SQLite file in WAL mode (so `simulate` in another process can
//! write while `serve` reads), a change-feed log with a monotonic position, and Cosmos-style TTL.
//!
//! This file holds `SqliteStore`, its connections (one writer; read-only readers, each reading
//! its own WAL snapshot) and the `Store` impl, which validates each call and runs it on a
//! connection through one of:
//! - `schema`: the file's tables, indexes, planner statistics and version, and opening it;
//! - `writes`: every write, inside one IMMEDIATE transaction; batches; the sweep of expired
//!   documents;
//! - `sql`: the backend-neutral `Query` rendered as SQL (pure); `page`: running it, a page at a
//!   time;
//! - `feed`: the change feed over `change_log`, and the count of pending changes;
//! - `rows`: rows ↔ documents (system properties), the point read, rusqlite errors;
//! - `space`: a failure on a full device named as such, with the store's path;
//! - `commits`: commit notices for change-feed readers, this process's and (through
//!   `wal_writes` and `PRAGMA data_version`) other processes'.

mod commits;
mod feed;
mod page;
mod rows;
mod schema;
mod space;
mod sql;
#[cfg(test)]
mod tests;
mod wal_writes;
mod writes;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;
use rusqlite::{Connection, Transaction, TransactionBehavior};
use serde_json::Value;

use super::patch::{self, PatchOp};
use super::query::Query;
use super::validate::validate;
use super::{
    BatchOperation, BatchOutcome, ChangeFeedPage, Container, ETag, FeedPosition, Page, Store,
    StoreError, StoredDocument,
};
use crate::clock::Clock;
use rows::backend;

const READERS: usize = 4;

#[derive(Debug)]
pub struct SqliteStore {
    writer: Arc<Mutex<Connection>>,
    readers: Arc<ReaderPool>,
    clock: Arc<dyn Clock>,
    commits: commits::Commits,
    /// The store file, named when its device is full.
    path: Arc<PathBuf>,
}

/// Read-only connections, so reads run on their own WAL snapshot and never queue behind writes.
#[derive(Debug)]
struct ReaderPool {
    connections: Vec<Mutex<Connection>>,
    next: AtomicUsize,
}

impl ReaderPool {
    /// A free connection if there is one, else waits on the next in turn (spreads the waiting).
    fn get(&self) -> MutexGuard<'_, Connection> {
        if let Some(free) = self.connections.iter().find_map(|c| c.try_lock().ok()) {
            return free;
        }
        let index = self.next.fetch_add(1, Ordering::Relaxed) % self.connections.len();
        // A panic while holding a reader leaves no half-done state: reads have no effects.
        self.connections[index]
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl SqliteStore {
    /// Opens (creating if needed) the store file and its schema. Blocking.
    pub fn open(path: &Path, clock: Arc<dyn Clock>) -> Result<SqliteStore, StoreError> {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|e| space::io_error(e, parent))?;
        }
        let explain = |e| space::explain(e, path);
        let writer = schema::open_writer(path).map_err(explain)?;
        let connections = (0..READERS)
            .map(|_| schema::open_connection(path, true).map(Mutex::new))
            .collect::<Result<Vec<_>, _>>()
            .map_err(explain)?;
        Ok(SqliteStore {
            writer: Arc::new(Mutex::new(writer)),
            readers: Arc::new(ReaderPool {
                connections,
                next: AtomicUsize::new(0),
            }),
            clock,
            commits: commits::Commits::new(path),
            path: Arc::new(path.to_owned()),
        })
    }

    /// Runs blocking work on a reader connection; `now` is the clock's epoch milliseconds.
    async fn read_with<T: Send + 'static>(
        &self,
        work: impl FnOnce(&mut Connection, i64) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let readers = self.readers.clone();
        let now = self.clock.now().epoch_millis();
        tokio::task::spawn_blocking(move || work(&mut readers.get(), now))
            .await
            .map_err(|e| StoreError::Backend(format!("store task failed: {e}")))?
            .map_err(|e| space::explain(e, &self.path))
    }

    /// Runs blocking work in one IMMEDIATE transaction on the writer connection: taking the
    /// write lock up front means a conditional write's check and its write see the same state.
    async fn write_with<T: Send + 'static>(
        &self,
        work: impl FnOnce(&Transaction<'_>, i64) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let writer = self.writer.clone();
        let now = self.clock.now().epoch_millis();
        let result = tokio::task::spawn_blocking(move || {
            // A panic mid-transaction rolled it back when the Transaction dropped.
            let mut conn = writer.lock().unwrap_or_else(|p| p.into_inner());
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(backend)?;
            let result = work(&tx, now)?;
            tx.commit().map_err(backend)?;
            Ok(result)
        })
        .await
        .map_err(|e| StoreError::Backend(format!("store task failed: {e}")))?
        .map_err(|e| space::explain(e, &self.path));
        if result.is_ok() {
            self.commits.committed();
        }
        result
    }
}

#[async_trait]
impl Store for SqliteStore {
    fn backend(&self) -> &'static str {
        "sqlite"
    }

    async fn read(
        &self,
        container: Container,
        partition_key: &str,
        id: &str,
    ) -> Result<Option<StoredDocument>, StoreError> {
        let (pk, id) = (partition_key.to_owned(), id.to_owned());
        self.read_with(move |conn, now| rows::read_live(conn, container, &pk, &id, now))
            .await
    }

    async fn create(&self, container: Container, doc: Value) -> Result<StoredDocument, StoreError> {
        let doc = validate(container, doc)?;
        self.write_with(move |tx, now| writes::tx_create(tx, container, doc, now))
            .await
    }

    async fn upsert(
        &self,
        container: Container,
        doc: Value,
        if_match: Option<&ETag>,
    ) -> Result<StoredDocument, StoreError> {
        let doc = validate(container, doc)?;
        let if_match = if_match.cloned();
        self.write_with(move |tx, now| {
            writes::tx_upsert(tx, container, doc, if_match.as_ref(), now)
        })
        .await
    }

    async fn upsert_all(&self, container: Container, docs: Vec<Value>) -> Result<(), StoreError> {
        let docs = docs
            .into_iter()
            .map(|doc| validate(container, doc))
            .collect::<Result<Vec<_>, _>>()?;
        self.write_with(move |tx, now| {
            for doc in docs {
                writes::tx_upsert(tx, container, doc, None, now)?;
            }
            Ok(())
        })
        .await
    }

    async fn patch(
        &self,
        container: Container,
        partition_key: &str,
        id: &str,
        operations: &[PatchOp],
        if_match: Option<&ETag>,
    ) -> Result<StoredDocument, StoreError> {
        patch::check(container, operations)?;
        let (pk, id) = (partition_key.to_owned(), id.to_owned());
        let (operations, if_match) = (operations.to_vec(), if_match.cloned());
        self.write_with(move |tx, now| {
            writes::tx_patch(tx, container, &pk, id, &operations, if_match.as_ref(), now)
        })
        .await
    }

    async fn replace(
        &self,
        container: Container,
        doc: Value,
        if_match: Option<&ETag>,
    ) -> Result<StoredDocument, StoreError> {
        let doc = validate(container, doc)?;
        let if_match = if_match.cloned();
        self.write_with(move |tx, now| {
            writes::tx_replace(tx, container, doc, if_match.as_ref(), now)
        })
        .await
    }

    async fn delete(
        &self,
        container: Container,
        partition_key: &str,
        id: &str,
        if_match: Option<&ETag>,
    ) -> Result<bool, StoreError> {
        let (pk, id, if_match) = (partition_key.to_owned(), id.to_owned(), if_match.cloned());
        self.write_with(move |tx, now| {
            writes::tx_delete(tx, container, &pk, &id, if_match.as_ref(), now)
        })
        .await
    }

    async fn batch(
        &self,
        container: Container,
        partition_key: &str,
        operations: Vec<BatchOperation>,
    ) -> Result<Vec<BatchOutcome>, StoreError> {
        let prepared = writes::prepare_batch(container, partition_key, operations)?;
        self.write_with(move |tx, now| writes::tx_batch(tx, container, prepared, now))
            .await
    }

    async fn query(
        &self,
        container: Container,
        partition_key: &str,
        query: &Query,
    ) -> Result<Page, StoreError> {
        let rendered = sql::render_query(
            container,
            partition_key,
            query,
            self.clock.now().epoch_millis(),
        )?;
        self.read_with(move |conn, _| page::run_query(conn, rendered))
            .await
    }

    async fn read_change_feed(
        &self,
        container: Container,
        from: &FeedPosition,
        max_items: usize,
    ) -> Result<ChangeFeedPage, StoreError> {
        let from = from.clone();
        self.read_with(move |conn, now| feed::read_feed(conn, container, &from, max_items, now))
            .await
    }

    async fn read_change_feed_text(
        &self,
        container: Container,
        from: &FeedPosition,
        max_items: usize,
    ) -> Result<super::TextFeedPage, StoreError> {
        let from = from.clone();
        self.read_with(move |conn, now| {
            feed::read_feed_text(conn, container, &from, max_items, now)
        })
        .await
    }

    async fn pending_changes(
        &self,
        container: Container,
        continuation: &str,
    ) -> Result<Option<u64>, StoreError> {
        let after = feed::parse_position(continuation)?;
        self.read_with(move |conn, _| feed::pending(conn, container, after).map(Some))
            .await
    }

    fn commit_signal(&self) -> Option<tokio::sync::watch::Receiver<u64>> {
        Some(self.commits.subscribe())
    }

    async fn purge_expired(&self) -> Result<u64, StoreError> {
        self.write_with(writes::tx_purge_expired).await
    }
}
