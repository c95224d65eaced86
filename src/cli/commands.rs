//! What each subcommand does: settings from the arguments, then the feature or adapter it runs.

use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;

use super::args::{
    AuthMode, Command, DeadLetterAction, DeadLetterSelect, DeadLettersArgs, EnsureArgs,
    FunctionsArgs, MigrateArgs, PackageArgs, SimulateArgs,
};
use super::telemetry::{self, LogSink};
use crate::blobs::BlobLocation;
use crate::clock::{Clock, SystemClock};
use crate::deploy::{function_json, manifest};
use crate::handler;
use crate::migrate;
use crate::ops::{
    dead_letter_detail, replay_dead_letters, replay_targets, select_dead_letters,
    DeadLetterSummary, ReplayTarget, Selection,
};
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
                batch: 1,
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
        Command::Deadletters(args) => {
            telemetry::init(LogSink::Stderr);
            run_deadletters(args).await
        }
    }
}

fn selection(select: DeadLetterSelect) -> Selection {
    Selection {
        function: select.function,
        id: select.id,
    }
}

/// A payload the handler kept verbatim (the host's request body), decoded as the handler would.
fn decode_host_payload(
    target: &ReplayTarget,
    text: &str,
) -> Result<Vec<serde_json::Value>, String> {
    let invocation =
        handler::protocol::Invocation::parse(text.as_bytes()).map_err(|e| e.to_string())?;
    handler::protocol::decode_documents(&invocation, target.binding).map_err(|e| e.to_string())
}

/// `bifrost-workers deadletters list|show|replay`.
async fn run_deadletters(args: DeadLettersArgs) -> anyhow::Result<()> {
    let targets = replay_targets(&registry::registry());
    let realtime = match &args.action {
        // A replayed LogStream or ExecutionUpdates batch sends its messages here.
        DeadLetterAction::Replay { realtime, .. } => realtime.target(SinkTarget::None)?,
        _ => SinkTarget::None,
    };
    let store_args = args.action.store();
    let config = RuntimeConfig {
        store: store_args.url(),
        blobs: store_args.blob_location(),
        realtime,
    };
    let ctx = config.open_context("deadletters").await?;
    let store = ctx.store.as_ref();
    match args.action {
        DeadLetterAction::List { select, json, .. } => {
            let records = select_dead_letters(store, &targets, &selection(select)).await?;
            let summaries: Vec<DeadLetterSummary> =
                records.iter().map(DeadLetterSummary::of).collect();
            if json {
                println!("{}", serde_json::to_string_pretty(&summaries)?);
            } else {
                for s in &summaries {
                    let documents = s
                        .documents
                        .map_or("an undecodable payload".to_owned(), |n| {
                            format!("{n} documents")
                        });
                    let when = s.created_at.as_deref().unwrap_or("?");
                    let incomplete = if s.complete { "" } else { " (parts missing)" };
                    println!(
                        "{}\t{when}\t{documents}, {} attempts{incomplete}: {}",
                        s.id, s.attempts, s.reason
                    );
                }
                eprintln!("{} dead letter(s)", summaries.len());
            }
            Ok(())
        }
        DeadLetterAction::Show { id, function, .. } => {
            let wanted = Selection {
                function,
                id: Some(id.clone()),
            };
            let records = select_dead_letters(store, &targets, &wanted).await?;
            let record = records
                .first()
                .with_context(|| format!("no dead letter {id:?} (it may have been replayed)"))?;
            println!(
                "{}",
                serde_json::to_string_pretty(&dead_letter_detail(record))?
            );
            Ok(())
        }
        DeadLetterAction::Replay { select, .. } => {
            let wanted = selection(select);
            let records = select_dead_letters(store, &targets, &wanted).await?;
            if let (Some(id), true) = (&wanted.id, records.is_empty()) {
                anyhow::bail!("no dead letter {id:?} (it may have been replayed already)");
            }
            let report =
                replay_dead_letters(&ctx, &targets, &records, Some(&decode_host_payload)).await;
            println!("{}", serde_json::to_string_pretty(&report)?);
            anyhow::ensure!(
                report.failed == 0 && report.skipped == 0,
                "{} of {} dead letter(s) not replayed (kept; see above)",
                report.failed + report.skipped,
                report.entries.len()
            );
            Ok(())
        }
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
        batch: usize::from(args.batch),
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
