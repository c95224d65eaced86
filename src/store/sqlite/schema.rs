//! The store file's layout, and opening it: the `documents` and `change_log` tables, their
//! indexes, the planner statistics that make SQLite use those indexes, the schema version, and
//! the connection settings every connection gets.
//!
//! `documents` holds each live document (body without system properties, ETag, `_ts`, its lsn
//! and expiry); `change_log` has one row per document at its latest change (`writes` keeps it,
//! `feed` reads it).

use std::path::Path;

use rusqlite::{Connection, OpenFlags, TransactionBehavior};

use super::rows::backend;
use crate::store::StoreError;

pub(super) const SCHEMA_VERSION: i64 = 1;
const BUSY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS documents (
    container  TEXT    NOT NULL,
    pk         TEXT    NOT NULL,
    id         TEXT    NOT NULL,
    body       TEXT    NOT NULL,
    etag       TEXT    NOT NULL,
    ts         INTEGER NOT NULL,
    lsn        INTEGER NOT NULL,
    expires_at INTEGER,
    PRIMARY KEY (container, pk, id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS change_log (
    lsn       INTEGER PRIMARY KEY AUTOINCREMENT,
    container TEXT NOT NULL,
    pk        TEXT NOT NULL,
    id        TEXT NOT NULL,
    UNIQUE (container, pk, id)
);
CREATE INDEX IF NOT EXISTS change_log_by_container ON change_log (container, lsn);
CREATE INDEX IF NOT EXISTS documents_by_expiry ON documents (expires_at) WHERE expires_at IS NOT NULL;
-- The execution list (newest first within a scope) walks this index instead of sorting the
-- partition. The expression must match the one queries render for `startedAt` exactly.
CREATE INDEX IF NOT EXISTS documents_by_started_at
    ON documents (container, pk, json_extract(body, '$.startedAt'), id);
-- Status filters (the dashboard's running/pending gauges, status-filtered lists) find their
-- rows directly instead of reading the whole scope.
CREATE INDEX IF NOT EXISTS documents_by_status
    ON documents (container, pk, json_extract(body, '$.status'));
";

/// Planner statistics describing the typical shape of a store (many documents per partition,
/// few distinct statuses), written by hand as SQLite documents for manual plan control
/// (sqlite.org/optoverview.html, "Manual Control Of Query Plans Using SQLITE_STAT Tables").
/// Without statistics the planner ignores the expression indexes above and scans whole
/// partitions; with them, status filters use `documents_by_status` and ordered lists walk
/// `documents_by_started_at`. A real `ANALYZE` replaces these with measured figures.
const PLANNER_STATS: &str = "
ANALYZE sqlite_schema;
DELETE FROM sqlite_stat1 WHERE tbl = 'documents';
INSERT INTO sqlite_stat1 (tbl, idx, stat) VALUES
    ('documents', 'documents', '100000 20000 2000 1'),
    ('documents', 'documents_by_status', '100000 20000 2000 1000'),
    ('documents', 'documents_by_started_at', '100000 20000 2000 2 1');
ANALYZE sqlite_schema;
";

pub(super) fn open_connection(path: &Path, read_only: bool) -> Result<Connection, StoreError> {
    let flags = if read_only {
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX
    } else {
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX
    };
    let conn = Connection::open_with_flags(path, flags).map_err(backend)?;
    // Another process (simulate) may hold the write lock for a moment: wait rather than fail.
    conn.busy_timeout(BUSY_TIMEOUT).map_err(backend)?;
    conn.set_prepared_statement_cache_capacity(64);
    Ok(conn)
}

/// Opens the writer connection and brings the file to this build's schema in one transaction
/// (WAL, tables, indexes, planner statistics, version); a file from a newer build is refused.
/// Blocking.
pub(super) fn open_writer(path: &Path) -> Result<Connection, StoreError> {
    let mut writer = open_connection(path, false)?;
    let journal_mode: String = writer
        .query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))
        .map_err(backend)?;
    if !journal_mode.eq_ignore_ascii_case("wal") {
        // Still correct, but readers and a second process will wait on writers.
        tracing::warn!(path = %path.display(), %journal_mode, "SQLite store could not switch to WAL");
    }
    writer
        .execute_batch("PRAGMA synchronous=NORMAL;")
        .map_err(backend)?;
    // One transaction, so two processes opening a new file at once cannot interleave.
    let tx = writer
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(backend)?;
    let version: i64 = tx
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(backend)?;
    if version > SCHEMA_VERSION {
        return Err(StoreError::Backend(format!(
            "{} has schema version {version}, newer than this build's {SCHEMA_VERSION}",
            path.display()
        )));
    }
    tx.execute_batch(SCHEMA).map_err(backend)?;
    let stats_table: bool = tx
        .query_row(
            "SELECT EXISTS (SELECT 1 FROM sqlite_schema WHERE name = 'sqlite_stat1')",
            [],
            |r| r.get(0),
        )
        .map_err(backend)?;
    let has_stats = stats_table
        && tx
            .query_row(
                "SELECT EXISTS (SELECT 1 FROM sqlite_stat1 WHERE tbl = 'documents')",
                [],
                |r| r.get::<_, bool>(0),
            )
            .map_err(backend)?;
    if !has_stats {
        tx.execute_batch(PLANNER_STATS).map_err(backend)?;
    }
    if version < SCHEMA_VERSION {
        tx.execute_batch(&format!("PRAGMA user_version = {SCHEMA_VERSION}"))
            .map_err(backend)?;
    }
    tx.commit().map_err(backend)?;
    Ok(writer)
}
