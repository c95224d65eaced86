//! Fault injection for the fault-injection tests: a store that fails the writes to some
//! containers while a control file says so, so a test can make the spawned binary's store fail
//! (a full disk, a backend down) for a while and then recover, without root or a real full
//! filesystem.
//!
//! Compiled into debug builds only (`cfg(debug_assertions)`): the tests run the debug binary,
//! and a release build (what is deployed) has no such code, so no setting can turn it on by
//! accident in production. A cargo feature would not do: `cargo test` builds the binary with the
//! package's default features, so a test-only feature would have to be on by default.
//!
//! The control file (named by `BIFROST_FAULT_FILE`) holds words separated by whitespace: a
//! container name (`*` for every container) makes each write to it fail with "database or disk
//! is full (injected)"; `poison:TEXT` makes each write whose document holds TEXT fail (a poison
//! document: whatever batch carries it fails every time). It is read on every write, so a test
//! starts and ends the fault by writing and removing the file.

use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use serde_json::Value;

use super::{
    BatchOperation, BatchOutcome, ChangeFeedPage, Container, ETag, FeedPosition, Page, PatchOp,
    Query, Store, StoreError, StoredDocument,
};

/// The setting naming the control file (debug builds only).
pub const FAULT_FILE_ENV: &str = "BIFROST_FAULT_FILE";

/// A store whose writes to the containers the control file names fail while it exists.
#[derive(Debug)]
pub struct FaultyStore {
    inner: Arc<dyn Store>,
    control: PathBuf,
}

impl FaultyStore {
    pub fn new(inner: Arc<dyn Store>, control: PathBuf) -> Self {
        FaultyStore { inner, control }
    }

    /// Fails the write to `container` of what `written` renders when the control file says so.
    fn check_write(
        &self,
        container: Container,
        written: impl FnOnce() -> String,
    ) -> Result<(), StoreError> {
        let Ok(text) = std::fs::read_to_string(&self.control) else {
            return Ok(());
        };
        let words: Vec<&str> = text.split_whitespace().collect();
        if words.iter().any(|w| *w == "*" || *w == container.name()) {
            return Err(StoreError::Backend(format!(
                "database or disk is full (injected for {})",
                container.name()
            )));
        }
        let poisons: Vec<&str> = words
            .iter()
            .filter_map(|w| w.strip_prefix("poison:"))
            .collect();
        if !poisons.is_empty() {
            let written = written();
            if let Some(poison) = poisons.iter().find(|p| written.contains(*p)) {
                return Err(StoreError::Backend(format!(
                    "a poison document (injected: it holds {poison:?})"
                )));
            }
        }
        Ok(())
    }
}

/// `store` wrapped in a `FaultyStore` when this is a debug build and `BIFROST_FAULT_FILE` is set.
pub fn maybe_inject(store: Arc<dyn Store>) -> Arc<dyn Store> {
    if !cfg!(debug_assertions) {
        return store;
    }
    match std::env::var_os(FAULT_FILE_ENV) {
        Some(path) if !path.is_empty() => {
            tracing::warn!(control = ?path, "fault injection is on (debug build, {FAULT_FILE_ENV})");
            Arc::new(FaultyStore::new(store, PathBuf::from(path)))
        }
        _ => store,
    }
}

#[async_trait]
impl Store for FaultyStore {
    fn backend(&self) -> &'static str {
        self.inner.backend()
    }

    async fn read(
        &self,
        container: Container,
        partition_key: &str,
        id: &str,
    ) -> Result<Option<StoredDocument>, StoreError> {
        self.inner.read(container, partition_key, id).await
    }

    async fn create(&self, container: Container, doc: Value) -> Result<StoredDocument, StoreError> {
        self.check_write(container, || doc.to_string())?;
        self.inner.create(container, doc).await
    }

    async fn upsert(
        &self,
        container: Container,
        doc: Value,
        if_match: Option<&ETag>,
    ) -> Result<StoredDocument, StoreError> {
        self.check_write(container, || doc.to_string())?;
        self.inner.upsert(container, doc, if_match).await
    }

    async fn replace(
        &self,
        container: Container,
        doc: Value,
        if_match: Option<&ETag>,
    ) -> Result<StoredDocument, StoreError> {
        self.check_write(container, || doc.to_string())?;
        self.inner.replace(container, doc, if_match).await
    }

    async fn patch(
        &self,
        container: Container,
        partition_key: &str,
        id: &str,
        operations: &[PatchOp],
        if_match: Option<&ETag>,
    ) -> Result<StoredDocument, StoreError> {
        self.check_write(container, || format!("{id} {operations:?}"))?;
        self.inner
            .patch(container, partition_key, id, operations, if_match)
            .await
    }

    async fn delete(
        &self,
        container: Container,
        partition_key: &str,
        id: &str,
        if_match: Option<&ETag>,
    ) -> Result<bool, StoreError> {
        self.check_write(container, || id.to_owned())?;
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
        self.check_write(container, || format!("{operations:?}"))?;
        self.inner.batch(container, partition_key, operations).await
    }

    async fn query(
        &self,
        container: Container,
        partition_key: &str,
        query: &Query,
    ) -> Result<Page, StoreError> {
        self.inner.query(container, partition_key, query).await
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

    async fn purge_expired(&self) -> Result<u64, StoreError> {
        self.inner.purge_expired().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::{Clock, SystemClock};

    #[tokio::test]
    async fn writes_to_the_named_containers_fail_while_the_file_exists() {
        let dir = tempfile::tempdir().unwrap();
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        let sqlite: Arc<dyn Store> = Arc::new(
            crate::store::sqlite::SqliteStore::open(&dir.path().join("f.db"), clock).unwrap(),
        );
        let control = dir.path().join("faults");
        let store = FaultyStore::new(sqlite, control.clone());
        let doc = serde_json::json!({"id": "a", "scope": "GLOBAL"});
        store
            .upsert(Container::Entities, doc.clone(), None)
            .await
            .unwrap();
        std::fs::write(&control, "entities leases").unwrap();
        let error = store
            .upsert(Container::Entities, doc.clone(), None)
            .await
            .unwrap_err();
        assert!(error.to_string().contains("disk is full"), "{error}");
        assert!(store.read(Container::Entities, "GLOBAL", "a").await.is_ok());
        std::fs::write(&control, "poison:exec-bad").unwrap();
        store
            .upsert(Container::Entities, doc.clone(), None)
            .await
            .unwrap();
        let poison = serde_json::json!({"id": "b", "scope": "GLOBAL", "executionId": "exec-bad"});
        let error = store
            .upsert(Container::Executions, poison, None)
            .await
            .unwrap_err();
        assert!(error.to_string().contains("poison"), "{error}");
        std::fs::remove_file(&control).unwrap();
        store.upsert(Container::Entities, doc, None).await.unwrap();
    }
}
