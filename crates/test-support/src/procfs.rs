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
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return 0;
    };
    tasks
        .flatten()
        .filter_map(|task| std::fs::read_to_string(task.path().join("schedstat")).ok())
        .filter_map(|line| line.split_whitespace().next()?.parse::<u64>().ok())
        .sum()
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
}
