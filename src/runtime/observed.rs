//! The store and the real-time sink as every function sees them: each call forwarded unchanged,
//! its outcome recorded in the `RuntimeStatus`, so health reports a store that fails writes (a
//! full disk: reads still work) or a SignalR service that refuses sends while it happens, and
//! stops reporting it with the next call that works.
//!
//! Only failures of the service count: a missing document, a conflict or a refused
//! precondition is an answer, and a document the store refuses is the caller's mistake.

use std::sync::Arc;

use async_trait::async_trait;
use serde_json::Value;

use super::status::{Dependency, RuntimeStatus};
use crate::clock::Clock;
use crate::realtime::{ClientConnection, HubMessage, MessageSink, SinkError};
use crate::store::{
    BatchOperation, BatchOutcome, ChangeFeedPage, Container, ETag, FeedPosition, Page, PatchOp,
    Query, Store, StoreError, StoredDocument, TextFeedPage,
};

/// Whether an error means the store itself is failing (down, full, throttling past retries).
fn store_failure(error: &StoreError) -> bool {
    matches!(error, StoreError::Unavailable(_) | StoreError::Backend(_))
}

/// A store whose calls are recorded in the status.
#[derive(Debug)]
pub struct ObservedStore {
    inner: Arc<dyn Store>,
    status: Arc<RuntimeStatus>,
    clock: Arc<dyn Clock>,
}

impl ObservedStore {
    pub fn new(inner: Arc<dyn Store>, status: Arc<RuntimeStatus>, clock: Arc<dyn Clock>) -> Self {
        ObservedStore {
            inner,
            status,
            clock,
        }
    }

    fn note<T>(
        &self,
        dependency: Dependency,
        container: Container,
        result: Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let target = container.name();
        let now = self.clock.now();
        match &result {
            Err(e) if store_failure(e) => {
                self.status
                    .record_call(dependency, target, Err(&e.to_string()), now)
            }
            _ => self.status.record_call(dependency, target, Ok(()), now),
        }
        result
    }
}

#[async_trait]
impl Store for ObservedStore {
    fn backend(&self) -> &'static str {
        self.inner.backend()
    }

    async fn read(
        &self,
        container: Container,
        partition_key: &str,
        id: &str,
    ) -> Result<Option<StoredDocument>, StoreError> {
        let result = self.inner.read(container, partition_key, id).await;
        self.note(Dependency::StoreReads, container, result)
    }

    async fn create(&self, container: Container, doc: Value) -> Result<StoredDocument, StoreError> {
        let result = self.inner.create(container, doc).await;
        self.note(Dependency::StoreWrites, container, result)
    }

    async fn upsert(
        &self,
        container: Container,
        doc: Value,
        if_match: Option<&ETag>,
    ) -> Result<StoredDocument, StoreError> {
        let result = self.inner.upsert(container, doc, if_match).await;
        self.note(Dependency::StoreWrites, container, result)
    }

    async fn upsert_all(&self, container: Container, docs: Vec<Value>) -> Result<(), StoreError> {
        let result = self.inner.upsert_all(container, docs).await;
        self.note(Dependency::StoreWrites, container, result)
    }

    async fn replace(
        &self,
        container: Container,
        doc: Value,
        if_match: Option<&ETag>,
    ) -> Result<StoredDocument, StoreError> {
        let result = self.inner.replace(container, doc, if_match).await;
        self.note(Dependency::StoreWrites, container, result)
    }

    async fn patch(
        &self,
        container: Container,
        partition_key: &str,
        id: &str,
        operations: &[PatchOp],
        if_match: Option<&ETag>,
    ) -> Result<StoredDocument, StoreError> {
        let result = self
            .inner
            .patch(container, partition_key, id, operations, if_match)
            .await;
        self.note(Dependency::StoreWrites, container, result)
    }

    async fn delete(
        &self,
        container: Container,
        partition_key: &str,
        id: &str,
        if_match: Option<&ETag>,
    ) -> Result<bool, StoreError> {
        let result = self
            .inner
            .delete(container, partition_key, id, if_match)
            .await;
        self.note(Dependency::StoreWrites, container, result)
    }

    async fn batch(
        &self,
        container: Container,
        partition_key: &str,
        operations: Vec<BatchOperation>,
    ) -> Result<Vec<BatchOutcome>, StoreError> {
        let result = self.inner.batch(container, partition_key, operations).await;
        self.note(Dependency::StoreWrites, container, result)
    }

    async fn query(
        &self,
        container: Container,
        partition_key: &str,
        query: &Query,
    ) -> Result<Page, StoreError> {
        let result = self.inner.query(container, partition_key, query).await;
        self.note(Dependency::StoreReads, container, result)
    }

    async fn read_change_feed(
        &self,
        container: Container,
        from: &FeedPosition,
        max_items: usize,
    ) -> Result<ChangeFeedPage, StoreError> {
        let result = self
            .inner
            .read_change_feed(container, from, max_items)
            .await;
        self.note(Dependency::StoreReads, container, result)
    }

    async fn read_change_feed_text(
        &self,
        container: Container,
        from: &FeedPosition,
        max_items: usize,
    ) -> Result<TextFeedPage, StoreError> {
        let result = self
            .inner
            .read_change_feed_text(container, from, max_items)
            .await;
        self.note(Dependency::StoreReads, container, result)
    }

    async fn pending_changes(
        &self,
        container: Container,
        continuation: &str,
    ) -> Result<Option<u64>, StoreError> {
        let result = self.inner.pending_changes(container, continuation).await;
        self.note(Dependency::StoreReads, container, result)
    }

    fn request_units(&self) -> Option<f64> {
        self.inner.request_units()
    }

    fn commit_signal(&self) -> Option<tokio::sync::watch::Receiver<u64>> {
        self.inner.commit_signal()
    }

    async fn purge_expired(&self) -> Result<u64, StoreError> {
        // Not one container's: its outcome says nothing about any container's writes.
        self.inner.purge_expired().await
    }
}

/// A real-time sink whose sends and group changes are recorded in the status.
#[derive(Debug)]
pub struct ObservedSink {
    inner: Arc<dyn MessageSink>,
    status: Arc<RuntimeStatus>,
    clock: Arc<dyn Clock>,
}

impl ObservedSink {
    pub fn new(
        inner: Arc<dyn MessageSink>,
        status: Arc<RuntimeStatus>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        ObservedSink {
            inner,
            status,
            clock,
        }
    }

    /// Only a transport failure counts; "not configured" or an unknown connection is an answer.
    fn note<T>(&self, result: Result<T, SinkError>) -> Result<T, SinkError> {
        match &result {
            Err(e @ SinkError::Send(_)) => {
                self.status
                    .record_call(Dependency::Sink, "", Err(&e.to_string()), self.clock.now())
            }
            _ => self
                .status
                .record_call(Dependency::Sink, "", Ok(()), self.clock.now()),
        }
        result
    }
}

#[async_trait]
impl MessageSink for ObservedSink {
    fn name(&self) -> &'static str {
        self.inner.name()
    }

    async fn send(&self, messages: &[HubMessage]) -> Result<(), SinkError> {
        let result = self.inner.send(messages).await;
        self.note(result)
    }

    async fn probe(&self) -> Result<(), SinkError> {
        let result = self.inner.probe().await;
        self.note(result)
    }

    fn client_connection(&self, user_id: Option<&str>) -> Result<ClientConnection, SinkError> {
        self.inner.client_connection(user_id)
    }

    async fn add_user_to_group(
        &self,
        group: &str,
        user_id: &str,
        ttl: std::time::Duration,
    ) -> Result<(), SinkError> {
        let result = self.inner.add_user_to_group(group, user_id, ttl).await;
        self.note(result)
    }

    async fn remove_user_from_group(&self, group: &str, user_id: &str) -> Result<(), SinkError> {
        let result = self.inner.remove_user_from_group(group, user_id).await;
        self.note(result)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::SystemClock;

    /// The names of the functions a trait declares, read from its source: a method added to
    /// `Store` or `MessageSink` with a default would otherwise silently bypass the backend
    /// behind these wrappers (the default runs instead of the backend's override).
    fn trait_methods(source: &str, trait_header: &str) -> Vec<String> {
        let start = source
            .find(trait_header)
            .unwrap_or_else(|| panic!("{trait_header} not found"));
        // Comments may say "fn" too: only code counts.
        let code: String = source[start..]
            .lines()
            .map(|line| line.split("//").next().unwrap_or_default())
            .collect::<Vec<_>>()
            .join("\n");
        let mut depth = 0;
        let mut body = String::new();
        for c in code.chars() {
            match c {
                '{' => depth += 1,
                '}' => {
                    depth -= 1;
                    if depth == 0 {
                        break;
                    }
                }
                _ => {}
            }
            // Only the trait's own level: method bodies of defaults are skipped.
            if depth == 1 {
                body.push(c);
            }
        }
        body.split("fn ")
            .skip(1)
            .filter_map(|rest| {
                let name: String = rest
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                (!name.is_empty()).then_some(name)
            })
            .collect()
    }

    #[test]
    fn every_method_of_the_traits_is_forwarded() {
        let this = include_str!("observed.rs");
        for (source, header, implementation) in [
            (
                include_str!("../store/contract.rs"),
                "pub trait Store",
                "impl Store for ObservedStore",
            ),
            (
                include_str!("../realtime/mod.rs"),
                "pub trait MessageSink",
                "impl MessageSink for ObservedSink",
            ),
        ] {
            let declared = trait_methods(source, header);
            assert!(declared.len() >= 4, "{header}: {declared:?}");
            let forwarded = trait_methods(this, implementation);
            for method in &declared {
                assert!(
                    forwarded.contains(method),
                    "{implementation} does not forward {method}: add it"
                );
            }
        }
    }

    #[tokio::test]
    async fn store_failures_are_recorded_until_the_next_success() {
        use crate::store::wrapped::Wrapped;
        let dir = tempfile::tempdir().unwrap();
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        let sqlite: Arc<dyn Store> = Arc::new(
            crate::store::sqlite::SqliteStore::open(&dir.path().join("s.db"), clock.clone())
                .unwrap(),
        );
        let failing = Wrapped::failing_writes(sqlite.clone(), |_| {
            Err(StoreError::Backend("database or disk is full".into()))
        });
        let status = Arc::new(RuntimeStatus::new("test", clock.now()));
        let store = ObservedStore::new(Arc::new(failing), status.clone(), clock.clone());
        let doc = serde_json::json!({"id": "a", "scope": "GLOBAL"});
        assert!(store
            .upsert(Container::Entities, doc.clone(), None)
            .await
            .is_err());
        let failing = status.failing(Dependency::StoreWrites).expect("recorded");
        assert!(failing.error.contains("disk is full"), "{failing:?}");
        // Reads still work: they are reported apart.
        assert!(store
            .read(Container::Entities, "GLOBAL", "a")
            .await
            .unwrap()
            .is_none());
        assert!(status.failing(Dependency::StoreReads).is_none());
        // A refused precondition is an answer, not a failing store.
        let healthy = ObservedStore::new(sqlite, status.clone(), clock);
        let stale = ETag("\"nope\"".into());
        assert!(healthy
            .upsert(Container::Entities, doc.clone(), Some(&stale))
            .await
            .is_err());
        assert!(status.failing(Dependency::StoreWrites).is_none());
        healthy
            .upsert(Container::Entities, doc, None)
            .await
            .unwrap();
        assert!(status.failing(Dependency::StoreWrites).is_none());
    }
}
