//! How soon after spawn does `handler` answer the host's readiness probe (`GET /`)?
//! Packages the release binary as for deployment (`package`), takes the binary out of the zip,
//! spawns that one repeatedly, polls `GET /` every millisecond like the host does (it polls
//! every 25 ms), prints the distribution and the binary's and zip's sizes, and writes
//! `bench/REPORT.md`'s startup section.
//!
//! Run: `cargo bench --bench startup`

use std::time::Duration;

use bifrost_test_support::bench;
use bifrost_test_support::process::Binary;

const RUNS: usize = 30;

/// Runs `package`, extracts `bifrost-workers` from the zip (mode 755, as the host gets it);
/// returns its path and the binary's and zip's sizes in bytes.
fn binary_from_the_zip() -> (std::path::PathBuf, (u64, u64)) {
    let out = std::env::temp_dir().join(format!("bifrost-startup-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    let packaged =
        bifrost_test_support::binary!().run(&["package", "--out", &out.to_string_lossy()]);
    assert!(packaged.status.success(), "package failed: {packaged:?}");
    let zip_path = out.join("bifrost-workers.zip");
    let zip_bytes = std::fs::metadata(&zip_path).expect("zip").len();
    let mut archive =
        zip::ZipArchive::new(std::fs::File::open(&zip_path).expect("open zip")).expect("read zip");
    let mut entry = archive
        .by_name("bifrost-workers")
        .expect("binary in the zip");
    let binary = out.join("extracted-bifrost-workers");
    let mut file = std::fs::File::create(&binary).expect("extract");
    std::io::copy(&mut entry, &mut file).expect("extract binary");
    drop(file);
    use std::os::unix::fs::PermissionsExt;
    let mode = entry.unix_mode().unwrap_or(0o755);
    assert_eq!(mode & 0o777, 0o755, "the zip must carry mode 755");
    std::fs::set_permissions(&binary, std::fs::Permissions::from_mode(mode)).expect("chmod");
    let binary_bytes = std::fs::metadata(&binary).expect("binary").len();
    (binary, (binary_bytes, zip_bytes))
}

/// p50, p90 and max of `RUNS` spawns → `GET /` answered, each with the store `data` gives it.
fn spawns(binary: Binary, mut data: impl FnMut() -> tempfile::TempDir) -> [Duration; 3] {
    let mut timings = Vec::with_capacity(RUNS);
    for _ in 0..RUNS {
        let dir = data();
        // Spawn → the first answer to `GET /` (polled every 1 ms); killed when dropped.
        let (handler, elapsed) = binary.handler(dir.path());
        drop(handler);
        timings.push(elapsed);
    }
    timings.sort();
    [timings[RUNS / 2], timings[RUNS * 9 / 10], timings[RUNS - 1]]
}

fn main() {
    let (path, sizes) = binary_from_the_zip();
    // `Binary` holds a `&'static str` (its usual value is a compile-time path); this one lives
    // for the whole run.
    let binary = Binary(Box::leak(
        path.to_string_lossy().into_owned().into_boxed_str(),
    ));
    // A new store file each time (the handler creates it: SQLite's journal switch and first WAL
    // write sync the file, its journal and the directory, six fsyncs).
    let fresh = spawns(binary, || tempfile::tempdir().expect("tempdir"));
    // The store file already there (a restart): created once by a first start, then reused by
    // copying it into each run's directory, so every run opens the same existing file.
    let template = tempfile::tempdir().expect("tempdir");
    drop(binary.handler(template.path()));
    let existing = spawns(binary, || {
        let dir = tempfile::tempdir().expect("tempdir");
        for entry in std::fs::read_dir(template.path()).expect("template") {
            let entry = entry.expect("entry");
            std::fs::copy(entry.path(), dir.path().join(entry.file_name())).expect("copy store");
        }
        dir
    });
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    for (name, [p50, p90, max]) in [("new store file", fresh), ("existing store file", existing)] {
        println!(
            "handler GET / after spawn ({name}), {RUNS} runs: p50 {:.1} ms, p90 {:.1} ms, max {:.1} ms",
            ms(p50),
            ms(p90),
            ms(max)
        );
    }
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let load = load.split_whitespace().next().unwrap_or("?");

    let mib = |bytes: u64| bytes as f64 / 1024.0 / 1024.0;
    let row = |name: &str, [p50, p90, max]: [Duration; 3]| {
        format!(
            "| {name} | {:.1} ms | {:.1} ms | {:.1} ms |\n",
            ms(p50),
            ms(p90),
            ms(max)
        )
    };
    let section = format!(
        "## Startup: `GET /` after process start (`handler`)\n\n\
         `cargo bench --bench startup` ({RUNS} spawns per row of the binary taken out of the deploy zip that \
         `package` builds from the release binary, `GET /` polled every 1 ms; the host polls every 25 ms and \
         gives up after 30 s; load average {load} at the end). The handler listens first and answers once its \
         store is open, so the time includes opening the SQLite store: creating a new file costs six fsyncs \
         (the switch to WAL through a rollback journal, then the first WAL write), whose time is the disk's \
         (about 1 ms each on a quiet disk, 5–30 ms each while other processes write); an existing file costs \
         none.\n\n\
         | store | p50 | p90 | max |\n|---|---|---|---|\n{}{}\n\
         Release binary {:.1} MiB, deploy zip {:.1} MiB (profile: fat LTO, one codegen unit, stripped).\n",
        row("new store file", fresh),
        row("existing store file (a restart)", existing),
        mib(sizes.0),
        mib(sizes.1)
    );
    bench::write_section("## Startup:", &section);
}
