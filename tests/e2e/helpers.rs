//! What only the e2e tests share: the binary under test, fixtures, the journal sink's reader and
//! small HTTP helpers. Spawning, ports and principals are `bifrost_test_support`'s.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use std::time::Instant;

use bifrost_test_support::app::{bind_loopback, InProcess};
use bifrost_test_support::principal::Principal;
use bifrost_test_support::process::{lines, output, Binary};
use bifrost_workers::blobs::BlobLocation;
use bifrost_workers::realtime::SinkTarget;
use bifrost_workers::runtime::config::{store_url, RuntimeConfig};
use bifrost_workers::runtime::AppContext;
use bifrost_workers::serve::{App, ServeOptions};
use serde_json::Value;

/// The `bifrost-workers` binary cargo built for these tests.
pub const BIN: Binary = bifrost_test_support::binary!();

/// Serve mode inside the test process, as `serve --data DATA` runs it (the SQLite store and
/// blobs under `data`, the built-in hub), through the library's composition root; with the
/// context its functions share, for writing to its store directly.
pub async fn serve_in_process(data: &Path) -> (InProcess, AppContext) {
    let (listener, address) = bind_loopback().await;
    let config = RuntimeConfig {
        store: store_url(None, data),
        blobs: BlobLocation::Dir(data.join("blobs")),
        realtime: SinkTarget::BuiltInHub,
    };
    let options = ServeOptions {
        listen: address,
        config,
        demo: None,
        echo_to_stdout: false,
        dev_sign_in: true,
        cors_origins: Vec::new(),
    };
    let app = App::build(options, address)
        .await
        .unwrap_or_else(|e| panic!("building serve: {e:#}"));
    let ctx = app.ctx.clone();
    let server = InProcess::spawn(listener, |listener, shutdown| app.run(listener, shutdown));
    (server, ctx)
}

/// Every file below `dir`, recursively, sorted.
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).expect("read dir") {
        let path = entry.expect("dir entry").path();
        if path.is_dir() {
            files.extend(files_under(&path));
        } else {
            files.push(path);
        }
    }
    files.sort();
    files
}

pub fn temp_dir() -> tempfile::TempDir {
    tempfile::tempdir().expect("tempdir")
}

pub fn fixture(name: &str) -> Vec<u8> {
    let path: PathBuf = [
        env!("CARGO_MANIFEST_DIR"),
        "tests",
        "fixtures",
        "host",
        name,
    ]
    .iter()
    .collect();
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("client")
}

/// Every `(executionId, sequence)` in the journal's `executionLogs` messages, with repeats.
pub fn journal_logs(path: &Path) -> (BTreeMap<String, Vec<u64>>, BTreeSet<String>) {
    let mut logs: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    let mut results = BTreeSet::new();
    let text = std::fs::read_to_string(path).unwrap_or_default();
    // The server may be writing a line right now: only newline-terminated lines are complete.
    let complete = text.rfind('\n').map_or("", |end| &text[..=end]);
    for line in complete.lines() {
        let message: Value = serde_json::from_str(line).expect("journal line is JSON");
        // ExecutionUpdates' list rows go to the scope's history group, and every execution
        // message has an admins' twin in `execution-admin:{id}`: the members' group counts here.
        if message["group"]
            .as_str()
            .is_some_and(|g| g.starts_with("history:") || g.starts_with("execution-admin:"))
        {
            continue;
        }
        let argument = &message["arguments"][0];
        let execution = argument["executionId"].as_str().unwrap().to_owned();
        assert_eq!(message["group"], format!("execution:{execution}"));
        match message["target"].as_str().unwrap() {
            "executionLogs" => {
                let seqs = argument["logs"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|l| l["sequence"].as_u64().unwrap());
                logs.entry(execution).or_default().extend(seqs);
            }
            "executionResult" => {
                results.insert(execution);
            }
            _ => {}
        }
    }
    (logs, results)
}

/// `GET /api/health` of a running app, as JSON.
/// `GET /api/health` until `ready` holds for it (then that report), failing after `within`.
pub async fn wait_for_health(
    base: &str,
    within: Duration,
    what: &str,
    ready: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = std::time::Instant::now() + within;
    loop {
        let report = health(base).await;
        if ready(&report) {
            return report;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{what} not within {within:?}: {report}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

pub async fn health(base: &str) -> Value {
    client()
        .get(format!("{base}/api/health"))
        .send()
        .await
        .expect("health")
        .json()
        .await
        .expect("health JSON")
}

/// An EasyAuth (Static Web Apps) principal header for `user_id` with `roles`.
pub fn principal(user_id: &str, roles: &[&str]) -> String {
    roles
        .iter()
        .fold(Principal::member(user_id), |p, role| p.with_role(role))
        .encode()
}

/// Membership documents `(user, scope)`, written before `serve` starts (the store is a shared
/// SQLite file).
pub async fn seed_members(data: &Path, members: &[(&str, &str)]) {
    let store = bifrost_workers::store::open(
        &bifrost_workers::store::StoreUrl::Sqlite(data.join("bifrost.db")),
        std::sync::Arc::new(bifrost_workers::clock::SystemClock),
    )
    .await
    .expect("open store");
    for (user, scope) in members {
        store
            .upsert(
                bifrost_workers::store::Container::Entities,
                serde_json::json!({"id": format!("user-{user}"), "type": "user", "scope": "GLOBAL",
                       "userId": user, "email": format!("{user}@example.com"),
                       "isPlatformAdmin": false, "orgScopes": [scope]}),
                None,
            )
            .await
            .expect("seed membership");
    }
}

/// The embedded store of a data directory, opened beside the process that serves it (a reader
/// of its own, never queued behind that process's requests).
pub fn sqlite_store(data: &Path) -> bifrost_workers::store::sqlite::SqliteStore {
    bifrost_workers::store::sqlite::SqliteStore::open(
        &data.join("bifrost.db"),
        std::sync::Arc::new(bifrost_workers::clock::SystemClock),
    )
    .expect("open the store")
}

/// Writes `count` log lines of `bytes` each to `execution` in the embedded store of `data`, as
/// the engine would; with `pause_every`, a 20 ms pause after each that many (a stream, not one
/// burst).
pub async fn write_logs(
    data: &Path,
    execution: &str,
    count: u64,
    bytes: usize,
    pause_every: Option<u64>,
) {
    use bifrost_workers::store::Store;
    let store = sqlite_store(data);
    let message = "x".repeat(bytes);
    for sequence in 1..=count {
        let log = bifrost_workers::model::LogDoc {
            id: bifrost_workers::model::LogDoc::id_for(execution, sequence),
            execution_id: execution.to_owned(),
            timestamp: bifrost_workers::model::Timestamp::now(),
            level: "INFO".into(),
            message: message.clone(),
            data: None,
            sequence,
            ttl: None,
        };
        let mut doc = serde_json::to_value(&log).expect("a log document");
        doc["type"] = "log".into();
        store
            .upsert(bifrost_workers::store::Container::ExecutionData, doc, None)
            .await
            .expect("write a log");
        if pause_every.is_some_and(|every| sequence % every == 0) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// One execution in `scope`, created by `simulate` with no logs (a test writes its own); its id.
pub fn empty_execution(data: &Path, scope: &str) -> String {
    let created = BIN
        .command()
        .args(["simulate", "--data"])
        .arg(data)
        .args(["--executions", "1", "--logs", "0", "--scope", scope])
        .output()
        .expect("run simulate");
    assert!(created.status.success(), "{created:?}");
    String::from_utf8_lossy(&created.stdout)
        .lines()
        .next()
        .expect("the execution id")
        .trim()
        .to_owned()
}

/// `simulate` in `scope` holding its logs until `go`; returns it with the execution ids.
pub fn spawn_simulate(
    data: &Path,
    scope: &str,
    executions: u32,
    logs: u32,
    rate: &str,
) -> (Child, Vec<String>) {
    let mut command = BIN.command();
    command.args(["simulate", "--data"]).arg(data);
    spawn_simulate_with(command, scope, executions, logs, rate)
}

/// `spawn_simulate` with the store (and environment) that `command`, a `simulate …`, names.
pub fn spawn_simulate_with(
    mut command: Command,
    scope: &str,
    executions: u32,
    logs: u32,
    rate: &str,
) -> (Child, Vec<String>) {
    let mut child = command
        .args([
            "--executions",
            &executions.to_string(),
            "--logs",
            &logs.to_string(),
        ])
        .args(["--rate", rate, "--scope", scope, "--wait-for-stdin"])
        .env("RUST_LOG", "warn")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn simulate");
    let announced = lines(child.stdout.take().expect("stdout"));
    let ids: Vec<String> = (0..executions)
        .map(|_| {
            announced
                .recv_timeout(Duration::from_secs(30))
                .expect("an execution id on simulate's stdout within 30 s")
        })
        .collect();
    (child, ids)
}

/// Lets a `spawn_simulate` process write its logs.
pub fn go(simulate: &mut Child) {
    use std::io::Write;
    let stdin = simulate.stdin.as_mut().expect("simulate stdin");
    stdin.write_all(b"go\n").expect("start simulate");
    stdin.flush().expect("flush simulate stdin");
}

/// `serve --demo` on a free port (no SignalR override), with its stdout as lines.
pub fn spawn_demo(data: &Path) -> (Child, std::sync::mpsc::Receiver<String>) {
    let mut child = BIN
        .command()
        .args(["serve", "--demo", "--listen", "127.0.0.1:0", "--data"])
        .arg(data)
        .env("RUST_LOG", "warn")
        .env_remove("BIFROST_SIGNALR")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn serve --demo");
    let stdout = lines(child.stdout.take().expect("stdout"));
    (child, stdout)
}

/// A Node script that reports JSON lines (`{"event": …}`; `{"event": "error"}` fails the
/// test) and reads lines on stdin; killed on drop.
pub struct NodeScript {
    child: Child,
    stdin: Option<std::process::ChildStdin>,
    events: std::sync::mpsc::Receiver<Value>,
}

impl NodeScript {
    /// `node SCRIPT '<config JSON>'` with `env`.
    pub fn spawn(script: &Path, env: &[(&str, PathBuf)], config: &Value) -> NodeScript {
        let mut child = Command::new("node")
            .arg(script)
            .arg(config.to_string())
            .envs(env.iter().map(|(k, v)| (*k, v.as_os_str())))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("node (Node 20+) is needed for {}: {e}", script.display()));
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().expect("stdout");
        let (tx, events) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let event: Value = serde_json::from_str(&line)
                    .unwrap_or_else(|_| serde_json::json!({"event": "output", "line": line}));
                if tx.send(event).is_err() {
                    break;
                }
            }
        });
        NodeScript {
            child,
            stdin,
            events,
        }
    }

    /// The next event, failing the test on a script error or at `deadline`.
    pub fn next(&self, deadline: Instant, waiting_for: &str) -> Value {
        let left = deadline.saturating_duration_since(Instant::now());
        match self.events.recv_timeout(left) {
            Ok(event) if event["event"] == "error" => {
                panic!("{waiting_for}: script error: {}", event["error"])
            }
            Ok(event) => event,
            Err(_) => panic!("timed out waiting for {waiting_for}"),
        }
    }

    /// The next event named `name` within `timeout` (others are printed and passed over).
    pub fn expect(&self, name: &str, timeout: Duration) -> Value {
        let deadline = Instant::now() + timeout;
        loop {
            let event = self.next(deadline, name);
            if event["event"] == name {
                return event;
            }
            eprintln!("{}: {event}", self.child.id());
        }
    }

    /// Closes the script's stdin (scripts take that as "report and exit").
    pub fn close_stdin(&mut self) {
        drop(self.stdin.take());
    }

    /// Writes one line to the script's stdin.
    pub fn send_line(&mut self, line: &str) {
        use std::io::Write;
        let stdin = self.stdin.as_mut().expect("script stdin is open");
        writeln!(stdin, "{line}").expect("script stdin");
        stdin.flush().expect("flush script stdin");
    }
}

impl Drop for NodeScript {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `GET url` with `headers`, as JSON (panics on a transport error or a non-JSON body).
pub async fn get_json(url: &str, headers: &[(&str, &str)]) -> Value {
    let mut request = client().get(url);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request
        .send()
        .await
        .unwrap_or_else(|e| panic!("GET {url}: {e}"));
    response
        .json()
        .await
        .unwrap_or_else(|e| panic!("GET {url}: not JSON: {e}"))
}

/// `npm ci` of `tests/{source}` into the tools folder `{target}`; returns its `node_modules`.
/// A test that cannot get it fails (these tests have no meaning without their tools).
pub fn npm_ci(source: &str, target: &str) -> PathBuf {
    bifrost_test_support::npm::ci(
        target,
        &bifrost_test_support::paths::repo_file(&format!("tests/{source}")),
    )
    .unwrap_or_else(|why| panic!("npm packages of tests/{source} are needed: {why}"))
    .join("node_modules")
}

/// The pinned official `@microsoft/signalr` module folder.
pub fn signalr_client() -> PathBuf {
    bifrost_test_support::signalr::client_module()
        .unwrap_or_else(|why| panic!("the SignalR client is needed: {why}"))
}

/// `serve --listen 127.0.0.1:0 --data DATA EXTRA…` once it announced its address.
pub fn spawn_serve(data: &Path, extra: &[&str]) -> bifrost_test_support::process::Process {
    BIN.serve(data, extra)
}

/// The binary run to completion (bounded).
pub fn run(args: &[&str]) -> std::process::Output {
    BIN.run(args)
}

/// A finished run of the binary, its output as text.
pub struct Run {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// Runs `command` to completion (bounded) and keeps what it printed.
    pub fn of(command: &mut Command) -> Run {
        let output = output(command);
        Run {
            code: output.status.code(),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    /// Both outputs, for assertion messages.
    pub fn both(&self) -> String {
        format!("{}\n{}", self.stdout, self.stderr)
    }
}
