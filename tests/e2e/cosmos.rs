//! The whole system on the Cosmos backend: `ensure`, `serve` and `simulate` as real processes
//! against a Cosmos-compatible HTTP server (the SDK's in-memory emulator, served from this
//! test process on a real socket), and clear start-up errors for bad connection settings.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::{Duration, Instant};

use crate::cosmos_emulator;
use bifrost_test_support::principal::Principal;
use bifrost_workers::store::{Container, FeedPosition};
use serde_json::{json, Value};

use crate::handler::invoke;
use crate::helpers::{health, journal_logs, temp_dir, BIN};

/// `(executionId → distinct sequences, executions with a result notice)` from a journal file.
fn journal(path: &Path) -> (BTreeMap<String, BTreeSet<u64>>, BTreeSet<String>) {
    let (logs, results) = journal_logs(path);
    let logs = logs
        .into_iter()
        .map(|(id, sequences)| (id, sequences.into_iter().collect()))
        .collect();
    (logs, results)
}

fn simulate(store: &str, executions: u32, logs: u32) -> Vec<String> {
    let output = BIN.run(&[
        "simulate",
        "--store",
        store,
        "--executions",
        &executions.to_string(),
        "--logs",
        &logs.to_string(),
        "--rate",
        "0",
    ]);
    assert!(
        output.status.success(),
        "simulate failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

async fn wait_for_all(journal_path: &Path, ids: &[String], logs: u64) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (seen, results) = journal(journal_path);
        let complete = ids
            .iter()
            .all(|id| results.contains(id) && seen.get(id).is_some_and(|s| s.len() as u64 == logs));
        if complete {
            for id in ids {
                let expected: BTreeSet<u64> = (1..=logs).collect();
                assert_eq!(seen[id], expected, "execution {id}");
            }
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the change feed did not deliver everything: {:?}",
            seen.iter().map(|(k, v)| (k, v.len())).collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_runs_the_whole_system_on_cosmos_and_resumes_after_a_crash() {
    let emulator = cosmos_emulator::start().await.expect("emulator");
    let store = emulator.store_url("bifrost");

    let out = BIN.run(&["ensure", "--store", &store]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    for line in [
        "created database bifrost",
        "created container executions",
        "created container execution_data",
        "created container entities",
        "created container leases",
        "created container deadletters",
    ] {
        assert!(text.contains(line), "{text}");
    }
    let again = BIN.run(&["ensure", "--store", &store]);
    assert!(again.status.success());
    let text = String::from_utf8_lossy(&again.stdout);
    assert!(!text.contains("created"), "ensure is idempotent: {text}");
    assert_eq!(text.matches("exists").count(), 6, "{text}");

    let data = temp_dir();
    let journal_path = data.path().join("journal.jsonl");
    let sink = format!("journal:{}", journal_path.display());
    let mut first = BIN.serve(data.path(), &["--store", &store, "--signalr", &sink]);
    let status = health(&first.base).await;
    assert_eq!(status["store"]["backend"], "cosmos", "{status}");
    assert!(
        !status.to_string().contains("C2y6"),
        "the key leaked into health: {status}"
    );

    let before = simulate(&store, 3, 40);
    assert_eq!(before.len(), 3);
    wait_for_all(&journal_path, &before, 40).await;
    // The request units spent so far are reported (the emulator charges by its own model).
    let status = health(&first.base).await;
    assert!(
        status["store"]["requestUnits"].as_f64().unwrap_or(0.0) > 0.0,
        "{status}"
    );

    // Crash, write while nothing is serving, restart: the checkpoint in `leases` resumes the feed.
    first.kill();
    let lines_before_restart = std::fs::read_to_string(&journal_path)
        .unwrap()
        .lines()
        .count();
    let during = simulate(&store, 2, 25);
    let second = BIN.serve(data.path(), &["--store", &store, "--signalr", &sink]);
    wait_for_all(&journal_path, &during, 25).await;
    // Resumed, not replayed from the beginning: the first executions' logs are not all resent.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (seen, _) = journal(&journal_path);
    let total_lines = std::fs::read_to_string(&journal_path)
        .unwrap()
        .lines()
        .count();
    assert!(
        total_lines - lines_before_restart < 3 * 40,
        "the restarted pump replayed the feed from the beginning"
    );
    for id in &before {
        assert_eq!(seen[id].len(), 40);
    }
    drop(second);
}

/// An HTTP function invocation as the Functions host sends it (payload mode), from an admin.
fn http_invocation(function: &str, path: &str, params: Value, query: Value) -> Vec<u8> {
    let admin = Principal::admin("ops")
        .with_email("ops@bifrost.dev")
        .encode();
    json!({
        "Data": {"req": {
            "Url": format!("https://bifrost-func.azurewebsites.net/api/{path}"), "Method": "GET",
            "Query": query, "Params": params,
            "Headers": {"X-MS-CLIENT-PRINCIPAL": [admin], "Host": ["bifrost-func.azurewebsites.net"]},
            "Identities": []
        }},
        "Metadata": {"sys": {"MethodName": function, "UtcNow": chrono::Utc::now().to_rfc3339(),
                              "RandGuid": uuid::Uuid::new_v4().to_string()}}
    })
    .to_string()
    .into_bytes()
}

/// `handler` mode as deployed (`BIFROST_STORE=cosmos://…`): the host's `MetricsAggregate`
/// batch of execution documents is counted into the daily metrics in Cosmos, and the HTTP
/// functions read executions and metrics back from Cosmos.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handler_mode_serves_the_functions_from_cosmos() {
    let emulator = cosmos_emulator::start().await.expect("emulator");
    let store_url = emulator.store_url("bifrost");
    let ensured = BIN.run(&["ensure", "--store", &store_url]);
    assert!(ensured.status.success());
    let ids = simulate(&store_url, 3, 4);
    assert_eq!(ids.len(), 3);

    // The executions as the change-feed trigger delivers them (latest versions, with `_lsn`).
    let store = bifrost_workers::store::open(
        &store_url.parse().expect("store url"),
        std::sync::Arc::new(bifrost_workers::clock::SystemClock),
    )
    .await
    .expect("open cosmos store");
    let feed = store
        .read_change_feed(Container::Executions, &FeedPosition::Beginning, 100)
        .await
        .expect("change feed");
    assert_eq!(feed.documents.len(), 3);

    let data = temp_dir();
    let (app, _) = BIN.handler_with(
        data.path(),
        &[
            ("BIFROST_STORE", store_url.as_str()),
            ("BIFROST_SIGNALR", "none"),
        ],
    );
    // The host double-encodes the documents (as in tests/fixtures/host/cosmos_logstream.json).
    let documents = serde_json::to_string(&feed.documents).expect("documents");
    let batch = json!({
        "Data": {"documents": serde_json::to_string(&documents).expect("encoded")},
        "Metadata": {"sys": {"MethodName": "MetricsAggregate", "UtcNow": chrono::Utc::now().to_rfc3339(),
                              "RandGuid": uuid::Uuid::new_v4().to_string()}}
    });
    let (status, _, reply) = invoke(
        &app.base,
        "MetricsAggregate",
        batch.to_string().into_bytes(),
    )
    .await;
    assert_eq!(status, 200, "{reply}");
    assert!(reply.get("error").is_none(), "{reply}");

    let (status, _, reply) = invoke(
        &app.base,
        "GetExecution",
        http_invocation(
            "GetExecution",
            &format!("executions/{}", ids[0]),
            json!({"id": ids[0]}),
            json!({}),
        ),
    )
    .await;
    let response = &reply["Outputs"]["res"];
    assert_eq!(
        (status, response["statusCode"].as_u64()),
        (200, Some(200)),
        "{reply}"
    );
    let body: Value = serde_json::from_str(response["body"].as_str().unwrap_or_default())
        .unwrap_or_else(|_| response["body"].clone());
    assert_eq!(body["executionId"], ids[0].as_str(), "{body}");

    let (_, _, reply) = invoke(
        &app.base,
        "GetDailyMetrics",
        http_invocation(
            "GetDailyMetrics",
            "metrics/daily",
            json!({}),
            json!({"days": "1"}),
        ),
    )
    .await;
    let response = &reply["Outputs"]["res"];
    let body: Value = serde_json::from_str(response["body"].as_str().unwrap_or_default())
        .unwrap_or_else(|_| response["body"].clone());
    assert_eq!(body["days"][0]["totalExecutions"], 3, "{reply}");
}

#[test]
fn bad_cosmos_settings_fail_at_start_with_one_line() {
    let closed_port = bifrost_test_support::ports::free_port();
    let cases: Vec<(Vec<String>, &str)> = vec![
        (
            vec![
                "ensure".into(),
                "--store".into(),
                format!("cosmos+http://127.0.0.1:{closed_port}/?key=a2V5"),
            ],
            "cannot reach Cosmos DB account",
        ),
        (
            vec![
                "serve".into(),
                "--listen".into(),
                "127.0.0.1:0".into(),
                "--store".into(),
                format!("cosmos+http://127.0.0.1:{closed_port}/?key=a2V5"),
            ],
            "cannot reach Cosmos DB account",
        ),
        (
            // No managed identity here (nor an account): the token or the account is refused.
            vec![
                "ensure".into(),
                "--store".into(),
                format!("cosmos+http://127.0.0.1:{closed_port}/?identity=managed"),
            ],
            "cannot reach Cosmos DB account",
        ),
        (
            vec!["ensure".into(), "--store".into(), "cosmos://".into()],
            "needs a host",
        ),
        (
            vec![
                "ensure".into(),
                "--store".into(),
                "cosmos://acct.documents.azure.com/".into(),
            ],
            "needs credentials",
        ),
        (
            vec![
                "ensure".into(),
                "--store".into(),
                "AccountEndpoint=nonsense;AccountKey=k".into(),
            ],
            "AccountEndpoint must start with https://",
        ),
    ];
    for (args, needle) in cases {
        let started = Instant::now();
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = BIN.run(&args);
        assert!(
            started.elapsed() < Duration::from_secs(40),
            "{args:?} took too long"
        );
        assert!(!out.status.success(), "{args:?} should fail");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(needle), "{args:?}: {stderr}");
        let error_lines = stderr.lines().filter(|l| l.contains("error")).count();
        assert_eq!(error_lines, 1, "{args:?}: one clear line, got: {stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
}
