//! Write→client-receive latency of live logs through the whole pipeline: `simulate` (another
//! process) writes log documents in batched transactions at a steady rate, stamping each
//! `timestamp` just before its transaction, into the SQLite store of a running `serve`; its
//! change-feed pump wakes on the commit and runs `LogStream`, whose REST sender posts to the
//! built-in hub, which pushes over WebSocket to `CLIENTS` official `@microsoft/signalr` clients
//! in Node, subscribed across the executions. Each client subtracts each log's timestamp from its
//! receive time (same machine, same clock, microseconds).
//!
//! Measures `serve` idle (CPU over `IDLE_SECONDS`), then p50/p99/max, delivered/expected and
//! `serve`'s CPU and RSS at 100 and 1,000 logs/s and at rising rates until p99 reaches 100 ms
//! (the plan's target) or a log is lost, and writes its section of `bench/REPORT.md`.
//!
//! Run: `cargo bench --bench signalr_latency` (needs Node 20+ and npm for the client).

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::{json, Value};

#[path = "../tests/signalr/install.rs"]
mod install;
#[path = "common/report.rs"]
mod report;

const BIN: &str = env!("CARGO_BIN_EXE_bifrost-workers");
const EXECUTIONS: u32 = 10;
/// Connections, each subscribed to one execution (five per execution).
const CLIENTS: u32 = 50;
/// Largest transaction `simulate` writes (it writes what is due, up to this).
const BATCH: u32 = 500;
/// Seconds of writing per measured rate.
const SECONDS_PER_RATE: f64 = 5.0;
const IDLE_SECONDS: u64 = 30;
const TARGET_P99_MS: f64 = 100.0;
const RATES: [u32; 9] = [
    100, 1000, 2000, 5000, 10_000, 15_000, 20_000, 25_000, 30_000,
];
const SECTION: &str = "## SignalR live logs: write→client-receive latency";

struct Measurement {
    rate: u32,
    achieved_rate: f64,
    /// Log receptions expected: each log once per client subscribed to its execution.
    logs: usize,
    received: usize,
    p50: f64,
    p99: f64,
    max: f64,
    /// `serve`'s CPU over the writing, in cores (1.0 = one core busy).
    cpu: f64,
    rss_mib: f64,
}

/// User + system CPU seconds of a process (all its threads).
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("read /proc stat");
    let rest = &stat[stat.rfind(')').expect("stat format") + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| fields[i - 3].parse::<f64>().expect("tick count");
    // USER_HZ is 100 on Linux.
    (ticks(14) + ticks(15)) / 100.0
}

fn rss_mib(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.split_whitespace().next().map(str::to_owned))
        })
        .and_then(|kb| kb.parse::<f64>().ok())
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

impl Measurement {
    fn holds_target(&self) -> bool {
        self.received == self.logs && self.p99 < TARGET_P99_MS
    }
}

fn lines_of(reader: impl std::io::Read + Send + 'static) -> mpsc::Receiver<String> {
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

fn admin_principal() -> String {
    let body = json!({"identityProvider": "aad", "userId": "bench",
                      "userDetails": "bench@example.com", "userRoles": ["PlatformAdmin"]});
    base64::engine::general_purpose::STANDARD.encode(body.to_string())
}

fn measure(
    base: &str,
    serve_pid: u32,
    data: &std::path::Path,
    module: &std::path::Path,
    rate: u32,
) -> Measurement {
    let logs_per_execution =
        ((f64::from(rate) * SECONDS_PER_RATE) / f64::from(EXECUTIONS)).ceil() as u32;
    let mut simulate: Child = Command::new(BIN)
        .args(["simulate", "--data"])
        .arg(data)
        .args(["--executions", &EXECUTIONS.to_string()])
        .args(["--logs", &logs_per_execution.to_string()])
        .args(["--rate", &rate.to_string(), "--wait-for-stdin"])
        .args(["--batch", &BATCH.to_string()])
        .env("RUST_LOG", "warn")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn simulate");
    let ids_rx = lines_of(simulate.stdout.take().expect("stdout"));
    let ids: Vec<String> = (0..EXECUTIONS)
        .map(|_| {
            ids_rx
                .recv_timeout(Duration::from_secs(30))
                .expect("execution id")
        })
        .collect();

    let config = json!({"base": base, "principal": admin_principal(), "executions": ids, "clients": CLIENTS});
    let mut client = Command::new("node")
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/signalr/latency.cjs"
        ))
        .arg(config.to_string())
        .env("SIGNALR_MODULE", module)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn node");
    let client_stdin: ChildStdin = client.stdin.take().expect("stdin");
    let events = lines_of(client.stdout.take().expect("stdout"));
    let ready = events
        .recv_timeout(Duration::from_secs(60))
        .expect("client ready");
    assert!(ready.contains("\"ready\""), "client: {ready}");

    let started = Instant::now();
    let cpu_before = cpu_seconds(serve_pid);
    let go = simulate.stdin.as_mut().expect("simulate stdin");
    go.write_all(b"go\n")
        .and_then(|_| go.flush())
        .expect("start simulate");
    let status = simulate.wait().expect("simulate");
    let writing = started.elapsed();
    let cpu = (cpu_seconds(serve_pid) - cpu_before) / writing.as_secs_f64();
    let rss = rss_mib(serve_pid);
    assert!(status.success(), "simulate failed");
    // Let the last batch through.
    std::thread::sleep(Duration::from_millis(1500));
    drop(client_stdin);
    let line = events
        .recv_timeout(Duration::from_secs(30))
        .expect("latencies");
    let _ = client.wait();
    let result: Value = serde_json::from_str(&line).expect("latency JSON");
    assert_eq!(result["event"], "latencies", "client: {line}");
    let mut latencies: Vec<f64> = result["ms"]
        .as_array()
        .expect("ms")
        .iter()
        .filter_map(Value::as_f64)
        .collect();
    latencies.sort_by(f64::total_cmp);
    let subscribers: u64 = result["expected"]
        .as_object()
        .map(|per| per.values().filter_map(Value::as_u64).sum())
        .unwrap_or(0);
    // Every execution has the same number of subscribers.
    let logs = (u64::from(logs_per_execution) * subscribers) as usize;
    let quantile = |q| match latencies.is_empty() {
        true => f64::NAN,
        false => report::quantile(&latencies, q),
    };
    Measurement {
        rate,
        achieved_rate: logs as f64 / writing.as_secs_f64(),
        logs,
        received: latencies.len(),
        p50: quantile(0.50),
        p99: quantile(0.99),
        max: latencies.last().copied().unwrap_or(f64::NAN),
        cpu,
        rss_mib: rss,
    }
}

fn main() {
    let module = install::signalr_client();
    let data = tempfile::tempdir().expect("tempdir");
    let mut serve = Command::new(BIN)
        .args(["serve", "--listen", "127.0.0.1:0", "--data"])
        .arg(data.path())
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn serve");
    let first = lines_of(serve.stdout.take().expect("stdout"))
        .recv_timeout(Duration::from_secs(30))
        .expect("listening line");
    let base = first.trim().trim_start_matches("listening on ").to_owned();

    let serve_pid = serve.id();
    // Idle: the pumps wait for commits, the store's watcher checks for other writers.
    std::thread::sleep(Duration::from_secs(2));
    let idle_before = cpu_seconds(serve_pid);
    std::thread::sleep(Duration::from_secs(IDLE_SECONDS));
    let idle = (cpu_seconds(serve_pid) - idle_before) / IDLE_SECONDS as f64;
    let idle_rss = rss_mib(serve_pid);
    println!(
        "idle: {:.2}% of a core, RSS {idle_rss:.0} MiB",
        idle * 100.0
    );

    let mut results: Vec<Measurement> = Vec::new();
    let mut held = None;
    let mut broke = None;
    for rate in RATES {
        let m = measure(&base, serve_pid, data.path(), &module, rate);
        println!(
            "{:>6} logs/s (written {:.0}): p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms, received {}/{}, serve {:.0}% CPU, {:.0} MiB",
            m.rate, m.achieved_rate, m.p50, m.p99, m.max, m.received, m.logs, m.cpu * 100.0, m.rss_mib
        );
        let holds = m.holds_target();
        results.push(m);
        if holds {
            held = Some(rate);
        } else if rate >= 2000 {
            broke = Some(rate);
            break;
        }
    }
    let _ = serve.kill();
    let _ = serve.wait();

    let machine = {
        let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
        format!(
            "{} cores, load average {} at the end",
            std::thread::available_parallelism().map_or(0, |n| n.get()),
            load.split_whitespace().next().unwrap_or("?")
        )
    };
    let mut section = format!(
        "{SECTION}\n\n`cargo bench --bench signalr_latency` ({machine}): release `serve` (built-in hub; its \
         `LogStream` pump wakes on each store commit) + `simulate` in another process ({EXECUTIONS} executions \
         interleaved, transactions of what is due up to {BATCH} logs, {SECONDS_PER_RATE:.0} s per rate, each log \
         stamped just before its transaction) + {CLIENTS} official `@microsoft/signalr` clients in one Node \
         process, {} per execution, all on loopback. Latency = client receive time − the log's `timestamp`, per \
         log and client. CPU is `serve`'s user+system time over the writing (100% = one core), RSS at its end.\n\n\
         Idle `serve` (no writes, no clients, {IDLE_SECONDS} s): {:.2}% of one core, RSS {idle_rss:.0} MiB.\n\n\
         | asked logs/s | written logs/s | received / expected | p50 | p99 | max | `serve` CPU | `serve` RSS |\n\
         |---|---|---|---|---|---|---|---|\n",
        CLIENTS / EXECUTIONS,
        idle * 100.0
    );
    for m in &results {
        section.push_str(&format!(
            "| {} | {:.0} | {}/{} | {:.1} ms | {:.1} ms | {:.1} ms | {:.0}% | {:.0} MiB |\n",
            m.rate,
            m.achieved_rate,
            m.received,
            m.logs,
            m.p50,
            m.p99,
            m.max,
            m.cpu * 100.0,
            m.rss_mib
        ));
    }
    section.push_str(&match (held, broke) {
        (Some(held), Some(broke)) => format!(
            "\nHighest asked rate with every log delivered and p99 < {TARGET_P99_MS:.0} ms: **{held} logs/s** \
             ({broke} logs/s did not hold). Where the written rate falls short of the asked one, the writer set the pace.\n"
        ),
        (Some(held), None) => format!(
            "\nEvery rate up to {held} logs/s held p99 < {TARGET_P99_MS:.0} ms with every log delivered (the highest tried).\n"
        ),
        (None, _) => format!("\nNo measured rate held p99 < {TARGET_P99_MS:.0} ms.\n"),
    });
    println!("{section}");
    report::write_section(SECTION, &section);
}
