//! What App Insights gets from `handler` mode: structured log lines with the invocation id, batch
//! size and execution ids on stdout (Information), WARN/ERROR lines on stderr (the host records
//! those as Warning/Error), and `GET /api/health` reporting store, SignalR and change-feed lag.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use bifrost_test_support::ports::free_port;
use bifrost_test_support::process::{wait_for_root, Process};

use crate::helpers::{client, fixture, temp_dir, BIN};

/// `_ts` of the document in the `cosmos_logstream.json` fixture.
const FIXTURE_TS: i64 = 1_744_173_970;

type Lines = Arc<Mutex<Vec<String>>>;

fn collect(reader: impl std::io::Read + Send + 'static) -> Lines {
    let lines: Lines = Arc::default();
    let sink = lines.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(reader).lines().map_while(Result::ok) {
            sink.lock().unwrap().push(line);
        }
    });
    lines
}

/// Waits until some collected line satisfies `want`; returns it.
fn wait_for_line(lines: &Lines, want: impl Fn(&str) -> bool) -> Option<String> {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if let Some(line) = lines.lock().unwrap().iter().find(|l| want(l)) {
            return Some(line.clone());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    None
}

async fn post(base: &str, function: &str, invocation_id: &str, body: Vec<u8>) -> Value {
    let response = client()
        .post(format!("{base}/{function}"))
        .header("Content-Type", "application/json; charset=utf-8")
        .header("X-Azure-Functions-InvocationId", invocation_id)
        .body(body)
        .send()
        .await
        .expect("invoke");
    assert_eq!(response.status(), 200);
    response.json().await.expect("JSON reply")
}

async fn health(base: &str) -> Value {
    let mut payload: Value = serde_json::from_slice(&fixture("http_get_execution.json")).unwrap();
    payload["Data"]["req"]["Url"] = json!("https://myapp.azurewebsites.net/api/health");
    payload["Data"]["req"]["Params"] = json!({});
    let reply = post(
        base,
        "Health",
        "health-probe",
        serde_json::to_vec(&payload).unwrap(),
    )
    .await;
    serde_json::from_str(reply["Outputs"]["res"]["body"].as_str().unwrap()).unwrap()
}

#[tokio::test]
async fn handler_logs_batches_by_level_and_health_reports_lag() {
    let data = temp_dir();
    let port = free_port();
    let mut child = Command::new(BIN.path())
        .arg("handler")
        .env("FUNCTIONS_CUSTOMHANDLER_PORT", port.to_string())
        .env("BIFROST_DATA", data.path())
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn handler");
    let stdout = collect(child.stdout.take().unwrap());
    let stderr = collect(child.stderr.take().unwrap());
    let app = Process {
        child,
        base: format!("http://127.0.0.1:{port}"),
    };
    assert!(wait_for_root(port, Duration::from_secs(20)));

    let before = health(&app.base).await;
    assert_eq!(before["store"]["status"], "ok");
    assert_eq!(before["signalR"]["status"], "disabled");
    // Known before its first batch, with nothing delivered yet.
    assert_eq!(before["changeFeed"]["LogStream"]["batches"], 0);
    assert_eq!(before["changeFeed"]["LogStream"]["deadLetters"], 0);

    // One batch: an Information line naming the invocation, its size and the execution.
    let invocation = uuid::Uuid::new_v4().to_string();
    let reply = post(
        &app.base,
        "LogStream",
        &invocation,
        fixture("cosmos_logstream.json"),
    )
    .await;
    assert!(reply.get("error").is_none(), "{reply}");
    let line = wait_for_line(&stdout, |l| l.contains("batch received"))
        .unwrap_or_else(|| panic!("no batch line on stdout: {:?}", stdout.lock().unwrap()));
    for part in [
        "INFO",
        &format!("invocation_id={invocation}"),
        "function=\"LogStream\"",
        "documents=1",
        "executions=1",
        "execution_ids=[\"exec-42\"]",
    ] {
        assert!(line.contains(part), "{part} missing in {line}");
    }

    let after = health(&app.base).await;
    let feed = &after["changeFeed"]["LogStream"];
    assert_eq!(feed["container"], "execution_data");
    assert_eq!(feed["batches"], 1);
    assert_eq!(feed["documents"], 1);
    assert_eq!(feed["lastBatchSize"], 1);
    let now = chrono::Utc::now().timestamp();
    let lag = feed["lagSeconds"].as_i64().expect("lagSeconds");
    assert!(
        (now - FIXTURE_TS - 60..=now - FIXTURE_TS).contains(&lag),
        "lag {lag} s for a document written at {FIXTURE_TS}, now {now}"
    );
    assert!(feed["lastBatchAt"].is_string());

    // A batch that cannot be decoded is dead-lettered: its ERROR goes to stderr (App Insights
    // Error), not to stdout, and nothing at INFO went to stderr.
    let bad = post(
        &app.base,
        "LogStream",
        "bad-batch",
        br#"{"Data":{"documents":"not json"},"Metadata":{}}"#.to_vec(),
    )
    .await;
    assert!(bad["error"].is_string(), "{bad}");
    let error = wait_for_line(&stderr, |l| l.contains("undecodable batch"))
        .expect("the error line goes to stderr");
    assert!(error.contains("ERROR") && error.contains("invocation_id=bad-batch"));
    assert!(
        !stdout
            .lock()
            .unwrap()
            .iter()
            .any(|l| l.contains("ERROR") || l.contains(" WARN ")),
        "warnings and errors must not reach stdout (the host would log them as Information)"
    );
    assert!(
        stderr.lock().unwrap().iter().all(|l| !l.contains(" INFO ")),
        "INFO on stderr would become App Insights errors: {:?}",
        stderr.lock().unwrap()
    );
    let last = health(&app.base).await;
    assert_eq!(last["changeFeed"]["LogStream"]["deadLetteredBatches"], 1);
    assert_eq!(last["changeFeed"]["LogStream"]["batches"], 2);
}

#[tokio::test]
async fn serve_health_reports_batch_size_and_lag_of_its_pumps() {
    let data = temp_dir();
    let app = crate::helpers::BIN.serve(data.path(), &[]);
    let written = crate::helpers::BIN.run(&[
        "simulate",
        "--data",
        data.path().to_str().unwrap(),
        "--executions",
        "2",
        "--logs",
        "5",
        "--rate",
        "0",
    ]);
    assert!(written.status.success());
    let deadline = Instant::now() + Duration::from_secs(30);
    let feed = loop {
        let h = crate::helpers::health(&app.base).await;
        let feed = h["changeFeed"]["LogStream"].clone();
        if feed["pendingChanges"] == 0 && feed["documents"].as_u64() > Some(0) {
            break feed;
        }
        assert!(Instant::now() < deadline, "pump did not catch up: {h}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    // Written moments ago, so the lag is small (whole seconds: `_ts` has second resolution).
    let lag = feed["lagSeconds"].as_i64().expect("lagSeconds");
    assert!((0..=30).contains(&lag), "lag {lag}: {feed}");
    let size = feed["lastBatchSize"].as_u64().expect("lastBatchSize");
    assert!(
        size >= 1 && size <= feed["documents"].as_u64().unwrap(),
        "{feed}"
    );
}
