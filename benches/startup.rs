//! How soon after spawn does `handler` answer the host's readiness probe (`GET /`)?
//! Spawns the binary repeatedly, polls `GET /` every millisecond like the host does (it polls
//! every 25 ms), prints the distribution and writes `bench/REPORT.md`'s startup section.
//!
//! Run: `cargo bench --bench startup`

use std::time::Duration;

use bifrost_test_support::bench;

const RUNS: usize = 30;

fn main() {
    let binary = bifrost_test_support::binary!();
    let mut timings = Vec::with_capacity(RUNS);
    for _ in 0..RUNS {
        let data = tempfile::tempdir().expect("tempdir");
        // Spawn → the first answer to `GET /` (polled every 1 ms); killed when dropped.
        let (_handler, elapsed) = binary.handler(data.path());
        timings.push(elapsed);
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

    let section = format!(
        "## Startup: `GET /` after process start (`handler`)\n\n\
         `cargo bench --bench startup` ({RUNS} spawns of the release binary, `GET /` polled every 1 ms; \
         the host polls every 25 ms and gives up after 30 s):\n\n\
         | p50 | p90 | max |\n|---|---|---|\n| {:.1} ms | {:.1} ms | {:.1} ms |\n",
        ms(p50),
        ms(p90),
        ms(max)
    );
    bench::write_section("## Startup:", &section);
}
