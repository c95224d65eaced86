//! Every write, each run inside the one IMMEDIATE transaction `SqliteStore::write_with` opens:
//! create, upsert, replace, delete and patch with their ETag preconditions, the batch (validated
//! before the transaction, then all its operations in it), and the sweep of expired documents.
//!
//! Every write re-inserts the document's `change_log` row in the same transaction, so it gets a
//! fresh AUTOINCREMENT lsn (monotonic, never reused even after the newest row is deleted): that
//! is what `feed` reads. A document past its expiry still in the table counts as absent.

use rusqlite::{params, OptionalExtension, Transaction};
use serde_json::Value;

use super::rows::{backend, insert_system_properties};
use crate::store::patch::{self, PatchOp};
use crate::store::validate::{validate, validate_in_partition, ValidDocument as Incoming};
use crate::store::{
    check_batch_size, BatchOperation, BatchOutcome, Container, ETag, StoreError, StoredDocument,
};

pub(super) enum PreparedOp {
    Create(Incoming),
    Upsert(Incoming, Option<ETag>),
    Replace(Incoming, Option<ETag>),
    Delete(String, String, Option<ETag>),
}

/// Validates every operation before the transaction starts: all in `partition_key`, at most
/// `MAX_BATCH_OPERATIONS`.
pub(super) fn prepare_batch(
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

pub(super) fn tx_create(
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

pub(super) fn tx_upsert(
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

pub(super) fn tx_replace(
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

pub(super) fn tx_delete(
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

fn precondition_failed(container: Container, id: &str) -> StoreError {
    StoreError::PreconditionFailed {
        container: container.name(),
        id: id.to_owned(),
    }
}

/// Reads, applies `operations` and writes, all in the caller's transaction, so no other writer
/// slips in between.
pub(super) fn tx_patch(
    tx: &Transaction<'_>,
    container: Container,
    pk: &str,
    id: String,
    operations: &[PatchOp],
    if_match: Option<&ETag>,
    now: i64,
) -> Result<StoredDocument, StoreError> {
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
    patch::apply(container, &mut doc, operations)?;
    write_document(tx, container, validate(container, doc)?, now)
}

/// A prepared batch in the caller's transaction: any failure rolls every operation back, as a
/// Cosmos batch does.
pub(super) fn tx_batch(
    tx: &Transaction<'_>,
    container: Container,
    prepared: Vec<PreparedOp>,
    now: i64,
) -> Result<Vec<BatchOutcome>, StoreError> {
    prepared
        .into_iter()
        .map(|op| match op {
            PreparedOp::Create(doc) => {
                tx_create(tx, container, doc, now).map(BatchOutcome::Written)
            }
            PreparedOp::Upsert(doc, if_match) => {
                tx_upsert(tx, container, doc, if_match.as_ref(), now).map(BatchOutcome::Written)
            }
            PreparedOp::Replace(doc, if_match) => {
                tx_replace(tx, container, doc, if_match.as_ref(), now).map(BatchOutcome::Written)
            }
            PreparedOp::Delete(pk, id, if_match) => {
                tx_delete(tx, container, &pk, &id, if_match.as_ref(), now)
                    .map(BatchOutcome::Deleted)
            }
        })
        .collect()
}

/// Physically removes the documents expired at `now` (and their `change_log` rows).
pub(super) fn tx_purge_expired(tx: &Transaction<'_>, now: i64) -> Result<u64, StoreError> {
    tx.prepare_cached(
        "DELETE FROM change_log WHERE (container, pk, id) IN
         (SELECT container, pk, id FROM documents
          WHERE expires_at IS NOT NULL AND expires_at <= ?1)",
    )
    .map_err(backend)?
    .execute(params![now])
    .map_err(backend)?;
    let removed = tx
        .prepare_cached("DELETE FROM documents WHERE expires_at IS NOT NULL AND expires_at <= ?1")
        .map_err(backend)?
        .execute(params![now])
        .map_err(backend)?;
    Ok(u64::try_from(removed).unwrap_or(u64::MAX))
}
