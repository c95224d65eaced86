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

use crate::helpers::{client, health, temp_dir, BIN};

const EXECUTIONS: usize = 5;
const LOGS: u64 = 20;

pub(crate) fn admin() -> String {
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

/// A day of `GET /api/metrics/daily` counts what the live aggregate over the executions counts.
pub(crate) fn assert_day_equals_live(day: &Value, live: &bifrost_workers::model::MetricsDoc) {
    let counted = |key: &str| day[key].as_u64().unwrap_or(0);
    assert_eq!(
        (
            counted("totalExecutions"),
            counted("successCount"),
            counted("failedCount"),
            counted("cancelledCount"),
        ),
        (
            live.total_executions,
            live.success_count,
            live.failed_count,
            live.cancelled_count,
        ),
        "daily metrics differ from the live aggregate: {day}"
    );
}

/// Today's numbers on the dashboard (GLOBAL, where `simulate` writes) equal the aggregate over
/// the executions themselves, computed now from the store.
async fn assert_metrics_equal_the_live_aggregate(base: &str, data: &std::path::Path) {
    assert_scope_metrics_equal_the_live_aggregate(base, data, "GLOBAL", EXECUTIONS as u64).await;
}

/// Today's numbers on the dashboard of `scope` (an organization, or GLOBAL) equal the aggregate
/// over its executions, computed now from the store, and count `executions`.
pub(crate) async fn assert_scope_metrics_equal_the_live_aggregate(
    base: &str,
    data: &std::path::Path,
    scope: &str,
    executions: u64,
) {
    let store = crate::helpers::sqlite_store(data);
    let today = chrono::Utc::now().date_naive();
    let live = bifrost_workers::metrics::live_aggregate(&store, scope, today)
        .await
        .expect("live aggregate");
    let body = daily_metrics(base, scope).await;
    assert_day_equals_live(&body["days"][0], &live);
    assert_eq!(live.total_executions, executions, "{body}");
}

/// `GET /api/metrics/daily?days=1` of `scope` (an organization, or GLOBAL) as a platform admin.
pub(crate) async fn daily_metrics(base: &str, scope: &str) -> Value {
    let mut request = client()
        .get(format!("{base}/api/metrics/daily?days=1"))
        .header("X-MS-CLIENT-PRINCIPAL", admin());
    if scope != "GLOBAL" {
        request = request.header("X-Organization-Id", scope);
    }
    request
        .send()
        .await
        .expect("daily metrics")
        .json()
        .await
        .expect("JSON")
}

/// `simulate` (GLOBAL, `EXECUTIONS` × `LOGS`) with the official client subscribed to its
/// executions on `base`'s hub before any line is written; returns the ids and the client.
fn simulate_to_official_client(
    data: &std::path::Path,
    base: &str,
) -> (Vec<String>, crate::helpers::NodeScript) {
    let (mut writer, ids) =
        crate::helpers::spawn_simulate(data, "GLOBAL", EXECUTIONS as u32, LOGS as u32, "0");
    let client = official_client(base, &ops_principal(), &ids, LOGS);
    crate::helpers::go(&mut writer);
    let done = bifrost_test_support::process::finish(writer, Duration::from_secs(60));
    assert!(done.status.success(), "simulate: {:?}", done.status);
    (ids, client)
}

/// The principal the official client connects as: a platform admin, who may follow any
/// execution (the members' redaction is the real-time tests' business).
fn ops_principal() -> String {
    bifrost_test_support::principal::admin("ops")
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
    deadletters_with_faults(data, args, None)
}

/// `bifrost-workers deadletters ARGS --data DATA`, with the fault file `faults` names if any
/// (the command is a process of its own: it sees the faults only when told).
fn deadletters_with_faults(
    data: &std::path::Path,
    args: &[&str],
    faults: Option<&std::path::Path>,
) -> std::process::Output {
    let mut command = BIN.command();
    command
        .arg("deadletters")
        .args(args)
        .arg("--data")
        .arg(data);
    if let Some(control) = faults {
        command.env("BIFROST_FAULT_FILE", control);
    }
    bifrost_test_support::process::output(&mut command)
}

/// Scenario 5: the store fails the metrics' writes for longer than the retry policy (~31 s),
/// then recovers; the dead-lettered batch is replayed with the CLI, twice.
#[tokio::test]
async fn fault_store_failing_writes_past_the_retry_policy_then_replay() {
    let data = temp_dir();
    let control = data.path().join("faults");
    let mut command = BIN.command();
    command
        .args(["serve", "--listen", "127.0.0.1:0", "--data"])
        .arg(data.path())
        .env("BIFROST_FAULT_FILE", &control);
    let app = Process::announced(command);
    let (status, h) = health_status(&app.base, "?strict=1").await;
    assert_eq!((status, h["status"].as_str()), (200, Some("ok")), "{h:#}");

    // The metrics live in `entities`: their writes fail from now on.
    std::fs::write(&control, "entities").expect("start the outage");
    let outage_started = chrono::Utc::now();
    let (ids, official) = simulate_to_official_client(data.path(), &app.base);
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
    // The pump wakes at the first commit, so `simulate`'s writes may come as two batches, each
    // dead-lettered in turn: wait until the feed is through them all.
    let h = wait_for_health(&app.base, Duration::from_secs(110), "dead letters", |h| {
        let pump = &h["changeFeed"]["MetricsAggregate"];
        pump["deadLetters"].as_u64() >= Some(1) && pump["pendingChanges"].as_u64() == Some(0)
    })
    .await;
    assert!(h["deadLetters"].as_u64() >= Some(1), "{h:#}");
    let pump = &h["changeFeed"]["MetricsAggregate"];
    assert_eq!(
        pump["failedAttempts"].as_u64(),
        Some(6 * pump["deadLetteredBatches"].as_u64().unwrap()),
        "every attempt counted: {h:#}"
    );

    // The disk comes back. Logs never depended on it: every line reached the official client,
    // exactly once after catch-up.
    std::fs::remove_file(&control).expect("end the outage");
    let live = received_live(official);
    assert_every_line_once_after_catch_up(&app.base, &ops_principal(), &live, &ids, LOGS).await;
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
    assert_metrics_equal_the_live_aggregate(&app.base, data.path()).await;
}

/// How the stand-in SignalR Service's REST API answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ServiceMode {
    Healthy,
    /// Each call passed on after 50 ms (a send in flight long enough to be killed).
    Slow,
    /// 503 for everything.
    Failing,
    /// Accepts the connection and never answers.
    Hanging,
}

/// The built-in hub (the code `serve` runs as its hub) in this process, on a socket of its own,
/// standing in for the Azure SignalR Service: clients negotiate and hold their WebSockets with
/// it as with the Service, and its REST API (`/api/hubs/…`, what the sender calls) answers as
/// `mode` says: through to the hub (at once or late), 503, or never. It counts the
/// `executionLogs` lines it let through.
pub(crate) struct FaultyHubService {
    pub(crate) connection_string: String,
    mode: std::sync::Arc<std::sync::Mutex<ServiceMode>>,
    sent_lines: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    _server: tokio::task::JoinHandle<()>,
}

impl FaultyHubService {
    pub(crate) async fn start() -> FaultyHubService {
        use axum::http::StatusCode;
        use axum::response::IntoResponse;
        use bifrost_workers::serve::hub::{Hub, HubLimits};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let address = listener.local_addr().expect("address");
        let hub = Hub::new(&format!("http://{address}"), HubLimits::default());
        let connection_string = hub.connection_string().render();
        let mode = std::sync::Arc::new(std::sync::Mutex::new(ServiceMode::Healthy));
        let sent_lines = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let (current, counted) = (mode.clone(), sent_lines.clone());
        let faulty_rest = axum::middleware::from_fn(
            move |request: axum::extract::Request, next: axum::middleware::Next| {
                let mode = *current.lock().unwrap();
                let counted = counted.clone();
                async move {
                    if !request.uri().path().starts_with("/api/hubs/") {
                        return next.run(request).await;
                    }
                    match mode {
                        ServiceMode::Failing => {
                            return StatusCode::SERVICE_UNAVAILABLE.into_response()
                        }
                        ServiceMode::Hanging => {
                            // Longer than any sender waits; the test ends first.
                            tokio::time::sleep(Duration::from_secs(600)).await;
                            return StatusCode::GATEWAY_TIMEOUT.into_response();
                        }
                        ServiceMode::Slow => tokio::time::sleep(Duration::from_millis(50)).await,
                        ServiceMode::Healthy => {}
                    }
                    let (parts, body) = request.into_parts();
                    let Ok(body) = axum::body::to_bytes(body, usize::MAX).await else {
                        return StatusCode::BAD_REQUEST.into_response();
                    };
                    if let Ok(message) = serde_json::from_slice::<Value>(&body) {
                        if message["target"] == "executionLogs" {
                            let lines = message["arguments"][0]["logs"]
                                .as_array()
                                .map_or(0, Vec::len);
                            counted.fetch_add(lines, std::sync::atomic::Ordering::SeqCst);
                        }
                    }
                    let request = axum::extract::Request::from_parts(parts, body.into());
                    next.run(request).await
                }
            },
        );
        let router = hub.router().layer(faulty_rest);
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        FaultyHubService {
            connection_string,
            mode,
            sent_lines,
            _server: server,
        }
    }

    pub(crate) fn set(&self, mode: ServiceMode) {
        *self.mode.lock().unwrap() = mode;
    }

    /// How many `executionLogs` lines were let through so far.
    pub(crate) fn sent_lines(&self) -> usize {
        self.sent_lines.load(std::sync::atomic::Ordering::SeqCst)
    }
}

/// Scenario 1 as Azure runs it: the clients' connections live in the SignalR Service, so when
/// `serve` is SIGKILLed mid-stream and restarted, the official client stays connected to the
/// Service (the built-in hub in this process), and after the restarted process resumed from its
/// checkpoint the client has every line exactly once after catch-up.
#[tokio::test(flavor = "multi_thread")]
async fn fault_serve_killed_mid_stream_the_official_client_on_the_service_misses_nothing() {
    let data = temp_dir();
    let service = FaultyHubService::start().await;
    let signalr = ["--signalr", service.connection_string.as_str()];
    let mut first = BIN.serve(data.path(), &signalr);
    let (mut writer, ids) =
        crate::helpers::spawn_simulate(data.path(), "GLOBAL", EXECUTIONS as u32, LOGS as u32, "50");
    let official = official_client(&first.base, &ops_principal(), &ids, LOGS);
    crate::helpers::go(&mut writer);

    // Some lines through, then SIGKILL while simulate is still writing.
    let deadline = Instant::now() + Duration::from_secs(20);
    while service.sent_lines() < 5 {
        assert!(Instant::now() < deadline, "serve sent nothing");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    first.kill();
    assert!(
        writer.try_wait().expect("simulate's status").is_none(),
        "killed too late to be mid-stream"
    );
    let second = BIN.serve(data.path(), &signalr);
    let written = bifrost_test_support::process::finish(writer, Duration::from_secs(60));
    assert!(written.status.success(), "simulate: {:?}", written.status);

    official.expect("complete", Duration::from_secs(60));
    let live = received_live(official);
    assert_every_line_once_after_catch_up(&second.base, &ops_principal(), &live, &ids, LOGS).await;
    let h = wait_for_health(&second.base, Duration::from_secs(30), "ok", |h| {
        h["status"] == "ok"
    })
    .await;
    assert_eq!(h["deadLetters"], 0, "{h:#}");
    assert_eq!(
        executions_counted_today(&second.base).await,
        EXECUTIONS as u64
    );
    assert_metrics_equal_the_live_aggregate(&second.base, data.path()).await;
}

/// Scenarios 3 and 4: the SignalR Service answering 503, or accepting the connection and never
/// answering, for a while; then healthy again. The official client is connected to the Service
/// (a real hub behind the faulty REST API) and subscribed before the outage. The batches are
/// retried, nothing is dead-lettered, health says `degraded` while it lasts, every log line
/// reaches the official client exactly once after catch-up, metrics are complete.
async fn signalr_outage(mode: ServiceMode, outage: Duration) {
    let data = temp_dir();
    let service = FaultyHubService::start().await;
    let app = BIN.serve(data.path(), &["--signalr", &service.connection_string]);
    let (mut writer, ids) =
        crate::helpers::spawn_simulate(data.path(), "GLOBAL", EXECUTIONS as u32, LOGS as u32, "0");
    let official = official_client(&app.base, &ops_principal(), &ids, LOGS);
    service.set(mode);
    crate::helpers::go(&mut writer);
    let written = bifrost_test_support::process::finish(writer, Duration::from_secs(60));
    assert!(written.status.success(), "simulate: {:?}", written.status);

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

    service.set(ServiceMode::Healthy);
    official.expect("complete", Duration::from_secs(60));
    let live = received_live(official);
    // What arrived live, deduplicated by sequence, plus the catch-up: every line exactly once.
    assert_every_line_once_after_catch_up(&app.base, &ops_principal(), &live, &ids, LOGS).await;
    let h = wait_for_health(&app.base, Duration::from_secs(40), "ok again", |h| {
        h["status"] == "ok" && h["changeFeed"]["LogStream"]["lastError"].is_null()
    })
    .await;
    assert_eq!(h["deadLetters"], 0, "{h:#}");
    if mode == ServiceMode::Failing {
        // A hanging call may time out and work on the REST sender's own retry, inside one
        // attempt; a 503 for seconds outlasts those retries.
        assert!(
            h["changeFeed"]["LogStream"]["failedAttempts"].as_u64() >= Some(1),
            "{h:#}"
        );
    }
    assert_eq!(executions_counted_today(&app.base).await, EXECUTIONS as u64);
    assert_metrics_equal_the_live_aggregate(&app.base, data.path()).await;
}

// Multi-threaded: the hub standing in for the Service runs in this process while the test
// blocks on the official client.
#[tokio::test(flavor = "multi_thread")]
async fn fault_signalr_answering_5xx_for_a_while() {
    signalr_outage(ServiceMode::Failing, Duration::from_secs(3)).await;
}

// Multi-threaded: the hub standing in for the Service runs in this process while the test
// blocks on the official client.
#[tokio::test(flavor = "multi_thread")]
async fn fault_signalr_accepting_and_never_answering() {
    signalr_outage(ServiceMode::Hanging, Duration::from_secs(3)).await;
}

/// An HTTP invocation of `function` as the host posts it, by a platform admin.
pub(crate) fn http_invocation(function: &str, path: &str, query: Value) -> Vec<u8> {
    serde_json::json!({
        "Data": {"req": {
            "Url": format!("https://bifrost-func.azurewebsites.net/api/{path}"), "Method": "GET",
            "Query": query, "Params": {},
            "Headers": {"X-MS-CLIENT-PRINCIPAL": [admin()]},
            "Identities": []
        }},
        "Metadata": {"sys": {"MethodName": function}}
    })
    .to_string()
    .into_bytes()
}

pub(crate) fn batch(documents: &[Value]) -> Vec<u8> {
    serde_json::json!({"Data": {"documents": documents}, "Metadata": {}})
        .to_string()
        .into_bytes()
}

/// Every document of a container's change feed, as the host would deliver them.
pub(crate) async fn whole_feed(
    store: &dyn bifrost_workers::store::Store,
    container: bifrost_workers::store::Container,
) -> Vec<Value> {
    use bifrost_workers::store::FeedPosition;
    let mut documents = Vec::new();
    let mut position = FeedPosition::Beginning;
    for _ in 0..1000 {
        let page = store
            .read_change_feed(container, &position, 100)
            .await
            .expect("change feed");
        if page.documents.is_empty() {
            return documents;
        }
        documents.extend(page.documents);
        position = FeedPosition::Continuation(page.continuation);
    }
    panic!("the feed did not end");
}

/// Scenario 6: the host delivers the same batch twice and batches out of order to `handler`
/// (after a lease moves, or a retry): every log line still reaches SignalR, and the metrics
/// count each execution once, at its newest version, equal to the live aggregate.
// Multi-threaded: the Service and the host front run in this process while the test blocks on
// the official client.
#[tokio::test(flavor = "multi_thread")]
async fn fault_handler_gets_duplicate_and_reordered_batches() {
    use bifrost_workers::store::Container;
    let data = temp_dir();
    let ids = simulate(data.path());
    let store = crate::helpers::sqlite_store(data.path());
    let executions = whole_feed(&store, Container::Executions).await;
    let logs = whole_feed(&store, Container::ExecutionData).await;
    assert_eq!(executions.len(), EXECUTIONS);

    // The Service (a real hub) and the host's HTTP triggers in front of `handler`: the official
    // client negotiates and subscribes through the functions, as against a Function App.
    let service = FaultyHubService::start().await;
    let (app, _) = BIN.handler_with(
        data.path(),
        &[("BIFROST_SIGNALR", service.connection_string.as_str())],
    );
    let front = crate::host_front::HostFront::start(&app.base).await;
    let official = official_client(&front.base, &ops_principal(), &ids, LOGS);
    let invoke = |function: &'static str, body: Vec<u8>| {
        let base = app.base.clone();
        async move {
            let (status, _, reply) = crate::handler::invoke(&base, function, body).await;
            assert_eq!(status, 200, "{function}: {reply}");
            assert!(
                reply.get("error").is_none_or(Value::is_null),
                "{function}: {reply}"
            );
            reply
        }
    };

    // Logs: in batches of 7, the last batch first, one batch twice.
    let batches: Vec<&[Value]> = logs.chunks(7).collect();
    for chunk in batches.iter().rev() {
        invoke("LogStream", batch(chunk)).await;
    }
    invoke("LogStream", batch(batches[1])).await;

    // Executions: the newest versions twice, then an older version of each (a running one,
    // earlier in the feed) delivered late.
    invoke("MetricsAggregate", batch(&executions)).await;
    invoke("MetricsAggregate", batch(&executions)).await;
    let older: Vec<Value> = executions
        .iter()
        .map(|e| {
            let mut old = e.clone();
            old["status"] = "Running".into();
            old["completedAt"] = Value::Null;
            old["durationMs"] = Value::Null;
            if let Some(lsn) = e["_lsn"].as_i64() {
                old["_lsn"] = (lsn - 1).into();
            }
            if let Some(ts) = e["_ts"].as_i64() {
                old["_ts"] = (ts - 1).into();
            }
            old
        })
        .collect();
    invoke("MetricsAggregate", batch(&older)).await;

    // Every log line reached the official client (repeats are its to drop, by sequence), and
    // after catching up through `GetExecutionLogs` it has each exactly once.
    official.expect("complete", Duration::from_secs(60));
    let live = received_live(official);
    assert_every_line_once_after_catch_up(&front.base, &ops_principal(), &live, &ids, LOGS).await;

    let reply = invoke(
        "GetDailyMetrics",
        http_invocation(
            "GetDailyMetrics",
            "metrics/daily",
            serde_json::json!({"days": "1"}),
        ),
    )
    .await;
    let body: Value =
        serde_json::from_str(reply["Outputs"]["res"]["body"].as_str().expect("a body"))
            .expect("JSON");
    let today = chrono::Utc::now().date_naive();
    let live = bifrost_workers::metrics::live_aggregate(&store, "GLOBAL", today)
        .await
        .expect("live aggregate");
    assert_eq!(live.total_executions, EXECUTIONS as u64);
    assert_day_equals_live(&body["days"][0], &live);
}

/// Scenario 7: a poison document, whose batch fails every time (here: the metrics of an
/// execution of `poison_workflow` cannot be written). It is dead-lettered after the retry
/// policy and the partition moves on; replaying it fails (and keeps it) until the cause is
/// gone, then works.
#[tokio::test]
async fn fault_poison_document_is_dead_lettered_and_the_partition_moves_on() {
    let data = temp_dir();
    let dir = data.path().to_str().expect("utf-8 path").to_owned();
    let control = data.path().join("faults");
    std::fs::write(&control, "poison:poison_workflow").expect("the poison");
    let mut command = BIN.command();
    command
        .args(["serve", "--listen", "127.0.0.1:0", "--data", &dir])
        .env("BIFROST_FAULT_FILE", &control);
    let app = Process::announced(command);

    let (mut writer, poisoned) = crate::helpers::spawn_simulate_with(
        {
            let mut command = BIN.command();
            command.args(["simulate", "--data", &dir, "--workflow", "poison_workflow"]);
            command
        },
        "GLOBAL",
        1,
        LOGS as u32,
        "0",
    );
    let official = official_client(&app.base, &ops_principal(), &poisoned, LOGS);
    crate::helpers::go(&mut writer);
    let done = bifrost_test_support::process::finish(writer, Duration::from_secs(60));
    assert!(done.status.success(), "simulate: {:?}", done.status);
    // While it fails, health says so.
    let h = wait_for_health(
        &app.base,
        Duration::from_secs(20),
        "the poison failing",
        |h| h["changeFeed"]["MetricsAggregate"]["failedAttempts"].as_u64() >= Some(1),
    )
    .await;
    assert_eq!(h["status"], "degraded", "{h:#}");
    assert_eq!(
        h["changeFeed"]["MetricsAggregate"]["status"], "degraded",
        "{h:#}"
    );
    let h = wait_for_health(
        &app.base,
        Duration::from_secs(120),
        "the poison dead-lettered",
        |h| {
            let pump = &h["changeFeed"]["MetricsAggregate"];
            pump["deadLetters"].as_u64() >= Some(1) && pump["failingSince"].is_null()
        },
    )
    .await;
    assert!(
        h["changeFeed"]["MetricsAggregate"]["lastError"]
            .as_str()
            .is_some_and(|e| e.contains("poison")),
        "{h:#}"
    );

    // The partition moved on: what comes after is counted, and streamed.
    let (ids, after) = simulate_to_official_client(data.path(), &app.base);
    let deadline = Instant::now() + Duration::from_secs(30);
    while executions_counted_today(&app.base).await < EXECUTIONS as u64 {
        assert!(Instant::now() < deadline, "the partition did not move on");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert_eq!(ids.len(), EXECUTIONS);
    // Every line, the poison's included (its logs never failed), reached the official clients
    // exactly once after catch-up.
    for (client, ids) in [(official, &poisoned), (after, &ids)] {
        let live = received_live(client);
        assert_every_line_once_after_catch_up(&app.base, &ops_principal(), &live, ids, LOGS).await;
    }

    // Replaying while the cause remains fails and keeps the record.
    let replay = deadletters_with_faults(
        data.path(),
        &["replay", "--function", "MetricsAggregate"],
        Some(&control),
    );
    assert!(!replay.status.success(), "a replay of a poison succeeded?");
    let report: Value = serde_json::from_slice(&replay.stdout).expect("replay JSON");
    assert!(report["failed"].as_u64() >= Some(1), "{report:#}");
    let kept = deadletters(data.path(), &["list", "--json"]);
    let kept: Vec<Value> = serde_json::from_slice(&kept.stdout).expect("list JSON");
    assert!(!kept.is_empty());

    // The cause is fixed: the replay counts it, once.
    std::fs::remove_file(&control).expect("the cure");
    let replay = deadletters(data.path(), &["replay"]);
    assert!(
        replay.status.success(),
        "{}",
        String::from_utf8_lossy(&replay.stdout)
    );
    assert_eq!(
        executions_counted_today(&app.base).await,
        EXECUTIONS as u64 + 1
    );
    let h = wait_for_health(&app.base, Duration::from_secs(20), "no dead letters", |h| {
        h["deadLetters"] == 0
    })
    .await;
    assert_eq!(h["status"], "ok", "{h:#}");
}

/// The official `@microsoft/signalr` client (`tests/signalr/client.cjs`), one connection as
/// `principal` subscribed to `ids` on `base`'s hub, once it reported `ready`.
pub(crate) fn official_client(
    base: &str,
    principal: &str,
    ids: &[String],
    logs: u64,
) -> crate::helpers::NodeScript {
    use bifrost_test_support::signalr;
    let module = signalr::client_module().unwrap_or_else(|why| panic!("SignalR client: {why}"));
    let client = crate::helpers::NodeScript::spawn(
        &signalr::script("client.cjs"),
        &[("SIGNALR_MODULE", module)],
        &serde_json::json!({
            "base": base,
            "logsPerExecution": logs,
            "clients": [{"name": "official", "principal": principal, "executions": ids}],
        }),
    );
    client.expect("ready", Duration::from_secs(60));
    client
}

/// What the official client received live, per execution (arrival order, repeats included):
/// it reports once its stdin closes.
pub(crate) fn received_live(mut client: crate::helpers::NodeScript) -> BTreeMap<String, Vec<u64>> {
    client.close_stdin();
    let summary = client.expect("summary", Duration::from_secs(60));
    summary["logs"]
        .as_object()
        .map(|logs| {
            logs.iter()
                .map(|(id, seqs)| {
                    let seqs = seqs
                        .as_array()
                        .map(|a| a.iter().filter_map(Value::as_u64).collect())
                        .unwrap_or_default();
                    (id.clone(), seqs)
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The highest sequence up to which a client has every line: where it catches up from.
pub(crate) fn contiguous(live: &[u64]) -> u64 {
    let have: std::collections::BTreeSet<u64> = live.iter().copied().collect();
    (1..).take_while(|s| have.contains(s)).last().unwrap_or(0)
}

/// A client that keeps what it received live up to `after` (dropping repeats by sequence, as
/// the contract says) and adds what the catch-up after `after` fetched has each of `1..=logs`
/// exactly once: the catch-up neither misses nor repeats a line.
pub(crate) fn assert_once_after_catch_up(
    id: &str,
    live: &[u64],
    after: u64,
    fetched: &[u64],
    logs: u64,
) {
    assert_eq!(
        fetched,
        (after + 1..=logs).collect::<Vec<_>>(),
        "{id}: catch-up after {after}"
    );
    let mut seen: Vec<u64> = live.iter().copied().filter(|s| *s <= after).collect();
    seen.sort_unstable();
    seen.dedup();
    seen.extend_from_slice(fetched);
    assert_eq!(seen, (1..=logs).collect::<Vec<_>>(), "execution {id}");
}

/// Every line of `ids` reached a client exactly once after it caught up through
/// `GET …/logs?afterSequence=` on `base` (as `principal`), `live` being what it received in
/// real time (the official client's summary, or what a stand-in Service accepted); returns how
/// many lines it had to fetch (0: live alone was complete).
pub(crate) async fn assert_every_line_once_after_catch_up(
    base: &str,
    principal: &str,
    live: &BTreeMap<String, Vec<u64>>,
    ids: &[String],
    logs: u64,
) -> usize {
    let mut caught_up = 0;
    for id in ids {
        let received = live.get(id).cloned().unwrap_or_default();
        let after = contiguous(&received);
        let fetched: Vec<u64> = crate::signalr::fetch_logs_after(base, principal, None, id, after)
            .await
            .iter()
            .filter_map(|l| l["sequence"].as_u64())
            .collect();
        caught_up += fetched.len();
        assert_once_after_catch_up(id, &received, after, &fetched, logs);
    }
    caught_up
}
