//! The embedded default store: one SQLite file in WAL mode (so `simulate` in another process can
//! write while `serve` reads), a change-feed log with a monotonic position, and Cosmos-style TTL.
//!
//! Schema: `documents` holds each live document (body without system properties, ETag, `_ts`,
//! its lsn and expiry); `change_log` has one row per document at its latest change. Every write
//! re-inserts the document's `change_log` row in the same transaction, so it gets a fresh
//! AUTOINCREMENT lsn (monotonic, never reused even after the newest row is deleted): reading
//! `lsn > position` is Cosmos' latest-version change feed. SQLite serializes writers (across
//! processes too), so commits happen in lsn order and a reader never sees a later lsn before an
//! earlier one.

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;
use rusqlite::types::Value as SqlValue;
use rusqlite::{
    params, params_from_iter, Connection, OpenFlags, OptionalExtension, Transaction,
    TransactionBehavior,
};
use serde_json::Value;

use super::keyset;
use super::patch::{self, PatchOp};
use super::query::{Field, FilterOp, Query};
use super::validate::{validate, validate_in_partition, ValidDocument as Incoming};
use super::{
    check_batch_size, BatchOperation, BatchOutcome, ChangeFeedPage, Container, ETag, FeedPosition,
    Page, Store, StoreError, StoredDocument,
};
use crate::clock::Clock;

const SCHEMA_VERSION: i64 = 1;
const READERS: usize = 4;
const BUSY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);
/// How many expired change-log rows one feed read may step over beyond `max_items`, so a long
/// run of expired documents costs several polls instead of one unbounded scan.
const EXPIRED_SCAN_ALLOWANCE: usize = 10_000;

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

#[derive(Debug)]
pub struct SqliteStore {
    writer: Arc<Mutex<Connection>>,
    readers: Arc<ReaderPool>,
    clock: Arc<dyn Clock>,
}

/// Read-only connections, so reads run on their own WAL snapshot and never queue behind writes.
#[derive(Debug)]
struct ReaderPool {
    connections: Vec<Mutex<Connection>>,
    next: AtomicUsize,
}

impl ReaderPool {
    /// A free connection if there is one, else waits on the next in turn (spreads the waiting).
    fn get(&self) -> MutexGuard<'_, Connection> {
        if let Some(free) = self.connections.iter().find_map(|c| c.try_lock().ok()) {
            return free;
        }
        let index = self.next.fetch_add(1, Ordering::Relaxed) % self.connections.len();
        // A panic while holding a reader leaves no half-done state: reads have no effects.
        self.connections[index]
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

fn backend(e: rusqlite::Error) -> StoreError {
    use rusqlite::ErrorCode;
    match e.sqlite_error_code() {
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => {
            StoreError::Unavailable(e.to_string())
        }
        _ => StoreError::Backend(e.to_string()),
    }
}

fn open_connection(path: &Path, read_only: bool) -> Result<Connection, StoreError> {
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

impl SqliteStore {
    /// Opens (creating if needed) the store file and its schema. Blocking.
    pub fn open(path: &Path, clock: Arc<dyn Clock>) -> Result<SqliteStore, StoreError> {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent)
                .map_err(|e| StoreError::Backend(format!("creating {}: {e}", parent.display())))?;
        }
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
        let connections = (0..READERS)
            .map(|_| open_connection(path, true).map(Mutex::new))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(SqliteStore {
            writer: Arc::new(Mutex::new(writer)),
            readers: Arc::new(ReaderPool {
                connections,
                next: AtomicUsize::new(0),
            }),
            clock,
        })
    }

    /// Runs blocking work on a reader connection; `now` is the clock's epoch milliseconds.
    async fn read_with<T: Send + 'static>(
        &self,
        work: impl FnOnce(&mut Connection, i64) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let readers = self.readers.clone();
        let now = self.clock.now().epoch_millis();
        tokio::task::spawn_blocking(move || work(&mut readers.get(), now))
            .await
            .map_err(|e| StoreError::Backend(format!("store task failed: {e}")))?
    }

    /// Runs blocking work in one IMMEDIATE transaction on the writer connection: taking the
    /// write lock up front means a conditional write's check and its write see the same state.
    async fn write_with<T: Send + 'static>(
        &self,
        work: impl FnOnce(&Transaction<'_>, i64) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let writer = self.writer.clone();
        let now = self.clock.now().epoch_millis();
        tokio::task::spawn_blocking(move || {
            // A panic mid-transaction rolled it back when the Transaction dropped.
            let mut conn = writer.lock().unwrap_or_else(|p| p.into_inner());
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(backend)?;
            let result = work(&tx, now)?;
            tx.commit().map_err(backend)?;
            Ok(result)
        })
        .await
        .map_err(|e| StoreError::Backend(format!("store task failed: {e}")))?
    }
}

enum PreparedOp {
    Create(Incoming),
    Upsert(Incoming, Option<ETag>),
    Replace(Incoming, Option<ETag>),
    Delete(String, String, Option<ETag>),
}

/// Validates every operation before the transaction starts: all in `partition_key`, at most
/// `MAX_BATCH_OPERATIONS`.
fn prepare_batch(
    container: Container,
    partition_key: &str,
    operations: Vec<BatchOperation>,
) -> Result<Vec<PreparedOp>, StoreError> {
    check_batch_size(operations.len())?;
    let in_partition = |doc| validate_in_partition(container, partition_key, doc);
    operations
        .into_iter()
        .map(|op| {
            Ok(match op {
                BatchOperation::Create(doc) => PreparedOp::Create(in_partition(doc)?),
                BatchOperation::Upsert { doc, if_match } => {
                    PreparedOp::Upsert(in_partition(doc)?, if_match)
                }
                BatchOperation::Replace { doc, if_match } => {
                    PreparedOp::Replace(in_partition(doc)?, if_match)
                }
                BatchOperation::Delete { id, if_match } => {
                    PreparedOp::Delete(partition_key.to_owned(), id, if_match)
                }
            })
        })
        .collect()
}

fn tx_create(
    tx: &Transaction<'_>,
    container: Container,
    doc: Incoming,
    now: i64,
) -> Result<StoredDocument, StoreError> {
    // An expired document still in the table does not count: it is replaced.
    if live_etag(tx, container, &doc.pk, &doc.id, now)?.is_some() {
        return Err(StoreError::Conflict {
            container: container.name(),
            id: doc.id,
        });
    }
    write_document(tx, container, doc, now)
}

fn tx_upsert(
    tx: &Transaction<'_>,
    container: Container,
    doc: Incoming,
    if_match: Option<&ETag>,
    now: i64,
) -> Result<StoredDocument, StoreError> {
    if let Some(expected) = if_match {
        if live_etag(tx, container, &doc.pk, &doc.id, now)?.as_deref() != Some(expected.0.as_str())
        {
            return Err(precondition_failed(container, &doc.id));
        }
    }
    write_document(tx, container, doc, now)
}

fn tx_replace(
    tx: &Transaction<'_>,
    container: Container,
    doc: Incoming,
    if_match: Option<&ETag>,
    now: i64,
) -> Result<StoredDocument, StoreError> {
    match live_etag(tx, container, &doc.pk, &doc.id, now)? {
        None => {
            return Err(StoreError::NotFound {
                container: container.name(),
                id: doc.id,
            })
        }
        Some(current) if if_match.is_some_and(|e| e.0 != current) => {
            return Err(precondition_failed(container, &doc.id))
        }
        Some(_) => {}
    }
    write_document(tx, container, doc, now)
}

fn tx_delete(
    tx: &Transaction<'_>,
    container: Container,
    pk: &str,
    id: &str,
    if_match: Option<&ETag>,
    now: i64,
) -> Result<bool, StoreError> {
    let Some(current) = live_etag(tx, container, pk, id, now)? else {
        return Ok(false);
    };
    if if_match.is_some_and(|e| e.0 != current) {
        return Err(precondition_failed(container, id));
    }
    for sql in [
        "DELETE FROM documents WHERE container = ?1 AND pk = ?2 AND id = ?3",
        "DELETE FROM change_log WHERE container = ?1 AND pk = ?2 AND id = ?3",
    ] {
        tx.prepare_cached(sql)
            .map_err(backend)?
            .execute(params![container.name(), pk, id])
            .map_err(backend)?;
    }
    Ok(true)
}

fn live_etag(
    tx: &Transaction<'_>,
    container: Container,
    pk: &str,
    id: &str,
    now_ms: i64,
) -> Result<Option<String>, StoreError> {
    tx.prepare_cached(
        "SELECT etag FROM documents WHERE container = ?1 AND pk = ?2 AND id = ?3
         AND (expires_at IS NULL OR expires_at > ?4)",
    )
    .map_err(backend)?
    .query_row(params![container.name(), pk, id, now_ms], |r| r.get(0))
    .optional()
    .map_err(backend)
}

fn write_document(
    tx: &Transaction<'_>,
    container: Container,
    doc: Incoming,
    now_ms: i64,
) -> Result<StoredDocument, StoreError> {
    let name = container.name();
    // REPLACE deletes the document's previous log row, so the feed holds only its latest change.
    tx.prepare_cached("INSERT OR REPLACE INTO change_log (container, pk, id) VALUES (?1, ?2, ?3)")
        .map_err(backend)?
        .execute(params![name, doc.pk, doc.id])
        .map_err(backend)?;
    let lsn = tx.last_insert_rowid();
    let etag = format!("\"{}\"", uuid::Uuid::new_v4());
    let ts = now_ms.div_euclid(1000);
    let expires_at = doc
        .ttl
        .map(|seconds| now_ms.saturating_add(seconds.saturating_mul(1000)));
    tx.prepare_cached(
        "INSERT OR REPLACE INTO documents (container, pk, id, body, etag, ts, lsn, expires_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )
    .map_err(backend)?
    .execute(params![
        name, doc.pk, doc.id, doc.body, etag, ts, lsn, expires_at
    ])
    .map_err(backend)?;
    let mut body = doc.doc;
    insert_system_properties(&mut body, &etag, ts, lsn);
    Ok(StoredDocument {
        body,
        etag: ETag(etag),
    })
}

fn insert_system_properties(value: &mut Value, etag: &str, ts: i64, lsn: i64) {
    if let Value::Object(map) = value {
        map.insert("_etag".into(), Value::String(etag.to_owned()));
        map.insert("_ts".into(), Value::from(ts));
        map.insert("_lsn".into(), Value::from(lsn));
    }
}

/// A stored body as returned to callers: parsed, with its system properties.
fn with_system_properties(body: &str, etag: &str, ts: i64, lsn: i64) -> Result<Value, StoreError> {
    let mut value: Value = serde_json::from_str(body)
        .map_err(|e| StoreError::Backend(format!("stored body is not JSON: {e}")))?;
    insert_system_properties(&mut value, etag, ts, lsn);
    Ok(value)
}

fn precondition_failed(container: Container, id: &str) -> StoreError {
    StoreError::PreconditionFailed {
        container: container.name(),
        id: id.to_owned(),
    }
}

/// The highest lsn ever handed out (0 before the first write); unlike `MAX(lsn)` it does not
/// go back when the newest document is deleted.
fn current_sequence(conn: &Connection) -> Result<i64, StoreError> {
    conn.prepare_cached(
        "SELECT COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'change_log'), 0)",
    )
    .map_err(backend)?
    .query_row([], |r| r.get(0))
    .map_err(backend)
}

fn parse_position(continuation: &str) -> Result<i64, StoreError> {
    continuation
        .parse::<i64>()
        .ok()
        .filter(|lsn| *lsn >= 0)
        .ok_or(StoreError::BadContinuation)
}

// ---------------------------------------------------------------------------------------------
// Queries

/// How SQL refers to a queried field and to its JSON type.
struct Operand {
    value: String,
    json_type: String,
}

impl Operand {
    /// System properties live in columns (they are not in the stored body); everything else is
    /// read from the body. Field paths are validated identifiers, so quoting them is safe.
    fn of(field: &Field) -> Operand {
        let column = |value: &str, json_type: &str| Operand {
            value: value.to_owned(),
            json_type: json_type.to_owned(),
        };
        match field.path() {
            "id" => column("id", "'text'"),
            "_etag" => column("etag", "'text'"),
            "_ts" => column("ts", "'integer'"),
            "_lsn" => column("lsn", "'integer'"),
            _ => {
                let mut path = String::from("$");
                for segment in field.segments() {
                    path.push('.');
                    path.push_str(segment);
                }
                Operand {
                    value: format!("json_extract(body, '{path}')"),
                    json_type: format!("json_type(body, '{path}')"),
                }
            }
        }
    }
}

/// A scalar filter value as `json_extract` returns its kind (booleans are 0/1), with the JSON
/// types it may be compared with: like Cosmos, values of different types never match (so a
/// `true` does not equal `1`, nor a string sort against a number).
fn typed_value(value: &Value) -> Result<Option<(&'static str, SqlValue)>, StoreError> {
    Ok(Some(match value {
        Value::Null => return Ok(None),
        Value::Bool(b) => ("'true', 'false'", SqlValue::Integer(i64::from(*b))),
        Value::Number(n) => match (n.as_i64(), n.as_f64()) {
            (Some(i), _) => ("'integer', 'real'", SqlValue::Integer(i)),
            (None, Some(f)) => ("'integer', 'real'", SqlValue::Real(f)),
            _ => return Err(StoreError::InvalidQuery(format!("unsupported number {n}"))),
        },
        Value::String(s) => ("'text'", SqlValue::Text(s.clone())),
        Value::Array(_) | Value::Object(_) => {
            return Err(StoreError::InvalidQuery(
                "filter values must be scalars".into(),
            ))
        }
    }))
}

fn comparison(
    operand: &Operand,
    op: &str,
    value: &Value,
    args: &mut Vec<SqlValue>,
) -> Result<String, StoreError> {
    let Operand {
        value: v,
        json_type,
    } = operand;
    Ok(match (typed_value(value)?, op) {
        (None, "=") => format!("{v} IS NULL"),
        (None, "<>") => format!("{v} IS NOT NULL"),
        (None, _) => "0".to_owned(),
        (Some((types, bound)), _) => {
            args.push(bound);
            format!("({json_type} IN ({types}) AND {v} {op} ?)")
        }
    })
}

fn membership(
    operand: &Operand,
    values: &[Value],
    args: &mut Vec<SqlValue>,
) -> Result<String, StoreError> {
    // One typed IN per kind of value present, so mixed lists keep the no-cross-type rule.
    let mut groups: Vec<(&'static str, Vec<SqlValue>)> = Vec::new();
    let mut null = false;
    for value in values {
        match typed_value(value)? {
            None => null = true,
            Some((types, bound)) => match groups.iter_mut().find(|(t, _)| *t == types) {
                Some((_, group)) => group.push(bound),
                None => groups.push((types, vec![bound])),
            },
        }
    }
    let mut alternatives = Vec::new();
    if null {
        alternatives.push(format!("{} IS NULL", operand.value));
    }
    for (types, group) in groups {
        let marks = vec!["?"; group.len()].join(", ");
        alternatives.push(format!(
            "({} IN ({types}) AND {} IN ({marks}))",
            operand.json_type, operand.value
        ));
        args.extend(group);
    }
    Ok(if alternatives.is_empty() {
        "0".to_owned()
    } else {
        format!("({})", alternatives.join(" OR "))
    })
}

/// A query rendered to SQL: every value is a bound parameter.
struct RenderedQuery {
    sql: String,
    args: Vec<SqlValue>,
    /// Number of order-by key columns after the fixed `body, etag, ts, lsn, id`.
    key_count: usize,
    limit: usize,
    /// Identifies the query's shape and parameters, so a token from another query is refused.
    fingerprint: String,
}

fn sql_value_bytes(value: &SqlValue) -> Vec<u8> {
    match value {
        SqlValue::Null => vec![0],
        SqlValue::Integer(i) => [&[1u8][..], &i.to_le_bytes()].concat(),
        SqlValue::Real(f) => [&[2u8][..], &f.to_bits().to_le_bytes()].concat(),
        SqlValue::Text(s) => [&[3u8][..], s.as_bytes()].concat(),
        SqlValue::Blob(b) => [&[4u8][..], b].concat(),
    }
}

fn render_query(
    container: Container,
    pk: &str,
    query: &Query,
    now_ms: i64,
) -> Result<RenderedQuery, StoreError> {
    if query.limit == 0 {
        return Err(StoreError::InvalidQuery("limit must be at least 1".into()));
    }
    // Keys: the order-by fields, then id in the direction of the last key (a total order).
    let mut keys: Vec<(Operand, bool)> = query
        .order_by
        .iter()
        .map(|o| (Operand::of(&o.field), o.descending))
        .collect();
    let id_descending = keys.last().is_some_and(|(_, descending)| *descending);
    keys.push((
        Operand {
            value: "id".into(),
            json_type: "'text'".into(),
        },
        id_descending,
    ));

    let mut sql = String::from("SELECT body, etag, ts, lsn, id");
    for (key, _) in &keys[..keys.len() - 1] {
        sql.push_str(", ");
        sql.push_str(&key.value);
    }
    sql.push_str(" FROM documents WHERE container = ? AND pk = ?");
    let mut args = vec![
        SqlValue::Text(container.name().to_owned()),
        SqlValue::Text(pk.to_owned()),
    ];
    for filter in &query.filters {
        let operand = Operand::of(&filter.field);
        let condition = match &filter.op {
            FilterOp::Eq(v) => comparison(&operand, "=", v, &mut args)?,
            FilterOp::Ne(v) => comparison(&operand, "<>", v, &mut args)?,
            FilterOp::Lt(v) => comparison(&operand, "<", v, &mut args)?,
            FilterOp::Le(v) => comparison(&operand, "<=", v, &mut args)?,
            FilterOp::Gt(v) => comparison(&operand, ">", v, &mut args)?,
            FilterOp::Ge(v) => comparison(&operand, ">=", v, &mut args)?,
            FilterOp::In(values) => membership(&operand, values, &mut args)?,
            FilterOp::Defined(true) => format!("{} IS NOT NULL", operand.value),
            FilterOp::Defined(false) => format!("{} IS NULL", operand.value),
        };
        sql.push_str(" AND ");
        sql.push_str(&condition);
    }
    for (key, _) in &keys[..keys.len() - 1] {
        sql.push_str(&format!(" AND {} IS NOT NULL", key.value));
    }
    let order: Vec<String> = keys
        .iter()
        .map(|(key, d)| format!("{} {}", key.value, if *d { "DESC" } else { "ASC" }))
        .collect();
    let order = order.join(", ");

    let mut hashed: Vec<Vec<u8>> = vec![sql.as_bytes().to_vec(), order.as_bytes().to_vec()];
    hashed.extend(args.iter().map(sql_value_bytes));
    let fingerprint = format!(
        "{:016x}",
        keyset::fnv1a(&hashed.iter().map(Vec::as_slice).collect::<Vec<_>>())
    );

    sql.push_str(" AND (expires_at IS NULL OR expires_at > ?)");
    args.push(SqlValue::Integer(now_ms));

    if let Some(token) = &query.continuation {
        let mut after = decode_continuation(token, &fingerprint, keys.len() - 1)?;
        let same_direction = keys.iter().all(|(_, d)| *d == id_descending);
        if same_direction {
            let columns: Vec<&str> = keys.iter().map(|(k, _)| k.value.as_str()).collect();
            let marks = vec!["?"; keys.len()].join(", ");
            let op = if id_descending { "<" } else { ">" };
            sql.push_str(&format!(" AND ({}) {op} ({marks})", columns.join(", ")));
            args.append(&mut after);
        } else {
            // (k1 > v1) OR (k1 = v1 AND k2 < v2) OR ...: the row-value form needs one direction.
            let mut alternatives = Vec::new();
            for i in 0..keys.len() {
                let mut parts = Vec::new();
                for (j, (key, _)) in keys.iter().enumerate().take(i) {
                    parts.push(format!("{} = ?", key.value));
                    args.push(after[j].clone());
                }
                let (key, descending) = &keys[i];
                let op = if *descending { "<" } else { ">" };
                parts.push(format!("{} {op} ?", key.value));
                args.push(after[i].clone());
                alternatives.push(format!("({})", parts.join(" AND ")));
            }
            sql.push_str(&format!(" AND ({})", alternatives.join(" OR ")));
        }
    }
    sql.push_str(&format!(" ORDER BY {order} LIMIT ?"));
    args.push(SqlValue::Integer(
        i64::try_from(query.limit)
            .unwrap_or(i64::MAX)
            .saturating_add(1),
    ));
    Ok(RenderedQuery {
        sql,
        args,
        key_count: keys.len() - 1,
        limit: query.limit,
        fingerprint,
    })
}

fn sql_to_json(value: SqlValue) -> Value {
    match value {
        SqlValue::Null | SqlValue::Blob(_) => Value::Null,
        SqlValue::Integer(i) => Value::from(i),
        SqlValue::Real(f) => Value::from(f),
        SqlValue::Text(s) => Value::String(s),
    }
}

/// The bound values (order keys, then id) to continue after, or `BadContinuation` for any token
/// this query did not issue.
fn decode_continuation(
    token: &str,
    fingerprint: &str,
    key_count: usize,
) -> Result<Vec<SqlValue>, StoreError> {
    let (keys, id) = keyset::decode(token, fingerprint, key_count)?;
    let mut bound = keys
        .iter()
        .map(|key| match typed_value(key) {
            // Order keys are never null (rows without them are excluded).
            Ok(Some((_, v))) => Ok(v),
            _ => Err(StoreError::BadContinuation),
        })
        .collect::<Result<Vec<_>, _>>()?;
    bound.push(SqlValue::Text(id));
    Ok(bound)
}

fn run_query(conn: &Connection, query: RenderedQuery) -> Result<Page, StoreError> {
    let mut statement = conn.prepare_cached(&query.sql).map_err(backend)?;
    let mut rows = statement
        .query(params_from_iter(query.args.iter()))
        .map_err(backend)?;
    let mut items = Vec::new();
    let mut last: Option<(Vec<Value>, String)> = None;
    let mut more = false;
    while let Some(row) = rows.next().map_err(backend)? {
        if items.len() == query.limit {
            more = true;
            break;
        }
        let body: String = row.get(0).map_err(backend)?;
        let etag: String = row.get(1).map_err(backend)?;
        let ts: i64 = row.get(2).map_err(backend)?;
        let lsn: i64 = row.get(3).map_err(backend)?;
        items.push(with_system_properties(&body, &etag, ts, lsn)?);
        if items.len() == query.limit {
            // Only the last row of a page needs its keys, for the continuation.
            let id: String = row.get(4).map_err(backend)?;
            let keys = (0..query.key_count)
                .map(|i| {
                    row.get::<_, SqlValue>(5 + i)
                        .map(sql_to_json)
                        .map_err(backend)
                })
                .collect::<Result<Vec<_>, _>>()?;
            last = Some((keys, id));
        }
    }
    let continuation = match (more, last) {
        (true, Some((keys, id))) => Some(keyset::encode(&query.fingerprint, keys, &id)),
        _ => None,
    };
    Ok(Page {
        items,
        continuation,
    })
}

fn read_feed(
    conn: &mut Connection,
    container: Container,
    from: &FeedPosition,
    max_items: usize,
    now_ms: i64,
) -> Result<ChangeFeedPage, StoreError> {
    // One snapshot for the sequence check and the scan.
    let tx = conn.transaction().map_err(backend)?;
    let sequence = current_sequence(&tx)?;
    let after = match from {
        FeedPosition::Beginning => 0,
        FeedPosition::Now => sequence,
        FeedPosition::Continuation(c) => match parse_position(c)? {
            // Not issued by this file (positions never pass the sequence): resuming there
            // would silently skip everything until the sequence caught up.
            position if position > sequence => return Err(StoreError::BadContinuation),
            position => position,
        },
    };
    let mut documents = Vec::new();
    let mut position = after;
    if max_items > 0 && after < sequence {
        let mut statement = tx
            .prepare_cached(
                "SELECT c.lsn, d.expires_at, d.body, d.etag, d.ts FROM change_log c
                 JOIN documents d ON d.container = c.container AND d.pk = c.pk AND d.id = c.id
                 WHERE c.container = ?1 AND c.lsn > ?2 ORDER BY c.lsn",
            )
            .map_err(backend)?;
        let mut rows = statement
            .query(params![container.name(), after])
            .map_err(backend)?;
        let scan_limit = max_items.saturating_add(EXPIRED_SCAN_ALLOWANCE);
        let mut scanned = 0;
        while documents.len() < max_items && scanned < scan_limit {
            let Some(row) = rows.next().map_err(backend)? else {
                break;
            };
            scanned += 1;
            let lsn: i64 = row.get(0).map_err(backend)?;
            // Expired documents are not delivered, but the position moves past them.
            position = lsn;
            let expires_at: Option<i64> = row.get(1).map_err(backend)?;
            if expires_at.is_some_and(|at| at <= now_ms) {
                continue;
            }
            let body: String = row.get(2).map_err(backend)?;
            let etag: String = row.get(3).map_err(backend)?;
            let ts: i64 = row.get(4).map_err(backend)?;
            documents.push(with_system_properties(&body, &etag, ts, lsn)?);
        }
    }
    Ok(ChangeFeedPage {
        documents,
        continuation: position.to_string(),
    })
}

#[async_trait]
impl Store for SqliteStore {
    fn backend(&self) -> &'static str {
        "sqlite"
    }

    async fn read(
        &self,
        container: Container,
        partition_key: &str,
        id: &str,
    ) -> Result<Option<StoredDocument>, StoreError> {
        let (pk, id) = (partition_key.to_owned(), id.to_owned());
        self.read_with(move |conn, now| {
            let row: Option<(String, String, i64, i64)> = conn
                .prepare_cached(
                    "SELECT body, etag, ts, lsn FROM documents
                     WHERE container = ?1 AND pk = ?2 AND id = ?3
                     AND (expires_at IS NULL OR expires_at > ?4)",
                )
                .map_err(backend)?
                .query_row(params![container.name(), pk, id, now], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
                })
                .optional()
                .map_err(backend)?;
            row.map(|(body, etag, ts, lsn)| {
                Ok(StoredDocument {
                    body: with_system_properties(&body, &etag, ts, lsn)?,
                    etag: ETag(etag),
                })
            })
            .transpose()
        })
        .await
    }

    async fn create(&self, container: Container, doc: Value) -> Result<StoredDocument, StoreError> {
        let doc = validate(container, doc)?;
        self.write_with(move |tx, now| tx_create(tx, container, doc, now))
            .await
    }

    async fn upsert(
        &self,
        container: Container,
        doc: Value,
        if_match: Option<&ETag>,
    ) -> Result<StoredDocument, StoreError> {
        let doc = validate(container, doc)?;
        let if_match = if_match.cloned();
        self.write_with(move |tx, now| tx_upsert(tx, container, doc, if_match.as_ref(), now))
            .await
    }

    async fn patch(
        &self,
        container: Container,
        partition_key: &str,
        id: &str,
        operations: &[PatchOp],
        if_match: Option<&ETag>,
    ) -> Result<StoredDocument, StoreError> {
        patch::check(container, operations)?;
        let (pk, id) = (partition_key.to_owned(), id.to_owned());
        let (operations, if_match) = (operations.to_vec(), if_match.cloned());
        // Read, apply and write in one write transaction, so no other writer slips in between.
        self.write_with(move |tx, now| {
            let current: Option<(String, String)> = tx
                .prepare_cached(
                    "SELECT body, etag FROM documents
                     WHERE container = ?1 AND pk = ?2 AND id = ?3
                     AND (expires_at IS NULL OR expires_at > ?4)",
                )
                .map_err(backend)?
                .query_row(params![container.name(), pk, id, now], |r| {
                    Ok((r.get(0)?, r.get(1)?))
                })
                .optional()
                .map_err(backend)?;
            let Some((body, etag)) = current else {
                return Err(StoreError::NotFound {
                    container: container.name(),
                    id,
                });
            };
            if if_match.is_some_and(|expected| expected.0 != etag) {
                return Err(precondition_failed(container, &id));
            }
            let mut doc: Value = serde_json::from_str(&body)
                .map_err(|e| StoreError::Backend(format!("stored body is not JSON: {e}")))?;
            patch::apply(container, &mut doc, &operations)?;
            write_document(tx, container, validate(container, doc)?, now)
        })
        .await
    }

    async fn replace(
        &self,
        container: Container,
        doc: Value,
        if_match: Option<&ETag>,
    ) -> Result<StoredDocument, StoreError> {
        let doc = validate(container, doc)?;
        let if_match = if_match.cloned();
        self.write_with(move |tx, now| tx_replace(tx, container, doc, if_match.as_ref(), now))
            .await
    }

    async fn delete(
        &self,
        container: Container,
        partition_key: &str,
        id: &str,
        if_match: Option<&ETag>,
    ) -> Result<bool, StoreError> {
        let (pk, id, if_match) = (partition_key.to_owned(), id.to_owned(), if_match.cloned());
        self.write_with(move |tx, now| tx_delete(tx, container, &pk, &id, if_match.as_ref(), now))
            .await
    }

    async fn batch(
        &self,
        container: Container,
        partition_key: &str,
        operations: Vec<BatchOperation>,
    ) -> Result<Vec<BatchOutcome>, StoreError> {
        let prepared = prepare_batch(container, partition_key, operations)?;
        // One transaction: any failure rolls every operation back, as a Cosmos batch does.
        self.write_with(move |tx, now| {
            prepared
                .into_iter()
                .map(|op| match op {
                    PreparedOp::Create(doc) => {
                        tx_create(tx, container, doc, now).map(BatchOutcome::Written)
                    }
                    PreparedOp::Upsert(doc, if_match) => {
                        tx_upsert(tx, container, doc, if_match.as_ref(), now)
                            .map(BatchOutcome::Written)
                    }
                    PreparedOp::Replace(doc, if_match) => {
                        tx_replace(tx, container, doc, if_match.as_ref(), now)
                            .map(BatchOutcome::Written)
                    }
                    PreparedOp::Delete(pk, id, if_match) => {
                        tx_delete(tx, container, &pk, &id, if_match.as_ref(), now)
                            .map(BatchOutcome::Deleted)
                    }
                })
                .collect()
        })
        .await
    }

    async fn query(
        &self,
        container: Container,
        partition_key: &str,
        query: &Query,
    ) -> Result<Page, StoreError> {
        let rendered = render_query(
            container,
            partition_key,
            query,
            self.clock.now().epoch_millis(),
        )?;
        self.read_with(move |conn, _| run_query(conn, rendered))
            .await
    }

    async fn read_change_feed(
        &self,
        container: Container,
        from: &FeedPosition,
        max_items: usize,
    ) -> Result<ChangeFeedPage, StoreError> {
        let from = from.clone();
        self.read_with(move |conn, now| read_feed(conn, container, &from, max_items, now))
            .await
    }

    async fn pending_changes(
        &self,
        container: Container,
        continuation: &str,
    ) -> Result<Option<u64>, StoreError> {
        let after = parse_position(continuation)?;
        self.read_with(move |conn, _| {
            let count: i64 = conn
                .prepare_cached("SELECT COUNT(*) FROM change_log WHERE container = ?1 AND lsn > ?2")
                .map_err(backend)?
                .query_row(params![container.name(), after], |r| r.get(0))
                .map_err(backend)?;
            Ok(Some(u64::try_from(count).unwrap_or(0)))
        })
        .await
    }

    async fn purge_expired(&self) -> Result<u64, StoreError> {
        self.write_with(|tx, now| {
            tx.prepare_cached(
                "DELETE FROM change_log WHERE (container, pk, id) IN
                 (SELECT container, pk, id FROM documents
                  WHERE expires_at IS NOT NULL AND expires_at <= ?1)",
            )
            .map_err(backend)?
            .execute(params![now])
            .map_err(backend)?;
            let removed = tx
                .prepare_cached(
                    "DELETE FROM documents WHERE expires_at IS NOT NULL AND expires_at <= ?1",
                )
                .map_err(backend)?
                .execute(params![now])
                .map_err(backend)?;
            Ok(u64::try_from(removed).unwrap_or(u64::MAX))
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::{ManualClock, SystemClock};
    use crate::model::Timestamp;
    use crate::store::conformance;
    use serde_json::json;

    fn clock() -> Arc<ManualClock> {
        Arc::new(ManualClock::new(
            Timestamp::parse("2025-01-01T00:00:00Z").unwrap(),
        ))
    }

    fn fresh() -> (tempfile::TempDir, Arc<ManualClock>, Arc<dyn Store>) {
        let dir = tempfile::tempdir().unwrap();
        let clock = clock();
        let store = SqliteStore::open(&dir.path().join("t.db"), clock.clone()).unwrap();
        (dir, clock, Arc::new(store))
    }

    #[tokio::test]
    async fn conformance_transactional_batch() {
        conformance::transactional_batch_is_all_or_nothing(fresh().2).await;
    }

    #[tokio::test]
    async fn conformance_crud_and_etags() {
        conformance::crud_and_etags(fresh().2).await;
    }

    #[tokio::test]
    async fn conformance_invalid_and_oversized_documents() {
        conformance::invalid_and_oversized_documents(fresh().2).await;
    }

    #[tokio::test]
    async fn conformance_queries_with_parameters() {
        conformance::queries_with_parameters(fresh().2).await;
    }

    #[tokio::test]
    async fn conformance_ordering_with_ties() {
        conformance::ordering_with_ties(fresh().2).await;
    }

    #[tokio::test]
    async fn conformance_pagination() {
        conformance::pagination_is_complete_and_stable(fresh().2).await;
    }

    #[tokio::test]
    async fn conformance_partition_isolation() {
        conformance::partition_isolation(fresh().2).await;
    }

    #[tokio::test]
    async fn conformance_change_feed() {
        conformance::change_feed_order_dedupe_and_resume(fresh().2).await;
    }

    #[tokio::test]
    async fn conformance_ttl() {
        let (_dir, clock, store) = fresh();
        conformance::ttl_expires_documents(store, &clock).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn conformance_patches() {
        conformance::patches(fresh().2).await;
    }

    #[tokio::test]
    async fn conformance_ttl_fields() {
        conformance::ttl_fields_are_validated_and_kept(fresh().2).await;
    }

    #[tokio::test]
    async fn conformance_change_feed_steps_over_expired() {
        let (_dir, clock, store) = fresh();
        conformance::change_feed_steps_over_expired_documents(store, &clock).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn conformance_concurrent_writers() {
        conformance::concurrent_writers_and_optimistic_concurrency(fresh().2).await;
    }

    #[test]
    fn open_creates_parent_directories_wal_and_schema_version() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nested/deeper/store.db");
        let store = SqliteStore::open(&path, clock()).unwrap();
        let writer = store.writer.lock().unwrap();
        let mode: String = writer
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .unwrap();
        assert_eq!(mode, "wal");
        let version: i64 = writer
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(version, SCHEMA_VERSION);
        drop(writer);
        drop(store);
        // A file from a newer build is refused rather than misread.
        Connection::open(&path)
            .unwrap()
            .execute_batch("PRAGMA user_version = 99")
            .unwrap();
        assert!(matches!(
            SqliteStore::open(&path, clock()),
            Err(StoreError::Backend(_))
        ));
    }

    #[test]
    fn busy_and_locked_are_transient() {
        let error = |code| rusqlite::Error::SqliteFailure(rusqlite::ffi::Error::new(code), None);
        assert!(backend(error(rusqlite::ffi::SQLITE_BUSY)).is_transient());
        assert!(backend(error(rusqlite::ffi::SQLITE_LOCKED)).is_transient());
        assert!(!backend(error(rusqlite::ffi::SQLITE_CORRUPT)).is_transient());
    }

    #[test]
    fn a_locked_file_reports_unavailable_not_a_hang() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let store = SqliteStore::open(&path, clock()).unwrap();
        let other = Connection::open(&path).unwrap();
        other.execute_batch("BEGIN IMMEDIATE").unwrap();
        // Shorten the wait so the test is quick; production waits BUSY_TIMEOUT.
        store
            .writer
            .lock()
            .unwrap()
            .busy_timeout(std::time::Duration::from_millis(50))
            .unwrap();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let result = runtime.block_on(store.upsert(Container::Leases, json!({"id": "x"}), None));
        assert!(
            matches!(result, Err(StoreError::Unavailable(_))),
            "{result:?}"
        );
        other.execute_batch("ROLLBACK").unwrap();
        runtime
            .block_on(store.upsert(Container::Leases, json!({"id": "x"}), None))
            .unwrap();
    }

    #[test]
    fn query_sql_binds_every_value() {
        let evil = "x'); DROP TABLE documents; --";
        let query = Query::new(10)
            .filter("status", FilterOp::Eq(json!(evil)))
            .filter("n", FilterOp::In(vec![json!(1), json!(evil), json!(null)]))
            .order_by("data.startedAt", true)
            .order_by("n", false);
        let rendered = render_query(Container::Executions, evil, &query, 0).unwrap();
        assert!(!rendered.sql.contains("DROP"), "{}", rendered.sql);
        assert!(rendered
            .sql
            .contains("json_extract(body, '$.data.startedAt')"));
        let placeholders = rendered.sql.matches('?').count();
        assert_eq!(placeholders, rendered.args.len(), "{}", rendered.sql);
        // Array and object values have no SQL form: refused, not stringified.
        let nested = Query::new(1).filter("n", FilterOp::Eq(json!({"a": 1})));
        assert!(matches!(
            render_query(Container::Executions, "p", &nested, 0),
            Err(StoreError::InvalidQuery(_))
        ));
    }

    /// The execution list must walk `documents_by_started_at` in order, not sort the partition:
    /// that is what keeps a page at a few milliseconds over 50,000 executions.
    #[test]
    fn the_execution_list_uses_the_started_at_index() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("plan.db");
        let _store = SqliteStore::open(&path, clock()).unwrap();
        let connection = Connection::open(&path).unwrap();
        for continuation in [None, Some("page-2")] {
            let mut query = Query::new(25)
                .filter("type", FilterOp::Eq(json!("execution")))
                .filter("status", FilterOp::Eq(json!("Failed")))
                .order_by("startedAt", true);
            let fingerprint = render_query(Container::Executions, "GLOBAL", &query, 0)
                .unwrap()
                .fingerprint;
            if continuation.is_some() {
                query.continuation = Some(keyset::encode(
                    &fingerprint,
                    vec![json!("2026-11-01T00:00:00.000000Z")],
                    "id-9",
                ));
            }
            let rendered = render_query(Container::Executions, "GLOBAL", &query, 0).unwrap();
            let mut statement = connection
                .prepare(&format!("EXPLAIN QUERY PLAN {}", rendered.sql))
                .unwrap();
            let plan: Vec<String> = statement
                .query_map(rusqlite::params_from_iter(rendered.args.iter()), |row| {
                    row.get::<_, String>(3)
                })
                .unwrap()
                .map(Result::unwrap)
                .collect();
            let plan = plan.join(" | ");
            assert!(plan.contains("documents_by_started_at"), "{plan}");
            assert!(!plan.contains("TEMP B-TREE"), "{plan}");
        }
    }

    #[test]
    fn status_filters_use_the_status_index() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("plan.db");
        let _store = SqliteStore::open(&path, clock()).unwrap();
        let connection = Connection::open(&path).unwrap();
        let query = Query::new(1000)
            .filter("type", FilterOp::Eq(json!("execution")))
            .filter("status", FilterOp::Eq(json!("Running")));
        let rendered = render_query(Container::Executions, "GLOBAL", &query, 0).unwrap();
        let plan: Vec<String> = connection
            .prepare(&format!("EXPLAIN QUERY PLAN {}", rendered.sql))
            .unwrap()
            .query_map(rusqlite::params_from_iter(rendered.args.iter()), |row| {
                row.get::<_, String>(3)
            })
            .unwrap()
            .map(Result::unwrap)
            .collect();
        assert!(plan.join(" ").contains("documents_by_status"), "{plan:?}");
    }

    #[tokio::test]
    async fn continuation_tokens_are_tied_to_their_query() {
        let (_dir, _clock, store) = fresh();
        let c = Container::Executions;
        for i in 0..5 {
            let doc = json!({"id": format!("d{i}"), "scope": "GLOBAL", "n": i, "m": i});
            store.upsert(c, doc, None).await.unwrap();
        }
        let by_n = Query::new(2).order_by("n", false);
        let token = store.query(c, "GLOBAL", &by_n).await.unwrap().continuation;
        assert!(token.is_some());
        // Same shape, other field / other direction / other partition / other filter value.
        for other in [
            Query::new(2).order_by("m", false),
            Query::new(2).order_by("n", true),
            Query::new(2)
                .filter("n", FilterOp::Ge(json!(0)))
                .order_by("n", false),
        ] {
            assert!(matches!(
                store.query(c, "GLOBAL", &other.after(token.clone())).await,
                Err(StoreError::BadContinuation)
            ));
        }
        assert!(matches!(
            store
                .query(c, "other", &by_n.clone().after(token.clone()))
                .await,
            Err(StoreError::BadContinuation)
        ));
        // The page size may change between pages.
        let rest = store
            .query(
                c,
                "GLOBAL",
                &Query::new(10).order_by("n", false).after(token),
            )
            .await
            .unwrap();
        assert_eq!(rest.items.len(), 3);
    }

    #[tokio::test]
    async fn feed_positions_the_file_never_issued_are_refused() {
        let (_dir, _clock, store) = fresh();
        let c = Container::Leases;
        store.upsert(c, json!({"id": "a"}), None).await.unwrap();
        for bad in ["999999", "-1", "1.5", "", "abc"] {
            assert!(
                matches!(
                    store
                        .read_change_feed(c, &FeedPosition::Continuation(bad.into()), 10)
                        .await,
                    Err(StoreError::BadContinuation)
                ),
                "{bad:?}"
            );
        }
        let page = store
            .read_change_feed(c, &FeedPosition::Beginning, 0)
            .await
            .unwrap();
        assert!(page.documents.is_empty());
        assert_eq!(page.continuation, "0");
    }

    #[tokio::test]
    async fn positions_survive_reopen_and_are_never_reused() {
        let (dir, clock, store) = fresh();
        let c = Container::ExecutionData;
        let doc = |id: &str| json!({"id": id, "executionId": "e"});
        store.upsert(c, doc("a"), None).await.unwrap();
        let newest = store.upsert(c, doc("b"), None).await.unwrap();
        let position = newest.body["_lsn"].as_i64().unwrap();
        // Deleting the newest document must not let its position be handed out again.
        store.delete(c, "e", "b", None).await.unwrap();
        let now = store
            .read_change_feed(c, &FeedPosition::Now, 10)
            .await
            .unwrap();
        assert_eq!(now.continuation, position.to_string());
        drop(store);
        let reopened = SqliteStore::open(&dir.path().join("t.db"), clock).unwrap();
        assert!(reopened.read(c, "e", "a").await.unwrap().is_some());
        let next = reopened.upsert(c, doc("c"), None).await.unwrap();
        assert!(next.body["_lsn"].as_i64().unwrap() > position);
        let page = reopened
            .read_change_feed(c, &FeedPosition::Continuation(now.continuation), 10)
            .await
            .unwrap();
        assert_eq!(page.documents.len(), 1);
        assert_eq!(page.documents[0]["id"], "c");
        assert_eq!(page.continuation, next.body["_lsn"].to_string());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn two_stores_on_one_file_write_concurrently_and_the_feed_sees_each_once() {
        const WRITERS: usize = 8;
        const PER_WRITER: usize = 100;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("shared.db");
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        // Two stores = two sets of connections, which is what a second process amounts to.
        let first: Arc<dyn Store> = Arc::new(SqliteStore::open(&path, clock.clone()).unwrap());
        let second: Arc<dyn Store> = Arc::new(SqliteStore::open(&path, clock.clone()).unwrap());
        let mut tasks = Vec::new();
        for writer in 0..WRITERS {
            let store = if writer % 2 == 0 {
                first.clone()
            } else {
                second.clone()
            };
            tasks.push(tokio::spawn(async move {
                for i in 0..PER_WRITER {
                    let doc = json!({"id": format!("w{writer}-{i}"), "executionId": format!("e{writer}")});
                    store
                        .upsert(Container::ExecutionData, doc, None)
                        .await
                        .unwrap();
                }
            }));
        }
        // Plain OS threads through a third store, as `simulate` would write from its own runtime.
        let third = Arc::new(SqliteStore::open(&path, clock).unwrap());
        let threads: Vec<_> = (0..2)
            .map(|t| {
                let store = third.clone();
                std::thread::spawn(move || {
                    let runtime = tokio::runtime::Builder::new_current_thread()
                        .build()
                        .unwrap();
                    for i in 0..PER_WRITER {
                        let doc =
                            json!({"id": format!("t{t}-{i}"), "executionId": format!("t{t}")});
                        runtime
                            .block_on(store.upsert(Container::ExecutionData, doc, None))
                            .unwrap();
                    }
                })
            })
            .collect();
        let total = (WRITERS + 2) * PER_WRITER;
        // Read the feed while the writes happen, through one of the stores.
        let mut seen = Vec::new();
        let mut last_lsn = 0;
        let mut position = FeedPosition::Beginning;
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        while seen.len() < total {
            assert!(
                std::time::Instant::now() < deadline,
                "feed stalled at {}",
                seen.len()
            );
            let page = second
                .read_change_feed(Container::ExecutionData, &position, 64)
                .await
                .unwrap();
            for doc in &page.documents {
                let lsn = doc["_lsn"].as_i64().unwrap();
                assert!(lsn > last_lsn, "feed went backwards");
                last_lsn = lsn;
                seen.push(doc["id"].as_str().unwrap().to_owned());
            }
            position = FeedPosition::Continuation(page.continuation);
            tokio::time::sleep(std::time::Duration::from_millis(2)).await;
        }
        for task in tasks {
            task.await.unwrap();
        }
        for thread in threads {
            thread.join().unwrap();
        }
        let rest = second
            .read_change_feed(Container::ExecutionData, &position, 64)
            .await
            .unwrap();
        assert!(rest.documents.is_empty(), "more than {total} changes");
        let unique: std::collections::BTreeSet<_> = seen.iter().collect();
        assert_eq!(seen.len(), total);
        assert_eq!(unique.len(), total, "duplicates in the feed");
        let stored = first
            .query(Container::ExecutionData, "t1", &Query::new(1000))
            .await
            .unwrap();
        assert_eq!(stored.items.len(), PER_WRITER);
    }

    /// The default (read + conditional replace) patch, over a store whose own patch is not used.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn read_modify_write_retries_lost_races_and_honours_if_match() {
        use std::sync::Arc;
        let dir = tempfile::tempdir().unwrap();
        let clock = Arc::new(crate::clock::ManualClock::new(
            crate::model::Timestamp::from_epoch_millis(1_700_000_000_000).unwrap(),
        ));
        let store: Arc<dyn Store> =
            Arc::new(SqliteStore::open(&dir.path().join("t.db"), clock).unwrap());
        let c = Container::Entities;
        let created = store
            .create(c, json!({"id": "m", "scope": "GLOBAL", "total": 0}))
            .await
            .unwrap();
        let mut tasks = Vec::new();
        for _ in 0..4 {
            let store = store.clone();
            tasks.push(tokio::spawn(async move {
                for _ in 0..5 {
                    let ops = [crate::store::patch::PatchOp::Increment(
                        crate::store::Field::new("total").unwrap(),
                        1,
                    )];
                    crate::store::patch::read_modify_write(
                        store.as_ref(),
                        c,
                        "GLOBAL",
                        "m",
                        &ops,
                        None,
                    )
                    .await
                    .unwrap();
                }
            }));
        }
        for task in tasks {
            task.await.unwrap();
        }
        let read = store.read(c, "GLOBAL", "m").await.unwrap().unwrap();
        assert_eq!(read.body["total"], 20, "an increment was lost");
        let ops = [crate::store::patch::PatchOp::Increment(
            crate::store::Field::new("total").unwrap(),
            1,
        )];
        assert!(matches!(
            crate::store::patch::read_modify_write(
                store.as_ref(),
                c,
                "GLOBAL",
                "m",
                &ops,
                Some(&created.etag)
            )
            .await,
            Err(StoreError::PreconditionFailed { .. })
        ));
        assert!(matches!(
            crate::store::patch::read_modify_write(store.as_ref(), c, "GLOBAL", "nope", &ops, None)
                .await,
            Err(StoreError::NotFound { .. })
        ));
        let patched = crate::store::patch::read_modify_write(
            store.as_ref(),
            c,
            "GLOBAL",
            "m",
            &ops,
            Some(&read.etag),
        )
        .await
        .unwrap();
        assert_eq!(patched.body["total"], 21);
    }
}
