//! Where an execution's `ExecutionLogs` rows come from.
//!
//! `PerExecution` asks the Table service for one partition per execution: right when only part of
//! the source is migrated (`--scope`, `--since`), since it reads nothing else. `Spooled` reads the
//! whole table once, up front, as 16 parallel `PartitionKey` range scans at 1000 rows a request,
//! into a local SQLite file that the plans then read by execution id. For a whole-account run it
//! costs far fewer requests (50,000 executions × 10 logs: 500 pages instead of 50,000 queries),
//! and it keeps Azurite usable: Azurite answers every query by scanning the whole table, so one
//! query per execution is quadratic there.
//!
//! The spool is a snapshot taken when the run starts: log rows a still-running legacy system
//! appends later are picked up by the next run (the rerun writes only what changed).

use std::path::Path;
use std::sync::{Arc, Mutex};

use rusqlite::{params, Connection};
use tokio::task::JoinSet;

use super::client::{Continuation, Entity, ReadError, StorageClient, MAX_PAGE};
use super::mapping;

pub const LOG_TABLE: &str = "ExecutionLogs";

/// How the log rows are read (`--log-read`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogReadMode {
    /// Spool for whole-account runs, per execution with --scope or --since.
    Auto,
    /// Read the whole table once into a local spool.
    Scan,
    /// One partition query per execution.
    PerExecution,
}

impl LogReadMode {
    /// Whether this run reads the whole table up front.
    pub fn spools(self, partial_run: bool) -> bool {
        match self {
            LogReadMode::Auto => !partial_run,
            LogReadMode::Scan => true,
            LogReadMode::PerExecution => false,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LogSourceError {
    #[error(transparent)]
    Source(#[from] ReadError),
    #[error("log spool: {0}")]
    Spool(String),
}

impl From<rusqlite::Error> for LogSourceError {
    fn from(e: rusqlite::Error) -> Self {
        LogSourceError::Spool(e.to_string())
    }
}

#[derive(Debug, Clone)]
pub enum LogSource {
    PerExecution,
    Spooled(Arc<LogSpool>),
}

impl LogSource {
    /// The `ExecutionLogs` rows of one execution (any order; mapping sorts them).
    pub async fn rows_for(
        &self,
        client: &StorageClient,
        execution_id: &str,
    ) -> Result<Vec<Entity>, LogSourceError> {
        match self {
            LogSource::PerExecution => {
                let filter = format!("PartitionKey eq {}", odata_quote(execution_id));
                Ok(tolerate_missing_table(
                    client.query_all(LOG_TABLE, &filter).await,
                )?)
            }
            LogSource::Spooled(spool) => {
                let spool = spool.clone();
                let id = execution_id.to_owned();
                tokio::task::spawn_blocking(move || spool.rows_for(&id))
                    .await
                    .map_err(|e| LogSourceError::Spool(e.to_string()))?
            }
        }
    }
}

/// Deployments from before 2025-10-28 have no `ExecutionLogs` table: that is "no logs".
fn tolerate_missing_table(
    result: Result<Vec<Entity>, ReadError>,
) -> Result<Vec<Entity>, ReadError> {
    match result {
        Err(ReadError::Status { status: 404, .. }) => Ok(Vec::new()),
        other => other,
    }
}

fn odata_quote(value: &str) -> String {
    format!("'{}'", value.replace('\'', "''"))
}

/// The `PartitionKey` ranges scanned in parallel: below "1", one per leading character "1" … "e",
/// and from "f" up. Together they cover every string, so no row is missed whatever the keys look
/// like; for UUID partition keys they split the table into 16 even parts.
pub fn partition_ranges() -> Vec<String> {
    let bounds: Vec<char> = "123456789abcdef".chars().collect();
    let mut filters = vec![format!("PartitionKey lt '{}'", bounds[0])];
    for pair in bounds.windows(2) {
        filters.push(format!(
            "PartitionKey ge '{}' and PartitionKey lt '{}'",
            pair[0], pair[1]
        ));
    }
    filters.push(format!("PartitionKey ge '{}'", bounds[bounds.len() - 1]));
    filters
}

/// The whole `ExecutionLogs` table in a local SQLite file, by execution id. The file lives in a
/// temporary directory removed when the spool is dropped.
#[derive(Debug)]
pub struct LogSpool {
    connection: Mutex<Connection>,
    rows: std::sync::atomic::AtomicU64,
    _dir: tempfile::TempDir,
}

impl LogSpool {
    fn create() -> Result<LogSpool, LogSourceError> {
        let temp = std::env::temp_dir();
        remove_stale_spools(&temp);
        let dir = tempfile::Builder::new()
            .prefix(&format!("{SPOOL_PREFIX}{}-", std::process::id()))
            .tempdir_in(&temp)
            .map_err(|e| LogSourceError::Spool(format!("creating a temporary directory: {e}")))?;
        let connection = open_spool(&dir.path().join("logs.sqlite"))?;
        Ok(LogSpool {
            connection: Mutex::new(connection),
            rows: Default::default(),
            _dir: dir,
        })
    }

    /// Reads every `ExecutionLogs` row into a new spool; `on_page` is told each page's row count.
    pub async fn fill(
        client: &StorageClient,
        on_page: impl Fn(u64) + Send + Sync + 'static,
    ) -> Result<Arc<LogSpool>, LogSourceError> {
        let spool = Arc::new(LogSpool::create()?);
        let on_page = Arc::new(on_page);
        let mut scans = JoinSet::new();
        for filter in partition_ranges() {
            let (client, spool, on_page) = (client.clone(), spool.clone(), on_page.clone());
            scans
                .spawn(async move { scan_range(&client, &spool, &filter, on_page.as_ref()).await });
        }
        while let Some(joined) = scans.join_next().await {
            joined.map_err(|e| LogSourceError::Spool(format!("scan task failed: {e}")))??;
        }
        Ok(spool)
    }

    /// Rows spooled so far.
    pub fn len(&self) -> u64 {
        self.rows.load(std::sync::atomic::Ordering::Relaxed)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn insert(&self, rows: &[Entity]) -> Result<(), LogSourceError> {
        let mut connection = self
            .connection
            .lock()
            .map_err(|_| LogSourceError::Spool("spool lock poisoned".into()))?;
        let transaction = connection.transaction()?;
        {
            let mut statement = transaction.prepare_cached(
                "INSERT OR REPLACE INTO log_rows (partition_key, row_key, entity) VALUES (?1, ?2, ?3)",
            )?;
            for row in rows {
                let partition_key = mapping::text(row, "PartitionKey").unwrap_or_default();
                let row_key = mapping::text(row, "RowKey").unwrap_or_default();
                let entity = serde_json::Value::Object(row.clone()).to_string();
                statement.execute(params![partition_key, row_key, entity])?;
            }
        }
        transaction.commit()?;
        self.rows
            .fetch_add(rows.len() as u64, std::sync::atomic::Ordering::Relaxed);
        Ok(())
    }

    fn rows_for(&self, execution_id: &str) -> Result<Vec<Entity>, LogSourceError> {
        let connection = self
            .connection
            .lock()
            .map_err(|_| LogSourceError::Spool("spool lock poisoned".into()))?;
        let mut statement = connection.prepare_cached(
            "SELECT entity FROM log_rows WHERE partition_key = ?1 ORDER BY row_key",
        )?;
        let texts = statement
            .query_map(params![execution_id], |row| row.get::<_, String>(0))?
            .collect::<Result<Vec<String>, _>>()?;
        texts
            .iter()
            .map(|text| {
                serde_json::from_str::<Entity>(text)
                    .map_err(|e| LogSourceError::Spool(format!("reading a spooled row: {e}")))
            })
            .collect()
    }
}

const SPOOL_PREFIX: &str = "bifrost-migrate-logs-";

/// A run killed by a signal never removes its spool (hundreds of MB for a large account): the
/// next run removes every spool whose process is gone. Where that cannot be told (no `/proc`),
/// spools are kept.
fn remove_stale_spools(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let owner = name
            .to_str()
            .and_then(|name| name.strip_prefix(SPOOL_PREFIX))
            .and_then(|rest| rest.split('-').next())
            .and_then(|pid| pid.parse::<u32>().ok());
        let Some(pid) = owner else {
            continue;
        };
        if pid != std::process::id() && !process_alive(pid) {
            match std::fs::remove_dir_all(entry.path()) {
                Ok(()) => {
                    tracing::info!(path = %entry.path().display(), "removed the log spool of an interrupted run")
                }
                Err(e) => {
                    tracing::warn!(path = %entry.path().display(), "cannot remove a stale log spool: {e}")
                }
            }
        }
    }
}

fn process_alive(pid: u32) -> bool {
    let proc = Path::new("/proc");
    !proc.join("self").exists() || proc.join(pid.to_string()).exists()
}

fn open_spool(path: &Path) -> Result<Connection, LogSourceError> {
    let connection = Connection::open(path)?;
    // A scratch file: durability buys nothing, a crash just rescans.
    connection.execute_batch(
        "PRAGMA journal_mode = OFF;
         PRAGMA synchronous = OFF;
         CREATE TABLE log_rows (
             partition_key TEXT NOT NULL,
             row_key TEXT NOT NULL,
             entity TEXT NOT NULL,
             PRIMARY KEY (partition_key, row_key)
         ) WITHOUT ROWID;",
    )?;
    Ok(connection)
}

async fn scan_range(
    client: &StorageClient,
    spool: &Arc<LogSpool>,
    filter: &str,
    on_page: &(dyn Fn(u64) + Send + Sync),
) -> Result<(), LogSourceError> {
    let mut next: Option<Continuation> = None;
    loop {
        let page = match client
            .query_page(LOG_TABLE, filter, None, MAX_PAGE, next.as_ref())
            .await
        {
            Ok(page) => page,
            Err(ReadError::Status { status: 404, .. }) => return Ok(()),
            Err(e) => return Err(e.into()),
        };
        let count = page.entities.len() as u64;
        let writer = spool.clone();
        tokio::task::spawn_blocking(move || writer.insert(&page.entities))
            .await
            .map_err(|e| LogSourceError::Spool(e.to_string()))??;
        on_page(count);
        match page.next {
            Some(continuation) => next = Some(continuation),
            None => return Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn ranges_cover_every_key_exactly_once() {
        let ranges = partition_ranges();
        assert_eq!(ranges.len(), 16);
        // Evaluate each filter by hand on keys around and between the bounds.
        let matches = |filter: &str, key: &str| {
            filter.split(" and ").all(|clause| {
                let mut parts = clause.splitn(3, ' ');
                let (_, op, bound) = (parts.next(), parts.next(), parts.next());
                let bound = bound.unwrap_or_default().trim_matches('\'');
                match op {
                    Some("lt") => key < bound,
                    Some("ge") => key >= bound,
                    _ => false,
                }
            })
        };
        for key in [
            "", "0", "0fff", "1", "1a", "9zzz", "A-upper", "a", "e9", "f", "ffff", "z", "~", "ü",
        ] {
            let hits = ranges.iter().filter(|f| matches(f, key)).count();
            assert_eq!(hits, 1, "{key:?} is in {hits} ranges");
        }
    }

    #[test]
    fn spools_of_dead_processes_are_removed_and_others_kept() {
        let temp = tempfile::tempdir().unwrap();
        let dead = temp.path().join(format!("{SPOOL_PREFIX}4294967295-abc"));
        let mine = temp
            .path()
            .join(format!("{SPOOL_PREFIX}{}-abc", std::process::id()));
        let unrelated = temp.path().join("bifrost-migrate-logs-not-a-pid");
        for dir in [&dead, &mine, &unrelated] {
            std::fs::create_dir(dir).unwrap();
            std::fs::write(dir.join("logs.sqlite"), b"x").unwrap();
        }
        remove_stale_spools(temp.path());
        assert!(!dead.exists());
        assert!(mine.exists() && unrelated.exists());
    }

    #[test]
    fn spooled_rows_come_back_by_execution_in_row_key_order() {
        let spool = LogSpool::create().unwrap();
        let row = |pk: &str, rk: &str, message: &str| -> Entity {
            json!({"PartitionKey": pk, "RowKey": rk, "Message": message})
                .as_object()
                .unwrap()
                .clone()
        };
        spool
            .insert(&[
                row("b", "2", "b2"),
                row("a", "2", "a2"),
                row("a", "1", "a1"),
            ])
            .unwrap();
        // The same row again (a rescan) replaces, never duplicates.
        spool.insert(&[row("a", "1", "a1 again")]).unwrap();
        let messages = |id: &str| -> Vec<String> {
            spool
                .rows_for(id)
                .unwrap()
                .iter()
                .map(|r| r["Message"].as_str().unwrap().to_owned())
                .collect()
        };
        assert_eq!(messages("a"), ["a1 again", "a2"]);
        assert_eq!(messages("b"), ["b2"]);
        assert!(messages("c").is_empty());
    }
}
