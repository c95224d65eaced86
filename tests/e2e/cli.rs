//! The command-line contract: help for every subcommand, clear errors and non-zero exits.

use std::process::Command;

use bifrost_test_support::ports::free_port;
use bifrost_test_support::process::output;

use crate::helpers::{temp_dir, BIN};

#[test]
fn every_subcommand_has_help() {
    for sub in ["handler", "serve", "simulate", "functions", "ensure"] {
        let out = BIN.run(&[sub, "--help"]);
        assert!(out.status.success(), "{sub} --help failed");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains("Usage: bifrost-workers"), "{sub}: {text}");
    }
    let out = BIN.run(&["serve", "--help"]);
    let text = String::from_utf8_lossy(&out.stdout);
    for flag in ["--listen", "--data", "--demo", "--store"] {
        assert!(text.contains(flag), "serve --help lacks {flag}");
    }
    let out = BIN.run(&["simulate", "--help"]);
    let text = String::from_utf8_lossy(&out.stdout);
    for flag in ["--data", "--executions", "--logs", "--rate", "--scope"] {
        assert!(text.contains(flag), "simulate --help lacks {flag}");
    }
}

#[test]
fn bad_settings_are_one_clear_error_and_a_non_zero_exit() {
    let data = temp_dir();
    let data_arg = data.path().to_str().unwrap();
    let cases: &[(&[&str], &str)] = &[
        (
            &["simulate", "--data", data_arg, "--scope", "org-123"],
            "invalid scope",
        ),
        (&["simulate", "--data", data_arg, "--rate=-5"], "not a rate"),
        (
            &["simulate", "--data", data_arg, "--rate", "fast"],
            "not a rate",
        ),
        (
            &["simulate", "--data", data_arg, "--executions", "0"],
            "--executions",
        ),
        (&["serve", "--listen", "not-an-address"], "--listen"),
        (&["serve", "--store", "postgres://x"], "unknown store"),
        (&["serve", "--store", "sqlite:"], "needs a path"),
        (
            &["serve", "--data", data_arg, "--signalr", "carrier-pigeon"],
            "invalid real-time target",
        ),
        (&["functions"], "required"),
        (&["no-such-command"], "unrecognized subcommand"),
    ];
    for (args, needle) in cases {
        let out = BIN.run(args);
        assert!(!out.status.success(), "{args:?} should fail");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(needle), "{args:?}: {stderr}");
    }
}

#[test]
fn handler_rejects_a_bad_port_and_an_unusable_store() {
    let out = output(
        Command::new(BIN.path())
            .arg("handler")
            .env("FUNCTIONS_CUSTOMHANDLER_PORT", "eighty"),
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--port"));

    // A data directory that cannot be created (under a regular file).
    let dir = temp_dir();
    let file = dir.path().join("file");
    std::fs::write(&file, b"x").unwrap();
    let out = output(
        Command::new(BIN.path())
            .arg("handler")
            .env("FUNCTIONS_CUSTOMHANDLER_PORT", free_port().to_string())
            .env("BIFROST_DATA", file.join("sub")),
    );
    assert!(
        !out.status.success(),
        "must not exit 0: the host would not restart it"
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("opening store"));
}

#[test]
fn checked_in_host_files_and_functions_folder_match_the_registry() {
    let root = env!("CARGO_MANIFEST_DIR");
    let out = BIN.run(&["functions", "--check", root]);
    assert!(
        out.status.success(),
        "host.json, local.settings.json.example or functions/ is stale: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The layout itself: the host files on top, only function folders under functions/.
    let root = std::path::Path::new(root);
    assert!(root.join("host.json").is_file());
    assert!(root.join("local.settings.json.example").is_file());
    for entry in std::fs::read_dir(root.join("functions")).unwrap() {
        let path = entry.unwrap().path();
        assert!(
            path.join("function.json").is_file(),
            "{} is not a function folder",
            path.display()
        );
    }
    let registered = bifrost_workers::registry::registry().len();
    assert_eq!(
        std::fs::read_dir(root.join("functions")).unwrap().count(),
        registered,
        "one folder per registered function"
    );
}

#[test]
fn functions_check_notices_a_changed_file() {
    let dir = temp_dir();
    let path = dir.path().to_str().unwrap();
    assert!(BIN.run(&["functions", "--write", path]).status.success());
    assert!(BIN.run(&["functions", "--check", path]).status.success());
    let host = dir.path().join("host.json");
    let edited = std::fs::read_to_string(&host)
        .unwrap()
        .replace("00:10:00", "00:05:00");
    std::fs::write(&host, edited).unwrap();
    let out = BIN.run(&["functions", "--check", path]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("host.json differs"));
    // A function.json is checked where the repository keeps it.
    let function = dir.path().join("functions/LogStream/function.json");
    assert!(function.is_file());
    std::fs::remove_file(&function).unwrap();
    let out = BIN.run(&["functions", "--check", path]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("functions/LogStream/function.json"));
}

#[test]
fn simulate_prints_each_execution_id() {
    let data = temp_dir();
    let out = BIN.run(&[
        "simulate",
        "--data",
        data.path().to_str().unwrap(),
        "--executions",
        "3",
        "--logs",
        "5",
        "--rate",
        "0",
        "--scope",
        "org-0f4a6f6c-1111-4c2e-9a57-3d2b8f1f0a01",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let ids: Vec<_> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    assert_eq!(ids.len(), 3);
    for id in ids {
        assert!(uuid::Uuid::parse_str(&id).is_ok(), "{id}");
    }
}
