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
/// What 19 of 20 normal clients' requests may take while the flood is open. Not every one:
/// on a 2-core CI machine running the other e2e tests beside this one, a probe is sometimes
/// just past it for want of a core, which is not starvation.
const NORMAL_ANSWER: Duration = Duration::from_millis(100);
/// What no normal client may wait. A server starved by the flood (a connection limit, accepts
/// blocked behind half-open reads) keeps a probe waiting for the header timeout, 10 s.
const STARVED: Duration = Duration::from_secs(1);

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
/// later), that 95% of probes were answered within `NORMAL_ANSWER` and none took `STARVED`.
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
        slow.len() * 20 <= probes.len(),
        "more than 1 in 20 normal clients waited {NORMAL_ANSWER:?} or more: {slow:?} (of {})",
        probes.len()
    );
    let starved: Vec<_> = probes.iter().filter(|p| **p >= STARVED).collect();
    assert!(
        starved.is_empty(),
        "normal clients waited {starved:?} (of {})",
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

/// Resident and peak memory of a process, in bytes (`VmRSS`, `VmHWM`).
fn memory_of(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .map(|kb| kb * 1024)
            .unwrap_or_else(|| panic!("no {name} in /proc/{pid}/status"))
    };
    (field("VmRSS:"), field("VmHWM:"))
}

const MIB: u64 = 1024 * 1024;

/// A WebSocket client that completes the SignalR handshake and then never reads again.
pub(crate) async fn stalled_reader(base: &str, principal: &str) -> TcpStream {
    let http = reqwest::Client::new();
    let negotiated: serde_json::Value = http
        .post(format!("{base}/api/negotiate"))
        .header("x-ms-client-principal", principal)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = negotiated["accessToken"].as_str().unwrap().to_owned();
    let connection: serde_json::Value = http
        .post(format!(
            "{base}/client/negotiate?hub=bifrost&negotiateVersion=1"
        ))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = connection["connectionToken"].as_str().unwrap();
    let address = base.trim_start_matches("http://");
    let mut socket = TcpStream::connect(address).await.unwrap();
    let request = format!(
        "GET /client/?hub=bifrost&id={id}&access_token={token} HTTP/1.1\r\nHost: {address}\r\n\
         Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
    );
    socket.write_all(request.as_bytes()).await.unwrap();
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut byte = [0u8; 1];
        socket.read_exact(&mut byte).await.unwrap();
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head);
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    // The SignalR handshake as one masked text frame (mask of zeros: the payload as is).
    let handshake = b"{\"protocol\":\"json\",\"version\":1}\x1e";
    let mut frame = vec![0x81, 0x80 | handshake.len() as u8, 0, 0, 0, 0];
    frame.extend_from_slice(handshake);
    socket.write_all(&frame).await.unwrap();
    socket
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stalled_reader_under_large_logs_is_closed_and_serve_memory_comes_back() {
    const LOGS: u64 = 600;
    const LOG_BYTES: usize = 400 * 1024;
    let data = temp_dir();
    crate::signalr::seed_members(data.path(), &[("slow", crate::signalr::ORG_A)]).await;
    let execution = crate::helpers::empty_execution(data.path(), crate::signalr::ORG_A);
    let serve = BIN.serve(data.path(), &[]);
    let principal = bifrost_test_support::principal::member("slow");
    let mut socket = stalled_reader(&serve.base, &principal).await;
    let subscribed = reqwest::Client::new()
        .post(format!(
            "{}/api/executions/{execution}/subscribe",
            serve.base
        ))
        .header("x-ms-client-principal", &principal)
        .send()
        .await
        .unwrap();
    assert_eq!(subscribed.status().as_u16(), 200);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (baseline, _) = memory_of(serve.pid());

    crate::helpers::write_logs(data.path(), &execution, LOGS, LOG_BYTES, None).await;
    crate::helpers::wait_for_health(
        &serve.base,
        Duration::from_secs(120),
        "LogStream caught up",
        |h| h["changeFeed"]["LogStream"]["pendingChanges"] == 0,
    )
    .await;
    let (_, peak) = memory_of(serve.pid());

    // The hub gave up on the stalled connection: its socket ends (a reader that never reads
    // cannot be handed the Close message the hub writes with the reason; it is dropped after
    // the close write's timeout), and what it was sent is bounded by the kernel's buffers plus
    // the queue's byte budget, not by the stream.
    let mut received = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(20), socket.read_to_end(&mut received));
    let ended = read.await.expect("the hub closed the stalled connection");
    eprintln!(
        "stalled reader: {} KiB before the end ({ended:?})",
        received.len() / 1024
    );
    assert!(
        (received.len() as u64) < 64 * MIB,
        "{} bytes were sent to a reader that never read",
        received.len()
    );
    drop(socket);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (after, _) = memory_of(serve.pid());
    eprintln!(
        "serve RSS: baseline {} MiB, peak {} MiB, after {} MiB ({LOGS} logs of {} KiB, one stalled reader)",
        baseline / MIB,
        peak / MIB,
        after / MIB,
        LOG_BYTES / 1024
    );
    // The peak is the pump's batch (up to 500 documents, ~195 MiB of these logs, held as text
    // and parsed) more than the stalled client, whose queue is capped at a few MiB.
    assert!(
        peak < baseline + 480 * MIB,
        "peak {} MiB over a {} MiB baseline",
        peak / MIB,
        baseline / MIB
    );
    assert!(
        after < baseline + 40 * MIB,
        "after the stalled reader left: {} MiB over a {} MiB baseline",
        after / MIB,
        baseline / MIB
    );
}
