//! `HubSink`: serve's functions deliver to the built-in hub in process. They used to go through
//! `RestSender` over loopback HTTP to this same hub's REST routes; a profile of serve at 1000
//! logs/s put that loopback at about 29% of serve's CPU (16% the hub's side of the REST call, 13%
//! the sender's), for nothing a process needs to say to itself. The sink calls what those routes
//! call (`operations`), so connections, frames and group semantics stay those of the REST API;
//! negotiate hands out the same URL and token as `RestSender` would. Azure SignalR Service (a
//! connection string) still goes through `RestSender`, which the hub's REST routes keep tested.

use std::time::Duration;

use async_trait::async_trait;

use super::operations::HubError;
use super::Hub;
use crate::realtime::{rest, ClientConnection, HubMessage, MessageSink, SinkError};

#[derive(Debug, Clone)]
pub struct HubSink {
    hub: Hub,
    /// Lowercased, as `RestSender` (and the service SDK) sends hub names.
    name: String,
}

impl HubSink {
    pub fn new(hub: Hub, name: &str) -> Self {
        HubSink {
            hub,
            name: name.to_ascii_lowercase(),
        }
    }
}

fn failed(error: HubError) -> SinkError {
    SinkError::Send(error.to_string())
}

#[async_trait]
impl MessageSink for HubSink {
    /// The same transport as far as health and the console are concerned: SignalR.
    fn name(&self) -> &'static str {
        "signalr"
    }

    /// In order: a group's messages arrive in the order given, as `RestSender` sends them.
    async fn send(&self, messages: &[HubMessage]) -> Result<(), SinkError> {
        for message in messages {
            self.hub
                .send_to_group(
                    &self.name,
                    &message.group,
                    &message.target,
                    Some(message.arguments.get()),
                )
                .map_err(failed)?;
        }
        Ok(())
    }

    async fn probe(&self) -> Result<(), SinkError> {
        self.hub.ensure_open().map_err(failed)
    }

    fn client_connection(&self, user_id: Option<&str>) -> Result<ClientConnection, SinkError> {
        rest::client_connection(self.hub.connection_string(), &self.name, user_id)
    }

    /// The TTL in whole seconds, as `RestSender` puts it in `?ttl=`.
    async fn add_user_to_group(
        &self,
        group: &str,
        user_id: &str,
        ttl: Duration,
    ) -> Result<(), SinkError> {
        let ttl = Duration::from_secs(ttl.as_secs());
        self.hub
            .add_user_to_group(&self.name, group, user_id, Some(ttl))
            .map_err(failed)
    }

    async fn remove_user_from_group(&self, group: &str, user_id: &str) -> Result<(), SinkError> {
        self.hub
            .remove_user_from_group(&self.name, group, user_id)
            .map_err(failed)
    }
}
