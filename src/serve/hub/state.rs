//! The hub's membership state: negotiated-but-not-yet-connected tokens, live connections with
//! their bounded send queues, and groups. Every method is synchronous and short; the lock is
//! never held across an await.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tokio::task::AbortHandle;

/// A record ready to write, shared by every receiver of one send.
pub type Record = Arc<str>;

struct Connection {
    hub: String,
    queue: mpsc::Sender<Record>,
    groups: HashSet<String>,
    abort: Option<AbortHandle>,
}

struct Pending {
    hub: String,
    connection_id: String,
    expires: Instant,
}

#[derive(Default)]
struct Inner {
    /// By the `id` the client will present on the WebSocket (connectionToken, or connectionId in v0).
    pending: HashMap<String, Pending>,
    connections: HashMap<String, Connection>,
    /// (hub, group) → connection ids.
    groups: HashMap<(String, String), HashSet<String>>,
}

/// What a send did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Delivery {
    pub queued: usize,
    /// Connections dropped because their queue was full.
    pub disconnected: usize,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ClaimError {
    #[error("no negotiated connection with this id (unknown or expired)")]
    Unknown,
    #[error("a WebSocket is already open for this connection")]
    AlreadyConnected,
}

#[derive(Clone, Default)]
pub struct HubState {
    inner: Arc<Mutex<Inner>>,
}

impl std::fmt::Debug for HubState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("HubState")
    }
}

impl HubState {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records a negotiate; the client has `ttl` to open its WebSocket.
    pub fn negotiated(&self, hub: &str, token: &str, connection_id: &str, ttl: Duration) {
        let now = Instant::now();
        let mut inner = self.lock();
        inner.pending.retain(|_, p| p.expires > now);
        inner.pending.insert(
            token.to_owned(),
            Pending {
                hub: hub.to_owned(),
                connection_id: connection_id.to_owned(),
                expires: now + ttl,
            },
        );
    }

    /// Turns a negotiated token into a live connection with a queue of `capacity` records.
    pub fn connect(
        &self,
        hub: &str,
        token: &str,
        capacity: usize,
    ) -> Result<(String, mpsc::Receiver<Record>), ClaimError> {
        let mut inner = self.lock();
        let pending = match inner.pending.remove(token) {
            Some(p) if p.expires > Instant::now() && p.hub == hub => p,
            _ => return Err(ClaimError::Unknown),
        };
        if inner.connections.contains_key(&pending.connection_id) {
            return Err(ClaimError::AlreadyConnected);
        }
        let (queue, receiver) = mpsc::channel(capacity);
        inner.connections.insert(
            pending.connection_id.clone(),
            Connection {
                hub: hub.to_owned(),
                queue,
                groups: HashSet::new(),
                abort: None,
            },
        );
        Ok((pending.connection_id, receiver))
    }

    /// Lets a full queue abort the connection's task (the socket is dropped with it).
    pub fn set_abort(&self, connection_id: &str, abort: AbortHandle) {
        let mut inner = self.lock();
        match inner.connections.get_mut(connection_id) {
            Some(connection) => connection.abort = Some(abort),
            // Already gone: make sure its task does not linger.
            None => abort.abort(),
        }
    }

    pub fn disconnect(&self, connection_id: &str) {
        let mut inner = self.lock();
        remove(&mut inner, connection_id);
    }

    pub fn connection_count(&self) -> usize {
        self.lock().connections.len()
    }

    pub fn exists(&self, hub: &str, connection_id: &str) -> bool {
        self.lock()
            .connections
            .get(connection_id)
            .is_some_and(|c| c.hub == hub)
    }

    pub fn group_exists(&self, hub: &str, group: &str) -> bool {
        self.lock()
            .groups
            .get(&(hub.to_owned(), group.to_owned()))
            .is_some_and(|members| !members.is_empty())
    }

    /// `false` when the connection is unknown (REST answers 404).
    pub fn add_to_group(&self, hub: &str, group: &str, connection_id: &str) -> bool {
        let mut inner = self.lock();
        let Some(connection) = inner.connections.get_mut(connection_id) else {
            return false;
        };
        if connection.hub != hub {
            return false;
        }
        connection.groups.insert(group.to_owned());
        inner
            .groups
            .entry((hub.to_owned(), group.to_owned()))
            .or_default()
            .insert(connection_id.to_owned());
        true
    }

    pub fn remove_from_group(&self, hub: &str, group: &str, connection_id: &str) -> bool {
        let mut inner = self.lock();
        let Some(connection) = inner.connections.get_mut(connection_id) else {
            return false;
        };
        connection.groups.remove(group);
        let key = (hub.to_owned(), group.to_owned());
        if let Some(members) = inner.groups.get_mut(&key) {
            members.remove(connection_id);
            if members.is_empty() {
                inner.groups.remove(&key);
            }
        }
        true
    }

    pub fn remove_from_all_groups(&self, hub: &str, connection_id: &str) -> bool {
        let groups: Vec<String> = match self.lock().connections.get(connection_id) {
            Some(c) => c.groups.iter().cloned().collect(),
            None => return false,
        };
        for group in groups {
            self.remove_from_group(hub, &group, connection_id);
        }
        true
    }

    /// Aborts a connection's task and forgets it.
    pub fn close(&self, hub: &str, connection_id: &str) -> bool {
        let mut inner = self.lock();
        if inner
            .connections
            .get(connection_id)
            .is_none_or(|c| c.hub != hub)
        {
            return false;
        }
        if let Some(abort) = remove(&mut inner, connection_id) {
            abort.abort();
        }
        true
    }

    /// Queues `record` for every member of the group; a member whose queue is full is
    /// disconnected (it would otherwise slow the sender or grow memory without bound).
    pub fn send_to_group(&self, hub: &str, group: &str, record: &Record) -> Delivery {
        let mut inner = self.lock();
        let members: Vec<String> = match inner.groups.get(&(hub.to_owned(), group.to_owned())) {
            Some(members) => members.iter().cloned().collect(),
            None => return Delivery::default(),
        };
        deliver(&mut inner, members, record)
    }

    pub fn send_to_all(&self, hub: &str, record: &Record) -> Delivery {
        let mut inner = self.lock();
        let members: Vec<String> = inner
            .connections
            .iter()
            .filter(|(_, c)| c.hub == hub)
            .map(|(id, _)| id.clone())
            .collect();
        deliver(&mut inner, members, record)
    }

    /// `None` when the connection is unknown.
    pub fn send_to_connection(
        &self,
        hub: &str,
        connection_id: &str,
        record: &Record,
    ) -> Option<Delivery> {
        let mut inner = self.lock();
        if inner
            .connections
            .get(connection_id)
            .is_none_or(|c| c.hub != hub)
        {
            return None;
        }
        Some(deliver(&mut inner, vec![connection_id.to_owned()], record))
    }
}

fn deliver(inner: &mut Inner, members: Vec<String>, record: &Record) -> Delivery {
    let mut delivery = Delivery::default();
    for id in members {
        let Some(connection) = inner.connections.get(&id) else {
            continue;
        };
        match connection.queue.try_send(record.clone()) {
            Ok(()) => delivery.queued += 1,
            Err(mpsc::error::TrySendError::Full(_)) => {
                tracing::warn!(connection_id = %id, "SignalR client too slow: send queue full, disconnecting it");
                if let Some(abort) = remove(inner, &id) {
                    abort.abort();
                }
                delivery.disconnected += 1;
            }
            // Its task already ended; it unregisters itself.
            Err(mpsc::error::TrySendError::Closed(_)) => {}
        }
    }
    delivery
}

fn remove(inner: &mut Inner, connection_id: &str) -> Option<AbortHandle> {
    let connection = inner.connections.remove(connection_id)?;
    for group in &connection.groups {
        let key = (connection.hub.clone(), group.clone());
        if let Some(members) = inner.groups.get_mut(&key) {
            members.remove(connection_id);
            if members.is_empty() {
                inner.groups.remove(&key);
            }
        }
    }
    connection.abort
}

#[cfg(test)]
mod tests {
    use super::*;

    fn connected(
        state: &HubState,
        token: &str,
        id: &str,
        capacity: usize,
    ) -> mpsc::Receiver<Record> {
        state.negotiated("h", token, id, Duration::from_secs(60));
        state.connect("h", token, capacity).unwrap().1
    }

    #[test]
    fn tokens_are_single_use_and_hub_bound() {
        let state = HubState::default();
        state.negotiated("h", "t", "c", Duration::from_secs(60));
        assert_eq!(
            state.connect("other", "t", 4).unwrap_err(),
            ClaimError::Unknown
        );
        state.negotiated("h", "t", "c", Duration::from_secs(60));
        assert!(state.connect("h", "t", 4).is_ok());
        assert_eq!(state.connect("h", "t", 4).unwrap_err(), ClaimError::Unknown);
        state.negotiated("h", "t2", "c", Duration::from_secs(60));
        assert_eq!(
            state.connect("h", "t2", 4).unwrap_err(),
            ClaimError::AlreadyConnected
        );
        state.negotiated("h", "old", "c2", Duration::ZERO);
        assert_eq!(
            state.connect("h", "old", 4).unwrap_err(),
            ClaimError::Unknown
        );
    }

    #[test]
    fn groups_route_only_to_members() {
        let state = HubState::default();
        let mut a = connected(&state, "ta", "a", 4);
        let mut b = connected(&state, "tb", "b", 4);
        assert!(state.add_to_group("h", "g", "a"));
        assert!(!state.add_to_group("h", "g", "nobody"));
        let record: Record = Arc::from("x");
        assert_eq!(state.send_to_group("h", "g", &record).queued, 1);
        assert_eq!(a.try_recv().unwrap().as_ref(), "x");
        assert!(b.try_recv().is_err());
        state.disconnect("a");
        assert!(!state.group_exists("h", "g"));
        assert_eq!(state.send_to_group("h", "g", &record), Delivery::default());
    }

    #[test]
    fn a_full_queue_disconnects_only_that_client() {
        let state = HubState::default();
        let _slow = connected(&state, "ts", "slow", 2);
        let mut fast = connected(&state, "tf", "fast", 16);
        state.add_to_group("h", "g", "slow");
        state.add_to_group("h", "g", "fast");
        let record: Record = Arc::from("x");
        let mut disconnected = 0;
        for _ in 0..5 {
            disconnected += state.send_to_group("h", "g", &record).disconnected;
            assert!(fast.try_recv().is_ok());
        }
        assert_eq!(disconnected, 1);
        assert!(!state.exists("h", "slow"));
        assert!(state.exists("h", "fast"));
    }
}
