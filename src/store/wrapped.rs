//! A store that forwards every call to another, with hooks that make it a backend with one
//! difference: writes to some container (or of some document) fail (a backend that is down for
//! them, a poison document), documents read back lack something (Cosmos returns `_lsn` only in
//! the change feed), or every call's outcome is told to someone (health). The tests that need
//! such a backend, the fault injection of debug builds (`faults`) and the runtime's observed
//! store use this one wrapper, so a method added to `Store` is forwarded in one place (a test
//! below fails until it is).

use std::sync::Arc;

use async_trait::async_trait;
use serde_json::Value;

use super::{
    BatchOperation, BatchOutcome, ChangeFeedPage, Container, ETag, FeedPosition, Page, PatchOp,
    Query, Store, StoreError, StoredDocument, TextFeedPage,
};

/// Which way a call went, for `AfterCall`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Access {
    Read,
    Write,
}

/// Told after every call on a container (reads, writes, the change feed) with its outcome,
/// a write that `BeforeWrite` refused included.
pub(crate) type AfterCall = Arc<dyn Fn(Access, Container, Result<(), &StoreError>) + Send + Sync>;

/// Asked before a write with its container and a rendering of what is written (built only when
/// asked for): an error is returned instead of writing.
pub(crate) type BeforeWrite =
    Arc<dyn Fn(Container, &dyn Fn() -> String) -> Result<(), StoreError> + Send + Sync>;

pub(crate) struct Wrapped {
    pub inner: Arc<dyn Store>,
    /// Asked before every write (create, upsert, replace, patch, delete, batch).
    pub before_write: BeforeWrite,
    /// Told of every call's outcome.
    pub after_call: AfterCall,
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
            after_call: Arc::new(|_, _, _| {}),
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

    /// `result`, told to `after_call` first.
    fn observe<T>(
        &self,
        access: Access,
        container: Container,
        result: Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        (self.after_call)(access, container, result.as_ref().map(|_| ()));
        result
    }

    /// `before_write`'s answer to writing what `written` renders; a refusal is told to
    /// `after_call` as the write's outcome.
    fn admit(&self, container: Container, written: &dyn Fn() -> String) -> Result<(), StoreError> {
        (self.before_write)(container, written)
            .inspect_err(|refused| (self.after_call)(Access::Write, container, Err(refused)))
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
        let result = self.inner.read(container, partition_key, id).await;
        let found = self.observe(Access::Read, container, result)?;
        Ok(found.map(|mut doc| {
            doc.body = (self.on_read)(doc.body);
            doc
        }))
    }

    async fn create(&self, container: Container, doc: Value) -> Result<StoredDocument, StoreError> {
        self.admit(container, &|| doc.to_string())?;
        let result = self.inner.create(container, doc).await;
        self.observe(Access::Write, container, result)
    }

    async fn upsert(
        &self,
        container: Container,
        doc: Value,
        if_match: Option<&ETag>,
    ) -> Result<StoredDocument, StoreError> {
        self.admit(container, &|| doc.to_string())?;
        let result = self.inner.upsert(container, doc, if_match).await;
        self.observe(Access::Write, container, result)
    }

    async fn upsert_all(&self, container: Container, docs: Vec<Value>) -> Result<(), StoreError> {
        for doc in &docs {
            self.admit(container, &|| doc.to_string())?;
        }
        let result = self.inner.upsert_all(container, docs).await;
        self.observe(Access::Write, container, result)
    }

    async fn replace(
        &self,
        container: Container,
        doc: Value,
        if_match: Option<&ETag>,
    ) -> Result<StoredDocument, StoreError> {
        self.admit(container, &|| doc.to_string())?;
        let result = self.inner.replace(container, doc, if_match).await;
        self.observe(Access::Write, container, result)
    }

    async fn patch(
        &self,
        container: Container,
        partition_key: &str,
        id: &str,
        operations: &[PatchOp],
        if_match: Option<&ETag>,
    ) -> Result<StoredDocument, StoreError> {
        self.admit(container, &|| format!("{id} {operations:?}"))?;
        let result = self
            .inner
            .patch(container, partition_key, id, operations, if_match)
            .await;
        self.observe(Access::Write, container, result)
    }

    async fn delete(
        &self,
        container: Container,
        partition_key: &str,
        id: &str,
        if_match: Option<&ETag>,
    ) -> Result<bool, StoreError> {
        self.admit(container, &|| id.to_owned())?;
        let result = self
            .inner
            .delete(container, partition_key, id, if_match)
            .await;
        self.observe(Access::Write, container, result)
    }

    async fn batch(
        &self,
        container: Container,
        partition_key: &str,
        operations: Vec<BatchOperation>,
    ) -> Result<Vec<BatchOutcome>, StoreError> {
        self.admit(container, &|| format!("{operations:?}"))?;
        let result = self.inner.batch(container, partition_key, operations).await;
        self.observe(Access::Write, container, result)
    }

    async fn query(
        &self,
        container: Container,
        partition_key: &str,
        query: &Query,
    ) -> Result<Page, StoreError> {
        let result = self.inner.query(container, partition_key, query).await;
        let mut page = self.observe(Access::Read, container, result)?;
        page.items = page.items.into_iter().map(self.on_read).collect();
        Ok(page)
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
        self.observe(Access::Read, container, result)
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
        self.observe(Access::Read, container, result)
    }

    async fn pending_changes(
        &self,
        container: Container,
        continuation: &str,
    ) -> Result<Option<u64>, StoreError> {
        let result = self.inner.pending_changes(container, continuation).await;
        self.observe(Access::Read, container, result)
    }

    fn commit_signal(&self) -> Option<tokio::sync::watch::Receiver<u64>> {
        self.inner.commit_signal()
    }

    fn request_units(&self) -> Option<f64> {
        self.inner.request_units()
    }

    async fn purge_expired(&self) -> Result<u64, StoreError> {
        // Not one container's: its outcome says nothing about any container's calls.
        self.inner.purge_expired().await
    }
}

/// The names of the functions a trait declares, read from its source: a method added to a
/// trait with a default would otherwise silently bypass the backend behind a forwarding
/// wrapper (the default runs instead of the backend's override).
#[cfg(test)]
pub(crate) fn trait_methods(source: &str, trait_header: &str) -> Vec<String> {
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

/// Fails unless `implementation` (in `implementation_source`) has every method the trait
/// `trait_header` (in `trait_source`) declares.
#[cfg(test)]
pub(crate) fn assert_forwards_every_method(
    trait_source: &str,
    trait_header: &str,
    implementation_source: &str,
    implementation: &str,
) {
    let declared = trait_methods(trait_source, trait_header);
    assert!(declared.len() >= 4, "{trait_header}: {declared:?}");
    let forwarded = trait_methods(implementation_source, implementation);
    for method in &declared {
        assert!(
            forwarded.contains(method),
            "{implementation} does not forward {method}: add it"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_method_of_the_store_is_forwarded() {
        assert_forwards_every_method(
            include_str!("contract.rs"),
            "pub trait Store",
            include_str!("wrapped.rs"),
            "impl Store for Wrapped",
        );
    }
}
