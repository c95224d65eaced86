//! A process's CPU time and memory, read from `/proc` (Linux): what the benches and the memory
//! tests measure a spawned binary by.

/// User + system CPU seconds a process has used so far (all its threads, exited ones included);
/// 0 once it is gone.
pub fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // After the parenthesized command name: state is field 3, utime field 14, stime field 15.
    let after = stat.rsplit_once(')').map(|(_, rest)| rest).unwrap_or("");
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = |field: usize| {
        fields
            .get(field - 3)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // /proc counts in USER_HZ, 100 on every Linux architecture.
    (ticks(14) + ticks(15)) / 100.0
}

/// Whether a child has exited and waits to be reaped (a zombie: its CPU times are final and still
/// readable), or is gone.
pub fn exited(pid: u32) -> bool {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let state = stat
        .rsplit_once(')')
        .and_then(|(_, rest)| rest.split_whitespace().next());
    matches!(state, None | Some("Z" | "X"))
}

/// CPU time a process's live threads have run so far, in nanoseconds (the scheduler's own
/// count, `/proc/PID/task/*/schedstat`: exact where `cpu_seconds` has 10 ms ticks); 0 once it
/// is gone.
pub fn cpu_nanos(pid: u32) -> u64 {
    ThreadTimes::of(pid).nanos.values().sum()
}

/// The CPU time of a process's threads, to the nanosecond: each live thread's time on a CPU
/// (`/proc/PID/task/TID/schedstat`, first field), by thread id. `/proc/PID/stat` counts in 10 ms
/// ticks, too coarse for a measurement of tens of milliseconds.
#[derive(Debug, Clone, Default)]
pub struct ThreadTimes {
    nanos: std::collections::BTreeMap<u32, u64>,
    /// `cpu_seconds` at the same moment: what covers threads that exit between two samples.
    ticks: f64,
}

impl ThreadTimes {
    pub fn of(pid: u32) -> ThreadTimes {
        let mut nanos = std::collections::BTreeMap::new();
        if let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) {
            for task in tasks.flatten() {
                let Some(tid) = task.file_name().to_str().and_then(|t| t.parse().ok()) else {
                    continue;
                };
                let ran = std::fs::read_to_string(task.path().join("schedstat"))
                    .ok()
                    .and_then(|s| s.split_whitespace().next()?.parse().ok());
                if let Some(ran) = ran {
                    nanos.insert(tid, ran);
                }
            }
        }
        ThreadTimes {
            nanos,
            ticks: cpu_seconds(pid),
        }
    }

    /// CPU seconds the process used from `earlier` to `self`: the nanosecond sum over its
    /// threads when every thread of `earlier` is still there (threads started since count
    /// whole), else the tick count (a thread that exited took its nanoseconds with it); `true`
    /// when it is the precise figure.
    pub fn since(&self, earlier: &ThreadTimes) -> (f64, bool) {
        let all_alive = earlier.nanos.keys().all(|tid| self.nanos.contains_key(tid));
        if !all_alive || self.nanos.is_empty() {
            return (self.ticks - earlier.ticks, false);
        }
        let nanos: u64 = self
            .nanos
            .iter()
            .map(|(tid, ran)| ran.saturating_sub(earlier.nanos.get(tid).copied().unwrap_or(0)))
            .sum();
        (nanos as f64 * 1e-9, true)
    }
}

/// `VmRSS` (now) and `VmHWM` (the peak) of a process, in MiB; NaN when it is gone.
pub fn memory_mib(pid: u32) -> (f64, f64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|kb| kb.parse::<f64>().ok())
            .map_or(f64::NAN, |kb| kb / 1024.0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_has_used_cpu_and_memory() {
        let pid = std::process::id();
        // Busy until a tick (10 ms of CPU) shows, for at most 10 s however loaded the machine.
        let spin = std::time::Instant::now();
        while cpu_seconds(pid) == 0.0 && spin.elapsed() < std::time::Duration::from_secs(10) {}
        assert!(cpu_seconds(pid) > 0.0);
        let (rss, peak) = memory_mib(pid);
        assert!(rss > 0.0 && peak >= rss, "{rss} {peak}");
        assert!(memory_mib(u32::MAX).0.is_nan());
    }

    #[test]
    fn an_exited_child_shows_as_exited_until_reaped() {
        assert!(!exited(std::process::id()));
        let mut child = std::process::Command::new("true")
            .spawn()
            .expect("spawn true");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while !exited(child.id()) {
            assert!(std::time::Instant::now() < deadline, "`true` never exited");
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        // Still in /proc (a zombie) until waited for.
        assert!(std::fs::metadata(format!("/proc/{}/stat", child.id())).is_ok());
        assert!(child.wait().expect("wait").success());
    }

    #[test]
    fn thread_times_count_nanoseconds_of_work() {
        // A busy child of one thread: this test process's own threads come and go with the
        // other tests, which would (rightly) make the figure the tick count.
        let mut child = std::process::Command::new("sh")
            .args(["-c", "while :; do :; done"])
            .spawn()
            .expect("spawn sh");
        let pid = child.id();
        let before = ThreadTimes::of(pid);
        let started = std::time::Instant::now();
        let mut measured = (0.0, false);
        // Until the child has run 20 ms, for at most 10 s however loaded the machine.
        while started.elapsed() < std::time::Duration::from_secs(10) {
            std::thread::sleep(std::time::Duration::from_millis(5));
            measured = ThreadTimes::of(pid).since(&before);
            if measured.0 >= 0.02 {
                break;
            }
        }
        let nanos = cpu_nanos(pid);
        let _ = child.kill();
        let _ = child.wait();
        let (seconds, precise) = measured;
        assert!(nanos >= 20_000_000, "{nanos}");
        assert!(precise, "the child's one thread stayed");
        assert!(seconds >= 0.02, "{seconds}");
        // Nanoseconds, not 10 ms ticks: not a whole number of ticks (but by a chance of 1e-7).
        assert!((seconds * 100.0).fract() != 0.0, "{seconds}");
    }
}
