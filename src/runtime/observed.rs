//! The store and the real-time sink as every function sees them: each call forwarded unchanged,
//! its outcome recorded in the `RuntimeStatus`, so health reports a store that fails writes (a
//! full disk: reads still work) or a SignalR service that refuses sends while it happens, and
//! stops reporting it with the next call that works.
//!
//! Only failures of the service count: a missing document, a conflict or a refused
//! precondition is an answer, and a document the store refuses is the caller's mistake.

use std::sync::Arc;

use async_trait::async_trait;

use super::status::{Dependency, RuntimeStatus};
use crate::clock::Clock;
use crate::realtime::{ClientConnection, HubMessage, MessageSink, SinkError};
use crate::store::wrapped::{Access, Wrapped};
use crate::store::{Container, Store, StoreError};

/// Whether an error means the store itself is failing (down, full, throttling past retries).
fn store_failure(error: &StoreError) -> bool {
    matches!(error, StoreError::Unavailable(_) | StoreError::Backend(_))
}

/// `inner`, each of whose calls is recorded in `status` (reads and writes apart).
pub fn observed_store(
    inner: Arc<dyn Store>,
    status: Arc<RuntimeStatus>,
    clock: Arc<dyn Clock>,
) -> Arc<dyn Store> {
    let record = move |access: Access, container: Container, outcome: Result<(), &StoreError>| {
        let dependency = match access {
            Access::Read => Dependency::StoreReads,
            Access::Write => Dependency::StoreWrites,
        };
        let failure = match outcome {
            Err(e) if store_failure(e) => Some(e.to_string()),
            _ => None,
        };
        let outcome = failure.as_deref().map_or(Ok(()), Err);
        status.record_call(dependency, container.name(), outcome, clock.now());
    };
    Arc::new(Wrapped {
        after_call: Arc::new(record),
        ..Wrapped::new(inner)
    })
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
    use crate::store::wrapped::assert_forwards_every_method;
    use crate::store::ETag;

    #[test]
    fn every_method_of_the_sink_is_forwarded() {
        assert_forwards_every_method(
            include_str!("../realtime/mod.rs"),
            "pub trait MessageSink",
            include_str!("observed.rs"),
            "impl MessageSink for ObservedSink",
        );
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
        let store = observed_store(Arc::new(failing), status.clone(), clock.clone());
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
        let healthy = observed_store(sqlite, status.clone(), clock);
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
