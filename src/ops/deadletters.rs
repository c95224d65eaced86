//! Dead letters, for an operator: which batches are waiting (`list`), what one holds (`show`
//! gives the record), and replaying them (`replay`) through the same change-feed function.
//!
//! Replay is safe to repeat and to run after the documents changed: each document is replayed
//! at its current version when the store still has it (the change feed too delivers only the
//! latest version), else as recorded, and the functions are idempotent (log lines carry their
//! sequence, metrics remember which version of an execution they counted). The record is
//! removed only once the function succeeded; a failure leaves it for the next try.

use std::sync::Arc;

use schemars::JsonSchema;
use serde::Serialize;
use serde_json::Value;

use crate::model::RawDocument;
use crate::runtime::deadletter::{self, DeadLetterPayload, DeadLetterRecord};
use crate::runtime::function::{FunctionSpec, Handler, Trigger};
use crate::runtime::{AppContext, Batch, BatchHandler};
use crate::store::{string_field, Container, Store, StoreError};

/// A change-feed function a dead letter can be replayed through.
#[derive(Clone)]
pub struct ReplayTarget {
    pub function: &'static str,
    pub container: Container,
    /// The `Data` key of its host payload (to decode an undecodable payload kept verbatim).
    pub binding: &'static str,
    pub handler: Arc<dyn BatchHandler>,
}

/// The change-feed functions of a function list.
pub fn replay_targets(functions: &[FunctionSpec]) -> Vec<ReplayTarget> {
    functions
        .iter()
        .filter_map(|spec| match (&spec.trigger, &spec.handler) {
            (Trigger::CosmosDb(trigger), Handler::Batch(handler)) => Some(ReplayTarget {
                function: spec.name,
                container: trigger.container,
                binding: trigger.binding,
                handler: handler.clone(),
            }),
            _ => None,
        })
        .collect()
}

/// Which dead letters an operation is about: all, one function's, or one record.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Selection {
    pub function: Option<String>,
    /// A record id (`{function}-{batchId}`), its batch id, or one of its part ids.
    pub id: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum SelectionError {
    #[error("no change-feed function {0:?}; dead letters belong to {1}")]
    UnknownFunction(String, String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The dead letters `selection` names, oldest first per function.
pub async fn select(
    store: &dyn Store,
    targets: &[ReplayTarget],
    selection: &Selection,
) -> Result<Vec<DeadLetterRecord>, SelectionError> {
    let functions: Vec<&str> = match &selection.function {
        Some(name) => {
            let target = targets.iter().find(|t| t.function == name).ok_or_else(|| {
                let known: Vec<&str> = targets.iter().map(|t| t.function).collect();
                SelectionError::UnknownFunction(name.clone(), known.join(", "))
            })?;
            vec![target.function]
        }
        None => targets.iter().map(|t| t.function).collect(),
    };
    let mut records = Vec::new();
    for function in functions {
        records.extend(
            deadletter::list(store, function)
                .await?
                .into_iter()
                .filter(|r| selection.id.as_deref().is_none_or(|id| r.is_named(id))),
        );
    }
    Ok(records)
}

/// What `list` shows of a record.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeadLetterSummary {
    pub id: String,
    pub function: String,
    pub batch_id: String,
    pub invocation_id: String,
    pub reason: String,
    pub attempts: u64,
    pub created_at: Option<String>,
    /// Documents in the batch; null for a payload that could not be decoded (kept as text).
    pub documents: Option<usize>,
    pub parts: usize,
    /// Whether every part was found.
    pub complete: bool,
}

impl DeadLetterSummary {
    pub fn of(record: &DeadLetterRecord) -> Self {
        DeadLetterSummary {
            id: record.id.clone(),
            function: record.function.clone(),
            batch_id: record.batch_id.clone(),
            invocation_id: record.invocation_id.clone(),
            reason: record.reason.clone(),
            attempts: record.attempts,
            created_at: record.created_at.clone(),
            documents: record.documents(),
            parts: record.parts,
            complete: record.is_complete(),
        }
    }
}

/// A record in full, for `show`.
pub fn detail(record: &DeadLetterRecord) -> Value {
    let mut value = serde_json::to_value(DeadLetterSummary::of(record)).unwrap_or_default();
    value["partIds"] = serde_json::json!(record.part_ids);
    match &record.payload {
        DeadLetterPayload::Documents(documents) => value["batch"] = serde_json::json!(documents),
        DeadLetterPayload::Raw(text) => value["rawPayload"] = serde_json::json!(text),
    }
    value
}

/// Decodes a payload that was kept verbatim (the host's request body) into documents.
pub type RawDecoder<'a> = &'a (dyn Fn(&ReplayTarget, &str) -> Result<Vec<Value>, String> + Sync);

/// What replaying one record did.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase", tag = "outcome")]
pub enum ReplayOutcome {
    /// The function succeeded and the record was removed.
    Replayed {
        documents: usize,
        /// Documents replayed at their current version (the rest as recorded: the store no
        /// longer has them).
        current: usize,
        logs: Vec<String>,
    },
    /// The function (or removing the record) failed; the record stays.
    Failed { error: String },
    /// Not attempted; the record stays.
    Skipped { reason: String },
}

#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReplayEntry {
    pub id: String,
    pub function: String,
    #[serde(flatten)]
    pub outcome: ReplayOutcome,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReplayReport {
    pub replayed: usize,
    pub failed: usize,
    pub skipped: usize,
    pub entries: Vec<ReplayEntry>,
}

impl ReplayReport {
    fn push(&mut self, record: &DeadLetterRecord, outcome: ReplayOutcome) {
        match &outcome {
            ReplayOutcome::Replayed { .. } => self.replayed += 1,
            ReplayOutcome::Failed { .. } => self.failed += 1,
            ReplayOutcome::Skipped { .. } => self.skipped += 1,
        }
        self.entries.push(ReplayEntry {
            id: record.id.clone(),
            function: record.function.clone(),
            outcome,
        });
    }
}

/// Each document at its current version when the store has it; how many were.
async fn current_versions(
    store: &dyn Store,
    container: Container,
    documents: Vec<Value>,
) -> Result<(Vec<Value>, usize), StoreError> {
    let mut current = 0;
    let mut out = Vec::with_capacity(documents.len());
    for doc in documents {
        let key = (
            string_field(&doc, container.partition_key_field()),
            string_field(&doc, "id"),
        );
        let found = match key {
            (Some(partition_key), Some(id)) => store.read(container, partition_key, id).await?,
            _ => None,
        };
        match found {
            Some(stored) => {
                current += 1;
                out.push(stored.body);
            }
            None => out.push(doc),
        }
    }
    Ok((out, current))
}

async fn replay_one(
    ctx: &AppContext,
    target: &ReplayTarget,
    record: &DeadLetterRecord,
    decode_raw: Option<RawDecoder<'_>>,
) -> ReplayOutcome {
    if !record.is_complete() {
        return ReplayOutcome::Skipped {
            reason: format!(
                "only {} of its {} parts were found",
                record.part_ids.len(),
                record.parts
            ),
        };
    }
    let recorded = match (&record.payload, decode_raw) {
        (DeadLetterPayload::Documents(documents), _) => {
            match documents.iter().map(|d| serde_json::from_str(d)).collect() {
                Ok(documents) => documents,
                Err(error) => {
                    return ReplayOutcome::Failed {
                        error: format!("a recorded document is not JSON: {error}"),
                    }
                }
            }
        }
        (DeadLetterPayload::Raw(text), Some(decode)) => match decode(target, text) {
            Ok(documents) => documents,
            Err(error) => {
                return ReplayOutcome::Failed {
                    error: format!("the payload still cannot be decoded: {error}"),
                }
            }
        },
        (DeadLetterPayload::Raw(_), None) => {
            return ReplayOutcome::Skipped {
                reason: "an undecodable host payload: replay it with `bifrost-workers deadletters replay`, which decodes it".into(),
            }
        }
    };
    let (documents, current) =
        match current_versions(ctx.store.as_ref(), target.container, recorded).await {
            Ok(found) => found,
            Err(e) => {
                return ReplayOutcome::Failed {
                    error: format!("reading the current documents: {e}"),
                }
            }
        };
    let span = tracing::info_span!("replay", function = target.function, dead_letter = %record.id);
    // The functions read documents as text, as a delivered batch holds them.
    let texts: Vec<String> = documents.iter().map(Value::to_string).collect();
    let raw: Vec<RawDocument<'_>> = texts.iter().map(|t| RawDocument::new(t)).collect();
    let batch = Batch::new(&raw, 0);
    let result = tracing::Instrument::instrument(target.handler.handle(ctx, &batch), span).await;
    let logs = match result {
        Ok(logs) => logs,
        Err(e) => {
            return ReplayOutcome::Failed {
                error: e.to_string(),
            }
        }
    };
    match deadletter::remove(ctx.store.as_ref(), record).await {
        Ok(()) => ReplayOutcome::Replayed {
            documents: documents.len(),
            current,
            logs,
        },
        Err(e) => ReplayOutcome::Failed {
            error: format!(
                "replayed, but removing the record failed (replaying it again is safe): {e}"
            ),
        },
    }
}

/// Replays each record through its function, one after another, and says what happened.
pub async fn replay(
    ctx: &AppContext,
    targets: &[ReplayTarget],
    records: &[DeadLetterRecord],
    decode_raw: Option<RawDecoder<'_>>,
) -> ReplayReport {
    let mut report = ReplayReport::default();
    for record in records {
        let outcome = match targets.iter().find(|t| t.function == record.function) {
            Some(target) => replay_one(ctx, target, record, decode_raw).await,
            None => ReplayOutcome::Skipped {
                reason: format!("no change-feed function {:?} here", record.function),
            },
        };
        match &outcome {
            ReplayOutcome::Replayed { documents, .. } => {
                tracing::info!(dead_letter = %record.id, documents, "dead letter replayed")
            }
            ReplayOutcome::Failed { error } => {
                tracing::warn!(dead_letter = %record.id, %error, "dead letter replay failed")
            }
            ReplayOutcome::Skipped { reason } => {
                tracing::warn!(dead_letter = %record.id, %reason, "dead letter not replayed")
            }
        }
        report.push(record, outcome);
    }
    report
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::{Clock, SystemClock};
    use crate::runtime::deadletter::DeadLetter;
    use crate::runtime::FunctionError;
    use async_trait::async_trait;
    use serde_json::json;
    use std::sync::Mutex;

    /// Records what it was given; fails while `fail` is set.
    struct Probe {
        seen: Mutex<Vec<Vec<Value>>>,
        fail: std::sync::atomic::AtomicBool,
    }

    #[async_trait]
    impl BatchHandler for Probe {
        async fn handle(
            &self,
            _ctx: &AppContext,
            batch: &Batch<'_>,
        ) -> Result<Vec<String>, FunctionError> {
            if self.fail.load(std::sync::atomic::Ordering::SeqCst) {
                return Err(StoreError::Unavailable("still down".into()).into());
            }
            let documents: Vec<Value> = batch
                .documents()
                .iter()
                .map(|d| serde_json::from_str(d.json()).unwrap())
                .collect();
            let count = documents.len();
            self.seen.lock().unwrap().push(documents);
            Ok(vec![format!("{count} documents")])
        }
    }

    #[tokio::test]
    async fn replay_uses_current_versions_removes_only_after_success_and_can_repeat() {
        let dir = tempfile::tempdir().unwrap();
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        let store: Arc<dyn Store> = Arc::new(
            crate::store::sqlite::SqliteStore::open(&dir.path().join("r.db"), clock.clone())
                .unwrap(),
        );
        let ctx = AppContext::standalone(store.clone(), clock, dir.path());
        let old = json!({"id": "e1", "type": "execution", "scope": "GLOBAL", "status": "Running"});
        let gone = json!({"id": "e2", "type": "execution", "scope": "GLOBAL", "status": "Failed"});
        let mut newer = old.clone();
        newer["status"] = json!("Success");
        store
            .upsert(Container::Executions, newer, None)
            .await
            .unwrap();
        let letter = DeadLetter {
            function: "F",
            invocation_id: "i",
            reason: "down",
            attempts: 6,
        };
        deadletter::record(
            store.as_ref(),
            &SystemClock,
            &letter,
            DeadLetterPayload::Documents(vec![old.to_string(), gone.to_string()]),
        )
        .await
        .unwrap();
        let probe = Arc::new(Probe {
            seen: Mutex::new(Vec::new()),
            fail: true.into(),
        });
        let targets = vec![ReplayTarget {
            function: "F",
            container: Container::Executions,
            binding: "documents",
            handler: probe.clone(),
        }];
        let all = Selection::default();
        let records = select(store.as_ref(), &targets, &all).await.unwrap();
        assert_eq!(records.len(), 1);

        let report = replay(&ctx, &targets, &records, None).await;
        assert_eq!((report.replayed, report.failed), (0, 1), "{report:?}");
        assert_eq!(
            select(store.as_ref(), &targets, &all).await.unwrap().len(),
            1
        );

        probe.fail.store(false, std::sync::atomic::Ordering::SeqCst);
        let report = replay(&ctx, &targets, &records, None).await;
        assert_eq!(report.replayed, 1, "{report:?}");
        assert!(matches!(
            report.entries[0].outcome,
            ReplayOutcome::Replayed {
                documents: 2,
                current: 1,
                ..
            }
        ));
        let seen = probe.seen.lock().unwrap().clone();
        assert_eq!(seen[0][0]["status"], "Success", "the current version");
        assert_eq!(seen[0][1], gone, "as recorded: the store no longer has it");
        assert!(select(store.as_ref(), &targets, &all)
            .await
            .unwrap()
            .is_empty());

        // Again, from the same (stale) list: the function runs again, harmlessly.
        let report = replay(&ctx, &targets, &records, None).await;
        assert_eq!(report.replayed, 1, "{report:?}");

        let unknown = Selection {
            function: Some("Nope".into()),
            id: None,
        };
        let error = select(store.as_ref(), &targets, &unknown)
            .await
            .unwrap_err();
        assert!(error.to_string().contains("F"), "{error}");
    }
}
