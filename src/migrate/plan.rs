//! One execution, read from the source and compared with the target: which documents must be
//! written (none on a rerun), and how they differ (what `--verify` prints).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

use super::client::{Entity, ReadError, StorageClient};
use super::log_source::{LogSource, LogSourceError};
use super::mapping::{
    self, comparable, LegacyExecution, ResultSource, BLOB_CONTAINER, LOGS_ARCHIVE_BLOB,
    LOGS_COLUMN, RESULT_BLOBS, VARIABLES_BLOB,
};
use crate::blobs::{BlobError, BlobStore};
use crate::model::{Scope, Timestamp};
use crate::retry::{retry, Backoff, Jitter};
use crate::store::{BatchOperation, Container, Query, Store, StoreError, MAX_BATCH_OPERATIONS};

/// What every plan needs; cheap to clone into tasks.
#[derive(Debug, Clone)]
pub struct PlanContext {
    pub client: StorageClient,
    /// Where each execution's `ExecutionLogs` rows are read.
    pub logs: LogSource,
    /// Every blob name in the legacy `execution-data` container, listed once by a whole-account
    /// run: a blob not in it is not asked for (most executions have no variables or result
    /// blob, so this saves a request per execution). `None`: ask for each.
    pub blob_names: Option<Arc<std::collections::HashSet<String>>>,
    pub store: Arc<dyn Store>,
    /// Where documents' `blobRef`s are copied (serve mode's blob directory); `None` leaves the
    /// legacy blobs where they are (in Azure the app reads the same storage account).
    pub blobs: Option<Arc<dyn BlobStore>>,
    pub now: Timestamp,
    pub keep_expired: bool,
    pub since: Option<Timestamp>,
    /// Set by the first plan that finds the source or target unavailable: the page's other
    /// rows stop at once instead of each waiting out its own retries.
    pub unavailable: Arc<std::sync::atomic::AtomicBool>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TargetState {
    New,
    Changed,
    Unchanged,
}

#[derive(Debug, Clone)]
pub struct ExecutionPlan {
    pub execution_id: String,
    pub scope: Scope,
    /// Documents to upsert, data documents first and the execution last.
    pub writes: Vec<(Container, Value)>,
    /// Blobs to copy before the documents that reference them: (blobRef, bytes).
    pub blob_copies: Vec<(String, Vec<u8>)>,
    pub state: TargetState,
    /// Human-readable differences between source and target (empty when they match).
    pub differences: Vec<String>,
    /// Source checksum of the mapped documents (see `mapping::checksum`).
    pub checksum: String,
    /// (scope, UTC day) whose daily metrics this execution's write changes.
    pub metrics_days: Vec<(Scope, String)>,
    pub log_documents: usize,
    pub data_documents: usize,
}

#[derive(Debug)]
pub enum Planned {
    Plan(Box<ExecutionPlan>),
    /// Older than 14 days (and no `--keep-expired`).
    Expired,
    /// Started before `--since`.
    BeforeSince,
    /// The row cannot be migrated (reported, skipped).
    BadRow(String),
    /// Reading the source or target failed after retries: the run stops before this row.
    Unavailable(String),
}

#[derive(Debug, thiserror::Error)]
enum FetchError {
    #[error(transparent)]
    Source(#[from] ReadError),
    #[error(transparent)]
    Logs(#[from] LogSourceError),
    #[error("reading the target store: {0}")]
    Target(#[from] StoreError),
    #[error("reading the target blobs: {0}")]
    Blobs(#[from] BlobError),
}

pub async fn plan_execution(ctx: &PlanContext, row: &Entity) -> Planned {
    let legacy = match mapping::execution_from_row(row) {
        Ok(legacy) => legacy,
        Err(e) => return Planned::BadRow(e.to_string()),
    };
    if ctx.since.is_some_and(|since| legacy.doc.started_at < since) {
        return Planned::BeforeSince;
    }
    let ttl = match mapping::remaining_ttl(legacy.doc.started_at, ctx.now) {
        Some(left) => Some(left),
        None if ctx.keep_expired => Some(-1),
        None => return Planned::Expired,
    };
    if ctx.unavailable.load(std::sync::atomic::Ordering::Relaxed) {
        return Planned::Unavailable(
            "an earlier row found the source or target unavailable".into(),
        );
    }
    match plan_mapped(ctx, legacy, ttl).await {
        Ok(planned) => planned,
        Err(e) => {
            ctx.unavailable
                .store(true, std::sync::atomic::Ordering::Relaxed);
            Planned::Unavailable(format!(
                "{} ({}): {e}",
                mapping::text(row, "RowKey").unwrap_or_default(),
                mapping::text(row, "PartitionKey").unwrap_or_default()
            ))
        }
    }
}

async fn plan_mapped(
    ctx: &PlanContext,
    legacy: LegacyExecution,
    ttl: Option<i64>,
) -> Result<Planned, FetchError> {
    let mut execution = legacy.doc;
    execution.ttl = ttl;
    let id = execution.execution_id.clone();
    let at = execution.completed_at.unwrap_or(execution.started_at);

    let log_rows = ctx.logs.rows_for(&ctx.client, &id).await?;
    let mut data = match mapping::log_docs(&id, &log_rows, ttl) {
        Ok(docs) => docs,
        Err(e) => return Ok(Planned::BadRow(format!("execution {id}: {e}"))),
    };
    if log_rows.is_empty() {
        // Runs from before the ExecutionLogs table (2025-10-28) have their logs only in the
        // archive blob, or before that (2025-10-17) in the row's `Logs` column.
        let archive = match legacy_blob(ctx, &format!("{id}/{LOGS_ARCHIVE_BLOB}")).await? {
            Some(bytes) => Some((LOGS_ARCHIVE_BLOB, bytes)),
            None => legacy
                .inline_logs
                .map(|text| (LOGS_COLUMN, text.into_bytes())),
        };
        if let Some((origin, bytes)) = archive {
            match mapping::archived_log_docs(&id, origin, &bytes, execution.started_at, ttl) {
                Ok(docs) => data = docs,
                Err(e) => return Ok(Planned::BadRow(format!("execution {id}: {e}"))),
            }
        }
    }
    let log_documents = data.len();
    // Blob bytes by the blobRef a document would carry, for the copy to serve mode's blobs.
    let mut blob_bytes: Vec<(String, Vec<u8>)> = Vec::new();
    if let Some(result) = read_result(
        ctx,
        &id,
        legacy.inline_result.as_deref(),
        execution.result_in_blob,
        at,
        ttl,
        &mut blob_bytes,
    )
    .await?
    {
        data.push(result);
    }
    if let Some(bytes) = legacy_blob(ctx, &format!("{id}/{VARIABLES_BLOB}")).await? {
        data.push(mapping::variables_doc(&id, at, &bytes, ttl));
        blob_bytes.push((format!("{BLOB_CONTAINER}/{id}/{VARIABLES_BLOB}"), bytes));
    } else if let Some(inline) = &legacy.inline_variables {
        // A Table column holds at most 64 KB, so this never needs a blobRef.
        data.push(mapping::variables_doc(&id, at, inline.as_bytes(), ttl));
    }
    if let Some(state) = legacy.legacy_state {
        data.push(mapping::legacy_state_doc(&id, at, state, ttl));
    }
    let execution_value = serde_json::to_value(&execution).unwrap_or_default();
    let checksum = mapping::checksum(&execution_value, &data);

    // The target as it is now.
    let scope_key = execution.scope.to_string();
    let existing_execution = ctx
        .store
        .read(Container::Executions, &scope_key, &id)
        .await?
        .map(|stored| stored.body);
    let existing_data = read_partition(ctx.store.as_ref(), &id).await?;

    let mut writes = Vec::new();
    let mut differences = Vec::new();
    let mut blob_copies = Vec::new();
    if let Some(blobs) = &ctx.blobs {
        let referenced = data.iter().filter_map(|d| d["blobRef"].as_str());
        for blob_ref in referenced {
            let Some((_, bytes)) = blob_bytes.iter().find(|(r, _)| r == blob_ref) else {
                continue;
            };
            let difference = match blobs.get(blob_ref).await? {
                Some(current) if &current == bytes => continue,
                Some(_) => "differs from the source",
                None => "missing in target",
            };
            differences.push(format!("blob {blob_ref}: {difference}"));
            blob_copies.push((blob_ref.to_owned(), bytes.clone()));
        }
    }
    for doc in &data {
        let doc_id = doc["id"].as_str().unwrap_or_default();
        match existing_data.get(doc_id) {
            None => differences.push(format!("{doc_id}: missing in target")),
            Some(current) if comparable(current) != comparable(doc) => differences.push(format!(
                "{doc_id}: {}",
                field_differences(doc, current, |_| false)
            )),
            Some(_) => continue,
        }
        writes.push((Container::ExecutionData, doc.clone()));
    }
    let source_ids: std::collections::BTreeSet<&str> =
        data.iter().filter_map(|d| d["id"].as_str()).collect();
    for extra in existing_data
        .keys()
        .filter(|k| !source_ids.contains(k.as_str()))
    {
        differences.push(format!("{extra}: in target but not in the source"));
    }
    let mut metrics_days = Vec::new();
    let state = match &existing_execution {
        None => {
            differences.insert(0, "execution: missing in target".into());
            TargetState::New
        }
        Some(current) if comparable(current) != comparable(&execution_value) => {
            differences.insert(
                0,
                format!(
                    "execution: {}",
                    field_differences(&execution_value, current, |_| false)
                ),
            );
            // The day it used to count on must be rebuilt too.
            if let Some(day) = terminal_day(current) {
                metrics_days.push((execution.scope.clone(), day));
            }
            TargetState::Changed
        }
        Some(_) if writes.is_empty() && blob_copies.is_empty() => TargetState::Unchanged,
        Some(_) => TargetState::Changed,
    };
    if state != TargetState::Unchanged {
        writes.push((Container::Executions, execution_value.clone()));
        if let Some(day) = terminal_day(&execution_value) {
            metrics_days.push((execution.scope.clone(), day));
        }
    }
    Ok(Planned::Plan(Box::new(ExecutionPlan {
        execution_id: id,
        scope: execution.scope,
        writes,
        blob_copies,
        state,
        differences,
        checksum,
        metrics_days,
        log_documents,
        data_documents: data.len(),
    })))
}

/// A legacy blob of the `execution-data` container (`None` when it does not exist).
async fn legacy_blob(ctx: &PlanContext, name: &str) -> Result<Option<Vec<u8>>, ReadError> {
    if ctx
        .blob_names
        .as_ref()
        .is_some_and(|names| !names.contains(name))
    {
        return Ok(None);
    }
    ctx.client.get_blob(BLOB_CONTAINER, name).await
}

async fn read_result(
    ctx: &PlanContext,
    id: &str,
    inline: Option<&str>,
    in_blob: bool,
    at: Timestamp,
    ttl: Option<i64>,
    blob_bytes: &mut Vec<(String, Vec<u8>)>,
) -> Result<Option<Value>, ReadError> {
    if !in_blob {
        return Ok(inline.map(|raw| mapping::result_doc(id, at, ResultSource::Inline(raw), ttl)));
    }
    for (name, _) in RESULT_BLOBS {
        if let Some(bytes) = legacy_blob(ctx, &format!("{id}/{name}")).await? {
            let doc = mapping::result_doc(
                id,
                at,
                ResultSource::Blob {
                    name,
                    bytes: &bytes,
                },
                ttl,
            );
            blob_bytes.push((format!("{BLOB_CONTAINER}/{id}/{name}"), bytes));
            return Ok(Some(doc));
        }
    }
    // ResultInBlob without a blob: the legacy API shows no result either. An inline value, if
    // any, is better than nothing.
    tracing::warn!(
        execution_id = id,
        "ResultInBlob is set but no result blob exists"
    );
    Ok(inline.map(|raw| mapping::result_doc(id, at, ResultSource::Inline(raw), ttl)))
}

/// Every document of one `execution_data` partition, by id.
pub async fn read_partition(
    store: &dyn Store,
    execution_id: &str,
) -> Result<BTreeMap<String, Value>, StoreError> {
    let mut docs = BTreeMap::new();
    let items = crate::store::query_all(
        store,
        Container::ExecutionData,
        execution_id,
        Query::new(1000),
    )
    .await?;
    for item in items {
        if let Some(id) = item["id"].as_str() {
            docs.insert(id.to_owned(), item);
        }
    }
    Ok(docs)
}

fn terminal_day(execution: &Value) -> Option<String> {
    let status: crate::model::ExecutionStatus = execution["status"].as_str()?.parse().ok()?;
    if !status.is_terminal() {
        return None;
    }
    let completed = Timestamp::parse(execution["completedAt"].as_str()?).ok()?;
    Some(completed.date())
}

/// `field: source … ≠ target …` for each top-level field that differs; a field `hidden` says
/// may hold a secret is only said to differ.
pub fn field_differences(source: &Value, target: &Value, hidden: impl Fn(&str) -> bool) -> String {
    let (source, target) = (comparable(source), comparable(target));
    let empty = serde_json::Map::new();
    let (s, t) = (
        source.as_object().unwrap_or(&empty),
        target.as_object().unwrap_or(&empty),
    );
    let mut keys: Vec<&String> = s.keys().chain(t.keys()).collect();
    keys.sort();
    keys.dedup();
    keys.into_iter()
        .filter(|k| s.get(*k) != t.get(*k))
        .map(|k| {
            if hidden(k) {
                return format!("{k}: differs (not shown: it may hold a secret)");
            }
            let show = |v: Option<&Value>| {
                let text = v.map(Value::to_string).unwrap_or_else(|| "(absent)".into());
                if text.chars().count() > 80 {
                    format!("{}…", text.chars().take(80).collect::<String>())
                } else {
                    text
                }
            };
            format!("{k}: source {} ≠ target {}", show(s.get(k)), show(t.get(k)))
        })
        .collect::<Vec<_>>()
        .join("; ")
}

#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Blobs(#[from] BlobError),
}

/// Copies the plan's blobs, then upserts its documents (the execution last).
pub async fn apply_plan(
    store: &dyn Store,
    blobs: Option<&dyn BlobStore>,
    plan: &ExecutionPlan,
) -> Result<(), ApplyError> {
    if let Some(blobs) = blobs {
        for (blob_ref, bytes) in &plan.blob_copies {
            blobs.put(blob_ref, bytes).await?;
        }
    }
    apply(store, &plan.writes).await?;
    Ok(())
}

/// A Cosmos transactional batch carries at most 2 MB of request body; stay well under it.
const MAX_BATCH_BYTES: usize = 1024 * 1024;

/// Six attempts per write, 200 ms, 400 ms … 3.2 s apart: a store that is still failing after
/// the store's own retries gets a few seconds more before the run stops (its page is not
/// checkpointed, so `--resume` writes it again).
const ON_TRANSIENT: Backoff = Backoff {
    attempts: 6,
    base: Duration::from_millis(200),
    cap: Duration::from_millis(3200),
    jitter: Jitter::None,
};

/// Upserts the documents in order, each run of documents of one (container, partition) as
/// transactional batches (one SQLite transaction, one Cosmos request, instead of one per
/// document), with a few retries on transient store errors.
pub async fn apply(store: &dyn Store, writes: &[(Container, Value)]) -> Result<(), StoreError> {
    for group in write_groups(writes) {
        let (container, partition_key) = group.key;
        retry(
            &ON_TRANSIENT,
            |e: &StoreError| e.is_transient().into(),
            |e, next| {
                tracing::warn!(
                    container = %container,
                    attempt = next.failed,
                    wait_ms = next.wait.as_millis() as u64,
                    error = %e,
                    "writing migrated documents failed; retrying"
                );
            },
            || write_group(store, container, &partition_key, &group.docs),
        )
        .await?;
    }
    Ok(())
}

/// One upsert, or one transactional batch of upserts into one partition.
async fn write_group(
    store: &dyn Store,
    container: Container,
    partition_key: &str,
    docs: &[&Value],
) -> Result<(), StoreError> {
    if let [doc] = docs {
        return store
            .upsert(container, (*doc).clone(), None)
            .await
            .map(drop);
    }
    let operations = docs
        .iter()
        .map(|doc| BatchOperation::Upsert {
            doc: (*doc).clone(),
            if_match: None,
        })
        .collect();
    store
        .batch(container, partition_key, operations)
        .await
        .map(drop)
}

/// Consecutive writes to one (container, partition), at most `MAX_BATCH_OPERATIONS` documents
/// and `MAX_BATCH_BYTES` of JSON each (a single larger document is a group of its own).
#[derive(Debug)]
struct WriteGroup<'a> {
    key: (Container, String),
    docs: Vec<&'a Value>,
    bytes: usize,
}

fn write_groups(writes: &[(Container, Value)]) -> Vec<WriteGroup<'_>> {
    let mut groups: Vec<WriteGroup<'_>> = Vec::new();
    for (container, doc) in writes {
        let partition_key = doc[container.partition_key_field()]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let key = (*container, partition_key);
        let bytes = doc.to_string().len();
        match groups.last_mut() {
            Some(group)
                if group.key == key
                    && group.docs.len() < MAX_BATCH_OPERATIONS
                    && group.bytes + bytes <= MAX_BATCH_BYTES =>
            {
                group.docs.push(doc);
                group.bytes += bytes;
            }
            _ => groups.push(WriteGroup {
                key,
                docs: vec![doc],
                bytes,
            }),
        }
    }
    groups
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn differences_name_the_fields() {
        let text = field_differences(
            &json!({"id": "e", "status": "Success", "ttl": 1}),
            &json!({"id": "e", "status": "Failed", "ttl": 2, "extra": 1}),
            |_| false,
        );
        assert_eq!(
            text,
            "extra: source (absent) ≠ target 1; status: source \"Success\" ≠ target \"Failed\""
        );
        let hidden = field_differences(
            &json!({"id": "c", "value": "a"}),
            &json!({"id": "c", "value": "hunter2"}),
            |field| field == "value",
        );
        assert_eq!(hidden, "value: differs (not shown: it may hold a secret)");
    }

    #[test]
    fn writes_are_grouped_by_partition_in_order_within_the_batch_limits() {
        let log = |execution: &str, n: usize| {
            (
                Container::ExecutionData,
                json!({"id": format!("log-{n}"), "executionId": execution}),
            )
        };
        let mut writes: Vec<(Container, Value)> = (0..150).map(|n| log("e1", n)).collect();
        writes.push((
            Container::Executions,
            json!({"id": "e1", "scope": "GLOBAL"}),
        ));
        writes.push(log("e2", 0));
        let big = "x".repeat(MAX_BATCH_BYTES - 30);
        writes.push((
            Container::ExecutionData,
            json!({"id": "result", "executionId": "e2", "result": big}),
        ));
        let shape: Vec<(Container, String, usize)> = write_groups(&writes)
            .iter()
            .map(|g| (g.key.0, g.key.1.clone(), g.docs.len()))
            .collect();
        assert_eq!(
            shape,
            vec![
                (Container::ExecutionData, "e1".into(), 100),
                (Container::ExecutionData, "e1".into(), 50),
                (Container::Executions, "GLOBAL".into(), 1),
                (Container::ExecutionData, "e2".into(), 1),
                (Container::ExecutionData, "e2".into(), 1),
            ]
        );
    }

    #[test]
    fn terminal_days_only() {
        let done = json!({"status": "Success", "completedAt": "2025-11-20T23:59:59.000000Z"});
        assert_eq!(terminal_day(&done).as_deref(), Some("2025-11-20"));
        assert_eq!(terminal_day(&json!({"status": "Running"})), None);
    }
}
