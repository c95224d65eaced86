//! Real-time messages and where they go. Functions produce `HubMessage`s (pure); a
//! `MessageSink` delivers them. The SignalR Service REST sender and the built-in hub come in the
//! real-time issue; until one is configured, messages go nowhere (`none`) or to a JSON-lines
//! journal (`journal:PATH`) that operators and tests can read.

mod console;
mod journal;

use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;

use async_trait::async_trait;
use serde::Serialize;
use serde_json::Value;

pub use console::ConsoleSink;
pub use journal::JournalSink;

/// One SignalR invocation for one group (`execution:{id}` or `history:{scope}`).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HubMessage {
    pub group: String,
    pub target: String,
    pub arguments: Vec<Value>,
}

#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    #[error("sending real-time messages failed: {0}")]
    Send(String),
}

#[async_trait]
pub trait MessageSink: Send + Sync + std::fmt::Debug {
    fn name(&self) -> &'static str;
    /// Deliver every message or fail (the caller then retries the whole batch).
    async fn send(&self, messages: &[HubMessage]) -> Result<(), SinkError>;
    /// Whether the transport answers, for `GET /api/health`; a sink with nothing to reach is fine.
    async fn probe(&self) -> Result<(), SinkError> {
        Ok(())
    }
}

/// No real-time transport configured: clients fall back to polling the query API.
#[derive(Debug, Default)]
pub struct NullSink;

#[async_trait]
impl MessageSink for NullSink {
    fn name(&self) -> &'static str {
        "none"
    }

    async fn send(&self, _messages: &[HubMessage]) -> Result<(), SinkError> {
        Ok(())
    }
}

/// `--signalr` / `BIFROST_SIGNALR`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SinkTarget {
    None,
    /// Human-readable lines on stdout (the demo).
    Console,
    Journal(PathBuf),
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid real-time target {0:?}: expected \"none\", \"console\" or \"journal:PATH\"")]
pub struct SinkTargetError(pub String);

impl FromStr for SinkTarget {
    type Err = SinkTargetError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim() {
            "" | "none" => Ok(SinkTarget::None),
            "console" => Ok(SinkTarget::Console),
            other => match other.strip_prefix("journal:") {
                Some(path) if !path.is_empty() => Ok(SinkTarget::Journal(PathBuf::from(path))),
                _ => Err(SinkTargetError(other.to_owned())),
            },
        }
    }
}

pub async fn open(target: &SinkTarget) -> std::io::Result<Arc<dyn MessageSink>> {
    Ok(match target {
        SinkTarget::None => Arc::new(NullSink),
        SinkTarget::Console => Arc::new(ConsoleSink),
        SinkTarget::Journal(path) => Arc::new(JournalSink::open(path).await?),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_parse() {
        assert_eq!("none".parse::<SinkTarget>().unwrap(), SinkTarget::None);
        assert_eq!(
            "journal:/tmp/j.jsonl".parse::<SinkTarget>().unwrap(),
            SinkTarget::Journal("/tmp/j.jsonl".into())
        );
        assert!("journal:".parse::<SinkTarget>().is_err());
        assert!("Endpoint=x".parse::<SinkTarget>().is_err());
    }
}
