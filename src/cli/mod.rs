//! The command line: an adapter over the features and the two run modes. `args` is the public
//! contract (clap types: extend, don't rename), `commands` what each subcommand does, `telemetry`
//! where logs go.

pub mod args;
mod commands;
pub mod telemetry;

use std::process::ExitCode;

use clap::Parser;

pub use args::{Cli, Command};

/// The binary's whole life: parse, run, and exit non-zero with one message on failure.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if matches!(cli.command, Command::Handler(_))
        && std::env::var_os(crate::runtime::config::WORKER_THREADS_ENV).is_none()
    {
        // The Functions host posts a change-feed partition's batches one at a time and is itself
        // the other busy process on the instance. With two workers, each invocation woke both:
        // about four voluntary context switches per 100-document batch on one connection against
        // 0.6 with one, and a fifth more CPU per document (docs/benchmarks.md). The store's work
        // runs on the blocking pool either way; `TOKIO_WORKER_THREADS` still sets the number.
        builder.worker_threads(1);
    }
    let runtime = match builder.enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    // Handler mode logs through tracing, whose ERROR lines already go to stderr (the host turns
    // them into Errors): print the failure once, there. Elsewhere stderr gets one plain line.
    let logs_through_tracing = matches!(cli.command, Command::Handler(_));
    match runtime.block_on(commands::run(cli.command)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // Never exit 0 on error: the Functions host would not restart the handler.
            if logs_through_tracing {
                tracing::error!("{e:#}");
            } else {
                eprintln!("error: {e:#}");
            }
            ExitCode::FAILURE
        }
    }
}
