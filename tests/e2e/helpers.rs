//! Spawning the real binary: `serve` on port 0 (address read from its first stdout line) and
//! `handler` on a free port, killed when the handle drops.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

pub const BIN: &str = env!("CARGO_BIN_EXE_bifrost-workers");

pub struct App {
    pub child: Child,
    pub base: String,
}

impl App {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGKILL: no chance to finish anything (a crash).
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM, then wait up to `timeout` for a clean exit; returns the exit status.
    pub fn terminate(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.pid().to_string())
            .status();
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

impl Drop for App {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Keeps reading a child's stream so it never blocks on a full pipe.
fn drain(reader: impl std::io::Read + Send + 'static) {
    std::thread::spawn(move || {
        let mut lines = BufReader::new(reader).lines();
        while let Some(Ok(_)) = lines.next() {}
    });
}

pub fn spawn_serve(data: &Path, extra: &[&str]) -> App {
    let mut child = Command::new(BIN)
        .args(["serve", "--listen", "127.0.0.1:0", "--data"])
        .arg(data)
        .args(extra)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn serve");
    let stdout = child.stdout.take().expect("stdout");
    let mut reader = BufReader::new(stdout);
    let mut first = String::new();
    reader.read_line(&mut first).expect("read first line");
    let base = first
        .trim()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("unexpected first line {first:?}"))
        .to_owned();
    drain(reader.into_inner());
    if let Some(stderr) = child.stderr.take() {
        drain(stderr);
    }
    App { child, base }
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// Starts `handler` and returns once `GET /` answers, with the time that took from spawn.
pub fn spawn_handler(data: &Path) -> (App, Duration) {
    spawn_handler_with(data, &[])
}

pub fn spawn_handler_with(data: &Path, env: &[(&str, &str)]) -> (App, Duration) {
    let port = free_port();
    let started = Instant::now();
    let mut child = Command::new(BIN)
        .arg("handler")
        .env("FUNCTIONS_CUSTOMHANDLER_PORT", port.to_string())
        .env("BIFROST_DATA", data)
        .env("RUST_LOG", "warn")
        .envs(env.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn handler");
    drain(child.stdout.take().expect("stdout"));
    drain(child.stderr.take().expect("stderr"));
    let ready = wait_for_root(port, Duration::from_secs(20));
    let elapsed = started.elapsed();
    assert!(ready, "handler did not answer GET / within 20 s");
    (
        App {
            child,
            base: format!("http://127.0.0.1:{port}"),
        },
        elapsed,
    )
}

/// Polls `GET /` with a raw socket like the host does (every few ms; any response = ready).
pub fn wait_for_root(port: u16, timeout: Duration) -> bool {
    use std::io::{Read, Write};
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if let Ok(mut stream) = std::net::TcpStream::connect(("127.0.0.1", port)) {
            let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
            let request = "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
            let mut response = String::new();
            if stream.write_all(request.as_bytes()).is_ok()
                && stream.read_to_string(&mut response).is_ok()
                && response.starts_with("HTTP/1.1 ")
            {
                return true;
            }
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    false
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

/// Runs the binary to completion.
pub fn run(args: &[&str]) -> std::process::Output {
    Command::new(BIN)
        .args(args)
        .env("RUST_LOG", "warn")
        .output()
        .expect("run binary")
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
        // ExecutionUpdates' list rows go to the scope's history group; only execution groups count here.
        if message["group"]
            .as_str()
            .is_some_and(|g| g.starts_with("history:"))
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
    use base64::Engine;
    let body = serde_json::json!({"identityProvider": "aad", "userId": user_id,
                      "userDetails": format!("{user_id}@example.com"), "userRoles": roles});
    base64::engine::general_purpose::STANDARD.encode(body.to_string())
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

/// `simulate` in `scope` holding its logs until `go`; returns it with the execution ids.
pub fn spawn_simulate(
    data: &Path,
    scope: &str,
    executions: u32,
    logs: u32,
    rate: &str,
) -> (Child, Vec<String>) {
    let mut child = Command::new(BIN)
        .args(["simulate", "--data"])
        .arg(data)
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
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let ids: Vec<String> = (0..executions)
        .map(|_| lines.next().expect("an execution id").expect("stdout"))
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
    let mut child = Command::new(BIN)
        .args(["serve", "--demo", "--listen", "127.0.0.1:0", "--data"])
        .arg(data)
        .env("RUST_LOG", "warn")
        .env_remove("BIFROST_SIGNALR")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn serve --demo");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    (child, rx)
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

    /// Writes one line to the script's stdin.
    pub fn send_line(&mut self, line: &str) {
        use std::io::Write;
        let stdin = self.stdin.as_mut().expect("script stdin is open");
        writeln!(stdin, "{line}").expect("script stdin");
        stdin.flush().expect("flush script stdin");
    }

    pub fn close_stdin(&mut self) {
        drop(self.stdin.take());
    }

    pub fn wait(&mut self) {
        let _ = self.child.wait();
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
