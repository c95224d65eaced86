//! The command line (a public contract: extend, don't rename).

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::model::Scope;
use crate::realtime::SinkTarget;
use crate::runtime::config::realtime_target;
use crate::runtime::config::{DATA_ENV, PORT_ENV, SIGNALR_CONNECTION_ENV, SIGNALR_ENV, STORE_ENV};
use crate::store::StoreUrl;

#[derive(Debug, Parser)]
#[command(
    name = "bifrost-workers",
    version,
    about = "Bifrost execution workers: live logs, metrics and the execution query API"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Azure Functions custom-handler mode: serve the host's invocations on FUNCTIONS_CUSTOMHANDLER_PORT.
    Handler(HandlerArgs),
    /// Standalone mode: the same functions driven by this process on the embedded store.
    Serve(ServeArgs),
    /// Workflow-engine stand-in: write executions with logs, variables and results to the store.
    Simulate(SimulateArgs),
    /// Generate host.json, local.settings.json.example and functions/<Name>/function.json from the registry (or print the deployment manifest).
    Functions(FunctionsArgs),
    /// Assemble the deployable app root (OUT/app) and OUT/bifrost-workers.zip for config-zip deployment.
    Package(PackageArgs),
    /// Copy legacy Table/Blob Storage (executions, organizations, users, roles, forms, config, OAuth connections, branding) into the store: idempotent, resumable, verifiable.
    Migrate(MigrateArgs),
    /// Create the store's database and containers (with TTLs and indexing policies) if missing.
    Ensure(EnsureArgs),
    /// List, show or replay the batches that failed every attempt (the `deadletters` container).
    Deadletters(DeadLettersArgs),
}

#[derive(Debug, Args)]
pub struct DeadLettersArgs {
    #[command(subcommand)]
    pub action: DeadLetterAction,
}

#[derive(Debug, Subcommand)]
pub enum DeadLetterAction {
    /// One line per dead-lettered batch, oldest first (or `--json`).
    List {
        #[command(flatten)]
        select: DeadLetterSelect,
        /// Print the list as JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// One dead letter in full, its batch included, as JSON.
    Show {
        /// The record id (`{Function}-{batchId}`, as `list` prints it), its batch id or a part id.
        #[arg(long)]
        id: String,
        /// Only look among this function's dead letters.
        #[arg(long)]
        function: Option<String>,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Run the selected dead letters through their function again (documents at their current
    /// version; safe to repeat) and remove each once that succeeded. Prints what was done as
    /// JSON; non-zero exit when any could not be replayed.
    Replay {
        #[command(flatten)]
        select: DeadLetterSelect,
        #[command(flatten)]
        realtime: RealtimeArgs,
        #[command(flatten)]
        store: StoreArgs,
    },
}

impl DeadLetterAction {
    pub fn store(&self) -> &StoreArgs {
        match self {
            DeadLetterAction::List { store, .. }
            | DeadLetterAction::Show { store, .. }
            | DeadLetterAction::Replay { store, .. } => store,
        }
    }
}

/// Which dead letters: all of them unless narrowed.
#[derive(Debug, Clone, Args)]
pub struct DeadLetterSelect {
    /// Only this change-feed function's: LogStream, ExecutionUpdates or MetricsAggregate.
    #[arg(long)]
    pub function: Option<String>,
    /// Only this record (`{Function}-{batchId}`, its batch id or a part id).
    #[arg(long)]
    pub id: Option<String>,
}

#[derive(Debug, Args)]
pub struct MigrateArgs {
    /// Legacy storage connection string (`UseDevelopmentStorage=true`, `AccountName=…;AccountKey=…`
    /// with optional `TableEndpoint`/`BlobEndpoint`, or a `SharedAccessSignature`).
    #[arg(long, env = "BIFROST_MIGRATE_FROM", hide_env_values = true)]
    pub from: String,
    /// Target store URL, the same syntax as --store (default: sqlite:<data>/bifrost.db).
    #[arg(long)]
    pub to: Option<StoreUrl>,
    /// Directory of the embedded target store (used when --to is not given).
    #[arg(long, env = DATA_ENV, default_value = "data")]
    pub data: PathBuf,
    /// Where blobs of results/variables over 2 MB are copied: dir:PATH or azblob:… as for serve's
    /// --blobs (default with the embedded store: dir:<data>/blobs, where serve reads them; with
    /// --to: not copied, they stay referenced in the legacy account).
    #[arg(long)]
    pub blobs: Option<crate::blobs::BlobLocation>,
    /// Read, map and compare, but write nothing (the summary says what would be written).
    #[arg(long)]
    pub dry_run: bool,
    /// Only executions started at or after this time (RFC 3339 or YYYY-MM-DD, UTC).
    #[arg(long)]
    pub since: Option<crate::model::Timestamp>,
    /// Only this scope: GLOBAL, org-<uuid> or a legacy org uuid.
    #[arg(long, value_parser = parse_legacy_scope)]
    pub scope: Option<Scope>,
    /// Continue an interrupted run from its checkpoint (same --from, --scope and --since).
    #[arg(long, conflicts_with = "verify")]
    pub resume: bool,
    /// Compare source and target (counts, fields, checksums) instead of migrating; non-zero exit on any mismatch.
    #[arg(long)]
    pub verify: bool,
    /// Also migrate executions older than 14 days (they get `ttl: -1`, never expiring).
    #[arg(long)]
    pub keep_expired: bool,
    /// Executions read and written at once.
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u16).range(1..=256))]
    pub parallelism: u16,
    /// How ExecutionLogs rows (and legacy blobs) are read: `scan` reads the whole table once (16
    /// parallel range scans) into a local spool and lists the blobs once; `per-execution` asks
    /// for one partition (and each possible blob) per execution; `auto` scans unless --scope or
    /// --since narrow the run.
    #[arg(long, value_enum, default_value_t = crate::migrate::log_source::LogReadMode::Auto)]
    pub log_read: crate::migrate::log_source::LogReadMode,
    /// Source rows per page and checkpoint (at most 1000, the Table service's page limit).
    #[arg(long, default_value_t = 1000, hide = true, value_parser = clap::value_parser!(u16).range(1..=1000))]
    pub page_size: u16,
    /// Seconds between plain progress lines when stderr is not a terminal (0: after every page).
    #[arg(long, default_value_t = 5.0, hide = true, value_parser = parse_seconds)]
    pub progress_interval: f64,
}

fn parse_legacy_scope(raw: &str) -> Result<Scope, String> {
    Scope::from_legacy_org_id(raw).map_err(|e| e.to_string())
}

fn parse_seconds(raw: &str) -> Result<f64, String> {
    match raw.parse::<f64>() {
        Ok(seconds) if seconds.is_finite() && seconds >= 0.0 => Ok(seconds),
        _ => Err(format!("{raw:?} is not a number of seconds >= 0")),
    }
}

#[derive(Debug, Args)]
pub struct EnsureArgs {
    #[command(flatten)]
    pub store: StoreArgs,
}

#[derive(Debug, Args)]
pub struct PackageArgs {
    /// Output directory.
    #[arg(long, default_value = "dist")]
    pub out: PathBuf,
    /// The linux-x64 binary to ship (default: this executable; build it with `cargo build --release`).
    #[arg(long)]
    pub binary: Option<PathBuf>,
}

#[derive(Debug, Clone, Args)]
pub struct StoreArgs {
    /// Directory of the embedded store (used when --store is not given).
    #[arg(long, env = DATA_ENV, default_value = "data")]
    pub data: PathBuf,
    /// Store URL: sqlite:PATH (default: sqlite:<data>/bifrost.db), cosmos://ACCOUNT.documents.azure.com/?key=KEY,
    /// cosmos://ACCOUNT.documents.azure.com/?identity=managed[&client_id=ID], cosmos+http://127.0.0.1:PORT/?key=KEY
    /// (local emulator), or AccountEndpoint=https://…;AccountKey=…; (each may add a database, default bifrost).
    #[arg(long, env = STORE_ENV)]
    pub store: Option<StoreUrl>,
    /// Blob storage for results over 2 MB: dir:PATH (default: dir:<data>/blobs), azblob:<storage
    /// connection string>, or azblob:https://ACCOUNT.blob.core.windows.net[?clientId=ID] (managed identity).
    #[arg(long, env = crate::blobs::BLOBS_ENV)]
    pub blobs: Option<crate::blobs::BlobLocation>,
}

impl StoreArgs {
    pub fn url(&self) -> StoreUrl {
        crate::runtime::config::store_url(self.store.as_ref(), &self.data)
    }

    pub fn blob_location(&self) -> crate::blobs::BlobLocation {
        self.blobs
            .clone()
            .unwrap_or_else(|| crate::blobs::BlobLocation::under(&self.data))
    }
}

#[derive(Debug, Args)]
pub struct HandlerArgs {
    /// Port to listen on (127.0.0.1); the Functions host sets it.
    #[arg(long, env = PORT_ENV, default_value_t = 8080)]
    pub port: u16,
    #[command(flatten)]
    pub store: StoreArgs,
    #[command(flatten)]
    pub realtime: RealtimeArgs,
}

/// Where real-time messages go. Both are strings here, parsed by `config::realtime_target`:
/// clap's own errors would print the whole value, access key included.
#[derive(Debug, Clone, Args)]
pub struct RealtimeArgs {
    /// Where real-time messages go: hub (serve's built-in hub on --listen) | none | console |
    /// journal:PATH | a SignalR connection string. Default: the AzureSignalRConnectionString
    /// setting when present, else the mode's default (handler: none; serve: hub).
    #[arg(long, env = SIGNALR_ENV, hide_env_values = true)]
    pub signalr: Option<String>,
    /// Azure SignalR Service connection string (Endpoint=…;AccessKey=…;Version=1.0;).
    #[arg(long = "signalr-connection-string", env = SIGNALR_CONNECTION_ENV, hide_env_values = true)]
    pub connection_string: Option<String>,
}

impl RealtimeArgs {
    /// The target these arguments name, or `default` when they name none.
    pub fn target(&self, default: SinkTarget) -> anyhow::Result<SinkTarget> {
        realtime_target(
            self.signalr.as_deref(),
            self.connection_string.as_deref(),
            default,
        )
    }
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on; port 0 picks a free one (the first stdout line names it).
    #[arg(long, default_value = "127.0.0.1:7071")]
    pub listen: SocketAddr,
    #[command(flatten)]
    pub store: StoreArgs,
    #[command(flatten)]
    pub realtime: RealtimeArgs,
    /// Keep simulating executions so logs stream: to the console page and, line by line, on stdout.
    #[arg(long)]
    pub demo: bool,
    /// A browser origin (scheme://host[:port]) allowed to call the API and the hub from another
    /// origin; repeat for more. Default: the loopback development servers
    /// (http://localhost:3000, http://127.0.0.1:3000, http://localhost:5173, http://127.0.0.1:5173).
    /// Any other origin gets no CORS headers.
    #[arg(long = "cors-origin", value_name = "ORIGIN")]
    pub cors_origins: Vec<crate::serve::cors::Origin>,
    /// Who sets X-MS-CLIENT-PRINCIPAL: `dev` (the console's dev sign-in may set it, as a platform
    /// admin or a member of one organization) or `proxy` (serve sits behind real authentication,
    /// such as EasyAuth, which sets it; dev sign-in is off).
    #[arg(long, value_enum, default_value_t = AuthMode::Dev)]
    pub auth: AuthMode,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum AuthMode {
    Dev,
    Proxy,
}

#[derive(Debug, Args)]
pub struct SimulateArgs {
    #[command(flatten)]
    pub store: StoreArgs,
    /// Number of concurrent executions.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub executions: u32,
    /// Log documents per execution.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(0..=1_000_000))]
    pub logs: u32,
    /// Log documents per second across all executions (0 = as fast as possible).
    #[arg(long, default_value_t = 100.0, value_parser = parse_rate)]
    pub rate: f64,
    /// At most this many documents per store transaction: each transaction holds the logs due
    /// at that moment, all stamped with its time (1: one transaction per log).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=10_000))]
    pub batch: u16,
    /// GLOBAL or org-<uuid>.
    #[arg(long, default_value = "GLOBAL")]
    pub scope: Scope,
    #[arg(long, default_value = "simulated_workflow")]
    pub workflow: String,
    #[arg(long, default_value = "simulator@bifrost.local")]
    pub executed_by: String,
    /// After creating the executions (and printing their ids), wait for a line on stdin before
    /// writing any log, so observers can subscribe first.
    #[arg(long)]
    pub wait_for_stdin: bool,
}

fn parse_rate(raw: &str) -> Result<f64, String> {
    match raw.parse::<f64>() {
        Ok(rate) if rate.is_finite() && rate >= 0.0 => Ok(rate),
        _ => Err(format!(
            "{raw:?} is not a rate: expected a number of logs per second >= 0"
        )),
    }
}

#[derive(Debug, Args)]
#[command(group = clap::ArgGroup::new("action").required(true))]
pub struct FunctionsArgs {
    /// Write the generated files under this repository root: host.json and
    /// local.settings.json.example at the top, functions/<Name>/function.json (`package`
    /// assembles the deployable app root from the same output).
    #[arg(long, group = "action")]
    pub write: Option<PathBuf>,
    /// Compare the files under this repository root with what would be generated; non-zero
    /// exit on any difference.
    #[arg(long, group = "action")]
    pub check: Option<PathBuf>,
    /// Print the deployment names the code uses (containers, settings, connections, generated files) as JSON.
    #[arg(long, group = "action")]
    pub manifest: bool,
    /// Print the OpenAPI 3.1 document of the HTTP functions (what `GET /api/openapi.json` serves).
    #[arg(long, group = "action")]
    pub openapi: bool,
}
