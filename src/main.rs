use std::io::Write;
use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;

use bifrost_workers::cli::{Cli, Command, EnsureArgs, FunctionsArgs, PackageArgs, SimulateArgs};
use bifrost_workers::clock::{Clock, SystemClock};
use bifrost_workers::config::{realtime_target, RuntimeConfig};
use bifrost_workers::host::{function_json, handler, manifest, registry};
use bifrost_workers::realtime::SinkTarget;
use bifrost_workers::serve::{self, ServeOptions};
use bifrost_workers::simulate::{self, SimulateOptions};
use bifrost_workers::telemetry::{self, LogSink};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    // Only handler mode logs to stdout; elsewhere a logged error would repeat the stderr line.
    let logs_to_stdout = matches!(cli.command, Command::Handler(_));
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // Never exit 0 on error: the Functions host would not restart the handler.
            if logs_to_stdout {
                tracing::error!("{e:#}");
            }
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Handler(args) => {
            telemetry::init(LogSink::Stdout);
            let config = RuntimeConfig {
                store: args.store.url(),
                blobs: args.store.blob_location(),
                realtime: realtime_target(
                    args.signalr.as_deref(),
                    args.signalr_service.connection_string.as_deref(),
                    SinkTarget::None,
                )?,
            };
            handler::run(args.port, config).await
        }
        Command::Serve(args) => {
            telemetry::init(LogSink::Stderr);
            let demo = args.demo.then(|| SimulateOptions {
                executions: 3,
                logs_per_execution: 40,
                rate: 20.0,
                scope: bifrost_workers::model::Scope::Global,
                workflow_name: "demo_workflow".into(),
                executed_by: "demo@bifrost.local".into(),
            });
            let default_sink = if args.demo {
                SinkTarget::Console
            } else {
                SinkTarget::BuiltInHub
            };
            let config = RuntimeConfig {
                store: args.store.url(),
                blobs: args.store.blob_location(),
                realtime: realtime_target(
                    args.signalr.as_deref(),
                    args.signalr_service.connection_string.as_deref(),
                    default_sink,
                )?,
            };
            serve::run(ServeOptions {
                listen: args.listen,
                config,
                demo,
            })
            .await
        }
        Command::Simulate(args) => {
            telemetry::init(LogSink::Stderr);
            run_simulate(args).await
        }
        Command::Functions(args) => run_functions(args),
        Command::Package(args) => run_package(args),
        Command::Migrate(args) => {
            telemetry::init(LogSink::Stderr);
            bifrost_workers::migrate::run_command(args).await
        }
        Command::Ensure(args) => run_ensure(args).await,
    }
}

async fn run_ensure(args: EnsureArgs) -> anyhow::Result<()> {
    let url = args.store.url();
    match &url {
        bifrost_workers::store::StoreUrl::Cosmos(settings) => {
            let done = bifrost_workers::store::cosmos::ensure(settings)
                .await
                .with_context(|| format!("ensuring {url}"))?;
            for step in done {
                let state = if step.created { "created" } else { "exists" };
                println!("{state} {}", step.resource);
            }
        }
        bifrost_workers::store::StoreUrl::Sqlite(_) => {
            // The SQLite schema is created on open; opening is the whole job.
            let clock: std::sync::Arc<dyn Clock> = std::sync::Arc::new(SystemClock);
            bifrost_workers::store::open(&url, clock)
                .await
                .with_context(|| format!("opening store {url}"))?;
            println!("exists {url}");
        }
    }
    Ok(())
}

fn run_package(args: PackageArgs) -> anyhow::Result<()> {
    let binary = match args.binary {
        Some(path) => path,
        None => std::env::current_exe().context("locating this executable")?,
    };
    let report = bifrost_workers::package::package(&args.out, &binary, &registry::registry())?;
    println!("app root: {}", report.app_root.display());
    for entry in &report.entries {
        println!("  {entry}");
    }
    println!("zip: {}", report.zip.display());
    println!("binary: {} bytes", report.binary_bytes);
    Ok(())
}

async fn run_simulate(args: SimulateArgs) -> anyhow::Result<()> {
    let clock: std::sync::Arc<dyn Clock> = std::sync::Arc::new(SystemClock);
    let url = args.store.url();
    let store = bifrost_workers::store::open(&url, clock.clone())
        .await
        .with_context(|| format!("opening store {url}"))?;
    let options = SimulateOptions {
        executions: args.executions,
        logs_per_execution: args.logs,
        rate: args.rate,
        scope: args.scope,
        workflow_name: args.workflow,
        executed_by: args.executed_by,
    };
    let wait_for_stdin = args.wait_for_stdin;
    let gate = async move {
        if wait_for_stdin {
            // A closed stdin counts as the go signal too: never hang forever.
            let _ = tokio::task::spawn_blocking(|| {
                let mut line = String::new();
                std::io::stdin().read_line(&mut line)
            })
            .await;
        }
    };
    let report = simulate::run_gated(
        store.as_ref(),
        clock.as_ref(),
        &options,
        |id| {
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "{id}");
            let _ = out.flush();
        },
        gate,
    )
    .await
    .context("simulation stopped")?;
    tracing::info!(
        executions = report.execution_ids.len(),
        logs = report.logs_written,
        "simulation done"
    );
    Ok(())
}

fn run_functions(args: FunctionsArgs) -> anyhow::Result<()> {
    let functions = registry::registry();
    if args.manifest {
        let text = serde_json::to_string_pretty(&manifest::manifest(&functions))?;
        println!("{text}");
        return Ok(());
    }
    if let Some(dir) = args.write {
        let written = function_json::write(&dir, &functions)
            .with_context(|| format!("writing {}", dir.display()))?;
        for path in written {
            println!("{}", path.display());
        }
        return Ok(());
    }
    if let Some(dir) = args.check {
        let mut differences = Vec::new();
        for (relative, expected) in function_json::render(&functions) {
            match std::fs::read_to_string(dir.join(&relative)) {
                Ok(actual) if actual == expected => {}
                Ok(_) => differences.push(format!("{} differs", relative.display())),
                Err(e) => differences.push(format!("{}: {e}", relative.display())),
            }
        }
        anyhow::ensure!(
            differences.is_empty(),
            "{} is out of date (run `bifrost-workers functions --write {}`):\n  {}",
            dir.display(),
            dir.display(),
            differences.join("\n  ")
        );
        println!("{} is up to date", dir.display());
    }
    Ok(())
}
