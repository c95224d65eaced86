//! The Cosmos DB backend on the official `azure_data_cosmos` crate.
//!
//! Point operations carry ETag preconditions; queries are rendered by `sql.rs` with every value
//! bound as a parameter and run in one partition; the change feed is the SDK's pull iterator
//! (latest-version mode) over the whole container, its continuation wrapped in a token tied to
//! the container. Every response's request charge goes to the `Meter`.
//!
//! This file holds `CosmosStore` (connecting, its containers, the retries on top of the SDK's)
//! and the `Store` impl. Beside it:
//! - `errors`: the SDK's errors and a batch's failed sub-results as `StoreError`s;
//! - `feed`: reading the change feed, and the positions it hands out;
//! - `batch`: the store's batch as a Cosmos transactional batch, and its outcomes;
//! - `sql`: the backend-neutral `Query` as Cosmos SQL;
//! - `ensure`: creating the database and containers, with their indexing policies;
//! - `meter`: request units and retries; `retry`: the backoff; `settings`: the store URL.

mod batch;
mod ensure;
mod errors;
mod feed;
pub mod meter;
mod retry;
pub mod settings;
mod sql;
#[cfg(test)]
pub(crate) mod testing;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use azure_core::credentials::Secret;
use azure_data_cosmos::feed::FeedScope;
use azure_data_cosmos::models::{PatchInstructions, PatchOperation, TransactionalBatch};
use azure_data_cosmos::options::{
    BatchOptions, ContentResponseOnWrite, EndToEndOperationLatencyPolicy, ItemWriteOptions,
    OperationOptions, PatchItemOptions, PatchStrategy, Precondition,
};
use azure_data_cosmos::{
    AccountEndpoint, AccountReference, ContainerClient, CosmosClient, CosmosClientBuilder,
    CosmosError, RoutingStrategy,
};
use futures_util::StreamExt;
use serde_json::Value;

use super::{
    BatchOperation, BatchOutcome, ChangeFeedPage, Container, ETag, FeedPosition, Page, PatchOp,
    Query, Store, StoreError, StoredDocument,
};
pub use ensure::{ensure, Ensured};
use errors::{connect_error, describe, item_error, other_error};
pub use meter::MeterReading;
use meter::{charge_of, error_charge, Meter};
pub use settings::{CosmosAuth, CosmosSettings, SettingsError};

/// Connecting reads the account and each container's partition map; an unreachable or
/// misconfigured endpoint fails within this bound instead of hanging the start.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(20);
/// End-to-end bound of one operation, SDK retries included. It is also the only bound on one
/// request (the SDK gives each attempt what is left of it), so it decides how long a point write
/// or a change-feed page whose answer never comes holds its batch or its pump. Healthy answers
/// take milliseconds; 10 s lets a hung request fail, show in health and be retried (by this
/// backend for reads, by the function's retry policy for writes) well within that policy's
/// ~31 s. A 429 the SDK is still waiting out when it ends is retried here, after the service's
/// `x-ms-retry-after-ms`.
const OPERATION_TIMEOUT: Duration = Duration::from_secs(10);
/// Properties Cosmos adds that are not part of the trait's documents.
const SERVER_ONLY_PROPERTIES: [&str; 3] = ["_rid", "_self", "_attachments"];

struct Handle {
    client: ContainerClient,
    /// Physical partitions: a full round of empty pages means the feed is caught up.
    feed_ranges: usize,
    /// The change-feed iterator of the last read, reused when the next read continues from
    /// the position it returned.
    feed: tokio::sync::Mutex<Option<feed::LiveFeed>>,
}

pub struct CosmosStore {
    settings: CosmosSettings,
    containers: HashMap<Container, Handle>,
    meter: Arc<Meter>,
}

impl std::fmt::Debug for CosmosStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CosmosStore")
            .field("account", &self.settings.to_string())
            .finish_non_exhaustive()
    }
}

/// Drops the properties only Cosmos has (`_rid`, `_self`, `_attachments`), so documents look
/// the same from every backend. `_lsn` stays only where Cosmos itself puts it (change-feed
/// documents of the real service): a header value would make a point read differ from the same
/// document in the feed.
fn normalize(mut doc: Value) -> Value {
    if let Value::Object(map) = &mut doc {
        for key in SERVER_ONLY_PROPERTIES {
            map.remove(key);
        }
    }
    doc
}

fn stored(doc: Value) -> Result<StoredDocument, StoreError> {
    let etag = doc
        .get("_etag")
        .and_then(Value::as_str)
        .ok_or_else(|| StoreError::Backend("Cosmos returned a document without _etag".into()))?
        .to_owned();
    Ok(StoredDocument {
        body: doc,
        etag: ETag(etag),
    })
}

fn operation_options() -> OperationOptions {
    let mut options = OperationOptions::default();
    options.end_to_end_latency_policy =
        Some(EndToEndOperationLatencyPolicy::new(OPERATION_TIMEOUT));
    options
}

/// Writes return the stored document (with its `_etag` and `_ts`) to the caller.
fn content_operation_options() -> OperationOptions {
    let mut operation = operation_options();
    operation.content_response_on_write = Some(ContentResponseOnWrite::Enabled);
    operation
}

fn write_options(if_match: Option<&ETag>) -> ItemWriteOptions {
    let options = ItemWriteOptions::default().with_operation_options(content_operation_options());
    match if_match {
        Some(etag) => options.with_precondition(Precondition::if_match(etag.0.clone())),
        None => options,
    }
}

/// Opens the account client (does I/O: the SDK reads the account's regions).
async fn connect(settings: &CosmosSettings) -> Result<CosmosClient, StoreError> {
    let endpoint: AccountEndpoint = settings.endpoint.parse().map_err(|e| {
        StoreError::Backend(format!(
            "invalid Cosmos DB endpoint {}: {e}",
            settings.endpoint
        ))
    })?;
    let account = match &settings.auth {
        CosmosAuth::Key(key) => {
            AccountReference::with_authentication_key(endpoint, Secret::new(key.clone()))
        }
        CosmosAuth::ManagedIdentity { client_id } => {
            let options = azure_identity::ManagedIdentityCredentialOptions {
                user_assigned_id: client_id
                    .clone()
                    .map(azure_identity::UserAssignedId::ClientId),
                ..Default::default()
            };
            let credential = azure_identity::ManagedIdentityCredential::new(Some(options))
                .map_err(|e| StoreError::Backend(format!("managed identity: {e}")))?;
            AccountReference::with_credential(endpoint, credential)
        }
    };
    let build = CosmosClientBuilder::new()
        .with_default_operation_options(operation_options())
        .build(account, RoutingStrategy::PreferredRegions(vec![]));
    match tokio::time::timeout(CONNECT_TIMEOUT, build).await {
        Ok(result) => result.map_err(|e| connect_error(settings, e)),
        Err(_) => Err(StoreError::Backend(format!(
            "cannot reach Cosmos DB account {}: no answer within {} s",
            settings.endpoint,
            CONNECT_TIMEOUT.as_secs()
        ))),
    }
}

/// Bounds one control-plane step of start-up or `ensure`.
async fn bounded<T>(
    what: &str,
    work: impl Future<Output = Result<T, StoreError>>,
) -> Result<T, StoreError> {
    tokio::time::timeout(CONNECT_TIMEOUT, work)
        .await
        .unwrap_or_else(|_| {
            Err(StoreError::Backend(format!(
                "{what}: no answer within {} s",
                CONNECT_TIMEOUT.as_secs()
            )))
        })
}

impl CosmosStore {
    /// Connects and loads every container's client; containers must exist (`ensure`).
    pub async fn open(settings: &CosmosSettings) -> Result<CosmosStore, StoreError> {
        let client = connect(settings).await?;
        let database = client.database_client(settings.database.as_str());
        let mut containers = HashMap::new();
        for container in Container::ALL {
            let handle = bounded(&format!("opening container {container}"), async {
                let client = database
                    .container_client(container.name(), None)
                    .await
                    .map_err(|e| {
                        if e.status().is_not_found() {
                            StoreError::Backend(format!(
                                "container {container} does not exist in database {} of {}: \
                                 run `bifrost-workers ensure --store …` first",
                                settings.database, settings.endpoint
                            ))
                        } else {
                            connect_error(settings, e)
                        }
                    })?;
                let feed_ranges = client
                    .read_feed_ranges(None)
                    .await
                    .map_err(|e| connect_error(settings, e))?
                    .len()
                    .max(1);
                Ok(Handle {
                    client,
                    feed_ranges,
                    feed: tokio::sync::Mutex::new(None),
                })
            })
            .await?;
            containers.insert(container, handle);
        }
        Ok(CosmosStore {
            settings: settings.clone(),
            containers,
            meter: Arc::new(Meter::default()),
        })
    }

    fn handle(&self, container: Container) -> Result<&Handle, StoreError> {
        self.containers
            .get(&container)
            .ok_or_else(|| StoreError::Backend(format!("container {container} is not open")))
    }

    /// RU and retry totals since the store was opened.
    pub fn meter(&self) -> MeterReading {
        self.meter.reading()
    }

    /// Runs `attempt` again, with bounded backoff, while it fails with an error worth retrying
    /// (`retry_on`), logging each retry.
    async fn retrying<T, F, Fut>(
        &self,
        operation: &'static str,
        retry_on: impl Fn(&CosmosError) -> bool,
        mut attempt: F,
    ) -> Result<T, CosmosError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, CosmosError>>,
    {
        crate::retry::retry(
            &retry::BACKOFF,
            |e| retry::classify(e, retry_on(e)),
            |e, next| {
                self.meter.retried();
                tracing::warn!(
                    operation,
                    attempt = next.failed,
                    delay_ms = next.wait.as_millis() as u64,
                    status = %e.status().status_code(),
                    "Cosmos DB request still failing after the SDK's retries; backing off"
                );
            },
            || {
                let result = attempt();
                async move {
                    let result = result.await;
                    if let Err(e) = &result {
                        // Failed requests cost RUs too (a 404 read, a 412 write).
                        self.meter.charge(error_charge(e));
                    }
                    result
                }
            },
        )
        .await
    }

    async fn write(
        &self,
        kind: WriteKind,
        container: Container,
        doc: Value,
        if_match: Option<&ETag>,
    ) -> Result<StoredDocument, StoreError> {
        let valid = super::validate::validate(container, doc)?;
        let client = &self.handle(container)?.client;
        let (pk, id, doc) = (valid.pk, valid.id, valid.doc);
        // Only throttling is retried for writes: a 429 means the write did not happen, whereas
        // a timed-out write may have, and repeating a create would then report a conflict.
        let response = self
            .retrying(
                kind.name(),
                |e| e.status().is_throttled(),
                || {
                    let options = Some(write_options(if_match));
                    let (pk, id, doc) = (pk.clone(), id.as_str(), &doc);
                    async move {
                        match kind {
                            WriteKind::Create => client.create_item(pk, id, doc, options).await,
                            // A conditional upsert can only match an existing version, so it is a
                            // conditional replace (the emulator would create a missing document).
                            WriteKind::Upsert if if_match.is_some() => {
                                client.replace_item(pk, id, doc, options).await
                            }
                            WriteKind::Upsert => client.upsert_item(pk, id, doc, options).await,
                            WriteKind::Replace => client.replace_item(pk, id, doc, options).await,
                        }
                    }
                },
            )
            .await;
        let response = match response {
            Ok(response) => response,
            // A conditional upsert of a missing document cannot match its ETag.
            Err(e)
                if e.status().is_not_found()
                    && if_match.is_some()
                    && matches!(kind, WriteKind::Upsert) =>
            {
                return Err(StoreError::PreconditionFailed {
                    container: container.name(),
                    id,
                })
            }
            Err(e) => return Err(item_error(container, &id, e)),
        };
        let charge = charge_of(response.headers());
        self.meter.charge(charge);
        tracing::debug!(op = kind.name(), %container, id, ru = charge, "cosmos write");
        let body: Value = response
            .into_body()
            .into_single()
            .map_err(|e| StoreError::Backend(format!("reading the written document: {e}")))?;
        stored(normalize(body))
    }
}

#[derive(Debug, Clone, Copy)]
enum WriteKind {
    Create,
    Upsert,
    Replace,
}

impl WriteKind {
    fn name(self) -> &'static str {
        match self {
            WriteKind::Create => "create",
            WriteKind::Upsert => "upsert",
            WriteKind::Replace => "replace",
        }
    }
}

/// Reads and queries are safe to repeat: retry anything transient.
fn retry_read(e: &CosmosError) -> bool {
    let status = e.status();
    status.is_throttled() || status.is_transient()
}

#[async_trait]
impl Store for CosmosStore {
    fn backend(&self) -> &'static str {
        "cosmos"
    }

    fn request_units(&self) -> Option<f64> {
        Some(self.meter.reading().request_units)
    }

    async fn read(
        &self,
        container: Container,
        partition_key: &str,
        id: &str,
    ) -> Result<Option<StoredDocument>, StoreError> {
        let client = &self.handle(container)?.client;
        let result = self
            .retrying("read", retry_read, || {
                client.read_item(partition_key.to_owned(), id, None)
            })
            .await;
        let response = match result {
            Ok(response) => response,
            Err(e) if e.status().is_not_found() => return Ok(None),
            Err(e) => return Err(item_error(container, id, e)),
        };
        let charge = charge_of(response.headers());
        self.meter.charge(charge);
        tracing::debug!(op = "read", %container, id, ru = charge, "cosmos read");
        let body: Value = response
            .into_model()
            .map_err(|e| StoreError::Backend(format!("reading {id}: {e}")))?;
        stored(normalize(body)).map(Some)
    }

    async fn create(&self, container: Container, doc: Value) -> Result<StoredDocument, StoreError> {
        self.write(WriteKind::Create, container, doc, None).await
    }

    async fn upsert(
        &self,
        container: Container,
        doc: Value,
        if_match: Option<&ETag>,
    ) -> Result<StoredDocument, StoreError> {
        self.write(WriteKind::Upsert, container, doc, if_match)
            .await
    }

    async fn replace(
        &self,
        container: Container,
        doc: Value,
        if_match: Option<&ETag>,
    ) -> Result<StoredDocument, StoreError> {
        self.write(WriteKind::Replace, container, doc, if_match)
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
        crate::store::patch::check(container, operations)?;
        let client = &self.handle(container)?.client;
        let instructions = operations
            .iter()
            .fold(PatchInstructions::new(), |instructions, op| {
                instructions.with_operation(match op {
                    PatchOp::Set(_, value) => PatchOperation::set(op.pointer(), value.clone()),
                    PatchOp::Increment(_, by) => PatchOperation::increment(op.pointer(), *by),
                    PatchOp::Remove(_) => PatchOperation::remove(op.pointer()),
                })
            });
        let result = self
            .retrying(
                "patch",
                |e| e.status().is_throttled(),
                || {
                    // Server-side: one PATCH request, only the operations on the wire; the
                    // client-side strategy would read and replace the whole document.
                    let mut options =
                        PatchItemOptions::default().with_strategy(PatchStrategy::ServerSide);
                    options.operation = content_operation_options();
                    if let Some(etag) = if_match {
                        options = options.with_precondition(Precondition::if_match(etag.0.clone()));
                    }
                    client.patch_item(
                        partition_key.to_owned(),
                        id,
                        instructions.clone(),
                        Some(options),
                    )
                },
            )
            .await;
        let response = result.map_err(|e| item_error(container, id, e))?;
        let charge = charge_of(response.headers());
        self.meter.charge(charge);
        tracing::debug!(op = "patch", %container, id, ru = charge, "cosmos patch");
        let body: Value = response
            .into_body()
            .into_single()
            .map_err(|e| StoreError::Backend(format!("reading the patched document: {e}")))?;
        stored(normalize(body))
    }

    async fn batch(
        &self,
        container: Container,
        partition_key: &str,
        operations: Vec<BatchOperation>,
    ) -> Result<Vec<BatchOutcome>, StoreError> {
        let prepared = batch::prepare(container, partition_key, operations)?;
        let client = &self.handle(container)?.client;
        // Deletes of documents that are not there: Cosmos fails the whole batch with 404, while
        // the contract reports `Deleted(false)`. The batch was rolled back, so it runs again
        // without them (as if they had run first, when there was nothing to delete).
        let mut absent: Vec<usize> = Vec::new();
        for _ in 0..=prepared.len() {
            let running: Vec<(usize, &batch::Prepared)> = prepared
                .iter()
                .enumerate()
                .filter(|(index, _)| !absent.contains(index))
                .collect();
            if running.is_empty() {
                return Ok(batch::outcomes(&prepared, &absent, Vec::new()));
            }
            let mut request = TransactionalBatch::new(partition_key.to_owned());
            for (_, op) in &running {
                request = op
                    .add_to(request)
                    .map_err(|e| StoreError::Backend(format!("building the batch: {e}")))?;
            }
            let response = self
                .retrying(
                    "batch",
                    |e| e.status().is_throttled(),
                    || {
                        let options = BatchOptions::default()
                            .with_operation_options(content_operation_options());
                        client.execute_transactional_batch(request.clone(), Some(options))
                    },
                )
                .await
                .map_err(|e| item_error(container, running[0].1.id(), e))?;
            self.meter.charge(charge_of(response.headers()));
            let results = response
                .into_model()
                .map_err(|e| StoreError::Backend(format!("reading the batch response: {e}")))?;
            let results = results.results();
            if results.len() != running.len() {
                return Err(StoreError::Backend(format!(
                    "batch of {} operations answered {} results",
                    running.len(),
                    results.len()
                )));
            }
            // Every sub-result is checked. A failed batch is rolled back as a whole; the
            // operation that caused it is the one not marked 424 (failed dependency).
            let failed = running
                .iter()
                .zip(results)
                .find(|(_, r)| !r.is_success() && r.status_code() != 424)
                .or_else(|| running.iter().zip(results).find(|(_, r)| !r.is_success()));
            match failed {
                None => {
                    let mut written = Vec::new();
                    for ((_, op), result) in running.iter().zip(results) {
                        written.push(match op {
                            batch::Prepared::Delete { .. } => None,
                            _ => {
                                let body: Value = result
                                    .into_model()
                                    .map_err(|e| {
                                        StoreError::Backend(format!(
                                            "batch result for {}: {e}",
                                            op.id()
                                        ))
                                    })?
                                    .ok_or_else(|| {
                                        StoreError::Backend(format!(
                                            "batch result for {} has no document",
                                            op.id()
                                        ))
                                    })?;
                                Some(stored(normalize(body))?)
                            }
                        });
                    }
                    return Ok(batch::outcomes(&prepared, &absent, written));
                }
                Some(((index, batch::Prepared::Delete { .. }), result))
                    if result.status_code() == 404 =>
                {
                    absent.push(*index);
                }
                Some(((_, op), result)) => {
                    return Err(errors::batch_failure(
                        container,
                        op,
                        result.status_code(),
                        result.substatus_code(),
                    ))
                }
            }
        }
        Err(StoreError::Backend("the batch did not settle".into()))
    }

    async fn delete(
        &self,
        container: Container,
        partition_key: &str,
        id: &str,
        if_match: Option<&ETag>,
    ) -> Result<bool, StoreError> {
        let client = &self.handle(container)?.client;
        let result = self
            .retrying(
                "delete",
                |e| e.status().is_throttled(),
                || {
                    let mut options =
                        ItemWriteOptions::default().with_operation_options(operation_options());
                    if let Some(etag) = if_match {
                        options = options.with_precondition(Precondition::if_match(etag.0.clone()));
                    }
                    client.delete_item(partition_key.to_owned(), id, Some(options))
                },
            )
            .await;
        match result {
            Ok(response) => {
                self.meter.charge(charge_of(response.headers()));
                Ok(true)
            }
            Err(e) if e.status().is_not_found() => Ok(false),
            Err(e) => Err(item_error(container, id, e)),
        }
    }

    async fn query(
        &self,
        container: Container,
        partition_key: &str,
        query: &Query,
    ) -> Result<Page, StoreError> {
        let rendered = sql::render(container.name(), partition_key, query)?;
        let client = &self.handle(container)?.client;
        let mut cosmos_query = azure_data_cosmos::Query::from(rendered.sql.clone());
        for (name, value) in &rendered.parameters {
            cosmos_query = cosmos_query
                .with_parameter(name.clone(), value)
                .map_err(|e| StoreError::InvalidQuery(e.to_string()))?;
        }
        let items = self
            .retrying("query", retry_read, || {
                let cosmos_query = cosmos_query.clone();
                async move {
                    let mut pages = client
                        .query_items::<Value>(
                            cosmos_query,
                            FeedScope::partition(partition_key.to_owned()),
                            None,
                        )
                        .await?
                        .into_pages();
                    let mut items = Vec::new();
                    // TOP bounds the result; the SDK may still split it over pages.
                    while let Some(page) = pages.next().await {
                        let page = page?;
                        self.meter.charge(charge_of(page.headers()));
                        items.extend(page.into_items());
                    }
                    Ok(items)
                }
            })
            .await
            .map_err(|e| {
                if e.status().is_bad_request() {
                    StoreError::InvalidQuery(describe(&e))
                } else {
                    other_error(e)
                }
            })?;
        let more = items.len() > rendered.limit;
        let mut items: Vec<Value> = items
            .into_iter()
            .take(rendered.limit)
            .map(normalize)
            .collect();
        let continuation = match (more, items.last_mut()) {
            (true, Some(last)) => {
                let keys = rendered
                    .order_fields
                    .iter()
                    .map(|field| {
                        sql::field_value(last, field)
                            .cloned()
                            .unwrap_or(Value::Null)
                    })
                    .collect();
                let id = last.get("id").and_then(Value::as_str).unwrap_or_default();
                Some(super::keyset::encode(&rendered.fingerprint, keys, id))
            }
            _ => None,
        };
        tracing::debug!(%container, items = items.len(), "cosmos query");
        Ok(Page {
            items,
            continuation,
        })
    }

    async fn read_change_feed(
        &self,
        container: Container,
        from: &FeedPosition,
        max_items: usize,
    ) -> Result<ChangeFeedPage, StoreError> {
        feed::read(
            self.handle(container)?,
            &self.meter,
            container,
            from,
            max_items,
        )
        .await
    }
}
