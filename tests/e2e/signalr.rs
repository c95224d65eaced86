//! Live logs end to end: `serve` (built-in hub) + `simulate` as a second process + the official
//! `@microsoft/signalr` client (npm, installed under `target/tmp/test-tools`), in Node and once in
//! headless Chromium from another origin.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use bifrost_test_support::principal::{self, admin, member};
use bifrost_test_support::process::{finish, lines, output, wait_within, RUN_TIMEOUT};
use bifrost_test_support::signalr;
use bifrost_test_support::tools::chromium;
use bifrost_workers::clock::SystemClock;
use bifrost_workers::store::{Container, Store, StoreUrl};
use serde_json::{json, Value};

use crate::helpers::{temp_dir, BIN};

pub(crate) const ORG_A: &str = "org-0f4a6f6c-1111-4c2e-9a57-3d2b8f1f0a01";
const ORG_B: &str = "org-7d1e2c3b-2222-4c2e-9a57-3d2b8f1f0a02";

/// How long `simulate` may take to announce its executions.
const ANNOUNCE_TIMEOUT: Duration = Duration::from_secs(30);

/// The pinned official client, installed once; these tests cannot run without it.
fn signalr_client() -> PathBuf {
    signalr::client_module().unwrap_or_else(|why| panic!("the SignalR client is needed: {why}"))
}

/// Membership documents, written before `serve` starts (the store is a shared SQLite file).
pub(crate) async fn seed_members(data: &Path, members: &[(&str, &str)]) {
    let store = bifrost_workers::store::open(
        &StoreUrl::Sqlite(data.join("bifrost.db")),
        std::sync::Arc::new(SystemClock),
    )
    .await
    .expect("open store");
    add_members(store.as_ref(), members).await;
}

/// A membership document per `(user, scope)`: the user is a member of that organization.
async fn add_members(store: &dyn Store, members: &[(&str, &str)]) {
    for (user, scope) in members {
        store
            .upsert(
                Container::Entities,
                json!({"id": format!("user-{user}"), "type": "user", "scope": "GLOBAL",
                       "userId": user, "email": format!("{user}@example.com"),
                       "isPlatformAdmin": false, "orgScopes": [scope]}),
                None,
            )
            .await
            .expect("seed membership");
    }
}

/// `simulate` holding its logs until a line arrives on stdin; returns it with the execution ids.
fn spawn_simulate(data: &Path, executions: u32, logs: u32, rate: &str) -> (Child, Vec<String>) {
    let mut child = BIN
        .command()
        .args(["simulate", "--data"])
        .arg(data)
        .args([
            "--executions",
            &executions.to_string(),
            "--logs",
            &logs.to_string(),
        ])
        .args(["--rate", rate, "--scope", ORG_A, "--wait-for-stdin"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn simulate");
    let ids_announced = lines(child.stdout.take().expect("simulate stdout"));
    let ids: Vec<String> = (0..executions)
        .map(|_| {
            ids_announced
                .recv_timeout(ANNOUNCE_TIMEOUT)
                .expect("an execution id on simulate's stdout")
        })
        .collect();
    (child, ids)
}

fn go(simulate: &mut Child) {
    let stdin = simulate.stdin.as_mut().expect("simulate stdin");
    stdin.write_all(b"go\n").expect("start simulate");
    stdin.flush().unwrap();
}

struct NodeClient {
    child: Child,
    stdin: Option<ChildStdin>,
    events: mpsc::Receiver<String>,
}

impl NodeClient {
    fn spawn(config: &Value) -> Self {
        let mut child = Command::new("node")
            .arg(signalr::script("client.cjs"))
            .arg(config.to_string())
            .env("SIGNALR_MODULE", signalr_client())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("node is needed for the SignalR tests");
        let stdin = child.stdin.take();
        let events = lines(child.stdout.take().expect("node stdout"));
        NodeClient {
            child,
            stdin,
            events,
        }
    }

    /// The next event, failing the test on a client error or a timeout.
    fn next(&mut self, deadline: Instant, waiting_for: &str) -> Value {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = match self.events.recv_timeout(left) {
            Ok(line) => line,
            Err(mpsc::RecvTimeoutError::Timeout) => panic!("timed out waiting for {waiting_for}"),
            Err(mpsc::RecvTimeoutError::Disconnected) => panic!(
                "the client closed its output before {waiting_for}: {:?}",
                self.child.wait()
            ),
        };
        let event: Value = serde_json::from_str(&line)
            .unwrap_or_else(|_| json!({"event": "error", "error": line}));
        assert_ne!(event["event"], "error", "client error: {}", event["error"]);
        event
    }

    /// Closes stdin: the client prints one summary per connection and exits.
    fn summaries(mut self, count: usize) -> BTreeMap<String, Value> {
        drop(self.stdin.take());
        // Generous: the summaries are large and the machine may be busy with other tests.
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut summaries = BTreeMap::new();
        while summaries.len() < count {
            let event = self.next(deadline, "summaries");
            if event["event"] == "summary" {
                summaries.insert(event["client"].as_str().unwrap().to_owned(), event);
            }
        }
        // It exits once its connections are closed (else the drop kills it).
        let _ = wait_within(&mut self.child, Duration::from_secs(10));
        summaries
    }
}

impl Drop for NodeClient {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `simulate` writes every fourth line (sequence 2, 6, 10, …) at `debug` level.
fn is_debug(sequence: u64) -> bool {
    sequence % 4 == 2
}

/// Every log line after `after`, through `GET …/logs?afterSequence=`, following its paging header.
pub(crate) async fn fetch_logs_after(
    base: &str,
    principal: &str,
    org: Option<&str>,
    execution: &str,
    mut after: u64,
) -> Vec<Value> {
    let http = reqwest::Client::new();
    let mut lines = Vec::new();
    for _ in 0..1000 {
        let mut request = http
            .get(format!(
                "{base}/api/executions/{execution}/logs?afterSequence={after}"
            ))
            .header("x-ms-client-principal", principal);
        if let Some(org) = org {
            request = request.header("x-organization-id", org);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status().as_u16(), 200);
        let next = response
            .headers()
            .get("x-next-after-sequence")
            .map(|v| v.to_str().unwrap().parse::<u64>().unwrap());
        let page: Vec<Value> = response.json().await.unwrap();
        lines.extend(page);
        match next {
            Some(next) => after = next,
            None => return lines,
        }
    }
    panic!("more than 1000 pages of logs");
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
    seed_members(
        data.path(),
        &[
            ("alice", ORG_A),
            ("carol", ORG_A),
            ("mallory", ORG_A),
            ("bob", ORG_B),
        ],
    )
    .await;
    let app = BIN.serve(data.path(), &[]);
    let (mut simulate, ids) = spawn_simulate(data.path(), EXECUTIONS, LOGS, "2500");
    let alice = member("alice");
    let org_a_id = ORG_A.trim_start_matches("org-");
    // A subscription is its user's: clients of one user all receive it, so each client whose
    // executions are judged is its own user.
    let config = json!({
        "base": app.base,
        "logsPerExecution": LOGS,
        "clients": [
            {"name": "all", "principal": alice, "executions": ids, "history": true},
            {"name": "one", "principal": member("carol"), "executions": [ids[0]]},
            {"name": "other", "principal": member("bob"), "executions": [],
             "history": true, "forbidden": [ids[0]]},
            // A member of org A puts org B's connection id in her subscribe bodies.
            {"name": "thief", "principal": member("mallory"), "executions": [],
             "borrow": {"client": "other", "executions": [ids[0]], "history": true}},
            {"name": "admin", "principal": admin("root"), "org": org_a_id,
             "executions": [ids[0]]},
            {"name": "resume", "principal": admin("root-2"), "org": org_a_id, "executions": [],
             "resume": {"execution": ids[1], "dropAfter": 100}},
        ],
    });
    let started = Instant::now();
    let mut client = NodeClient::spawn(&config);
    let deadline = Instant::now() + Duration::from_secs(60);
    assert_eq!(client.next(deadline, "clients ready")["event"], "ready");
    go(&mut simulate);

    let mut complete = BTreeSet::new();
    while complete.len() < 4 {
        let event = client.next(deadline, &format!("complete clients (have {complete:?})"));
        if event["event"] == "complete" {
            complete.insert(event["client"].as_str().unwrap().to_owned());
        }
    }
    let status = finish(simulate, RUN_TIMEOUT).status;
    assert!(status.success(), "simulate failed: {status:?}");
    // Let the final status changes through, and give any duplicate time to show up.
    std::thread::sleep(Duration::from_millis(1500));
    let summaries = client.summaries(6);
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
    // The borrowed connection id was accepted and meant nothing: the thief subscribed herself.
    let thief = &summaries["thief"];
    assert_eq!(
        thief["subscribeStatus"][format!("borrowed:{}", ids[0])],
        200
    );
    assert_eq!(thief["subscribeStatus"]["borrowed:history"], 200);
    assert_eq!(
        other["counts"],
        json!({}),
        "another scope's client received: {other}"
    );

    // Members: every sequence, admin-only lines as bare placeholders, no variables or state.
    let debug: Vec<u64> = expected.iter().copied().filter(|s| is_debug(*s)).collect();
    for name in ["all", "one"] {
        let member = &summaries[name];
        for (id, _) in member["logs"].as_object().unwrap() {
            assert_eq!(sequences(&member["redacted"][id]), debug, "{name} {id}");
        }
        assert_eq!(member["leaks"], json!([]), "{name}");
        assert_eq!(member["wholeAdminOnly"], 0, "{name}");
        for target in ["executionVariables", "executionState"] {
            assert!(member["counts"].get(target).is_none(), "{name}: {target}");
        }
    }
    // An admin: everything, each line once.
    let root = &summaries["admin"];
    assert_eq!(sequences(&root["logs"][&ids[0]]), expected, "admin");
    assert_eq!(root["redacted"], json!({}), "admin");
    assert_eq!(root["wholeAdminOnly"], debug.len(), "admin");
    for target in ["executionVariables", "executionState"] {
        assert!(root["counts"][target].as_u64() > Some(0), "admin: {target}");
    }
    // `afterSequence` catch-up carries the same shapes.
    let carol = member("carol");
    let caught_up = fetch_logs_after(&app.base, &carol, None, &ids[0], 0).await;
    assert_eq!(
        caught_up
            .iter()
            .map(|l| l["sequence"].as_u64().unwrap())
            .collect::<Vec<_>>(),
        expected
    );
    for line in &caught_up {
        let seq = line["sequence"].as_u64().unwrap();
        if is_debug(seq) {
            let keys: BTreeSet<&str> = line
                .as_object()
                .unwrap()
                .keys()
                .map(String::as_str)
                .collect();
            assert_eq!(
                keys,
                BTreeSet::from(["id", "sequence", "timestamp", "level", "redacted"]),
                "{line}"
            );
            assert_eq!(line["redacted"], true);
        } else {
            assert!(line["message"].is_string(), "{line}");
        }
    }
    let whole = fetch_logs_after(&app.base, &admin("root"), Some(org_a_id), &ids[0], 0).await;
    assert_eq!(whole.len(), expected.len());
    assert!(whole
        .iter()
        .all(|l| l["message"].is_string() && l.get("redacted").is_none()));

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

/// Waits for a streamed `executionHistoryUpdate` row of each of `ids` with status `status`.
fn wait_for_history_rows(client: &mut NodeClient, ids: &[String], status: &str, deadline: Instant) {
    let mut waiting: BTreeSet<&String> = ids.iter().collect();
    while !waiting.is_empty() {
        let event = client.next(deadline, &format!("{status} history rows of {waiting:?}"));
        let row = &event["row"];
        if event["event"] == "history" && row["status"] == status {
            waiting.retain(|id| row["executionId"] != id.as_str());
        }
    }
}

/// One shape, built by one function, for the live list row and the list API's row: a client
/// subscribed to `history:{scope}` through `POST /api/history/subscribe` receives a row per
/// change, and the last row it got for an execution that completed equals that execution's row
/// in `GET /api/executions`, key for key and value for value.
#[tokio::test(flavor = "multi_thread")]
async fn the_last_history_row_of_a_completed_execution_is_its_list_row() {
    let data = temp_dir();
    let (app, ctx) = crate::helpers::serve_in_process(data.path()).await;
    let store = ctx.store.clone();
    add_members(store.as_ref(), &[("alice", ORG_A)]).await;
    let alice = member("alice");
    let mut client = NodeClient::spawn(&json!({
        "base": app.base,
        "logsPerExecution": 0,
        "clients": [{"name": "history", "principal": alice, "executions": [], "history": true,
                     "streamHistory": true}],
    }));
    let deadline = Instant::now() + Duration::from_secs(60);
    assert_eq!(client.next(deadline, "client ready")["event"], "ready");

    // Three executions, each first Running, then finished in its own way.
    let started = chrono::Utc::now() - chrono::Duration::seconds(5);
    let at = |offset_ms: i64| {
        (started + chrono::Duration::milliseconds(offset_ms))
            .to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
    };
    let finished = [
        (
            "Success",
            json!({"formId": "form-7", "inputData": {"user": "ada"}}),
        ),
        (
            "Failed",
            json!({"errorMessage": "Boom: KeyError 'x'", "executedByName": ""}),
        ),
        (
            "CompletedWithErrors",
            json!({"inputData": null, "workflowName": ""}),
        ),
    ];
    let ids: Vec<String> = (0..finished.len())
        .map(|_| uuid::Uuid::new_v4().to_string())
        .collect();
    let running = |i: usize| {
        json!({
            "id": ids[i], "type": "execution", "scope": ORG_A, "executionId": ids[i],
            "workflowName": format!("workflow_{i}"), "executedBy": "a11ce",
            "executedByName": "alice", "status": "Running", "inputData": {"i": i},
            "startedAt": at(0),
        })
    };
    for i in 0..ids.len() {
        store
            .create(Container::Executions, running(i))
            .await
            .expect("write a running execution");
    }
    wait_for_history_rows(&mut client, &ids, "Running", deadline);
    for (i, (status, changes)) in finished.iter().enumerate() {
        let mut doc = running(i);
        doc["status"] = json!(status);
        doc["completedAt"] = json!(at(1234 + i as i64));
        doc["durationMs"] = json!(1234 + i);
        for (key, value) in changes.as_object().expect("changes") {
            doc[key] = value.clone();
        }
        store
            .upsert(Container::Executions, doc, None)
            .await
            .expect("finish the execution");
        wait_for_history_rows(&mut client, &ids[i..=i], status, deadline);
    }
    // Nothing left in the feed: no row can still be on its way.
    loop {
        let health = crate::helpers::health(&app.base).await;
        if health["changeFeed"]["ExecutionUpdates"]["pendingChanges"] == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the feed did not drain: {health}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let summary = client.summaries(1).remove("history").expect("a summary");

    let response = crate::helpers::client()
        .get(format!("{}/api/executions", app.base))
        .header(principal::HEADER, &alice)
        .send()
        .await
        .expect("list executions");
    assert_eq!(response.status().as_u16(), 200);
    let list: Value = response.json().await.expect("list JSON");
    let list_rows: BTreeMap<&str, &Value> = list["executions"]
        .as_array()
        .expect("executions")
        .iter()
        .map(|row| (row["executionId"].as_str().expect("executionId"), row))
        .collect();
    assert_eq!(list_rows.len(), ids.len(), "{list}");
    for (id, (status, _)) in ids.iter().zip(&finished) {
        let received = summary["historyRows"][id].as_array().expect("history rows");
        assert!(received.len() >= 2, "{id}: {received:?}");
        assert_eq!(received[0]["status"], "Running", "{id}");
        let last = received.last().expect("a last row");
        assert_eq!(last["status"], *status, "{id}");
        assert_eq!(
            last,
            list_rows[id.as_str()],
            "{id}: the live row differs from the list row"
        );
    }
    app.stop().await.expect("serve stops cleanly");
}

/// A tiny HTTP server for the browser page (another origin than the hub): serves the page and
/// the client bundle, and hands each `POST /report` body to the test.
/// The page is set after the origin is known (the hub must list that origin first).
fn page_server(bundle: PathBuf) -> (String, mpsc::Receiver<Value>, mpsc::Sender<String>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let origin = format!("http://{}", listener.local_addr().unwrap());
    let (tx, rx) = mpsc::channel();
    let (page_tx, page_rx) = mpsc::channel::<String>();
    std::thread::spawn(move || {
        let Ok(page) = page_rx.recv() else { return };
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
    (origin, rx, page_tx)
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
    let bundle = signalr_client().join("dist/browser/signalr.js");
    let (origin, reports, set_page) = page_server(bundle);
    // The page's origin is another than the hub's: serve must list it.
    let app = BIN.serve(data.path(), &["--cors-origin", &origin]);
    let (mut simulate, ids) = spawn_simulate(data.path(), 1, 5, "0");
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
        principal = json!(member("alice")),
    );
    set_page.send(page).unwrap();
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
    assert!(finish(simulate, RUN_TIMEOUT).status.success());
}

#[tokio::test(flavor = "multi_thread")]
async fn negotiate_subscribe_and_hub_refuse_bad_requests_with_json_errors() {
    let http = crate::helpers::client();
    let data = temp_dir();
    let unconfigured = BIN.serve(data.path(), &["--signalr", "none"]);
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
    let app = BIN.serve(data.path(), &[]);
    let base = &app.base;
    let alice = member("alice");

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
    )
    .expect("a token signed with the wrong key");
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

    // Subscribe: the body is optional and its connectionId selects nothing (the subscription is
    // the caller's); a malformed one is 400, an unknown execution 404, errors all JSON.
    let subscribe = |path: String, body: &'static str| {
        http.post(format!("{base}{path}"))
            .header("x-ms-client-principal", &alice)
            .header("content-type", "application/json")
            .body(body)
            .send()
    };
    let cases = [
        ("/api/history/subscribe", "{}", 200),
        ("/api/history/subscribe", r#"{"connectionId":"gone"}"#, 200),
        ("/api/history/subscribe", r#"{"connectionId":""}"#, 400),
        ("/api/history/subscribe", "[1]", 400),
        (
            "/api/executions/nope/subscribe",
            r#"{"connectionId":"c"}"#,
            404,
        ),
    ];
    for (path, body, status) in cases {
        let answer = subscribe(path.into(), body).await.unwrap();
        assert_eq!(answer.status().as_u16(), status, "{path} {body}");
        let answer: Value = answer.json().await.unwrap();
        if status == 200 {
            assert_eq!(answer["userId"], "alice", "{answer}");
            assert_eq!(answer["group"], format!("history:{ORG_A}"), "{answer}");
        } else {
            assert!(answer["error"].is_string(), "{path} {body}: {answer}");
        }
    }

    // CORS: a listed origin (the loopback development servers by default) is answered with
    // credentials allowed; any other origin gets no CORS header at all, preflight or not.
    let preflight = |origin: &'static str| {
        http.request(reqwest::Method::OPTIONS, format!("{base}/api/negotiate"))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header(
                "access-control-request-headers",
                "x-requested-with,x-signalr-user-agent",
            )
            .send()
    };
    let response = preflight("http://localhost:5173").await.unwrap();
    assert!(response.status().is_success(), "{}", response.status());
    let headers = response.headers();
    assert_eq!(
        headers["access-control-allow-origin"],
        "http://localhost:5173"
    );
    assert_eq!(headers["access-control-allow-credentials"], "true");
    let allowed = headers["access-control-allow-headers"].to_str().unwrap();
    assert!(allowed.contains("x-signalr-user-agent"), "{allowed}");
    let unlisted = preflight("http://elsewhere.test").await.unwrap();
    let simple = http
        .get(format!("{base}/api/health"))
        .header("origin", "http://elsewhere.test")
        .send()
        .await
        .unwrap();
    for response in [unlisted, simple] {
        let cors: Vec<_> = response
            .headers()
            .keys()
            .filter(|name| name.as_str().starts_with("access-control-"))
            .collect();
        assert!(cors.is_empty(), "an unlisted origin got {cors:?}");
    }
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
    let app = BIN.serve(data.path(), &["--signalr", &signalr]);
    let (mut simulate, _) = spawn_simulate(data.path(), 1, 3, "0");
    go(&mut simulate);
    assert!(finish(simulate, RUN_TIMEOUT).status.success());
    let health = crate::helpers::wait_for_health(
        &app.base,
        Duration::from_secs(20),
        "a failed attempt reported",
        |health| {
            health["changeFeed"]["LogStream"]["failedAttempts"]
                .as_u64()
                .unwrap_or(0)
                >= 1
        },
    )
    .await;
    let pump = &health["changeFeed"]["LogStream"];
    assert_eq!(pump["batches"], 0, "{pump}");
    assert!(
        pump["lastError"]
            .as_str()
            .unwrap()
            .contains("gave up after 3 attempts"),
        "{pump}"
    );
}

/// Handler mode (Azure): the host's replayed negotiate payload answers with the SignalR
/// Service's client URL and a token signed with the AccessKey; without the setting, 503.
#[tokio::test(flavor = "multi_thread")]
async fn handler_negotiate_uses_the_azure_connection_string() {
    let mut payload: Value =
        serde_json::from_slice(&crate::helpers::fixture("http_negotiate.json")).unwrap();
    payload["Data"]["req"]["Headers"]["x-ms-client-principal"] = json!([admin("admin-1")]);
    let body = serde_json::to_vec(&payload).unwrap();

    let data = temp_dir();
    let (app, _) = crate::helpers::BIN.handler(data.path());
    let (status, _, reply) = crate::handler::invoke(&app.base, "Negotiate", body.clone()).await;
    assert_eq!(status, 200);
    assert_eq!(reply["Outputs"]["res"]["statusCode"], 503, "{reply}");
    drop(app);

    let key = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789ABCDEFGH";
    let connection =
        format!("Endpoint=https://mysignalr.service.signalr.net;AccessKey={key};Version=1.0;");
    let (app, _) = crate::helpers::BIN.handler_with(
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
        let output = output(
            BIN.command()
                .args(["serve", "--listen", "127.0.0.1:0", "--data"])
                .arg(data.path())
                .args([flag, &value]),
        );
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{flag} {value}: accepted");
        assert!(stderr.contains(expected), "{flag}: {stderr}");
        assert!(!stderr.contains(secret), "{flag}: the key leaked: {stderr}");
    }
}
