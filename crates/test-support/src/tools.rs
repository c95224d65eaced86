//! External tools a test needs (npm and PyPI packages, system programs): how a test gets them,
//! and what it does when it cannot.
//!
//! The rule: a package registry that cannot be reached makes the tool `Unavailable`; a test
//! that `require`s it then fails under CI (`CI=true`) and prints a clear `SKIP` line elsewhere,
//! so a laptop without network still runs everything else but CI can never go green without
//! having run it. Anything else that goes wrong while installing (a failed `npm`, a broken
//! venv, a missing system program that `.ci/run` installs) fails the test at once.

use std::net::{TcpStream, ToSocketAddrs};
use std::process::{Command, Output};
use std::time::Duration;

/// A tool could not be had on this machine, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unavailable(pub String);

impl std::fmt::Display for Unavailable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Unavailable {}

/// Whether this run is CI: `CI` is set to anything but empty, `0` or `false` (CI services set
/// `CI=true`).
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|value| {
        let value = value.trim();
        !(value.is_empty() || value == "0" || value.eq_ignore_ascii_case("false"))
    })
}

/// The tool, or `None` after printing why this test is skipped. Under CI a missing tool fails
/// the test instead: CI must never report green for a test that did not run.
pub fn require<T>(tool: Result<T, Unavailable>) -> Option<T> {
    decide(in_ci(), tool)
}

fn decide<T>(in_ci: bool, tool: Result<T, Unavailable>) -> Option<T> {
    match tool {
        Ok(tool) => Some(tool),
        Err(why) => {
            let test = running_test();
            assert!(
                !in_ci,
                "{test} needs a tool this machine cannot get, and CI must run it: {why}"
            );
            eprintln!("SKIP {test}: {why}");
            None
        }
    }
}

/// The test's name (the harness names each test's thread after it), or the executable's for a
/// bench or example that runs on its main thread.
fn running_test() -> String {
    match std::thread::current().name() {
        Some(name) if name != "main" => name.to_owned(),
        _ => std::env::current_exe()
            .ok()
            .and_then(|exe| exe.file_stem().map(|s| s.to_string_lossy().into_owned()))
            .unwrap_or_else(|| "this run".to_owned()),
    }
}

/// Whether `host:443` answers a TCP connect within 5 s (a registry's reachability).
pub fn reachable(host: &str) -> bool {
    (host, 443)
        .to_socket_addrs()
        .ok()
        .and_then(|mut addrs| addrs.next())
        .is_some_and(|addr| TcpStream::connect_timeout(&addr, Duration::from_secs(5)).is_ok())
}

/// `Unavailable` unless the registry at `host` can be reached.
pub fn reach_registry(host: &str, installing: &str) -> Result<(), Unavailable> {
    if reachable(host) {
        Ok(())
    } else {
        Err(Unavailable(format!(
            "{host} cannot be reached, so {installing} cannot be installed"
        )))
    }
}

/// Runs `command` to completion; panics with `what`, the status and both streams unless it
/// succeeds (a broken install is a failure, never a skip).
pub fn run_or_panic(command: &mut Command, what: &str) -> Output {
    let output = command
        .output()
        .unwrap_or_else(|e| panic!("{what}: cannot start it: {e}"));
    assert!(
        output.status.success(),
        "{what} failed ({}):\n{}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

/// A system program the tests need at `path` (installed by `.ci/run`, never by a test).
pub fn system_program(path: &str, package: &str) -> std::path::PathBuf {
    let path = std::path::PathBuf::from(path);
    assert!(
        path.exists(),
        "{} is needed: `apt-get install -y {package}` as root (.ci/run does it)",
        path.display()
    );
    path
}

/// Headless Chromium for the browser tests.
pub fn chromium() -> std::path::PathBuf {
    system_program("/usr/bin/chromium", "chromium")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tool_at_hand_is_used_wherever_the_tests_run() {
        assert_eq!(decide(false, Ok(7)), Some(7));
        assert_eq!(decide(true, Ok(7)), Some(7));
    }

    #[test]
    fn a_missing_tool_skips_outside_ci() {
        assert_eq!(
            decide::<u8>(false, Err(Unavailable("offline".into()))),
            None
        );
    }

    #[test]
    #[should_panic(expected = "CI must run it: offline")]
    fn a_missing_tool_fails_in_ci() {
        decide::<u8>(true, Err(Unavailable("offline".into())));
    }
}
