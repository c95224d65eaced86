//! The change feed: `change_log` read in lsn order after a position (`lsn > position` is
//! Cosmos' latest-version change feed), expired documents stepped over, and the count of
//! changes after a position. SQLite serializes writers (across processes too), so commits
//! happen in lsn order and a reader never sees a later lsn before an earlier one.

use rusqlite::{params, Connection};

use super::rows::{backend, text_with_system_properties, with_system_properties};
use crate::store::{ChangeFeedPage, Container, FeedPosition, StoreError, TextFeedPage};

/// How many expired change-log rows one feed read may step over beyond `max_items`, so a long
/// run of expired documents costs several polls instead of one unbounded scan.
const EXPIRED_SCAN_ALLOWANCE: usize = 10_000;

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

pub(super) fn parse_position(continuation: &str) -> Result<i64, StoreError> {
    continuation
        .parse::<i64>()
        .ok()
        .filter(|lsn| *lsn >= 0)
        .ok_or(StoreError::BadContinuation)
}

pub(super) fn read_feed(
    conn: &mut Connection,
    container: Container,
    from: &FeedPosition,
    max_items: usize,
    now_ms: i64,
) -> Result<ChangeFeedPage, StoreError> {
    let (documents, continuation) = read_feed_as(
        conn,
        container,
        from,
        max_items,
        now_ms,
        with_system_properties,
    )?;
    Ok(ChangeFeedPage {
        documents,
        continuation,
    })
}

/// `read_feed` with each document as JSON text: the stored body with its system properties
/// appended, never parsed.
pub(super) fn read_feed_text(
    conn: &mut Connection,
    container: Container,
    from: &FeedPosition,
    max_items: usize,
    now_ms: i64,
) -> Result<TextFeedPage, StoreError> {
    let (documents, continuation) = read_feed_as(
        conn,
        container,
        from,
        max_items,
        now_ms,
        text_with_system_properties,
    )?;
    Ok(TextFeedPage {
        documents,
        continuation,
    })
}

/// The feed's documents, each made by `document(body, etag, ts, lsn)`, and the position after them.
fn read_feed_as<T>(
    conn: &mut Connection,
    container: Container,
    from: &FeedPosition,
    max_items: usize,
    now_ms: i64,
    document: impl Fn(&str, &str, i64, i64) -> Result<T, StoreError>,
) -> Result<(Vec<T>, String), StoreError> {
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
            documents.push(document(&body, &etag, ts, lsn)?);
        }
    }
    Ok((documents, position.to_string()))
}

/// How many changes of `container` lie after position `after`.
pub(super) fn pending(
    conn: &Connection,
    container: Container,
    after: i64,
) -> Result<u64, StoreError> {
    let count: i64 = conn
        .prepare_cached("SELECT COUNT(*) FROM change_log WHERE container = ?1 AND lsn > ?2")
        .map_err(backend)?
        .query_row(params![container.name(), after], |r| r.get(0))
        .map_err(backend)?;
    Ok(u64::try_from(count).unwrap_or(0))
}
