//! How fast does `migrate` move legacy executions (each with 10 log rows) from Azurite into the
//! embedded store? Seeds with `tests/legacy/seed.py` (the real Azure SDK), runs the release
//! binary's `migrate` (first run, then the no-op rerun), prints executions/s and writes
//! `bench/REPORT.md`'s migrate section.
//!
//! Run: `cargo bench --bench migrate` (sizes: `BENCH_MIGRATE_SIZES=1000,4000`, default).
//!
//! Azurite answers every Table query by scanning the whole table, so its cost per query grows
//! with the table; two sizes in one run show that slope, and Azurite's own CPU time is reported
//! next to the wall time so the share of the emulator is visible.

#[allow(dead_code)]
#[path = "../tests/e2e/legacy.rs"]
mod legacy;
#[path = "support/report.rs"]
mod report;

use std::process::Command;
use std::time::{Duration, Instant};

const LOGS_PER_EXECUTION: usize = 10;

/// CPU seconds (user + system) a process has used so far, from /proc.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the `(comm)`: state is field 3, utime 14, stime 15.
    let after = stat.rsplit_once(')').map(|(_, rest)| rest).unwrap_or("");
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (ticks(11) + ticks(12)) / 100.0
}

/// All CPU of a process tree (azurite's npm shim runs node as a child).
fn tree_cpu_seconds(pid: u32) -> f64 {
    let children =
        std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).unwrap_or_default();
    cpu_seconds(pid)
        + children
            .split_whitespace()
            .filter_map(|c| c.parse::<u32>().ok())
            .map(tree_cpu_seconds)
            .sum::<f64>()
}

struct Measurement {
    executions: usize,
    seed: Duration,
    first: Duration,
    rerun: Duration,
    azurite_cpu_first: f64,
}

fn migrate(binary: &str, azurite: &legacy::Azurite, data: &std::path::Path) -> (Duration, String) {
    let started = Instant::now();
    let output = Command::new(binary)
        .args(["migrate", "--from", &azurite.connection_string, "--data"])
        .arg(data)
        .env("RUST_LOG", "warn")
        .output()
        .expect("run migrate");
    let elapsed = started.elapsed();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "migrate failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    (elapsed, stdout)
}

fn measure(binary: &str, executions: usize) -> Option<Measurement> {
    let azurite = legacy::Azurite::start()?;
    let day = (chrono::Utc::now() - chrono::Duration::days(1))
        .format("%Y-%m-%d")
        .to_string();
    let started = Instant::now();
    azurite.seed(&[
        "bulk",
        "--executions",
        &executions.to_string(),
        "--logs",
        &LOGS_PER_EXECUTION.to_string(),
        "--day",
        &day,
    ]);
    let seed = started.elapsed();
    let data = tempfile::tempdir().expect("tempdir");
    let cpu_before = tree_cpu_seconds(azurite.child.id());
    let (first, stdout) = migrate(binary, &azurite, data.path());
    let azurite_cpu_first = tree_cpu_seconds(azurite.child.id()) - cpu_before;
    assert!(
        stdout.contains(&format!("  migrated: {executions}\n")),
        "not every execution was migrated:\n{stdout}"
    );
    let (rerun, stdout) = migrate(binary, &azurite, data.path());
    assert!(
        stdout.contains(&format!("  unchanged: {executions}\n")),
        "{stdout}"
    );
    Some(Measurement {
        executions,
        seed,
        first,
        rerun,
        azurite_cpu_first,
    })
}

fn main() {
    let binary = env!("CARGO_BIN_EXE_bifrost-workers");
    let sizes: Vec<usize> = std::env::var("BENCH_MIGRATE_SIZES")
        .unwrap_or_else(|_| "1000,4000".into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    let mut rows = Vec::new();
    for executions in sizes {
        let Some(m) = measure(binary, executions) else {
            eprintln!("SKIP: Azurite or the Python SDKs are not available");
            return;
        };
        let rate = |d: Duration| m.executions as f64 / d.as_secs_f64();
        let line = format!(
            "| {} | {} | {:.1} s | {:.1} s ({:.0} executions/s) | {:.1} s ({:.0}%) | {:.1} s ({:.0} executions/s) |",
            m.executions,
            m.executions * LOGS_PER_EXECUTION,
            m.seed.as_secs_f64(),
            m.first.as_secs_f64(),
            rate(m.first),
            m.azurite_cpu_first,
            100.0 * m.azurite_cpu_first / m.first.as_secs_f64(),
            m.rerun.as_secs_f64(),
            rate(m.rerun),
        );
        println!("{line}");
        rows.push(line);
    }

    let section = format!(
        "## Migrate: legacy Table/Blob Storage → embedded store (`migrate`)\n\n\
         `cargo bench --bench migrate`: Azurite 3.35 (in memory) seeded by `tests/legacy/seed.py` \
         (azure-data-tables, {LOGS_PER_EXECUTION} `ExecutionLogs` rows per execution, inline results), \
         then the release binary's `migrate --parallelism 16` into a fresh SQLite store, then the same \
         command again (every execution compared, nothing written). Azurite CPU is the emulator's own \
         user+system time during the first run (over 100% means it used more than one core).\n\n\
         | executions | log rows | seed (Python SDK) | first run | Azurite CPU during it | rerun (no-op) |\n\
         |---|---|---|---|---|---|\n{}\n\n\
         Azurite evaluates each Table query by scanning the whole table, so the one `ExecutionLogs` \
         partition query per execution costs more as the table grows (the drop in executions/s \
         between the sizes above, with Azurite's CPU near one full core); Azure Table Storage answers \
         a partition query from its index. The 50,000 × 10 size of issue 8 was not run here: at the \
         measured slope it would take hours in Azurite and measure the emulator, not the migrator. \
         `BENCH_MIGRATE_SIZES=50000` runs it.\n",
        rows.join("\n")
    );
    let path = report::replace_section("## Migrate:", &section);
    println!("wrote {path}");
}
