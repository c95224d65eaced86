//! The live state of the process that `GET /api/health` reports: per change-feed function its
//! deliveries and failures (`PumpStatus`), and whether the store and the real-time transport
//! failed the last time they were used (`Failing`). The adapters and the observed store and sink
//! record here; health only reads.
//!
//! Failures are remembered until the next success of the same kind, so a reader sees a fault
//! exactly while it lasts: `failingSince` says since when, `lastError` says why.

use std::collections::BTreeMap;
use std::sync::Mutex;

use serde::Serialize;

use crate::model::Timestamp;

/// Something that failed the last time it was tried: since when (the first failure of this run
/// of failures), the latest error, when that came and how many failures there were in a row.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Failing {
    pub since: Timestamp,
    pub error: String,
    pub last_at: Timestamp,
    pub failures: u64,
}

impl Failing {
    /// Records one failure in `slot`: a new run starts now, or the current one goes on.
    pub fn record(slot: &mut Option<Failing>, error: &str, now: Timestamp) {
        match slot {
            Some(failing) => {
                failing.error = error.to_owned();
                failing.last_at = now;
                failing.failures += 1;
            }
            None => {
                *slot = Some(Failing {
                    since: now,
                    error: error.to_owned(),
                    last_at: now,
                    failures: 1,
                })
            }
        }
    }
}

/// What a change-feed function was doing when it failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum FailureKind {
    /// An attempt of a batch (the function failed, or its dead letter could not be written).
    Batch,
    /// Saving the checkpoint after a batch (serve mode).
    Checkpoint,
    /// Reading the change feed, or the checkpoint at start (serve mode).
    ChangeFeed,
}

/// Progress of one change-feed function's deliveries.
#[derive(Debug, Clone, Default, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PumpStatus {
    pub container: String,
    pub continuation: Option<String>,
    pub batches: u64,
    pub documents: u64,
    pub dead_lettered_batches: u64,
    /// Every failed attempt: batch attempts (the last one of a dead-lettered batch included),
    /// checkpoint writes and change-feed reads.
    pub failed_attempts: u64,
    /// The latest failure, until the next success of what failed (a successful batch clears
    /// any).
    pub last_error: Option<String>,
    pub last_error_at: Option<Timestamp>,
    /// What failed: `batch`, `checkpoint` or `changeFeed`.
    pub last_error_in: Option<FailureKind>,
    /// Since when this function has been failing without moving on; null once it succeeds, or
    /// once a batch that failed every attempt is dead-lettered (the feed moved on past it).
    pub failing_since: Option<Timestamp>,
    pub last_success_at: Option<Timestamp>,
    /// When the attempt now running started; null between attempts.
    pub in_flight_since: Option<Timestamp>,
    /// When the checkpoint last moved (serve mode), or a batch last completed (handler mode).
    pub advanced_at: Option<Timestamp>,
    pub last_batch_at: Option<Timestamp>,
    pub last_batch_size: Option<u64>,
    /// Seconds between the newest document's write (`_ts`) and the processing of its batch.
    pub lag_seconds: Option<i64>,
}

impl PumpStatus {
    fn failed(&mut self, kind: FailureKind, error: &str, now: Timestamp) {
        self.failed_attempts += 1;
        self.last_error = Some(error.to_owned());
        self.last_error_at = Some(now);
        self.last_error_in = Some(kind);
        self.failing_since.get_or_insert(now);
        if kind == FailureKind::Batch {
            self.in_flight_since = None;
        }
    }

    fn succeeded(&mut self, kind: FailureKind, now: Timestamp) {
        if kind == FailureKind::Batch {
            self.in_flight_since = None;
            self.last_success_at = Some(now);
        }
        // A batch that went through proves the function works again, but not that its
        // checkpoint can be written (`serve` saves it apart from the batches); a checkpoint
        // write or a feed read only clears its own kind of failure.
        let batch_clears =
            kind == FailureKind::Batch && self.last_error_in != Some(FailureKind::Checkpoint);
        if batch_clears || self.last_error_in == Some(kind) {
            self.last_error = None;
            self.last_error_at = None;
            self.last_error_in = None;
            self.failing_since = None;
        }
    }
}

/// Live state of the process, for `GET /api/health`.
#[derive(Debug)]
pub struct RuntimeStatus {
    pub mode: &'static str,
    pub started_at: Timestamp,
    pumps: Mutex<BTreeMap<String, PumpStatus>>,
    /// Per container: a full disk fails every write, but a backend may fail one container's
    /// while another's work, and a success there must not hide the failure here.
    store_reads: Mutex<BTreeMap<&'static str, Failing>>,
    store_writes: Mutex<BTreeMap<&'static str, Failing>>,
    sink_calls: Mutex<BTreeMap<&'static str, Failing>>,
}

/// Which of the process's outside services a recorded call went to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dependency {
    StoreReads,
    StoreWrites,
    /// Sends and group changes of the real-time transport.
    Sink,
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

impl RuntimeStatus {
    pub fn new(mode: &'static str, started_at: Timestamp) -> Self {
        RuntimeStatus {
            mode,
            started_at,
            pumps: Mutex::new(BTreeMap::new()),
            store_reads: Mutex::new(BTreeMap::new()),
            store_writes: Mutex::new(BTreeMap::new()),
            sink_calls: Mutex::new(BTreeMap::new()),
        }
    }

    pub fn update_pump(&self, function: &str, update: impl FnOnce(&mut PumpStatus)) {
        let mut pumps = lock(&self.pumps);
        update(pumps.entry(function.to_owned()).or_default());
    }

    pub fn pumps(&self) -> BTreeMap<String, PumpStatus> {
        lock(&self.pumps).clone()
    }

    /// A change-feed function this process serves, known before its first batch.
    pub fn register(&self, function: &str, container: &str) {
        self.update_pump(function, |s| s.container = container.to_owned());
    }

    /// An attempt of a batch starts.
    pub fn attempt_started(&self, function: &str, now: Timestamp) {
        self.update_pump(function, |s| s.in_flight_since = Some(now));
    }

    pub fn failed(&self, function: &str, kind: FailureKind, error: &str, now: Timestamp) {
        self.update_pump(function, |s| s.failed(kind, error, now));
    }

    pub fn succeeded(&self, function: &str, kind: FailureKind, now: Timestamp) {
        self.update_pump(function, |s| s.succeeded(kind, now));
    }

    /// A batch is done with: processed, or dead-lettered after its last attempt failed (then
    /// the function is no longer held up by it, though `lastError` still says why).
    pub fn batch_done(
        &self,
        function: &str,
        documents: usize,
        dead_lettered: bool,
        now: Timestamp,
    ) {
        self.update_pump(function, |s| {
            s.batches += 1;
            s.documents += documents as u64;
            s.last_batch_at = Some(now);
            if dead_lettered {
                s.dead_lettered_batches += 1;
                s.failing_since = None;
            }
        });
    }

    /// The function's position moved to `continuation` (`None` where the host keeps it).
    pub fn advanced(&self, function: &str, continuation: Option<String>, now: Timestamp) {
        self.update_pump(function, |s| {
            if continuation.is_some() {
                s.continuation = continuation;
            }
            s.advanced_at = Some(now);
        });
    }

    fn slot(&self, dependency: Dependency) -> &Mutex<BTreeMap<&'static str, Failing>> {
        match dependency {
            Dependency::StoreReads => &self.store_reads,
            Dependency::StoreWrites => &self.store_writes,
            Dependency::Sink => &self.sink_calls,
        }
    }

    /// The outcome of one call to an outside service (`target`: the container, or `""`): a
    /// failure starts or extends that target's run of failures, a success ends it.
    pub fn record_call(
        &self,
        dependency: Dependency,
        target: &'static str,
        outcome: Result<(), &str>,
        now: Timestamp,
    ) {
        let mut slots = lock(self.slot(dependency));
        match outcome {
            Ok(()) => {
                slots.remove(target);
            }
            Err(error) => {
                let mut slot = slots.remove(target);
                Failing::record(&mut slot, error, now);
                if let Some(failing) = slot {
                    slots.insert(target, failing);
                }
            }
        }
    }

    /// The targets (containers) whose calls of that kind are failing now.
    pub fn failing_targets(&self, dependency: Dependency) -> Vec<&'static str> {
        lock(self.slot(dependency)).keys().copied().collect()
    }

    /// Whether calls of that kind are failing: the longest run of failures (the error names
    /// every target failing), or `None`.
    pub fn failing(&self, dependency: Dependency) -> Option<Failing> {
        let slots = lock(self.slot(dependency));
        let oldest = slots.values().min_by_key(|f| f.since)?.clone();
        let named = |target: &str, failing: &Failing| {
            if target.is_empty() {
                failing.error.clone()
            } else {
                format!("{target}: {}", failing.error)
            }
        };
        Some(Failing {
            error: slots
                .iter()
                .map(|(target, failing)| named(target, failing))
                .collect::<Vec<_>>()
                .join("; "),
            last_at: slots
                .values()
                .map(|f| f.last_at)
                .max()
                .unwrap_or(oldest.last_at),
            failures: slots.values().map(|f| f.failures).sum(),
            ..oldest
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(seconds: i64) -> Timestamp {
        Timestamp::parse("2026-01-01T00:00:00Z")
            .unwrap()
            .plus_millis(seconds * 1000)
    }

    #[test]
    fn a_run_of_failures_keeps_its_start_and_ends_with_a_success() {
        let status = RuntimeStatus::new("test", at(0));
        let writes = Dependency::StoreWrites;
        status.record_call(writes, "entities", Err("disk full"), at(1));
        status.record_call(writes, "entities", Err("disk still full"), at(5));
        let failing = status.failing(writes).unwrap();
        assert_eq!(failing.since, at(1));
        assert_eq!(failing.last_at, at(5));
        assert_eq!(failing.failures, 2);
        assert_eq!(failing.error, "entities: disk still full");
        assert!(status.failing(Dependency::StoreReads).is_none());
        // A write elsewhere that works does not hide it.
        status.record_call(writes, "leases", Ok(()), at(6));
        assert_eq!(status.failing(writes).unwrap().since, at(1));
        status.record_call(writes, "entities", Ok(()), at(7));
        assert!(status.failing(writes).is_none());
    }

    #[test]
    fn every_failed_attempt_counts_and_the_next_success_clears_the_error() {
        let status = RuntimeStatus::new("test", at(0));
        status.attempt_started("F", at(1));
        status.failed("F", FailureKind::Batch, "store down", at(2));
        status.failed("F", FailureKind::Checkpoint, "disk full", at(3));
        let pump = &status.pumps()["F"];
        assert_eq!(pump.failed_attempts, 2);
        assert_eq!(pump.failing_since, Some(at(2)));
        assert_eq!(pump.last_error.as_deref(), Some("disk full"));
        assert_eq!(pump.last_error_in, Some(FailureKind::Checkpoint));
        assert_eq!(pump.in_flight_since, None);

        // A feed read or a batch that works says nothing about the checkpoint.
        status.succeeded("F", FailureKind::ChangeFeed, at(4));
        assert!(status.pumps()["F"].failing_since.is_some());
        status.succeeded("F", FailureKind::Batch, at(4));
        assert_eq!(status.pumps()["F"].last_error.as_deref(), Some("disk full"));
        status.succeeded("F", FailureKind::Checkpoint, at(5));
        let pump = &status.pumps()["F"];
        assert_eq!(pump.failing_since, None);
        assert_eq!(pump.last_error, None);
        assert_eq!(pump.failed_attempts, 2, "the count stays");
    }

    #[test]
    fn a_dead_lettered_batch_moves_on_but_keeps_its_error_until_a_batch_succeeds() {
        let status = RuntimeStatus::new("test", at(0));
        status.failed("F", FailureKind::Batch, "poison", at(1));
        status.batch_done("F", 3, true, at(2));
        let pump = &status.pumps()["F"];
        assert_eq!(pump.failing_since, None);
        assert_eq!(pump.last_error.as_deref(), Some("poison"));
        assert_eq!(
            (pump.batches, pump.documents, pump.dead_lettered_batches),
            (1, 3, 1)
        );
        status.succeeded("F", FailureKind::Checkpoint, at(3));
        assert_eq!(status.pumps()["F"].last_error.as_deref(), Some("poison"));
        status.succeeded("F", FailureKind::Batch, at(4));
        assert_eq!(status.pumps()["F"].last_error, None);
        assert_eq!(status.pumps()["F"].last_success_at, Some(at(4)));
    }
}
