//! What the hub's REST routes and the in-process sink (`HubSink`) both do to its state: a group
//! send, a user's group membership (with its TTL), and the refusal once the hub shuts down. One
//! piece of code for both faces, so a message delivered in process reaches exactly the
//! connections, with exactly the frames, that the same message sent over REST would.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use super::protocol;
use super::state::{Delivery, Record};
use super::Hub;

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum HubError {
    /// After serve's shutdown began: over REST this was the listener going away (a refused
    /// connection); now both faces refuse, so the batch fails and is redelivered at the next start
    /// instead of being checkpointed past messages sent while the hub was going away.
    #[error("the built-in SignalR hub is shutting down")]
    ShuttingDown,
}

impl Hub {
    /// From now on every group send and user group change (what `HubSink` does, and their REST
    /// routes) fails with `HubError::ShuttingDown`.
    pub fn shut_down(&self) {
        self.shutting_down.store(true, Ordering::Release);
    }

    /// `Err` once the hub shuts down (the sink's health probe asks too).
    pub(super) fn ensure_open(&self) -> Result<(), HubError> {
        if self.shutting_down.load(Ordering::Acquire) {
            Err(HubError::ShuttingDown)
        } else {
            Ok(())
        }
    }

    /// Queues one Invocation of `target` with `arguments` (a JSON array's text) for every
    /// connection of the group: those added by id and those of its users, each once.
    pub fn send_to_group(
        &self,
        hub: &str,
        group: &str,
        target: &str,
        arguments: Option<&str>,
    ) -> Result<Delivery, HubError> {
        self.ensure_open()?;
        let record: Record = Arc::from(protocol::invocation_record(target, arguments));
        Ok(self.state.send_to_group(hub, group, &record))
    }

    /// Adds `user` (its connections now and later) to `group` until `ttl` from now (`None`: no end).
    pub fn add_user_to_group(
        &self,
        hub: &str,
        group: &str,
        user: &str,
        ttl: Option<Duration>,
    ) -> Result<(), HubError> {
        self.ensure_open()?;
        self.state.add_user_to_group(hub, group, user, ttl);
        Ok(())
    }

    pub fn remove_user_from_group(
        &self,
        hub: &str,
        group: &str,
        user: &str,
    ) -> Result<(), HubError> {
        self.ensure_open()?;
        self.state.remove_user_from_group(hub, group, user);
        Ok(())
    }
}
