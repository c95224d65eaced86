//! `package`: the deploy root has exactly host.json, one folder per function and the binary, the
//! zip carries the same with the execute bit, and the packaged binary runs `handler`.

use std::collections::BTreeSet;
use std::io::Read;
use std::time::Duration;

use bifrost_test_support::ports::free_port;
use bifrost_test_support::process::wait_for_root;

use crate::helpers::{files_under, temp_dir, BIN};

#[test]
fn package_layout_zip_and_the_packaged_binary_answers() {
    let out = temp_dir();
    let result = BIN.run(&["package", "--out", out.path().to_str().unwrap()]);
    assert!(
        result.status.success(),
        "{}",
        String::from_utf8_lossy(&result.stderr)
    );

    let root = out.path().join("app");
    let mut found = BTreeSet::new();
    for entry in files_under(&root) {
        found.insert(
            entry
                .strip_prefix(&root)
                .unwrap()
                .to_string_lossy()
                .replace('\\', "/"),
        );
    }
    // Exactly the binary, host.json and one folder per registered function.
    let mut expected: BTreeSet<String> = ["bifrost-workers", "host.json"]
        .into_iter()
        .map(str::to_owned)
        .collect();
    for spec in bifrost_workers::registry::registry() {
        expected.insert(format!("{}/function.json", spec.name));
    }
    assert!(expected.contains("LogStream/function.json"));
    assert_eq!(found, expected, "the app root holds exactly these files");
    // The same bytes as the checked-in files: host.json at the repository root, the function
    // folders under functions/.
    let repository = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    for (in_app, checked_in) in [
        ("host.json", "host.json"),
        (
            "LogStream/function.json",
            "functions/LogStream/function.json",
        ),
        ("Health/function.json", "functions/Health/function.json"),
    ] {
        assert_eq!(
            std::fs::read(root.join(in_app)).unwrap(),
            std::fs::read(repository.join(checked_in)).unwrap(),
            "{in_app}"
        );
    }

    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(root.join("bifrost-workers"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o111, 0o111, "binary must be executable");
    }

    let zip_file = std::fs::File::open(out.path().join("bifrost-workers.zip")).unwrap();
    let mut archive = zip::ZipArchive::new(zip_file).unwrap();
    let names: BTreeSet<String> = archive
        .file_names()
        .map(|n| n.unwrap().into_owned())
        .collect();
    assert_eq!(names, expected);
    let mut binary = archive.by_name("bifrost-workers").unwrap();
    assert_eq!(binary.unix_mode().map(|m| m & 0o777), Some(0o755));
    let mut bytes = Vec::new();
    binary.read_to_end(&mut bytes).unwrap();
    assert_eq!(bytes, std::fs::read(root.join("bifrost-workers")).unwrap());

    // The packaged binary starts as the host would start it, from the app root.
    let port = free_port();
    let data = temp_dir();
    let mut child = std::process::Command::new(root.join("bifrost-workers"))
        .arg("handler")
        .current_dir(&root)
        .env("FUNCTIONS_CUSTOMHANDLER_PORT", port.to_string())
        .env("BIFROST_DATA", data.path())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let ready = wait_for_root(port, Duration::from_secs(20));
    let _ = child.kill();
    let _ = child.wait();
    assert!(ready, "packaged binary did not answer GET /");
}

#[test]
fn package_refuses_a_binary_that_cannot_run_in_azure() {
    let out = temp_dir();
    let fake = out.path().join("not-elf");
    std::fs::write(&fake, b"#!/bin/sh\necho hi\n").unwrap();
    let result = BIN.run(&[
        "package",
        "--out",
        out.path().to_str().unwrap(),
        "--binary",
        fake.to_str().unwrap(),
    ]);
    assert!(!result.status.success());
    assert!(String::from_utf8_lossy(&result.stderr).contains("not a Linux (ELF) executable"));
}
