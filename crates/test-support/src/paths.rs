//! Where things are: the repository (its fixtures and scripts) and the scratch directory under
//! the build's target directory where external tools are installed once and reused.

use std::path::{Path, PathBuf};

/// The bifrost-workers checkout this crate belongs to.
pub fn repo_root() -> PathBuf {
    // This crate lives at `crates/test-support` of the repository.
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("the repository root exists")
}

/// A file of the repository, by its path from the root (`tests/legacy/seed.py`).
pub fn repo_file(relative: &str) -> PathBuf {
    repo_root().join(relative)
}

/// `<target>/tmp/test-tools`: the target directory of the running test or bench (so
/// `CARGO_TARGET_DIR` is honoured), found from the executable, which cargo puts in
/// `<target>/<profile>/deps` (tests, benches) or `<target>/<profile>/examples`.
pub fn tools_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("the test executable's path");
    let target = exe
        .ancestors()
        .nth(3)
        .map(Path::to_path_buf)
        .unwrap_or_else(|| repo_root().join("target"));
    let dir = target.join("tmp").join("test-tools");
    std::fs::create_dir_all(&dir)
        .unwrap_or_else(|e| panic!("cannot create {}: {e}", dir.display()));
    dir
}
