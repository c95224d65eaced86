//! Installs the pinned official SignalR client with `npm ci` into `target/signalr-client`, once
//! (cached by the lock file's contents). Shared by `tests/e2e/signalr.rs` and
//! `benches/signalr_latency.rs` through `#[path]`.

use std::path::PathBuf;
use std::process::Command;
use std::sync::Mutex;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The `@microsoft/signalr` module directory (for `require`, and `dist/browser/signalr.js`).
pub fn signalr_client() -> PathBuf {
    static INSTALL: Mutex<()> = Mutex::new(());
    let _guard = INSTALL.lock().unwrap_or_else(|p| p.into_inner());
    let source = repo().join("tests").join("signalr");
    let dir = repo().join("target").join("signalr-client");
    let lock =
        std::fs::read(source.join("package-lock.json")).expect("tests/signalr/package-lock.json");
    let module = dir.join("node_modules").join("@microsoft").join("signalr");
    let installed_lock = std::fs::read(dir.join("package-lock.json")).unwrap_or_default();
    if module.join("package.json").is_file() && installed_lock == lock {
        return module;
    }
    std::fs::create_dir_all(&dir).expect("create target/signalr-client");
    std::fs::copy(source.join("package.json"), dir.join("package.json"))
        .expect("copy package.json");
    std::fs::write(dir.join("package-lock.json"), &lock).expect("write package-lock.json");
    let output = Command::new("npm")
        .args(["ci", "--no-audit", "--no-fund"])
        .current_dir(&dir)
        .output()
        .unwrap_or_else(|e| panic!("npm (Node 20+) is needed for the SignalR tests: {e}"));
    assert!(
        output.status.success(),
        "npm ci in {} failed (is registry.npmjs.org reachable?):\n{}",
        dir.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    module
}
