//! The Cosmos DB backend on the official `azure_data_cosmos` crate.
//!
//! Point operations carry ETag preconditions; queries are rendered by `sql.rs` with every value
//! bound as a parameter and run in one partition; the change feed is the SDK's pull iterator
//! (latest-version mode) over the whole container, its continuation wrapped in a token tied to
//! the container. Every response's request charge goes to the `Meter`.

mod batch;
mod ensure;
pub mod meter;
mod retry;
pub mod settings;
mod sql;

use std::collections::HashMap;
use std::future::Future;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use azure_core::credentials::Secret;
use azure_data_cosmos::feed::{ChangeFeedPageIterator, ContinuationToken, FeedScope};
use azure_data_cosmos::models::{
    ChangeFeedItem, ContainerProperties, IndexingPolicy, PatchInstructions, PatchOperation,
    TransactionalBatch,
};
use azure_data_cosmos::options::{
    BatchOptions, ChangeFeedOptions, ChangeFeedStartFrom, ContentResponseOnWrite,
    EndToEndOperationLatencyPolicy, ItemWriteOptions, MaxItemCountHint, OperationOptions,
    PatchItemOptions, PatchStrategy, Precondition,
};
use azure_data_cosmos::{
    AccountEndpoint, AccountReference, ContainerClient, CosmosClient, CosmosClientBuilder,
    CosmosError, RoutingStrategy,
};
use base64::Engine;
use futures_util::StreamExt;
use serde_json::Value;

use super::{
    BatchOperation, BatchOutcome, ChangeFeedPage, Container, ETag, FeedPosition, Page, PatchOp,
    Query, Store, StoreError, StoredDocument,
};
use meter::Meter;
pub use meter::MeterReading;
pub use settings::{CosmosAuth, CosmosSettings, SettingsError};

/// Connecting reads the account and each container's partition map; an unreachable or
/// misconfigured endpoint fails within this bound instead of hanging the start.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(20);
/// End-to-end bound of one operation, SDK retries included.
const OPERATION_TIMEOUT: Duration = Duration::from_secs(30);
/// Properties Cosmos adds that are not part of the trait's documents.
const SERVER_ONLY_PROPERTIES: [&str; 3] = ["_rid", "_self", "_attachments"];
const FEED_TOKEN_VERSION: u64 = 1;

struct Handle {
    client: ContainerClient,
    /// Physical partitions: a full round of empty pages means the feed is caught up.
    feed_ranges: usize,
    /// The change-feed iterator of the last read, reused when the next read continues from
    /// the position it returned.
    feed: tokio::sync::Mutex<Option<LiveFeed>>,
}

struct LiveFeed {
    continuation: String,
    page_size: NonZeroU32,
    pages: ChangeFeedPageIterator<ChangeFeedItem<Value>>,
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

/// What `ensure` did to one resource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ensured {
    pub resource: String,
    pub created: bool,
}

fn describe(e: &CosmosError) -> String {
    // The SDK's Display carries status and server message; keep it on one line.
    e.to_string().replace('\n', " ")
}

/// Errors reaching the account at all: one clear line, transient or not.
fn connect_error(settings: &CosmosSettings, e: CosmosError) -> StoreError {
    let status = e.status();
    let hint = if status.is_unauthorized() || status.is_forbidden() {
        " (check the key or the identity's data-plane role)"
    } else {
        ""
    };
    StoreError::Backend(format!(
        "cannot reach Cosmos DB account {}: {}{hint}",
        settings.endpoint,
        describe(&e)
    ))
}

/// Maps an item-level failure. Not-found, conflict and precondition are part of the contract;
/// throttling and transient failures are `Unavailable` (callers retry whole batches).
fn item_error(container: Container, id: &str, e: CosmosError) -> StoreError {
    let status = e.status();
    let name = container.name();
    if status.is_not_found() {
        StoreError::NotFound {
            container: name,
            id: id.to_owned(),
        }
    } else if status.is_conflict() {
        StoreError::Conflict {
            container: name,
            id: id.to_owned(),
        }
    } else if status.is_precondition_failed() {
        StoreError::PreconditionFailed {
            container: name,
            id: id.to_owned(),
        }
    } else if u16::from(status.status_code()) == 413 {
        StoreError::InvalidDocument {
            container: name,
            reason: format!("Cosmos refused the document as too large: {}", describe(&e)),
        }
    } else if status.is_bad_request() {
        StoreError::InvalidDocument {
            container: name,
            reason: describe(&e),
        }
    } else {
        other_error(e)
    }
}

fn other_error(e: CosmosError) -> StoreError {
    let status = e.status();
    if status.is_throttled() || status.is_transient() || status.is_timeout() {
        StoreError::Unavailable(describe(&e))
    } else {
        StoreError::Backend(describe(&e))
    }
}

fn error_charge(e: &CosmosError) -> f64 {
    e.response()
        .and_then(|response| response.headers().request_charge)
        .map(f64::from)
        .unwrap_or(0.0)
}

fn charge_of(headers: &azure_data_cosmos::models::ResponseHeaders) -> f64 {
    headers
        .request_charge()
        .copied()
        .map(f64::from)
        .unwrap_or(0.0)
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

/// Creates database and containers when missing (409 = already there). Idempotent.
pub async fn ensure(settings: &CosmosSettings) -> Result<Vec<Ensured>, StoreError> {
    let client = connect(settings).await?;
    let mut done = Vec::new();
    let created = bounded("creating the database", async {
        match client.create_database(&settings.database, None).await {
            Ok(_) => Ok(true),
            Err(e) if e.status().is_conflict() => Ok(false),
            Err(e) => Err(connect_error(settings, e)),
        }
    })
    .await?;
    done.push(Ensured {
        resource: format!("database {}", settings.database),
        created,
    });
    let database = client.database_client(settings.database.as_str());
    for container in Container::ALL {
        let mut properties =
            ContainerProperties::new(container.name(), container.partition_key_path().into());
        if let Some(policy) = ensure::indexing_policy(container) {
            let policy: IndexingPolicy = serde_json::from_value(policy)
                .map_err(|e| StoreError::Backend(format!("indexing policy of {container}: {e}")))?;
            properties = properties.with_indexing_policy(policy);
        }
        if let Some(ttl) = container.default_ttl() {
            let ttl =
                u32::try_from(ttl).map_err(|_| StoreError::Backend("TTL too large".into()))?;
            properties = properties.with_default_ttl(ttl);
        }
        let created = bounded(&format!("creating container {container}"), async {
            match database.create_container(properties, None).await {
                Ok(_) => Ok(true),
                Err(e) if e.status().is_conflict() => Ok(false),
                Err(e) => Err(connect_error(settings, e)),
            }
        })
        .await?;
        done.push(Ensured {
            resource: format!("container {container}"),
            created,
        });
    }
    Ok(done)
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
            |e| retry_on(e).into(),
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

    fn feed_token(container: Container, sdk_token: &str) -> String {
        let token =
            serde_json::json!({"v": FEED_TOKEN_VERSION, "c": container.name(), "t": sdk_token});
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(token.to_string())
    }

    /// The SDK continuation inside one of our feed tokens, refused when it belongs to another
    /// container or is not ours at all.
    fn sdk_feed_token(container: Container, token: &str) -> Result<String, StoreError> {
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(token)
            .map_err(|_| StoreError::BadContinuation)?;
        let value: Value =
            serde_json::from_slice(&bytes).map_err(|_| StoreError::BadContinuation)?;
        if value.get("v").and_then(Value::as_u64) != Some(FEED_TOKEN_VERSION)
            || value.get("c").and_then(Value::as_str) != Some(container.name())
        {
            return Err(StoreError::BadContinuation);
        }
        value
            .get("t")
            .and_then(Value::as_str)
            .filter(|t| !t.is_empty())
            .map(str::to_owned)
            .ok_or(StoreError::BadContinuation)
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
                    return Err(batch::failure(
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
        let handle = self.handle(container)?;
        // A page holds at least one change (the SDK cannot ask for zero).
        let page_size = NonZeroU32::new(u32::try_from(max_items.max(1)).unwrap_or(u32::MAX))
            .unwrap_or(NonZeroU32::MIN);
        // One reader per container at a time; it keeps the iterator it left off with.
        let mut live = handle.feed.lock().await;
        let reusable = match (live.take(), from) {
            (Some(feed), FeedPosition::Continuation(token))
                if feed.continuation == *token && feed.page_size == page_size =>
            {
                Some(feed.pages)
            }
            _ => None,
        };
        let resumed = matches!(from, FeedPosition::Continuation(_));
        let feed_error = |e: CosmosError| {
            if resumed && e.status().is_bad_request() {
                StoreError::BadContinuation
            } else {
                other_error(e)
            }
        };
        let mut pages = match reusable {
            Some(pages) => pages,
            None => {
                let (start, resume) = match from {
                    FeedPosition::Beginning => (ChangeFeedStartFrom::Beginning, None),
                    FeedPosition::Now => (ChangeFeedStartFrom::Now, None),
                    FeedPosition::Continuation(token) => (
                        ChangeFeedStartFrom::Beginning,
                        Some(Self::sdk_feed_token(container, token)?),
                    ),
                };
                let mut options = ChangeFeedOptions::default()
                    .with_operation_options(operation_options())
                    .with_max_item_count(MaxItemCountHint::Limit(page_size));
                if let Some(token) = resume {
                    options =
                        options.with_continuation_token(ContinuationToken::from_string(token));
                }
                handle
                    .client
                    .query_change_feed::<Value>(FeedScope::full_container(), start, Some(options))
                    .await
                    .map_err(feed_error)?
            }
        };
        // The iterator polls one physical partition per page, round-robin, and never ends: a
        // full round of empty pages means every partition is caught up. Its round-robin cursor
        // is not part of the continuation token, which is why the live iterator is kept: a
        // fresh one would start each call at the first partition, and a busy first partition
        // would starve the others.
        let mut empty_pages = 0;
        let mut documents = Vec::new();
        while empty_pages < handle.feed_ranges {
            let page = match pages.next().await {
                Some(page) => page.map_err(feed_error)?,
                None => return Err(StoreError::Backend("the change feed ended".into())),
            };
            self.meter.charge(charge_of(page.headers()));
            if page.items().is_empty() {
                empty_pages += 1;
                continue;
            }
            documents = page
                .into_items()
                .into_iter()
                .filter_map(|item: ChangeFeedItem<Value>| item.current().cloned().map(normalize))
                .collect();
            break;
        }
        let continuation = match from {
            // Nothing new: a resumed position stays exactly as it was.
            FeedPosition::Continuation(token) if documents.is_empty() => token.clone(),
            _ => {
                let token = pages
                    .to_continuation_token()
                    .map_err(|e| StoreError::Backend(format!("change feed position: {e}")))?;
                Self::feed_token(container, token.as_str())
            }
        };
        tracing::debug!(%container, changes = documents.len(), "cosmos change feed read");
        *live = Some(LiveFeed {
            continuation: continuation.clone(),
            page_size,
            pages,
        });
        Ok(ChangeFeedPage {
            documents,
            continuation,
        })
    }
}

#[cfg(test)]
mod tests {
    //! The backend-neutral conformance suite against a Cosmos-compatible HTTP server (the SDK's
    //! in-memory emulator behind hyper, on a real socket), one fresh server per check, and
    //! against a real account when `COSMOS_ENDPOINT` and `COSMOS_KEY` are set.

    use super::*;
    use crate::store::conformance;
    use bifrost_test_support::cosmos_emulator::{self, Emulator};

    async fn emulated() -> (Emulator, Arc<dyn Store>) {
        let emulator = cosmos_emulator::start().await.unwrap();
        let settings = CosmosSettings::parse(&emulator.store_url("bifrost")).unwrap();
        let done = ensure(&settings).await.unwrap();
        assert!(done.iter().all(|step| step.created), "{done:?}");
        // Idempotent: a second run finds everything in place.
        let again = ensure(&settings).await.unwrap();
        assert!(again.iter().all(|step| !step.created), "{again:?}");
        let store = CosmosStore::open(&settings).await.unwrap();
        (emulator, Arc::new(store))
    }

    /// A real account, in a fresh database per check, or `None` (with the reason printed).
    /// Real Cosmos needs a composite index for every multi-field ORDER BY, so the containers get
    /// the production policy plus the suite's own orderings.
    async fn real_account() -> Option<(Arc<dyn Store>, CosmosSettings)> {
        let (Ok(endpoint), Ok(key)) = (
            std::env::var("COSMOS_ENDPOINT"),
            std::env::var("COSMOS_KEY"),
        ) else {
            eprintln!("skipped against a real Cosmos DB account: COSMOS_ENDPOINT and COSMOS_KEY are not set");
            return None;
        };
        let database = format!("bifrost-test-{}", uuid::Uuid::new_v4().simple());
        let settings = CosmosSettings::parse(&format!(
            "AccountEndpoint={endpoint};AccountKey={key};Database={database}"
        ))
        .unwrap();
        let client = connect(&settings).await.unwrap();
        client.create_database(&database, None).await.unwrap();
        let db = client.database_client(database.as_str());
        for container in Container::ALL {
            // Everything indexed (the suite filters and sorts on ad-hoc fields), plus a composite
            // index for each of its multi-key orderings (each also serves the reversed order).
            let index = |keys: &[(&str, &str)]| {
                keys.iter()
                    .map(|(path, order)| serde_json::json!({"path": path, "order": order}))
                    .collect::<Vec<_>>()
            };
            let policy = serde_json::json!({
                "indexingMode": "consistent",
                "automatic": true,
                "includedPaths": [{"path": "/*"}],
                "excludedPaths": [],
                "compositeIndexes": [
                    index(&[("/n", "ascending"), ("/id", "ascending")]),
                    index(&[("/_ts", "ascending"), ("/id", "ascending")]),
                    index(&[("/group", "ascending"), ("/n", "descending"), ("/id", "descending")]),
                ],
            });
            let properties =
                ContainerProperties::new(container.name(), container.partition_key_path().into())
                    .with_indexing_policy(serde_json::from_value(policy).unwrap());
            let properties = match container.default_ttl() {
                Some(ttl) => properties.with_default_ttl(ttl as u32),
                None => properties,
            };
            db.create_container(properties, None).await.unwrap();
        }
        let store = CosmosStore::open(&settings).await.unwrap();
        Some((Arc::new(store), settings))
    }

    async fn drop_database(settings: &CosmosSettings) {
        let client = connect(settings).await.unwrap();
        let _ = client
            .database_client(settings.database.as_str())
            .delete(None)
            .await;
    }

    macro_rules! conformance_on_cosmos {
        ($($name:ident => $check:path),* $(,)?) => {
            mod emulator {
                use super::*;
                $(
                    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                    async fn $name() {
                        let (_emulator, store) = emulated().await;
                        $check(store).await;
                    }
                )*
            }
            mod real_account {
                use super::*;
                $(
                    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                    async fn $name() {
                        if let Some((store, settings)) = real_account().await {
                            $check(store).await;
                            drop_database(&settings).await;
                        }
                    }
                )*
            }
        };
    }

    conformance_on_cosmos! {
        crud_and_etags => conformance::crud_and_etags,
        transactional_batch => conformance::transactional_batch_is_all_or_nothing,
        patches => conformance::patches,
        invalid_and_oversized_documents => conformance::invalid_and_oversized_documents,
        queries_with_parameters => conformance::queries_with_parameters,
        ordering_with_ties => conformance::ordering_with_ties,
        pagination => conformance::pagination_is_complete_and_stable,
        partition_isolation => conformance::partition_isolation,
        change_feed => conformance::change_feed_order_dedupe_and_resume,
        ttl_fields => conformance::ttl_fields_are_validated_and_kept,
        concurrent_writers => conformance::concurrent_writers_and_optimistic_concurrency,
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn request_units_are_counted() {
        let (_emulator, store) = emulated().await;
        let before = store.request_units().unwrap();
        store
            .upsert(Container::Leases, serde_json::json!({"id": "x"}), None)
            .await
            .unwrap();
        store.read(Container::Leases, "x", "x").await.unwrap();
        assert!(store.request_units().unwrap() > before);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn throttled_writes_wait_for_retry_after_and_succeed() {
        use azure_data_cosmos::models::ThroughputProperties;
        use azure_data_cosmos::options::CreateContainerOptions;
        let emulator = cosmos_emulator::start_throttled().await.unwrap();
        let settings = CosmosSettings::parse(&emulator.store_url("bifrost")).unwrap();
        // Provisioned throughput (ensure creates serverless-style containers without it).
        let client = connect(&settings).await.unwrap();
        client.create_database("bifrost", None).await.unwrap();
        let database = client.database_client("bifrost");
        for container in Container::ALL {
            let properties =
                ContainerProperties::new(container.name(), container.partition_key_path().into());
            let options = CreateContainerOptions::default()
                .with_throughput(ThroughputProperties::manual(400));
            database
                .create_container(properties, Some(options))
                .await
                .unwrap();
        }
        let store = Arc::new(CosmosStore::open(&settings).await.unwrap());
        let pad = "x".repeat(6_000);
        let started = std::time::Instant::now();
        let mut tasks = Vec::new();
        for i in 0..12 {
            let (store, pad) = (store.clone(), pad.clone());
            tasks.push(tokio::spawn(async move {
                let doc = serde_json::json!({"id": format!("w{i}"), "scope": "GLOBAL", "pad": pad});
                store.upsert(Container::Entities, doc, None).await
            }));
        }
        for task in tasks {
            task.await
                .unwrap()
                .expect("a throttled write eventually succeeds");
        }
        let elapsed = started.elapsed();
        let reading = store.meter();
        eprintln!(
            "12 writes, {:.1} RU, {} ms, {} retries beyond the SDK's",
            reading.request_units,
            elapsed.as_millis(),
            reading.retries
        );
        // 400 RU/s over 4 partitions: these writes cost several seconds of one partition's
        // budget, so they can only have succeeded by waiting out 429s.
        let partitions = store.handle(Container::Entities).unwrap().feed_ranges as f64;
        let budget_per_second = 400.0 / partitions;
        assert!(
            reading.request_units > 3.0 * budget_per_second,
            "{reading:?}"
        );
        // One window's budget may be spent at once; the rest had to wait for later windows.
        let least = reading.request_units / budget_per_second - 1.0;
        assert!(
            elapsed.as_secs_f64() >= least,
            "{elapsed:?} is too fast for {least:.1} s of throttled budget"
        );
        for i in 0..12 {
            let id = format!("w{i}");
            assert!(store
                .read(Container::Entities, "GLOBAL", &id)
                .await
                .unwrap()
                .is_some());
        }
    }

    #[tokio::test]
    async fn a_closed_port_fails_fast_with_one_line() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let settings =
            CosmosSettings::parse(&format!("cosmos+http://127.0.0.1:{port}/?key=a2V5")).unwrap();
        let started = std::time::Instant::now();
        let error = CosmosStore::open(&settings).await.unwrap_err().to_string();
        assert!(started.elapsed() <= CONNECT_TIMEOUT + Duration::from_secs(2));
        assert!(error.contains("cannot reach Cosmos DB account"), "{error}");
        assert!(!error.contains('\n'), "{error}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn missing_containers_name_the_fix() {
        let emulator = cosmos_emulator::start().await.unwrap();
        let settings = CosmosSettings::parse(&emulator.store_url("nothing-here")).unwrap();
        let error = CosmosStore::open(&settings).await.unwrap_err().to_string();
        assert!(error.contains("bifrost-workers ensure"), "{error}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_busy_partition_does_not_starve_the_others() {
        let (_emulator, store) = emulated().await;
        let c = Container::ExecutionData;
        let mut position = FeedPosition::Beginning;
        // Eight executions spread over the physical partitions, each with a backlog.
        for e in 0..8 {
            let writes = (0..20)
                .map(|s| {
                    let doc = serde_json::json!({"id": format!("e{e}-{s}"), "executionId": format!("e{e}")});
                    BatchOperation::Upsert { doc, if_match: None }
                })
                .collect();
            store.batch(c, &format!("e{e}"), writes).await.unwrap();
        }
        let mut seen = std::collections::BTreeSet::new();
        for _ in 0..8 {
            let page = store.read_change_feed(c, &position, 1).await.unwrap();
            for doc in &page.documents {
                seen.insert(doc["executionId"].as_str().unwrap().to_owned());
            }
            position = FeedPosition::Continuation(page.continuation);
        }
        // Round-robin over partitions: one-item pages do not drain the first partition first.
        assert!(seen.len() >= 2, "only {seen:?} in 8 pages");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn feed_tokens_are_tied_to_their_container() {
        let (_emulator, store) = emulated().await;
        let page = store
            .read_change_feed(Container::ExecutionData, &FeedPosition::Now, 10)
            .await
            .unwrap();
        let foreign = store
            .read_change_feed(
                Container::Executions,
                &FeedPosition::Continuation(page.continuation),
                10,
            )
            .await;
        assert!(
            matches!(foreign, Err(StoreError::BadContinuation)),
            "{foreign:?}"
        );
    }
}
