//! Logging setup. In `handler` mode the Functions host turns our output into App Insights
//! traces: every stdout line at Information, every stderr line at Error (Warning if it contains
//! "warn"). So INFO and below go to stdout and WARN/ERROR to stderr, where each line carries its
//! level word (` WARN ` makes the host log a Warning, ` ERROR ` an Error). Other modes log to
//! stderr, keeping stdout for machine-readable output (`listening on …`, execution ids).

use tracing::Level;
use tracing_subscriber::fmt::writer::MakeWriterExt;
use tracing_subscriber::EnvFilter;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogSink {
    /// `handler` mode: INFO and below on stdout, WARN and ERROR on stderr (see module docs).
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
        LogSink::Stdout => builder
            .with_writer(
                std::io::stderr
                    .with_max_level(Level::WARN)
                    .or_else(std::io::stdout),
            )
            .try_init(),
        LogSink::Stderr => builder.with_writer(std::io::stderr).try_init(),
    };
    // Already initialised (tests): keep the existing subscriber.
    let _ = result;
}
