//! Running a rendered query on a reader connection: one page of rows as the documents callers
//! see, and, when more rows follow, the continuation after its last row (that row's order-by
//! values and id, tied to the query's fingerprint).

use rusqlite::types::Value as SqlValue;
use rusqlite::{params_from_iter, Connection};
use serde_json::Value;

use super::rows::{backend, with_system_properties};
use super::sql::RenderedQuery;
use crate::store::keyset;
use crate::store::{Page, StoreError};

pub(super) fn run_query(conn: &Connection, query: RenderedQuery) -> Result<Page, StoreError> {
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

fn sql_to_json(value: SqlValue) -> Value {
    match value {
        SqlValue::Null | SqlValue::Blob(_) => Value::Null,
        SqlValue::Integer(i) => Value::from(i),
        SqlValue::Real(f) => Value::from(f),
        SqlValue::Text(s) => Value::String(s),
    }
}
