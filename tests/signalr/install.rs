//! npm packages the tests drive, installed with `npm ci` from a committed `package-lock.json`
//! into a folder under `target/`, once (cached by the lock file's contents). Shared by the e2e
//! tests and `benches/signalr_latency.rs` through `#[path]`.

use std::path::PathBuf;
use std::process::Command;
use std::sync::Mutex;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `npm ci` of `tests/{source}` (its package.json and package-lock.json) into
/// `target/{target}`; returns that folder's `node_modules`.
pub fn npm_ci(source: &str, target: &str) -> PathBuf {
    static INSTALL: Mutex<()> = Mutex::new(());
    let _guard = INSTALL.lock().unwrap_or_else(|p| p.into_inner());
    let source = repo().join("tests").join(source);
    let dir = repo().join("target").join(target);
    let read = |file: &str| {
        std::fs::read(source.join(file))
            .unwrap_or_else(|e| panic!("{}/{file}: {e}", source.display()))
    };
    let (manifest, lock) = (read("package.json"), read("package-lock.json"));
    // Written after a good install only, so a failed one is retried next time.
    let marker = dir.join(".installed-lock");
    if std::fs::read(&marker).is_ok_and(|installed| installed == lock) {
        return dir.join("node_modules");
    }
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    std::fs::write(dir.join("package.json"), &manifest).expect("write package.json");
    std::fs::write(dir.join("package-lock.json"), &lock).expect("write package-lock.json");
    let output = Command::new("npm")
        .args(["ci", "--no-audit", "--no-fund"])
        .current_dir(&dir)
        .output()
        .unwrap_or_else(|e| panic!("npm (Node 20+) is needed by this test: {e}"));
    assert!(
        output.status.success(),
        "npm ci in {} failed (is registry.npmjs.org reachable?):\n{}",
        dir.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    std::fs::write(&marker, &lock).expect("write the install marker");
    dir.join("node_modules")
}

/// The `@microsoft/signalr` module directory (for `require`, and `dist/browser/signalr.js`).
pub fn signalr_client() -> PathBuf {
    npm_ci("signalr", "signalr-client")
        .join("@microsoft")
        .join("signalr")
}
