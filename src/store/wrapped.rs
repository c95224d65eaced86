//! A store that forwards every call to another, with two hooks that make it a backend with one
//! difference: writes to some container (or of some document) fail (a backend that is down for
//! them, a poison document), or documents read back lack something (Cosmos returns `_lsn` only
//! in the change feed). The tests that need such a backend, and the fault injection of debug
//! builds (`faults`), use this one wrapper.

use std::sync::Arc;

use async_trait::async_trait;
use serde_json::Value;

use super::{
    BatchOperation, BatchOutcome, ChangeFeedPage, Container, ETag, FeedPosition, Page, Query,
    Store, StoreError, StoredDocument, TextFeedPage,
};

/// Asked before a write with its container and a rendering of what is written (built only when
/// asked for): an error is returned instead of writing.
pub(crate) type BeforeWrite =
    Arc<dyn Fn(Container, &dyn Fn() -> String) -> Result<(), StoreError> + Send + Sync>;

pub(crate) struct Wrapped {
    pub inner: Arc<dyn Store>,
    /// Asked before every write (create, upsert, replace, delete, batch; patch goes through
    /// read + replace).
    pub before_write: BeforeWrite,
    /// Applied to every document a point read or a query returns (not the change feed's).
    pub on_read: fn(Value) -> Value,
}

impl std::fmt::Debug for Wrapped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Wrapped")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

impl Wrapped {
    /// `inner`, unchanged until a hook is set.
    pub fn new(inner: Arc<dyn Store>) -> Wrapped {
        Wrapped {
            inner,
            before_write: Arc::new(|_, _| Ok(())),
            on_read: |doc| doc,
        }
    }

    /// `inner`, with writes to the containers `fails` refuses failing.
    #[cfg(test)]
    pub fn failing_writes(
        inner: Arc<dyn Store>,
        fails: fn(Container) -> Result<(), StoreError>,
    ) -> Wrapped {
        Wrapped {
            before_write: Arc::new(move |container, _| fails(container)),
            ..Wrapped::new(inner)
        }
    }
}

#[async_trait]
impl Store for Wrapped {
    fn backend(&self) -> &'static str {
        self.inner.backend()
    }

    async fn read(
        &self,
        container: Container,
        partition_key: &str,
        id: &str,
    ) -> Result<Option<StoredDocument>, StoreError> {
        let found = self.inner.read(container, partition_key, id).await?;
        Ok(found.map(|mut doc| {
            doc.body = (self.on_read)(doc.body);
            doc
        }))
    }

    async fn create(&self, container: Container, doc: Value) -> Result<StoredDocument, StoreError> {
        (self.before_write)(container, &|| doc.to_string())?;
        self.inner.create(container, doc).await
    }

    async fn upsert(
        &self,
        container: Container,
        doc: Value,
        if_match: Option<&ETag>,
    ) -> Result<StoredDocument, StoreError> {
        (self.before_write)(container, &|| doc.to_string())?;
        self.inner.upsert(container, doc, if_match).await
    }

    async fn upsert_all(&self, container: Container, docs: Vec<Value>) -> Result<(), StoreError> {
        for doc in &docs {
            (self.before_write)(container, &|| doc.to_string())?;
        }
        self.inner.upsert_all(container, docs).await
    }

    async fn replace(
        &self,
        container: Container,
        doc: Value,
        if_match: Option<&ETag>,
    ) -> Result<StoredDocument, StoreError> {
        (self.before_write)(container, &|| doc.to_string())?;
        self.inner.replace(container, doc, if_match).await
    }

    async fn delete(
        &self,
        container: Container,
        partition_key: &str,
        id: &str,
        if_match: Option<&ETag>,
    ) -> Result<bool, StoreError> {
        (self.before_write)(container, &|| id.to_owned())?;
        self.inner
            .delete(container, partition_key, id, if_match)
            .await
    }

    async fn batch(
        &self,
        container: Container,
        partition_key: &str,
        operations: Vec<BatchOperation>,
    ) -> Result<Vec<BatchOutcome>, StoreError> {
        (self.before_write)(container, &|| format!("{operations:?}"))?;
        self.inner.batch(container, partition_key, operations).await
    }

    async fn query(
        &self,
        container: Container,
        partition_key: &str,
        query: &Query,
    ) -> Result<Page, StoreError> {
        let mut page = self.inner.query(container, partition_key, query).await?;
        page.items = page.items.into_iter().map(self.on_read).collect();
        Ok(page)
    }

    async fn read_change_feed(
        &self,
        container: Container,
        from: &FeedPosition,
        max_items: usize,
    ) -> Result<ChangeFeedPage, StoreError> {
        self.inner
            .read_change_feed(container, from, max_items)
            .await
    }

    async fn read_change_feed_text(
        &self,
        container: Container,
        from: &FeedPosition,
        max_items: usize,
    ) -> Result<TextFeedPage, StoreError> {
        self.inner
            .read_change_feed_text(container, from, max_items)
            .await
    }

    async fn pending_changes(
        &self,
        container: Container,
        continuation: &str,
    ) -> Result<Option<u64>, StoreError> {
        self.inner.pending_changes(container, continuation).await
    }

    fn request_units(&self) -> Option<f64> {
        self.inner.request_units()
    }

    fn commit_signal(&self) -> Option<tokio::sync::watch::Receiver<u64>> {
        self.inner.commit_signal()
    }
}
