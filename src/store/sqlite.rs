//! The embedded default store: one SQLite file in WAL mode (so `simulate` in another process can
//! write while `serve` reads), a change-feed log with a monotonic position, and Cosmos-style TTL.
//!
//! Schema: `documents` holds each live document (body without system properties, ETag, `_ts`,
//! its lsn and expiry); `change_log` has one row per document at its latest change. Every write
//! re-inserts the document's `change_log` row in the same transaction, so it gets a fresh
//! AUTOINCREMENT lsn (monotonic, never reused): reading `lsn > position` is Cosmos' latest-version
//! change feed. SQLite serializes writers, so commits happen in lsn order and a reader never sees
//! a later lsn before an earlier one.

use std::path::Path;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use base64::Engine;
use rusqlite::types::Value as SqlValue;
use rusqlite::{params, params_from_iter, Connection, OpenFlags, OptionalExtension, Transaction};
use serde_json::Value;

use super::query::{FilterOp, Query};
use super::{
    string_field, ChangeFeedPage, Container, ETag, FeedPosition, Page, Store, StoreError,
    StoredDocument,
};
use crate::clock::Clock;
use crate::model::MAX_DOCUMENT_BYTES;

const SCHEMA_VERSION: i64 = 1;
const READERS: usize = 4;
const SYSTEM_PROPERTIES: [&str; 6] = ["_etag", "_ts", "_lsn", "_rid", "_self", "_attachments"];

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
";

#[derive(Debug)]
pub struct SqliteStore {
    writer: Arc<Mutex<Connection>>,
    readers: Arc<Vec<Mutex<Connection>>>,
    clock: Arc<dyn Clock>,
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
    conn.busy_timeout(std::time::Duration::from_secs(10))
        .map_err(backend)?;
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
        let writer = open_connection(path, false)?;
        writer
            .execute_batch("PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;")
            .map_err(backend)?;
        let version: i64 = writer
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(backend)?;
        if version > SCHEMA_VERSION {
            return Err(StoreError::Backend(format!(
                "{} has schema version {version}, newer than this build's {SCHEMA_VERSION}",
                path.display()
            )));
        }
        writer.execute_batch(SCHEMA).map_err(backend)?;
        writer
            .execute_batch(&format!("PRAGMA user_version = {SCHEMA_VERSION}"))
            .map_err(backend)?;
        let readers = (0..READERS)
            .map(|_| open_connection(path, true).map(Mutex::new))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(SqliteStore {
            writer: Arc::new(Mutex::new(writer)),
            readers: Arc::new(readers),
            clock,
        })
    }

    /// Runs blocking work on a reader connection (any free one, else waits on one).
    async fn read_with<T: Send + 'static>(
        &self,
        work: impl FnOnce(&Connection, i64) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let readers = self.readers.clone();
        let now = self.clock.now().epoch_millis();
        tokio::task::spawn_blocking(move || {
            let guard = readers
                .iter()
                .find_map(|r| r.try_lock().ok())
                .unwrap_or_else(|| {
                    let index = fastrand_index(readers.len());
                    readers[index].lock().unwrap_or_else(|p| p.into_inner())
                });
            work(&guard, now)
        })
        .await
        .map_err(|e| StoreError::Backend(format!("store task failed: {e}")))?
    }

    /// Runs blocking work in one IMMEDIATE transaction on the writer connection.
    async fn write_with<T: Send + 'static>(
        &self,
        work: impl FnOnce(&Transaction<'_>, i64) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let writer = self.writer.clone();
        let now = self.clock.now().epoch_millis();
        tokio::task::spawn_blocking(move || {
            let mut conn = writer.lock().unwrap_or_else(|p| p.into_inner());
            let tx = conn
                .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
                .map_err(backend)?;
            let result = work(&tx, now)?;
            tx.commit().map_err(backend)?;
            Ok(result)
        })
        .await
        .map_err(|e| StoreError::Backend(format!("store task failed: {e}")))?
    }
}

/// A cheap spread over reader connections when all are busy.
fn fastrand_index(len: usize) -> usize {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos() as usize)
        .unwrap_or(0);
    nanos % len.max(1)
}

/// A validated document ready to write.
struct Incoming {
    pk: String,
    id: String,
    body: String,
    expires_at: Option<i64>,
}

fn prepare(container: Container, doc: Value, now_ms: i64) -> Result<Incoming, StoreError> {
    let invalid = |reason: String| StoreError::InvalidDocument {
        container: container.name(),
        reason,
    };
    let Value::Object(mut map) = doc else {
        return Err(invalid("a document must be a JSON object".into()));
    };
    for key in SYSTEM_PROPERTIES {
        map.remove(key);
    }
    let doc = Value::Object(map);
    let id = string_field(&doc, "id")
        .filter(|id| !id.is_empty())
        .ok_or_else(|| invalid("missing string \"id\"".into()))?
        .to_owned();
    let pk_field = container.partition_key_field();
    let pk = string_field(&doc, pk_field)
        .ok_or_else(|| invalid(format!("missing string partition key \"{pk_field}\"")))?
        .to_owned();
    let body = doc.to_string();
    if body.len() > MAX_DOCUMENT_BYTES {
        return Err(StoreError::TooLarge {
            size: body.len(),
            max: MAX_DOCUMENT_BYTES,
        });
    }
    // Cosmos honours a document's `ttl` only when the container has TTL on.
    let expires_at = container.default_ttl().and_then(|default| {
        let ttl = doc.get("ttl").and_then(Value::as_i64).unwrap_or(default);
        (ttl >= 0).then(|| now_ms.saturating_add(ttl.saturating_mul(1000)))
    });
    Ok(Incoming {
        pk,
        id,
        body,
        expires_at,
    })
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
    tx.prepare_cached("INSERT OR REPLACE INTO change_log (container, pk, id) VALUES (?1, ?2, ?3)")
        .map_err(backend)?
        .execute(params![name, doc.pk, doc.id])
        .map_err(backend)?;
    let lsn = tx.last_insert_rowid();
    let etag = format!("\"{}\"", uuid::Uuid::new_v4());
    let ts = now_ms.div_euclid(1000);
    tx.prepare_cached(
        "INSERT OR REPLACE INTO documents (container, pk, id, body, etag, ts, lsn, expires_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )
    .map_err(backend)?
    .execute(params![
        name,
        doc.pk,
        doc.id,
        doc.body,
        etag,
        ts,
        lsn,
        doc.expires_at
    ])
    .map_err(backend)?;
    Ok(StoredDocument {
        body: with_system_properties(&doc.body, &etag, ts, lsn)?,
        etag: ETag(etag),
    })
}

fn with_system_properties(body: &str, etag: &str, ts: i64, lsn: i64) -> Result<Value, StoreError> {
    let mut value: Value = serde_json::from_str(body)
        .map_err(|e| StoreError::Backend(format!("stored body is not JSON: {e}")))?;
    if let Value::Object(map) = &mut value {
        map.insert("_etag".into(), Value::String(etag.to_owned()));
        map.insert("_ts".into(), Value::from(ts));
        map.insert("_lsn".into(), Value::from(lsn));
    }
    Ok(value)
}

fn row_document(row: &rusqlite::Row<'_>) -> rusqlite::Result<(String, String, i64, i64)> {
    Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?))
}

fn precondition_failed(container: Container, id: &str) -> StoreError {
    StoreError::PreconditionFailed {
        container: container.name(),
        id: id.to_owned(),
    }
}

/// `$.a.b` from a validated field.
fn json_path(field: &super::Field) -> String {
    let mut path = String::from("$");
    for segment in field.segments() {
        path.push('.');
        path.push_str(segment);
    }
    path
}

/// A JSON scalar as the value `json_extract` would return for it.
fn sql_value(value: &Value) -> Result<SqlValue, StoreError> {
    Ok(match value {
        Value::Null => SqlValue::Null,
        Value::Bool(b) => SqlValue::Integer(i64::from(*b)),
        Value::Number(n) => match (n.as_i64(), n.as_f64()) {
            (Some(i), _) => SqlValue::Integer(i),
            (None, Some(f)) => SqlValue::Real(f),
            _ => return Err(StoreError::InvalidQuery(format!("unsupported number {n}"))),
        },
        Value::String(s) => SqlValue::Text(s.clone()),
        Value::Array(_) | Value::Object(_) => {
            return Err(StoreError::InvalidQuery(
                "filter values must be scalars".into(),
            ))
        }
    })
}

fn from_sql(value: SqlValue) -> Value {
    match value {
        SqlValue::Null => Value::Null,
        SqlValue::Integer(i) => Value::from(i),
        SqlValue::Real(f) => Value::from(f),
        SqlValue::Text(s) => Value::String(s),
        SqlValue::Blob(_) => Value::Null,
    }
}

/// The keyset position after the last row of a page: its order-by values and id.
fn encode_continuation(keys: &[Value], id: &str) -> String {
    let token = serde_json::json!({ "k": keys, "id": id });
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(token.to_string())
}

fn decode_continuation(
    token: &str,
    key_count: usize,
) -> Result<(Vec<SqlValue>, String), StoreError> {
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token)
        .map_err(|_| StoreError::BadContinuation)?;
    let value: Value = serde_json::from_slice(&bytes).map_err(|_| StoreError::BadContinuation)?;
    let keys = value["k"].as_array().ok_or(StoreError::BadContinuation)?;
    let id = value["id"].as_str().ok_or(StoreError::BadContinuation)?;
    if keys.len() != key_count {
        return Err(StoreError::BadContinuation);
    }
    let keys = keys
        .iter()
        .map(|k| match k {
            Value::Null | Value::Array(_) | Value::Object(_) => Err(StoreError::BadContinuation),
            other => sql_value(other).map_err(|_| StoreError::BadContinuation),
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok((keys, id.to_owned()))
}

/// Renders a `Query` to SQL with bound parameters only.
fn render_query(
    container: Container,
    pk: &str,
    query: &Query,
    now_ms: i64,
) -> Result<(String, Vec<SqlValue>), StoreError> {
    if query.limit == 0 {
        return Err(StoreError::InvalidQuery("limit must be at least 1".into()));
    }
    let mut sql = String::from("SELECT body, etag, ts, lsn, id");
    for order in &query.order_by {
        sql.push_str(&format!(
            ", json_extract(body, '{}')",
            json_path(&order.field)
        ));
    }
    sql.push_str(
        " FROM documents WHERE container = ? AND pk = ? AND (expires_at IS NULL OR expires_at > ?)",
    );
    let mut args = vec![
        SqlValue::Text(container.name().to_owned()),
        SqlValue::Text(pk.to_owned()),
        SqlValue::Integer(now_ms),
    ];
    for filter in &query.filters {
        let field = format!("json_extract(body, '{}')", json_path(&filter.field));
        let mut compare = |op: &str, value: &Value| -> Result<(), StoreError> {
            match sql_value(value)? {
                SqlValue::Null if op == "=" => sql.push_str(&format!(" AND {field} IS NULL")),
                SqlValue::Null if op == "<>" => sql.push_str(&format!(" AND {field} IS NOT NULL")),
                SqlValue::Null => sql.push_str(" AND 0"),
                bound => {
                    sql.push_str(&format!(" AND {field} {op} ?"));
                    args.push(bound);
                }
            }
            Ok(())
        };
        match &filter.op {
            FilterOp::Eq(v) => compare("=", v)?,
            FilterOp::Ne(v) => compare("<>", v)?,
            FilterOp::Lt(v) => compare("<", v)?,
            FilterOp::Le(v) => compare("<=", v)?,
            FilterOp::Gt(v) => compare(">", v)?,
            FilterOp::Ge(v) => compare(">=", v)?,
            FilterOp::In(values) if values.is_empty() => sql.push_str(" AND 0"),
            FilterOp::In(values) => {
                let marks = vec!["?"; values.len()].join(", ");
                sql.push_str(&format!(" AND {field} IN ({marks})"));
                for v in values {
                    args.push(sql_value(v)?);
                }
            }
            FilterOp::Defined(true) => sql.push_str(&format!(" AND {field} IS NOT NULL")),
            FilterOp::Defined(false) => sql.push_str(&format!(" AND {field} IS NULL")),
        }
    }
    // Keys: the order-by fields, then id in the direction of the last key.
    let mut keys: Vec<(String, bool)> = query
        .order_by
        .iter()
        .map(|o| {
            (
                format!("json_extract(body, '{}')", json_path(&o.field)),
                o.descending,
            )
        })
        .collect();
    for (expr, _) in &keys {
        sql.push_str(&format!(" AND {expr} IS NOT NULL"));
    }
    let id_descending = keys.last().map(|(_, d)| *d).unwrap_or(false);
    keys.push(("id".to_owned(), id_descending));

    if let Some(token) = &query.continuation {
        let (mut values, id) = decode_continuation(token, query.order_by.len())?;
        values.push(SqlValue::Text(id));
        // (k1 > v1) OR (k1 = v1 AND k2 > v2) OR ...  with > or < per direction.
        let mut clauses = Vec::new();
        for i in 0..keys.len() {
            let mut parts = Vec::new();
            for (j, (expr, _)) in keys.iter().enumerate().take(i) {
                parts.push(format!("{expr} = ?"));
                args.push(values[j].clone());
            }
            let (expr, descending) = &keys[i];
            parts.push(format!("{expr} {} ?", if *descending { "<" } else { ">" }));
            args.push(values[i].clone());
            clauses.push(format!("({})", parts.join(" AND ")));
        }
        sql.push_str(&format!(" AND ({})", clauses.join(" OR ")));
    }
    let order: Vec<String> = keys
        .iter()
        .map(|(expr, d)| format!("{expr} {}", if *d { "DESC" } else { "ASC" }))
        .collect();
    sql.push_str(&format!(" ORDER BY {} LIMIT ?", order.join(", ")));
    args.push(SqlValue::Integer(
        i64::try_from(query.limit)
            .unwrap_or(i64::MAX)
            .saturating_add(1),
    ));
    Ok((sql, args))
}

fn parse_position(continuation: &str) -> Result<i64, StoreError> {
    continuation
        .parse::<i64>()
        .ok()
        .filter(|lsn| *lsn >= 0)
        .ok_or(StoreError::BadContinuation)
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
            let row = conn
                .prepare_cached(
                    "SELECT body, etag, ts, lsn FROM documents WHERE container = ?1 AND pk = ?2 AND id = ?3
                     AND (expires_at IS NULL OR expires_at > ?4)",
                )
                .map_err(backend)?
                .query_row(params![container.name(), pk, id, now], row_document)
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
        let doc = prepare(container, doc, self.clock.now().epoch_millis())?;
        self.write_with(move |tx, now| {
            if live_etag(tx, container, &doc.pk, &doc.id, now)?.is_some() {
                return Err(StoreError::Conflict {
                    container: container.name(),
                    id: doc.id,
                });
            }
            write_document(tx, container, doc, now)
        })
        .await
    }

    async fn upsert(
        &self,
        container: Container,
        doc: Value,
        if_match: Option<&ETag>,
    ) -> Result<StoredDocument, StoreError> {
        let doc = prepare(container, doc, self.clock.now().epoch_millis())?;
        let if_match = if_match.cloned();
        self.write_with(move |tx, now| {
            if let Some(expected) = if_match {
                if live_etag(tx, container, &doc.pk, &doc.id, now)?.as_deref()
                    != Some(expected.0.as_str())
                {
                    return Err(precondition_failed(container, &doc.id));
                }
            }
            write_document(tx, container, doc, now)
        })
        .await
    }

    async fn replace(
        &self,
        container: Container,
        doc: Value,
        if_match: Option<&ETag>,
    ) -> Result<StoredDocument, StoreError> {
        let doc = prepare(container, doc, self.clock.now().epoch_millis())?;
        let if_match = if_match.cloned();
        self.write_with(move |tx, now| {
            match live_etag(tx, container, &doc.pk, &doc.id, now)? {
                None => {
                    return Err(StoreError::NotFound {
                        container: container.name(),
                        id: doc.id,
                    })
                }
                Some(current) if if_match.as_ref().is_some_and(|e| e.0 != current) => {
                    return Err(precondition_failed(container, &doc.id))
                }
                Some(_) => {}
            }
            write_document(tx, container, doc, now)
        })
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
        self.write_with(move |tx, now| {
            let Some(current) = live_etag(tx, container, &pk, &id, now)? else {
                return Ok(false);
            };
            if if_match.as_ref().is_some_and(|e| e.0 != current) {
                return Err(precondition_failed(container, &id));
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
        })
        .await
    }

    async fn query(
        &self,
        container: Container,
        partition_key: &str,
        query: &Query,
    ) -> Result<Page, StoreError> {
        let (sql, args) = render_query(
            container,
            partition_key,
            query,
            self.clock.now().epoch_millis(),
        )?;
        let limit = query.limit;
        let key_count = query.order_by.len();
        self.read_with(move |conn, _| {
            let mut statement = conn.prepare_cached(&sql).map_err(backend)?;
            let mut rows = statement
                .query(params_from_iter(args.iter()))
                .map_err(backend)?;
            let mut items = Vec::new();
            let mut last_keys: Option<(Vec<Value>, String)> = None;
            let mut more = false;
            while let Some(row) = rows.next().map_err(backend)? {
                if items.len() == limit {
                    more = true;
                    break;
                }
                let (body, etag, ts, lsn): (String, String, i64, i64) = (
                    row.get(0).map_err(backend)?,
                    row.get(1).map_err(backend)?,
                    row.get(2).map_err(backend)?,
                    row.get(3).map_err(backend)?,
                );
                let id: String = row.get(4).map_err(backend)?;
                let keys = (0..key_count)
                    .map(|i| row.get::<_, SqlValue>(5 + i).map(from_sql).map_err(backend))
                    .collect::<Result<Vec<_>, _>>()?;
                items.push(with_system_properties(&body, &etag, ts, lsn)?);
                last_keys = Some((keys, id));
            }
            let continuation = match (more, last_keys) {
                (true, Some((keys, id))) => Some(encode_continuation(&keys, &id)),
                _ => None,
            };
            Ok(Page {
                items,
                continuation,
            })
        })
        .await
    }

    async fn read_change_feed(
        &self,
        container: Container,
        from: &FeedPosition,
        max_items: usize,
    ) -> Result<ChangeFeedPage, StoreError> {
        let from = from.clone();
        let max_items = i64::try_from(max_items.max(1)).unwrap_or(i64::MAX);
        self.read_with(move |conn, now| {
            let after = match &from {
                FeedPosition::Beginning => 0,
                FeedPosition::Continuation(c) => parse_position(c)?,
                FeedPosition::Now => conn
                    .query_row("SELECT COALESCE(MAX(lsn), 0) FROM change_log", [], |r| {
                        r.get(0)
                    })
                    .map_err(backend)?,
            };
            // Read the change-log window first so expired documents still advance the position.
            let mut statement = conn
                .prepare_cached(
                    "SELECT c.lsn, d.body, d.etag, d.ts, d.expires_at FROM change_log c
                     JOIN documents d ON d.container = c.container AND d.pk = c.pk AND d.id = c.id
                     WHERE c.container = ?1 AND c.lsn > ?2 ORDER BY c.lsn LIMIT ?3",
                )
                .map_err(backend)?;
            let mut rows = statement
                .query(params![container.name(), after, max_items])
                .map_err(backend)?;
            let mut documents = Vec::new();
            let mut position = after;
            while let Some(row) = rows.next().map_err(backend)? {
                let lsn: i64 = row.get(0).map_err(backend)?;
                position = lsn;
                let expires_at: Option<i64> = row.get(4).map_err(backend)?;
                if expires_at.is_some_and(|at| at <= now) {
                    continue;
                }
                let (body, etag, ts): (String, String, i64) = (
                    row.get(1).map_err(backend)?,
                    row.get(2).map_err(backend)?,
                    row.get(3).map_err(backend)?,
                );
                documents.push(with_system_properties(&body, &etag, ts, lsn)?);
            }
            Ok(ChangeFeedPage {
                documents,
                continuation: position.to_string(),
            })
        })
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
                 (SELECT container, pk, id FROM documents WHERE expires_at IS NOT NULL AND expires_at <= ?1)",
            )
            .map_err(backend)?
            .execute(params![now])
            .map_err(backend)?;
            let removed = tx
                .prepare_cached("DELETE FROM documents WHERE expires_at IS NOT NULL AND expires_at <= ?1")
                .map_err(backend)?
                .execute(params![now])
                .map_err(backend)?;
            Ok(removed as u64)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use crate::model::Timestamp;
    use crate::store::conformance;
    use serde_json::json;

    fn fresh() -> (tempfile::TempDir, Arc<ManualClock>, Arc<dyn Store>) {
        let dir = tempfile::tempdir().unwrap();
        let clock = Arc::new(ManualClock::new(
            Timestamp::parse("2025-01-01T00:00:00Z").unwrap(),
        ));
        let store = SqliteStore::open(&dir.path().join("t.db"), clock.clone()).unwrap();
        (dir, clock, Arc::new(store))
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
    async fn conformance_pagination() {
        conformance::pagination_is_complete_and_stable(fresh().2).await;
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
        drop(store);
        let reopened = SqliteStore::open(&dir.path().join("t.db"), clock).unwrap();
        let next = reopened.upsert(c, doc("c"), None).await.unwrap();
        assert!(next.body["_lsn"].as_i64().unwrap() > position);
        let page = reopened
            .read_change_feed(c, &FeedPosition::Continuation(position.to_string()), 10)
            .await
            .unwrap();
        assert_eq!(page.documents.len(), 1);
        assert_eq!(page.documents[0]["id"], "c");
        assert!(reopened.read(c, "e", "a").await.unwrap().is_some());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn two_stores_on_one_file_write_concurrently_and_the_feed_sees_each_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("shared.db");
        let clock: Arc<dyn Clock> = Arc::new(crate::clock::SystemClock);
        let first: Arc<dyn Store> = Arc::new(SqliteStore::open(&path, clock.clone()).unwrap());
        let second: Arc<dyn Store> = Arc::new(SqliteStore::open(&path, clock).unwrap());
        let mut tasks = Vec::new();
        for writer in 0..8 {
            let store = if writer % 2 == 0 {
                first.clone()
            } else {
                second.clone()
            };
            tasks.push(tokio::spawn(async move {
                for i in 0..100 {
                    let doc = json!({"id": format!("w{writer}-{i}"), "executionId": format!("e{writer}")});
                    store.upsert(Container::ExecutionData, doc, None).await.unwrap();
                }
            }));
        }
        // Read the feed while the writes happen, from the other "process".
        let mut seen = Vec::new();
        let mut position = FeedPosition::Beginning;
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while seen.len() < 800 {
            assert!(
                std::time::Instant::now() < deadline,
                "feed stalled at {}",
                seen.len()
            );
            let page = second
                .read_change_feed(Container::ExecutionData, &position, 64)
                .await
                .unwrap();
            seen.extend(
                page.documents
                    .iter()
                    .map(|d| d["id"].as_str().unwrap().to_owned()),
            );
            position = FeedPosition::Continuation(page.continuation);
            tokio::time::sleep(std::time::Duration::from_millis(2)).await;
        }
        for task in tasks {
            task.await.unwrap();
        }
        let unique: std::collections::BTreeSet<_> = seen.iter().collect();
        assert_eq!(seen.len(), 800, "duplicates in the feed");
        assert_eq!(unique.len(), 800);
    }
}
