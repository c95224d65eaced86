//! Real-time messages and where they go. Functions produce `HubMessage`s (pure); a
//! `MessageSink` delivers them: the SignalR Service REST sender (Azure, or serve mode's built-in
//! hub, which speaks the same REST API), or for operators and tests nowhere (`none`), stdout
//! (`console`) or a JSON-lines journal (`journal:PATH`); `TeeSink` sends to two of them.

pub mod connection_string;
mod console;
pub mod groups;
mod journal;
pub mod jwt;
pub mod rest;
mod tee;

use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde::Serialize;
use serde_json::value::RawValue;
use serde_json::Value;

pub use connection_string::ConnectionString;
pub use console::ConsoleSink;
pub use journal::JournalSink;
pub use rest::RestSender;
pub use tee::TeeSink;

/// The SignalR hub every message and client uses (the legacy Web PubSub hub was `bifrost` too).
pub const HUB: &str = "bifrost";

/// One SignalR invocation for one group (see `groups`).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HubMessage {
    pub group: String,
    pub target: String,
    /// The invocation's arguments as one JSON array, serialized once where the message is made:
    /// senders copy it into their bodies as it is. Shared, so the same payload sent to several
    /// groups (an execution's members and admins) is held once; the `Box` inside is the text as
    /// serialized (an `Arc<RawValue>` would copy every payload once more to be made).
    #[serde(serialize_with = "serialize_shared_raw")]
    pub arguments: Arc<Box<RawValue>>,
}

impl HubMessage {
    /// A message whose one argument is `argument`, serialized now.
    pub fn new(group: String, target: &str, argument: &impl Serialize) -> Self {
        HubMessage {
            group,
            target: target.to_owned(),
            // Serializing our own types cannot fail; an empty argument list would be visible.
            arguments: serde_json::value::to_raw_value(&[argument])
                .map(Arc::new)
                .unwrap_or_else(|_| empty_arguments()),
        }
    }

    /// A message whose arguments are `json`: the text of a JSON array this crate serialized
    /// itself with `serde_json` (assembled from pieces where that saves serializing one twice).
    pub(crate) fn from_serialized_arguments(group: String, target: &str, json: Vec<u8>) -> Self {
        debug_assert!(serde_json::from_slice::<&RawValue>(&json)
            .is_ok_and(|raw| raw.get().len() == json.len() && raw.get().starts_with('[')));
        let arguments = match String::from_utf8(json) {
            // SAFETY: `from_string_unchecked` asks for one JSON value without whitespace around
            // it, which `serde_json`'s output is (and the debug build checks).
            Ok(json) => Arc::new(unsafe { RawValue::from_string_unchecked(json) }),
            Err(_) => empty_arguments(),
        };
        HubMessage {
            group,
            target: target.to_owned(),
            arguments,
        }
    }

    /// The same invocation for `group`, its arguments shared rather than copied.
    pub fn to_group(&self, group: String) -> Self {
        HubMessage {
            group,
            target: self.target.clone(),
            arguments: Arc::clone(&self.arguments),
        }
    }

    /// A message without arguments.
    pub fn without_arguments(group: String, target: &str) -> Self {
        HubMessage {
            group,
            target: target.to_owned(),
            arguments: empty_arguments(),
        }
    }

    /// The arguments as values (sinks that read them, and tests).
    pub fn argument_values(&self) -> Vec<Value> {
        serde_json::from_str(self.arguments.get()).unwrap_or_default()
    }
}

fn empty_arguments() -> Arc<Box<RawValue>> {
    Arc::new(serde_json::from_str("[]").expect("an empty array is JSON"))
}

fn serialize_shared_raw<S: serde::Serializer>(
    raw: &Arc<Box<RawValue>>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    raw.serialize(serializer)
}

impl PartialEq for HubMessage {
    fn eq(&self, other: &Self) -> bool {
        self.group == other.group
            && self.target == other.target
            && self.arguments.get() == other.arguments.get()
    }
}

/// What `/api/negotiate` gives a client: where to connect and the token to connect with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClientConnection {
    /// The SignalR client URL (`…/client/?hub=bifrost`).
    pub url: String,
    /// A JWT for that URL, bound to the caller's user id.
    pub access_token: String,
}

#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    #[error("sending real-time messages failed: {0}")]
    Send(String),
    #[error("no SignalR service is configured")]
    NotConfigured,
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

    /// Connection info for a browser (negotiate); only a SignalR service has one.
    fn client_connection(&self, _user_id: Option<&str>) -> Result<ClientConnection, SinkError> {
        Err(SinkError::NotConfigured)
    }

    /// Adds a user to a group for `ttl` (subscribe): every connection of that user (the
    /// negotiate token's `nameid`), open now or later, receives the group until it runs out.
    async fn add_user_to_group(
        &self,
        _group: &str,
        _user_id: &str,
        _ttl: Duration,
    ) -> Result<(), SinkError> {
        Err(SinkError::NotConfigured)
    }

    /// Takes a user out of a group (a subscription that now goes to another group).
    async fn remove_user_from_group(&self, _group: &str, _user_id: &str) -> Result<(), SinkError> {
        Err(SinkError::NotConfigured)
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
    /// Azure SignalR Service (or anything speaking its REST API), by connection string.
    SignalR(ConnectionString),
    /// serve mode's own hub on the `--listen` address (resolved to `SignalR` once bound).
    BuiltInHub,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SinkTargetError {
    #[error("invalid real-time target {0:?}: expected \"none\", \"console\", \"hub\", \"journal:PATH\" or a SignalR connection string \"Endpoint=…;AccessKey=…;Version=1.0;\"")]
    Unknown(String),
    #[error(transparent)]
    ConnectionString(#[from] connection_string::ConnectionStringError),
}

impl FromStr for SinkTarget {
    type Err = SinkTargetError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim() {
            "" | "none" => Ok(SinkTarget::None),
            "console" => Ok(SinkTarget::Console),
            "hub" => Ok(SinkTarget::BuiltInHub),
            other if ConnectionString::looks_like(other) => Ok(SinkTarget::SignalR(other.parse()?)),
            other => match other.strip_prefix("journal:") {
                Some(path) if !path.is_empty() => Ok(SinkTarget::Journal(PathBuf::from(path))),
                // Never echo a whole connection-string-like value: it may hold a key.
                _ => Err(SinkTargetError::Unknown(
                    other
                        .split(';')
                        .next()
                        .unwrap_or_default()
                        .chars()
                        .take(24)
                        .collect(),
                )),
            },
        }
    }
}

pub async fn open(target: &SinkTarget) -> anyhow::Result<Arc<dyn MessageSink>> {
    Ok(match target {
        SinkTarget::None => Arc::new(NullSink),
        SinkTarget::Console => Arc::new(ConsoleSink),
        SinkTarget::Journal(path) => Arc::new(JournalSink::open(path).await?),
        SinkTarget::SignalR(connection) => Arc::new(RestSender::new(connection.clone(), HUB)?),
        SinkTarget::BuiltInHub => {
            anyhow::bail!("the built-in SignalR hub only runs in serve mode")
        }
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
        assert!(matches!(
            "Endpoint=https://r.service.signalr.net;AccessKey=k;Version=1.0;".parse::<SinkTarget>(),
            Ok(SinkTarget::SignalR(c)) if c.endpoint == "https://r.service.signalr.net"
        ));
        assert_eq!("hub".parse::<SinkTarget>().unwrap(), SinkTarget::BuiltInHub);
    }
}
