//! Fault injection over the real binary: each scenario spawns `serve` (and the CLI), makes
//! something fail for a while, and checks that nothing was lost afterwards and that health said
//! so while it lasted. Every test name starts with `fault_`, so `cargo test fault` runs them all;
//! each is bounded in time.
//!
//! The store's failures come from the fault-injecting store of debug builds
//! (`BIFROST_FAULT_FILE`: while the named file exists, writes to the containers it lists fail).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use bifrost_test_support::principal::Principal;
use bifrost_test_support::process::Process;
use serde_json::Value;

use crate::helpers::{client, health, journal_logs, temp_dir, BIN};

const EXECUTIONS: usize = 5;
const LOGS: u64 = 20;

fn admin() -> String {
    Principal::admin("ops")
        .with_email("ops@bifrost.dev")
        .encode()
}

/// `GET /api/health` with its status code.
async fn health_status(base: &str, query: &str) -> (u16, Value) {
    let response = client()
        .get(format!("{base}/api/health{query}"))
        .send()
        .await
        .expect("health");
    let status = response.status().as_u16();
    (status, response.json().await.expect("health JSON"))
}

/// Polls health until `ready` says yes (at most `within`).
async fn wait_for_health(
    base: &str,
    within: Duration,
    what: &str,
    ready: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + within;
    loop {
        let h = health(base).await;
        if ready(&h) {
            return h;
        }
        assert!(
            Instant::now() < deadline,
            "{what} not within {within:?}: {h:#}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Today's executions on the dashboard, over every scope.
async fn executions_counted_today(base: &str) -> u64 {
    let response = client()
        .get(format!("{base}/api/metrics/daily?days=1&scope=all"))
        .header("X-MS-CLIENT-PRINCIPAL", admin())
        .send()
        .await
        .expect("daily metrics");
    assert_eq!(response.status().as_u16(), 200);
    let body: Value = response.json().await.expect("JSON");
    body["days"][0]["totalExecutions"].as_u64().unwrap_or(0)
}

/// Every execution's logs arrived, each sequence exactly once.
fn assert_every_log_once(journal: &std::path::Path, ids: &[String]) {
    let (logs, _) = journal_logs(journal);
    for id in ids {
        let mut seen = logs.get(id).cloned().unwrap_or_default();
        seen.sort_unstable();
        let expected: Vec<u64> = (1..=LOGS).collect();
        assert_eq!(seen, expected, "execution {id}: logs missing or repeated");
    }
}

fn simulate(data: &std::path::Path) -> Vec<String> {
    let output = BIN.run(&[
        "simulate",
        "--data",
        data.to_str().expect("utf-8 path"),
        "--executions",
        &EXECUTIONS.to_string(),
        "--logs",
        &LOGS.to_string(),
        "--rate",
        "0",
    ]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout)
        .expect("utf-8")
        .lines()
        .map(str::to_owned)
        .collect()
}

fn deadletters(data: &std::path::Path, args: &[&str]) -> std::process::Output {
    let mut all = vec!["deadletters"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["--data", data.to_str().expect("utf-8 path")]);
    BIN.run(&all)
}

/// Scenario 5: the store fails the metrics' writes for longer than the retry policy (~31 s),
/// then recovers; the dead-lettered batch is replayed with the CLI, twice.
#[tokio::test]
async fn fault_store_failing_writes_past_the_retry_policy_then_replay() {
    let data = temp_dir();
    let journal = data.path().join("journal.jsonl");
    let control = data.path().join("faults");
    let mut command = BIN.command();
    command
        .args(["serve", "--listen", "127.0.0.1:0", "--data"])
        .arg(data.path())
        .args(["--signalr", &format!("journal:{}", journal.display())])
        .env("BIFROST_FAULT_FILE", &control);
    let app = Process::announced(command);
    let (status, h) = health_status(&app.base, "?strict=1").await;
    assert_eq!((status, h["status"].as_str()), (200, Some("ok")), "{h:#}");

    // The metrics live in `entities`: their writes fail from now on.
    std::fs::write(&control, "entities").expect("start the outage");
    let outage_started = chrono::Utc::now();
    let ids = simulate(data.path());
    assert_eq!(ids.len(), EXECUTIONS);

    // While it lasts, health says what fails and since when; only strict probes get a 503.
    let h = wait_for_health(&app.base, Duration::from_secs(20), "degraded", |h| {
        h["status"] == "degraded" && h["changeFeed"]["MetricsAggregate"]["status"] == "degraded"
    })
    .await;
    let problems = h["problems"].as_array().expect("problems").clone();
    let store = problems
        .iter()
        .find(|p| p["component"] == "store")
        .unwrap_or_else(|| panic!("no store problem: {h:#}"));
    assert!(
        store["error"].as_str().unwrap().contains("disk is full"),
        "{h:#}"
    );
    let since: chrono::DateTime<chrono::Utc> =
        store["since"].as_str().unwrap().parse().expect("since");
    assert!(
        since >= outage_started - chrono::Duration::seconds(1),
        "{h:#}"
    );
    assert!(h["changeFeed"]["MetricsAggregate"]["failedAttempts"].as_u64() >= Some(1));
    let (status, _) = health_status(&app.base, "").await;
    assert_eq!(status, 200, "a plain probe stays 200");
    let (status, strict) = health_status(&app.base, "?strict=1").await;
    assert_eq!(status, 503, "{strict:#}");

    // After the retry policy (1+2+4+8+16 s) the batch is dead-lettered and the feed moves on.
    let h = wait_for_health(&app.base, Duration::from_secs(75), "a dead letter", |h| {
        h["changeFeed"]["MetricsAggregate"]["deadLetters"].as_u64() >= Some(1)
    })
    .await;
    assert!(h["deadLetters"].as_u64() >= Some(1), "{h:#}");
    let pump = &h["changeFeed"]["MetricsAggregate"];
    assert_eq!(
        pump["failedAttempts"].as_u64(),
        Some(6 * pump["deadLetteredBatches"].as_u64().unwrap()),
        "every attempt counted: {h:#}"
    );

    // The disk comes back. Logs never depended on it: all delivered, once.
    std::fs::remove_file(&control).expect("end the outage");
    assert_every_log_once(&journal, &ids);
    assert_eq!(
        executions_counted_today(&app.base).await,
        0,
        "counted before the replay?"
    );

    // The operator sees the dead letter and replays it.
    let listed = deadletters(data.path(), &["list", "--json"]);
    assert!(
        listed.status.success(),
        "{}",
        String::from_utf8_lossy(&listed.stderr)
    );
    let listed: Vec<Value> = serde_json::from_slice(&listed.stdout).expect("list JSON");
    assert!(!listed.is_empty());
    assert!(
        listed.iter().all(|d| d["function"] == "MetricsAggregate"),
        "{listed:?}"
    );
    let id = listed[0]["id"].as_str().unwrap().to_owned();
    let shown = deadletters(data.path(), &["show", "--id", &id]);
    assert!(shown.status.success());
    let shown: Value = serde_json::from_slice(&shown.stdout).expect("show JSON");
    assert!(
        shown["batch"].as_array().is_some_and(|b| !b.is_empty()),
        "{shown:#}"
    );

    let replay = deadletters(data.path(), &["replay", "--function", "MetricsAggregate"]);
    assert!(
        replay.status.success(),
        "{}",
        String::from_utf8_lossy(&replay.stderr)
    );
    let report: Value = serde_json::from_slice(&replay.stdout).expect("replay JSON");
    assert_eq!(
        report["replayed"].as_u64(),
        Some(listed.len() as u64),
        "{report:#}"
    );
    assert_eq!(executions_counted_today(&app.base).await, EXECUTIONS as u64);

    // Replaying again finds nothing; the same record by id is gone (a clear error).
    let again = deadletters(data.path(), &["replay"]);
    assert!(again.status.success());
    let report: Value = serde_json::from_slice(&again.stdout).expect("replay JSON");
    assert_eq!(report["replayed"], 0);
    let gone = deadletters(data.path(), &["replay", "--id", &id]);
    assert!(!gone.status.success());
    assert!(String::from_utf8_lossy(&gone.stderr).contains("no dead letter"));
    let unknown = deadletters(data.path(), &["list", "--function", "Nope"]);
    assert!(!unknown.status.success());
    assert_eq!(executions_counted_today(&app.base).await, EXECUTIONS as u64);

    // Health recovers: no problems, no dead letters, lastError cleared by the next success.
    let h = wait_for_health(&app.base, Duration::from_secs(20), "ok again", |h| {
        h["status"] == "ok"
    })
    .await;
    assert_eq!(h["deadLetters"], 0, "{h:#}");
    assert_eq!(h["store"]["writes"], Value::Null, "{h:#}");
    let _: BTreeMap<String, Value> = BTreeMap::new();
}

/// How the stand-in SignalR Service answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ServiceMode {
    /// 202 for sends, 404 for the probe (a group nobody is in).
    Healthy,
    /// 503 for everything.
    Failing,
    /// Accepts the connection and never answers.
    Hanging,
}

/// A small HTTP server standing in for the Azure SignalR Service's REST API (a real socket; the
/// sender under test is the real one). It keeps every `executionLogs` sequence it accepted.
struct StandInService {
    port: u16,
    mode: std::sync::Arc<std::sync::Mutex<ServiceMode>>,
    received: std::sync::Arc<std::sync::Mutex<BTreeMap<String, Vec<u64>>>>,
    _server: tokio::task::JoinHandle<()>,
}

impl StandInService {
    async fn start(mode: ServiceMode) -> StandInService {
        use axum::extract::State;
        use axum::http::{Method, StatusCode};
        type Shared = (
            std::sync::Arc<std::sync::Mutex<ServiceMode>>,
            std::sync::Arc<std::sync::Mutex<BTreeMap<String, Vec<u64>>>>,
        );
        async fn answer(
            State((mode, received)): State<Shared>,
            method: Method,
            body: axum::body::Bytes,
        ) -> StatusCode {
            let current = *mode.lock().unwrap();
            match current {
                ServiceMode::Failing => StatusCode::SERVICE_UNAVAILABLE,
                ServiceMode::Hanging => {
                    // Longer than any client waits; the test ends first.
                    tokio::time::sleep(Duration::from_secs(600)).await;
                    StatusCode::GATEWAY_TIMEOUT
                }
                ServiceMode::Healthy if method == Method::HEAD => StatusCode::NOT_FOUND,
                ServiceMode::Healthy => {
                    if let Ok(message) = serde_json::from_slice::<Value>(&body) {
                        if message["target"] == "executionLogs" {
                            let argument = &message["arguments"][0];
                            let id = argument["executionId"].as_str().unwrap_or("").to_owned();
                            let seqs = argument["logs"].as_array().cloned().unwrap_or_default();
                            received
                                .lock()
                                .unwrap()
                                .entry(id)
                                .or_default()
                                .extend(seqs.iter().filter_map(|l| l["sequence"].as_u64()));
                        }
                    }
                    StatusCode::ACCEPTED
                }
            }
        }
        let mode = std::sync::Arc::new(std::sync::Mutex::new(mode));
        let received = std::sync::Arc::new(std::sync::Mutex::new(BTreeMap::new()));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let port = listener.local_addr().expect("address").port();
        let app = axum::Router::new()
            .fallback(answer)
            .with_state((mode.clone(), received.clone()));
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        StandInService {
            port,
            mode,
            received,
            _server: server,
        }
    }

    fn set(&self, mode: ServiceMode) {
        *self.mode.lock().unwrap() = mode;
    }

    fn connection_string(&self) -> String {
        format!(
            "Endpoint=http://127.0.0.1:{};AccessKey=ZmF1bHQtdGVzdC1rZXktZmF1bHQtdGVzdC1rZXk=;Version=1.0;",
            self.port
        )
    }

    /// Each execution's distinct sequences received, and whether every one of `ids` has all.
    fn complete(&self, ids: &[String]) -> bool {
        let received = self.received.lock().unwrap();
        ids.iter().all(|id| {
            let mut seen = received.get(id).cloned().unwrap_or_default();
            seen.sort_unstable();
            seen.dedup();
            seen == (1..=LOGS).collect::<Vec<_>>()
        })
    }
}

/// Scenarios 3 and 4: the SignalR Service answering 503, or accepting the connection and never
/// answering, for a while; then healthy again. The batches are retried, nothing is dead-lettered,
/// every log line reaches the service (the client dedupes by sequence), metrics are complete.
async fn signalr_outage(mode: ServiceMode, outage: Duration) {
    let data = temp_dir();
    let service = StandInService::start(mode).await;
    let app = BIN.serve(data.path(), &["--signalr", &service.connection_string()]);
    let ids = simulate(data.path());

    let h = wait_for_health(
        &app.base,
        Duration::from_secs(40),
        "signalR degraded",
        |h| {
            h["status"] == "degraded"
                && h["problems"]
                    .as_array()
                    .is_some_and(|p| p.iter().any(|p| p["component"] == "signalR"))
        },
    )
    .await;
    assert_eq!(h["signalR"]["status"], "error", "{h:#}");
    let (status, _) = health_status(&app.base, "?strict=1").await;
    assert_eq!(status, 503);
    tokio::time::sleep(outage).await;
    assert!(!service.complete(&ids), "delivered during the outage?");

    service.set(ServiceMode::Healthy);
    let deadline = Instant::now() + Duration::from_secs(60);
    while !service.complete(&ids) {
        assert!(Instant::now() < deadline, "logs missing after the outage");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let h = wait_for_health(&app.base, Duration::from_secs(40), "ok again", |h| {
        h["status"] == "ok" && h["changeFeed"]["LogStream"]["lastError"].is_null()
    })
    .await;
    assert_eq!(h["deadLetters"], 0, "{h:#}");
    assert!(
        h["changeFeed"]["LogStream"]["failedAttempts"].as_u64() >= Some(1),
        "{h:#}"
    );
    assert_eq!(executions_counted_today(&app.base).await, EXECUTIONS as u64);
}

#[tokio::test]
async fn fault_signalr_answering_5xx_for_a_while() {
    signalr_outage(ServiceMode::Failing, Duration::from_secs(3)).await;
}

#[tokio::test]
async fn fault_signalr_accepting_and_never_answering() {
    signalr_outage(ServiceMode::Hanging, Duration::from_secs(3)).await;
}
