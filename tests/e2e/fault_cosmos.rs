//! Scenario 9: the Cosmos backend under 429 storms, 503s, answers later than the client's
//! timeout and connections reset mid-response, on point reads and queries, writes and the
//! change feed, while `simulate` writes. `serve --store cosmos+http://…` runs unchanged against
//! the emulator front-end, which injects the faults on the wire (its `Faults` plan); `simulate`
//! connects from another loopback address the plan spares, so the writer never fails and every
//! fault lands on the pipeline under test.

use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use bifrost_test_support::cosmos_emulator::{self, Fault, Faults, Operation};
use bifrost_test_support::principal::admin;
use serde_json::Value;

use crate::fault::{
    assert_day_equals_live, assert_every_line_once_after_catch_up, official_client, received_live,
};
use crate::helpers::{client, go, spawn_simulate_with, temp_dir, BIN};

/// The writer's address: faults spare it (the SDK binds there with `AZURE_COSMOS_LOCAL_ADDRESS`).
const WRITER: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));
const LOGS: u64 = 30;

/// One fault, on some kinds of request, for a while.
struct Phase {
    operations: &'static [Operation],
    fault: Fault,
    lasts: Duration,
    /// Executions `simulate` writes (and completes) while it lasts, so metrics are counted
    /// under the fault too.
    executions: u32,
}

/// What health said while a phase lasted, and until it was `ok` again.
#[derive(Debug, Default)]
struct Seen {
    degraded: bool,
    problems: Vec<String>,
    /// From the fault's end to health `ok` again.
    recovered_in: Option<Duration>,
}

impl Seen {
    fn note(&mut self, h: &Value) {
        if h["status"] == "degraded" {
            self.degraded = true;
        }
        for p in h["problems"].as_array().into_iter().flatten() {
            let line = format!("{}: {}", p["component"], p["error"]);
            if !self.problems.contains(&line) {
                self.problems.push(line);
            }
        }
    }
}

/// `GET /api/health`, which must answer in bounded time even while the store hangs (each of
/// its checks waits at most 3 s, all at once).
async fn bounded_health(base: &str) -> Value {
    let asked = Instant::now();
    let answer = tokio::time::timeout(Duration::from_secs(8), async {
        client()
            .get(format!("{base}/api/health"))
            .send()
            .await?
            .json::<Value>()
            .await
    })
    .await;
    match answer {
        Ok(Ok(h)) => h,
        Ok(Err(e)) => panic!("health: {e}"),
        Err(_) => panic!("health did not answer within {:?}", asked.elapsed()),
    }
}

/// Polls health while `fault` lasts on `operation`, then clears it and polls until `ok`.
async fn run_phase(base: &str, faults: &Faults, phase: &Phase) -> Seen {
    let mut seen = Seen::default();
    for operation in phase.operations {
        faults.set(*operation, phase.fault);
    }
    let until = Instant::now() + phase.lasts;
    while Instant::now() < until {
        seen.note(&bounded_health(base).await);
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    faults.clear_all();
    // Attempts already under way when the fault ends may still fail (the retries in flight
    // give up): health shows that too, then recovers.
    let cleared = Instant::now();
    let deadline = cleared + Duration::from_secs(45);
    loop {
        let h = bounded_health(base).await;
        seen.note(&h);
        if h["status"] == "ok" {
            seen.recovered_in = Some(cleared.elapsed());
            return seen;
        }
        if Instant::now() > deadline {
            return seen;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_cosmos_throttling_unavailability_timeouts_and_resets() {
    let emulator = cosmos_emulator::start().await.expect("emulator");
    emulator.faults().spare(WRITER);
    let store = emulator.store_url("bifrost");
    let ensured = BIN.run(&["ensure", "--store", &store]);
    assert!(ensured.status.success(), "{ensured:?}");

    // The service names short waits: the SDK's 18 retries and this backend's 4 attempts are
    // spent within about a second, so a storm of seconds fails attempts.
    let throttle = Fault::Throttle {
        retry_after: Duration::from_millis(10),
    };
    // Past the store's 10 s bound on an operation (the request happens; its answer is late).
    let late = Fault::Delay(Duration::from_secs(12));
    let phase = |operations, fault, secs, executions| Phase {
        operations,
        fault,
        lasts: Duration::from_secs(secs),
        executions,
    };
    use Operation::{ChangeFeed, Read, Write};
    let phases = [
        phase(&[ChangeFeed], throttle, 3, 1),
        phase(&[ChangeFeed], Fault::Unavailable, 3, 1),
        phase(&[ChangeFeed], Fault::Reset, 3, 1),
        phase(&[Write], throttle, 3, 1),
        phase(&[Write], Fault::Unavailable, 3, 1),
        phase(&[Write], Fault::Reset, 3, 1),
        phase(&[Read], throttle, 3, 1),
        phase(&[Read], Fault::Unavailable, 3, 1),
        phase(&[Read], Fault::Reset, 3, 1),
        // Answers late. Change-feed reads alone (while they hang nothing else happens); reads
        // and writes together (a pump whose metrics reads hang still writes checkpoints).
        phase(&[ChangeFeed], late, 11, 1),
        phase(&[Write, Read], late, 11, 1),
    ];

    let data = temp_dir();
    let serve = BIN.serve(data.path(), &["--store", &store]);
    let writer = |executions: u32| {
        let mut command = BIN.command();
        command
            .args(["simulate", "--store", &store])
            .env("AZURE_COSMOS_LOCAL_ADDRESS", WRITER.to_string());
        spawn_simulate_with(command, "GLOBAL", executions, LOGS as u32, "20")
    };
    // Every phase's executions exist before the client subscribes; each writes when its
    // phase starts.
    let mut writers: Vec<_> = phases.iter().map(|p| writer(p.executions)).collect();
    let ids: Vec<String> = writers.iter().flat_map(|(_, ids)| ids.clone()).collect();
    let principal = admin("ops");
    let official = official_client(&serve.base, &principal, &ids, LOGS);

    let mut report = Vec::new();
    let injected = |faults: &Faults, phase: &Phase| -> Vec<u64> {
        phase
            .operations
            .iter()
            .map(|o| faults.injected(*o))
            .collect()
    };
    for (phase, (simulate, _)) in phases.iter().zip(writers.iter_mut()) {
        let before = injected(emulator.faults(), phase);
        go(simulate);
        let seen = run_phase(&serve.base, emulator.faults(), phase).await;
        let faulted: Vec<u64> = injected(emulator.faults(), phase)
            .iter()
            .zip(&before)
            .map(|(after, before)| after - before)
            .collect();
        eprintln!(
            "{:?} {:?} for {:?}: {faulted:?} requests faulted; health degraded: {}, ok again \
             {:?} after; {:?}",
            phase.operations,
            phase.fault,
            phase.lasts,
            seen.degraded,
            seen.recovered_in,
            seen.problems
        );
        report.push((phase, faulted, seen));
    }
    for (simulate, _) in writers {
        let status = bifrost_test_support::process::finish(simulate, Duration::from_secs(60));
        assert!(status.status.success(), "simulate: {:?}", status.status);
    }

    // Recovery: ok again, nothing dead-lettered, the feed through everything.
    let h =
        crate::helpers::wait_for_health(&serve.base, Duration::from_secs(90), "ok again", |h| {
            h["status"] == "ok"
                && ["LogStream", "MetricsAggregate"]
                    .iter()
                    .all(|f| h["changeFeed"][f]["lastError"].is_null())
        })
        .await;
    eprintln!("health after: {h:#}");

    // Every fault reached the pipeline, and health showed it while it lasted.
    for (phase, faulted, seen) in &report {
        assert!(
            faulted.iter().all(|n| *n > 0),
            "{:?} {:?}: some kind was never faulted: {faulted:?}",
            phase.operations,
            phase.fault
        );
        assert!(
            seen.degraded,
            "{:?} {:?}: health never showed it: {seen:?}",
            phase.operations, phase.fault
        );
    }
    assert_eq!(h["deadLetters"], 0, "{h:#}");
    // The writer really was spared (its requests came from its own address during faults).
    assert!(
        emulator.faults().spared_requests() > 0,
        "the writer's requests never came from {WRITER}"
    );

    // Every line reached the official client exactly once after catch-up.
    // The client reports once: the last sends get a moment first.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let live = received_live(official);
    let fetched =
        assert_every_line_once_after_catch_up(&serve.base, &principal, &live, &ids, LOGS).await;
    eprintln!("the official client fetched {fetched} lines on catch-up");

    // Metrics equal the live aggregate over the executions.
    let cosmos = bifrost_workers::store::open(
        &store.parse().expect("store url"),
        std::sync::Arc::new(bifrost_workers::clock::SystemClock),
    )
    .await
    .expect("open the store");
    let today = chrono::Utc::now().date_naive();
    let live_aggregate = bifrost_workers::metrics::live_aggregate(cosmos.as_ref(), "GLOBAL", today)
        .await
        .expect("live aggregate");
    assert_eq!(live_aggregate.total_executions, ids.len() as u64);
    // The feed may still be on the last completions (Cosmos reports no pending count): wait
    // until the dashboard has every execution, then compare the whole day.
    let deadline = Instant::now() + Duration::from_secs(30);
    let daily = loop {
        let daily = crate::fault::daily_metrics(&serve.base, "GLOBAL").await;
        let counted = daily["days"][0]["totalExecutions"].as_u64().unwrap_or(0);
        if counted >= live_aggregate.total_executions || Instant::now() > deadline {
            break daily;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    assert_day_equals_live(&daily["days"][0], &live_aggregate);
}
