//! Write→client-receive latency of live logs through the whole pipeline: `simulate` (another
//! process) writes log documents in batched transactions at a steady rate, stamping each
//! `timestamp` just before its transaction, into the SQLite store of a running `serve`; its
//! change-feed pump wakes on the commit and runs `LogStream`, whose REST sender posts to the
//! built-in hub, which pushes over WebSocket to `CLIENTS` official `@microsoft/signalr` clients
//! in Node, subscribed across the executions. Each client subtracts each log's timestamp from its
//! receive time (same machine, same clock, microseconds).
//!
//! The clients connect once and stay connected for the whole sweep, as a console does, and are
//! subscribed to each rate's new executions; an unmeasured warm-up rate runs first, so a figure is
//! the steady pipeline's and not the first seconds of fresh Node processes (measured at 1,000
//! logs/s with fresh processes: a 5 s window had a third more client CPU per second than a 10 s
//! one, and p99 about 32 ms against about 19 ms).
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
use bifrost_test_support::procfs::{cpu_seconds, exited, memory_mib, ThreadTimes};
use bifrost_test_support::{bench, principal, signalr};
use serde_json::{json, Value};

const BIN: Binary = bifrost_test_support::binary!();
const EXECUTIONS: u32 = 10;
/// Connections, each subscribed to one execution (five per execution).
const CLIENTS: u32 = 50;
/// Node processes the clients are spread over (each runs `CLIENTS / CLIENT_PROCESSES` official
/// clients): one Node process receiving every log five times is itself the limit near
/// 10,000 logs/s, which would measure Node, not `serve`.
const CLIENT_PROCESSES: u32 = 5;
/// `simulate` processes writing to the store at once, each its share of the executions and of
/// the rate.
const WRITERS: u32 = 2;
/// Largest transaction a `simulate` writes (it writes what is due, up to this).
const BATCH: u32 = 500;
/// Seconds of writing per measured rate.
const SECONDS_PER_RATE: f64 = 5.0;
/// The unmeasured rate and time that warm the clients and `serve` before the sweep.
const WARM_UP_RATE: u32 = 1000;
const WARM_UP_SECONDS: f64 = 3.0;
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
    /// Receptions of a log its client already had, and logs that came after a higher sequence.
    duplicates: u64,
    out_of_order: u64,
    p50: f64,
    p99: f64,
    max: f64,
    /// CPU over the writing, in cores (1.0 = one core busy): `serve`, the `simulate` processes
    /// together, the Node processes together, and the busiest single Node process.
    cpu: Cpu,
    rss_mib: f64,
    /// The 1-minute load average as the rate ended.
    load: f64,
}

#[derive(Default)]
struct Cpu {
    serve: f64,
    writers: f64,
    clients: f64,
    busiest_client: f64,
}

impl Measurement {
    fn holds_target(&self) -> bool {
        self.received == self.logs
            && self.duplicates == 0
            && self.out_of_order == 0
            && self.p99 < TARGET_P99_MS
    }
}

/// One `simulate` process, its executions created, waiting for `go` on stdin.
struct Writer {
    child: Child,
    ids: Vec<String>,
}

fn spawn_writer(data: &std::path::Path, executions: u32, logs: u32, rate: f64) -> Writer {
    let mut child: Child = BIN
        .command()
        .args(["simulate", "--data"])
        .arg(data)
        .args(["--executions", &executions.to_string()])
        .args(["--logs", &logs.to_string()])
        .args(["--rate", &rate.to_string(), "--wait-for-stdin"])
        .args(["--batch", &BATCH.to_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn simulate");
    let ids_rx = lines(child.stdout.take().expect("stdout"));
    let ids = (0..executions)
        .map(|_| {
            ids_rx
                .recv_timeout(Duration::from_secs(30))
                .expect("execution id")
        })
        .collect();
    Writer { child, ids }
}

/// One Node process of official clients, connected for the whole sweep.
struct Clients {
    child: Child,
    stdin: ChildStdin,
    events: std::sync::mpsc::Receiver<String>,
}

fn spawn_clients(base: &str, module: &std::path::Path, process: u32, clients: u32) -> Clients {
    // A subscription reaches every connection of its user, so each client is its own user (a
    // platform admin: full logs).
    let principals: Vec<String> = (0..clients)
        .map(|i| principal::admin(&format!("bench-{process}-{i}")))
        .collect();
    let no_executions: [&str; 0] = [];
    let config = json!({"base": base, "principals": principals, "executions": no_executions, "clients": clients});
    let mut child = Command::new("node")
        .arg(signalr::script("latency.cjs"))
        .arg(config.to_string())
        .env("SIGNALR_MODULE", module)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn node");
    let stdin = child.stdin.take().expect("stdin");
    let events = lines(child.stdout.take().expect("stdout"));
    Clients {
        child,
        stdin,
        events,
    }
}

impl Clients {
    fn wait_ready(&self) {
        let ready = self
            .events
            .recv_timeout(Duration::from_secs(60))
            .expect("client ready");
        assert!(ready.contains("\"ready\""), "client: {ready}");
    }

    fn command(&mut self, command: Value) {
        writeln!(self.stdin, "{command}")
            .and_then(|_| self.stdin.flush())
            .expect("a command to the clients");
    }

    /// Subscribes client i to execution i mod the count: with as many clients per process as
    /// executions, every process holds one client per execution.
    fn subscribe(&mut self, ids: &[String]) {
        self.command(json!({ "subscribe": ids }));
    }

    /// Closes its stdin (the clients disconnect and print what is left) and waits for it to exit.
    fn close(self) {
        drop(self.stdin);
        let _ = self.events.recv_timeout(Duration::from_secs(60));
        let mut child = self.child;
        let _ = child.wait();
    }

    /// What they received since the last report.
    fn report(&mut self) -> Received {
        self.command(json!({ "report": true }));
        let line = self
            .events
            .recv_timeout(Duration::from_secs(60))
            .expect("latencies");
        let result: Value = serde_json::from_str(&line).expect("latency JSON");
        assert_eq!(result["event"], "latencies", "client: {line}");
        let latencies = result["ms"]
            .as_array()
            .expect("ms")
            .iter()
            .filter_map(Value::as_f64)
            .collect();
        let subscribers = result["expected"]
            .as_object()
            .map(|per| per.values().filter_map(Value::as_u64).sum())
            .unwrap_or(0);
        let count = |key: &str| result[key].as_u64().expect(key);
        Received {
            latencies,
            subscribers,
            duplicates: count("duplicates"),
            out_of_order: count("outOfOrder"),
        }
    }
}

/// What one Node process of clients received.
struct Received {
    /// Receive time − the log's timestamp, ms, once per log and client.
    latencies: Vec<f64>,
    /// Receptions expected per log of an execution (its subscribers, summed over executions).
    subscribers: u64,
    /// Logs a client received again.
    duplicates: u64,
    /// Logs that came after a higher sequence of their execution, per client.
    out_of_order: u64,
}

fn measure(
    serve_pid: u32,
    data: &std::path::Path,
    clients: &mut [Clients],
    rate: u32,
    seconds: f64,
) -> Measurement {
    let logs_per_execution = ((f64::from(rate) * seconds) / f64::from(EXECUTIONS)).ceil() as u32;
    let mut writers: Vec<Writer> = (0..WRITERS)
        .map(|_| {
            spawn_writer(
                data,
                EXECUTIONS / WRITERS,
                logs_per_execution,
                f64::from(rate) / f64::from(WRITERS),
            )
        })
        .collect();
    let ids: Vec<String> = writers.iter().flat_map(|w| w.ids.clone()).collect();
    for process in clients.iter_mut() {
        process.subscribe(&ids);
    }
    for process in clients.iter() {
        process.wait_ready();
    }

    let cpu_of = |pids: &[u32]| -> Vec<f64> { pids.iter().map(|&pid| cpu_seconds(pid)).collect() };
    let writer_pids: Vec<u32> = writers.iter().map(|w| w.child.id()).collect();
    let client_pids: Vec<u32> = clients.iter().map(|c| c.child.id()).collect();
    let started = Instant::now();
    let serve_before = cpu_seconds(serve_pid);
    let clients_before = cpu_of(&client_pids);
    let writers_before = cpu_of(&writer_pids);
    for writer in &mut writers {
        let go = writer.child.stdin.as_mut().expect("simulate stdin");
        go.write_all(b"go\n")
            .and_then(|_| go.flush())
            .expect("start simulate");
    }
    // A writer's CPU is read once it has exited but before it is reaped (after, /proc has
    // forgotten it); bounded: the writing takes `seconds` unless the store stalls.
    let mut writers_cpu = 0.0;
    for (writer, before) in writers.iter_mut().zip(&writers_before) {
        let deadline = Instant::now() + Duration::from_secs_f64(seconds * 10.0 + 30.0);
        while !exited(writer.child.id()) {
            assert!(Instant::now() < deadline, "simulate did not finish");
            std::thread::sleep(Duration::from_millis(2));
        }
        writers_cpu += cpu_seconds(writer.child.id()) - before;
        let status = writer.child.wait().expect("simulate");
        assert!(status.success(), "simulate failed");
    }
    let writing = started.elapsed();
    let seconds = writing.as_secs_f64();
    let serve_cpu = (cpu_seconds(serve_pid) - serve_before) / seconds;
    let clients_cpu: Vec<f64> = cpu_of(&client_pids)
        .iter()
        .zip(&clients_before)
        .map(|(after, before)| (after - before) / seconds)
        .collect();
    let rss = memory_mib(serve_pid).0;
    // Let the last batch through.
    std::thread::sleep(Duration::from_millis(1500));
    let mut latencies = Vec::new();
    let (mut subscribers, mut duplicates, mut out_of_order) = (0, 0, 0);
    for process in clients.iter_mut() {
        let mut received = process.report();
        latencies.append(&mut received.latencies);
        subscribers += received.subscribers;
        duplicates += received.duplicates;
        out_of_order += received.out_of_order;
    }
    latencies.sort_by(f64::total_cmp);
    // Every execution has the same number of subscribers.
    let logs = (u64::from(logs_per_execution) * subscribers) as usize;
    let quantile = |q| match latencies.is_empty() {
        true => f64::NAN,
        false => bench::quantile(&latencies, q),
    };
    Measurement {
        rate,
        achieved_rate: f64::from(logs_per_execution * EXECUTIONS) / seconds,
        logs,
        received: latencies.len(),
        duplicates,
        out_of_order,
        p50: quantile(0.50),
        p99: quantile(0.99),
        max: latencies.last().copied().unwrap_or(f64::NAN),
        cpu: Cpu {
            serve: serve_cpu,
            writers: writers_cpu / seconds,
            clients: clients_cpu.iter().sum(),
            busiest_client: clients_cpu.iter().copied().fold(0.0, f64::max),
        },
        rss_mib: rss,
        load: load_average(),
    }
}

/// The 1-minute load average (the machine is shared: a figure is read with it).
fn load_average() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next()?.parse().ok())
        .unwrap_or(f64::NAN)
}

fn main() {
    let module = signalr::client_module()
        .unwrap_or_else(|why| panic!("the SignalR client is needed: {why}"));
    let data = tempfile::tempdir().expect("tempdir");
    let serve = BIN.serve(data.path(), &[]);
    let base = serve.base.clone();

    let serve_pid = serve.pid();
    // Idle: the pumps wait for commits, the store's watcher for writes. After the runtime's
    // idle blocking threads have exited (10 s), so the threads' nanosecond counts cover the
    // whole window (10 ms ticks over 30 s would read 0).
    std::thread::sleep(Duration::from_secs(12));
    let idle_before = ThreadTimes::of(serve_pid);
    std::thread::sleep(Duration::from_secs(IDLE_SECONDS));
    let (idle_seconds, idle_precise) = ThreadTimes::of(serve_pid).since(&idle_before);
    let idle = idle_seconds / IDLE_SECONDS as f64;
    let idle_clock = if idle_precise {
        "its threads' time on a CPU, to the nanosecond"
    } else {
        "a thread exited meanwhile: 10 ms ticks"
    };
    let idle_rss = memory_mib(serve_pid).0;
    println!(
        "idle: {:.3}% of a core ({idle_clock}), RSS {idle_rss:.0} MiB",
        idle * 100.0
    );

    let mut clients: Vec<Clients> = (0..CLIENT_PROCESSES)
        .map(|process| spawn_clients(&base, &module, process, CLIENTS / CLIENT_PROCESSES))
        .collect();
    for process in &clients {
        process.wait_ready();
    }
    let warm_up = measure(
        serve_pid,
        data.path(),
        &mut clients,
        WARM_UP_RATE,
        WARM_UP_SECONDS,
    );
    println!(
        "warm-up, {WARM_UP_RATE} logs/s for {WARM_UP_SECONDS} s (not reported): p50 {:.1} ms, p99 {:.1} ms, received {}/{}",
        warm_up.p50, warm_up.p99, warm_up.received, warm_up.logs
    );

    let mut results: Vec<Measurement> = Vec::new();
    let mut held = None;
    let mut broke = None;
    for rate in RATES {
        let m = measure(serve_pid, data.path(), &mut clients, rate, SECONDS_PER_RATE);
        println!(
            "{:>6} logs/s (written {:.0}): p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms, received {}/{}, CPU serve {:.0}% simulate {:.0}% node {:.0}% (busiest {:.0}%), serve {:.0} MiB, load {:.2}",
            m.rate, m.achieved_rate, m.p50, m.p99, m.max, m.received, m.logs, m.cpu.serve * 100.0,
            m.cpu.writers * 100.0, m.cpu.clients * 100.0, m.cpu.busiest_client * 100.0, m.rss_mib, m.load
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
    clients.into_iter().for_each(Clients::close);
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
         `LogStream` pump wakes on each store commit) + {WRITERS} `simulate` processes writing to its store \
         ({EXECUTIONS} executions in all, interleaved, each process transactions of what is due up to {BATCH} \
         logs, {SECONDS_PER_RATE:.0} s per rate, each log stamped just before its transaction) + {CLIENTS} \
         official `@microsoft/signalr` clients in {CLIENT_PROCESSES} Node processes, each client its own \
         platform-admin user subscribed to one execution of each rate ({} per execution), all on loopback. \
         The clients connect once and stay connected for the whole sweep, as an open console does; \
         {WARM_UP_SECONDS:.0} s at {WARM_UP_RATE} logs/s before the first rate warm them (and `serve`) \
         and are not reported, so the figures are the steady pipeline's, not fresh Node processes' \
         first second. Latency = \
         client receive time − the log's `timestamp`, per log and client; a log counts once per client \
         (duplicates and logs after a higher sequence are counted apart and fail the rate). CPU is each \
         process's user+system time over the writing (100% = one core; the {} cores are shared by all of \
         them), `serve`'s RSS at its end, the load average as the rate ended.\n\n\
         Idle `serve` (no writes, no clients, {IDLE_SECONDS} s): {:.3}% of one core ({idle_clock}), RSS {idle_rss:.0} MiB.\n\n\
         | asked logs/s | written logs/s | received / expected | duplicates, out of order | p50 | p99 | max | `serve` CPU | `simulate` CPU ({WRITERS}) | Node CPU ({CLIENT_PROCESSES}; busiest) | `serve` RSS | load |\n\
         |---|---|---|---|---|---|---|---|---|---|---|---|\n",
        CLIENTS / EXECUTIONS,
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        idle * 100.0
    );
    for m in &results {
        section.push_str(&format!(
            "| {} | {:.0} | {}/{} | {}, {} | {:.1} ms | {:.1} ms | {:.1} ms | {:.0}% | {:.0}% | {:.0}%; {:.0}% | {:.0} MiB | {:.1} |\n",
            m.rate,
            m.achieved_rate,
            m.received,
            m.logs,
            m.duplicates,
            m.out_of_order,
            m.p50,
            m.p99,
            m.max,
            m.cpu.serve * 100.0,
            m.cpu.writers * 100.0,
            m.cpu.clients * 100.0,
            m.cpu.busiest_client * 100.0,
            m.rss_mib,
            m.load
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
