//! The real `bifrost-workers` binary as a child process: `serve` on port 0 (its address read from
//! the first stdout line), `handler` on a free port (ready once `GET /` answers, as the Functions
//! host checks), one-shot commands. Every wait is bounded; a spawned process is killed when its
//! handle drops.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::ports::free_port;

/// How long `serve` may take to print its address, and `handler` to answer `GET /`.
pub const START_TIMEOUT: Duration = Duration::from_secs(20);
/// How long a one-shot command may run (the slowest, a migration of a few hundred executions,
/// takes seconds).
pub const RUN_TIMEOUT: Duration = Duration::from_secs(300);

/// The binary cargo built for this test or bench target (`CARGO_BIN_EXE_bifrost-workers` is only
/// set while compiling those, hence a macro expanded there).
#[macro_export]
macro_rules! binary {
    () => {
        $crate::process::Binary(env!("CARGO_BIN_EXE_bifrost-workers"))
    };
}

/// The path of a `bifrost-workers` executable.
#[derive(Debug, Clone, Copy)]
pub struct Binary(pub &'static str);

impl Binary {
    pub fn path(&self) -> &'static str {
        self.0
    }

    /// A command for it, logging at `warn` (tests read stdout; only problems on stderr).
    pub fn command(&self) -> Command {
        let mut command = Command::new(self.0);
        command.env("RUST_LOG", "warn");
        command
    }

    /// Runs it to completion (at most `RUN_TIMEOUT`).
    pub fn run(&self, args: &[&str]) -> Output {
        output(self.command().args(args))
    }

    /// `serve --listen 127.0.0.1:0 --data DATA EXTRA…`, once it printed its address.
    pub fn serve(&self, data: &Path, extra: &[&str]) -> Process {
        let mut command = self.command();
        command
            .args(["serve", "--listen", "127.0.0.1:0", "--data"])
            .arg(data)
            .args(extra);
        Process::announced(command)
    }

    /// `handler` on a free port with `BIFROST_DATA=DATA`, once `GET /` answers; with the time
    /// that took from spawn.
    pub fn handler(&self, data: &Path) -> (Process, Duration) {
        self.handler_with(data, &[])
    }

    /// `handler` with extra environment variables.
    pub fn handler_with(&self, data: &Path, env: &[(&str, &str)]) -> (Process, Duration) {
        let mut command = self.command();
        command
            .arg("handler")
            .env("BIFROST_DATA", data)
            .envs(env.iter().copied());
        Process::handler(command)
    }
}

/// A running server process and its base URL; killed (SIGKILL) when dropped.
pub struct Process {
    pub child: Child,
    /// `http://127.0.0.1:PORT`
    pub base: String,
}

impl Process {
    /// Spawns `command` (a `serve`) and waits for its `listening on http://…` first line; the
    /// rest of its output is drained so it never blocks on a full pipe.
    pub fn announced(mut command: Command) -> Process {
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn the binary");
        drain(child.stderr.take().expect("stderr"));
        let lines = lines(child.stdout.take().expect("stdout"));
        let first = lines.recv_timeout(START_TIMEOUT).unwrap_or_else(|_| {
            let _ = child.kill();
            let status = child.wait().ok();
            panic!("no `listening on` line within {START_TIMEOUT:?} (exit status {status:?})")
        });
        let base = first
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("unexpected first line {first:?}"))
            .to_owned();
        // Keep reading, or a full pipe would block the server.
        std::thread::spawn(move || while lines.recv().is_ok() {});
        Process { child, base }
    }

    /// Spawns `command` (a `handler`, given `FUNCTIONS_CUSTOMHANDLER_PORT` here) and waits until
    /// `GET /` answers; returns the time that took from spawn.
    pub fn handler(mut command: Command) -> (Process, Duration) {
        let port = free_port();
        let started = Instant::now();
        let mut child = command
            .env("FUNCTIONS_CUSTOMHANDLER_PORT", port.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn handler");
        drain(child.stdout.take().expect("stdout"));
        drain(child.stderr.take().expect("stderr"));
        let process = Process {
            child,
            base: format!("http://127.0.0.1:{port}"),
        };
        let ready = wait_for_root(port, START_TIMEOUT);
        let elapsed = started.elapsed();
        assert!(
            ready,
            "handler did not answer GET / within {START_TIMEOUT:?}"
        );
        (process, elapsed)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGKILL: no chance to finish anything (a crash).
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM, then up to `timeout` for a clean exit; its exit status, or `None` if it is
    /// still running.
    pub fn terminate(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let _ = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status();
        wait_within(&mut self.child, timeout)
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Like `Command::output` (stdin closed, stdout and stderr captured), but killed and failed
/// when it runs longer than `RUN_TIMEOUT`.
pub fn output(command: &mut Command) -> Output {
    let child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {command:?}: {e}"));
    finish(child, RUN_TIMEOUT)
}

/// Waits up to `timeout` for `child` to exit, with what it printed on the streams still piped
/// (empty for a stream already taken); kills it and fails the test past the deadline.
pub fn finish(mut child: Child, timeout: Duration) -> Output {
    fn read_all(stream: Option<impl Read + Send + 'static>) -> std::thread::JoinHandle<Vec<u8>> {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            if let Some(mut stream) = stream {
                let _ = stream.read_to_end(&mut bytes);
            }
            bytes
        })
    }
    let stdout = read_all(child.stdout.take());
    let stderr = read_all(child.stderr.take());
    let Some(status) = wait_within(&mut child, timeout) else {
        let _ = child.kill();
        let _ = child.wait();
        panic!("process {} still ran after {timeout:?}: killed", child.id());
    };
    Output {
        status,
        stdout: stdout.join().unwrap_or_default(),
        stderr: stderr.join().unwrap_or_default(),
    }
}

/// The exit status of `child` once it exits, or `None` if it still runs after `timeout`.
pub fn wait_within(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + timeout;
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Some(status),
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(5)),
            Ok(None) => return None,
            Err(e) => panic!("waiting for process {}: {e}", child.id()),
        }
    }
}

/// The lines still to come on `lines` until its stream ends, which must happen within `timeout`.
pub fn remaining_lines(lines: &mpsc::Receiver<String>, timeout: Duration) -> Vec<String> {
    let deadline = Instant::now() + timeout;
    let mut rest = Vec::new();
    loop {
        match lines.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(line) => rest.push(line),
            Err(mpsc::RecvTimeoutError::Disconnected) => return rest,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                panic!("the stream did not end within {timeout:?}; so far: {rest:?}")
            }
        }
    }
}

/// Reads a child's stream to its end in the background, so the child never blocks on it.
pub fn drain(reader: impl Read + Send + 'static) {
    std::thread::spawn(move || {
        let _ = std::io::copy(&mut BufReader::new(reader), &mut std::io::sink());
    });
}

/// A child's stream as a channel of lines (read in the background until it ends), so a test
/// can wait for a line with `recv_timeout`.
pub fn lines(reader: impl Read + Send + 'static) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(reader).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// Whether `GET /` on `port` answers within `timeout`, polled with a raw socket every
/// millisecond like the host's readiness probe (any HTTP response counts).
pub fn wait_for_root(port: u16, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if answers_root(port) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    false
}

/// One `GET /` on `port`: whether any HTTP/1.1 response came back.
fn answers_root(port: u16) -> bool {
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    let request = "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
    let mut response = String::new();
    stream.write_all(request.as_bytes()).is_ok()
        && stream.read_to_string(&mut response).is_ok()
        && response.starts_with("HTTP/1.1 ")
}
