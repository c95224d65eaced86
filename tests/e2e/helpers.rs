//! What only the e2e tests share: the binary under test, fixtures, the journal sink's reader and
//! small HTTP helpers. Spawning, ports and principals are `bifrost_test_support`'s.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use bifrost_test_support::app::{bind_loopback, InProcess};
use bifrost_test_support::process::Binary;
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
