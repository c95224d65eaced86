//! The hub's membership state: negotiated-but-not-yet-connected tokens, live connections (each
//! bound to the user its access token named) with their send queues, and groups, which hold
//! connections and users. Every method is synchronous and short; the lock is never held across
//! an await.
//!
//! Users in groups work as on Azure SignalR Service: adding a user to a group reaches every
//! connection of that user, those open now and those opened later, until the membership's TTL
//! runs out (or forever without one).
//!
//! A connection's queue is bounded twice: in records and in bytes. A send that would go over
//! either closes that connection with a reason instead (its client reconnects and resumes), so a
//! client that stops reading costs at most its byte budget, never the whole stream.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot};

/// A record ready to write, shared by every receiver of one send.
pub type Record = Arc<str>;

/// How much one connection may have waiting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueBudget {
    pub records: usize,
    pub bytes: usize,
}

/// The receiving end of a connection's queue, for its task.
#[derive(Debug)]
pub struct Outbox {
    pub records: mpsc::Receiver<Record>,
    queued_bytes: Arc<AtomicUsize>,
    /// Fires with the reason when the hub closes the connection (queue over budget, REST close).
    pub closed: oneshot::Receiver<String>,
}

impl Outbox {
    /// Takes a record out of the queue's byte count once it leaves the queue.
    pub fn taken(&self, record: &Record) {
        self.queued_bytes.fetch_sub(record.len(), Ordering::AcqRel);
    }
}

struct Connection {
    hub: String,
    /// The user id (`nameid`) of the access token the connection was negotiated with.
    user: Option<String>,
    queue: mpsc::Sender<Record>,
    queued_bytes: Arc<AtomicUsize>,
    byte_budget: usize,
    /// Groups this connection was added to by id (not through its user).
    groups: HashSet<String>,
    close: Option<oneshot::Sender<String>>,
}

struct Pending {
    hub: String,
    connection_id: String,
    user: Option<String>,
    expires: Instant,
}

type Key = (String, String);

#[derive(Default)]
struct Inner {
    /// By the `id` the client will present on the WebSocket (connectionToken, or connectionId in v0).
    pending: HashMap<String, Pending>,
    connections: HashMap<String, Connection>,
    /// (hub, group) → connection ids added by id.
    groups: HashMap<Key, HashSet<String>>,
    /// (hub, group) → users, each until its expiry (`None`: no TTL).
    group_users: HashMap<Key, HashMap<String, Option<Instant>>>,
    /// (hub, user) → that user's live connections.
    users: HashMap<Key, HashSet<String>>,
}

/// What a send did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Delivery {
    pub queued: usize,
    /// Connections closed because their queue was over budget.
    pub closed: usize,
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

fn key(hub: &str, name: &str) -> Key {
    (hub.to_owned(), name.to_owned())
}

fn live(expiry: &Option<Instant>, now: Instant) -> bool {
    expiry.is_none_or(|at| at > now)
}

impl HubState {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records a negotiate for `user` (the token's `nameid`); the client has `ttl` to open its
    /// WebSocket.
    pub fn negotiated(
        &self,
        hub: &str,
        token: &str,
        connection_id: &str,
        user: Option<&str>,
        ttl: Duration,
    ) {
        let now = Instant::now();
        let mut inner = self.lock();
        inner.pending.retain(|_, p| p.expires > now);
        inner.pending.insert(
            token.to_owned(),
            Pending {
                hub: hub.to_owned(),
                connection_id: connection_id.to_owned(),
                user: user.map(str::to_owned),
                expires: now + ttl,
            },
        );
    }

    /// Turns a negotiated token into a live connection with a queue of `budget`; returns its id
    /// and the queue's receiving end.
    pub fn connect(
        &self,
        hub: &str,
        token: &str,
        budget: QueueBudget,
    ) -> Result<(String, Outbox), ClaimError> {
        let mut inner = self.lock();
        let pending = match inner.pending.remove(token) {
            Some(p) if p.expires > Instant::now() && p.hub == hub => p,
            _ => return Err(ClaimError::Unknown),
        };
        if inner.connections.contains_key(&pending.connection_id) {
            return Err(ClaimError::AlreadyConnected);
        }
        let (queue, records) = mpsc::channel(budget.records.max(1));
        let (close, closed) = oneshot::channel();
        let queued_bytes = Arc::new(AtomicUsize::new(0));
        if let Some(user) = &pending.user {
            inner
                .users
                .entry(key(hub, user))
                .or_default()
                .insert(pending.connection_id.clone());
        }
        inner.connections.insert(
            pending.connection_id.clone(),
            Connection {
                hub: hub.to_owned(),
                user: pending.user,
                queue,
                queued_bytes: queued_bytes.clone(),
                byte_budget: budget.bytes,
                groups: HashSet::new(),
                close: Some(close),
            },
        );
        Ok((
            pending.connection_id,
            Outbox {
                records,
                queued_bytes,
                closed,
            },
        ))
    }

    /// Forgets a connection (its task ended).
    pub fn disconnect(&self, connection_id: &str) {
        let mut inner = self.lock();
        remove(&mut inner, connection_id);
    }

    pub fn connection_count(&self) -> usize {
        self.lock().connections.len()
    }

    /// The user a live connection is bound to.
    pub fn user_of(&self, connection_id: &str) -> Option<String> {
        self.lock()
            .connections
            .get(connection_id)
            .and_then(|c| c.user.clone())
    }

    pub fn exists(&self, hub: &str, connection_id: &str) -> bool {
        self.lock()
            .connections
            .get(connection_id)
            .is_some_and(|c| c.hub == hub)
    }

    /// Whether any connection would receive a send to the group.
    pub fn group_exists(&self, hub: &str, group: &str) -> bool {
        !members(&self.lock(), hub, group, Instant::now()).is_empty()
    }

    /// Whether the user has a live connection.
    pub fn user_exists(&self, hub: &str, user: &str) -> bool {
        self.lock()
            .users
            .get(&key(hub, user))
            .is_some_and(|c| !c.is_empty())
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
            .entry(key(hub, group))
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
        remove_member(&mut inner.groups, key(hub, group), connection_id);
        true
    }

    pub fn remove_from_all_groups(&self, hub: &str, connection_id: &str) -> bool {
        let mut inner = self.lock();
        let Some(connection) = inner.connections.get_mut(connection_id) else {
            return false;
        };
        let groups = std::mem::take(&mut connection.groups);
        for group in groups {
            remove_member(&mut inner.groups, key(hub, &group), connection_id);
        }
        true
    }

    /// Adds `user` to `group` until `ttl` from now (`None`: without end); a second add renews
    /// it. Whether the user is connected does not matter: its later connections are members too.
    pub fn add_user_to_group(&self, hub: &str, group: &str, user: &str, ttl: Option<Duration>) {
        let expiry = ttl.map(|ttl| Instant::now() + ttl);
        self.lock()
            .group_users
            .entry(key(hub, group))
            .or_default()
            .insert(user.to_owned(), expiry);
    }

    pub fn remove_user_from_group(&self, hub: &str, group: &str, user: &str) {
        let mut inner = self.lock();
        let group_key = key(hub, group);
        if let Some(users) = inner.group_users.get_mut(&group_key) {
            users.remove(user);
            if users.is_empty() {
                inner.group_users.remove(&group_key);
            }
        }
    }

    pub fn remove_user_from_all_groups(&self, hub: &str, user: &str) {
        let mut inner = self.lock();
        inner.group_users.retain(|(group_hub, _), users| {
            if group_hub == hub {
                users.remove(user);
            }
            !users.is_empty()
        });
    }

    pub fn user_in_group(&self, hub: &str, group: &str, user: &str) -> bool {
        let now = Instant::now();
        self.lock()
            .group_users
            .get(&key(hub, group))
            .and_then(|users| users.get(user))
            .is_some_and(|expiry| live(expiry, now))
    }

    /// Closes a connection with `reason` (its client gets a Close message with it) and forgets it.
    pub fn close(&self, hub: &str, connection_id: &str, reason: &str) -> bool {
        let mut inner = self.lock();
        if inner
            .connections
            .get(connection_id)
            .is_none_or(|c| c.hub != hub)
        {
            return false;
        }
        close(&mut inner, connection_id, reason);
        true
    }

    /// Queues `record` for every member of the group (connections added by id, and the
    /// connections of its users), each once.
    pub fn send_to_group(&self, hub: &str, group: &str, record: &Record) -> Delivery {
        let mut inner = self.lock();
        let now = Instant::now();
        expire_users(&mut inner, hub, group, now);
        let members = members(&inner, hub, group, now);
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

    /// Queues `record` for every connection of `user` (none is fine: the service answers 202).
    pub fn send_to_user(&self, hub: &str, user: &str, record: &Record) -> Delivery {
        let mut inner = self.lock();
        let members: Vec<String> = inner
            .users
            .get(&key(hub, user))
            .map(|c| c.iter().cloned().collect())
            .unwrap_or_default();
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

/// Drops a group's user memberships whose TTL ran out.
fn expire_users(inner: &mut Inner, hub: &str, group: &str, now: Instant) {
    let group_key = key(hub, group);
    if let Some(users) = inner.group_users.get_mut(&group_key) {
        users.retain(|_, expiry| live(expiry, now));
        if users.is_empty() {
            inner.group_users.remove(&group_key);
        }
    }
}

/// Every connection a send to the group reaches, each once.
fn members(inner: &Inner, hub: &str, group: &str, now: Instant) -> Vec<String> {
    let group_key = key(hub, group);
    let mut members: HashSet<&String> = inner
        .groups
        .get(&group_key)
        .map(|c| c.iter().collect())
        .unwrap_or_default();
    if let Some(users) = inner.group_users.get(&group_key) {
        for (user, expiry) in users {
            if !live(expiry, now) {
                continue;
            }
            if let Some(connections) = inner.users.get(&key(hub, user)) {
                members.extend(connections);
            }
        }
    }
    members.into_iter().cloned().collect()
}

fn remove_member(groups: &mut HashMap<Key, HashSet<String>>, group: Key, connection_id: &str) {
    if let Some(members) = groups.get_mut(&group) {
        members.remove(connection_id);
        if members.is_empty() {
            groups.remove(&group);
        }
    }
}

fn deliver(inner: &mut Inner, members: Vec<String>, record: &Record) -> Delivery {
    let mut delivery = Delivery::default();
    for id in members {
        let Some(connection) = inner.connections.get(&id) else {
            continue;
        };
        let queued = connection.queued_bytes.load(Ordering::Acquire);
        let over_bytes = queued + record.len() > connection.byte_budget && queued > 0;
        let outcome = if over_bytes {
            Err(format!(
                "too slow: over {} KiB waiting to be sent",
                connection.byte_budget / 1024
            ))
        } else {
            // Counted before it is queued, so the task never subtracts what was not added.
            connection
                .queued_bytes
                .fetch_add(record.len(), Ordering::AcqRel);
            match connection.queue.try_send(record.clone()) {
                Ok(()) => Ok(()),
                Err(e) => {
                    connection
                        .queued_bytes
                        .fetch_sub(record.len(), Ordering::AcqRel);
                    match e {
                        mpsc::error::TrySendError::Full(_) => Err(format!(
                            "too slow: {} messages waiting to be sent",
                            connection.queue.max_capacity()
                        )),
                        // Its task already ended; it unregisters itself.
                        mpsc::error::TrySendError::Closed(_) => continue,
                    }
                }
            }
        };
        match outcome {
            Ok(()) => delivery.queued += 1,
            Err(reason) => {
                tracing::warn!(connection_id = %id, %reason, "closing a SignalR connection that cannot keep up");
                close(inner, &id, &reason);
                delivery.closed += 1;
            }
        }
    }
    delivery
}

/// Forgets the connection and tells its task to close with `reason`.
fn close(inner: &mut Inner, connection_id: &str, reason: &str) {
    if let Some(mut connection) = remove(inner, connection_id) {
        if let Some(close) = connection.close.take() {
            let _ = close.send(reason.to_owned());
        }
    }
}

fn remove(inner: &mut Inner, connection_id: &str) -> Option<Connection> {
    let connection = inner.connections.remove(connection_id)?;
    for group in &connection.groups {
        remove_member(
            &mut inner.groups,
            key(&connection.hub, group),
            connection_id,
        );
    }
    if let Some(user) = &connection.user {
        remove_member(&mut inner.users, key(&connection.hub, user), connection_id);
    }
    Some(connection)
}

#[cfg(test)]
mod tests {
    use super::*;

    const BUDGET: QueueBudget = QueueBudget {
        records: 16,
        bytes: 1024,
    };

    fn connected(state: &HubState, token: &str, id: &str, user: Option<&str>) -> Outbox {
        connected_with(state, token, id, user, BUDGET)
    }

    fn connected_with(
        state: &HubState,
        token: &str,
        id: &str,
        user: Option<&str>,
        budget: QueueBudget,
    ) -> Outbox {
        state.negotiated("h", token, id, user, Duration::from_secs(60));
        state.connect("h", token, budget).unwrap().1
    }

    #[test]
    fn tokens_are_single_use_and_hub_bound() {
        let state = HubState::default();
        state.negotiated("h", "t", "c", None, Duration::from_secs(60));
        assert_eq!(
            state.connect("other", "t", BUDGET).unwrap_err(),
            ClaimError::Unknown
        );
        state.negotiated("h", "t", "c", None, Duration::from_secs(60));
        assert!(state.connect("h", "t", BUDGET).is_ok());
        assert_eq!(
            state.connect("h", "t", BUDGET).unwrap_err(),
            ClaimError::Unknown
        );
        state.negotiated("h", "t2", "c", None, Duration::from_secs(60));
        assert_eq!(
            state.connect("h", "t2", BUDGET).unwrap_err(),
            ClaimError::AlreadyConnected
        );
        state.negotiated("h", "old", "c2", None, Duration::ZERO);
        assert_eq!(
            state.connect("h", "old", BUDGET).unwrap_err(),
            ClaimError::Unknown
        );
    }

    #[test]
    fn groups_route_only_to_members() {
        let state = HubState::default();
        let mut a = connected(&state, "ta", "a", None);
        let mut b = connected(&state, "tb", "b", None);
        assert!(state.add_to_group("h", "g", "a"));
        assert!(!state.add_to_group("h", "g", "nobody"));
        let record: Record = Arc::from("x");
        assert_eq!(state.send_to_group("h", "g", &record).queued, 1);
        assert_eq!(a.records.try_recv().unwrap().as_ref(), "x");
        assert!(b.records.try_recv().is_err());
        state.disconnect("a");
        assert!(!state.group_exists("h", "g"));
        assert_eq!(state.send_to_group("h", "g", &record), Delivery::default());
    }

    #[test]
    fn a_users_group_reaches_its_connections_now_and_later_once_each() {
        let state = HubState::default();
        let mut first = connected(&state, "t1", "c1", Some("ann"));
        let mut other = connected(&state, "t2", "c2", Some("bob"));
        state.add_user_to_group("h", "g", "ann", None);
        // Added by id too: still one copy.
        assert!(state.add_to_group("h", "g", "c1"));
        let mut later = connected(&state, "t3", "c3", Some("ann"));
        assert_eq!(state.user_of("c3").as_deref(), Some("ann"));
        let record: Record = Arc::from("x");
        assert_eq!(state.send_to_group("h", "g", &record).queued, 2);
        assert!(first.records.try_recv().is_ok());
        assert!(first.records.try_recv().is_err());
        assert!(later.records.try_recv().is_ok());
        assert!(other.records.try_recv().is_err());
        assert!(state.user_in_group("h", "g", "ann"));
        assert!(!state.user_in_group("h", "g", "bob"));

        state.remove_user_from_group("h", "g", "ann");
        assert_eq!(state.send_to_group("h", "g", &record).queued, 1, "c1 by id");
        state.add_user_to_group("h", "g2", "ann", None);
        state.add_user_to_group("h", "g3", "ann", None);
        state.remove_user_from_all_groups("h", "ann");
        assert!(!state.user_in_group("h", "g2", "ann"));
        assert!(!state.group_exists("h", "g3"));
        assert_eq!(state.send_to_user("h", "ann", &record).queued, 2);
        assert_eq!(state.send_to_user("h", "nobody", &record).queued, 0);
    }

    #[test]
    fn a_user_membership_ends_with_its_ttl() {
        let state = HubState::default();
        let mut outbox = connected(&state, "t", "c", Some("ann"));
        state.add_user_to_group("h", "g", "ann", Some(Duration::ZERO));
        let record: Record = Arc::from("x");
        assert_eq!(state.send_to_group("h", "g", &record).queued, 0);
        assert!(!state.user_in_group("h", "g", "ann"));
        // Renewed with a TTL that has time left.
        state.add_user_to_group("h", "g", "ann", Some(Duration::from_secs(60)));
        assert_eq!(state.send_to_group("h", "g", &record).queued, 1);
        assert!(outbox.records.try_recv().is_ok());
    }

    #[test]
    fn a_connection_over_its_byte_budget_is_closed_with_a_reason() {
        let state = HubState::default();
        let budget = QueueBudget {
            records: 100,
            bytes: 10,
        };
        let mut slow = connected_with(&state, "ts", "slow", None, budget);
        let mut fast = connected_with(&state, "tf", "fast", None, budget);
        state.add_to_group("h", "g", "slow");
        state.add_to_group("h", "g", "fast");
        let record: Record = Arc::from("abcdef");
        assert_eq!(state.send_to_group("h", "g", &record).queued, 2);
        let taken = fast.records.try_recv().unwrap();
        fast.taken(&taken);
        // slow still holds 6 bytes: 6 + 6 > 10.
        let delivery = state.send_to_group("h", "g", &record);
        assert_eq!(
            delivery,
            Delivery {
                queued: 1,
                closed: 1
            }
        );
        assert!(!state.exists("h", "slow"));
        assert!(state.exists("h", "fast"));
        let reason = slow.closed.try_recv().unwrap();
        assert!(reason.contains("too slow"), "{reason}");
        // One record bigger than the whole budget still goes to an empty queue.
        let big: Record = Arc::from("x".repeat(50));
        let _ = fast.records.try_recv();
        fast.queued_bytes.store(0, Ordering::Release);
        assert_eq!(state.send_to_group("h", "g", &big).queued, 1);
    }

    #[test]
    fn a_full_record_queue_closes_only_that_client() {
        let state = HubState::default();
        let budget = QueueBudget {
            records: 2,
            bytes: 1 << 20,
        };
        let _slow = connected_with(&state, "ts", "slow", None, budget);
        let mut fast = connected(&state, "tf", "fast", None);
        state.add_to_group("h", "g", "slow");
        state.add_to_group("h", "g", "fast");
        let record: Record = Arc::from("x");
        let mut closed = 0;
        for _ in 0..5 {
            closed += state.send_to_group("h", "g", &record).closed;
            let taken = fast.records.try_recv().unwrap();
            fast.taken(&taken);
        }
        assert_eq!(closed, 1);
        assert!(!state.exists("h", "slow"));
        assert!(state.exists("h", "fast"));
    }
}
