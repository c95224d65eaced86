//! Fault injection on the delivery path: `handler` SIGKILLed in the middle of a change-feed
//! invocation and the host's batch redelivered (scenario 2), and a WebSocket client that stops
//! reading beside fast official clients on `serve`'s hub (scenario 8). Test names contain
//! `fault`, so `cargo test fault` runs them with the rest of the suite; each is bounded in time.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use bifrost_test_support::principal::member;
use bifrost_test_support::signalr;
use serde_json::{json, Value};
use tokio::io::AsyncReadExt;

use crate::fault::{batch, whole_feed, FaultyHubService, ServiceMode};
use crate::helpers::{go, health, spawn_simulate, temp_dir, NodeScript, BIN};
use crate::signalr::{fetch_logs_after, seed_members, ORG_A};

/// One invocation that may be cut off by a kill: the reply's status, or the transport error.
async fn invoke_until_killed(
    base: String,
    function: &'static str,
    body: Vec<u8>,
) -> Result<u16, reqwest::Error> {
    let response = crate::handler::invocation(&base, function, body)
        .send()
        .await?;
    let status = response.status().as_u16();
    response.bytes().await?;
    Ok(status)
}

/// Today's executions in the GLOBAL daily document, read from the store file itself (a reader
/// of its own, never queued behind the handler's requests or its writes).
async fn counted_in_store(store: &dyn bifrost_workers::store::Store) -> u64 {
    let today = chrono::Utc::now()
        .date_naive()
        .format("%Y-%m-%d")
        .to_string();
    let id = bifrost_workers::model::MetricsDoc::id_for(&today);
    store
        .read(bifrost_workers::store::Container::Entities, "GLOBAL", &id)
        .await
        .expect("read the daily document")
        .and_then(|doc| doc.body["totalExecutions"].as_u64())
        .unwrap_or(0)
}

/// Scenario 2: `handler` SIGKILLed while a big `MetricsAggregate` batch is being counted (some
/// of its chunks written, not all), restarted with that batch redelivered beside a big
/// `LogStream` batch, SIGKILLed again in the middle of the sends, restarted, and the host's
/// same batches redelivered.
/// Metrics equal the live aggregate (nothing counted twice, nothing missed); a client that
/// keeps what it received and catches up with `afterSequence` has every line exactly once.
#[tokio::test(flavor = "multi_thread")]
async fn fault_handler_killed_mid_invocation_then_the_batch_is_redelivered() {
    use bifrost_workers::store::Container;
    const EXECUTIONS: usize = 20;
    const LOGS: u64 = 50;
    // Executions without logs, so the metrics batch takes many chunks (30 executions each) to
    // count: long enough to be killed between two of them.
    const COUNTED_ONLY: usize = 600;
    let data = temp_dir();
    let dir = data.path().to_str().expect("utf-8 path").to_owned();
    let counted_only = BIN.run(&[
        "simulate",
        "--data",
        &dir,
        "--executions",
        &COUNTED_ONLY.to_string(),
        "--logs",
        "0",
        "--rate",
        "0",
    ]);
    assert!(counted_only.status.success(), "{counted_only:?}");
    let simulated = BIN.run(&[
        "simulate",
        "--data",
        &dir,
        "--executions",
        &EXECUTIONS.to_string(),
        "--logs",
        &LOGS.to_string(),
        "--rate",
        "0",
    ]);
    assert!(simulated.status.success(), "{simulated:?}");
    let ids: Vec<String> = String::from_utf8_lossy(&simulated.stdout)
        .lines()
        .map(str::to_owned)
        .collect();
    assert_eq!(ids.len(), EXECUTIONS);
    let store = crate::helpers::sqlite_store(data.path());
    let executions = whole_feed(&store, Container::Executions).await;
    let logs = whole_feed(&store, Container::ExecutionData).await;
    assert_eq!(executions.len(), EXECUTIONS + COUNTED_ONLY);
    // The container holds the executions' other data too (variables, state, results).
    let log_lines = logs.iter().filter(|d| d["type"] == "log").count();
    assert_eq!(log_lines, EXECUTIONS * LOGS as usize);

    // Each send takes 50 ms: the batch's sends take about a second, long enough to kill it
    // in the middle. The official client is connected to the Service throughout (its
    // connection does not depend on the worker) and subscribed through the functions.
    let service = FaultyHubService::start().await;
    service.set(ServiceMode::Slow);
    let env = [("BIFROST_SIGNALR", service.connection_string.as_str())];
    let log_batch = batch(&logs);
    let metrics_batch = batch(&executions);
    let total = (EXECUTIONS + COUNTED_ONLY) as u64;

    // First kill: in the middle of counting (some chunks of the metrics written, not all).
    let (mut first, _) = BIN.handler_with(data.path(), &env);
    let front = crate::host_front::HostFront::start(&first.base).await;
    let principal = bifrost_test_support::principal::admin("ops");
    let official = crate::fault::official_client(&front.base, &principal, &ids, LOGS);
    let counting = tokio::spawn(invoke_until_killed(
        first.base.clone(),
        "MetricsAggregate",
        metrics_batch.clone(),
    ));
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut counted = 0;
    while counted == 0 {
        assert!(
            Instant::now() < deadline,
            "MetricsAggregate did not get under way"
        );
        counted = counted_in_store(&store).await;
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    first.kill();
    eprintln!("first kill: {counted} of {total} executions counted");
    assert!(
        counted < total,
        "every execution was counted before the kill: it landed too late"
    );
    assert!(
        counting.await.expect("task").is_err(),
        "MetricsAggregate replied: the kill landed after the invocation"
    );

    // The host restarts the worker and redelivers the metrics batch beside a big `LogStream`
    // batch; second kill: in the middle of the sends.
    let (mut second, _) = BIN.handler_with(data.path(), &env);
    let streaming = tokio::spawn(invoke_until_killed(
        second.base.clone(),
        "LogStream",
        log_batch.clone(),
    ));
    let recounting = tokio::spawn(invoke_until_killed(
        second.base.clone(),
        "MetricsAggregate",
        metrics_batch.clone(),
    ));
    while service.sent_lines() == 0 {
        assert!(Instant::now() < deadline, "no send reached the service");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    second.kill();
    let delivered = service.sent_lines();
    eprintln!("second kill: after {delivered} of {log_lines} log lines were sent");
    assert!(
        delivered < log_lines,
        "the whole batch was sent before the kill: it landed too late"
    );
    assert!(
        streaming.await.expect("task").is_err(),
        "LogStream replied: the kill landed after the invocation"
    );
    let metrics_replied = recounting.await.expect("task").is_ok();
    eprintln!("the redelivered MetricsAggregate replied before the second kill: {metrics_replied}");

    // The host restarts the worker and redelivers the same batches (the lease did not move).
    let (third, _) = BIN.handler_with(data.path(), &env);
    front.retarget(&third.base);
    for (function, body) in [
        ("LogStream", log_batch),
        ("MetricsAggregate", metrics_batch),
    ] {
        let (status, _, reply) = crate::handler::invoke(&third.base, function, body).await;
        assert_eq!(status, 200, "{function}: {reply}");
        assert!(
            reply.get("error").is_none_or(Value::is_null),
            "{function}: {reply}"
        );
    }

    // The redelivery re-sent what the kill cut off: the official client got every line live,
    // and keeping what it received (dropping repeats by sequence, as the contract says) and
    // catching up after its highest contiguous sequence it has every line exactly once.
    official.expect("complete", Duration::from_secs(60));
    let live = crate::fault::received_live(official);
    crate::fault::assert_every_line_once_after_catch_up(&front.base, &principal, &live, &ids, LOGS)
        .await;

    // Metrics: each execution counted once, equal to the live aggregate.
    let (status, _, reply) = crate::handler::invoke(
        &third.base,
        "GetDailyMetrics",
        crate::fault::http_invocation("GetDailyMetrics", "metrics/daily", json!({"days": "1"})),
    )
    .await;
    assert_eq!(status, 200, "{reply}");
    let body: Value =
        serde_json::from_str(reply["Outputs"]["res"]["body"].as_str().expect("a body"))
            .expect("JSON");
    let day = &body["days"][0];
    let today = chrono::Utc::now().date_naive();
    let live = bifrost_workers::metrics::live_aggregate(&store, "GLOBAL", today)
        .await
        .expect("live aggregate");
    assert_eq!(live.total_executions, (EXECUTIONS + COUNTED_ONLY) as u64);
    super::fault::assert_day_equals_live(day, &live);
}

/// Scenario 8: a WebSocket client that stops reading, beside fast official clients, on
/// `serve`'s hub while `simulate` streams and large lines are written. The fast clients get
/// every line exactly once, in order, with bounded latency; the slow one is cut off (what it
/// was sent is bounded by the hub's byte budget plus the kernel's buffers, not by the stream)
/// and catches up through the API; health stays `ok` (a slow client is not a fault of the
/// pipeline) and the feed keeps up.
#[tokio::test(flavor = "multi_thread")]
async fn fault_a_slow_websocket_client_beside_fast_ones() {
    const EXECUTIONS: u32 = 4;
    const LOGS: u64 = 200;
    // 200 × 100 KiB = 20 MiB on the large execution: far more than the 4 MiB queue budget.
    const LARGE_LOG_BYTES: usize = 100 * 1024;
    const STREAMED_BYTES: u64 = LOGS * LARGE_LOG_BYTES as u64;
    let data = temp_dir();
    seed_members(
        data.path(),
        &[
            ("fast-1", ORG_A),
            ("fast-2", ORG_A),
            ("timed", ORG_A),
            ("slow", ORG_A),
        ],
    )
    .await;
    // The execution of the large lines: created now, its lines written by the test below.
    let large = crate::helpers::empty_execution(data.path(), ORG_A);
    let serve = BIN.serve(data.path(), &[]);
    let (mut simulate, mut ids) =
        spawn_simulate(data.path(), ORG_A, EXECUTIONS, LOGS as u32, "400");
    ids.push(large.clone());

    // The slow client: negotiated, connected, handshaken, subscribed, and never reads again.
    let slow = member("slow");
    let mut stalled = crate::limits::stalled_reader(&serve.base, &slow).await;
    for id in &ids {
        let subscribed = crate::helpers::client()
            .post(format!("{}/api/executions/{id}/subscribe", serve.base))
            .header("x-ms-client-principal", &slow)
            .send()
            .await
            .expect("subscribe");
        assert_eq!(subscribed.status().as_u16(), 200);
    }

    // Fast clients: two judged on order and once-only, one on latency.
    let module = signalr::client_module().unwrap_or_else(|why| panic!("SignalR client: {why}"));
    let env = [("SIGNALR_MODULE", module)];
    let mut fast = NodeScript::spawn(
        &signalr::script("client.cjs"),
        &env,
        &json!({
            "base": serve.base,
            "logsPerExecution": LOGS,
            "clients": [
                {"name": "fast-1", "principal": member("fast-1"), "executions": ids},
                {"name": "fast-2", "principal": member("fast-2"), "executions": ids},
            ],
        }),
    );
    let mut timed = NodeScript::spawn(
        &signalr::script("latency.cjs"),
        &env,
        &json!({"base": serve.base, "principal": member("timed"), "executions": ids}),
    );
    fast.expect("ready", Duration::from_secs(60));
    timed.expect("ready", Duration::from_secs(60));

    let started = Instant::now();
    go(&mut simulate);
    let writer = tokio::spawn({
        let dir = data.path().to_owned();
        let large = large.clone();
        async move { crate::helpers::write_logs(&dir, &large, LOGS, LARGE_LOG_BYTES, Some(20)).await }
    });

    // Health stays truthful while it streams: the pipeline is fine, so `ok`.
    let deadline = Instant::now() + Duration::from_secs(90);
    let mut complete = BTreeSet::new();
    let mut polls = 0;
    while complete.len() < 2 {
        let event = fast.next(
            deadline,
            &format!("complete fast clients (have {complete:?})"),
        );
        if event["event"] == "complete" {
            complete.insert(event["client"].as_str().expect("name").to_owned());
        }
        if polls < 5 {
            polls += 1;
            let h = health(&serve.base).await;
            assert_eq!(h["status"], "ok", "{h:#}");
        }
    }
    let delivered_in = started.elapsed();
    writer.await.expect("the writer");
    let status = bifrost_test_support::process::finish(simulate, Duration::from_secs(60)).status;
    assert!(status.success(), "simulate: {status:?}");

    // The hub cut the slow client off: its socket ends, having been sent far less than the
    // stream (the budget plus what the kernel buffers, never the whole stream).
    let mut was_sent = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(30), stalled.read_to_end(&mut was_sent));
    let ended = read.await.expect("the hub closed the stalled connection");
    eprintln!(
        "slow client: {} KiB before its socket ended ({ended:?}) of {} KiB streamed; \
         fast clients complete in {delivered_in:?}",
        was_sent.len() / 1024,
        STREAMED_BYTES / 1024
    );
    assert!(
        (was_sent.len() as u64) < STREAMED_BYTES / 2,
        "{} bytes were sent to a reader that never read",
        was_sent.len()
    );
    drop(stalled);

    // Fast clients: every line of every execution exactly once, in order.
    std::thread::sleep(Duration::from_millis(1000));
    drop_stdin_and_collect(&mut fast, &mut timed, &ids, LOGS);

    // The slow client's user catches up through the API: everything, once, in order.
    let expected: Vec<u64> = (1..=LOGS).collect();
    for id in &ids {
        let caught_up = fetch_logs_after(&serve.base, &slow, None, id, 0).await;
        let sequences: Vec<u64> = caught_up
            .iter()
            .filter_map(|l| l["sequence"].as_u64())
            .collect();
        assert_eq!(sequences, expected, "slow client's catch-up of {id}");
    }

    // Health: still ok, nothing failed or dead-lettered, the feed caught up.
    let h = crate::helpers::wait_for_health(
        &serve.base,
        Duration::from_secs(30),
        "LogStream caught up",
        |h| h["changeFeed"]["LogStream"]["pendingChanges"] == 0,
    )
    .await;
    assert_eq!(h["status"], "ok", "{h:#}");
    assert_eq!(h["problems"], json!([]), "{h:#}");
    assert_eq!(h["deadLetters"], 0, "{h:#}");
    assert_eq!(h["signalR"]["status"], "ok", "{h:#}");
    assert_eq!(
        h["changeFeed"]["LogStream"]["failedAttempts"].as_u64(),
        Some(0),
        "{h:#}"
    );
    crate::fault::assert_scope_metrics_equal_the_live_aggregate(
        &serve.base,
        data.path(),
        ORG_A,
        ids.len() as u64,
    )
    .await;
}

/// Closes the fast clients' stdin and judges what they received: every line once, in order,
/// and the write→receive latency bounded.
fn drop_stdin_and_collect(
    fast: &mut NodeScript,
    timed: &mut NodeScript,
    ids: &[String],
    logs: u64,
) {
    fast.close_stdin();
    timed.close_stdin();
    let expected: Vec<u64> = (1..=logs).collect();
    let mut summaries = BTreeMap::new();
    while summaries.len() < 2 {
        let event = fast.expect("summary", Duration::from_secs(60));
        summaries.insert(event["client"].as_str().expect("name").to_owned(), event);
    }
    for (name, summary) in &summaries {
        for id in ids {
            let sequences: Vec<u64> = summary["logs"][id]
                .as_array()
                .map(|a| a.iter().filter_map(Value::as_u64).collect())
                .unwrap_or_default();
            assert_eq!(sequences, expected, "client {name}, execution {id}");
        }
    }
    let latencies = timed.expect("latencies", Duration::from_secs(60));
    // Fractional milliseconds: the logs are stamped to the microsecond.
    let mut ms: Vec<f64> = latencies["ms"]
        .as_array()
        .expect("latencies")
        .iter()
        .filter_map(Value::as_f64)
        .collect();
    ms.sort_by(f64::total_cmp);
    assert_eq!(
        ms.len() as u64,
        logs * ids.len() as u64,
        "the timed client: {}",
        latencies["received"]
    );
    let p99 = ms[ms.len() * 99 / 100];
    let max = *ms.last().expect("a latency");
    eprintln!("fast client write→receive latency: p99 {p99} ms, max {max} ms");
    // Bounded (generous: two cores shared with other tests): a slow client never holds the
    // fast ones back for the budget's worth of seconds it takes to give up on it.
    assert!(max < 10_000.0, "p99 {p99} ms, max {max} ms");
}
