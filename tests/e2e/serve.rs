//! `serve` mode: HTTP surface, graceful shutdown, and the change-feed pump surviving a crash.

use std::collections::{BTreeMap, BTreeSet};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use bifrost_test_support::process::{finish, RUN_TIMEOUT};

use crate::helpers::{client, health, journal_logs, temp_dir, BIN};

#[tokio::test]
async fn health_and_unknown_routes_answer_json() {
    let data = temp_dir();
    let app = BIN.serve(data.path(), &[]);
    let response = client()
        .get(format!("{}/api/health", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["status"], "ok");
    assert_eq!(body["mode"], "serve");
    assert_eq!(body["store"]["backend"], "sqlite");

    let response = client()
        .post(format!("{}/api/health", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 405);
    let body: Value = response.json().await.unwrap();
    assert!(body["error"].as_str().unwrap().contains("POST"));

    let response = client()
        .get(format!("{}/api/nothing-here", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 404);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"], "no such route");
}

#[tokio::test]
async fn sigterm_shuts_down_cleanly() {
    let data = temp_dir();
    let mut app = BIN.serve(data.path(), &[]);
    assert_eq!(health(&app.base).await["status"], "ok");
    let status = app
        .terminate(Duration::from_secs(15))
        .expect("exited after SIGTERM");
    assert!(status.success(), "{status:?}");
}

#[tokio::test]
async fn fault_serve_killed_mid_stream_and_restarted_nothing_is_skipped() {
    const EXECUTIONS: usize = 4;
    const LOGS: u64 = 300;
    let data = temp_dir();
    let journal = data.path().join("journal.jsonl");
    let sink = format!("journal:{}", journal.display());
    let mut first = BIN.serve(data.path(), &["--signalr", &sink]);

    // A second process writes to the same SQLite file while serve streams it.
    let simulate = Command::new(BIN.path())
        .args(["simulate", "--data"])
        .arg(data.path())
        .args([
            "--executions",
            &EXECUTIONS.to_string(),
            "--logs",
            &LOGS.to_string(),
            "--rate",
            "600",
        ])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn simulate");

    // Let some batches through, then crash serve (SIGKILL: no graceful anything).
    let deadline = Instant::now() + Duration::from_secs(20);
    while journal_logs(&journal)
        .0
        .values()
        .map(Vec::len)
        .sum::<usize>()
        < 100
    {
        assert!(Instant::now() < deadline, "serve streamed nothing");
        std::thread::sleep(Duration::from_millis(20));
    }
    first.kill();
    let seen_before_crash: usize = journal_logs(&journal).0.values().map(Vec::len).sum();
    assert!(
        seen_before_crash < EXECUTIONS * LOGS as usize,
        "killed too late to be mid-stream"
    );

    std::thread::sleep(Duration::from_millis(300));
    let second = BIN.serve(data.path(), &["--signalr", &sink]);
    let output = finish(simulate, RUN_TIMEOUT);
    assert!(output.status.success());
    let ids: Vec<String> = String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    assert_eq!(ids.len(), EXECUTIONS);

    // Wait until the restarted pump has drained the feed.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let h = health(&second.base).await;
        let pending = h["changeFeed"]["LogStream"]["pendingChanges"].as_u64();
        let (logs, results) = journal_logs(&journal);
        let complete = ids
            .iter()
            .all(|id| results.contains(id) && logs.get(id).is_some_and(|s| s.len() as u64 >= LOGS));
        if pending == Some(0) && complete {
            break;
        }
        assert!(Instant::now() < deadline, "pump did not catch up: {h}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let (logs, results) = journal_logs(&journal);
    for id in &ids {
        let seen: BTreeSet<u64> = logs[id].iter().copied().collect();
        let expected: BTreeSet<u64> = (1..=LOGS).collect();
        assert_eq!(seen, expected, "execution {id} is missing logs");
        assert!(results.contains(id), "execution {id} result notice missing");
    }
    let total: usize = logs.values().map(Vec::len).sum();
    println!(
        "delivered {total} log entries for {} written ({} redelivered after the crash); {seen_before_crash} before the kill",
        EXECUTIONS as u64 * LOGS,
        total as u64 - EXECUTIONS as u64 * LOGS
    );
}

#[test]
fn demo_streams_logs_to_stdout() {
    let data = temp_dir();
    let (mut child, rx) = crate::helpers::spawn_demo(data.path());
    let first = rx
        .recv_timeout(Duration::from_secs(20))
        .expect("first line");
    assert!(
        first.starts_with("listening on http://127.0.0.1:"),
        "{first}"
    );
    // Each simulated execution's logs arrive through the change feed, in sequence order.
    let mut per_execution: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while per_execution.values().map(Vec::len).sum::<usize>() < 30 {
        let remaining = deadline.saturating_duration_since(Instant::now());
        let line = rx.recv_timeout(remaining).expect("demo logs keep coming");
        // `[3f0c2a1e] #12   info    step 12 of 40`
        if let Some((execution, rest)) = line.strip_prefix('[').and_then(|l| l.split_once("] #")) {
            let sequence: u64 = rest.split_whitespace().next().unwrap().parse().unwrap();
            per_execution
                .entry(execution.to_owned())
                .or_default()
                .push(sequence);
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    for (execution, sequences) in &per_execution {
        let expected: Vec<u64> = (1..=sequences.len() as u64).collect();
        assert_eq!(sequences, &expected, "execution {execution}");
    }
}
