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

use std::io::Write;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

use bifrost_test_support::process::{lines, Binary};
use bifrost_test_support::procfs::{cpu_seconds, memory_mib};
use bifrost_test_support::{bench, principal, signalr};
use serde_json::{json, Value};

const BIN: Binary = bifrost_test_support::binary!();
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

impl Measurement {
    fn holds_target(&self) -> bool {
        self.received == self.logs && self.p99 < TARGET_P99_MS
    }
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
    let mut simulate: Child = BIN
        .command()
        .args(["simulate", "--data"])
        .arg(data)
        .args(["--executions", &EXECUTIONS.to_string()])
        .args(["--logs", &logs_per_execution.to_string()])
        .args(["--rate", &rate.to_string(), "--wait-for-stdin"])
        .args(["--batch", &BATCH.to_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn simulate");
    let ids_rx = lines(simulate.stdout.take().expect("stdout"));
    let ids: Vec<String> = (0..EXECUTIONS)
        .map(|_| {
            ids_rx
                .recv_timeout(Duration::from_secs(30))
                .expect("execution id")
        })
        .collect();

    let config = json!({"base": base, "principal": principal::admin("bench"), "executions": ids, "clients": CLIENTS});
    let mut client = Command::new("node")
        .arg(signalr::script("latency.cjs"))
        .arg(config.to_string())
        .env("SIGNALR_MODULE", module)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn node");
    let client_stdin: ChildStdin = client.stdin.take().expect("stdin");
    let events = lines(client.stdout.take().expect("stdout"));
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
    let rss = memory_mib(serve_pid).0;
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
        false => bench::quantile(&latencies, q),
    };
    Measurement {
        rate,
        achieved_rate: f64::from(logs_per_execution * EXECUTIONS) / writing.as_secs_f64(),
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
    let module = signalr::client_module()
        .unwrap_or_else(|why| panic!("the SignalR client is needed: {why}"));
    let data = tempfile::tempdir().expect("tempdir");
    let serve = BIN.serve(data.path(), &[]);
    let base = serve.base.clone();

    let serve_pid = serve.pid();
    // Idle: the pumps wait for commits, the store's watcher checks for other writers.
    std::thread::sleep(Duration::from_secs(2));
    let idle_before = cpu_seconds(serve_pid);
    std::thread::sleep(Duration::from_secs(IDLE_SECONDS));
    let idle = (cpu_seconds(serve_pid) - idle_before) / IDLE_SECONDS as f64;
    let idle_rss = memory_mib(serve_pid).0;
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
    drop(serve);

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
    if let Some(at_1000) = results.iter().find(|m| m.rate == 1000) {
        section.push_str(&format!(
            "\nPlan target: log latency < 100 ms; ours: p99 {:.1} ms at 1000 logs/s ({}/{} delivered){}.\n",
            at_1000.p99,
            at_1000.received,
            at_1000.logs,
            held.map_or(String::new(), |held| format!(
                ", p99 < {TARGET_P99_MS:.0} ms with every log delivered up to {held} logs/s"
            ))
        ));
    }
    println!("{section}");
    bench::write_section(SECTION, &section);
}
