//! How fast does `migrate` move legacy executions (each with 10 log rows) from Azurite into the
//! embedded store? Seeds with `tests/legacy/seed.py` (the real Azure SDK), runs the release
//! binary's `migrate` (first run, then the no-op rerun), prints executions/s and writes
//! `bench/REPORT.md`'s migrate section.
//!
//! Run: `cargo bench --bench migrate` (sizes: `BENCH_MIGRATE_SIZES=2000,50000`, the default;
//! seeding 50,000 executions with the Python SDK takes about 20 minutes).
//!
//! Both log-read modes run on the same seeded data at the small size, so their ratio is measured
//! in one run; Azurite's own CPU time is reported next to the wall time so the share of the
//! emulator is visible.

use std::time::{Duration, Instant};

use bifrost_test_support::azurite::Azurite;
use bifrost_test_support::bench;
use bifrost_test_support::process::Binary;
use bifrost_test_support::procfs::cpu_seconds;
use bifrost_test_support::tools::require;

const LOGS_PER_EXECUTION: usize = 10;

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

/// One migrate configuration measured on a seeded Azurite: first run into a fresh store, then
/// the no-op rerun.
struct Run {
    log_read: &'static str,
    first: Duration,
    rerun: Duration,
    azurite_cpu_first: f64,
}

fn migrate(
    binary: Binary,
    azurite: &Azurite,
    data: &std::path::Path,
    log_read: &str,
) -> (Duration, String) {
    let started = Instant::now();
    // No time limit: a 50,000-execution run takes minutes.
    let output = binary
        .command()
        .args(["migrate", "--from", &azurite.connection_string, "--data"])
        .arg(data)
        .args(["--log-read", log_read])
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

fn measure_run(
    binary: Binary,
    azurite: &Azurite,
    executions: usize,
    log_read: &'static str,
) -> Run {
    let data = tempfile::tempdir().expect("tempdir");
    let cpu_before = tree_cpu_seconds(azurite.pid());
    let (first, stdout) = migrate(binary, azurite, data.path(), log_read);
    let azurite_cpu_first = tree_cpu_seconds(azurite.pid()) - cpu_before;
    assert!(
        stdout.contains(&format!("  migrated: {executions}\n")),
        "not every execution was migrated:\n{stdout}"
    );
    assert!(
        stdout.contains(&format!(
            "  log documents in source: {}\n",
            executions * LOGS_PER_EXECUTION
        )),
        "not every log row was read:\n{stdout}"
    );
    let (rerun, stdout) = migrate(binary, azurite, data.path(), log_read);
    assert!(
        stdout.contains(&format!("  unchanged: {executions}\n")),
        "{stdout}"
    );
    Run {
        log_read,
        first,
        rerun,
        azurite_cpu_first,
    }
}

/// Per-execution log queries are measured only up to this size: Azurite scans the whole table
/// for each of them, so beyond it the run measures the emulator (hours at 50,000).
const PER_EXECUTION_UP_TO: usize = 5000;

fn main() {
    let binary = bifrost_test_support::binary!();
    let sizes: Vec<usize> = std::env::var("BENCH_MIGRATE_SIZES")
        .unwrap_or_else(|_| "2000,50000".into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    let mut rows = Vec::new();
    for executions in sizes {
        let Some(azurite) = require(Azurite::start()) else {
            return;
        };
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
        let mut modes = vec!["scan"];
        if executions <= PER_EXECUTION_UP_TO {
            modes.push("per-execution");
        }
        for mode in modes {
            let run = measure_run(binary, &azurite, executions, mode);
            let rate = |d: Duration| executions as f64 / d.as_secs_f64();
            let line = format!(
                "| {executions} | {} | `{}` | {:.1} s | {:.1} s ({:.0} executions/s) | {:.1} s ({:.0}% of the run) | {:.1} s ({:.0} executions/s) |",
                executions * LOGS_PER_EXECUTION,
                run.log_read,
                seed.as_secs_f64(),
                run.first.as_secs_f64(),
                rate(run.first),
                run.azurite_cpu_first,
                100.0 * run.azurite_cpu_first / run.first.as_secs_f64(),
                run.rerun.as_secs_f64(),
                rate(run.rerun),
            );
            println!("{line}");
            rows.push(line);
        }
    }
    let section = format!(
        "## Migrate: legacy Table/Blob Storage → embedded store (`migrate`)\n\n\
         `cargo bench --bench migrate`: Azurite (in memory) seeded by `tests/legacy/seed.py` \
         (azure-data-tables, {LOGS_PER_EXECUTION} `ExecutionLogs` rows per execution, inline results), \
         then the release binary's `migrate` (default `--parallelism 16`) into a fresh SQLite store, \
         then the same command again (every execution read and compared, nothing written). The \
         run checks that every execution was migrated and every log row read. `--log-read scan` \
         (the default for a whole-account run) reads `ExecutionLogs` once into a local spool with \
         16 parallel range scans and lists the blob container once; `per-execution` queries one \
         partition (and each possible blob) per execution. Azurite CPU \
         is the emulator's own user+system time during the first run.\n\n\
         | executions | log rows | `--log-read` | seed (Python SDK) | first run | Azurite CPU during it | rerun (no-op) |\n\
         |---|---|---|---|---|---|---|\n{}\n\n\
         Azurite evaluates each Table query by scanning and sorting the whole table (LokiJS \
         `chain().where(…).sort(…)`), so a query per execution grows with the table and the whole \
         run grows with its square; `per-execution` is therefore measured only up to \
         {PER_EXECUTION_UP_TO} executions. Azure Table Storage answers a partition query from its \
         index; there the difference is the request count (one per execution against one per \
         1000 log rows).\n\n",
        rows.join("\n")
    );
    bench::write_section("## Migrate:", &section);
}
