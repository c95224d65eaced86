//! `handler` mode against replayed host payloads (`tests/fixtures/host/`) and malformed ones.

use std::sync::Arc;
use std::time::Duration;

use bifrost_workers::clock::SystemClock;
use bifrost_workers::store::{sqlite::SqliteStore, Container, Query, Store};
use serde_json::{json, Value};

use bifrost_test_support::procfs::memory_mib;

use crate::helpers::{client, fixture, temp_dir, BIN};

/// `POST {base}/{function}` with `body`, as the Functions host invokes a custom handler.
pub fn invocation(base: &str, function: &str, body: Vec<u8>) -> reqwest::RequestBuilder {
    client()
        .post(format!("{base}/{function}"))
        .header("Content-Type", "application/json; charset=utf-8")
        .header(
            "X-Azure-Functions-InvocationId",
            uuid::Uuid::new_v4().to_string(),
        )
        .body(body)
}

pub async fn invoke(base: &str, function: &str, body: Vec<u8>) -> (u16, String, Value) {
    let response = invocation(base, function, body)
        .send()
        .await
        .expect("invoke");
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let text = response.text().await.expect("body");
    let json: Value = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("reply is not JSON ({e}): {text:.200}"));
    (status, content_type, json)
}

fn assert_full_reply(reply: &Value) {
    let obj = reply.as_object().expect("reply is an object");
    for key in ["Outputs", "Logs", "ReturnValue"] {
        assert!(obj.contains_key(key), "reply lacks {key}: {reply}");
    }
    assert!(reply["Outputs"].is_object());
    assert!(reply["Logs"].is_array());
}

async fn dead_letters(data: &std::path::Path) -> Vec<Value> {
    let store =
        SqliteStore::open(&data.join("bifrost.db"), Arc::new(SystemClock)).expect("open store");
    let page = store
        .query(Container::DeadLetters, "LogStream", &Query::new(1000))
        .await
        .expect("query dead letters");
    page.items
}

#[tokio::test]
async fn cosmos_fixtures_are_processed() {
    let data = temp_dir();
    let (app, _) = BIN.handler(data.path());
    for name in ["cosmos_logstream.json", "cosmos_logstream_retry.json"] {
        let (status, content_type, reply) = invoke(&app.base, "LogStream", fixture(name)).await;
        assert_eq!(status, 200, "{name}: {reply}");
        assert!(content_type.starts_with("application/json"));
        assert_full_reply(&reply);
        assert!(reply.get("error").is_none(), "{name}: {reply}");
        let logs = reply["Logs"].to_string();
        assert!(logs.contains("LogStream: 1 documents"), "{logs}");
    }
}

/// The host's timer payload for the hourly rollup (`timer_dailyrollup.json`) runs the real rollup.
#[tokio::test]
async fn daily_rollup_timer_fixture_runs_the_rollup() {
    let data = temp_dir();
    let (app, _) = BIN.handler(data.path());
    let (status, _, reply) =
        invoke(&app.base, "DailyRollup", fixture("timer_dailyrollup.json")).await;
    assert_eq!(status, 200, "{reply}");
    assert_full_reply(&reply);
    assert!(reply.get("error").is_none(), "{reply}");
    assert!(reply["Logs"].to_string().contains("DailyRollup"), "{reply}");
}

#[tokio::test]
async fn http_function_answers_through_outputs_res() {
    let data = temp_dir();
    let (app, _) = BIN.handler(data.path());
    let mut payload: Value = serde_json::from_slice(&fixture("http_get_execution.json")).unwrap();
    payload["Data"]["req"]["Url"] = json!("https://myapp.azurewebsites.net/api/health");
    payload["Data"]["req"]["Params"] = json!({});
    let (status, _, reply) =
        invoke(&app.base, "Health", serde_json::to_vec(&payload).unwrap()).await;
    assert_eq!(status, 200);
    assert_full_reply(&reply);
    let res = &reply["Outputs"]["res"];
    assert_eq!(res["statusCode"], 200);
    assert_eq!(res["headers"]["Content-Type"], "application/json");
    let body: Value = serde_json::from_str(res["body"].as_str().unwrap()).unwrap();
    assert_eq!(body["status"], "ok");
    assert_eq!(body["mode"], "handler");

    payload["Data"]["req"]["Method"] = json!("DELETE");
    let (status, _, reply) =
        invoke(&app.base, "Health", serde_json::to_vec(&payload).unwrap()).await;
    assert_eq!(status, 200);
    assert_eq!(reply["Outputs"]["res"]["statusCode"], 405);
}

#[tokio::test]
async fn malformed_batches_fail_clearly_are_dead_lettered_and_the_process_keeps_serving() {
    let data = temp_dir();
    let (app, _) = BIN.handler(data.path());
    let ten_megabytes = {
        let mut body = b"{\"Data\":{\"documents\":\"".to_vec();
        body.extend(std::iter::repeat_n(b'x', 10 * 1024 * 1024));
        body
    };
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("bad JSON", b"{not json".to_vec(), "not valid JSON"),
        ("empty body", Vec::new(), "not valid JSON"),
        ("array", b"[1,2,3]".to_vec(), "JSON object"),
        (
            "Data not an object",
            br#"{"Data":5,"Metadata":{}}"#.to_vec(),
            "\"Data\" must be",
        ),
        (
            "missing binding",
            br#"{"Data":{},"Metadata":{}}"#.to_vec(),
            "missing input binding \"documents\"",
        ),
        (
            "wrong type",
            br#"{"Data":{"documents":5},"Metadata":{}}"#.to_vec(),
            "got a number",
        ),
        (
            "items not objects",
            br#"{"Data":{"documents":"[1,2]"},"Metadata":{}}"#.to_vec(),
            "item 0 is a number",
        ),
        (
            "string not JSON",
            br#"{"Data":{"documents":"\"oops"},"Metadata":{}}"#.to_vec(),
            "in string starting",
        ),
        ("10 MB unterminated", ten_megabytes, "not valid JSON"),
    ];
    for (label, body, needle) in &cases {
        let (status, content_type, reply) = invoke(&app.base, "LogStream", body.clone()).await;
        assert_eq!(status, 200, "{label}: {reply:.300}");
        assert!(content_type.starts_with("application/json"), "{label}");
        assert_full_reply(&reply);
        let error = reply["error"]
            .as_str()
            .unwrap_or_else(|| panic!("{label}: no error in {reply:.300}"));
        assert!(error.contains(needle), "{label}: {error}");
    }
    // Every rejected payload was kept, byte for byte.
    let letters = dead_letters(data.path()).await;
    let mut batches: std::collections::BTreeMap<String, Vec<(u64, String)>> = Default::default();
    for letter in &letters {
        batches
            .entry(letter["batchId"].as_str().unwrap().to_owned())
            .or_default()
            .push((
                letter["part"].as_u64().unwrap(),
                letter["rawPayload"].as_str().unwrap().to_owned(),
            ));
    }
    assert_eq!(batches.len(), cases.len());
    let mut bodies: Vec<String> = batches
        .into_values()
        .map(|mut parts| {
            parts.sort();
            parts.into_iter().map(|(_, text)| text).collect()
        })
        .collect();
    let mut expected: Vec<String> = cases
        .iter()
        .map(|(_, b, _)| String::from_utf8(b.clone()).unwrap())
        .collect();
    bodies.sort();
    expected.sort();
    assert!(
        bodies == expected,
        "dead-lettered payloads differ from what was sent"
    );

    // Still serving.
    let (status, _, reply) = invoke(&app.base, "LogStream", fixture("cosmos_logstream.json")).await;
    assert_eq!(status, 200);
    assert!(reply.get("error").is_none());
}

#[tokio::test]
async fn malformed_http_invocations_answer_400_json() {
    let data = temp_dir();
    let (app, _) = BIN.handler(data.path());
    for body in [
        &b"nope"[..],
        br#"{"Data":{"req":"[]"}}"#,
        br#"{"Data":{"req":{"Url":"x"}}}"#,
    ] {
        let (status, _, reply) = invoke(&app.base, "Health", body.to_vec()).await;
        assert_eq!(status, 200);
        let res = &reply["Outputs"]["res"];
        assert_eq!(res["statusCode"], 400, "{reply}");
        let body: Value = serde_json::from_str(res["body"].as_str().unwrap()).unwrap();
        assert!(body["error"]
            .as_str()
            .unwrap()
            .contains("undecodable HTTP invocation"));
    }
}

#[tokio::test]
async fn fault_failing_sends_are_retried_then_dead_lettered_on_the_last_attempt() {
    // Every write to /dev/full fails (ENOSPC): the real-time send of each batch fails.
    let data = temp_dir();
    let (app, _) = BIN.handler_with(data.path(), &[("BIFROST_SIGNALR", "journal:/dev/full")]);
    let mut payload: Value =
        serde_json::from_slice(&fixture("cosmos_logstream_retry.json")).unwrap();
    payload["Data"]["documents"] = json!([{
        "id": "log-e1-00000001", "executionId": "e1", "type": "log", "sequence": 1,
        "timestamp": "2025-04-09T04:46:10Z", "level": "info", "message": "hello", "_lsn": 3
    }]);

    // Not the last attempt: fail the invocation so the host redelivers.
    let (status, content_type, reply) = invoke(
        &app.base,
        "LogStream",
        serde_json::to_vec(&payload).unwrap(),
    )
    .await;
    assert_eq!(status, 500, "{reply}");
    assert!(content_type.starts_with("application/json"));
    assert!(reply["error"]
        .as_str()
        .unwrap()
        .contains("sending real-time messages failed"));
    assert!(dead_letters(data.path()).await.is_empty());

    // The last attempt: keep the batch as a dead letter and let the partition move on.
    payload["Metadata"]["RetryContext"]["RetryCount"] = json!(5);
    let (status, _, reply) = invoke(
        &app.base,
        "LogStream",
        serde_json::to_vec(&payload).unwrap(),
    )
    .await;
    assert_eq!(status, 200, "{reply}");
    assert!(reply["error"]
        .as_str()
        .unwrap()
        .contains("sending real-time messages failed"));
    assert!(reply["Logs"][0].as_str().unwrap().contains("dead-lettered"));
    let letters = dead_letters(data.path()).await;
    assert_eq!(letters.len(), 1);
    assert_eq!(letters[0]["documents"], payload["Data"]["documents"]);
    assert_eq!(letters[0]["attempts"], 6);

    // No retry policy in the payload means the host will not redeliver: dead-letter at once.
    payload["Metadata"] = json!({"sys": {"MethodName": "LogStream"}});
    let (status, _, _) = invoke(
        &app.base,
        "LogStream",
        serde_json::to_vec(&payload).unwrap(),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(dead_letters(data.path()).await.len(), 2);
}

#[tokio::test]
async fn readiness_probe_answers_fast() {
    // The host probes GET / every 25 ms and needs an answer within 30 s; we aim for 50 ms. What
    // the handler does before it answers is measured by the CPU it used (the scheduler's count,
    // independent of how busy the machine is); the wall time is held to 50 ms on an idle
    // machine and proportionally more when the load average says the cores are shared.
    let mut cpu = Vec::new();
    let mut wall = Vec::new();
    for _ in 0..5 {
        let data = temp_dir();
        let (app, elapsed) = BIN.handler(data.path());
        cpu.push(Duration::from_nanos(
            bifrost_test_support::procfs::cpu_nanos(app.pid()),
        ));
        wall.push(elapsed);
    }
    cpu.sort();
    wall.sort();
    let (cpu_median, wall_median) = (cpu[cpu.len() / 2], wall[wall.len() / 2]);
    let load: f64 = std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next()?.parse().ok())
        .unwrap_or(0.0);
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
    let wall_bound = Duration::from_millis(50).mul_f64((load / cores).max(1.0));
    println!(
        "GET / answered after {wall_median:?} wall, {cpu_median:?} CPU (medians of 5; wall: \
         {wall:?}; CPU: {cpu:?}; load average {load} on {cores} cores, wall bound {wall_bound:?})"
    );
    assert!(cpu_median < Duration::from_millis(50), "CPU {cpu_median:?}");
    assert!(wall_median < wall_bound, "wall {wall_median:?}");
}

#[tokio::test]
async fn unknown_routes_get_json_not_html() {
    let data = temp_dir();
    let (app, _) = BIN.handler(data.path());
    let response = client()
        .get(format!("{}/nope/deeper", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 404);
    let body: Value = response.json().await.unwrap();
    assert!(body["error"].is_string());
}

fn host_batch(documents: &[Value]) -> Vec<u8> {
    let once = Value::String(Value::Array(documents.to_vec()).to_string()).to_string();
    json!({"Data": {"documents": once}, "Metadata": {"sys": {"MethodName": "LogStream"}}})
        .to_string()
        .into_bytes()
}

/// A 60 MB batch costs at most about three times its size while it runs, and that memory is
/// given back once the reply is sent.
#[tokio::test]
async fn a_large_batch_costs_a_bounded_multiple_of_its_size_and_is_released() {
    let data = temp_dir();
    let (app, _) = BIN.handler(data.path());
    let log = |i: usize, data: Value| {
        json!({"id": format!("log-big-{i:08}"), "executionId": "big", "type": "log",
               "timestamp": "2025-04-09T04:46:10.123456Z", "level": "info",
               "message": format!("step {i}"), "data": data, "sequence": i + 1,
               "_rid": "lV8dAK7u9cCUAAAAAAAAAA==", "_etag": "\"0f007efc-0000-0800-0000-67f5fb920000\"",
               "_ts": 1744173970, "_lsn": i})
    };
    // Warm up the process (connections, allocator arenas) before the baseline.
    let small: Vec<Value> = (0..100).map(|i| log(i, json!({"step": i}))).collect();
    let (status, _, reply) = invoke(&app.base, "LogStream", host_batch(&small)).await;
    assert_eq!(status, 200, "{reply}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (before, _) = memory_mib(app.pid());

    let big: Vec<Value> = (0..500)
        .map(|i| log(i, json!({"blob": "x".repeat(120 * 1024)})))
        .collect();
    let body = host_batch(&big);
    let body_mib = body.len() as f64 / 1024.0 / 1024.0;
    let (status, _, reply) = invoke(&app.base, "LogStream", body).await;
    assert_eq!(status, 200, "{reply:.300}");
    assert!(reply.get("error").is_none(), "{reply:.300}");
    assert!(
        reply["Logs"]
            .to_string()
            .contains("LogStream: 500 documents"),
        "{reply:.300}"
    );
    let (_, peak) = memory_mib(app.pid());
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (after, _) = memory_mib(app.pid());
    println!(
        "{body_mib:.1} MiB batch: RSS {before:.0} MiB before, peak {peak:.0} MiB, {after:.0} MiB after"
    );
    assert!(
        peak - before <= 3.0 * body_mib,
        "peak {peak:.0} MiB is more than 3× the {body_mib:.0} MiB body above {before:.0} MiB"
    );
    assert!(
        after - before <= 0.25 * body_mib,
        "{after:.0} MiB after the batch, {before:.0} MiB before: its memory was kept"
    );
}
