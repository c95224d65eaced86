//! How soon after spawn does `handler` answer the host's readiness probe (`GET /`)?
//! Packages the release binary as for deployment (`package`), takes the binary out of the zip,
//! spawns that one repeatedly, polls `GET /` every millisecond like the host does (it polls
//! every 25 ms), prints the distribution and the binary's and zip's sizes, and writes
//! `bench/REPORT.md`'s startup section.
//!
//! Run: `cargo bench --bench startup`

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[path = "common/report.rs"]
#[allow(dead_code)]
mod report;

const RUNS: usize = 30;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

fn answered(port: u16) -> bool {
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    let mut response = String::new();
    stream
        .write_all(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        .is_ok()
        && stream.read_to_string(&mut response).is_ok()
        && response.starts_with("HTTP/1.1 200")
}

/// Runs `package`, extracts `bifrost-workers` from the zip (mode 755, as the host gets it);
/// returns its path and the binary's and zip's sizes in bytes.
fn binary_from_the_zip() -> (std::path::PathBuf, (u64, u64)) {
    let out = std::env::temp_dir().join(format!("bifrost-startup-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    let status = Command::new(env!("CARGO_BIN_EXE_bifrost-workers"))
        .args(["package", "--out"])
        .arg(&out)
        .stdout(Stdio::null())
        .status()
        .expect("run package");
    assert!(status.success(), "package failed");
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

fn main() {
    let (binary, sizes) = binary_from_the_zip();
    let binary = binary.as_path();
    let mut timings = Vec::with_capacity(RUNS);
    for _ in 0..RUNS {
        let data = tempfile::tempdir().expect("tempdir");
        let port = free_port();
        let started = Instant::now();
        let mut child = Command::new(binary)
            .arg("handler")
            .env("FUNCTIONS_CUSTOMHANDLER_PORT", port.to_string())
            .env("BIFROST_DATA", data.path())
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn handler");
        while !answered(port) {
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "no answer within 30 s"
            );
            std::thread::sleep(Duration::from_millis(1));
        }
        timings.push(started.elapsed());
        let _ = child.kill();
        let _ = child.wait();
    }
    timings.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let (p50, p90, max) = (timings[RUNS / 2], timings[RUNS * 9 / 10], timings[RUNS - 1]);
    println!(
        "handler GET / after spawn, {RUNS} runs: p50 {:.1} ms, p90 {:.1} ms, max {:.1} ms",
        ms(p50),
        ms(p90),
        ms(max)
    );

    let mib = |bytes: u64| bytes as f64 / 1024.0 / 1024.0;
    let section = format!(
        "## Startup: `GET /` after process start (`handler`)\n\n\
         `cargo bench --bench startup` ({RUNS} spawns of the binary taken out of the deploy zip that `package` \
         builds from the release binary, `GET /` polled every 1 ms; the host polls every 25 ms and gives up \
         after 30 s):\n\n\
         | p50 | p90 | max |\n|---|---|---|\n| {:.1} ms | {:.1} ms | {:.1} ms |\n\n\
         Release binary {:.1} MiB, deploy zip {:.1} MiB (profile: fat LTO, one codegen unit, stripped).\n",
        ms(p50),
        ms(p90),
        ms(max),
        mib(sizes.0),
        mib(sizes.1)
    );
    report::write_section("## Startup:", &section);
}
