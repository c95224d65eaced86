//! `migrate`: legacy Azure Table/Blob Storage executions → the document store (any `Store`).
//!
//! - `connection`, `signing` (from `storage_account`): connection strings, SharedKey/SharedKeyLite;
//! - `client`: the small Table/Blob REST reader (paging, backoff);
//! - `log_source`: each execution's `ExecutionLogs` rows, per execution or from a one-pass spool;
//! - `mapping`: legacy rows and blobs → documents (pure);
//! - `plan`: one execution read and compared with the target; `checkpoint`: resumable progress;
//! - `runner`: the paged, parallel run, memberships, summary, and `verify`; `progress`: bar/lines.

pub mod checkpoint;
pub mod client;
pub mod log_source;
pub mod mapping;
pub mod plan;
pub mod progress;
pub mod runner;

// The account plumbing is shared with the Azure blob store.
pub use crate::storage_account::{connection, signing};

pub use client::StorageClient;
pub use connection::StorageAccount;
pub use runner::{migrate, verify, MigrateOptions, Summary, VerifyReport};

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;

use crate::cli::MigrateArgs;
use crate::clock::{Clock, SystemClock};

/// `bifrost-workers migrate`: prints the summary on stdout; errors (including failed rows and
/// verify mismatches) make the exit code non-zero.
pub async fn run_command(args: MigrateArgs) -> anyhow::Result<()> {
    let account = StorageAccount::parse(&args.from).context("--from")?;
    let client = StorageClient::new(account).context("building the HTTP client")?;
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let url = crate::config::store_url(args.to.as_ref(), &args.data);
    let store = crate::store::open(&url, clock.clone())
        .await
        .with_context(|| format!("opening store {url}"))?;
    // Serve mode reads results over 2 MB from its blob directory, so copy them there when the
    // target is the embedded store (or --blobs says where); elsewhere the legacy blob stays.
    let blobs = match (&args.blobs, &args.to) {
        (Some(location), _) => Some(location.open().context("--blobs")?),
        (None, None) => Some(crate::blobs::BlobLocation::under(&args.data).open()?),
        (None, Some(_)) => None,
    };
    let options = MigrateOptions {
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
        let report = verify(&client, store, blobs, clock.as_ref(), &options).await?;
        print!("{}", report.render());
        anyhow::ensure!(
            report.mismatches.is_empty(),
            "verify found {} difference(s) between source and target",
            report.mismatches.len()
        );
        return Ok(());
    }
    let summary = migrate(&client, store, blobs, clock.as_ref(), &options).await?;
    print!("{}", summary.render(options.dry_run));
    if let Some(stopped) = summary.stopped {
        anyhow::bail!("migration stopped early: {stopped}");
    }
    anyhow::ensure!(
        summary.failed.is_empty(),
        "{} source row(s) could not be migrated (listed above); everything else was",
        summary.failed.len()
    );
    Ok(())
}
