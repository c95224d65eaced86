//! A sink that delivers every message to two sinks: the demo sends to the built-in hub (so the
//! console streams) and prints the same logs on stdout. The first sink is the real-time
//! transport: negotiate, subscribe and the health probe are its; the echo only sees messages.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use super::{ClientConnection, HubMessage, MessageSink, SinkError};

#[derive(Debug)]
pub struct TeeSink {
    transport: Arc<dyn MessageSink>,
    echo: Arc<dyn MessageSink>,
}

impl TeeSink {
    pub fn new(transport: Arc<dyn MessageSink>, echo: Arc<dyn MessageSink>) -> Self {
        TeeSink { transport, echo }
    }
}

#[async_trait]
impl MessageSink for TeeSink {
    fn name(&self) -> &'static str {
        // Health reports the transport; the echo is a side show.
        self.transport.name()
    }

    /// Both must take the messages, or the batch fails and is retried (an echo line may then
    /// print twice, a message is never lost).
    async fn send(&self, messages: &[HubMessage]) -> Result<(), SinkError> {
        self.transport.send(messages).await?;
        self.echo.send(messages).await
    }

    async fn probe(&self) -> Result<(), SinkError> {
        self.transport.probe().await
    }

    fn client_connection(&self, user_id: Option<&str>) -> Result<ClientConnection, SinkError> {
        self.transport.client_connection(user_id)
    }

    async fn add_user_to_group(
        &self,
        group: &str,
        user_id: &str,
        ttl: Duration,
    ) -> Result<(), SinkError> {
        self.transport.add_user_to_group(group, user_id, ttl).await
    }

    async fn remove_user_from_group(&self, group: &str, user_id: &str) -> Result<(), SinkError> {
        self.transport.remove_user_from_group(group, user_id).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::realtime::{JournalSink, NullSink};

    fn message(n: u64) -> HubMessage {
        HubMessage::new(
            "execution:e".into(),
            "executionLogs",
            &serde_json::json!({"executionId": "e", "logs": [{"sequence": n}]}),
        )
    }

    #[tokio::test]
    async fn both_sinks_get_every_message_and_the_transport_answers_for_the_tee() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a.jsonl"), dir.path().join("b.jsonl"));
        let tee = TeeSink::new(
            Arc::new(JournalSink::open(&a).await.unwrap()),
            Arc::new(JournalSink::open(&b).await.unwrap()),
        );
        tee.send(&[message(1), message(2)]).await.unwrap();
        let first = std::fs::read_to_string(&a).unwrap();
        assert_eq!(first.lines().count(), 2);
        assert_eq!(first, std::fs::read_to_string(&b).unwrap());
        assert_eq!(tee.name(), "journal");
        // Negotiate belongs to the transport: a null transport has none, whatever the echo.
        let tee = TeeSink::new(
            Arc::new(NullSink),
            Arc::new(JournalSink::open(&b).await.unwrap()),
        );
        assert!(matches!(
            tee.client_connection(Some("u")),
            Err(SinkError::NotConfigured)
        ));
    }
}
