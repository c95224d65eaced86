//! `GET /api/health`: is the process up, can it reach its store and its real-time transport
//! (SignalR), and is each change-feed function keeping up: per function the batches and
//! documents seen, every failed attempt, the dead letters waiting for replay, the last batch's
//! size and lag, and in serve mode the changes still pending behind the checkpoint.
//!
//! The status tells the truth: `degraded`, with a `problems` entry (what, why, since when) for
//! each of: the store failing reads or writes, the real-time transport failing sends or the
//! probe, a function failing (its batches, checkpoint writes or feed reads), an attempt running
//! far too long, and a pump with changes pending that has not moved. The answer is 200 unless
//! the store does not answer at all (503); `?strict=1` makes every `degraded` a 503, for probes
//! that should take the instance out of rotation.

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;
use schemars::JsonSchema;
use serde::Serialize;

use crate::model::Timestamp;
use crate::runtime::deadletter;
use crate::runtime::operation::Parameter;
use crate::runtime::{
    AppContext, Dependency, Failing, HttpHandler, HttpRequest, HttpResponse, Operation, PumpStatus,
};
use crate::store::Container;

/// A health probe waits this long for the store and for SignalR, so a hanging dependency shows
/// as failing instead of hanging the probe (the REST sender alone may retry for 30 s).
const PROBE_TIMEOUT: Duration = Duration::from_secs(3);
/// An attempt still running after this long is reported (a healthy batch takes seconds).
pub const SLOW_ATTEMPT: Duration = Duration::from_secs(20);
/// A pump with changes pending whose checkpoint has not moved for this long is stalled: more
/// than the retry policy's ~31 s, so a batch being retried shows as failing first.
pub const STALL_AFTER: Duration = Duration::from_secs(60);

pub struct Health;

/// The answer of `GET /api/health`.
#[derive(Debug, Clone, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HealthReport {
    /// `ok`, or `degraded` when anything in `problems` is wrong.
    pub status: String,
    pub version: String,
    /// `serve` or `handler`.
    pub mode: String,
    pub started_at: Timestamp,
    pub now: Timestamp,
    pub store: StoreHealth,
    /// The real-time sink: `signalr`, `none`, `console`, `journal`, …
    pub realtime: String,
    #[serde(rename = "signalR")]
    pub signal_r: SignalRHealth,
    /// Per change-feed function.
    pub change_feed: BTreeMap<String, ChangeFeedHealth>,
    /// What makes the status `degraded`, each with since when; empty when `ok`.
    pub problems: Vec<Problem>,
    /// Dead-lettered batches waiting for a replay, over every function (they do not make the
    /// status degraded: the batch is kept and the feed moved on, but someone should replay it).
    pub dead_letters: u64,
}

#[derive(Debug, Clone, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct StoreHealth {
    /// `sqlite` or `cosmos`.
    pub backend: String,
    /// `ok`, or `error` when the probe failed or reads or writes are failing.
    pub status: String,
    /// Why the probe (a point read) failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Request units this process has spent (Cosmos DB only; null on SQLite).
    pub request_units: Option<f64>,
    /// Set while reads fail: since when, the latest error.
    pub reads: Option<Failing>,
    /// Set while writes fail (a full disk fails writes while reads still work).
    pub writes: Option<Failing>,
}

#[derive(Debug, Clone, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SignalRHealth {
    pub sink: String,
    /// `ok`, `error`, or `disabled` when no transport is configured.
    pub status: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Set while sends, group changes or probes fail: since when, the latest error.
    pub calls: Option<Failing>,
}

#[derive(Debug, Clone, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ChangeFeedHealth {
    /// `ok`, or `degraded` when this function has a problem.
    pub status: String,
    #[serde(flatten)]
    pub pump: PumpStatus,
    /// Changes behind the checkpoint (serve mode on SQLite; null elsewhere).
    pub pending_changes: Option<u64>,
    /// Its dead-lettered batches in the store, waiting for a replay (null if they could not be
    /// counted).
    pub dead_letters: Option<u64>,
}

/// One reason for `degraded`.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Problem {
    /// `store`, `signalR`, or `changeFeed.{Function}`.
    pub component: String,
    pub error: String,
    pub since: Timestamp,
}

/// What one health request found, before judging it.
#[derive(Debug, Clone)]
pub struct Observations {
    pub now: Timestamp,
    pub started_at: Timestamp,
    pub store_probe: Result<(), String>,
    pub store_reads: Option<Failing>,
    pub store_writes: Option<Failing>,
    /// `None` when no real-time transport is configured.
    pub signalr_probe: Option<Result<(), String>>,
    pub sink_calls: Option<Failing>,
    pub pumps: BTreeMap<String, (PumpStatus, Option<u64>)>,
}

fn seconds_between(from: Timestamp, to: Timestamp) -> u64 {
    (to.epoch_millis() - from.epoch_millis()).max(0) as u64 / 1000
}

/// The problems in what was observed (pure: every rule is unit-tested).
pub fn problems(seen: &Observations) -> Vec<Problem> {
    let mut problems = Vec::new();
    let mut add = |component: &str, error: String, since: Timestamp| {
        problems.push(Problem {
            component: component.to_owned(),
            error,
            since,
        })
    };
    if let Err(error) = &seen.store_probe {
        let since = seen.store_reads.as_ref().map_or(seen.now, |f| f.since);
        add(
            "store",
            format!("the store does not answer: {error}"),
            since,
        );
    } else if let Some(reads) = &seen.store_reads {
        add("store", format!("reads fail: {}", reads.error), reads.since);
    }
    if let Some(writes) = &seen.store_writes {
        add(
            "store",
            format!("writes fail: {}", writes.error),
            writes.since,
        );
    }
    match (&seen.signalr_probe, &seen.sink_calls) {
        (None, _) => {}
        (Some(Err(error)), calls) => {
            let since = calls.as_ref().map_or(seen.now, |f| f.since);
            add("signalR", format!("the probe failed: {error}"), since);
        }
        (Some(Ok(())), Some(calls)) => add(
            "signalR",
            format!("calls fail: {}", calls.error),
            calls.since,
        ),
        (Some(Ok(())), None) => {}
    }
    for (function, (pump, pending)) in &seen.pumps {
        let component = format!("changeFeed.{function}");
        if let Some(since) = pump.failing_since {
            let error = pump.last_error.clone().unwrap_or_else(|| "failing".into());
            add(&component, error, since);
        }
        if let Some(started) = pump.in_flight_since {
            let running = seconds_between(started, seen.now);
            if running >= SLOW_ATTEMPT.as_secs() {
                add(
                    &component,
                    format!("an attempt has been running for {running} s"),
                    started,
                );
            }
        }
        if let Some(pending) = pending.filter(|p| *p > 0) {
            let last_moved = pump.advanced_at.unwrap_or(seen.started_at);
            let still = seconds_between(last_moved, seen.now);
            if still >= STALL_AFTER.as_secs() {
                add(
                    &component,
                    format!("{pending} changes pending and no progress for {still} s"),
                    last_moved,
                );
            }
        }
    }
    problems
}

/// `?strict=`: absent, `0`/`false` or `1`/`true`.
fn strict(request: &HttpRequest) -> Result<bool, HttpResponse> {
    match request.query.get("strict").map(|v| v.trim()) {
        None | Some("") | Some("0") | Some("false") => Ok(false),
        Some("1") | Some("true") => Ok(true),
        Some(other) => Err(HttpResponse::error(
            400,
            format!(
                "strict must be 1, true, 0 or false, not {:?}",
                other.chars().take(16).collect::<String>()
            ),
        )),
    }
}

/// Containers a write probe may touch: none is a change-feed source, so a probe document never
/// reaches a function. Writes to `executions` and `execution_data` show as working again with
/// the next real write.
const WRITE_PROBED: [Container; 3] = [
    Container::Entities,
    Container::Leases,
    Container::DeadLetters,
];

/// While writes to a container fail, each health request tries one write there (a probe
/// document in a partition of its own, which no query of the functions reads), so a recovered
/// store shows as recovered without waiting for the next batch that writes there.
async fn retry_failing_writes(ctx: &AppContext) {
    let failing = ctx.status.failing_targets(Dependency::StoreWrites);
    for container in WRITE_PROBED {
        if !failing.contains(&container.name()) {
            continue;
        }
        let mut probe = serde_json::json!({
            "id": "health-write-probe",
            "type": "healthProbe",
            "checkedAt": ctx.clock.now(),
        });
        probe[container.partition_key_field()] = serde_json::json!("health-write-probe");
        // The observed store records the outcome; a timeout is recorded here.
        if let Err(error) = bounded(ctx.store.upsert(container, probe, None)).await {
            ctx.status.record_call(
                Dependency::StoreWrites,
                container.name(),
                Err(&error),
                ctx.clock.now(),
            );
        }
    }
}

/// `work`, or an error when it takes longer than `PROBE_TIMEOUT`.
async fn bounded<T, E: std::fmt::Display>(
    work: impl std::future::Future<Output = Result<T, E>>,
) -> Result<T, String> {
    match tokio::time::timeout(PROBE_TIMEOUT, work).await {
        Ok(result) => result.map_err(|e| e.to_string()),
        Err(_) => Err(format!("no answer within {} s", PROBE_TIMEOUT.as_secs())),
    }
}

/// A point read of a document that never exists: proves the store answers, costs ~1 RU.
async fn probe_store(ctx: &AppContext) -> Result<(), String> {
    let probe = bounded(
        ctx.store
            .read(Container::Leases, "health-probe", "health-probe"),
    )
    .await
    .map(drop);
    if let Err(error) = &probe {
        // A probe that timed out never reached the observed store's bookkeeping.
        ctx.status.record_call(
            Dependency::StoreReads,
            Container::Leases.name(),
            Err(error),
            ctx.clock.now(),
        );
    }
    probe
}

/// Each pump's status, with its pending changes and its dead letters in the store.
type PumpChecks = (
    BTreeMap<String, (PumpStatus, Option<u64>)>,
    BTreeMap<String, Option<u64>>,
);

async fn check_pumps(ctx: &AppContext) -> PumpChecks {
    let checks = ctx
        .status
        .pumps()
        .into_iter()
        .map(|(function, pump)| async move {
            let pending = async {
                match (Container::from_name(&pump.container), &pump.continuation) {
                    (Some(container), Some(position)) => {
                        bounded(ctx.store.pending_changes(container, position))
                            .await
                            .ok()
                            .flatten()
                    }
                    _ => None,
                }
            };
            let dead_letters = async {
                bounded(deadletter::count(ctx.store.as_ref(), &function))
                    .await
                    .ok()
            };
            let (pending, dead_letters) = tokio::join!(pending, dead_letters);
            (function, pump, pending, dead_letters)
        });
    let mut pumps = BTreeMap::new();
    let mut dead_letter_counts = BTreeMap::new();
    for (function, pump, pending, dead_letters) in futures_util::future::join_all(checks).await {
        dead_letter_counts.insert(function.clone(), dead_letters);
        pumps.insert(function, (pump, pending));
    }
    (pumps, dead_letter_counts)
}

/// The real-time transport's probe; `None` when there is none.
async fn probe_sink(ctx: &AppContext) -> Option<Result<(), String>> {
    if ctx.sink.name() == "none" {
        return None;
    }
    let probe = bounded(ctx.sink.probe()).await;
    if let Err(error) = &probe {
        ctx.status
            .record_call(Dependency::Sink, "", Err(error), ctx.clock.now());
    }
    Some(probe)
}

#[async_trait]
impl HttpHandler for Health {
    async fn handle(&self, ctx: &AppContext, request: HttpRequest) -> HttpResponse {
        let strict = match strict(&request) {
            Ok(strict) => strict,
            Err(response) => return response,
        };
        // Every check is bounded by `PROBE_TIMEOUT` and they all run at once, so a store or a
        // transport that hangs makes the answer take that long, not the sum of the checks.
        let (store_probe, (), pumps, signalr_probe) = tokio::join!(
            probe_store(ctx),
            retry_failing_writes(ctx),
            check_pumps(ctx),
            probe_sink(ctx),
        );
        let (pumps, dead_letter_counts) = pumps;
        let sink = ctx.sink.name();

        let seen = Observations {
            now: ctx.clock.now(),
            started_at: ctx.status.started_at,
            store_probe,
            store_reads: ctx.status.failing(Dependency::StoreReads),
            store_writes: ctx.status.failing(Dependency::StoreWrites),
            signalr_probe,
            sink_calls: ctx.status.failing(Dependency::Sink),
            pumps,
        };
        let problems = problems(&seen);
        let report = report(ctx, sink, seen, &problems, dead_letter_counts);
        let store_answers = report.store.error.is_none();
        let degraded = !problems.is_empty();
        let status = if !store_answers || (strict && degraded) {
            503
        } else {
            200
        };
        HttpResponse::json(status, &report).with_header("Cache-Control", "no-store")
    }

    fn operation(&self) -> Operation {
        Operation::new("ops", "Health")
            .description("No principal needed. `degraded` lists its `problems` (what, why, since when); dead letters waiting are counted per function. The answer is 503 when the store does not answer; with `strict=1`, also whenever the status is `degraded`.")
            .parameter(Parameter::query::<String>(
                "strict",
                "`1` or `true`: answer 503 whenever the status is not `ok` (for probes that take an instance out of rotation).",
            ))
            .ok::<HealthReport>("The process, its store, its real-time transport and its change-feed functions.")
            .errors(&[400])
            .response::<HealthReport>(503, "The store does not answer, or (with `strict=1`) the status is `degraded`: the same report.")
    }
}

/// The report of what was seen and judged.
fn report(
    ctx: &AppContext,
    sink: &str,
    seen: Observations,
    problems: &[Problem],
    dead_letter_counts: BTreeMap<String, Option<u64>>,
) -> HealthReport {
    let component_ok = |component: &str| problems.iter().all(|p| p.component != component);
    let store = StoreHealth {
        backend: ctx.store.backend().to_owned(),
        status: if component_ok("store") { "ok" } else { "error" }.to_owned(),
        error: seen.store_probe.err(),
        request_units: ctx.store.request_units(),
        reads: seen.store_reads,
        writes: seen.store_writes,
    };
    let signal_r = SignalRHealth {
        sink: sink.to_owned(),
        status: match &seen.signalr_probe {
            None => "disabled",
            Some(_) if component_ok("signalR") => "ok",
            Some(_) => "error",
        }
        .to_owned(),
        error: seen.signalr_probe.and_then(Result::err),
        calls: seen.sink_calls,
    };
    let change_feed: BTreeMap<String, ChangeFeedHealth> = seen
        .pumps
        .into_iter()
        .map(|(function, (pump, pending_changes))| {
            let status = if component_ok(&format!("changeFeed.{function}")) {
                "ok"
            } else {
                "degraded"
            };
            let dead_letters = dead_letter_counts.get(&function).copied().flatten();
            let health = ChangeFeedHealth {
                status: status.to_owned(),
                pump,
                pending_changes,
                dead_letters,
            };
            (function, health)
        })
        .collect();
    HealthReport {
        status: if problems.is_empty() {
            "ok"
        } else {
            "degraded"
        }
        .to_owned(),
        version: env!("CARGO_PKG_VERSION").to_owned(),
        mode: ctx.status.mode.to_owned(),
        started_at: ctx.status.started_at,
        now: seen.now,
        store,
        realtime: sink.to_owned(),
        signal_r,
        dead_letters: change_feed.values().filter_map(|f| f.dead_letters).sum(),
        change_feed,
        problems: problems.to_vec(),
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

    fn failing(error: &str, since: i64) -> Option<Failing> {
        Some(Failing {
            since: at(since),
            error: error.into(),
            last_at: at(since),
            failures: 1,
        })
    }

    fn healthy(now: i64) -> Observations {
        Observations {
            now: at(now),
            started_at: at(0),
            store_probe: Ok(()),
            store_reads: None,
            store_writes: None,
            signalr_probe: Some(Ok(())),
            sink_calls: None,
            pumps: BTreeMap::new(),
        }
    }

    fn components(seen: &Observations) -> Vec<(String, Timestamp)> {
        problems(seen)
            .into_iter()
            .map(|p| (p.component, p.since))
            .collect()
    }

    #[test]
    fn a_healthy_process_has_no_problems() {
        let mut seen = healthy(500);
        seen.pumps
            .insert("LogStream".into(), (PumpStatus::default(), Some(0)));
        seen.signalr_probe = None;
        assert!(problems(&seen).is_empty());
    }

    #[test]
    fn failing_writes_are_a_store_problem_even_when_reads_answer() {
        let mut seen = healthy(100);
        seen.store_writes = failing("database or disk is full", 40);
        let found = problems(&seen);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].component, "store");
        assert_eq!(found[0].since, at(40));
        assert!(found[0].error.contains("disk is full"), "{found:?}");
    }

    #[test]
    fn a_failing_probe_or_failing_sends_are_a_signalr_problem() {
        let mut seen = healthy(100);
        seen.signalr_probe = Some(Err("no answer within 3 s".into()));
        seen.sink_calls = failing("503", 90);
        assert_eq!(components(&seen), vec![("signalR".to_owned(), at(90))]);
        seen.signalr_probe = Some(Ok(()));
        assert_eq!(components(&seen), vec![("signalR".to_owned(), at(90))]);
        seen.sink_calls = None;
        assert!(problems(&seen).is_empty());
        // No transport: nothing to fail.
        seen.signalr_probe = None;
        seen.sink_calls = failing("old", 1);
        assert!(problems(&seen).is_empty());
    }

    #[test]
    fn a_function_that_fails_runs_too_long_or_stalls_is_degraded() {
        let mut seen = healthy(200);
        let mut pump = PumpStatus {
            failing_since: Some(at(150)),
            last_error: Some("saving the checkpoint failed".into()),
            ..PumpStatus::default()
        };
        seen.pumps.insert("A".into(), (pump.clone(), None));
        pump.failing_since = None;
        pump.in_flight_since = Some(at(200 - SLOW_ATTEMPT.as_secs() as i64));
        seen.pumps.insert("B".into(), (pump.clone(), None));
        pump.in_flight_since = None;
        pump.advanced_at = Some(at(200 - STALL_AFTER.as_secs() as i64));
        seen.pumps.insert("C".into(), (pump.clone(), Some(12)));
        // Not stalled: nothing pending, or it moved recently.
        seen.pumps.insert("D".into(), (pump.clone(), Some(0)));
        pump.advanced_at = Some(at(190));
        seen.pumps.insert("E".into(), (pump, Some(12)));
        let found = problems(&seen);
        let names: Vec<&str> = found.iter().map(|p| p.component.as_str()).collect();
        assert_eq!(
            names,
            ["changeFeed.A", "changeFeed.B", "changeFeed.C"],
            "{found:?}"
        );
        assert_eq!(found[0].since, at(150));
        assert!(found[2].error.contains("12 changes pending"), "{found:?}");
    }

    #[test]
    fn strict_is_a_flag_and_anything_else_is_refused() {
        let mut request = HttpRequest {
            method: "GET".into(),
            url: "http://x/api/health".into(),
            query: BTreeMap::new(),
            headers: BTreeMap::new(),
            params: BTreeMap::new(),
            body: None,
        };
        assert_eq!(strict(&request).ok(), Some(false));
        for (raw, expected) in [("1", true), ("true", true), ("0", false), ("false", false)] {
            request.query.insert("strict".into(), raw.into());
            assert_eq!(strict(&request).ok(), Some(expected), "{raw}");
        }
        request.query.insert("strict".into(), "yes please".into());
        let refused = strict(&request).unwrap_err();
        assert_eq!(refused.status, 400);
        assert!(refused.body.contains("error"), "{}", refused.body);
    }
}
