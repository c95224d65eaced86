//! Live logs end to end: `serve` (built-in hub) + `simulate` as a second process + the official
//! `@microsoft/signalr` client (npm, installed into `target/signalr-client`), in Node and once in
//! headless Chromium from another origin.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::helpers::{go, principal, seed_members, spawn_serve, temp_dir, NodeScript, BIN};

use crate::install::signalr_client;

const ORG_A: &str = "org-0f4a6f6c-1111-4c2e-9a57-3d2b8f1f0a01";
const ORG_B: &str = "org-7d1e2c3b-2222-4c2e-9a57-3d2b8f1f0a02";

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `simulate` in org A, holding its logs until `go`.
fn spawn_simulate(data: &Path, executions: u32, logs: u32, rate: &str) -> (Child, Vec<String>) {
    crate::helpers::spawn_simulate(data, ORG_A, executions, logs, rate)
}

type NodeClient = NodeScript;

/// The official client driven by `tests/signalr/client.cjs`.
fn spawn_client(config: &Value) -> NodeClient {
    NodeScript::spawn(
        &repo().join("tests/signalr/client.cjs"),
        &[("SIGNALR_MODULE", signalr_client())],
        config,
    )
}

/// Closes stdin: the client prints one summary per connection and exits.
fn summaries(mut client: NodeClient, count: usize) -> BTreeMap<String, Value> {
    client.close_stdin();
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut summaries = BTreeMap::new();
    while summaries.len() < count {
        let event = client.next(deadline, "summaries");
        if event["event"] == "summary" {
            summaries.insert(event["client"].as_str().unwrap().to_owned(), event);
        }
    }
    client.wait();
    summaries
}

fn sequences(value: &Value) -> Vec<u64> {
    value
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_u64).collect())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread")]
async fn live_logs_reach_subscribed_clients_exactly_once_in_order() {
    const EXECUTIONS: u32 = 20;
    const LOGS: u32 = 500;
    let data = temp_dir();
    seed_members(data.path(), &[("alice", ORG_A), ("bob", ORG_B)]).await;
    let app = spawn_serve(data.path(), &[]);
    let (mut simulate, ids) = spawn_simulate(data.path(), EXECUTIONS, LOGS, "2500");
    let alice = principal("alice", &["authenticated"]);
    let admin = principal("root", &["authenticated", "PlatformAdmin"]);
    let org_a_id = ORG_A.trim_start_matches("org-");
    let config = json!({
        "base": app.base,
        "logsPerExecution": LOGS,
        "clients": [
            {"name": "all", "principal": alice, "executions": ids, "history": true},
            {"name": "one", "principal": alice, "executions": [ids[0]]},
            {"name": "other", "principal": principal("bob", &["authenticated"]), "executions": [],
             "history": true, "forbidden": [ids[0]]},
            {"name": "resume", "principal": admin, "org": org_a_id, "executions": [],
             "resume": {"execution": ids[1], "dropAfter": 100}},
        ],
    });
    let started = Instant::now();
    let client = spawn_client(&config);
    let deadline = Instant::now() + Duration::from_secs(60);
    assert_eq!(client.next(deadline, "clients ready")["event"], "ready");
    go(&mut simulate);

    let mut complete = BTreeSet::new();
    while complete.len() < 3 {
        let event = client.next(deadline, &format!("complete clients (have {complete:?})"));
        if event["event"] == "complete" {
            complete.insert(event["client"].as_str().unwrap().to_owned());
        }
    }
    let status = simulate.wait().expect("simulate exits");
    assert!(status.success(), "simulate failed: {status:?}");
    // Let the final status changes through, and give any duplicate time to show up.
    std::thread::sleep(Duration::from_millis(1500));
    let summaries = summaries(client, 4);
    eprintln!(
        "{EXECUTIONS}×{LOGS} logs delivered in {:?}",
        started.elapsed()
    );

    let expected: Vec<u64> = (1..=u64::from(LOGS)).collect();
    let all = &summaries["all"];
    for id in &ids {
        assert_eq!(
            sequences(&all["logs"][id]),
            expected,
            "client 'all', execution {id}"
        );
        let updates = all["updates"][id]
            .as_array()
            .expect("executionUpdate messages");
        let last = updates.last().and_then(Value::as_str).unwrap();
        assert!(
            ["Success", "Failed"].contains(&last),
            "{id}: last update {last}"
        );
        let history = all["history"][id]
            .as_array()
            .expect("executionHistoryUpdate messages");
        assert!(
            history.iter().any(|s| s == last),
            "{id}: history {history:?}"
        );
    }
    assert_eq!(all["logs"].as_object().unwrap().len(), ids.len());

    let one = &summaries["one"];
    let seen: Vec<&String> = one["logs"].as_object().unwrap().keys().collect();
    assert_eq!(
        seen,
        vec![&ids[0]],
        "client 'one' got logs of other executions"
    );
    assert_eq!(sequences(&one["logs"][&ids[0]]), expected);
    assert!(one["history"].as_object().unwrap().is_empty());

    let other = &summaries["other"];
    assert_eq!(other["subscribeStatus"][&ids[0]], 404, "{other}");
    assert_eq!(
        other["counts"],
        json!({}),
        "another scope's client received: {other}"
    );

    let resume = &summaries["resume"];
    let id = &ids[1];
    let live = sequences(&resume["logs"][id]);
    let dropped_at = resume["disconnectedAt"]
        .as_u64()
        .expect("the client disconnected");
    let before: Vec<u64> = (1..=dropped_at).collect();
    assert_eq!(
        &live[..dropped_at as usize],
        &before[..],
        "live logs before the drop"
    );
    let after_live = &live[dropped_at as usize..];
    assert!(
        after_live.windows(2).all(|w| w[0] < w[1]),
        "live logs after the reconnect are out of order: {after_live:?}"
    );
    let fetched = sequences(&resume["resumed"][id]);
    assert!(
        fetched
            .first()
            .is_some_and(|first| *first == dropped_at + 1),
        "resume fetched {:?}",
        &fetched[..fetched.len().min(5)]
    );
    let union: BTreeSet<u64> = live.iter().chain(&fetched).copied().collect();
    assert_eq!(
        union.into_iter().collect::<Vec<_>>(),
        expected,
        "resumed list has gaps"
    );
    assert!(
        (after_live.first().copied().unwrap_or(u64::from(LOGS) + 1)) > dropped_at + 1,
        "the client missed nothing while away; the test proves no resume"
    );
}

/// A tiny HTTP server for the browser page (another origin than the hub): serves the page and
/// the client bundle, and hands each `POST /report` body to the test.
fn page_server(page: String, bundle: PathBuf) -> (String, mpsc::Receiver<Value>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let origin = format!("http://{}", listener.local_addr().unwrap());
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut request_line = String::new();
            if reader.read_line(&mut request_line).is_err() {
                continue;
            }
            let mut length = 0;
            loop {
                let mut header = String::new();
                if reader.read_line(&mut header).is_err() || header.trim().is_empty() {
                    break;
                }
                if let Some((name, value)) = header.split_once(':') {
                    if name.eq_ignore_ascii_case("content-length") {
                        length = value.trim().parse().unwrap_or(0);
                    }
                }
            }
            let mut body = vec![0; length];
            let _ = reader.read_exact(&mut body);
            let path = request_line.split_whitespace().nth(1).unwrap_or("/");
            let (content_type, content) = match path {
                "/" => ("text/html", page.clone().into_bytes()),
                "/signalr.js" => ("application/javascript", std::fs::read(&bundle).unwrap()),
                "/report" => {
                    if let Ok(value) = serde_json::from_slice(&body) {
                        let _ = tx.send(value);
                    }
                    ("text/plain", b"ok".to_vec())
                }
                _ => ("text/plain", b"not found".to_vec()),
            };
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                content.len()
            );
            let _ = stream.write_all(head.as_bytes());
            let _ = stream.write_all(&content);
        }
    });
    (origin, rx)
}

fn chromium() -> PathBuf {
    let path = PathBuf::from("/usr/bin/chromium");
    if !path.exists() {
        // Best effort on a fresh machine (CI runs as root and .ci/run installs it anyway).
        let _ = Command::new("apt-get")
            .args(["install", "-y", "--no-install-recommends", "chromium"])
            .status();
    }
    assert!(
        path.exists(),
        "headless Chromium is needed: apt-get install -y chromium (as root)"
    );
    path
}

/// Kills Chromium and every process it started (its zygotes survive a plain kill).
struct Browser(Child);

impl Drop for Browser {
    fn drop(&mut self) {
        // `--` is essential: procps-ng 4.0's `kill -KILL -PGID` does not read `-PGID` as a
        // process group and signals far more than Chromium (seen here: it killed every process
        // of the session). `-s KILL -- -PGID` signals exactly the group spawned below.
        let _ = Command::new("kill")
            .args(["-s", "KILL", "--", &format!("-{}", self.0.id())])
            .status();
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn browser_client_negotiates_and_receives_from_another_origin() {
    use std::os::unix::process::CommandExt;
    let data = temp_dir();
    seed_members(data.path(), &[("alice", ORG_A)]).await;
    let app = spawn_serve(data.path(), &[]);
    let (mut simulate, ids) = spawn_simulate(data.path(), 1, 5, "0");
    let bundle = signalr_client().join("dist/browser/signalr.js");
    let page = format!(
        r#"<!doctype html><html><body><script src="/signalr.js"></script><script>
const HUB = {hub}, ID = {id}, HEADERS = {{"x-ms-client-principal": {principal}}};
const report = (x) => fetch("/report", {{method: "POST", body: JSON.stringify(x)}});
const got = [];
const connection = new signalR.HubConnectionBuilder().withUrl(HUB + "/api", {{headers: HEADERS}}).build();
connection.on("executionLogs", (a) => {{
  for (const log of a.logs) got.push(log.sequence);
  if (got.length >= 5) report({{event: "logs", logs: got}});
}});
connection.start().then(async () => {{
  const r = await fetch(HUB + "/api/executions/" + ID + "/subscribe", {{method: "POST", credentials: "include",
    headers: {{...HEADERS, "content-type": "application/json"}}, body: JSON.stringify({{connectionId: connection.connectionId}})}});
  report({{event: "ready", status: r.status, origin: location.origin}});
}}).catch((e) => report({{event: "error", error: String(e)}}));
</script></body></html>"#,
        hub = json!(app.base),
        id = json!(ids[0]),
        principal = json!(principal("alice", &["authenticated"])),
    );
    let (origin, reports) = page_server(page, bundle);
    assert_ne!(origin, app.base);
    let profile = temp_dir();
    let browser = Browser(
        Command::new(chromium())
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg(format!("{origin}/"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .expect("spawn chromium"),
    );
    let wait = |what: &str| {
        let report = reports
            .recv_timeout(Duration::from_secs(40))
            .unwrap_or_else(|_| panic!("browser sent no {what} report"));
        assert_ne!(report["event"], "error", "browser: {report}");
        report
    };
    let ready = wait("ready");
    assert_eq!(ready["event"], "ready");
    assert_eq!(ready["status"], 200, "{ready}");
    go(&mut simulate);
    let logs = wait("logs");
    assert_eq!(logs["logs"], json!([1, 2, 3, 4, 5]));
    drop(browser);
    assert!(simulate.wait().unwrap().success());
}

#[tokio::test(flavor = "multi_thread")]
async fn negotiate_subscribe_and_hub_refuse_bad_requests_with_json_errors() {
    let http = crate::helpers::client();
    let data = temp_dir();
    let unconfigured = spawn_serve(data.path(), &["--signalr", "none"]);
    let response = http
        .post(format!("{}/api/negotiate", unconfigured.base))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 503);
    let body: Value = response.json().await.unwrap();
    assert!(
        body["error"].as_str().unwrap().contains("not configured"),
        "{body}"
    );
    drop(unconfigured);

    let data = temp_dir();
    seed_members(data.path(), &[("alice", ORG_A)]).await;
    let app = spawn_serve(data.path(), &[]);
    let base = &app.base;
    let alice = principal("alice", &["authenticated"]);

    let response = http
        .post(format!("{base}/api/negotiate"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 401);
    assert!(response.json::<Value>().await.unwrap()["error"].is_string());

    let negotiated: Value = http
        .post(format!("{base}/api/negotiate"))
        .header("x-ms-client-principal", &alice)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(negotiated["url"], format!("{base}/client/?hub=bifrost"));
    let token = negotiated["accessToken"].as_str().unwrap();

    // The hub checks the service's JWT rules: signature, audience, presence.
    let client_negotiate = format!("{base}/client/negotiate?hub=bifrost&negotiateVersion=1");
    let unsigned = http.post(&client_negotiate).send().await.unwrap();
    assert_eq!(unsigned.status().as_u16(), 401);
    let forged = bifrost_workers::realtime::jwt::token_for(
        &format!("{base}/client/?hub=bifrost"),
        None,
        "not-the-key",
        chrono::Utc::now().timestamp(),
    );
    let response = http
        .post(&client_negotiate)
        .bearer_auth(forged)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 401);
    let response = http
        .post(&client_negotiate)
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    let connection: Value = response.json().await.unwrap();
    assert!(connection["connectionToken"].is_string(), "{connection}");
    // A client token is not a REST token: wrong audience.
    let response = http
        .post(format!("{base}/api/hubs/bifrost/groups/g/:send"))
        .bearer_auth(token)
        .json(&json!({"target": "x", "arguments": []}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 401);
    assert_eq!(
        response.json::<Value>().await.unwrap()["error"],
        "the audience is invalid"
    );

    // Subscribe: bad body 400, unknown execution 404, unknown connection 404, all JSON.
    let subscribe = |path: String, body: &'static str| {
        http.post(format!("{base}{path}"))
            .header("x-ms-client-principal", &alice)
            .header("content-type", "application/json")
            .body(body)
            .send()
    };
    let cases = [
        ("/api/history/subscribe", "{}", 400),
        (
            "/api/executions/nope/subscribe",
            r#"{"connectionId":"c"}"#,
            404,
        ),
        ("/api/history/subscribe", r#"{"connectionId":"gone"}"#, 404),
    ];
    let mut response = None;
    for (path, body, status) in cases {
        let answer = subscribe(path.into(), body).await.unwrap();
        assert_eq!(answer.status().as_u16(), status, "{path} {body}");
        response = Some(answer);
    }
    let response = response.unwrap();
    let body: Value = response.json().await.unwrap();
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("no SignalR connection"),
        "{body}"
    );

    // CORS preflight from another origin: the Origin is echoed with credentials allowed.
    let response = http
        .request(reqwest::Method::OPTIONS, format!("{base}/api/negotiate"))
        .header("origin", "http://elsewhere.test")
        .header("access-control-request-method", "POST")
        .header(
            "access-control-request-headers",
            "x-requested-with,x-signalr-user-agent",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 204);
    let headers = response.headers();
    assert_eq!(
        headers["access-control-allow-origin"],
        "http://elsewhere.test"
    );
    assert_eq!(headers["access-control-allow-credentials"], "true");
    assert_eq!(
        headers["access-control-allow-headers"],
        "x-requested-with,x-signalr-user-agent"
    );
}

/// A SignalR service that refuses the sends fails the batch: the pump retries it (and would
/// dead-letter it after the last retry) instead of checkpointing past lost messages.
#[tokio::test(flavor = "multi_thread")]
async fn a_failing_signalr_service_makes_the_batch_retry() {
    let closed = TcpListener::bind("127.0.0.1:0").unwrap();
    let endpoint = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let data = temp_dir();
    let signalr = format!("Endpoint={endpoint};AccessKey=k;Version=1.0;");
    let app = spawn_serve(data.path(), &["--signalr", &signalr]);
    let (mut simulate, _) = spawn_simulate(data.path(), 1, 3, "0");
    go(&mut simulate);
    assert!(simulate.wait().unwrap().success());
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let health: Value = crate::helpers::client()
            .get(format!("{}/api/health", app.base))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let pump = &health["changeFeed"]["LogStream"];
        if pump["failedAttempts"].as_u64().unwrap_or(0) >= 1 {
            assert_eq!(pump["batches"], 0, "{pump}");
            assert!(
                pump["lastError"]
                    .as_str()
                    .unwrap()
                    .contains("gave up after 3 attempts"),
                "{pump}"
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no failed attempt reported: {health}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Handler mode (Azure): the host's replayed negotiate payload answers with the SignalR
/// Service's client URL and a token signed with the AccessKey; without the setting, 503.
#[tokio::test(flavor = "multi_thread")]
async fn handler_negotiate_uses_the_azure_connection_string() {
    let mut payload: Value =
        serde_json::from_slice(&crate::helpers::fixture("http_negotiate.json")).unwrap();
    payload["Data"]["req"]["Headers"]["x-ms-client-principal"] =
        json!([principal("admin-1", &["authenticated", "PlatformAdmin"])]);
    let body = serde_json::to_vec(&payload).unwrap();

    let data = temp_dir();
    let (app, _) = crate::helpers::spawn_handler(data.path());
    let (status, _, reply) = crate::handler::invoke(&app.base, "Negotiate", body.clone()).await;
    assert_eq!(status, 200);
    assert_eq!(reply["Outputs"]["res"]["statusCode"], 503, "{reply}");
    drop(app);

    let key = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789ABCDEFGH";
    let connection =
        format!("Endpoint=https://mysignalr.service.signalr.net;AccessKey={key};Version=1.0;");
    let (app, _) = crate::helpers::spawn_handler_with(
        data.path(),
        &[("AzureSignalRConnectionString", &connection)],
    );
    let (status, _, reply) = crate::handler::invoke(&app.base, "Negotiate", body).await;
    assert_eq!(status, 200);
    let res = &reply["Outputs"]["res"];
    assert_eq!(res["statusCode"], 200, "{reply}");
    let negotiated: Value = serde_json::from_str(res["body"].as_str().unwrap()).unwrap();
    let url = "https://mysignalr.service.signalr.net/client/?hub=bifrost";
    assert_eq!(negotiated["url"], url);
    let claims = bifrost_workers::realtime::jwt::verify(
        negotiated["accessToken"].as_str().unwrap(),
        key,
        &[url],
        chrono::Utc::now().timestamp(),
    )
    .expect("token signed with the AccessKey for the client URL");
    assert_eq!(claims.nameid.as_deref(), Some("admin-1"));
}

/// A bad SignalR setting stops the program with a clear line that never echoes the access key.
#[test]
fn bad_signalr_settings_fail_clearly_without_printing_the_key() {
    let data = temp_dir();
    let secret = "SECRETKEY0123456789";
    let bad = [
        (
            "--signalr",
            format!("Endpoint=https://x.service.signalr.net;AccessKey={secret};Version=2.0;"),
            "Version",
        ),
        (
            "--signalr-connection-string",
            format!("Endpoint=ftp://x;AccessKey={secret};"),
            "Endpoint",
        ),
        (
            "--signalr-connection-string",
            format!("Endpoint=https://x;{secret};"),
            "KEY=VALUE",
        ),
        (
            "--signalr",
            format!("Endpont=https://x;AccessKey={secret}"),
            "invalid real-time target",
        ),
    ];
    for (flag, value, expected) in bad {
        let output = Command::new(BIN)
            .args(["serve", "--listen", "127.0.0.1:0", "--data"])
            .arg(data.path())
            .args([flag, &value])
            .env("RUST_LOG", "warn")
            .output()
            .expect("run serve");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{flag} {value}: accepted");
        assert!(stderr.contains(expected), "{flag}: {stderr}");
        assert!(!stderr.contains(secret), "{flag}: the key leaked: {stderr}");
    }
}
