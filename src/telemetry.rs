//! Logging setup. In `handler` mode logs go to stdout: the Functions host records every stderr
//! line as an Error (or Warning if it contains "warn"). Other modes log to stderr, keeping stdout
//! for machine-readable output (`listening on …`, execution ids).

use tracing_subscriber::EnvFilter;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogSink {
    Stdout,
    Stderr,
}

pub fn init(sink: LogSink) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_ansi(false);
    let result = match sink {
        LogSink::Stdout => builder.with_writer(std::io::stdout).try_init(),
        LogSink::Stderr => builder.with_writer(std::io::stderr).try_init(),
    };
    // Already initialised (tests): keep the existing subscriber.
    let _ = result;
}
