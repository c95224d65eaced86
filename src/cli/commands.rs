//! What each subcommand does: settings from the arguments, then the feature or adapter it runs.

use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;

use super::args::{
    AuthMode, Command, EnsureArgs, FunctionsArgs, MigrateArgs, PackageArgs, SimulateArgs,
};
use super::telemetry::{self, LogSink};
use crate::blobs::BlobLocation;
use crate::clock::{Clock, SystemClock};
use crate::deploy::{function_json, manifest};
use crate::handler;
use crate::migrate;
use crate::realtime::SinkTarget;
use crate::registry;
use crate::runtime::config::{store_url, RuntimeConfig};
use crate::serve::{self, ServeOptions};
use crate::simulate::{self, SimulateOptions};
use crate::store;

pub async fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Handler(args) => {
            telemetry::init(LogSink::Stdout);
            let config = RuntimeConfig {
                store: args.store.url(),
                blobs: args.store.blob_location(),
                realtime: args.realtime.target(SinkTarget::None)?,
            };
            handler::run(args.port, config).await
        }
        Command::Serve(args) => {
            telemetry::init(LogSink::Stderr);
            let demo = args.demo.then(|| SimulateOptions {
                executions: 3,
                logs_per_execution: 40,
                rate: 20.0,
                scope: crate::model::Scope::Global,
                workflow_name: "demo_workflow".into(),
                executed_by: "demo@bifrost.local".into(),
            });
            let config = RuntimeConfig {
                store: args.store.url(),
                blobs: args.store.blob_location(),
                realtime: args.realtime.target(SinkTarget::BuiltInHub)?,
            };
            // The demo streams to the page and prints the same logs (unless they print anyway).
            let echo_to_stdout = args.demo && config.realtime != SinkTarget::Console;
            serve::run(ServeOptions {
                listen: args.listen,
                config,
                demo,
                echo_to_stdout,
                dev_sign_in: args.auth == AuthMode::Dev,
                cors_origins: args.cors_origins,
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
            run_migrate(args).await
        }
        Command::Ensure(args) => run_ensure(args).await,
    }
}

async fn run_ensure(args: EnsureArgs) -> anyhow::Result<()> {
    let url = args.store.url();
    match &url {
        crate::store::StoreUrl::Cosmos(settings) => {
            let done = crate::store::cosmos::ensure(settings)
                .await
                .with_context(|| format!("ensuring {url}"))?;
            for step in done {
                let state = if step.created { "created" } else { "exists" };
                println!("{state} {}", step.resource);
            }
        }
        crate::store::StoreUrl::Sqlite(_) => {
            // The SQLite schema is created on open; opening is the whole job.
            let clock: std::sync::Arc<dyn Clock> = std::sync::Arc::new(SystemClock);
            crate::store::open(&url, clock)
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
    let report = crate::deploy::package::package(&args.out, &binary, &registry::registry())?;
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
    let store = crate::store::open(&url, clock.clone())
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
    if args.openapi {
        let document = crate::runtime::openapi::document(&functions, env!("CARGO_PKG_VERSION"))?;
        println!("{}", serde_json::to_string_pretty(&document)?);
        return Ok(());
    }
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
        for (relative, expected) in function_json::render_repository(&functions) {
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

/// `bifrost-workers migrate`: prints the summary on stdout; errors (including failed rows and
/// verify mismatches) make the exit code non-zero.
async fn run_migrate(args: MigrateArgs) -> anyhow::Result<()> {
    let account = migrate::StorageAccount::parse(&args.from).context("--from")?;
    let client = migrate::StorageClient::new(account).context("building the HTTP client")?;
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let url = store_url(args.to.as_ref(), &args.data);
    let store = store::open(&url, clock.clone())
        .await
        .with_context(|| format!("opening store {url}"))?;
    // Serve mode reads results over 2 MB from its blob directory, so copy them there when the
    // target is the embedded store (or --blobs says where); elsewhere the legacy blob stays.
    let blobs = match (&args.blobs, &args.to) {
        (Some(location), _) => Some(location.open().context("--blobs")?),
        (None, None) => Some(BlobLocation::under(&args.data).open()?),
        (None, Some(_)) => None,
    };
    let options = migrate::MigrateOptions {
        dry_run: args.dry_run,
        since: args.since,
        scope: args.scope,
        resume: args.resume,
        keep_expired: args.keep_expired,
        parallelism: usize::from(args.parallelism),
        page_size: usize::from(args.page_size),
        progress_interval: Duration::from_secs_f64(args.progress_interval),
        log_read: args.log_read,
    };
    if args.verify {
        let report = migrate::verify(&client, store, blobs, clock.as_ref(), &options).await?;
        print!("{}", report.render());
        anyhow::ensure!(
            report.mismatches.is_empty(),
            "verify found {} difference(s) between source and target",
            report.mismatches.len()
        );
        return Ok(());
    }
    let summary = migrate::migrate(&client, store, blobs, clock.as_ref(), &options).await?;
    print!("{}", summary.render(options.dry_run));
    if let Some(stopped) = summary.stopped {
        anyhow::bail!("migration stopped early: {stopped}");
    }
    anyhow::ensure!(
        summary.failed_rows() == 0,
        "{} source row(s) could not be migrated (listed above); everything else was",
        summary.failed_rows()
    );
    Ok(())
}
