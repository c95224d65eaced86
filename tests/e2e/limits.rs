//! Both servers under hostile clients, over real sockets: half-open requests are cut at the
//! header read timeout while normal clients keep being answered, and `serve` on a full disk
//! names the cause and never claims to listen.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use bifrost_test_support::process::{finish, RUN_TIMEOUT};
use bifrost_test_support::tools::{require, Unavailable};
use bifrost_workers::runtime::server::ServerLimits;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::helpers::{temp_dir, BIN};

const HALF_OPEN: usize = 1000;
/// What a normal client's request may take while the flood is open.
const NORMAL_ANSWER: Duration = Duration::from_millis(100);

/// Lets this process hold the flood's sockets (the soft limit is often 1024).
fn raise_own_fd_limit() {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read and write the struct passed.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 {
            limit.rlim_cur = limit.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
        }
    }
    assert!(
        limit.rlim_cur as usize > 2 * HALF_OPEN + 256,
        "the open-file limit ({}) is too low for this test",
        limit.rlim_cur
    );
}

/// Opens `HALF_OPEN` sockets to `address` that send a request head without its final blank line
/// and nothing more, while probing `probe` with fresh connections; returns when the server has
/// closed them all. Asserts they were closed by the header read timeout (not before, not much
/// later) and that every probe was answered within `NORMAL_ANSWER`.
async fn flood_and_probe(address: &str, probe: String) {
    let timeout = ServerLimits::default().header_read_timeout;
    let mut sockets = Vec::with_capacity(HALF_OPEN);
    for _ in 0..HALF_OPEN {
        let mut socket = TcpStream::connect(address).await.expect("connect");
        socket
            .write_all(b"GET /api/health HTTP/1.1\r\nHost: x\r\n")
            .await
            .expect("half a request");
        sockets.push(socket);
    }
    let opened = Instant::now();
    let closes: Vec<_> = sockets
        .into_iter()
        .map(|mut socket| {
            tokio::spawn(async move {
                let mut buffer = [0u8; 512];
                let deadline = timeout + Duration::from_secs(10);
                loop {
                    match tokio::time::timeout(deadline, socket.read(&mut buffer)).await {
                        Ok(Ok(0)) | Ok(Err(_)) => return Some(opened.elapsed()),
                        Ok(Ok(_)) => continue,
                        Err(_) => return None,
                    }
                }
            })
        })
        .collect();

    // A client with no pooled connection: each probe needs a fresh accept too.
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let mut probes = Vec::new();
    while opened.elapsed() < timeout {
        let started = Instant::now();
        let response = http.get(&probe).send().await.expect("a normal client");
        assert!(response.status().is_success(), "{}", response.status());
        response.bytes().await.unwrap();
        probes.push(started.elapsed());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let mut closed_after = Vec::with_capacity(HALF_OPEN);
    for close in closes {
        closed_after.push(
            close
                .await
                .unwrap()
                .expect("a half-open socket was never closed"),
        );
    }
    closed_after.sort();
    let (first, last) = (closed_after[0], closed_after[HALF_OPEN - 1]);
    eprintln!(
        "{address}: {HALF_OPEN} half-open sockets closed {first:?}..{last:?} after opening; \
         {} probes, slowest {:?}",
        probes.len(),
        probes.iter().max()
    );
    // Opening them took a moment, so the earliest may close a little before `timeout` after
    // the last was opened; none may outlive it by much.
    assert!(first >= timeout / 2, "closed too early: {first:?}");
    assert!(
        last <= timeout + Duration::from_secs(3),
        "closed too late: {last:?}"
    );
    assert!(probes.len() >= 20, "only {} probes", probes.len());
    let slow: Vec<_> = probes.iter().filter(|p| **p >= NORMAL_ANSWER).collect();
    assert!(
        slow.is_empty(),
        "normal clients waited {slow:?} (of {})",
        probes.len()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn half_open_sockets_are_cut_at_the_header_timeout_and_starve_no_one() {
    raise_own_fd_limit();
    let data = temp_dir();
    let serve = BIN.serve(data.path(), &[]);
    let (handler, _) = BIN.handler(data.path());
    let serve_address = serve.base.trim_start_matches("http://").to_owned();
    let handler_address = handler.base.trim_start_matches("http://").to_owned();
    tokio::join!(
        flood_and_probe(&serve_address, format!("{}/api/health", serve.base)),
        flood_and_probe(&handler_address, format!("{}/", handler.base)),
    );
}

/// A tmpfs of a few pages, mounted for the test and filled to the last byte.
struct FullDisk {
    mount: PathBuf,
    _dir: tempfile::TempDir,
}

impl FullDisk {
    fn mount() -> Result<FullDisk, Unavailable> {
        let dir = temp_dir();
        let mount = dir.path().join("full");
        std::fs::create_dir(&mount).unwrap();
        let mounted = Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=256k", "tmpfs"])
            .arg(&mount)
            .stderr(Stdio::piped())
            .output()
            .map_err(|e| Unavailable(format!("cannot run mount: {e}")))?;
        if !mounted.status.success() {
            return Err(Unavailable(format!(
                "cannot mount a small tmpfs (needs root, which CI has): {}",
                String::from_utf8_lossy(&mounted.stderr).trim()
            )));
        }
        let disk = FullDisk { mount, _dir: dir };
        fill(&disk.mount.join("filler"));
        Ok(disk)
    }
}

/// Writes zeros to `path` until the device refuses.
fn fill(path: &Path) {
    use std::io::Write;
    let mut file = std::fs::File::create(path).expect("filler file");
    let block = vec![0u8; 4096];
    loop {
        match file.write(&block) {
            Ok(0) => break,
            Ok(_) => continue,
            Err(e) if e.raw_os_error() == Some(libc::ENOSPC) => break,
            Err(e) => panic!("filling the disk: {e}"),
        }
    }
}

impl Drop for FullDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.mount).status();
    }
}

#[test]
fn serve_on_a_full_disk_names_the_cause_and_never_says_it_listens() {
    let Some(disk) = require(FullDisk::mount()) else {
        return;
    };
    let data = disk.mount.join("data");
    let child = BIN
        .command()
        .args(["serve", "--listen", "127.0.0.1:0", "--data"])
        .arg(&data)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn serve");
    let output = finish(child, RUN_TIMEOUT);
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "serve started on a full disk");
    assert!(!stdout.contains("listening"), "stdout: {stdout}");
    let cause = format!(
        "no space left on the device holding {}",
        data.join("bifrost.db").display()
    );
    assert!(stderr.contains(&cause), "stderr: {stderr}");
    assert!(!stderr.contains("disk I/O error"), "stderr: {stderr}");
}
