//! Python virtual environments with pinned PyPI packages, created once under the tools directory
//! and reused while their package list stays the same: the legacy seeding script's Azure SDKs
//! and the infra test's Bicep parser.

use std::path::PathBuf;
use std::process::Command;
use std::sync::Mutex;

use crate::paths::tools_dir;
use crate::tools::{reach_registry, run_or_panic, Unavailable};

/// The file in a venv that lists what was installed into it, written last.
const MARKER: &str = ".installed";

/// The python of venv `name` with `packages` installed (pip requirement strings, pinned).
/// `Unavailable` only when PyPI cannot be reached for an install still to do.
pub fn venv(name: &str, packages: &[&str]) -> Result<PathBuf, Unavailable> {
    // Tests of one binary run in parallel threads: one install at a time.
    static INSTALL: Mutex<()> = Mutex::new(());
    let _turn = INSTALL.lock().unwrap_or_else(|p| p.into_inner());
    let dir = tools_dir().join(format!("venv-{name}"));
    let python = dir.join("bin").join("python");
    let wanted = packages.join("\n");
    let marker = dir.join(MARKER);
    if std::fs::read_to_string(&marker).is_ok_and(|installed| installed == wanted) {
        return Ok(python);
    }
    reach_registry("pypi.org", &format!("{packages:?}"))?;
    if !python.exists() {
        run_or_panic(
            Command::new("python3").args(["-m", "venv"]).arg(&dir),
            "python3 -m venv (.ci/run installs python3-venv)",
        );
    }
    run_or_panic(
        Command::new(&python)
            .args([
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
            ])
            .args(packages),
        &format!("pip install {packages:?}"),
    );
    std::fs::write(&marker, wanted).unwrap_or_else(|e| panic!("writing {}: {e}", marker.display()));
    Ok(python)
}
