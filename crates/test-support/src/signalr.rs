//! The official `@microsoft/signalr` client, pinned by `tests/signalr/package-lock.json`, for the
//! tests and benches that drive it from Node (`tests/signalr/*.cjs`) or a browser.

use std::path::PathBuf;

use crate::paths::repo_file;
use crate::tools::Unavailable;

/// The installed `@microsoft/signalr` module folder (for `require`, and
/// `dist/browser/signalr.js` for a page).
pub fn client_module() -> Result<PathBuf, Unavailable> {
    let dir = crate::npm::ci("signalr-client", &repo_file("tests/signalr"))?;
    Ok(dir.join("node_modules").join("@microsoft").join("signalr"))
}

/// A Node script of `tests/signalr`, by file name.
pub fn script(name: &str) -> PathBuf {
    repo_file("tests/signalr").join(name)
}
