//! The `Store` trait: what every function needs from a document database, shaped after Cosmos DB
//! (point operations with ETags, single-partition parameterized queries, a latest-version change
//! feed with a resumable position, per-document TTL) so the SQLite default and the Cosmos backend
//! are interchangeable; the types of that contract (documents, positions, batches); and the
//! helpers every caller may use over any backend (`query_all`, the default `patch`).

use async_trait::async_trait;
use serde_json::Value;

use super::containers::Container;
use super::error::StoreError;
use super::patch::{self, PatchOp};
use super::query::{Page, Query};

/// An entity tag as the backend issued it (opaque; Cosmos includes the quotes).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ETag(pub String);

impl std::fmt::Display for ETag {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// A document as stored: the body carries the system properties `_etag` and `_ts` (epoch seconds
/// of the last write), as Cosmos returns them, and `_lsn` (its change-feed position) where the
/// backend has it (SQLite always; Cosmos in change-feed documents). Nothing may rely on `_lsn`.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredDocument {
    pub body: Value,
    pub etag: ETag,
}

/// Where a change-feed read starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FeedPosition {
    /// Every document currently in the container.
    Beginning,
    /// Only changes made after this call.
    Now,
    /// Resume from a `ChangeFeedPage::continuation`.
    Continuation(String),
}

#[derive(Debug, Clone, PartialEq)]
pub struct ChangeFeedPage {
    /// Latest version of each changed document, in change order (per partition at least), with
    /// system properties. Deletes and TTL expiries are not delivered (as in Cosmos latest-version mode).
    pub documents: Vec<Value>,
    /// The position after these documents; persist it after handling them to resume there.
    pub continuation: String,
}

/// A change-feed page with each document as its JSON text (what the change-feed functions read).
#[derive(Debug, Clone, PartialEq)]
pub struct TextFeedPage {
    pub documents: Vec<String>,
    pub continuation: String,
}

#[async_trait]
pub trait Store: Send + Sync + std::fmt::Debug {
    /// Short backend name for logs and health (`sqlite`, `cosmos`).
    fn backend(&self) -> &'static str;

    /// Point read. `Ok(None)` when absent or expired.
    async fn read(
        &self,
        container: Container,
        partition_key: &str,
        id: &str,
    ) -> Result<Option<StoredDocument>, StoreError>;

    /// Insert; `Conflict` when a live document with that id exists in the partition.
    /// The document must carry `id` and the container's partition-key field (strings).
    async fn create(&self, container: Container, doc: Value) -> Result<StoredDocument, StoreError>;

    /// Insert or replace. With `if_match`, replaces only that version (`PreconditionFailed`
    /// otherwise, including when the document does not exist).
    async fn upsert(
        &self,
        container: Container,
        doc: Value,
        if_match: Option<&ETag>,
    ) -> Result<StoredDocument, StoreError>;

    /// Upserts every document (any partitions) in one transaction where the backend has one
    /// across partitions (SQLite); elsewhere one after another (Cosmos DB: a transaction holds
    /// one partition), stopping at the first error.
    async fn upsert_all(&self, container: Container, docs: Vec<Value>) -> Result<(), StoreError> {
        for doc in docs {
            self.upsert(container, doc, None).await?;
        }
        Ok(())
    }

    /// Replace an existing document (`NotFound` if absent), optionally only that version.
    async fn replace(
        &self,
        container: Container,
        doc: Value,
        if_match: Option<&ETag>,
    ) -> Result<StoredDocument, StoreError>;

    /// Applies field operations to an existing document atomically (`NotFound` if absent),
    /// optionally only to that version. Cheaper than read + replace on Cosmos. The default is
    /// an optimistic read + conditional replace (backends override it).
    async fn patch(
        &self,
        container: Container,
        partition_key: &str,
        id: &str,
        operations: &[PatchOp],
        if_match: Option<&ETag>,
    ) -> Result<StoredDocument, StoreError> {
        read_modify_write(self, container, partition_key, id, operations, if_match).await
    }

    /// Delete; `Ok(false)` when there was nothing to delete.
    async fn delete(
        &self,
        container: Container,
        partition_key: &str,
        id: &str,
        if_match: Option<&ETag>,
    ) -> Result<bool, StoreError>;

    /// Several writes in one partition, all or nothing (a Cosmos transactional batch): the
    /// first failing operation's error is returned and nothing is written. At most
    /// `MAX_BATCH_OPERATIONS` operations.
    async fn batch(
        &self,
        container: Container,
        partition_key: &str,
        operations: Vec<BatchOperation>,
    ) -> Result<Vec<BatchOutcome>, StoreError>;

    /// A parameterized query within one partition, one page at a time.
    async fn query(
        &self,
        container: Container,
        partition_key: &str,
        query: &Query,
    ) -> Result<Page, StoreError>;

    /// Up to `max_items` changes after `from`, across all partitions of the container.
    async fn read_change_feed(
        &self,
        container: Container,
        from: &FeedPosition,
        max_items: usize,
    ) -> Result<ChangeFeedPage, StoreError>;

    /// `read_change_feed` with each document as its JSON text. Backends that hold documents as
    /// text override it so no tree is built and serialized again.
    async fn read_change_feed_text(
        &self,
        container: Container,
        from: &FeedPosition,
        max_items: usize,
    ) -> Result<TextFeedPage, StoreError> {
        let page = self.read_change_feed(container, from, max_items).await?;
        Ok(TextFeedPage {
            documents: page.documents.iter().map(Value::to_string).collect(),
            continuation: page.continuation,
        })
    }

    /// How many changes lie after `continuation` (for lag reporting); `None` if unknown.
    async fn pending_changes(
        &self,
        _container: Container,
        _continuation: &str,
    ) -> Result<Option<u64>, StoreError> {
        Ok(None)
    }

    /// Tells of commits, so a change-feed reader can wake on them instead of polling: the value
    /// changes after every commit of this process at once, and (for a file shared with other
    /// processes) after theirs soon (SQLite: within 2 ms while they keep writing, 100 ms after a
    /// quiet spell). `None`: this backend cannot tell
    /// (Cosmos DB); poll it.
    fn commit_signal(&self) -> Option<tokio::sync::watch::Receiver<u64>> {
        None
    }

    /// Request units consumed since the store was opened (`None`: the backend has no RU cost).
    fn request_units(&self) -> Option<f64> {
        None
    }

    /// Physically remove expired documents. Cosmos does this itself; embedded stores need a sweeper.
    async fn purge_expired(&self) -> Result<u64, StoreError> {
        Ok(0)
    }
}

/// Cosmos DB's limit on the operations of one transactional batch.
pub const MAX_BATCH_OPERATIONS: usize = 100;

/// One write of a `Store::batch`.
#[derive(Debug, Clone, PartialEq)]
pub enum BatchOperation {
    Create(Value),
    Upsert { doc: Value, if_match: Option<ETag> },
    Replace { doc: Value, if_match: Option<ETag> },
    Delete { id: String, if_match: Option<ETag> },
}

#[derive(Debug, Clone, PartialEq)]
pub enum BatchOutcome {
    Written(StoredDocument),
    /// Whether there was a document to delete.
    Deleted(bool),
}

/// Refuses empty and oversized batches before any backend is asked.
pub fn check_batch_size(operations: usize) -> Result<(), StoreError> {
    if operations == 0 || operations > MAX_BATCH_OPERATIONS {
        return Err(StoreError::InvalidQuery(format!(
            "a batch holds 1 to {MAX_BATCH_OPERATIONS} operations, not {operations}"
        )));
    }
    Ok(())
}

/// Every page of a single-partition query, following its continuation tokens to the end.
pub async fn query_all(
    store: &dyn Store,
    container: Container,
    partition_key: &str,
    mut query: Query,
) -> Result<Vec<Value>, StoreError> {
    let mut items = Vec::new();
    loop {
        let page = store.query(container, partition_key, &query).await?;
        items.extend(page.items);
        match page.continuation {
            Some(next) => query.continuation = Some(next),
            None => return Ok(items),
        }
    }
}

/// The string value of a document field (ids and partition keys are strings in every container).
pub fn string_field<'a>(doc: &'a Value, field: &str) -> Option<&'a str> {
    doc.get(field).and_then(Value::as_str)
}

/// How many lost races a read-modify-write patch retries before reporting contention.
const MAX_RACES: usize = 16;

/// `Store::patch` for backends without a native one: read, apply, replace only that version;
/// a concurrent write in between is retried (unless the caller fixed the version).
pub async fn read_modify_write<S: Store + ?Sized>(
    store: &S,
    container: Container,
    partition_key: &str,
    id: &str,
    operations: &[PatchOp],
    if_match: Option<&ETag>,
) -> Result<StoredDocument, StoreError> {
    patch::check(container, operations)?;
    for _ in 0..MAX_RACES {
        let current = store
            .read(container, partition_key, id)
            .await?
            .ok_or_else(|| StoreError::NotFound {
                container: container.name(),
                id: id.to_owned(),
            })?;
        if if_match.is_some_and(|expected| *expected != current.etag) {
            return Err(StoreError::PreconditionFailed {
                container: container.name(),
                id: id.to_owned(),
            });
        }
        let mut doc = current.body;
        patch::apply(container, &mut doc, operations)?;
        match store.replace(container, doc, Some(&current.etag)).await {
            Err(StoreError::PreconditionFailed { .. }) if if_match.is_none() => continue,
            other => return other,
        }
    }
    Err(StoreError::Unavailable(format!(
        "patch of {id:?} in {container} lost {MAX_RACES} races with other writers"
    )))
}
